"""The ``-init`` layer under every container's RW layer (dockerd's initlayer.Setup): mount targets
and files the runtime bind-mounts over, so the image's own files are never touched."""

from __future__ import annotations

import os
from pathlib import Path

_DIRS = ("dev/pts", "dev/shm", "proc", "sys")
_FILES = (".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console")
_LINKS = {"etc/mtab": "/proc/mounts"}


def setup(root: Path) -> None:
    for rel in _DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True, mode=0o755)
    for rel in _FILES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if not os.path.lexists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o755)
            os.close(fd)
    for rel, target in _LINKS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if not os.path.lexists(path):
            os.symlink(target, path)
