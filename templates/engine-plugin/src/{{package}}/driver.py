"""The {{driver_name}} storage driver.

This skeleton already passes engine-testkit's conformance suite: each layer is a directory under
``<home>/layers/<id>`` that starts as a full copy of its parent (the vfs strategy), and diffs come
from :class:`NaiveDiffMixin`. Replace the marked parts with your backend (snapshots, a union mount,
a block device...) and keep the suite green.

The contract, in short (see ``engine.drivers.storage.StorageDriver`` for the full text):

- ``init(home, options, id_map)`` checks the host and raises ``DriverNotSupported``
  (``PrerequisitesNotMet``, ``IncompatibleFS``) when the driver cannot run here;
- ``create``/``create_read_write`` make a layer on a parent (``None``: a base layer);
- ``get`` returns the layer's root, mounted; calls nest and each is matched by one ``put``;
- ``remove`` deletes a layer (a missing one is not an error); ``cleanup`` unmounts everything;
- ``status`` feeds ``docker info``'s Storage Driver section, ``metadata`` container/image inspect.
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
from engine.errors import Conflict, InvalidParameter, NotFound, PrerequisitesNotMet, SystemError

#: options users may give as ``"storage-opts": ["{{driver_name}}.<key>=<value>"]`` (the prefix is stripped)
KNOWN_OPTIONS: frozenset[str] = frozenset()


class {{class_name}}(NaiveDiffMixin, StorageDriver):
    name = "{{driver_name}}"  # must equal the entry-point name in pyproject.toml
    API_VERSION = DRIVER_API_VERSION

    def __init__(self, home: Path, options: Mapping[str, str], id_map: IdMap) -> None:
        super().__init__(home, options, id_map)
        self._refs: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        unknown = sorted(set(options) - KNOWN_OPTIONS)
        if unknown:
            raise InvalidParameter(f"{cls.name}: unknown option {unknown[0]}")

    @classmethod
    def init(cls, home: Path, options: Mapping[str, str], id_map: IdMap = IDENTITY) -> Self:
        # REPLACE: check what your backend needs (a kernel module, a tool, the backing filesystem)
        if shutil.which("cp") is None:
            raise PrerequisitesNotMet("cp is not installed")
        driver = super().init(home, options, id_map)
        (home / "layers").mkdir(mode=0o700, exist_ok=True)
        return driver

    def _dir(self, id: str) -> Path:
        if not id or "/" in id or id in (".", ".."):
            raise InvalidParameter(f"{self.name}: invalid layer id {id!r}")
        return self.home / "layers" / id

    # -- layers ------------------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        self.create_read_write(id, parent, opts)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        for key in opts.storage_opt if opts else ():
            raise InvalidParameter(f"Storage opt {key} not supported")
        target = self._dir(id)
        source = self._dir(parent) if parent else None
        if source is not None and not source.is_dir():
            raise NotFound(f"{self.name}: parent layer {parent} does not exist")
        try:
            target.mkdir(mode=0o755)
        except FileExistsError:
            raise Conflict(f"{self.name}: layer {id} already exists") from None
        try:
            uid, gid = self.id_map.root()
            os.chown(target, uid, gid)
            os.chmod(target, 0o755)
            if source is not None:
                # REPLACE: a snapshot or a union mount instead of a full copy
                proc = subprocess.run(
                    ["cp", "-a", "--reflink=auto", "--", f"{source}/.", f"{target}/"],
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    raise SystemError(f"{self.name}: copying layer {parent}: {proc.stderr.strip()}")
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    def remove(self, id: str) -> None:
        with self._lock:
            self._refs.pop(id, None)
        shutil.rmtree(self._dir(id), ignore_errors=True)

    def get(self, id: str, mount_label: str = "") -> Path:
        target = self._dir(id)
        if not target.is_dir():
            raise NotFound(f"{self.name}: layer {id} does not exist")
        with self._lock:
            # REPLACE: mount here on the first reference
            self._refs[id] = self._refs.get(id, 0) + 1
        return target

    def put(self, id: str) -> None:
        with self._lock:
            count = self._refs.get(id, 0) - 1
            if count > 0:
                self._refs[id] = count
            else:
                # REPLACE: unmount here when the last reference goes
                self._refs.pop(id, None)

    def exists(self, id: str) -> bool:
        try:
            return self._dir(id).is_dir()
        except InvalidParameter:
            return False

    def status(self) -> list[tuple[str, str]]:
        return [("Layers", str(sum(1 for _ in (self.home / "layers").iterdir())))]

    def metadata(self, id: str) -> dict[str, str]:
        return {"Dir": str(self._dir(id))}

    def cleanup(self) -> None:
        with self._lock:
            # REPLACE: unmount every layer still mounted
            self._refs.clear()
