"""Bind mounts for the containers subsystem (engine.drivers.libc: no ``mount`` process)."""

from __future__ import annotations

import os

from engine.drivers import libc
from engine.drivers.libc import MNT_DETACH, MS_BIND, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT


def _check(err: int, what: str, path: str) -> None:
    if err:
        raise OSError(err, f"{what} {path}: {os.strerror(err)}")


def bind(source: str, target: str, *, readonly: bool = False, recursive: bool = True) -> None:
    rec = MS_REC if recursive else 0
    _check(libc.mount(source, target, None, MS_BIND | rec), "bind mount", target)
    libc.mount(None, target, None, MS_PRIVATE | rec)
    if readonly:
        _check(libc.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY), "read-only remount", target)


def unmount(target: str, *, detach: bool = True) -> None:
    _check(libc.umount2(target, MNT_DETACH if detach else 0), "unmount", target)
