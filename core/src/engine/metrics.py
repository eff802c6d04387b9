"""Prometheus metrics (daemon.json ``metrics-addr``), served as dockerd 20.10 serves them on ``/metrics``.

dockerd's families that apply to engine, with dockerd's names and help:

- ``engine_daemon_container_actions_seconds{action}``: create, start, delete, changes, commit (dockerd's),
  and stop, restart, kill, pause, unpause;
- ``engine_daemon_network_actions_seconds{action}``: create, delete, connect, disconnect;
- ``engine_daemon_image_actions_seconds{action}``: pull, push, delete, tag, build, load, import;
- ``engine_daemon_events_total``, ``engine_daemon_events_subscribers_total``;
- ``engine_daemon_health_checks_total``, ``engine_daemon_health_checks_failed_total`` (a probe that
  could not run, as dockerd counts it; a probe that ran and failed is a result, not a failure);
- ``engine_daemon_container_states_containers{state}``, ``engine_daemon_engine_info{...}``,
  ``engine_daemon_engine_cpus_cpus``, ``engine_daemon_engine_memory_bytes``;

and engine's own: ``engine_api_request_duration_seconds{method,route,code}`` (the route as declared,
``/containers/{id}/start``), ``engine_images_images``,
``engine_storage_driver_operation_seconds{driver,operation}``, and per log driver
``engine_log_messages_total``, ``engine_log_bytes_total``, ``engine_log_dropped_messages_total`` and
``engine_log_errors_total`` (bumped in engine.opcounters); plus the ``process_*`` family.

The action timings are measured per API request, where the route names the action, so no
subsystem carries metrics code; the counts are read at scrape time from the same subsystem fields
``docker info`` reports, so both always agree.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine import opcounters
from engine.api import request_log
from engine.config_options import split_listen_address
from engine.errors import ConfigError

if TYPE_CHECKING:
    from aiohttp import web

    from engine.daemon import Daemon

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

CONTAINER_ACTIONS = Histogram(
    "engine_daemon_container_actions_seconds",
    "The number of seconds it takes to process each container action",
    ["action"],
    registry=REGISTRY,
)
NETWORK_ACTIONS = Histogram(
    "engine_daemon_network_actions_seconds",
    "The number of seconds it takes to process each network action",
    ["action"],
    registry=REGISTRY,
)
IMAGE_ACTIONS = Histogram(
    "engine_daemon_image_actions_seconds",
    "The number of seconds it takes to process each image action",
    ["action"],
    registry=REGISTRY,
)
EVENTS = Counter("engine_daemon_events", "The number of events logged", registry=REGISTRY)
API_REQUESTS = Histogram(
    "engine_api_request_duration_seconds",
    "The number of seconds it takes to answer an API request, by route",
    ["method", "route", "code"],
    registry=REGISTRY,
)
EVENT_SUBSCRIBERS = Gauge(
    "engine_daemon_events_subscribers_total", "The number of current subscribers to events", registry=REGISTRY
)

#: (method, route) -> (histogram, action): the requests that are a daemon action
ACTIONS: dict[tuple[str, str], tuple[Histogram, str]] = {
    ("POST", "/containers/create"): (CONTAINER_ACTIONS, "create"),
    ("POST", "/containers/{id}/start"): (CONTAINER_ACTIONS, "start"),
    ("DELETE", "/containers/{id}"): (CONTAINER_ACTIONS, "delete"),
    ("GET", "/containers/{id}/changes"): (CONTAINER_ACTIONS, "changes"),
    ("POST", "/commit"): (CONTAINER_ACTIONS, "commit"),
    ("POST", "/containers/{id}/stop"): (CONTAINER_ACTIONS, "stop"),
    ("POST", "/containers/{id}/restart"): (CONTAINER_ACTIONS, "restart"),
    ("POST", "/containers/{id}/kill"): (CONTAINER_ACTIONS, "kill"),
    ("POST", "/containers/{id}/pause"): (CONTAINER_ACTIONS, "pause"),
    ("POST", "/containers/{id}/unpause"): (CONTAINER_ACTIONS, "unpause"),
    ("POST", "/networks/create"): (NETWORK_ACTIONS, "create"),
    ("DELETE", "/networks/{id}"): (NETWORK_ACTIONS, "delete"),
    ("POST", "/networks/{id}/connect"): (NETWORK_ACTIONS, "connect"),
    ("POST", "/networks/{id}/disconnect"): (NETWORK_ACTIONS, "disconnect"),
    ("POST", "/images/create"): (IMAGE_ACTIONS, "pull"),
    ("POST", "/images/{name}/push"): (IMAGE_ACTIONS, "push"),
    ("DELETE", "/images/{name}"): (IMAGE_ACTIONS, "delete"),
    ("POST", "/images/{name}/tag"): (IMAGE_ACTIONS, "tag"),
    ("POST", "/build"): (IMAGE_ACTIONS, "build"),
    ("POST", "/images/load"): (IMAGE_ACTIONS, "load"),
}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One finished API request (``route`` as declared, without the ``/vX.Y`` prefix)."""
    API_REQUESTS.labels(method, route or "unmatched", str(status)).observe(seconds)
    action = ACTIONS.get((method, route))
    if action is not None and status < 400:
        histogram, name = action
        histogram.labels(name).observe(seconds)


