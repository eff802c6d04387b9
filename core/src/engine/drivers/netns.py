"""Network namespaces as files: create, enter (per thread), delete.

A sandbox's namespace lives as long as its bind mount at ``<exec-root>/netns/<key>`` (as
``ip netns`` and dockerd do), so it outlives the processes in it and survives a daemon
restart. Namespace switches use ``setns`` in a short-lived thread of our own: the network
namespace is per thread, so the rest of the daemon never sees the switch, and the thread
ends instead of switching back.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.drivers import libc
from engine.drivers.libc import CLONE_NEWNET, MNT_DETACH, MS_BIND

__all__ = ["create", "delete", "is_mounted", "run_in"]

T = TypeVar("T")


def _check(err: int, what: str, path: str = "") -> None:
    if err:
        raise OSError(err, f"{what}: {os.strerror(err)}", path or None)


def _run_in_thread(fn: Callable[[], T]) -> T:
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=run, name="netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["result"]  # type: ignore[return-value]


def _enter(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(libc.setns(fd, CLONE_NEWNET), "setns", str(path))
    finally:
        os.close(fd)


def run_in(path: str | Path | None, fn: Callable[[], T]) -> T:
    """Run ``fn`` in the network namespace at ``path`` (``None``: the daemon's own) and return its result."""
    if path is None:
        return fn()

    def inside() -> T:
        _enter(path)
        return fn()

    return _run_in_thread(inside)


def _lo_up() -> None:
    from pyroute2.iproute import IPRoute

    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def create(path: Path, setup: Callable[[], None] | None = _lo_up) -> None:
    """Create a new network namespace bound to the file ``path``; ``setup`` runs inside it first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)

    def inside() -> None:
        _check(libc.unshare(CLONE_NEWNET), "unshare")
        if setup is not None:
            setup()
        source = f"/proc/self/task/{threading.get_native_id()}/ns/net"
        _check(libc.mount(source, path, "none", MS_BIND), "bind mount", str(path))

    try:
        _run_in_thread(inside)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def is_mounted(path: Path) -> bool:
    target = str(path)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def delete(path: Path) -> None:
    """Unmount and remove a namespace file; a missing file is fine (idempotent)."""
    err = libc.umount2(path, MNT_DETACH)
    if err not in (0, errno.EINVAL, errno.ENOENT):
        _check(err, "umount", str(path))
    path.unlink(missing_ok=True)
