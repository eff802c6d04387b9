"""Glue between a running container and its logging (:mod:`engine.logs`): the log config is
completed and checked at create; at start one copier per container feeds the driver from the
runtime's spool (acking it, so a restarted daemon resumes where the driver got to). The driver is
opened (connected to its target) before the runtime starts the container, so that a target that
cannot be reached fails the start, as in dockerd."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.logs.collaborators import LogSetup

log = logging.getLogger(__name__)


def validate(logging: LogSetup, host_config: dict[str, Any]) -> None:
    """dockerd's mergeAndVerifyLogConfig: defaults from daemon.json, then the driver's checks."""
    from engine.logs import validate_log_config

    host_config["LogConfig"] = validate_log_config(logging, host_config.get("LogConfig"))


def open_driver(logging: LogSetup, container: Container) -> Any:
    """Blocking, before the runtime starts the container: its log driver, connected.

    :raises EngineError: "failed to initialize logging driver: ..." (dockerd's start error)."""
    from engine.logs import open_driver

    return open_driver(logging, container)


def close_unused(driver: Any) -> None:
    """Blocking: undo :func:`open_driver` when the start fails after it."""
    from engine.logs.container_logs import close_unused_driver

    close_unused_driver(driver)


async def start(logging: LogSetup, container: Container, task: Any, *, resume: bool = False, driver: Any = None) -> Any:
    """On the loop: the container's ContainerLogger (``driver`` from :func:`open_driver`, or one
    created here that connects on its first message, + copier) reading the task's spool.

    ``resume`` (a container taken back after a daemon restart): chunks the log already has are
    skipped, since after a kill -9 the spool's ack can lag what the driver wrote by a moment."""
    from engine.logs import start_logging

    source = task.output("acked")
    if resume:
        last = await last_logged_ns(logging, container)
        if last:
            source = _newer_than(source, last)
    logger = start_logging(logging, container, source, ack=task.ack, driver=driver)
    container.log_copier = logger
    container.log_driver = logger.driver
    container.log_path = logger.driver.log_path  # "" for drivers that write no file
    return logger


async def last_logged_ns(logging: LogSetup, container: Container) -> int:
    """The time of the last message the container's log holds (0 when it cannot be read)."""
    from engine.drivers.log import ReadConfig
    from engine.logs import open_reader

    try:
        source = await asyncio.to_thread(open_reader, logging, container)
    except Exception:
        return 0
    last = 0
    try:
        async for batch in source.batches(ReadConfig(tail=1)):
            for message in batch:
                last = max(last, message.time_ns)
    except Exception as exc:
        log.debug("reading the last log line of %s: %s", container.short_id, exc)
    finally:
        source.close()
    return last


async def _newer_than(source: AsyncIterator[Any], last_ns: int) -> AsyncIterator[Any]:
    try:
        async for chunk in source:
            if chunk.timestamp_ns > last_ns:
                yield chunk
    finally:
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()


async def finish(container: Container, timeout: float) -> None:
    """The output ended: let the copier write everything, close the driver."""
    logger = container.log_copier
    if logger is None:
        return
    try:
        await logger.close(timeout)
    except Exception:
        log.exception("closing the logger of %s failed", container.short_id)
    container.log_copier = None
    container.log_driver = None


async def stop(container: Container) -> None:
    """Daemon shutdown (live-restore): stop copying now; the spool keeps the rest."""
    logger = container.log_copier
    if logger is None:
        return
    try:
        await logger.stop()
    except Exception:
        log.exception("stopping the logger of %s failed", container.short_id)
    container.log_copier = None
    container.log_driver = None
