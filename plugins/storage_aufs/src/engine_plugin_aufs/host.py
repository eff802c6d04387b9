"""The host facts aufs depends on: the kernel's filesystems, the backing filesystem, dirperm1."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from engine.drivers import fsinfo, libc


def aufs_problem(proc_filesystems: str = "/proc/filesystems") -> str:
    """Why aufs cannot run here ('' when it can). dockerd tried `modprobe aufs` first; so do we."""
    if "aufs" in fsinfo.kernel_filesystems(proc_filesystems):
        return ""
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "aufs"], capture_output=True)
        if "aufs" in fsinfo.kernel_filesystems(proc_filesystems):
            return ""
    return (
        "AUFS was not found in /proc/filesystems: this kernel has no aufs (never merged upstream; "
        "`modprobe aufs` found no module); use overlay2 or a kernel built with aufs"
    )


def _mountpoints() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].replace("\\040", " ") for line in f]


def is_mounted(path: Path) -> bool:
    return os.path.realpath(path) in _mountpoints()


def mounted_under(path: Path) -> list[str]:
    prefix = os.path.realpath(path).rstrip("/") + "/"
    return [mp for mp in _mountpoints() if mp.startswith(prefix)]


def probe_dirperm1(home: Path) -> bool:
    """Whether aufs takes ``dirperm1`` (dockerd's useDirperm): one throwaway mount under ``home``."""
    with tempfile.TemporaryDirectory(prefix="aufs-probe-", dir=home) as tmp:
        base, union = Path(tmp, "base"), Path(tmp, "union")
        base.mkdir()
        union.mkdir()
        if libc.mount("none", union, "aufs", 0, f"br:{base}=rw,dirperm1"):
            return False
        libc.umount2(union, libc.MNT_DETACH)
        return True
