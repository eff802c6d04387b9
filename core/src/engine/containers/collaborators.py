"""What the containers service uses of its sibling services and of the daemon, as Protocols.

The image service and the log set-up are named by what containers call, not by their classes:
containers never import engine.images (a sibling service), and the daemon (the composition root,
above every service) hands itself in as the ``LogSetup`` without containers knowing it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.drivers.log import LogDriver
    from engine.hooks import Hooks
    from engine.registry import DriverRegistry

#: ``fn(image_id) -> [(container_id, running)]``: the image service's rmi conflict check
UsageCheck = Callable[[str], list[tuple[str, bool]]]


class ImageSource(Protocol):
    """engine.images.service.ImageService as containers use it: image lookup, the layer store
    (read-write layers, mounts, changes), commit, and the usage check containers register."""

    layers: Any

    def resolve(self, ref_or_id: str) -> Any: ...

    def commit(
        self,
        container_id: str,
        parent_image_id: str,
        container_config: dict[str, Any],
        *,
        repo: str = "",
        tag: str = "",
        comment: str = "",
        author: str = "",
        changes: list[str] | None = None,
        config: dict[str, Any] | None = None,
    ) -> str: ...

    def set_usage_check(self, fn: UsageCheck) -> None: ...


class LogSetup(Protocol):
    """What engine.logs needs to start, validate and read a container's logging: the configured
    default driver and options, the log driver registry, the data root and the log-message hook."""

    @property
    def config(self) -> DaemonConfig: ...

    @property
    def log_drivers(self) -> DriverRegistry[LogDriver]: ...

    @property
    def data_root(self) -> Path: ...

    @property
    def hooks(self) -> Hooks: ...
