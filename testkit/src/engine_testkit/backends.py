"""Real storage backends for tests and benchmarks: a btrfs on a loop device, a zfs-fuse pool.

Both are context managers that build the backend in a temp directory and take every piece down
again, whatever happened in between: unmount, ``losetup -d``, ``zpool destroy``, the zfs-fuse
daemon stopped by its PID and its socket removed. A host that cannot provide the backend raises
:class:`BackendUnavailable` with the reason (tests turn it into a skip).

zfs-fuse facts (see the project's BACKENDS notes): one daemon per machine on a fixed socket, so
a daemon someone else runs is never touched (the pool is then refused); (un)mounts complete
asynchronously, so destroying right after an unmount may say "dataset is busy" and is retried.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.drivers import fsinfo

ZFS_SOCKET = Path("/var/run/zfs/zfs_socket")


class BackendUnavailable(Exception):
    """The backend cannot be built on this host; the message says why."""


def _run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, args, proc.stdout, proc.stderr)
    return proc.stdout


def _retry(*args: str, attempts: int = 300) -> None:
    """zfs/zpool commands that fail while zfs-fuse is still finishing an (un)mount: up to 30 s (two
    bench runs at load average 10 to 14 on 2 cores failed a 5 s retry destroying the bench dataset)."""
    for attempt in range(attempts):
        proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode == 0:
            return
        if attempt == attempts - 1:
            raise subprocess.CalledProcessError(proc.returncode, args, proc.stdout, proc.stderr)
        time.sleep(0.1)


def _mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


@contextmanager
def btrfs_loop(size: int = 1 << 30, parent: Path | None = None) -> Iterator[Path]:
    """A fresh btrfs (sparse file, loop device, mkfs.btrfs) mounted on a temp dir; yields the mount."""
    if os.geteuid() != 0:
        raise BackendUnavailable("needs root (losetup, mount)")
    if not shutil.which("mkfs.btrfs"):
        raise BackendUnavailable("mkfs.btrfs not installed (Debian package btrfs-progs)")
    if "btrfs" not in fsinfo.kernel_filesystems():
        raise BackendUnavailable("this kernel has no btrfs")
    work = Path(tempfile.mkdtemp(prefix="engine-btrfs-", dir=parent))
    image, mnt = work / "btrfs.img", work / "mnt"
    mnt.mkdir()
    device = ""
    try:
        with open(image, "wb") as f:
            f.truncate(size)
        _run("mkfs.btrfs", "-q", "-f", str(image))
        device = _run("losetup", "-f", "--show", str(image)).strip()
        _run("mount", "-t", "btrfs", device, str(mnt))
        try:
            yield mnt
        finally:
            subprocess.run(["umount", "-R", str(mnt)], capture_output=True)
            if _mounted(mnt):
                _run("umount", "-l", str(mnt))
    finally:
        if device:
            subprocess.run(["losetup", "-d", device], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def zfs_fuse_pids() -> list[int]:
    """PIDs of running zfs-fuse daemons (anyone's)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "zfs-fuse":
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


@dataclass(frozen=True)
class ZfsPool:
    name: str  # the pool, also its root dataset
    mountpoint: Path  # where the root dataset is mounted


@contextmanager
def zfs_fuse_daemon(work: Path) -> Iterator[int]:
    """Start zfs-fuse in the foreground (its PID is ours), wait until it answers, stop it by PID."""
    if os.geteuid() != 0:
        raise BackendUnavailable("needs root (zfs-fuse)")
    if not shutil.which("zfs-fuse"):
        raise BackendUnavailable("zfs-fuse not installed (Debian package zfs-fuse)")
    others = zfs_fuse_pids()
    if others:
        raise BackendUnavailable(f"another zfs-fuse is running (pid {others[0]}); one per machine")
    ZFS_SOCKET.unlink(missing_ok=True)  # a killed daemon's socket would answer nothing
    # --enable-xattr: layers carry xattrs (security.capability...) as on kernel zfs
    command = ["zfs-fuse", "--no-daemon", "--no-kstat-mount", "--enable-xattr"]
    with open(work / "zfs-fuse.log", "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if proc.poll() is not None:
                raise BackendUnavailable(f"zfs-fuse exited at start: {(work / 'zfs-fuse.log').read_text()[-300:]}")
            if subprocess.run(["zpool", "list"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise BackendUnavailable("zfs-fuse did not answer within 10 s")
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        ZFS_SOCKET.unlink(missing_ok=True)


@contextmanager
def zfs_dataset(pool: ZfsPool, name: str) -> Iterator[Path]:
    """A child dataset ``<pool>/<name>`` mounted at ``<pool mount>/<name>``; destroyed with its children."""
    dataset = f"{pool.name}/{name}"
    mountpoint = pool.mountpoint / name
    _run("zfs", "create", "-o", f"mountpoint={mountpoint}", dataset)
    try:
        yield mountpoint
    finally:
        children = _run("zfs", "list", "-H", "-r", "-o", "name", "-t", "filesystem", dataset).split()
        for child in reversed(children):
            subprocess.run(["zfs", "umount", child], capture_output=True)
        _retry("zfs", "destroy", "-r", dataset)


@contextmanager
def zfs_pool(size: int = 1 << 30, parent: Path | None = None, name: str = "") -> Iterator[ZfsPool]:
    """zfs-fuse started for the occasion and a pool on a sparse file vdev, its root dataset mounted on
    a temp dir. Teardown: every dataset unmounted and destroyed with the pool, then the daemon stopped."""
    work = Path(tempfile.mkdtemp(prefix="engine-zfs-", dir=parent))
    pool = name or f"enginetest{os.getpid()}"
    root = work / "root"
    try:
        with zfs_fuse_daemon(work):
            image = work / "pool.img"
            with open(image, "wb") as f:
                f.truncate(size)
            _run("zpool", "create", "-f", "-m", str(root), pool, str(image))
            try:
                yield ZfsPool(pool, root)
            finally:
                datasets = _run("zfs", "list", "-H", "-r", "-o", "name", "-t", "filesystem", pool).split()
                for dataset in reversed(datasets):
                    subprocess.run(["zfs", "umount", dataset], capture_output=True)
                _retry("zpool", "destroy", "-f", pool)
    finally:
        for mountpoint in _mounts_below(work):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def _mounts_below(path: Path) -> list[str]:
    prefix = os.path.realpath(path) + "/"
    with open("/proc/self/mountinfo") as f:
        return [mp for mp in (line.split()[4] for line in f) if mp.startswith(prefix)][::-1]
