"""HEALTHCHECK / ``--health-*``: periodic probes run as execs, the health state machine and its
``health_status`` events (dockerd's daemon/health.go)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from engine.containers.state import HEALTH_STARTING, HEALTHY, UNHEALTHY, Health
from engine.containers.timefmt import now_ns, rfc3339nano
from engine.drivers.duration import format_duration

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.containers.service import ContainerService

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
MAX_OUTPUT = 4096


def _seconds(ns: Any, default: float) -> float:
    value = int(ns or 0)
    return value / 1e9 if value > 0 else default


def probe_command(container: Container) -> list[str] | None:
    """The probe's argv, or None when there is no health check."""
    health = container.config.get("Healthcheck") or {}
    test = list(health.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return test[1:] or None
    if test[0] == "CMD-SHELL":
        shell = list(container.config.get("Shell") or ["/bin/sh", "-c"])
        return [*shell, " ".join(test[1:])]
    return test


def start_monitor(service: ContainerService, container: Container) -> asyncio.Task[None] | None:
    """On the loop, at each start: reset the health to "starting" and probe every interval."""
    cmd = probe_command(container)
    if cmd is None:
        return None
    with container.lock:
        health = container.state.health
        if health is None:
            container.state.health = Health()
        else:
            health.status = HEALTH_STARTING
            health.failing_streak = 0
    return asyncio.ensure_future(_monitor(service, container, cmd))


async def _monitor(service: ContainerService, container: Container, cmd: list[str]) -> None:
    config = container.config.get("Healthcheck") or {}
    interval = _seconds(config.get("Interval"), DEFAULT_INTERVAL)
    timeout = _seconds(config.get("Timeout"), DEFAULT_TIMEOUT)
    while True:
        await asyncio.sleep(interval)
        if not container.state.running or container.state.paused:
            continue
        start = now_ns()
        try:
            code, output = await service.execs.run_probe(container, cmd, timeout)
            text = output.decode(errors="replace")[:MAX_OUTPUT]
            if code == -1:
                text = f"Health check exceeded timeout ({format_duration(int(timeout * 1e9))})"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            code, text = -1, getattr(exc, "message", str(exc))
        await asyncio.to_thread(
            record_result, service, container, {"Start": start, "End": now_ns(), "ExitCode": code, "Output": text}
        )


def record_result(service: ContainerService, container: Container, result: dict[str, Any]) -> None:
    """dockerd's handleProbeResult: log it, update the streak and status, announce a change."""
    config = container.config.get("Healthcheck") or {}
    retries = int(config.get("Retries") or 0) or DEFAULT_RETRIES
    start_period = _seconds(config.get("StartPeriod"), 0.0)
    with container.lock:
        health = container.state.health
        if health is None or not container.state.running:
            return
        old = health.status
        health.add_result(
            {
                "Start": rfc3339nano(result["Start"]),
                "End": rfc3339nano(result["End"]),
                "ExitCode": result["ExitCode"],
                "Output": result["Output"],
            }
        )
        if result["ExitCode"] == 0:
            health.failing_streak = 0
            health.status = HEALTHY
        else:
            count = True
            if health.status == HEALTH_STARTING:
                since_start = (result["Start"] - container.state.started_at) / 1e9
                count = since_start >= start_period
            if count:
                health.failing_streak += 1
                if health.failing_streak >= retries:
                    health.status = UNHEALTHY
        with contextlib.suppress(OSError):
            service.store.save_state(container)
        new = health.status
    if new != old:
        service.publish(container, f"health_status: {new}")
