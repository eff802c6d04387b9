"""The btrfs storage driver: every layer is a btrfs subvolume, a child a writable snapshot of its parent.

Under ``home`` (``<data-root>/btrfs``, dockerd's layout)::

    subvolumes/<id>   the layer: a subvolume (base layer) or a snapshot of its parent's
    quotas/<id>       the layer's size limit in bytes, when it has one (``--storage-opt size=``)

Nothing is mounted: ``get`` returns the subvolume's directory. Snapshots are O(1) and share blocks,
so a container start costs two snapshots (a transaction commit each: that is the whole cost, no
existence stat or qgroup call is made around them when no size is set). Diffs are the naive ones (as in dockerd). Quotas are btrfs
qgroups: enabled on the filesystem when ``btrfs.min_space`` is set or the first layer gets a size.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from engine.drivers import DRIVER_API_VERSION, fsinfo
from engine.drivers.naive_diff import NaiveDiffMixin
from engine.drivers.storage import IDENTITY, CreateOpts, IdMap, StorageDriver, SupportsQuota
from engine.drivers.units import human_size, ram_in_bytes
from engine.errors import Conflict, InvalidParameter, NotFound, PrerequisitesNotMet, SystemError
from engine_plugin_btrfs import host, qgroup

log = logging.getLogger(__name__)


def _size_option(key: str, value: str) -> int:
    try:
        return ram_in_bytes(value)
    except ValueError as exc:
        raise InvalidParameter(f"btrfs: invalid value for {key}: {exc}") from None


def _import_btrfsutil() -> Any:
    try:
        import btrfsutil
    except ImportError as exc:
        raise PrerequisitesNotMet(
            f"btrfs: the btrfsutil module is not importable ({exc}): install Debian's python3-btrfsutil "
            "(and use a venv with system site-packages) or `pip install 'btrfsutil<6.14'`"
        ) from None
    return btrfsutil


class BtrfsStorageDriver(NaiveDiffMixin, StorageDriver, SupportsQuota):
    name = "btrfs"
    API_VERSION = DRIVER_API_VERSION

    def __init__(self, home: Path, options: Mapping[str, str], id_map: IdMap) -> None:
        super().__init__(home, options, id_map)
        self.min_space = _size_option("btrfs.min_space", options["min_space"]) if "min_space" in options else 0
        self.btrfsutil: Any = None  # the module, once init() found it
        self.quota_enabled = False
        self._quota_lock = threading.Lock()
        self._stale_qgroups: set[int] = set()  # of removed layers, dropped once the kernel lets us
        self._sized: set[str] = set()  # layers with a quotas/<id> file: get() reads only those
        self._build_version = ""
        self._library_version: int | None = None

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        for key, value in options.items():
            if key.lower() == "min_space":
                _size_option("btrfs.min_space", value)
            else:
                raise InvalidParameter(f"btrfs: unknown option btrfs.{key}")

    @classmethod
    def init(cls, home: Path, options: Mapping[str, str], id_map: IdMap = IDENTITY) -> Self:
        options = {key.lower(): value for key, value in options.items()}
        cls.validate_options(options)
        probe = fsinfo.existing_ancestor(home)
        magic = fsinfo.fs_magic(probe)
        if magic != fsinfo.BTRFS_SUPER_MAGIC:
            raise PrerequisitesNotMet(
                f"prerequisites for driver not satisfied (wrong filesystem?): {probe} is not on btrfs "
                f"(filesystem magic {magic:#x})"
            )
        module = _import_btrfsutil()
        home.mkdir(parents=True, exist_ok=True, mode=0o701)
        driver = cls(home, options, id_map)
        driver.btrfsutil = module
        uid, gid = id_map.root()
        for sub in ("subvolumes", "quotas"):
            (home / sub).mkdir(mode=0o701 if sub == "subvolumes" else 0o700, exist_ok=True)
        os.chown(home / "subvolumes", uid, gid)
        driver._sized = set(os.listdir(home / "quotas"))
        if driver.min_space:
            driver._enable_quota()
        driver._build_version = host.build_version()
        driver._library_version = host.library_version()
        return driver

    def _enable_quota(self) -> None:
        with self._quota_lock:
            if self.quota_enabled:
                return
            try:
                qgroup.enable(self.home)
            except OSError as exc:
                raise SystemError(f"Failed to enable btrfs quota for {self.home}: {exc.strerror}") from None
            self.quota_enabled = True

    # -- paths -------------------------------------------------------------------------------------

    def _dir(self, id: str) -> Path:
        if not id or "/" in id or id in (".", ".."):
            raise InvalidParameter(f"btrfs: invalid layer id {id!r}")
        return self.home / "subvolumes" / id

    def _quota_file(self, id: str) -> Path:
        return self.home / "quotas" / id

    # -- layers ------------------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        self._create(id, parent, opts)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        self._create(id, parent, opts)

    def _create(self, id: str, parent: str | None, opts: CreateOpts | None) -> None:
        size = 0
        for key, value in (opts.storage_opt if opts else {}).items():
            if key.lower() != "size":
                raise InvalidParameter(f"Unknown option {key}")
            try:
                size = ram_in_bytes(value)
            except ValueError as exc:
                raise InvalidParameter(str(exc)) from None
        if size and self.min_space and size < self.min_space:
            raise InvalidParameter(f"btrfs: storage size cannot be less than {human_size(self.min_space)}")
        target = self._dir(id)
        source = self._dir(parent) if parent else None
        bu = self.btrfsutil
        # no existence checks up front: the ioctl's own EEXIST/ENOENT say it (a container start is two
        # of these, and the snapshot's transaction commit is all the time they should take)
        try:
            if source is not None:
                bu.create_snapshot(os.fspath(source), os.fspath(target))
            else:
                bu.create_subvolume(os.fspath(target))
                os.chmod(target, 0o755)
                uid, gid = self.id_map.root()
                if (uid, gid) != (0, 0):
                    os.chown(target, uid, gid)
        except bu.BtrfsUtilError as exc:
            if exc.errno == errno.EEXIST or os.path.lexists(target):
                raise Conflict(f"btrfs: layer {id} already exists") from None
            if source is not None and not source.is_dir():
                raise NotFound(f"btrfs: parent layer {parent} does not exist") from None
            raise SystemError(f"btrfs: creating layer {id}: {exc}") from None
        if not size:
            return
        try:
            self._set_size(target, size)
            self._quota_file(id).write_text(str(size))
            self._sized.add(id)
        except BaseException:
            self._delete(target)
            raise

    def _set_size(self, subvolume: Path, size: int) -> None:
        self._enable_quota()
        try:
            qgroup.limit(subvolume, size)
        except OSError as exc:
            raise SystemError(f"Failed to limit qgroup for {subvolume}: {exc.strerror}") from None

    def remove(self, id: str) -> None:
        target = self._dir(id)
        if target.exists():
            self._delete(target)
        self._quota_file(id).unlink(missing_ok=True)
        self._sized.discard(id)

    def _delete(self, target: Path) -> None:
        bu = self.btrfsutil
        try:
            if not bu.is_subvolume(os.fspath(target)):
                shutil.rmtree(target)
                return
            subvolume_id = bu.subvolume_id(os.fspath(target))
            # a container may have made subvolumes (and read-only snapshots) inside its layer
            for path, _ in bu.SubvolumeIterator(os.fspath(target), post_order=True):
                nested = os.fspath(target / path)
                if bu.get_subvolume_read_only(nested):
                    bu.set_subvolume_read_only(nested, False)
            bu.delete_subvolume(os.fspath(target), recursive=True)
        except bu.BtrfsUtilError as exc:
            raise SystemError(f"btrfs: removing {target.name}: {exc}") from None
        if self.quota_enabled:
            with self._quota_lock:
                self._stale_qgroups.add(subvolume_id)
            self._drop_stale_qgroups()

    def _drop_stale_qgroups(self) -> None:
        """Destroy the qgroups of removed layers. The kernel refuses (EBUSY) while the subvolume's
        blocks are still being freed in the background, so refusals are kept and tried again at the
        next removal and at cleanup; a stale qgroup limits nothing, it only shows in `qgroup show`."""
        with self._quota_lock:
            for subvolume_id in sorted(self._stale_qgroups):
                try:
                    qgroup.destroy(self.home, subvolume_id)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        log.debug("btrfs: qgroup 0/%s not destroyed yet: %s", subvolume_id, exc)
                        continue
                self._stale_qgroups.discard(subvolume_id)

    def get(self, id: str, mount_label: str = "") -> Path:
        target = self._dir(id)
        if not target.is_dir():
            raise NotFound(f"btrfs: layer {id} does not exist")
        if id in self._sized:  # as dockerd: the limit is set again, should quotas have been disabled meanwhile
            size = int(self._quota_file(id).read_text() or 0)
            if self.min_space and size < self.min_space:
                raise InvalidParameter(f"btrfs: storage size cannot be less than {human_size(self.min_space)}")
            self._set_size(target, size)
        return target

    def put(self, id: str) -> None:
        """Nothing is mounted, so nothing to release."""

    def exists(self, id: str) -> bool:
        return self._dir(id).is_dir()

    def status(self) -> list[tuple[str, str]]:
        status = []
        if self._build_version:
            status.append(("Build Version", self._build_version))
        if self._library_version is not None:
            status.append(("Library Version", str(self._library_version)))
        return status

    def metadata(self, id: str) -> dict[str, str]:
        return {}  # dockerd's btrfs driver reports no GraphDriver data

    def cleanup(self) -> None:
        """Nothing is mounted; qgroups of removed layers are dropped if the kernel lets us by now."""
        if self._stale_qgroups:
            self.btrfsutil.sync(os.fspath(self.home))  # lets the cleaner free the deleted subvolumes' blocks
            self._drop_stale_qgroups()
