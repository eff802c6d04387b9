"""One engined per data-root and exec-root: an exclusive lock held for the daemon's whole life.

dockerd refuses a second daemon through its pidfile ("process with PID N is still running") and the
exclusive bolt locks on its metadata databases. engine takes a POSIX record lock (``fcntl``) on
``<root>/engine.lock`` in each root and writes its pid there, so a second engined on either root
refuses at once and names the holder, whatever pidfile it was given.

POSIX locks belong to the process: they are not inherited by forked children (the per-container
shims that outlive a daemon under live-restore never hold them) and the kernel drops them when the
daemon exits, even on SIGKILL, so a crash leaves nothing to clean up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.errors import ConfigError

LOCK_NAME = "engine.lock"


class RootLocks:
    """The held locks; keep the object alive as long as the daemon runs, then :meth:`release`."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def acquire(self, what: str, root: Path, mode: int) -> None:
        """Lock ``root`` (created with ``mode`` if missing).

        :raises ConfigError: another process holds it; the message names its pid.
        """
        root.mkdir(parents=True, exist_ok=True, mode=mode)
        path = root / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process with PID {holder} is still running" if holder else "another process holds it"
            raise ConfigError(
                f"{what} {root} is in use by another engined ({who}): stop it or choose another {what}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fds.append(fd)

    def release(self) -> None:
        for fd in self._fds:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            os.close(fd)
        self._fds = []


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


def lock_roots(data_root: Path, exec_root: Path) -> RootLocks:
    """Lock data-root, then exec-root (the same directory is locked once).

    :raises ConfigError: either is held by another daemon; nothing stays locked then.
    """
    locks = RootLocks()
    try:
        locks.acquire("data-root", data_root, 0o711)
        if exec_root.resolve() != data_root.resolve():
            locks.acquire("exec-root", exec_root, 0o700)
    except BaseException:
        locks.release()
        raise
    return locks
