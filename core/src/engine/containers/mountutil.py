"""mount(2)/umount2(2) through libc: bind mounts without spawning ``mount``."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def _check(result: int, what: str, path: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what} {path}: {os.strerror(errno)}")


def bind(source: str, target: str, *, readonly: bool = False, recursive: bool = True) -> None:
    flags = MS_BIND | (MS_REC if recursive else 0)
    _check(_libc.mount(source.encode(), target.encode(), None, flags, None), "bind mount", target)
    _libc.mount(None, target.encode(), None, MS_PRIVATE | (MS_REC if recursive else 0), None)
    if readonly:
        _check(
            _libc.mount(None, target.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None),
            "read-only remount",
            target,
        )


def unmount(target: str, *, detach: bool = True) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH if detach else 0), "unmount", target)
