"""The ``vfs`` storage driver: every layer is a full copy of its parent. Works on any filesystem.

Layout (moby's): ``<home>/dir/<id>``. A child starts as ``cp -a --reflink=auto`` of its parent
(hardlinks, xattrs, devices, ownership and times kept; blocks shared where the filesystem can
reflink). Nothing is mounted, so ``get``/``put`` only count references. Diffs are the naive ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.naive_diff import NaiveDiffMixin
from engine.drivers.storage import IDENTITY, CreateOpts, IdMap, StorageDriver
from engine.errors import Conflict, InvalidParameter, NotFound, SystemError


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the contents and the metadata of directory ``src`` onto the existing directory ``dst``."""
    proc = subprocess.run(
        ["cp", "-a", "--reflink=auto", "--", f"{src}/.", f"{dst}/"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemError(f"vfs: copying layer {src.name}: {proc.stderr.strip()}")


class VfsStorageDriver(NaiveDiffMixin, StorageDriver):
    name = "vfs"
    API_VERSION = DRIVER_API_VERSION

    def __init__(self, home: Path, options: Mapping[str, str], id_map: IdMap) -> None:
        super().__init__(home, options, id_map)
        self._refs: dict[str, int] = {}  # get() references, for symmetry with mounting drivers
        self._lock = threading.Lock()

    @classmethod
    def init(cls, home: Path, options: Mapping[str, str], id_map: IdMap = IDENTITY) -> Self:
        driver = super().init(home, options, id_map)
        (home / "dir").mkdir(mode=0o700, exist_ok=True)
        return driver

    def _dir(self, id: str) -> Path:
        if not id or "/" in id or id in (".", ".."):
            raise InvalidParameter(f"vfs: invalid layer id {id!r}")
        return self.home / "dir" / id

    # -- layers ------------------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        if opts and opts.storage_opt:
            raise InvalidParameter("--storage-opt is not supported for vfs on read-only layers")
        self._create(id, parent)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        for key in opts.storage_opt if opts else ():
            if key == "size":  # moby: only with xfs project quotas, which engine's vfs does not set up
                raise InvalidParameter("Filesystem does not support, or has not enabled quotas")
            raise InvalidParameter(f"Storage opt {key} not supported")
        self._create(id, parent)

    def _create(self, id: str, parent: str | None) -> None:
        target = self._dir(id)
        parent_dir = self._dir(parent) if parent else None
        if parent_dir is not None and not parent_dir.is_dir():
            raise NotFound(f"vfs: parent layer {parent} does not exist")
        try:
            target.mkdir(mode=0o755)
        except FileExistsError:
            raise Conflict(f"vfs: layer {id} already exists") from None
        try:
            uid, gid = self.id_map.root()
            os.chown(target, uid, gid)
            os.chmod(target, 0o755)
            if parent_dir is not None:
                copy_tree(parent_dir, target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    def remove(self, id: str) -> None:
        target = self._dir(id)
        with self._lock:
            self._refs.pop(id, None)
        if target.exists() or target.is_symlink():
            shutil.rmtree(target)

    def get(self, id: str, mount_label: str = "") -> Path:
        target = self._dir(id)
        if not target.is_dir():
            raise NotFound(f"vfs: layer {id} does not exist")
        with self._lock:
            self._refs[id] = self._refs.get(id, 0) + 1
        return target

    def put(self, id: str) -> None:
        with self._lock:
            count = self._refs.get(id, 0) - 1
            if count > 0:
                self._refs[id] = count
            else:
                self._refs.pop(id, None)

    def exists(self, id: str) -> bool:
        try:
            return self._dir(id).is_dir()
        except InvalidParameter:
            return False

    def status(self) -> list[tuple[str, str]]:
        return []  # dockerd's vfs reports nothing either

    def metadata(self, id: str) -> dict[str, str]:
        return {}

    def cleanup(self) -> None:
        with self._lock:
            self._refs.clear()
