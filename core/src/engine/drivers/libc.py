"""mount(2), umount2(2), setns(2) and unshare(2) through libc, set up once for every subsystem.

Each call returns 0 or the errno, so callers word their errors as the part of Docker they mirror
does (moby's ``mount ...: <errno text>``, a bind mount's target, ...).
"""

from __future__ import annotations

import ctypes
import os

__all__ = [
    "CLONE_FS",
    "CLONE_NEWNET",
    "MNT_DETACH",
    "MS_BIND",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "mount",
    "setns",
    "umount2",
    "unshare",
]

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
CLONE_FS = 0x200
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]


def _encode(value: str | os.PathLike[str] | None) -> bytes | None:
    return os.fsencode(value) if value else None  # "" means "none" to mount(2), as None


def _result(ret: int) -> int:
    return ctypes.get_errno() if ret != 0 else 0


def mount(
    source: str | os.PathLike[str] | None,
    target: str | os.PathLike[str],
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> int:
    return _result(_libc.mount(_encode(source), os.fsencode(target), _encode(fstype), flags, _encode(data)))


def umount2(target: str | os.PathLike[str], flags: int = MNT_DETACH) -> int:
    return _result(_libc.umount2(os.fsencode(target), flags))


def setns(fd: int, nstype: int) -> int:
    return _result(_libc.setns(fd, nstype))


def unshare(flags: int) -> int:
    return _result(_libc.unshare(flags))
