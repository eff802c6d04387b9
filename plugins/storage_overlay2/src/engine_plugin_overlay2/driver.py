"""The overlay2 storage driver: kernel overlayfs with moby's on-disk layout.

Under ``home`` (``<data-root>/overlay2``)::

    <id>/diff        the layer's own files (the overlay upper dir)
    <id>/link        its 26-character short name
    <id>/lower       ``l/<short>:l/<short>...`` of its parents, nearest first (absent for a base layer)
    <id>/work        overlay's work dir (layers with a parent)
    <id>/merged      the mount point while mounted
    <id>/committed   marks a layer that has children: it is mounted read-only from then on
    l/<short>        symlink to ``../<id>/diff``, so 128 lowers fit in one page of mount options

A base layer is never mounted (``get`` returns its ``diff``). Mounts are counted: the first ``get``
mounts, the last ``put`` unmounts and removes ``merged``. The native diff reads the upper dir when
the host probe says it is faithful and the layer sits directly on ``parent``; otherwise the naive
diff does the work.
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Self

from engine.drivers import DRIVER_API_VERSION, layers
from engine.drivers.locks import KeyedLocks
from engine.drivers.naive_diff import NaiveDiffMixin
from engine.drivers.storage import IDENTITY, Change, CreateOpts, IdMap, StorageDriver, SupportsQuota
from engine.drivers.units import parse_size
from engine.errors import ConfigError, Conflict, InvalidParameter, NotFound, SystemError
from engine_plugin_overlay2 import checks, mounts
from engine_plugin_overlay2.native import dir_size, overlay_changes
from engine_plugin_overlay2.quota import ProjectQuota

log = logging.getLogger(__name__)

LINK_DIR = "l"
MAX_DEPTH = 128  # lowers per mount: what fits in a page with 26-character links
ID_LENGTH = 26


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise InvalidParameter(f'overlay2: invalid value for {key}: strconv.ParseBool: parsing "{value}": invalid syntax')


def _write_new(path: Path, text: str) -> None:
    """A new file of a layer being created: written and fsynced once. No temp file and rename: nothing
    reads a layer before create() returns, and the caller records it only after that."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_link_id() -> str:
    """26 random base32 characters, as moby names the ``l/`` links."""
    return base64.b32encode(os.urandom(20)).decode()[:ID_LENGTH]


