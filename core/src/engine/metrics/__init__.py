"""Prometheus metrics (daemon.json ``metrics-addr``), served as dockerd 20.10 serves them on ``/metrics``.

dockerd's families that apply to engine, with dockerd's names and help:

- ``engine_daemon_container_actions_seconds{action}``: create, start, delete, changes, commit (dockerd's),
  and stop, restart, kill, pause, unpause;
- ``engine_daemon_network_actions_seconds{action}``: create, delete, connect, disconnect;
- ``engine_daemon_image_actions_seconds{action}``: pull (also an import: both are POST /images/create), push,
  delete, tag, build, load;
- ``engine_daemon_events_total``, ``engine_daemon_events_subscribers_total``;
- ``engine_daemon_host_info_functions_seconds{function="system_info"}`` (``GET /info``);
- ``engine_daemon_health_checks_total``, ``engine_daemon_health_checks_failed_total`` (a probe that
  could not run, as dockerd counts it; a probe that ran and failed is a result, not a failure);
- ``engine_daemon_container_states_containers{state}``, ``engine_daemon_engine_info{...}``,
  ``engine_daemon_engine_cpus_cpus``, ``engine_daemon_engine_memory_bytes``;
- ``builder_builds_triggered_total``, ``builder_builds_failed_total{reason}``;
- ``logger_log_entries_size_greater_than_buffer_total`` (partial messages),
  ``logger_log_read_operations_failed_total``, ``logger_log_write_operations_failed_total``;

and engine's own: ``engine_api_request_duration_seconds{method,route,code}`` (the route as declared,
``/containers/{id}/start``), ``engine_images_images``; per-driver operation latencies
``engine_{storage,network,log}_driver_operation_seconds{driver,operation}`` (engine.metrics.drivers);
per log driver ``engine_log_messages_total``, ``engine_log_bytes_total``,
``engine_log_dropped_messages_total`` and ``engine_log_errors_total`` (bumped in engine.opcounters);
per running container ``engine_container_*`` cpu, memory, block I/O and network figures
(engine.metrics.containers); plus the ``process_*`` family.

The action timings are measured per API request, where the route names the action, so no
subsystem carries metrics code; the counts are read at scrape time from the same subsystem fields
``docker info`` reports, so both always agree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine import opcounters
from engine.api import request_log
from engine.config_options import split_listen_address
from engine.errors import ConfigError
from engine.metrics.containers import ContainerCollector
from engine.metrics.drivers import instrument
from engine.metrics.registry import REGISTRY

if TYPE_CHECKING:
    from aiohttp import web

    from engine.daemon import Daemon

log = logging.getLogger(__name__)


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
HOST_INFO = Histogram(
    "engine_daemon_host_info_functions_seconds",
    "The number of seconds it takes to call functions gathering info about the host",
    ["function"],
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
    # dockerd also times its operating_system and os_version lookups: engine reads both in system_info
    ("GET", "/info"): (HOST_INFO, "system_info"),
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
        # the subsystems' own info fields, as GET /info reads them (the collector is registered once
        # the daemon has started: see MetricsServer.daemon_started)
        from engine.api.info import subsystem_fields

        return subsystem_fields(self.daemon)

    def collect(self) -> Iterator[Metric]:
        from engine import DOCKER_VERSION, __version__
        from engine.system_info import host_fields

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
        yield from _dockerd_counters()
        yield CounterMetricFamily(
            "engine_daemon_health_checks", "The total number of health checks", value=opcounters.HEALTH_CHECKS.value
        )
        yield CounterMetricFamily(
            "engine_daemon_health_checks_failed",
            "The total number of failed health checks",
            value=opcounters.HEALTH_CHECKS_FAILED.value,
        )
        host = host_fields()  # what GET /info says of the host
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
                host["Architecture"],
                f"engine-{__version__}",
                self.daemon.id,
                storage.name if storage is not None else "",
                host["KernelVersion"],
                host["OperatingSystem"],
                host["OSType"],
                host["OSVersion"],
                DOCKER_VERSION,
            ],
            1,
        )
        yield info
        yield GaugeMetricFamily(
            "engine_daemon_engine_cpus_cpus",
            "The number of cpus that the host system of the engine has",
            value=host["NCPU"],
        )
        yield GaugeMetricFamily(
            "engine_daemon_engine_memory_bytes",
            "The number of bytes of memory that the host system of the engine has",
            value=host["MemTotal"],
        )


class MetricsServer:
    """Serves ``GET /metrics`` on ``metrics-addr`` (nothing when it is empty)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.runner: web.AppRunner | None = None
        self._collectors: list[Collector] = []

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
        opcounters.DRIVER_OBSERVERS.append(instrument)  # network and log drivers made from now on
        log.info("metrics API listening on %s", addr)

    def daemon_started(self) -> None:
        """Once the daemon has started: time its storage driver's operations, count its containers and images."""
        if self.runner is None:
            return
        if self.daemon.storage is not None:
            instrument("storage", self.daemon.storage)
        # the subsystems the collectors read exist only now (each is asked once at registration)
        self._collectors = [DaemonCollector(self.daemon), ContainerCollector(self.daemon)]
        for collector in self._collectors:
            REGISTRY.register(collector)

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
        if instrument in opcounters.DRIVER_OBSERVERS:
            opcounters.DRIVER_OBSERVERS.remove(instrument)
        for collector in self._collectors:
            REGISTRY.unregister(collector)
        self._collectors = []
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


#: dockerd's builder_builds_failed_total reasons (all served, zero or not, as dockerd does)
BUILD_FAILURE_REASONS = (
    "build_canceled",
    "build_target_not_reachable_error",
    "command_not_supported_error",
    "dockerfile_empty_error",
    "dockerfile_syntax_error",
    "error_processing_commands_error",
    "missing_onbuild_arguments_error",
    "unknown_instruction_error",
)


def _dockerd_counters() -> Iterator[Metric]:
    """dockerd's builder_* and logger_* families, with its names and help."""
    yield CounterMetricFamily(
        "builder_builds_triggered", "Number of triggered image builds", value=opcounters.BUILDS_TRIGGERED.value
    )
    failed = CounterMetricFamily("builder_builds_failed", "Number of failed image builds", labels=["reason"])
    counts = opcounters.BUILDS_FAILED.values()
    for reason in sorted({*BUILD_FAILURE_REASONS, *counts}):
        failed.add_metric([reason], counts.get(reason, 0))
    yield failed
    yield CounterMetricFamily(
        "logger_log_entries_size_greater_than_buffer",
        "Number of log entries which are larger than the log buffer",
        value=opcounters.LOG_PARTIAL_MESSAGES.value,
    )
    yield CounterMetricFamily(
        "logger_log_read_operations_failed",
        "Number of log reads from container stdio that failed",
        value=opcounters.LOG_READS_FAILED.value,
    )
    yield CounterMetricFamily(
        "logger_log_write_operations_failed",
        "Number of log write operations that failed",
        value=sum(opcounters.LOG_ERRORS.values().values()),
    )


def _count_event(event: dict[str, Any]) -> None:
    EVENTS.inc()
