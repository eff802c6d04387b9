"""What container logging uses of the daemon and of a container, as Protocols.

engine.logs sits beside the containers subsystem and below it: it names what it reads instead of
importing either the daemon (the composition root hands in a :class:`DaemonLogging`, tests may hand
in a Daemon itself) or the containers' model (tests hand in a stand-in with the same attributes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.drivers.log import LogDriver
    from engine.hooks import Hooks
    from engine.registry import DriverRegistry


class LogSetup(Protocol):
    """The daemon's side of a container's logging: the configured default driver and options
    (``log-driver``, ``log-opts``), the log driver registry and the log-message hook."""

    @property
    def config(self) -> DaemonConfig: ...

    @property
    def log_drivers(self) -> DriverRegistry[LogDriver]: ...

    @property
    def hooks(self) -> Hooks: ...


@dataclass(frozen=True)
class DaemonLogging:
    """A :class:`LogSetup` of exactly those three: ``read_config`` returns the configuration in
    effect (SIGHUP replaces it, and ``log-opts`` defaults apply to containers created after)."""

    read_config: Callable[[], DaemonConfig]
    log_drivers: DriverRegistry[LogDriver]
    hooks: Hooks

    @property
    def config(self) -> DaemonConfig:
        return self.read_config()


class LoggedContainer(Protocol):
    """What logging reads of a container (engine.containers.model.Container has all of it)."""

    id: str
    name: str
    created: int  # ns since the epoch
    path: str
    args: list[str]
    config: dict[str, Any]
    host_config: dict[str, Any]
    image_id: str
    root: Path  # <data-root>/containers/<id>: the log files and the dual-logging cache live here
    log_driver: Any  # the open LogDriver while the container runs, else None
