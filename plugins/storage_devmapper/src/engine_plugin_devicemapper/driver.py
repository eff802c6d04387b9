"""The devicemapper storage driver: every layer is a thin device of one dm-thin pool.

Under ``home`` (``<data-root>/devicemapper``, dockerd's layout)::

    devmapper/data, devmapper/metadata   the pool's sparse loopback files (not with dm.thinpooldev)
    metadata/<id>                        a device's record (metadata.py); metadata/base the base device
    mnt/<id>                             where a layer's filesystem is mounted; get() returns mnt/<id>/rootfs

A base device of ``dm.basesize`` is formatted once (``dm.fs``); a layer without parent is a thin
snapshot of it, a child a snapshot of its parent (``create_snap``: O(1), blocks shared). A layer's
device is active and mounted only between get() and its last put(). Diffs are the naive ones, as
in dockerd. Pool transactions (``set_transaction_id``) bracket every create and delete.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from engine.drivers import DRIVER_API_VERSION, libc
from engine.drivers.naive_diff import NaiveDiffMixin
from engine.drivers.storage import IDENTITY, CreateOpts, IdMap, StorageDriver
from engine.errors import Conflict, InvalidParameter, NotFound, SystemError
from engine_plugin_devicemapper import dmsetup, host
from engine_plugin_devicemapper import options as dm_options
from engine_plugin_devicemapper.metadata import BASE, MAX_DEVICE_ID, DeviceInfo, MetadataStore, Transaction
from engine_plugin_devicemapper.pool import Pool, device_prefix, open_pool

log = logging.getLogger(__name__)

#: names the driver itself uses (metadata/base, the pool device...): a layer called so is stored as "layer-<id>"
_RESERVED = {BASE, "pool", "deviceset-metadata", "transaction-metadata"}


def human_size(size: float) -> str:
    """go-units HumanSize (decimal, four significant digits), as dockerd's DriverStatus prints sizes."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


def _key(id: str) -> str:
    return f"layer-{id}" if id in _RESERVED or id.startswith("layer-") else id


