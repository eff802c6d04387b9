"""The host facts aufs depends on: the kernel's filesystems, the backing filesystem, dirperm1."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from engine.drivers import libc

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

#: statfs magic -> the name dockerd shows as "Backing Filesystem" (a subset of moby's FsNames)
FS_NAMES = {
    0x61756673: "aufs",
    0x9123683E: "btrfs",
    0x0000EF53: "extfs",
    0x58465342: "xfs",
    0x01021994: "tmpfs",
    0x794C7630: "overlayfs",
    0x2FC12FC1: "zfs",
    0x65735546: "fuseblk",
}


def filesystems(path: str = "/proc/filesystems") -> set[str]:
    with open(path) as f:
        return {line.split()[-1] for line in f if line.strip()}


def aufs_problem(proc_filesystems: str = "/proc/filesystems") -> str:
    """Why aufs cannot run here ('' when it can). dockerd tried `modprobe aufs` first; so do we."""
    if "aufs" in filesystems(proc_filesystems):
        return ""
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "aufs"], capture_output=True)
        if "aufs" in filesystems(proc_filesystems):
            return ""
    return (
        "AUFS was not found in /proc/filesystems: this kernel has no aufs (never merged upstream; "
        "`modprobe aufs` found no module); use overlay2 or a kernel built with aufs"
    )


def fs_magic(path: Path) -> int:
    buf = ctypes.create_string_buffer(512)
    if _libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fspath(path))
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def fs_name(path: Path) -> str:
    magic = fs_magic(path)
    return FS_NAMES.get(magic, f"<unknown {magic:#x}>")


def existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


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
