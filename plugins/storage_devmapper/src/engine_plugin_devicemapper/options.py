"""The ``dm.*`` storage-opts, checked once at start-up (an unknown or bad one names its key).

Defaults are dockerd 19.03's (daemon/graphdriver/devmapper/deviceset.go) except ``dm.fs``:
dockerd picked xfs when mkfs.xfs was installed; this driver formats ext4 unless told ``dm.fs=xfs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.drivers.units import ram_in_bytes
from engine.errors import InvalidParameter

GiB = 1024**3

#: dockerd options this driver does not implement: refused rather than silently ignored
UNSUPPORTED = {
    "use_deferred_removal": "deferred removal",
    "use_deferred_deletion": "deferred deletion",
    "datadev": "dm.datadev (deprecated in dockerd too; use dm.thinpooldev)",
    "metadatadev": "dm.metadatadev (deprecated in dockerd too; use dm.thinpooldev)",
    "override_udev_sync_check": "udev sync (this driver never waits for udev)",
    "blkdiscard": "dm.blkdiscard",
    "xfs_nospace_max_retries": "dm.xfs_nospace_max_retries",
    "libdm_log_level": "dm.libdm_log_level",
    "thinp_percent": "direct-lvm (dm.thinp_*)",
    "thinp_metapercent": "direct-lvm (dm.thinp_*)",
    "thinp_autoextend_threshold": "direct-lvm (dm.thinp_*)",
    "thinp_autoextend_percent": "direct-lvm (dm.thinp_*)",
}


@dataclass(frozen=True)
class Options:
    base_size: int = 10 * GiB
    fs: str = "ext4"
    loop_data_size: int = 100 * GiB
    loop_metadata_size: int = 2 * GiB
    min_free_space: int = 10  # percent of the pool's data and metadata space
    block_size: int = 128  # sectors (64 KiB)
    thin_pool_dev: str = ""
    directlvm_device: str = ""
    mkfs_args: tuple[str, ...] = ()
    mount_options: str = ""


def _size(key: str, value: str) -> int:
    try:
        size = ram_in_bytes(value)
    except ValueError as exc:
        raise InvalidParameter(f"devmapper: invalid value for dm.{key}: {exc}") from None
    if size <= 0:
        raise InvalidParameter(f"devmapper: dm.{key} must be positive: {value}")
    return size


def parse(options: Mapping[str, str]) -> Options:
    """dm.* options (the ``dm.`` prefix stripped) to :class:`Options`; raises InvalidParameter naming the key."""
    values: dict[str, object] = {}
    mkfs: list[str] = []
    for key, value in options.items():
        key = key.lower().removeprefix("dm.")
        if key == "basesize":
            values["base_size"] = _size(key, value)
        elif key == "loopdatasize":
            values["loop_data_size"] = _size(key, value)
        elif key == "loopmetadatasize":
            values["loop_metadata_size"] = _size(key, value)
        elif key == "fs":
            if value not in ("ext4", "xfs"):
                raise InvalidParameter(f"devmapper: Unsupported filesystem {value} for dm.fs (ext4 or xfs)")
            values["fs"] = value
        elif key == "min_free_space":
            values["min_free_space"] = _percent(key, value)
        elif key == "blocksize":
            size = _size(key, value)
            if size < 64 * 1024 or size > 1024**3 or size % (64 * 1024):
                raise InvalidParameter(
                    f"devmapper: dm.blocksize must be a multiple of 64KiB between 64KiB and 1GiB: {value}"
                )
            values["block_size"] = size // 512
        elif key == "thinpooldev":
            values["thin_pool_dev"] = value.removeprefix("/dev/mapper/")
            if not values["thin_pool_dev"]:
                raise InvalidParameter("devmapper: dm.thinpooldev must name a pool")
        elif key == "directlvm_device":
            values["directlvm_device"] = value
        elif key == "mkfsarg":
            mkfs.append(value)
        elif key == "mountopt":
            values["mount_options"] = value
        elif key in UNSUPPORTED:
            raise InvalidParameter(f"devmapper: dm.{key}: {UNSUPPORTED[key]} is not supported by this driver")
        else:
            raise InvalidParameter(f"devmapper: Unknown option {key}")
    if "thin_pool_dev" in values and "directlvm_device" in values:
        raise InvalidParameter("devmapper: cannot setup direct-lvm when dm.thinpooldev is also specified")
    if "thin_pool_dev" in values and ({"loop_data_size", "loop_metadata_size"} & values.keys()):
        raise InvalidParameter("devmapper: dm.loopdatasize and dm.loopmetadatasize do not apply with dm.thinpooldev")
    return Options(**values, mkfs_args=tuple(mkfs))  # type: ignore[arg-type]


def _percent(key: str, value: str) -> int:
    text = value.removesuffix("%")
    if not value.endswith("%") or not text.isdigit():
        raise InvalidParameter(f"devmapper: invalid value for dm.{key}: {value} (a percentage such as 10%)")
    percent = int(text)
    if percent >= 100:
        raise InvalidParameter(f"devmapper: invalid value for dm.{key}: {value} (must be less than 100%)")
    return percent
