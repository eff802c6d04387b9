"""What the host offers: the filesystem under a path, and the btrfs versions ``docker info`` shows."""

from __future__ import annotations

import re
import shutil
import subprocess


def build_version() -> str:
    """dockerd's "Build Version" is btrfs-progs' ``BTRFS_BUILD_VERSION`` ("Btrfs v6.2"); the same
    release's ``btrfs --version`` says "btrfs-progs v6.2". Empty when btrfs-progs is absent."""
    if not shutil.which("btrfs"):
        return ""
    proc = subprocess.run(["btrfs", "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    match = re.search(r"v[\d.]+\S*", proc.stdout)
    return f"Btrfs {match.group(0)}" if match else ""


def library_version() -> int | None:
    """The loaded libbtrfsutil's version as major*10000 + minor*100 + patch (how btrfs-progs encodes
    ``BTRFS_LIB_VERSION``, which dockerd shows); read from the library file this process mapped."""
    with open("/proc/self/maps") as f:
        for line in f:
            match = re.search(r"libbtrfsutil\.so\.(\d+)\.(\d+)\.(\d+)$", line.strip())
            if match:
                major, minor, patch = (int(x) for x in match.groups())
                return major * 10000 + minor * 100 + patch
    return None
