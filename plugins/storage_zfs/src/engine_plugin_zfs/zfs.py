"""Talking to zfs: the ``zfs``/``zpool`` commands, or pyzfs (libzfs_core) where that works.

The commands are what dockerd's go-zfs runs too, restricted to what zfs-fuse 0.7 understands: no
``zfs list -p`` (``zfs get -Hp`` instead), no ``written``/``logicalused`` properties. zfs-fuse
finishes (un)mounts asynchronously, so a command right after one may fail with "dataset is busy":
those are retried for a few seconds.

libzfs_core covers create, snapshot, clone, destroy and exists; properties and mounting have no
libzfs_core call, so :class:`PyzfsBackend` still runs ``zfs set``/``zfs get`` for those.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import SystemError

log = logging.getLogger(__name__)

BUSY_RETRY_SECONDS = 10.0


class ZfsError(SystemError):
    """A zfs command failed; the message is zfs's own."""


class CommandBackend:
    """Every operation through the zfs/zpool commands."""

    description = "zfs command"

    def __init__(self, reason: str = "") -> None:
        if not shutil.which("zfs") or not shutil.which("zpool"):
            raise FileNotFoundError("the zfs and zpool commands are not installed")
        self.reason = reason  # why libzfs_core is not used, for docker info
        self._pending: list[subprocess.Popen[bytes]] = []
        self._pending_lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.description} ({self.reason})" if self.reason else self.description

    # -- running -----------------------------------------------------------------------------------

    def run(self, *args: str, retry_busy: bool = False, busy_seconds: float = BUSY_RETRY_SECONDS) -> str:
        deadline = time.monotonic() + busy_seconds
        while True:
            proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if proc.returncode == 0:
                return proc.stdout
            message = (proc.stderr or proc.stdout).strip()
            if retry_busy and "busy" in message and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise ZfsError(f"{' '.join(args)}: {message}")

    @staticmethod
    def _props(props: Mapping[str, str]) -> list[str]:
        return [arg for key, value in props.items() for arg in ("-o", f"{key}={value}")]

    # -- datasets ----------------------------------------------------------------------------------

    def create(self, name: str, props: Mapping[str, str]) -> None:
        self.run("zfs", "create", *self._props(props), name)

    def snapshot(self, name: str) -> None:
        self.run("zfs", "snapshot", name)

    def clone(self, snapshot: str, name: str, props: Mapping[str, str]) -> None:
        self.run("zfs", "clone", *self._props(props), snapshot, name)

    def destroy(self, name: str, *, recursive: bool = False, defer: bool = False) -> None:
        flags = (["-r"] if recursive else []) + (["-d"] if defer else [])
        self.run("zfs", "destroy", *flags, name, retry_busy=True)

    def destroy_later(self, snapshot: str) -> None:
        """``zfs destroy -d`` of a snapshot, off the caller's path: a container start need not wait for
        the mark that lets the snapshot go with its clone. :meth:`settle` waits for every such call."""
        proc = subprocess.Popen(
            ["zfs", "destroy", "-d", snapshot],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with self._pending_lock:
            self._pending = [p for p in self._pending if p.poll() is None]  # reap finished ones
            self._pending.append(proc)

    def settle(self) -> None:
        """Wait for the deferred destroys still running (before a removal, and at shutdown)."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for proc in pending:
            _, err = proc.communicate()
            if proc.returncode:
                log.warning("zfs destroy -d %s: %s", proc.args[-1], err.decode(errors="replace").strip())

    def exists(self, name: str) -> bool:
        proc = subprocess.run(["zfs", "get", "-H", "-o", "value", "name", name], capture_output=True, text=True)
        return proc.returncode == 0

    def children(self, name: str) -> list[tuple[str, str]]:
        """``(dataset, mountpoint)`` of the filesystems below ``name`` (not itself)."""
        out = self.run("zfs", "list", "-H", "-r", "-t", "filesystem", "-o", "name,mountpoint", name)
        rows = [tuple(line.split("\t", 1)) for line in out.splitlines() if line]
        return [(row[0], row[1]) for row in rows if row[0] != name]

    # -- properties --------------------------------------------------------------------------------

    def set(self, name: str, key: str, value: str, busy_seconds: float = BUSY_RETRY_SECONDS) -> None:
        self.run("zfs", "set", f"{key}={value}", name, retry_busy=True, busy_seconds=busy_seconds)

    def get(self, name: str, keys: Sequence[str]) -> dict[str, str]:
        out = self.run("zfs", "get", "-Hp", "-o", "property,value", ",".join(keys), name)
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def pool_health(self, pool: str) -> str:
        return self.run("zpool", "list", "-H", "-o", "health", pool).strip()


class PyzfsBackend(CommandBackend):
    """Dataset life cycle through libzfs_core (pyzfs); properties and mounts through the command.

    Not exercised on the development host: its zfs-fuse has no libzfs_core (see the README).
    """

    description = "libzfs_core (pyzfs)"

    def __init__(self, lzc: Any) -> None:
        super().__init__()
        self.lzc = lzc

    @staticmethod
    def _lzc_props(props: Mapping[str, str]) -> dict[bytes, object]:
        return {k.encode(): (int(v) if v.isdigit() else v.encode()) for k, v in props.items()}

    def _call(self, what: str, func: str, *args: object, **kwargs: object) -> None:
        try:
            getattr(self.lzc, func)(*args, **kwargs)
        except Exception as exc:  # libzfs_core raises its own exception tree
            raise ZfsError(f"{what}: {exc}") from None

    def create(self, name: str, props: Mapping[str, str]) -> None:
        self._call(f"create {name}", "lzc_create", name.encode(), props=self._lzc_props(props))

    def snapshot(self, name: str) -> None:
        self._call(f"snapshot {name}", "lzc_snapshot", [name.encode()])

    def clone(self, snapshot: str, name: str, props: Mapping[str, str]) -> None:
        self._call(f"clone {snapshot}", "lzc_clone", name.encode(), snapshot.encode(), self._lzc_props(props))

    def destroy(self, name: str, *, recursive: bool = False, defer: bool = False) -> None:
        if "@" in name:
            self._call(f"destroy {name}", "lzc_destroy_snaps", [name.encode()], defer=defer)
        elif recursive:
            super().destroy(name, recursive=True)  # libzfs_core destroys one dataset at a time
        else:
            self._call(f"destroy {name}", "lzc_destroy", name.encode())

    def destroy_later(self, snapshot: str) -> None:
        self.destroy(snapshot, defer=True)  # one library call: nothing to gain from running it aside

    def exists(self, name: str) -> bool:
        return bool(self.lzc.lzc_exists(name.encode()))


def choose_backend(pool: str) -> CommandBackend:
    """pyzfs when it imports and answers for ``pool``; otherwise the command, saying why."""
    try:
        import libzfs_core  # type: ignore[import-not-found]
    except ImportError as exc:
        return CommandBackend(f"pyzfs not importable: {exc}")
    try:
        if not libzfs_core.lzc_exists(pool.encode()):
            raise OSError(f"libzfs_core does not see pool {pool}")
    except Exception as exc:  # no libzfs_core.so, no /dev/zfs (zfs-fuse), another pool manager
        return CommandBackend(f"libzfs_core not working: {exc}")
    return PyzfsBackend(libzfs_core)
