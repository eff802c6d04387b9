"""Reading and preparing paths inside a container's root filesystem without escaping it.

Symlinks are resolved as if ``root`` were ``/`` (an absolute link target restarts at ``root``, ``..``
stops at ``root``), so a hostile image cannot make the daemon read or create host files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_MAX_LINKS = 255


def resolve_in_root(root: Path, path: str) -> Path:
    """The host path of ``path`` inside ``root``, following symlinks within ``root``. Components that
    do not exist are appended as they are."""
    root = Path(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def read_file(root: Path, path: str) -> str | None:
    """A text file inside the rootfs, or None when it does not exist or is not a regular file."""
    host = resolve_in_root(root, path)
    try:
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read(16 << 20).decode(errors="replace")


def mkdir_all(root: Path, path: str, mode: int = 0o755) -> Path:
    """Create ``path`` (and parents) inside the rootfs, root-owned, as dockerd does for WorkingDir.
    Raises NotADirectoryError when a component exists and is not a directory."""
    host = resolve_in_root(root, path)
    current = Path(root)
    for part in host.relative_to(root).parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, mode)
            os.chown(current, 0, 0)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(path)
    return host