def _observe(request: Any, response: Any, seconds: float) -> None:
    observe_request(request.method, route_of(request), response.status, seconds)


def route_of(request: Any) -> str:
    """The declared route of an aiohttp request, ``/containers/{id}/json``; empty when none matched."""
    try:  # routes are registered unversioned (engine.api.router strips /vX.Y before matching)
        return str(request.match_info.route.resource.canonical)
    except AttributeError:
        return ""


class DaemonCollector(Collector):
    """What ``docker info`` counts, read at scrape time from the same subsystem fields."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        daemon = self.daemon
        for contribute in (daemon.images.info_fields, daemon.containers.info_fields):
            fields.update(contribute())
        return fields

    def collect(self) -> Iterator[Metric]:
        from engine import DOCKER_VERSION, __version__
        from engine.system_info import mem_total, os_release

        fields = self._fields()
        states = GaugeMetricFamily(
            "engine_daemon_container_states_containers", "The count of containers in various states", labels=["state"]
        )
        states.add_metric(["running"], fields.get("ContainersRunning", 0))
        states.add_metric(["paused"], fields.get("ContainersPaused", 0))
        states.add_metric(["stopped"], fields.get("ContainersStopped", 0))
        yield states
        yield GaugeMetricFamily("engine_images_images", "The number of images", value=fields.get("Images", 0))
        yield from _log_counters()
        yield CounterMetricFamily(
            "engine_daemon_health_checks", "The total number of health checks", value=opcounters.HEALTH_CHECKS.value
        )
        yield CounterMetricFamily(
            "engine_daemon_health_checks_failed",
            "The total number of failed health checks",
            value=opcounters.HEALTH_CHECKS_FAILED.value,
        )
        uname = platform.uname()
        osr = os_release()
        info = GaugeMetricFamily(
            "engine_daemon_engine_info",
            "The information related to the engine and the OS it is running on",
            labels=[
                "architecture",
                "commit",
                "daemon_id",
                "graphdriver",
                "kernel",
                "os",
                "os_type",
                "os_version",
                "version",
            ],
        )
        storage = self.daemon.storage
        info.add_metric(
            [
                uname.machine,
                f"engine-{__version__}",
                self.daemon.id,
                storage.name if storage is not None else "",
                uname.release,
                osr.get("PRETTY_NAME", "Linux"),
                "linux",
                osr.get("VERSION_ID", ""),
                DOCKER_VERSION,
            ],
            1,
        )
        yield info
        yield GaugeMetricFamily(
            "engine_daemon_engine_cpus_cpus",
            "The number of cpus that the host system of the engine has",
            value=os.cpu_count() or 1,
        )
        yield GaugeMetricFamily(
            "engine_daemon_engine_memory_bytes",
            "The number of bytes of memory that the host system of the engine has",
            value=mem_total(),
        )


class MetricsServer:
    """Serves ``GET /metrics`` on ``metrics-addr`` (nothing when it is empty)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.runner: web.AppRunner | None = None
        self._collector: DaemonCollector | None = None

    async def start(self) -> None:
        """:raises ConfigError: the address cannot be listened on."""
        addr = self.daemon.config["metrics-addr"]
        if not addr:
            return
        from aiohttp import web

        host, port = split_listen_address(addr)
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, host or None, port, reuse_address=True).start()
        except OSError as exc:
            await self.runner.cleanup()
            self.runner = None
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ConfigError(f"failed to start metrics server: listen tcp {addr}: bind: {reason}") from None
        self.daemon.events.add_observer(_count_event)
        EVENT_SUBSCRIBERS.set_function(self.daemon.events.subscriber_count)
        request_log.observers.append(_observe)
        log.info("metrics API listening on %s", addr)

    def daemon_started(self) -> None:
        """Once the daemon has started: time its storage driver's operations, count its containers and images."""
        if self.runner is None:
            return
        if self.daemon.storage is not None:
            instrument_storage(self.daemon.storage)
        # the subsystems the collector reads exist only now (it is asked once at registration)
        self._collector = DaemonCollector(self.daemon)
        REGISTRY.register(self._collector)

    async def _metrics(self, request: web.Request) -> web.Response:
        import asyncio

        from aiohttp import web
        from prometheus_client.exposition import choose_encoder

        # the scraper's Accept header picks the text format (0.0.4, 1.0.0) or OpenMetrics
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.to_thread(encode, REGISTRY)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def stop(self) -> None:
        if _observe in request_log.observers:
            request_log.observers.remove(_observe)
        if self._collector is not None:
            REGISTRY.unregister(self._collector)
            self._collector = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


