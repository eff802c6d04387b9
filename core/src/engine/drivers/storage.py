"""The storage driver contract (moby's graphdriver, which fits every driver engine ships).

A storage driver keeps *layers* by an opaque id. Read-only image layers form chains
through ``parent``; a container's read-write layer sits on top of the image's top layer.
Core calls drivers from worker threads (never on the event loop) and serialises calls per
layer id, so a driver needs no locking of its own beyond what its own shared state needs.

Diffs (``diff``, ``changes``, ``apply_diff``, ``diff_size``) come from
:class:`engine.drivers.naive_diff.NaiveDiffMixin` unless a driver has a native way.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO, ClassVar, Self

__all__ = [
    "IDENTITY",
    "OVERFLOW_ID",
    "Change",
    "ChangeKind",
    "CreateOpts",
    "IdMap",
    "IdMapping",
    "StorageDriver",
    "SupportsQuota",
]

#: the id the kernel shows for host ids outside a user namespace's mapping
OVERFLOW_ID = 65534


@dataclass(frozen=True)
class IdMapping:
    """One contiguous range of a user-namespace mapping."""

    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class IdMap:
    """uid/gid mappings between the container and the host; empty means identity."""

    uids: tuple[IdMapping, ...] = ()
    gids: tuple[IdMapping, ...] = ()

    @staticmethod
    def _to_host(ranges: tuple[IdMapping, ...], cid: int) -> int:
        if not ranges:
            return cid
        for r in ranges:
            if r.container_id <= cid < r.container_id + r.size:
                return r.host_id + cid - r.container_id
        raise ValueError(f"container id {cid} is not mapped")

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        return self._to_host(self.uids, uid), self._to_host(self.gids, gid)

    @staticmethod
    def _to_container(ranges: tuple[IdMapping, ...], hid: int) -> int:
        if not ranges:
            return hid
        for r in ranges:
            if r.host_id <= hid < r.host_id + r.size:
                return r.container_id + hid - r.host_id
        return OVERFLOW_ID  # unmapped host ids show as nobody, as the kernel does

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        """Host ids as the container sees them (tar headers of diffs); unmapped ids become 65534."""
        return self._to_container(self.uids, uid), self._to_container(self.gids, gid)

    def root(self) -> tuple[int, int]:
        """The host uid/gid that container root maps to."""
        return self.to_host(0, 0)

    @property
    def identity(self) -> bool:
        return not self.uids and not self.gids


IDENTITY = IdMap()


@dataclass(frozen=True)
class CreateOpts:
    """Options for ``create``/``create_read_write``: per-layer storage options (e.g. ``size``)."""

    storage_opt: Mapping[str, str] = field(default_factory=dict)
    mount_label: str = ""


class ChangeKind(IntEnum):
    """Docker's change kinds, as ``GET /containers/{id}/changes`` reports them."""

    MODIFY = 0
    ADD = 1
    DELETE = 2


@dataclass(frozen=True, order=True)
class Change:
    path: str  # absolute inside the layer, e.g. "/etc/hosts"
    kind: ChangeKind


class StorageDriver(abc.ABC):
    """Abstract storage driver. Subclasses set ``name`` and ``API_VERSION``.

    Construction goes through :meth:`init`, which checks the host and raises
    :class:`engine.errors.DriverNotSupported` (or its subclasses
    ``PrerequisitesNotMet``/``IncompatibleFS``) when the driver cannot run here.
    """

    name: ClassVar[str]
    API_VERSION: ClassVar[int]

    def __init__(self, home: Path, options: Mapping[str, str], id_map: IdMap) -> None:
        self.home = home
        self.options = dict(options)
        self.id_map = id_map

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def init(cls, home: Path, options: Mapping[str, str], id_map: IdMap = IDENTITY) -> Self:
        """Check the host, create ``home`` and return a ready driver.

        :param home: the driver's own directory (``<data-root>/<driver-name>``).
        :param options: ``storage-opts`` with the driver prefix stripped (``overlay2.size`` -> ``size``).
        :param id_map: user-namespace mapping; layer content is owned by the mapped root.
        :raises DriverNotSupported: this host cannot run the driver.
        """
        cls.validate_options(options)
        home.mkdir(parents=True, exist_ok=True, mode=0o710)
        return cls(home, options, id_map)

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        """Reject unknown or bad options with ``engine.errors.InvalidParameter``; default accepts none."""
        if options:
            from engine.errors import InvalidParameter

            raise InvalidParameter(f"{cls.name}: unknown option(s) {', '.join(sorted(options))}")

    # -- layers ------------------------------------------------------------------------------------

    @abc.abstractmethod
    def create(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        """Create a read-only layer ``id`` on top of ``parent`` (``None``: a base layer)."""

    @abc.abstractmethod
    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        """Create a writable layer (a container's rootfs or its init layer) on ``parent``."""

    @abc.abstractmethod
    def remove(self, id: str) -> None:
        """Remove layer ``id``; it must not be mounted. Removing a missing layer is not an error."""

    @abc.abstractmethod
    def get(self, id: str, mount_label: str = "") -> Path:
        """Mount layer ``id`` (with its parents) and return the path of its root.

        Calls nest: every ``get`` is matched by one ``put``; the layer stays mounted until the last ``put``.
        """

    @abc.abstractmethod
    def put(self, id: str) -> None:
        """Release what one ``get`` acquired; unmounts when the last reference goes."""

    @abc.abstractmethod
    def exists(self, id: str) -> bool:
        """Whether layer ``id`` exists."""

    @abc.abstractmethod
    def status(self) -> list[tuple[str, str]]:
        """Key/value pairs for ``docker info`` ``DriverStatus``."""

    @abc.abstractmethod
    def metadata(self, id: str) -> dict[str, str]:
        """Driver-specific facts about a layer for ``GraphDriver.Data`` in inspect."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Unmount everything this driver mounted; called at daemon shutdown."""

    # -- diffs (NaiveDiffMixin provides these from get/put) ---------------------------------------------

    @abc.abstractmethod
    def diff(self, id: str, parent: str | None, out: BinaryIO) -> None:
        """Write to ``out`` a tar of the changes of ``id`` relative to ``parent``, whiteouts in tar form."""

    @abc.abstractmethod
    def changes(self, id: str, parent: str | None) -> list[Change]:
        """The files changed in ``id`` relative to ``parent``."""

    @abc.abstractmethod
    def apply_diff(self, id: str, parent: str | None, diff: BinaryIO) -> int:
        """Extract a layer tar (whiteouts in tar form) into layer ``id``; returns the bytes it holds."""

    @abc.abstractmethod
    def diff_size(self, id: str, parent: str | None) -> int:
        """The size in bytes of the changes of ``id`` relative to ``parent``."""


class SupportsQuota:
    """Marker for drivers that honour ``CreateOpts.storage_opt["size"]`` (the graphtest quota case)."""
