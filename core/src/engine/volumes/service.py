"""The volume service: named and anonymous volumes, container references, filters, prune, events.

Errors and events follow moby's volume/service: ``get x: no such volume`` (404),
``remove x: volume is in use - [ids]`` (409), ``create x: <reason>``; events ``create``/``destroy``
(attribute ``driver``) and ``prune`` (attribute ``reclaimed``).

Two kinds of claims on a volume, as in dockerd:

- a *reference* (``acquire``/``release``): a container uses the volume; a referenced volume cannot
  be removed or pruned. References are kept on disk, so they survive a daemon restart.
- a *mount* (``mount``/``unmount``): a running container needs the data; a volume created with
  driver options (``type``/``device``/``o``) is mounted at its first mount and unmounted at its last.

Thread-safe: one lock per volume name, plus a short lock for the name table.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.drivers.locks import KeyedLocks
from engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from engine.filters import Filters
from engine.volumes.local import DRIVER_NAME, LocalDriver, LocalVolume, directory_size

if TYPE_CHECKING:
    from engine.daemon import Daemon
    from engine.events import EventBus

log = logging.getLogger(__name__)

LIST_FILTERS = ("dangling", "name", "driver", "label")
PRUNE_FILTERS = ("label", "label!")


@dataclass(frozen=True)
class Volume:
    """A volume as callers see it (a snapshot; ask the service again for fresh data)."""

    name: str
    driver: str
    mountpoint: Path
    labels: dict[str, str] | None
    options: dict[str, str] | None
    created_at: str
    anonymous: bool = False
    scope: str = "local"

    def to_api(self, usage: dict[str, int] | None = None) -> dict[str, Any]:
        """The Engine API's Volume object (field order as dockerd's)."""
        data: dict[str, Any] = {}
        if self.created_at:
            data["CreatedAt"] = self.created_at
        data.update(
            {
                "Driver": self.driver,
                "Labels": self.labels,
                "Mountpoint": str(self.mountpoint),
                "Name": self.name,
                "Options": self.options,
                "Scope": self.scope,
            }
        )
        if usage is not None:
            data["UsageData"] = usage
        return data


def _string_map(value: Mapping[str, Any] | None) -> dict[str, str] | None:
    return None if value is None else {str(k): str(v) for k, v in value.items()}


def _invalid_filter(key: str, values: Iterable[str] | None = None) -> InvalidParameter:
    """moby's invalidFilter text (capital I, values printed as a Go slice)."""
    text = f"Invalid filter '{key}"
    if values is not None:
        text += "=[" + " ".join(sorted(values)) + "]"
    return InvalidParameter(text + "'")


def match_kv_list(wanted: set[str], labels: Mapping[str, str] | None) -> bool:
    """moby filters.MatchKVList: every ``k`` / ``k=v`` in ``wanted`` is in ``labels``."""
    if not wanted:
        return True
    if not labels:
        return False
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _name_matches(wanted: set[str], name: str) -> bool:
    """moby filters.Match: an exact name, or a regular expression found in it."""
    if name in wanted:
        return True
    for pattern in wanted:
        try:
            if re.search(pattern, name):
                return True
        except re.error:
            continue
    return False


