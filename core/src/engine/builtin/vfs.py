"""The ``vfs`` storage driver: every layer is a full copy of its parent. Works on any filesystem.

(Placeholder: the storage work fills this in.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from engine import DRIVER_API_VERSION
from engine.drivers.naive_diff import NaiveDiffMixin
from engine.drivers.storage import CreateOpts, StorageDriver


class VfsStorageDriver(NaiveDiffMixin, StorageDriver):
    name = "vfs"
    API_VERSION = DRIVER_API_VERSION

    def _dir(self, id: str) -> Path:
        return self.home / "dir" / id

    def create(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        self.create_read_write(id, parent, opts)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        target = self._dir(id)
        target.parent.mkdir(parents=True, exist_ok=True)
        if parent:
            shutil.copytree(self._dir(parent), target, symlinks=True)
        else:
            target.mkdir(mode=0o755)

    def remove(self, id: str) -> None:
        shutil.rmtree(self._dir(id), ignore_errors=True)

    def get(self, id: str, mount_label: str = "") -> Path:
        return self._dir(id)

    def put(self, id: str) -> None:
        pass

    def exists(self, id: str) -> bool:
        return self._dir(id).is_dir()

    def status(self) -> list[tuple[str, str]]:
        return []

    def metadata(self, id: str) -> dict[str, str]:
        return {}

    def cleanup(self) -> None:
        pass