class Overlay2StorageDriver(NaiveDiffMixin, StorageDriver, SupportsQuota):
    name = "overlay2"
    API_VERSION = DRIVER_API_VERSION

    def __init__(self, home: Path, options: Mapping[str, str], id_map: IdMap) -> None:
        super().__init__(home, options, id_map)
        self.backing_fs = "<unknown>"
        self.quota_size = parse_size(options["size"]) if "size" in options else 0
        self.userxattr = False
        self.xattr_prefix = "trusted.overlay."
        self.mount_prefix = ""  # "index=off," / "userxattr," as the kernel needs
        self.native_diff_problem: str | None = None
        self.quota: ProjectQuota | None = None  # xfs mounted with pquota only
        self.quota_error = "backing filesystem is not xfs"
        self._refs: dict[str, int] = {}
        self._locks = KeyedLocks()  # one per layer id
        self._guard = threading.Lock()

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        for key, value in options.items():
            if key == "size":
                try:
                    parse_size(value)
                except ValueError as exc:
                    raise InvalidParameter(f"overlay2: {exc}") from None
            elif key == "override_kernel_check":  # accepted and ignored, as moby does since 18.09
                _parse_bool(key, value)
            else:
                raise InvalidParameter(f"overlay2: unknown option {key}")

    @classmethod
    def init(cls, home: Path, options: Mapping[str, str], id_map: IdMap = IDENTITY) -> Self:
        cls.validate_options(options)
        home.mkdir(parents=True, exist_ok=True, mode=0o710)
        driver = cls(home, options, id_map)
        driver.backing_fs = checks.check_host(home)
        if driver.quota_size and driver.backing_fs != "xfs":
            raise ConfigError(
                f"Storage Option overlay2.size only supported for backingFS XFS. Found {driver.backing_fs}"
            )
        if driver.backing_fs == "xfs":
            driver._setup_quota()
        if driver.quota_size and driver.quota is None:
            raise ConfigError(
                "Storage option overlay2.size not supported. Filesystem does not support Project Quota: "
                + driver.quota_error
            )
        (home / LINK_DIR).mkdir(mode=0o700, exist_ok=True)
        driver._unmount_stale()
        checks.remove_probe_leftovers(home)
        if layers.in_user_namespace():
            driver.userxattr = True
            driver.xattr_prefix = "user.overlay."
        driver.mount_prefix = checks.index_off() + ("userxattr," if driver.userxattr else "")
        checks.probe_multiple_lowers(home, driver.mount_prefix)
        driver.native_diff_problem = checks.probe_native_diff(home, driver.mount_prefix, driver.xattr_prefix)
        if driver.native_diff_problem:
            log.warning(
                "Not using native diff for overlay2, this may cause degraded performance for building images: %s",
                driver.native_diff_problem,
            )
        return driver

    def _setup_quota(self) -> None:
        quota = ProjectQuota(self.home)
        try:
            quota.probe()
        except OSError as exc:
            self.quota_error = exc.strerror or str(exc)
            log.debug("overlay2: no project quotas on %s: %s", self.home, exc)
            return
        self.quota = quota

    def _unmount_stale(self) -> None:
        """Mounts a killed daemon left under home: nothing references them in this process."""
        for mountpoint in reversed(mounts.mounts_under(self.home)):
            if os.path.realpath(mountpoint) == os.path.realpath(self.home):
                continue
            log.info("overlay2: unmounting stale mount %s", mountpoint)
            mounts.unmount(mountpoint)
            if mountpoint.endswith("/merged"):
                try:
                    os.rmdir(mountpoint)
                except OSError:
                    pass

    # -- paths -------------------------------------------------------------------------------------

    def _dir(self, id: str) -> Path:
        if not id or "/" in id or id in (".", "..", LINK_DIR) or id.startswith("engine-probe-"):
            raise InvalidParameter(f"overlay2: invalid layer id {id!r}")
        return self.home / id

    def _lower_links(self, id: str) -> list[str] | None:
        """The ``lower`` file's entries (``l/<short>``), or None for a base layer."""
        try:
            text = (self._dir(id) / "lower").read_text()
        except FileNotFoundError:
            return None
        return [part for part in text.split(":") if part]

    def _lower_dirs(self, id: str) -> list[str]:
        """Absolute ``diff`` dirs of the parents, nearest first."""
        out = []
        for link in self._lower_links(id) or []:
            target = os.readlink(self.home / link)  # ../<id>/diff
            out.append(os.path.normpath(os.path.join(self.home, LINK_DIR, target)))
        return out

    def _is_parent(self, id: str, parent: str | None) -> bool:
        """Whether ``parent`` is the layer directly below ``id`` (the native diff's precondition)."""
        try:
            lowers = self._lower_dirs(id)
        except OSError:
            return False
        if not parent:
            return not lowers
        return bool(lowers) and os.path.dirname(lowers[0]) == os.fspath(self._dir(parent))

    # -- layers ------------------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        if opts and "size" in opts.storage_opt:
            raise InvalidParameter("--storage-opt size is only supported for ReadWrite Layers")
        self._create(id, parent, opts)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        storage_opt = dict(opts.storage_opt) if opts else {}
        if "size" not in storage_opt and self.quota_size:
            storage_opt["size"] = str(self.quota_size)  # the daemon-wide default
        if "size" in storage_opt and self.quota is None:
            raise InvalidParameter("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
        self._create(id, parent, CreateOpts(storage_opt=storage_opt))

    def _create(self, id: str, parent: str | None, opts: CreateOpts | None) -> None:
        size = 0
        for key, value in (opts.storage_opt if opts else {}).items():
            if key != "size":
                raise InvalidParameter(f"Unknown option {key}")
            try:
                size = parse_size(value)
            except ValueError as exc:
                raise InvalidParameter(str(exc)) from None
        layer = self._dir(id)
        parent_dir = self._dir(parent) if parent else None
        if parent_dir is not None and not parent_dir.is_dir():
            raise NotFound(f"overlay2: parent layer {parent} does not exist")
        lower = self._lower_for(parent) if parent else ""
        try:
            layer.mkdir(mode=0o701)
        except FileExistsError:
            raise Conflict(f"overlay2: layer {id} already exists") from None
        root_uid, root_gid = self.id_map.root()
        link = ""
        try:
            if size and self.quota is not None:
                self.quota.set_quota(layer, size)  # before diff/work exist: they inherit the project
            diff = layer / "diff"
            diff.mkdir(mode=0o755)
            os.chown(diff, root_uid, root_gid)
            link = self._make_link(id)
            _write_new(layer / "link", link)
            if parent_dir is None:
                return
            work = layer / "work"
            work.mkdir(mode=0o700)
            os.chown(work, root_uid, root_gid)
            committed = parent_dir / "committed"
            if not committed.exists():
                committed.touch(mode=0o600)
            _write_new(layer / "lower", lower)
        except BaseException:
            if link:
                (self.home / LINK_DIR / link).unlink(missing_ok=True)
            shutil.rmtree(layer, ignore_errors=True)
            raise

    def _make_link(self, id: str) -> str:
        while True:
            link = generate_link_id()
            try:
                os.symlink(f"../{id}/diff", self.home / LINK_DIR / link)
            except FileExistsError:
                continue
            return link

    def _lower_for(self, parent: str) -> str:
        """``l/<parent link>`` followed by the parent's own lowers; at most MAX_DEPTH."""
        parent_link = (self._dir(parent) / "link").read_text().strip()
        lowers = [f"{LINK_DIR}/{parent_link}", *(self._lower_links(parent) or [])]
        if len(lowers) > MAX_DEPTH:
            raise InvalidParameter("max depth exceeded")
        return ":".join(lowers)

    def remove(self, id: str) -> None:
        layer = self._dir(id)
        with self._locks(id):
            try:
                link = (layer / "link").read_text().strip()
            except FileNotFoundError:
                link = ""
            if link and "/" not in link:
                (self.home / LINK_DIR / link).unlink(missing_ok=True)
            self._refs.pop(id, None)
            merged = layer / "merged"
            if os.path.ismount(merged):
                mounts.unmount(merged)
            if layer.exists():
                shutil.rmtree(layer)

    def get(self, id: str, mount_label: str = "") -> Path:
        layer = self._dir(id)
        if not layer.is_dir():
            raise NotFound(f"overlay2: layer {id} does not exist")
        diff = layer / "diff"
        lowers = self._lower_links(id)
        if lowers is None:
            return diff  # a base layer: nothing to stack
        merged = layer / "merged"
        with self._locks(id):
            count = self._refs.get(id, 0)
            if count:
                self._refs[id] = count + 1
                return merged
            self._mount(id, layer, lowers, merged, mount_label)
            self._refs[id] = 1
        return merged

    def _mount(self, id: str, layer: Path, lowers: list[str], merged: Path, mount_label: str) -> None:
        root_uid, root_gid = self.id_map.root()
        merged.mkdir(mode=0o700, exist_ok=True)
        os.chown(merged, root_uid, root_gid)
        readonly = (layer / "committed").exists()
        absolute = [os.path.join(self.home, link) for link in lowers]
        data = self._mount_data(readonly, str(layer / "diff"), absolute, str(layer / "work"), mount_label)
        try:
            if len(data) < mounts.PAGE_SIZE:
                mounts.mount("overlay", merged, "overlay", 0, data)
            else:  # relative to home: l/<short> links instead of full paths
                data = self._mount_data(readonly, f"{id}/diff", lowers, f"{id}/work", mount_label)
                if len(data) >= mounts.PAGE_SIZE:
                    raise SystemError(f"cannot mount layer, mount label too large {len(data)}")
                mounts.mount_relative(self.home, "overlay", f"{id}/merged", "overlay", 0, data)
        except OSError as exc:
            try:
                merged.rmdir()
            except OSError:
                pass
            raise SystemError(f"error creating overlay mount to {merged}: {exc.strerror or exc}") from None
        if not readonly:
            # overlay inside a user namespace needs the mapped root to own work/work
            work = layer / "work" / "work"
            if work.exists():
                os.chown(work, root_uid, root_gid)

    def _mount_data(self, readonly: bool, diff: str, lowers: list[str], work: str, mount_label: str) -> str:
        if readonly:
            data = f"{self.mount_prefix}lowerdir={diff}:{':'.join(lowers)}"
        else:
            data = f"{self.mount_prefix}lowerdir={':'.join(lowers)},upperdir={diff},workdir={work}"
        if mount_label:
            data += f',context="{mount_label}"'
        return data

    def put(self, id: str) -> None:
        layer = self._dir(id)
        with self._locks(id):
            count = self._refs.get(id, 0) - 1
            if count > 0:
                self._refs[id] = count
                return
            self._refs.pop(id, None)
            if self._lower_links(id) is None:
                return  # never mounted
            merged = layer / "merged"
            mounts.unmount(merged)
            try:
                merged.rmdir()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.debug("overlay2: failed to remove %s: %s", merged, exc)

    def exists(self, id: str) -> bool:
        try:
            return self._dir(id).is_dir()
        except InvalidParameter:
            return False

    def status(self) -> list[tuple[str, str]]:
        return [
            ("Backing Filesystem", self.backing_fs),
            ("Supports d_type", "true"),
            ("Native Overlay Diff", "false" if self.native_diff_problem else "true"),
            ("userxattr", "true" if self.userxattr else "false"),
        ]

    def metadata(self, id: str) -> dict[str, str]:
        layer = self._dir(id)
        if not layer.is_dir():
            raise NotFound(f"overlay2: layer {id} does not exist")
        data = {"WorkDir": str(layer / "work"), "MergedDir": str(layer / "merged"), "UpperDir": str(layer / "diff")}
        lowers = self._lower_dirs(id)
        if lowers:
            data["LowerDir"] = ":".join(lowers)
        return data

    def cleanup(self) -> None:
        with self._guard:
            self._refs.clear()
        for mountpoint in reversed(mounts.mounts_under(self.home)):
            if os.path.realpath(mountpoint) != os.path.realpath(self.home):
                mounts.unmount(mountpoint)

    # -- diffs: native where the upper dir tells the whole story --------------------------------------

    def _native(self, id: str, parent: str | None) -> bool:
        return self.native_diff_problem is None and self._is_parent(id, parent)

    def _whiteouts(self) -> layers.OverlayWhiteouts:
        return layers.OverlayWhiteouts(self.xattr_prefix + "opaque")

    def diff(self, id: str, parent: str | None, out: BinaryIO) -> None:
        if not self._native(id, parent):
            super().diff(id, parent, out)
            return
        layers.tar_tree(
            self._dir(id) / "diff",
            out,
            id_map=self.id_map,
            overlay_whiteouts=True,
            overlay_xattr_prefix=self.xattr_prefix,
        )

    def changes(self, id: str, parent: str | None) -> list[Change]:
        if not self._native(id, parent):
            return super().changes(id, parent)
        return overlay_changes(self._lower_dirs(id), self._dir(id) / "diff", self.xattr_prefix + "opaque")

    def apply_diff(self, id: str, parent: str | None, diff: BinaryIO) -> int:
        if not self._is_parent(id, parent):
            return super().apply_diff(id, parent, diff)
        upper = self._dir(id) / "diff"
        layers.apply_layer(upper, diff, self._whiteouts(), self.id_map)
        return dir_size(upper)

    def diff_size(self, id: str, parent: str | None) -> int:
        if not self._native(id, parent):
            return super().diff_size(id, parent)
        return dir_size(self._dir(id) / "diff")
