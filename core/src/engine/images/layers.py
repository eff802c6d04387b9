"""The layer store: read-only layers by chain ID, and containers' read-write layers, over the storage driver.

On-disk layout is dockerd's, under ``<data-root>/image/<driver>/layerdb/``:

- ``sha256/<chainID>/{cache-id,diff,size,parent,tar-split.json.gz}``: one read-only layer. ``cache-id``
  is the storage driver's id for it (random), ``diff`` its diff ID, ``size`` the bytes its own
  content holds, ``parent`` the parent's chain ID, ``tar-split.json.gz`` the record that rebuilds
  the layer's tar byte for byte (see :mod:`engine.images.tarsplit`).
- ``mounts/<container-id>/{mount-id,init-id,parent}``: a container's read-write layer
  (``<mount-id>``) on its init layer (``<mount-id>-init``) on the image's top layer.

Reference counts live in memory and are rebuilt at start: each image holding a layer, each
child layer and each read-write layer on it counts once. A layer whose count drops to zero is
removed from the driver and from disk, and its parent is released in turn.

Every method blocks (driver calls, tar streams): call them from worker threads. Locks are per
chain ID / container ID; the maps themselves are guarded by one short-held lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from engine.chainid import chain_id
from engine.drivers.layers import decompress
from engine.drivers.locks import KeyedLocks
from engine.drivers.records import fsync_dir, write_atomic
from engine.drivers.storage import Change, CreateOpts, StorageDriver
from engine.errors import Conflict, NotFound
from engine.images import tarsplit

TAR_SPLIT = "tar-split.json.gz"
#: sha256 of an empty tar (two zero blocks): a layer with no changes (commit of an untouched container)
EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

log = logging.getLogger(__name__)


# -- model ----------------------------------------------------------------------------------------------


@dataclass
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None  # the parent's chain ID
    cache_id: str  # the storage driver's id
    size: int  # bytes of this layer's own content
    refs: int = 0


@dataclass
class RWLayer:
    container_id: str
    mount_id: str
    init_id: str | None
    parent: str | None  # chain ID of the image's top layer
    mounts: int = 0
    path: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _hex(digest: str) -> str:
    return digest.partition(":")[2] or digest


class LayerStore:
    def __init__(self, root: Path, driver: StorageDriver) -> None:
        self.root = root
        self.driver = driver
        self._layers: dict[str, Layer] = {}
        self._rw: dict[str, RWLayer] = {}
        self._maps = threading.RLock()
        self._chain_locks = KeyedLocks()
        self._rw_locks = KeyedLocks()
        for sub in ("sha256", "mounts", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._load()

    # -- paths and loading ---------------------------------------------------------------------------------

    def _dir(self, chain: str) -> Path:
        return self.root / "sha256" / _hex(chain)

    def _mount_dir(self, container_id: str) -> Path:
        return self.root / "mounts" / container_id

    def _load(self) -> None:
        for entry in sorted((self.root / "sha256").iterdir()):
            try:
                layer = Layer(
                    chain_id="sha256:" + entry.name,
                    diff_id=(entry / "diff").read_text().strip(),
                    parent=_read_optional(entry / "parent"),
                    cache_id=(entry / "cache-id").read_text().strip(),
                    size=int(_read_optional(entry / "size") or 0),
                )
            except (OSError, ValueError):
                continue
            self._layers[layer.chain_id] = layer
        for layer in self._layers.values():
            if layer.parent and layer.parent in self._layers:
                self._layers[layer.parent].refs += 1
        for entry in sorted((self.root / "mounts").iterdir()):
            try:
                rw = RWLayer(
                    container_id=entry.name,
                    mount_id=(entry / "mount-id").read_text().strip(),
                    init_id=_read_optional(entry / "init-id"),
                    parent=_read_optional(entry / "parent"),
                )
            except OSError:
                continue
            self._rw[rw.container_id] = rw
            if rw.parent and rw.parent in self._layers:
                self._layers[rw.parent].refs += 1
        self._reclaim_tmp()

    def _reclaim_tmp(self) -> None:
        """Finish what a crash cut short. ``tmp/`` holds the records of layers being created (written
        before the driver creates anything) and of layers being removed (moved there before the driver
        removes anything): a driver directory one of them names, and no live record does, is an orphan."""
        live = {layer.cache_id for layer in self._layers.values()}
        for rw in self._rw.values():
            live |= {rw.mount_id, rw.init_id or ""}
        tmp = self.root / "tmp"
        for entry in sorted(tmp.iterdir()):
            for name in ("cache-id", "mount-id", "init-id"):
                driver_id = _read_optional(entry / name) if entry.is_dir() else None
                if not driver_id or driver_id in live:
                    continue
                try:
                    if self.driver.exists(driver_id):
                        self.driver.remove(driver_id)
                        log.warning("reclaimed the storage driver's layer %s: no layer record refers to it", driver_id)
                except Exception as exc:
                    log.error("reclaiming the orphan layer %s failed: %s", driver_id, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700, exist_ok=True)

    def _retire(self, record: Path) -> Path | None:
        """Move a layer's record into ``tmp/`` before its driver directories are removed: a crash from
        here on leaves no record pointing at a half-removed layer, and start-up reclaims the rest."""
        target = self.root / "tmp" / f"remove-{secrets.token_hex(8)}"
        try:
            os.rename(record, target)
        except FileNotFoundError:
            return None
        fsync_dir(record.parent)
        return target

    def garbage_collect(self) -> list[str]:
        """Remove layers nothing references (left by a crash between register and image create).
        Call once after every holder (the image store) took its references."""
        with self._maps:
            orphans = [c for c, layer in self._layers.items() if layer.refs == 0]
        removed: list[str] = []
        for chain in orphans:
            with self._maps:
                layer = self._layers.get(chain)
                if layer is None or layer.refs != 0:
                    continue
                layer.refs = 1
            removed += self.release(chain)
        return removed

    # -- read-only layers --------------------------------------------------------------------------------------

    def get(self, chain: str) -> Layer:
        with self._maps:
            layer = self._layers.get(chain)
        if layer is None:
            raise NotFound(f"layer does not exist: {chain}")
        return layer

    def exists(self, chain: str) -> bool:
        with self._maps:
            return chain in self._layers

    def all(self) -> dict[str, Layer]:
        with self._maps:
            return dict(self._layers)

    def acquire(self, chain: str) -> Layer:
        """Take a reference on a layer (an image holding it); NotFound when it does not exist."""
        with self._maps:
            layer = self._layers.get(chain)
            if layer is None:
                raise NotFound(f"layer does not exist: {chain}")
            layer.refs += 1
            return layer

    def release(self, chain: str) -> list[str]:
        """Drop a reference; returns the chain IDs removed from disk (this layer, then its parents)."""
        removed: list[str] = []
        current: str | None = chain
        while current:
            with self._maps:
                layer = self._layers.get(current)
                if layer is None:
                    break
                layer.refs -= 1
                if layer.refs > 0:
                    break
            with self._chain_locks(current):
                with self._maps:
                    if layer.refs > 0 or self._layers.get(current) is not layer:
                        break  # taken again meanwhile
                    del self._layers[current]
                retired = self._retire(self._dir(current))
                self.driver.remove(layer.cache_id)
                if retired is not None:
                    shutil.rmtree(retired, ignore_errors=True)
            removed.append(current)
            current = layer.parent
        return removed

    def register(self, stream: BinaryIO, parent: str | None = None) -> Layer:
        """Apply a layer tar (plain or compressed) on ``parent`` and return the layer, with a reference
        taken for the caller. The diff ID is hashed and the tar recorded while the driver applies it,
        in one pass. Registering a chain ID that exists reuses that layer."""
        parent_layer = self.acquire(parent) if parent else None
        cache_id = secrets.token_hex(32)
        staging = self.root / "tmp" / f"write-set-{secrets.token_hex(8)}"
        staging.mkdir(mode=0o700)
        created = False
        try:
            write_atomic(staging / "cache-id", cache_id)  # before the driver makes it: see _reclaim_tmp
            parent_cache = parent_layer.cache_id if parent_layer else None
            self.driver.create(cache_id, parent_cache)
            created = True
            with open(staging / TAR_SPLIT, "wb") as record:
                recorder = tarsplit.TarRecorder(decompress(stream), record)
                size = self.driver.apply_diff(cache_id, parent_cache, recorder)  # type: ignore[arg-type]
                diff_id, _ = recorder.finish()
                record.flush()
                os.fsync(record.fileno())
            chain = chain_id(parent, diff_id)
            with self._chain_locks(chain):
                with self._maps:
                    existing = self._layers.get(chain)
                    if existing is not None:
                        existing.refs += 1
                if existing is not None:
                    self._discard(cache_id, staging)
                    if parent:
                        self.release(parent)  # the existing layer already holds its parent
                    return existing
                layer = Layer(chain, diff_id, parent, cache_id, size, refs=1)
                write_atomic(staging / "cache-id", cache_id)
                write_atomic(staging / "diff", diff_id)
                write_atomic(staging / "size", str(size))
                if parent:
                    write_atomic(staging / "parent", parent)
                os.rename(staging, self._dir(chain))
                with self._maps:
                    self._layers[chain] = layer
                return layer
        except BaseException:
            self._discard(cache_id if created else None, staging)
            if parent:
                self.release(parent)
            raise

    def _discard(self, cache_id: str | None, staging: Path) -> None:
        if cache_id is not None:
            with contextlib.suppress(Exception):
                self.driver.remove(cache_id)
        shutil.rmtree(staging, ignore_errors=True)

    def size(self, chain: str | None) -> int:
        """The bytes of a layer and all its parents (an image's Size)."""
        total = 0
        while chain:
            layer = self.get(chain)
            total += layer.size
            chain = layer.parent
        return total

    def metadata(self, chain: str) -> dict[str, str]:
        """``GraphDriver.Data``, keys sorted as Go marshals a map."""
        return dict(sorted(self.driver.metadata(self.get(chain).cache_id).items()))

    def tar_size(self, chain: str) -> int:
        return tarsplit.tar_size(self._dir(chain) / TAR_SPLIT)

    def export(self, chain: str, out: IO[bytes]) -> int:
        """Write the layer's tar exactly as it was registered; returns the bytes written."""
        layer = self.acquire(chain)
        try:
            with self._chain_locks(chain):
                root = self.driver.get(layer.cache_id)
                try:
                    return tarsplit.reassemble(self._dir(chain) / TAR_SPLIT, root, out)
                finally:
                    self.driver.put(layer.cache_id)
        finally:
            self.release(chain)

    # -- read-write layers (containers) ---------------------------------------------------------------------

    def _rw_layer(self, container_id: str) -> RWLayer:
        with self._maps:
            rw = self._rw.get(container_id)
        if rw is None:
            raise NotFound(f"RW layer for container {container_id} does not exist")
        return rw

    def has_rw_layer(self, container_id: str) -> bool:
        with self._maps:
            return container_id in self._rw

    def create_rw_layer(
        self,
        container_id: str,
        parent: str | None,
        init: Callable[[Path], None] | None = None,
        storage_opt: Mapping[str, str] | None = None,
    ) -> RWLayer:
        """Create ``<mount-id>-init`` on ``parent`` (``init(path)`` lays down the container's placeholder
        files in it), then the read-write layer ``<mount-id>`` on top."""
        with self._rw_locks(container_id):
            with self._maps:
                if container_id in self._rw:
                    raise Conflict(f"RW layer for container {container_id} already exists")
            parent_layer = self.acquire(parent) if parent else None
            mount_id = secrets.token_hex(32)
            init_id = mount_id + "-init"
            opts = CreateOpts(storage_opt=dict(storage_opt or {}))
            made: list[str] = []
            staging = self.root / "tmp" / f"mount-{secrets.token_hex(8)}"
            try:
                staging.mkdir(mode=0o700)
                # named before the driver makes them: a crash in between leaves them to _reclaim_tmp
                write_atomic(staging / "mount-id", mount_id)
                write_atomic(staging / "init-id", init_id)
                self.driver.create_read_write(init_id, parent_layer.cache_id if parent_layer else None, opts)
                made.append(init_id)
                if init is not None:
                    path = self.driver.get(init_id)
                    try:
                        init(path)
                    finally:
                        self.driver.put(init_id)
                self.driver.create_read_write(mount_id, init_id, opts)
                made.append(mount_id)
                if parent:
                    write_atomic(staging / "parent", parent)
                os.rename(staging, self._mount_dir(container_id))
            except BaseException:
                for driver_id in reversed(made):
                    with contextlib.suppress(Exception):
                        self.driver.remove(driver_id)
                shutil.rmtree(staging, ignore_errors=True)
                if parent:
                    self.release(parent)
                raise
            rw = RWLayer(container_id, mount_id, init_id, parent)
            with self._maps:
                self._rw[container_id] = rw
            return rw

    def mount_rw(self, container_id: str, mount_label: str = "") -> Path:
        """Mount the container's root filesystem (refcounted) and return its path."""
        rw = self._rw_layer(container_id)
        with rw.lock:
            if rw.mounts == 0 or rw.path is None:
                rw.path = self.driver.get(rw.mount_id, mount_label)
            rw.mounts += 1
            return rw.path

    def unmount_rw(self, container_id: str) -> None:
        rw = self._rw_layer(container_id)
        with rw.lock:
            if rw.mounts == 0:
                return
            rw.mounts -= 1
            if rw.mounts == 0:
                self.driver.put(rw.mount_id)
                rw.path = None

    def remove_rw_layer(self, container_id: str) -> None:
        """Unmount (every outstanding mount) and remove the container's layers; releases the image layer."""
        with self._rw_locks(container_id):
            rw = self._rw_layer(container_id)
            with rw.lock:
                while rw.mounts > 0:
                    self.driver.put(rw.mount_id)
                    rw.mounts -= 1
                rw.path = None
                retired = self._retire(self._mount_dir(container_id))
                self.driver.remove(rw.mount_id)
                if rw.init_id:
                    self.driver.remove(rw.init_id)
            if retired is not None:
                shutil.rmtree(retired, ignore_errors=True)
            with self._maps:
                self._rw.pop(container_id, None)
            if rw.parent:
                self.release(rw.parent)

    def rw_mount_id(self, container_id: str) -> str:
        return self._rw_layer(container_id).mount_id

    def rw_metadata(self, container_id: str) -> dict[str, str]:
        """``GraphDriver.Data`` for container inspect."""
        return dict(sorted(self.driver.metadata(self._rw_layer(container_id).mount_id).items()))

    def rw_changes(self, container_id: str) -> list[Change]:
        """The container's changes relative to its init layer (``docker diff``)."""
        rw = self._rw_layer(container_id)
        return self.driver.changes(rw.mount_id, rw.init_id)

    def rw_diff(self, container_id: str, out: IO[bytes]) -> None:
        """A tar of the container's changes (whiteouts for deletions), for commit."""
        rw = self._rw_layer(container_id)
        self.driver.diff(rw.mount_id, rw.init_id, out)  # type: ignore[arg-type]

    def rw_size(self, container_id: str) -> tuple[int, int]:
        """``(SizeRw, SizeRootFs)`` as dockerd reports them for ``ps -s`` / ``inspect --size``."""
        rw = self._rw_layer(container_id)
        size_rw = self.driver.diff_size(rw.mount_id, rw.init_id)
        return size_rw, self.size(rw.parent) + size_rw


def _read_optional(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None
