"""btrfs quota groups through the kernel's ioctls (btrfsutil has no qgroup limits).

dockerd limits a layer the same way: enable quotas on the filesystem once, then set the
*referenced* limit (``max_rfer``) of the subvolume's own level-0 qgroup. A snapshot refers to its
parent's blocks too, so the limit counts what the layer sees, not only what it wrote.
"""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

_MAGIC = 0x94


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (_MAGIC << 8) | nr


_IOC_WRITE, _IOC_READ = 1, 2
QUOTA_CTL = _ioc(_IOC_READ | _IOC_WRITE, 40, 16)  # struct btrfs_ioctl_quota_ctl_args
QGROUP_CREATE = _ioc(_IOC_WRITE, 42, 16)  # struct btrfs_ioctl_qgroup_create_args
QGROUP_LIMIT = _ioc(_IOC_READ, 43, 48)  # struct btrfs_ioctl_qgroup_limit_args
QUOTA_RESCAN = _ioc(_IOC_WRITE, 44, 64)  # struct btrfs_ioctl_quota_rescan_args
QUOTA_RESCAN_WAIT = _ioc(0, 46, 0)

QUOTA_CTL_ENABLE = 1
LIMIT_MAX_RFER = 1 << 0


def _ioctl(path: Path, request: int, arg: bytes | int) -> bytes | int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, request, arg)
    finally:
        os.close(fd)


def enable(path: Path) -> None:
    """Enable quotas on the filesystem holding ``path``; a no-op when they already are."""
    _ioctl(path, QUOTA_CTL, struct.pack("=QQ", QUOTA_CTL_ENABLE, 0))


def limit(subvolume: Path, size: int) -> None:
    """Limit what ``subvolume`` may refer to (its level-0 qgroup, id 0 = the subvolume of the fd)."""
    _ioctl(subvolume, QGROUP_LIMIT, struct.pack("=QQQQQQ", 0, LIMIT_MAX_RFER, size, 0, 0, 0))


def destroy(path: Path, subvolume_id: int) -> None:
    """Drop the level-0 qgroup of a deleted subvolume (``0/<id>``)."""
    _ioctl(path, QGROUP_CREATE, struct.pack("=QQ", 0, subvolume_id))


def rescan(path: Path) -> None:
    """Recount usage (after removing layers) and wait for it, as dockerd does after a removal."""
    try:
        _ioctl(path, QUOTA_RESCAN, bytes(64))
    except OSError as exc:
        if exc.errno != 115:  # EINPROGRESS: one is already running; wait for that one
            raise
    _ioctl(path, QUOTA_RESCAN_WAIT, 0)