class DeviceMapperStorageDriver(NaiveDiffMixin, StorageDriver):
    name = "devicemapper"
    API_VERSION = DRIVER_API_VERSION

    def __init__(self, home: Path, options: Mapping[str, str], id_map: IdMap) -> None:
        super().__init__(home, options, id_map)
        self.opts = dm_options.parse(options)
        self.fs = self.opts.fs
        self.pool: Pool | None = None
        self.prefix = ""
        self.transaction_id = 0
        self.devices: dict[str, DeviceInfo] = {}  # by key (_key(id)); BASE is the base device
        self._store = MetadataStore(home / "metadata")
        self._set: dict[str, object] = {}
        self._mounts: dict[str, int] = {}  # layer id -> get() count
        self._active: set[str] = set()  # keys whose thin device is active (mounted, or lazily unmounted)
        self._lock = threading.RLock()  # one pool, one writer: as dockerd's DeviceSet lock

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        dm_options.parse(options)

    @classmethod
    def init(cls, home: Path, options: Mapping[str, str], id_map: IdMap = IDENTITY) -> Self:
        opts = dm_options.parse(options)
        host.check(opts)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        driver = cls(home, options, id_map)
        driver._start()
        return driver

    def _start(self) -> None:
        self.prefix = device_prefix(self.home)
        self.pool = open_pool(self.home, self.opts)
        try:
            self.transaction_id = dmsetup.pool_status(self.pool.name).transaction_id
            self._rollback()
            self.devices = self._store.load_devices()
            # devices a killed daemon left active: known, so that put/remove/cleanup deactivate them
            prefix = f"{self.prefix}-"
            self._active = {n.removeprefix(prefix) for n in dmsetup.names() if n.startswith(prefix)} & set(self.devices)
            self._set = self._store.load_set()
            self._setup_base()
        except BaseException:
            self.pool.teardown()
            raise

    def _rollback(self) -> None:
        """A crash between a pool message and its record: undo the pool side (dockerd's rollbackTransaction)."""
        tx = self._store.open_transaction()
        if tx is None:
            return
        if tx.open_transaction_id > self.transaction_id:  # the pool never committed it
            log.warning("devmapper: rolling back the open transaction of device %s", tx.device_hash)
            try:
                self._message(f"delete {tx.device_id}")
            except dmsetup.CommandError as exc:
                log.debug("devmapper: rollback: %s", exc)
            self._store.delete_device(tx.device_hash)
        self._store.end()

    def _setup_base(self) -> None:
        base = self.devices.get(BASE)
        if base is not None and not base.initialized:  # a crash while formatting: start over
            self._delete(BASE)
            base = None
        if base is None:
            self._check_free_space()
            info = self._create(BASE, None, self.opts.base_size, origin_active=False)
            device = self._activate(BASE)
            try:
                dmsetup.run(*self._mkfs_command(device))
            finally:
                self._deactivate(BASE)
            info.initialized = True
            self._store.save_device(BASE, info)
            self._set["BaseDeviceFilesystem"] = self.fs
            self._store.save_set(self._set)
            return
        existing_fs = str(self._set.get("BaseDeviceFilesystem") or "ext4")
        if "fs" in {k.removeprefix("dm.") for k in self.options} and existing_fs != self.fs:
            raise InvalidParameter(
                f"devmapper: Base Device Filesystem verification failed: the base device is {existing_fs} "
                f"but dm.fs is {self.fs}"
            )
        self.fs = existing_fs
        if self.opts.base_size < base.size and "basesize" in {k.removeprefix("dm.") for k in self.options}:
            raise InvalidParameter(f"devmapper: Base device size cannot be smaller than {human_size(base.size)}")
        if self.opts.base_size > base.size and "basesize" in {k.removeprefix("dm.") for k in self.options}:
            raise InvalidParameter(
                f"devmapper: growing the base device ({human_size(base.size)}) to dm.basesize="
                f"{human_size(self.opts.base_size)} is not supported by this driver"
            )

    def _mkfs_command(self, device: str) -> list[str]:
        if self.fs == "xfs":
            return ["mkfs.xfs", "-q", *self.opts.mkfs_args, device]
        # dockerd's: no discard, inode tables and journal written now rather than by a background thread
        return [
            "mkfs.ext4",
            "-q",
            "-E",
            "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
            *self.opts.mkfs_args,
            device,
        ]

    # -- device-mapper plumbing --------------------------------------------------------------------

    def _pool(self) -> Pool:
        if self.pool is None:
            raise SystemError("devmapper: the driver was shut down")
        return self.pool

    def _message(self, text: str) -> None:
        dmsetup.message(self._pool().path, text)

    def _dm_name(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    @contextmanager
    def _transaction(self, key: str, device_id: int) -> Iterator[Transaction]:
        """Record the intent, run the pool messages, then move the pool's transaction id on."""
        tx = Transaction(self.transaction_id + 1, key, device_id)
        self._store.begin(tx)
        yield tx
        self._message(f"set_transaction_id {self.transaction_id} {tx.open_transaction_id}")
        self.transaction_id = tx.open_transaction_id

    def _next_id(self) -> int:
        next_id = int(self._set.get("next_device_id", 1))  # type: ignore[call-overload]
        self._set["next_device_id"] = next_id % MAX_DEVICE_ID + 1
        return next_id

    def _create(self, key: str, origin: str | None, size: int, origin_active: bool) -> DeviceInfo:
        """create_thin (no origin) or create_snap of ``origin``; suspends an active (mounted) origin meanwhile."""
        for _ in range(1000):  # skip ids the pool still holds (a lost record), as dockerd does
            device_id = self._next_id()
            try:
                with self._transaction(key, device_id):
                    if origin is None:
                        self._message(f"create_thin {device_id}")
                    else:
                        self._snapshot(device_id, origin, origin_active)
            except dmsetup.CommandError as exc:  # the pool did not move: nothing to roll back
                self._store.end()
                if "File exists" in exc.stderr:
                    continue
                raise
            info = DeviceInfo(device_id=device_id, size=size, transaction_id=self.transaction_id)
            self._store.save_device(key, info)
            self._store.save_set(self._set)
            self._store.end()
            self.devices[key] = info
            return info
        raise SystemError("devmapper: no free device id in the thin pool")

    def _snapshot(self, device_id: int, origin: str, origin_active: bool) -> None:
        if origin_active:  # the kernel wants no I/O in flight on the origin while it snapshots
            dmsetup.suspend(self._dm_name(origin))
        try:
            self._message(f"create_snap {device_id} {self.devices[origin].device_id}")
        finally:
            if origin_active:
                dmsetup.resume(self._dm_name(origin))

    def _delete(self, key: str) -> None:
        info = self.devices[key]
        try:
            with self._transaction(key, info.device_id):
                try:
                    self._message(f"delete {info.device_id}")
                except dmsetup.CommandError as exc:
                    if "No data available" not in exc.stderr:  # not "already gone from the pool"
                        raise
        except dmsetup.CommandError:
            self._store.end()
            raise
        self._store.delete_device(key)
        self._store.end()
        del self.devices[key]

    def _activate(self, key: str) -> str:
        name = self._dm_name(key)
        info = self.devices[key]
        if key not in self._active:  # _active is the truth: _start() read what was left active
            dmsetup.create(name, f"0 {info.size // 512} thin {self._pool().path} {info.device_id}")
        self._active.add(key)
        return f"/dev/mapper/{name}"

    def _deactivate(self, key: str, busy_ok: bool = False) -> None:
        """Remove the device's mapping; ``busy_ok``: a lazily detached mount still holds it, keep it."""
        name = self._dm_name(key)
        if key in self._active:
            try:
                dmsetup.remove(name)
            except dmsetup.CommandError as exc:
                if busy_ok and "busy" in exc.stderr:
                    log.debug("devmapper: %s still busy, left active", name)
                    return
                raise
        self._active.discard(key)

    def _check_free_space(self) -> None:
        """dm.min_free_space: refuse new devices when the pool's data or metadata runs low (dockerd's checkThinPool)."""
        percent = self.opts.min_free_space
        if not percent:
            return
        st = dmsetup.pool_status(self._pool().name)
        for what, used, total in (
            ("data", st.data_used, st.data_total),
            ("metadata", st.metadata_used, st.metadata_total),
        ):
            minimum = max(1, total * percent // 100)
            if total - used < minimum:
                more = "free space" if what == "data" else "free metadata space"
                raise SystemError(
                    f"devmapper: Thin Pool has {total - used} free {what} blocks which is less than minimum "
                    f"required {minimum} free {what} blocks. Create more {more} in thin pool or use "
                    "dm.min_free_space option to change behavior"
                )

    def _info(self, id: str) -> tuple[str, DeviceInfo]:
        key = _key(id)
        info = self.devices.get(key)
        if info is None:
            raise NotFound(f"devmapper: unknown device {id}")
        return key, info

    # -- layers ------------------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        if opts is not None and opts.storage_opt:
            raise InvalidParameter(
                f"devmapper: --storage-opt {', '.join(sorted(opts.storage_opt))} is not supported by this driver"
            )
        with self._lock:
            key = _key(id)
            if key in self.devices:
                raise Conflict(f"devmapper: device {id} already exists")
            origin = BASE if parent is None else self._info(parent)[0]
            self._check_free_space()
            self._create(key, origin, self.devices[origin].size, origin_active=origin in self._active)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts | None = None) -> None:
        self.create(id, parent, opts)

    def remove(self, id: str) -> None:
        with self._lock:
            key = _key(id)
            if key not in self.devices:
                return
            if id in self._mounts:  # a crashed container's layer: unmount whatever the count
                self._mounts[id] = 1
                self._unmount(id, key)
            self._deactivate(key)
            self._delete(key)
            shutil.rmtree(self.home / "mnt" / id, ignore_errors=True)

    def get(self, id: str, mount_label: str = "") -> Path:
        with self._lock:
            key, _ = self._info(id)
            mountpoint = self.home / "mnt" / id
            rootfs = mountpoint / "rootfs"
            if id in self._mounts:
                self._mounts[id] += 1
                return rootfs
            device = self._activate(key)
            mountpoint.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = ",".join(filter(None, ["nouuid" if self.fs == "xfs" else "", self.opts.mount_options]))
            err = libc.mount(device, mountpoint, self.fs, 0, data or None)
            if err:
                self._deactivate(key)
                raise SystemError(f"devmapper: mounting {device} on {mountpoint}: {os.strerror(err)}")
            try:
                if not rootfs.exists():
                    rootfs.mkdir(mode=0o755)
                    os.chmod(rootfs, 0o755)
                    os.chown(rootfs, *self.id_map.root())
                idfile = mountpoint / "id"
                if not idfile.exists():
                    idfile.write_text(id)
            except BaseException:
                libc.umount2(mountpoint, 0)
                self._deactivate(key)
                raise
            self._mounts[id] = 1
            return rootfs

    def put(self, id: str) -> None:
        with self._lock:
            if id in self._mounts:
                self._unmount(id, _key(id))

    def _unmount(self, id: str, key: str) -> None:
        self._mounts[id] -= 1
        if self._mounts[id] > 0:
            return
        del self._mounts[id]
        mountpoint = self.home / "mnt" / id
        err = libc.umount2(mountpoint, 0)
        if err == errno.EBUSY:
            # still in use (an open file, a bound socket): detach it; the filesystem, and so the
            # device, stays busy until its last user goes: deactivated by remove() or cleanup()
            libc.umount2(mountpoint, libc.MNT_DETACH)
            log.debug("devmapper: %s busy, detached lazily", mountpoint)
            return
        if err and err != errno.EINVAL:
            raise SystemError(f"devmapper: unmounting {mountpoint}: {os.strerror(err)}")
        self._deactivate(key, busy_ok=True)

    def exists(self, id: str) -> bool:
        return _key(id) in self.devices

    def metadata(self, id: str) -> dict[str, str]:
        key, info = self._info(id)
        return {"DeviceId": str(info.device_id), "DeviceSize": str(info.size), "DeviceName": self._dm_name(key)}

    def status(self) -> list[tuple[str, str]]:
        pool = self._pool()
        st = dmsetup.pool_status(pool.name)
        block = pool.block_size * 512
        data_total, data_used = st.data_total * block, st.data_used * block
        data_free = data_total - data_used
        meta_total, meta_used = st.metadata_total * 4096, st.metadata_used * 4096
        if pool.data_file:  # loopback: the sparse file can only grow as far as its filesystem lets it
            vfs = os.statvfs(pool.data_file)
            data_free = min(data_free, vfs.f_bavail * vfs.f_frsize)
        rows = [
            ("Pool Name", pool.name),
            ("Pool Blocksize", human_size(block)),
            ("Base Device Size", human_size(self.devices[BASE].size)),
            ("Backing Filesystem", self.fs),
            ("Udev Sync Supported", "false"),
        ]
        if pool.data_loop:
            rows.append(("Data file", pool.data_loop))
        if pool.metadata_loop:
            rows.append(("Metadata file", pool.metadata_loop))
        rows += [
            ("Data Space Used", human_size(data_used)),
            ("Data Space Total", human_size(data_total)),
            ("Data Space Available", human_size(data_free)),
            ("Metadata Space Used", human_size(meta_used)),
            ("Metadata Space Total", human_size(meta_total)),
            ("Metadata Space Available", human_size(meta_total - meta_used)),
            ("Thin Pool Minimum Free Space", human_size(data_total * self.opts.min_free_space // 100)),
            ("Deferred Removal Enabled", "false"),
            ("Deferred Deletion Enabled", "false"),
            ("Deferred Deleted Device Count", "0"),
        ]
        if pool.data_file:
            rows.append(("Data loop file", pool.data_file))
        if pool.metadata_file:
            rows.append(("Metadata loop file", pool.metadata_file))
        version = dmsetup.library_version()
        if version:
            rows.append(("Library Version", version))
        return rows

    def cleanup(self) -> None:
        """Unmount and deactivate every device, then remove a pool this driver set up (dockerd's Shutdown)."""
        with self._lock:
            if self.pool is None:
                return
            for id in list(self._mounts):
                self._mounts[id] = 1
                self._unmount(id, _key(id))
            for key in list(self._active):
                try:
                    self._deactivate(key)
                except dmsetup.CommandError as exc:
                    log.warning("%s", exc)
            self.pool.teardown()
            self.pool = None
