"""Where data-root lives: the filesystem type under a path and the zfs dataset that holds it.

Kernel zfs reports ZFS_SUPER_MAGIC from statfs; zfs-fuse reports fuseblk like any FUSE block
filesystem, so the mount table decides: the mount holding the path must be of type ``zfs`` or
``fuse.zfs``, and its source is the dataset (as dockerd's lookupZfsDataset reads it).
"""

from __future__ import annotations

import os
from pathlib import Path


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounts() -> list[tuple[str, str, str]]:
    """``(mount point, fs type, source)`` of every mount, in mount order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            out.append((_unescape(fields[4]), fields[sep + 1], _unescape(fields[sep + 2])))
    return out


def holding_mount(path: Path) -> tuple[str, str, str]:
    """The mount ``path`` is on (the last mount of the longest matching mount point)."""
    target = os.path.realpath(path)
    best = ("/", "", "")
    for mountpoint, fstype, source in mounts():
        inside = target == mountpoint or target.startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) >= len(best[0]):
            best = (mountpoint, fstype, source)
    return best


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    return any(mountpoint == target for mountpoint, _, _ in mounts())


def mounted_under(path: Path) -> list[str]:
    prefix = os.path.realpath(path).rstrip("/") + "/"
    return [mountpoint for mountpoint, _, _ in mounts() if mountpoint.startswith(prefix)]
