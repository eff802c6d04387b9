"""mount(2)/umount2(2) through libc, and what /proc/self/mountinfo says is mounted.

Mounting through libc rather than mount(8) keeps a container start to one syscall. Option strings
longer than a page cannot be passed to mount(2), so overlay2 then uses paths relative to its home;
:func:`mount_relative` does that from a short-lived thread with its own working directory
(``unshare(CLONE_FS)``), so the process's cwd, shared by every other thread, never changes.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from engine.drivers import libc
from engine.drivers.libc import CLONE_FS, MNT_DETACH

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def mount(source: str, target: str | Path, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2); raises OSError with the errno."""
    err = libc.mount(source, target, fstype, flags, data)
    if err:
        raise OSError(err, os.strerror(err), os.fspath(target))


def unmount(target: str | Path, flags: int = MNT_DETACH) -> None:
    """umount2(2); a target that is not mounted (EINVAL) or gone (ENOENT) is not an error."""
    err = libc.umount2(target, flags)
    if err not in (0, errno.EINVAL, errno.ENOENT):
        raise OSError(err, os.strerror(err), os.fspath(target))


def mount_relative(cwd: Path, source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2) with ``target`` and the paths in ``data`` relative to ``cwd``."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            err = libc.unshare(CLONE_FS)  # this thread alone gets its own cwd
            if err:
                raise OSError(err, f"unshare(CLONE_FS): {os.strerror(err)}")
            os.chdir(cwd)
            mount(source, target, fstype, flags, data)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="overlay2-mount", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    if "\\" not in field:
        return field
    out, i = bytearray(), 0
    raw = field.encode()
    while i < len(raw):
        if raw[i : i + 1] == b"\\" and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return os.fsdecode(bytes(out))


def mountpoints() -> list[tuple[str, str]]:
    """``(mount point, fs type)`` of every mount in this mount namespace, in mount order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            out.append((_unescape(fields[4]), fields[sep + 1]))
    return out


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest (most recent) last."""
    top = os.path.realpath(path)
    prefix = top.rstrip("/") + "/"
    return [mp for mp, _ in mountpoints() if mp == top or mp.startswith(prefix)]


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    return any(mp == target for mp, _ in mountpoints())
