"""The thin pool: dockerd's loopback mode (sparse data and metadata files on loop devices) or a
pool the administrator made (``dm.thinpooldev``).

Loopback files live in ``<home>/devmapper/{data,metadata}``; the pool is named after the home
directory's device and inode (``docker-<major>:<minor>-<inode>-pool``), as dockerd names it, so two
data-roots never share a pool.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InvalidParameter, PrerequisitesNotMet
from engine_plugin_devicemapper import dmsetup
from engine_plugin_devicemapper.options import Options

log = logging.getLogger(__name__)

LOW_WATER_MARK = 32768  # sectors, dockerd's


def device_prefix(home: Path) -> str:
    st = os.stat(home)
    return f"docker-{os.major(st.st_dev)}:{os.minor(st.st_dev)}-{st.st_ino}"


@dataclass
class Pool:
    name: str  # the device-mapper name, /dev/mapper/<name>
    block_size: int  # sectors
    data_file: str = ""  # loopback mode: the files and their loop devices
    metadata_file: str = ""
    data_loop: str = ""
    metadata_loop: str = ""
    created_here: bool = False  # removed again by teardown (loopback mode)
    _loops: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/dev/mapper/{self.name}"

    def teardown(self) -> None:
        """Remove the pool and detach the loop devices this driver made (never a dm.thinpooldev)."""
        if not self.created_here:
            return
        if dmsetup.exists(self.name):
            dmsetup.remove(self.name)
        for loop in self._loops:
            try:
                dmsetup.detach_loop(loop)
            except dmsetup.CommandError as exc:
                log.warning("devmapper: %s", exc)
        self._loops.clear()


def open_pool(home: Path, opts: Options) -> Pool:
    if opts.directlvm_device:
        raise PrerequisitesNotMet(
            "devmapper: dm.directlvm_device is not supported by this driver (it would need lvm2's "
            "pvcreate/vgcreate/lvcreate --thinpool); make the thin pool yourself and pass dm.thinpooldev"
        )
    if opts.thin_pool_dev:
        return _existing_pool(opts.thin_pool_dev)
    return _loopback_pool(home, opts)


def _existing_pool(name: str) -> Pool:
    if not dmsetup.exists(name):
        raise InvalidParameter(f"devmapper: dm.thinpooldev: no device-mapper device {name}")
    kind = dmsetup.table(name).split()
    if len(kind) < 7 or kind[2] != "thin-pool":
        raise InvalidParameter(f"devmapper: dm.thinpooldev: {name} is not a thin-pool device")
    return Pool(name=name, block_size=int(kind[5]))


def _loopback_pool(home: Path, opts: Options) -> Pool:
    loop_dir = home / "devmapper"
    loop_dir.mkdir(exist_ok=True, mode=0o700)
    data, meta = loop_dir / "data", loop_dir / "metadata"
    for path, size in ((data, opts.loop_data_size), (meta, opts.loop_metadata_size)):
        if not path.exists():
            with open(path, "wb") as f:
                f.truncate(size)  # sparse, as dockerd's
    pool = Pool(
        name=f"{device_prefix(home)}-pool",
        block_size=opts.block_size,
        data_file=str(data),
        metadata_file=str(meta),
        created_here=True,
    )
    try:
        for attr, path in (("data_loop", data), ("metadata_loop", meta)):
            loop = dmsetup.loop_of(str(path))
            if loop is None:
                loop = dmsetup.attach_loop(str(path))
            pool._loops.append(loop)  # ours to detach, also when a previous run attached it
            setattr(pool, attr, loop)
        if not dmsetup.exists(pool.name):
            length = dmsetup.sectors(pool.data_loop)
            dmsetup.create(
                pool.name,
                f"0 {length} thin-pool {pool.metadata_loop} {pool.data_loop} "
                f"{pool.block_size} {LOW_WATER_MARK} 1 skip_block_zeroing",
            )
        else:
            pool.block_size = int(dmsetup.table(pool.name).split()[5])
    except BaseException:
        pool.teardown()
        raise
    return pool