class VolumeService:
    """``daemon.volumes``: see the module docstring."""

    def __init__(
        self,
        root: Path,
        events: EventBus | None = None,
        hooks: Any = None,
    ) -> None:
        self.driver = LocalDriver(root)
        self.events = events
        self.hooks = hooks
        self._volumes: dict[str, LocalVolume] = {}
        self._table_lock = threading.Lock()
        self._locks = KeyedLocks()  # one per volume name
        self._prune_running = threading.Lock()
        self.started = False

    @classmethod
    def from_daemon(cls, daemon: Daemon) -> VolumeService:
        return cls(daemon.data_root / "volumes", daemon.events, daemon.pm.hook)

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        volumes = self.driver.setup()
        with self._table_lock:
            self._volumes = volumes
        self.started = True
        log.debug("volumes: %d loaded from %s", len(volumes), self.driver.root)

    def stop(self) -> None:
        """Unmount what driver options mounted; references stay on disk for the next start."""
        with self._table_lock:
            volumes = list(self._volumes.values())
        for volume in volumes:
            with self._locks(volume.name):
                if volume.mounted_by:
                    try:
                        volume.force_unmount()
                    except EngineError as exc:
                        log.warning("volume %s: %s", volume.name, exc.message)

    def drivers(self) -> list[str]:
        return [DRIVER_NAME]

    # -- helpers ------------------------------------------------------------------------------------

    def _find(self, name: str, op: str = "get") -> LocalVolume:
        with self._table_lock:
            volume = self._volumes.get(name)
        if volume is None:
            raise NotFound(f"{op} {name}: no such volume")
        return volume

    def _view(self, volume: LocalVolume) -> Volume:
        return Volume(
            name=volume.name,
            driver=DRIVER_NAME,
            mountpoint=volume.mountpoint,
            labels=dict(volume.labels) if volume.labels is not None else None,
            options=dict(volume.options) if volume.options is not None else None,
            created_at=volume.created_at(),
            anonymous=volume.anonymous,
        )

    def _publish(self, action: str, name: str, attributes: dict[str, str]) -> None:
        if self.events is not None:
            self.events.publish("volume", action, name, attributes)

    def _hook(self, hook_name: str, **kwargs: Any) -> None:
        if self.hooks is not None:
            try:
                getattr(self.hooks, hook_name)(**kwargs)
            except Exception:
                log.exception("hook %s failed", hook_name)

    # -- the API ------------------------------------------------------------------------------------

    def create(
        self,
        name: str | None = None,
        driver: str = DRIVER_NAME,
        driver_opts: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        anonymous: bool | None = None,
        reference: str | None = None,
    ) -> Volume:
        """Create a volume, or return the existing one of that name (as dockerd, without an error).

        :param name: None or "": an anonymous volume with a random 64-hex name.
        :param anonymous: mark the volume anonymous (default: when ``name`` is empty).
        :param reference: a container ID to reference the volume from the start (no prune race).
        :raises InvalidParameter: a bad name or driver option (``create <name>: ...``).
        :raises NotFound: an unknown driver.
        """
        if anonymous is None:
            anonymous = not name
        name = name or secrets.token_hex(32)
        driver = driver or DRIVER_NAME
        if driver != DRIVER_NAME:
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        with self._locks(name):
            with self._table_lock:
                volume = self._volumes.get(name)
            created = volume is None
            if volume is None:
                try:
                    volume = self.driver.create(name, _string_map(driver_opts), _string_map(labels), anonymous)
                except EngineError as exc:
                    raise type(exc)(f"create {name}: {exc.message}") from None
                with self._table_lock:
                    self._volumes[name] = volume
            if reference and reference not in volume.references:
                volume.references.append(reference)
                volume.save()
            view = self._view(volume)
        self._publish("create", name, {"driver": DRIVER_NAME})
        if created:
            self._hook(
                "engine_volume_created",
                name=name,
                driver=DRIVER_NAME,
                mountpoint=str(view.mountpoint),
                labels=dict(view.labels or {}),
            )
        return view

    def get(self, name: str) -> Volume:
        """:raises NotFound: ``get <name>: no such volume``."""
        volume = self._find(name)
        with self._locks(name):
            return self._view(volume)

    def references(self, name: str) -> list[str]:
        volume = self._find(name)
        with self._locks(name):
            return list(volume.references)

    def acquire(self, name: str, container_id: str) -> Path:
        """Record that ``container_id`` uses the volume (persisted); returns the volume's mountpoint."""
        volume = self._find(name)
        with self._locks(name):
            if container_id not in volume.references:
                volume.references.append(container_id)
                volume.save()
            return volume.mountpoint

    def release(self, name: str, container_id: str) -> None:
        """Drop ``container_id``'s reference (and its mount, if it still holds one). Unknown names are ignored."""
        with self._table_lock:
            volume = self._volumes.get(name)
        if volume is None:
            return
        with self._locks(name):
            volume.unmount(container_id)
            if container_id in volume.references:
                volume.references.remove(container_id)
                volume.save()

    def mount(self, name: str, ref: str) -> Path:
        """Make the data available for ``ref`` (a container about to start): mounts a volume created with
        driver options at its first mount. Returns the path to bind into the container.

        :raises SystemError: the mount failed (``failed to mount local volume: mount ...``).
        """
        volume = self._find(name)
        with self._locks(name):
            return volume.mount(ref)

    def unmount(self, name: str, ref: str) -> None:
        """``ref`` no longer needs the data (its container stopped); the last one unmounts."""
        with self._table_lock:
            volume = self._volumes.get(name)
        if volume is None:
            return
        with self._locks(name):
            volume.unmount(ref)

    def remove(self, name: str, force: bool = False) -> None:
        """Remove a volume and its data.

        :param force: a missing volume, or a driver error, is not an error (``docker volume rm -f``);
            a volume in use is refused all the same, as dockerd does.
        :raises NotFound: ``get <name>: no such volume``.
        :raises Conflict: ``remove <name>: volume is in use - [<container IDs>]``.
        """
        with self._table_lock:
            volume = self._volumes.get(name)
        if volume is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        with self._locks(name):
            if volume.references:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(volume.references)}]")
            try:
                self.driver.remove(volume)
            except EngineError as exc:
                if not force:
                    raise type(exc)(f"remove {name}: {exc.message}") from None
                log.warning("remove %s: %s (purged anyway)", name, exc.message)
            with self._table_lock:
                self._volumes.pop(name, None)
        self._publish("destroy", name, {"driver": DRIVER_NAME})
        self._hook("engine_volume_removed", name=name, driver=DRIVER_NAME)

    def _filtered(self, filters: Filters, predicate: Callable[[LocalVolume], bool] | None = None) -> list[LocalVolume]:
        with self._table_lock:
            volumes = sorted(self._volumes.values(), key=lambda v: v.name)
        out = []
        for volume in volumes:
            if not filters.match_any("driver", [DRIVER_NAME]):
                continue
            if "name" in filters and not _name_matches(filters.get("name"), volume.name):
                continue
            if not match_kv_list(filters.get("label"), volume.labels):
                continue
            if filters.get("label!") and match_kv_list(filters.get("label!"), volume.labels):
                continue
            if predicate is not None and not predicate(volume):
                continue
            out.append(volume)
        return out

    def list(self, filters: Filters | str | None = None) -> list[Volume]:
        """Volumes matching Docker's list filters (dangling, driver, label, name)."""
        parsed = filters if isinstance(filters, Filters) else Filters.parse(filters)
        for key in parsed.values:
            if key not in LIST_FILTERS:
                raise _invalid_filter(key)
        dangling: bool | None = None
        if "dangling" in parsed:
            values = parsed.get("dangling")
            if values & {"true", "1"}:
                dangling = True
            elif values & {"false", "0"}:
                dangling = False
            else:
                raise _invalid_filter("dangling", values)

        def referenced_as_wanted(volume: LocalVolume) -> bool:
            return dangling is None or (not volume.references) == dangling

        views = []
        for volume in self._filtered(parsed, referenced_as_wanted):
            with self._locks(volume.name):
                views.append(self._view(volume))
        return views

    def prune(self, filters: Filters | str | None = None) -> dict[str, Any]:
        """Remove every local volume no container references (label filters apply); volumes with
        driver options are skipped, as dockerd does (there is no space to reclaim)."""
        parsed = filters if isinstance(filters, Filters) else Filters.parse(filters)
        for key in parsed.values:
            if key not in PRUNE_FILTERS:
                raise _invalid_filter(key)
        if not self._prune_running.acquire(blocking=False):
            raise Conflict("a prune operation is already running")
        try:
            deleted: list[str] = []
            reclaimed = 0
            candidates = self._filtered(parsed, lambda v: not v.references and not v.options)
            for volume in candidates:
                size = directory_size(volume.mountpoint)
                try:
                    self.remove(volume.name)
                except EngineError as exc:
                    log.warning("prune: volume %s: %s", volume.name, exc.message)
                    continue
                deleted.append(volume.name)
                reclaimed += size
            self._publish("prune", "", {"reclaimed": str(reclaimed)})
            return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}
        finally:
            self._prune_running.release()

    def disk_usage(self) -> dict[str, Any]:
        """``GET /system/df``'s Volumes: local volumes without driver options, with size and use count."""
        out = []
        with self._table_lock:
            volumes = sorted(self._volumes.values(), key=lambda v: v.name)
        for volume in volumes:
            if volume.options:
                continue
            with self._locks(volume.name):
                usage = {"Size": directory_size(volume.mountpoint), "RefCount": len(volume.references)}
                out.append(self._view(volume).to_api(usage))
        return {"Volumes": out}
