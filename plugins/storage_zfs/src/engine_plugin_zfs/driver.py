"""The zfs storage driver: layers are zfs datasets; a child is a clone of a snapshot of its parent.

Datasets live under ``zfs.fsname`` (default: the dataset holding data-root, as dockerd picks it):
``<fsname>/<id>``. A layer with a parent is made as dockerd does: ``zfs snapshot <parent>@<id>``,
``zfs clone`` of it, and a deferred destroy of the snapshot (it goes when the clone goes).

Mounting: every dataset is created with ``mountpoint=none``; ``get`` sets its mountpoint to
``<home>/graph/<id>`` (which mounts it), the last ``put`` sets it back to ``none``. dockerd uses
``mountpoint=legacy`` and mount(2) instead, which zfs-fuse cannot do (no legacy mounts); the
property works on kernel zfs and zfs-fuse alike, and a crashed daemon leaves no mount that comes
back on its own. ``size=`` becomes the dataset's ``quota``. Diffs are the naive ones (as dockerd).
"""

from __future__ import annotations

import errno
import filecmp
import logging
import os
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from engine.drivers import DRIVER_API_VERSION, fsinfo, libc
from engine.drivers.locks import KeyedLocks
from engine.drivers.naive_diff import EntryDiffers, NaiveDiffMixin, entry_differs
from engine.drivers.storage import IDENTITY, CreateOpts, IdMap, StorageDriver, SupportsQuota
from engine.drivers.units import ram_in_bytes
from engine.errors import Conflict, InvalidParameter, NotFound, PrerequisitesNotMet, SystemError
from engine_plugin_zfs import host
from engine_plugin_zfs.zfs import CommandBackend, ZfsError, choose_backend

log = logging.getLogger(__name__)

MOUNT_WAIT_SECONDS = 10.0
PUT_BUSY_SECONDS = 2.0  # how long put() retries zfs-fuse's "busy" before leaving the layer mounted


