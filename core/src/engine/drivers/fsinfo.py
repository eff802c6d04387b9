"""What filesystem a path is on: the checks storage drivers make before they start (moby's
``graphdriver.GetFSMagic`` and ``FsNames``), and the "Backing Filesystem" ``docker info`` shows."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

__all__ = [
    "BTRFS_SUPER_MAGIC",
    "FS_NAMES",
    "FUSE_SUPER_MAGIC",
    "ZFS_SUPER_MAGIC",
    "existing_ancestor",
    "fs_magic",
    "fs_name",
    "kernel_filesystems",
]

BTRFS_SUPER_MAGIC = 0x9123683E
ZFS_SUPER_MAGIC = 0x2FC12FC1
FUSE_SUPER_MAGIC = 0x65735546  # fuse and fuseblk (zfs-fuse's datasets among them)

#: statfs magic -> the name ``docker info`` shows as "Backing Filesystem" (moby's FsNames)
FS_NAMES = {
    0x61756673: "aufs",
    BTRFS_SUPER_MAGIC: "btrfs",
    0x28CD3D45: "cramfs",
    0xF15F: "ecryptfs",
    0xEF53: "extfs",
    0xF2F52010: "f2fs",
    FUSE_SUPER_MAGIC: "fuse",
    0x00C36400: "ceph",
    0x01021994: "tmpfs",
    0x6969: "nfs",
    0x794C7630: "overlayfs",
    0x858458F6: "ramfs",
    0x52654973: "reiserfs",
    0x517B: "smb",
    0x73717368: "squashfs",
    0x58465342: "xfs",
    ZFS_SUPER_MAGIC: "zfs",
    0x65735543: "fusectl",
}

_libc = ctypes.CDLL(None, use_errno=True)


def fs_magic(path: Path) -> int:
    """``statfs(path).f_type``.

    :raises OSError: statfs failed (e.g. the path does not exist).
    """
    buf = ctypes.create_string_buffer(512)  # struct statfs; f_type is its first (long) field
    if _libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fspath(path))
    return ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


def fs_name(path: Path) -> str:
    """The backing filesystem's name as ``docker info`` shows it (``<unknown>`` as moby's)."""
    return FS_NAMES.get(fs_magic(path), "<unknown>")


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent: a driver's home may not exist before its first start."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def kernel_filesystems(path: str = "/proc/filesystems") -> frozenset[str]:
    """The filesystem types this kernel has (``overlay``, ``btrfs``, ``aufs`` ...); empty when the
    list cannot be read."""
    try:
        with open(path) as f:
            return frozenset(line.split()[-1] for line in f if line.strip())
    except OSError:
        return frozenset()
