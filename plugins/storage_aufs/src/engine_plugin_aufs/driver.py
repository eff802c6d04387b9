"""The aufs storage driver, as dockerd 19.03 had it (deprecated; loads only when named explicitly).

Under ``home`` (``<data-root>/aufs``)::

    diff/<id>     the layer's own files: its aufs branch, whiteouts as ``.wh.<name>`` files
    layers/<id>   the ids of its parents, nearest first, one per line (empty for a base layer)
    mnt/<id>      where the layer is mounted while in use

A base layer is never mounted (``get`` returns its ``diff``). Any other layer is an aufs mount of
its ``diff`` (rw) over its parents' ``diff`` dirs (``ro+wh``); mounts are counted. Diffs, changes and
sizes read the ``diff`` dir directly when the parent asked about is the layer's own parent.

No upstream kernel has aufs, so :meth:`init` checks ``/proc/filesystems`` and refuses with the reason.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Self

from engine.drivers import DRIVER_API_VERSION, fsinfo, layers, libc
from engine.drivers.locks import KeyedLocks
from engine.drivers.naive_diff import NaiveDiffMixin
from engine.drivers.storage import IDENTITY, Change, CreateOpts, IdMap, StorageDriver
from engine.errors import Conflict, IncompatibleFS, InvalidParameter, NotFound, PrerequisitesNotMet, SystemError
from engine_plugin_aufs import branches, host, native

log = logging.getLogger(__name__)

SUBDIRS = ("mnt", "diff", "layers")


class AufsStorageDriver(NaiveDiffMixin, StorageDriver):
    name = "aufs"
    API_VERSION = DRIVER_API_VERSION

    def __init__(self, home: Path, options: Mapping[str, str], id_map: IdMap) -> None:
        super().__init__(home, options, id_map)
        self.backing_fs = "<unknown>"
        self.dirperm1 = False
        self._refs: dict[str, int] = {}
        self._locks = KeyedLocks()
        self._guard = threading.Lock()

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        for key in options:  # dockerd's aufs had no options
            raise InvalidParameter(f"aufs: unknown option aufs.{key}")

    @classmethod
    def init(cls, home: Path, options: Mapping[str, str], id_map: IdMap = IDENTITY) -> Self:
        cls.validate_options(options)
        problem = host.aufs_problem()
        if problem:
            raise PrerequisitesNotMet(problem)
        probe = fsinfo.existing_ancestor(home)
        backing = fsinfo.fs_name(probe)
        if backing in ("btrfs", "aufs"):
            raise IncompatibleFS(f"AUFS is not supported over {backing}")
        driver = cls(home, options, id_map)
        driver.backing_fs = backing
        driver.setup_dirs()
        driver.dirperm1 = host.probe_dirperm1(home)
        driver._unmount_stale()
        return driver

    def setup_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        uid, gid = self.id_map.root()
        for sub in SUBDIRS:
            path = self.home / sub
            path.mkdir(mode=0o700, exist_ok=True)
            os.chown(path, uid, gid)

    def _unmount_stale(self) -> None:
        for mountpoint in reversed(host.mounted_under(self.home / "mnt")):
            log.info("aufs: unmounting stale mount %s", mountpoint)
            libc.umount2(mountpoint, libc.MNT_DETACH)

    # -- paths -------------------------------------------------------------------------------------

    def _check(self, id: str) -> str:
        if not id or "/" in id or id in (".", "..") or id.endswith("-removing"):
            raise InvalidParameter(f"aufs: invalid layer id {id!r}")
        return id

    def diff_dir(self, id: str) -> Path:
        return self.home / "diff" / self._check(id)

    def parent_ids(self, id: str) -> list[str]:
        """The ``layers/<id>`` file: parents nearest first."""
        try:
            text = (self.home / "layers" / self._check(id)).read_text()
        except FileNotFoundError:
            raise NotFound(f"aufs: layer {id} does not exist") from None
        return [line for line in text.splitlines() if line]

    def parent_branches(self, id: str) -> list[Path]:
        return [self.home / "diff" / parent for parent in self.parent_ids(id)]

    # -- layers ------------------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        self._create(id, parent, opts)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        self._create(id, parent, opts)

    def _create(self, id: str, parent: str | None, opts: CreateOpts | None) -> None:
        if opts and opts.storage_opt:
            raise InvalidParameter("--storage-opt is not supported for aufs")
        self._check(id)
        if self.exists(id):
            raise Conflict(f"aufs: layer {id} already exists")
        chain = [parent, *self.parent_ids(parent)] if parent else []
        uid, gid = self.id_map.root()
        made: list[Path] = []
        try:
            for sub in ("mnt", "diff"):
                path = self.home / sub / id
                path.mkdir(mode=0o755)
                made.append(path)
                os.chmod(path, 0o755)
                os.chown(path, uid, gid)
            record = self.home / "layers" / id
            record.write_text("".join(f"{pid}\n" for pid in chain))
            made.append(record)
        except BaseException:
            for path in reversed(made):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            raise

    def remove(self, id: str) -> None:
        self._check(id)
        with self._locks(id):
            with self._guard:
                self._refs.pop(id, None)
            mountpoint = self.home / "mnt" / id
            if host.is_mounted(mountpoint):
                self._unmount(mountpoint)
            # renamed first, as dockerd does: a half-removed layer never looks like a layer
            for sub in ("mnt", "diff"):
                path = self.home / sub / id
                if path.exists():
                    doomed = path.with_name(f"{id}-removing")
                    os.rename(path, doomed)
                    shutil.rmtree(doomed)
            (self.home / "layers" / id).unlink(missing_ok=True)

    def get(self, id: str, mount_label: str = "") -> Path:
        parents = self.parent_branches(id)
        if not parents:
            return self.diff_dir(id)  # a base layer: nothing to stack
        mountpoint = self.home / "mnt" / id
        with self._locks(id):
            with self._guard:
                count = self._refs.get(id, 0)
                if count:
                    self._refs[id] = count + 1
                    return mountpoint
            self._mount(self.diff_dir(id), parents, mountpoint, mount_label)
            with self._guard:
                self._refs[id] = 1
        return mountpoint

    def _mount(self, rw: Path, parents: list[Path], target: Path, mount_label: str) -> None:
        data, appends = branches.mount_options(
            os.fspath(rw), [os.fspath(p) for p in parents], mount_label, self.dirperm1
        )
        err = libc.mount("none", target, "aufs", 0, data)
        if err:
            raise SystemError(f"aufs: mount target={target} data={data}: {os.strerror(err)}")
        for append in appends:
            err = libc.mount("none", target, "aufs", libc.MS_REMOUNT, append)
            if err:
                self._unmount(target)
                raise SystemError(f"aufs: remount target={target} data={append}: {os.strerror(err)}")

    @staticmethod
    def _unmount(target: Path) -> None:
        # dockerd ran `auplink <target> flush` first; aufs-tools is not packaged in Debian 12 any more
        if shutil.which("auplink"):
            subprocess.run(["auplink", os.fspath(target), "flush"], capture_output=True)
        err = libc.umount2(target, libc.MNT_DETACH)
        if err not in (0, errno.EINVAL, errno.ENOENT):
            raise SystemError(f"aufs: unmounting {target}: {os.strerror(err)}")

    def put(self, id: str) -> None:
        with self._locks(id):
            with self._guard:
                count = self._refs.get(id, 0)
                if count > 1:
                    self._refs[id] = count - 1
                    return
                self._refs.pop(id, None)
            if count:
                self._unmount(self.home / "mnt" / id)

    def exists(self, id: str) -> bool:
        return (self.home / "layers" / self._check(id)).exists()

    def status(self) -> list[tuple[str, str]]:
        try:
            dirs = len(os.listdir(self.home / "layers"))
        except OSError:
            dirs = 0
        return [
            ("Root Dir", os.fspath(self.home)),
            ("Backing Filesystem", self.backing_fs),
            ("Dirs", str(dirs)),
            ("Dirperm1 Supported", "true" if self.dirperm1 else "false"),
        ]

    def metadata(self, id: str) -> dict[str, str]:
        return {}  # dockerd's aufs reports no GraphDriver data

    def cleanup(self) -> None:
        with self._guard:
            mounted = list(self._refs)
            self._refs.clear()
        for id in mounted:
            self._unmount(self.home / "mnt" / id)

    # -- diffs: the branch itself when ``parent`` is the layer's own parent --------------------------

    def _is_parent(self, id: str, parent: str | None) -> bool:
        parents = self.parent_ids(id)
        return (parents[0] == parent) if parents else not parent

    def diff(self, id: str, parent: str | None, out: BinaryIO) -> None:
        if not self._is_parent(id, parent):
            return super().diff(id, parent, out)
        native.tar_diff(self.diff_dir(id), out, self.id_map)

    def changes(self, id: str, parent: str | None) -> list[Change]:
        if not self._is_parent(id, parent):
            return super().changes(id, parent)
        return native.aufs_changes(self.parent_branches(id), self.diff_dir(id))

    def apply_diff(self, id: str, parent: str | None, diff: BinaryIO) -> int:
        """Into the branch as it comes: ``.wh.`` entries stay files, which is aufs' own whiteout form."""
        target = self.diff_dir(id)
        layers.apply_layer(target, diff, whiteouts=None, id_map=self.id_map)
        return native.dir_size(target)

    def diff_size(self, id: str, parent: str | None) -> int:
        if not self._is_parent(id, parent):
            return super().diff_size(id, parent)
        return native.dir_size(self.diff_dir(id))