_LOG_FAMILIES = (
    ("engine_log_messages", "Container output messages delivered to each log driver", opcounters.LOG_MESSAGES),
    ("engine_log_bytes", "Container output bytes delivered to each log driver", opcounters.LOG_BYTES),
    ("engine_log_dropped_messages", "Messages dropped by non-blocking log mode, by log driver", opcounters.LOG_DROPPED),
    ("engine_log_errors", "Failed deliveries to each log driver", opcounters.LOG_ERRORS),
)


def _log_counters() -> Iterator[Metric]:
    for name, help_, counter in _LOG_FAMILIES:
        family = CounterMetricFamily(name, help_, labels=["driver"])
        for driver, count in sorted(counter.values().items()):
            family.add_metric([driver], count)
        yield family


STORAGE_OPERATIONS = Histogram(
    "engine_storage_driver_operation_seconds",
    "The number of seconds each storage driver operation takes",
    ["driver", "operation"],
    registry=REGISTRY,
)
#: the StorageDriver methods timed (engine.drivers.storage's contract)
STORAGE_TIMED = ("create", "create_read_write", "remove", "get", "put", "diff", "changes", "apply_diff", "diff_size")


def instrument_storage(driver: Any) -> None:
    """Time the driver's operations: each method is shadowed on the instance by a timed wrapper, so
    neither the driver nor its callers know about metrics."""
    for operation in STORAGE_TIMED:
        method = getattr(driver, operation, None)
        if method is None or getattr(method, "_engine_timed", False):
            continue
        setattr(driver, operation, _timed(method, STORAGE_OPERATIONS.labels(driver.name, operation)))


def _timed(method: Any, histogram: Any) -> Any:
    @functools.wraps(method)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()  # per call: drivers run in many threads at once
        try:
            return method(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - start)

    timed._engine_timed = True  # type: ignore[attr-defined]
    return timed


def _count_event(event: dict[str, Any]) -> None:
    EVENTS.inc()
