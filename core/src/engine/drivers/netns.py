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
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from engine.drivers import libc
from engine.drivers.libc import CLONE_NEWNET, MNT_DETACH, MS_BIND

if TYPE_CHECKING:
    from engine.drivers.storage import IdMap

__all__ = ["create", "delete", "is_mounted", "run_in", "user_ns_of"]

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


def user_ns_of(path: Path | str) -> Path:
    """The file that pins the user namespace owning the network namespace ``path`` (see ``create``)."""
    return Path(f"{path}.userns")


def create(
    path: Path,
    setup: Callable[[], None] | None = _lo_up,
    id_map: IdMap | None = None,
    user_ns: str | None = None,
) -> None:
    """Create a new network namespace bound to the file ``path``; ``setup`` runs inside it first.

    With ``id_map`` (userns-remap) the namespace is owned by a new user namespace with that mapping,
    pinned at :func:`user_ns_of` ``(path)``: a container must join that user namespace, as only the
    owner of a network namespace may mount sysfs for it, and ``runc exec`` joins the user namespace
    before the network one. With ``user_ns`` (a user namespace file such as ``/proc/<pid>/ns/user``)
    the namespace is made inside that existing user namespace instead, pinned the same way (a
    container that shares another's IPC or PID namespace must share its user namespace too)."""
    if user_ns is not None or (id_map is not None and not id_map.identity):
        _create_owned(path, id_map, user_ns)
        if setup is not None:
            run_in(path, setup)
        return
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


def _create_owned(path: Path, id_map: IdMap | None, user_ns: str | None = None) -> None:
    """A user namespace (new with ``id_map``'s mappings, or the existing ``user_ns``) and a network
    namespace in it, made by a short-lived child that waits on stdin while we write the mappings
    (as root: no newuidmap) and pin both namespaces."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    user = user_ns_of(path)
    for file in (path, user):
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    enter = ["nsenter", f"--user={user_ns}", "--"] if user_ns else []
    proc = subprocess.Popen(
        [*enter, "unshare", *([] if user_ns else ["--user"]), "--net", "--", "sh", "-c", "echo; read _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        if proc.stdout.readline() != b"\n":  # the namespaces exist once the shell runs
            raise OSError(errno.EIO, f"unshare: {proc.communicate()[1].decode(errors='replace').strip()}")
        if user_ns is None and id_map is not None:
            for kind, ranges in (("uid", id_map.uids), ("gid", id_map.gids)):
                with open(f"/proc/{proc.pid}/{kind}_map", "w") as f:
                    f.write("".join(f"{r.container_id} {r.host_id} {r.size}\n" for r in ranges))
        for kind, file in (("user", user), ("net", path)):
            _check(libc.mount(f"/proc/{proc.pid}/ns/{kind}", file, "none", MS_BIND), "bind mount", str(file))
        proc.stdin.close()
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        delete(path)
        raise


def is_mounted(path: Path) -> bool:
    target = str(path)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def delete(path: Path) -> None:
    """Unmount and remove a namespace file, and the user namespace that owns it if engine made one
    (``create`` with an id map); a missing file is fine (idempotent)."""
    for file in (Path(path), user_ns_of(path)):
        err = libc.umount2(file, MNT_DETACH)
        if err not in (0, errno.EINVAL, errno.ENOENT):
            _check(err, "umount", str(file))
        file.unlink(missing_ok=True)
