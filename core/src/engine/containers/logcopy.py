"""Glue between a running container and its logging (E's :mod:`engine.logs`): the log config is
completed and checked at create; at start one copier per container feeds the driver from the
runtime's spool (acking it, so a restarted daemon resumes where the driver got to)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.daemon import Daemon

log = logging.getLogger(__name__)


def validate(daemon: Daemon, host_config: dict[str, Any]) -> None:
    """dockerd's mergeAndVerifyLogConfig: defaults from daemon.json, then the driver's checks."""
    from engine.logs import validate_log_config

    host_config["LogConfig"] = validate_log_config(daemon, host_config.get("LogConfig"))


def start(daemon: Daemon, container: Container, task: Any) -> Any:
    """On the loop: the container's ContainerLogger (driver + copier) reading the task's spool."""
    from engine.logs import start_logging

    logger = start_logging(daemon, container, task.output("acked"), ack=task.ack)
    container.log_copier = logger
    container.log_driver = logger.driver
    container.log_path = str(getattr(logger.driver, "log_path", "") or "")
    return logger


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
