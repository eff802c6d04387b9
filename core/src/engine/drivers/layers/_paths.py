"""Tar entry names cleaned as Docker does, and paths resolved inside a root as if it were ``/``.

``openat2(RESOLVE_IN_ROOT)`` where the kernel has it, a userspace walk otherwise; a path that would
climb out raises :class:`BreakoutError`."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path

from engine.drivers.layers._base import _MAX_LINKS, _O_CLOEXEC, BreakoutError


def clean_name(name: str) -> str:
    """A tar entry name cleaned as Docker does: relative, no ``.``/empty parts, ``..`` folded.

    A leading ``/`` is stripped (``..`` directly under it stays at the top, as ``filepath.Clean``
    does); a relative name whose ``..`` climbs above the top raises :class:`BreakoutError`.
    Returns ``""`` for the top directory itself.
    """
    absolute = name.startswith("/")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            elif not absolute:
                raise BreakoutError(f"{name!r} is outside of the extraction directory")
            continue
        parts.append(part)
    return "/".join(parts)


def _clean_inside(name: str, what: str) -> str:
    """Like :func:`clean_name`, but ``..`` above the top is refused even for absolute names."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise BreakoutError(f"{what} {name!r} is outside of the extraction directory")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def resolve_in_root(root: Path | str, path: str, follow_final: bool = True) -> Path:
    """The host path of ``path`` inside ``root``, every symlink resolved as if ``root`` were ``/``.

    Absolute symlink targets restart at ``root``; ``..`` never climbs above it. Components that do not
    exist are kept as they are. ``follow_final=False`` leaves a final symlink unresolved.
    """
    root = Path(os.path.abspath(root))
    pending = [p for p in path.split("/") if p not in ("", ".")]
    pending.reverse()  # a stack: the next component is last
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if not pending and not follow_final:
            resolved.append(part)
            break
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
    return root.joinpath(*resolved)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = 437  # the same number on every architecture (asm-generic)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)
_openat2_ok: bool | None = None


def _openat2_in_root(root_fd: int, rel: str, flags: int) -> int:
    global _openat2_ok
    how = _OpenHow(flags | _O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    while True:
        fd = _libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(root_fd),
            ctypes.c_char_p(os.fsencode(rel)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err == errno.EINTR or err == errno.EAGAIN:
            continue
        if err in (errno.ENOSYS, errno.EPERM) and _openat2_ok is None:  # old kernel or seccomp
            _openat2_ok = False
        raise OSError(err, os.strerror(err), rel)


def open_in_root(root_fd: int, root: Path, rel: str, flags: int = os.O_PATH | os.O_DIRECTORY) -> int:
    """Open ``rel`` below the directory ``root_fd`` (= ``root``), symlinks resolved inside it."""
    if not rel:
        return os.open(".", flags | _O_CLOEXEC, dir_fd=root_fd)
    if _openat2_ok is not False:
        try:
            fd = _openat2_in_root(root_fd, rel, flags)
        except OSError:
            if _openat2_ok is not False:
                raise
        else:
            return fd
    # Fallback without openat2: resolve in userspace, then refuse a final symlink.
    resolved = resolve_in_root(root, rel)
    return os.open(resolved, flags | os.O_NOFOLLOW | _O_CLOEXEC)