class ZfsStorageDriver(NaiveDiffMixin, StorageDriver, SupportsQuota):
    name = "zfs"
    API_VERSION = DRIVER_API_VERSION

    def __init__(self, home: Path, options: Mapping[str, str], id_map: IdMap) -> None:
        super().__init__(home, options, id_map)
        self.fsname = options.get("fsname", "")
        self.zfs: CommandBackend | None = None
        self._datasets: set[str] = set()  # layer ids, as dockerd's filesystemsCache
        self._refs: dict[str, int] = {}
        self._mounted: set[str] = set()  # normally the layers with references, plus any put() left busy
        self._locks = KeyedLocks()
        self._guard = threading.Lock()

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        for key, value in options.items():
            if key.lower() != "fsname":
                raise InvalidParameter(f"zfs: unknown option zfs.{key}")
            if not value or value.startswith("/") or "@" in value:
                raise InvalidParameter(f"zfs: invalid value for zfs.fsname: {value!r} is not a dataset name")

    @classmethod
    def init(cls, home: Path, options: Mapping[str, str], id_map: IdMap = IDENTITY) -> Self:
        options = {key.lower(): value for key, value in options.items()}
        cls.validate_options(options)
        probe = fsinfo.existing_ancestor(home)
        magic = fsinfo.fs_magic(probe)
        if magic not in (fsinfo.ZFS_SUPER_MAGIC, fsinfo.FUSE_SUPER_MAGIC):
            raise PrerequisitesNotMet(
                f"prerequisites for driver not satisfied (wrong filesystem?): {probe} is not on zfs "
                f"(filesystem magic {magic:#x})"
            )
        mountpoint, fstype, source = host.holding_mount(probe)
        if fstype not in ("zfs", "fuse.zfs"):
            raise PrerequisitesNotMet(
                f"prerequisites for driver not satisfied (wrong filesystem?): {probe} is on {fstype} "
                f"({source} at {mountpoint}), not on zfs"
            )
        try:
            backend = choose_backend(source.split("/")[0])
        except FileNotFoundError as exc:
            raise PrerequisitesNotMet(f"zfs: {exc}") from None
        if not backend.exists(source):  # the mount table's word, checked with zfs itself
            raise PrerequisitesNotMet(f"zfs: {probe} is on {source}, which zfs does not know")
        driver = cls(home, options, id_map)
        driver.zfs = backend
        driver.fsname = driver.fsname or source
        if not backend.exists(driver.fsname):
            raise InvalidParameter(f"zfs: cannot open {driver.fsname}: dataset does not exist (zfs.fsname)")
        home.mkdir(parents=True, exist_ok=True, mode=0o710)
        (home / "graph").mkdir(mode=0o700, exist_ok=True)
        driver._load_datasets()
        return driver

    def _load_datasets(self) -> None:
        """Learn the layers, and the mounts a previous daemon (killed, or restarted under live-restore)
        left under ``home``: a layer still mounted is adopted as mounted and idle (a running container
        may use it, and zfs-fuse cannot mount a dataset twice); a mountpoint left set without a mount
        is cleared."""
        assert self.zfs is not None
        prefix = f"{self.fsname}/"
        graph = os.path.realpath(self.home / "graph")
        mounted = {mountpoint for mountpoint, _, _ in host.mounts()}  # read once, not once per dataset
        for name, mountpoint in self.zfs.children(self.fsname):
            id = name[len(prefix) :]
            if "/" in id:
                continue  # deeper datasets are not ours
            self._datasets.add(id)
            if not mountpoint.startswith(graph + "/"):
                continue
            if mountpoint == os.fspath(self._mountpoint(id)) and os.path.realpath(mountpoint) in mounted:
                log.info("zfs: %s is still mounted at %s; adopted", name, mountpoint)
                self._mounted.add(id)
            else:
                self.zfs.set(name, "mountpoint", "none")

    # -- names -------------------------------------------------------------------------------------

    def _dataset(self, id: str) -> str:
        if not id or "/" in id or "@" in id or id in (".", ".."):
            raise InvalidParameter(f"zfs: invalid layer id {id!r}")
        return f"{self.fsname}/{id}"

    def _mountpoint(self, id: str) -> Path:
        return self.home / "graph" / id

    # -- layers ------------------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        self._create(id, parent, opts, mount=False)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        """A container's layers are mounted right after they are made, so they are created mounted
        (one zfs call less per layer on a container start); the mount is idle until the first get."""
        self._create(id, parent, opts, mount=True)

    def _create(self, id: str, parent: str | None, opts: CreateOpts | None, mount: bool) -> None:
        assert self.zfs is not None
        mountpoint = self._mountpoint(id)
        props = {"mountpoint": os.fspath(mountpoint) if mount else "none"}
        for key, value in (opts.storage_opt if opts else {}).items():
            if key.lower() != "size":
                raise InvalidParameter(f"Unknown option {key}")
            try:
                props["quota"] = str(ram_in_bytes(value))
            except ValueError as exc:
                raise InvalidParameter(str(exc)) from None
        name = self._dataset(id)
        with self._locks(id):
            if id in self._datasets:
                raise Conflict(f"zfs: layer {id} already exists")
            if parent and parent not in self._datasets:
                raise NotFound(f"zfs: parent layer {parent} does not exist")
            if mount:
                mountpoint.mkdir(mode=0o755, exist_ok=True)
            if not parent:
                self.zfs.create(name, props)
            else:
                snapshot = f"{self._dataset(parent)}@{id}"
                self.zfs.snapshot(snapshot)
                try:
                    self.zfs.clone(snapshot, name, props)
                finally:  # deferred: the snapshot stays while the clone needs it
                    self.zfs.destroy_later(snapshot)
            self._datasets.add(id)
            if mount:
                self._wait_mounted(name, mountpoint)
                if not self.id_map.identity:
                    os.chown(mountpoint, *self.id_map.root())
                with self._guard:
                    self._mounted.add(id)

    def remove(self, id: str) -> None:
        assert self.zfs is not None
        name = self._dataset(id)
        self.zfs.settle()  # the snapshot marks of recent creates, before anything is destroyed
        with self._locks(id):
            if id not in self._datasets:
                return
            with self._guard:
                self._refs.pop(id, None)
            if id in self._mounted or host.is_mounted(self._mountpoint(id)):
                self._unmount(id, PUT_BUSY_SECONDS, force=True)
            try:
                self.zfs.destroy(name, recursive=True)
            except ZfsError:
                if self.zfs.exists(name):
                    raise
            self._datasets.discard(id)

    def get(self, id: str, mount_label: str = "") -> Path:
        name = self._dataset(id)
        mountpoint = self._mountpoint(id)
        with self._locks(id):
            if id not in self._datasets:
                raise NotFound(f"zfs: layer {id} does not exist")
            with self._guard:
                self._refs[id] = self._refs.get(id, 0) + 1
                if id in self._mounted:
                    return mountpoint
            try:
                mountpoint.mkdir(mode=0o755, exist_ok=True)
                self._mount(name, mountpoint)
            except BaseException:
                with self._guard:
                    self._refs[id] -= 1
                raise
            if not self.id_map.identity:
                # the first mount after creation: the dataset's root may still be owned by host root
                os.chown(mountpoint, *self.id_map.root())
            with self._guard:
                self._mounted.add(id)
        return mountpoint

    def put(self, id: str) -> None:
        with self._locks(id):
            with self._guard:
                count = self._refs.get(id, 0)
                if count > 1:
                    self._refs[id] = count - 1
                    return
                self._refs.pop(id, None)
                if not count or id not in self._mounted:
                    return  # a put without a get releases nothing
            try:
                self._unmount(id, PUT_BUSY_SECONDS)
            except ZfsError as exc:
                # still in use from outside (an open file, a bound socket): it stays mounted, idle,
                # and is unmounted by the next put, remove or cleanup
                log.debug("zfs: %s stays mounted: %s", id, exc)

    def _mount(self, name: str, mountpoint: Path) -> None:
        """Setting the mountpoint mounts; zfs-fuse may return before the mount is there, and files
        written meanwhile would land in the directory underneath: wait until the kernel shows it."""
        assert self.zfs is not None
        self.zfs.set(name, "mountpoint", os.fspath(mountpoint))
        self._wait_mounted(name, mountpoint)

    @staticmethod
    def _wait_mounted(name: str, mountpoint: Path) -> None:
        deadline = time.monotonic() + MOUNT_WAIT_SECONDS
        while not host.is_mounted(mountpoint):
            if time.monotonic() > deadline:
                raise SystemError(f"zfs: {name} did not mount at {mountpoint}")
            time.sleep(0.01)

    def _unmount(self, id: str, busy_seconds: float, force: bool = False) -> None:
        """``mountpoint=none`` unmounts (retrying zfs-fuse's transient "busy"). ``force``: when it stays
        busy, detach it (MNT_DETACH, as dockerd unmounts) so that removal can go on."""
        assert self.zfs is not None
        mountpoint = self._mountpoint(id)
        try:
            self.zfs.set(self._dataset(id), "mountpoint", "none", busy_seconds)
        except ZfsError:
            if not force:
                raise
            err = libc.umount2(mountpoint, libc.MNT_DETACH)
            if err not in (0, errno.EINVAL, errno.ENOENT):
                raise SystemError(f"zfs: unmounting {mountpoint}: {os.strerror(err)}") from None
            self.zfs.set(self._dataset(id), "mountpoint", "none")
        with self._guard:
            self._mounted.discard(id)
        deadline = time.monotonic() + MOUNT_WAIT_SECONDS
        while host.is_mounted(mountpoint) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            mountpoint.rmdir()
        except OSError:
            pass

    # -- diffs -------------------------------------------------------------------------------------

    def naive_entry_differs(self, id: str, parent: str) -> EntryDiffers:
        """zfs-fuse reports whole-second times, so a file rewritten with the same size within the second
        its parent's copy was written looks unchanged to the naive diff. Such ties are settled by
        content, except for files the layers did not touch: same inode and changed (ctime) before the
        oldest layer between ``parent`` and ``id`` was cloned."""
        if fsinfo.fs_magic(self.home) != fsinfo.FUSE_SUPER_MAGIC:
            return entry_differs  # kernel zfs keeps nanoseconds
        since = self._cloned_since(id, parent)

        def differs(old_path: str, old: os.stat_result, new_path: str, new: os.stat_result) -> bool:
            if entry_differs(old_path, old, new_path, new):
                return True
            if not stat.S_ISREG(new.st_mode) or new.st_mtime_ns % 1_000_000_000 or old.st_mtime_ns % 1_000_000_000:
                return False
            if old.st_ino == new.st_ino and new.st_ctime_ns // 1_000_000_000 < since:
                return False
            return not filecmp.cmp(old_path, new_path, shallow=False)

        return differs

    def _cloned_since(self, id: str, parent: str) -> int:
        """The creation time (seconds) of the oldest dataset on the chain from ``id`` down to ``parent``."""
        assert self.zfs is not None
        current, oldest = id, None
        for _ in range(1000):
            props = self.zfs.get(self._dataset(current), ["creation", "origin"])
            oldest = int(props.get("creation", "0"))
            origin = props.get("origin", "-")
            below = origin.split("@")[0].rsplit("/", 1)[-1] if "@" in origin else ""
            if not below or below == parent:
                break
            current = below
        return oldest or 0

    def exists(self, id: str) -> bool:
        return id in self._datasets

    def status(self) -> list[tuple[str, str]]:
        assert self.zfs is not None
        pool = self.fsname.split("/")[0]
        try:
            health = self.zfs.pool_health(pool)
        except ZfsError as exc:
            pool, health = f"error while getting pool information {exc}", "not available"
        try:
            props = self.zfs.get(self.fsname, ["used", "available", "quota", "compression"])
        except ZfsError as exc:
            props = {"used": str(exc)}
        quota = props.get("quota", "0")
        return [
            ("Zpool", pool),
            ("Zpool Health", health),
            ("Parent Dataset", self.fsname),
            ("Space Used By Parent", props.get("used", "")),
            ("Space Available", props.get("available", "")),
            ("Parent Quota", "no" if quota in ("0", "-", "none") else quota),
            ("Compression", props.get("compression", "")),
            ("Backend", self.zfs.describe()),
        ]

    def metadata(self, id: str) -> dict[str, str]:
        return {"Dataset": self._dataset(id), "Mountpoint": os.fspath(self._mountpoint(id))}

    def cleanup(self) -> None:
        """Unmount every layer still mounted (references a shutdown left behind)."""
        if self.zfs is not None:
            self.zfs.settle()
        with self._guard:
            mounted = sorted(self._mounted)
            self._refs.clear()
        for id in mounted:
            with self._locks(id):
                self._unmount(id, PUT_BUSY_SECONDS, force=True)
