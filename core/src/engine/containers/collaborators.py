"""What the containers service uses of its sibling image service, as a Protocol.

The image service is named by what containers call, not by its class: containers never import
engine.images (a sibling service). What logging needs of the daemon is engine.logs' own
:class:`engine.logs.collaborators.LogSetup`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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
