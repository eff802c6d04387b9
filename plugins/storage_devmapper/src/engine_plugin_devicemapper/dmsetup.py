"""The device-mapper and loop-device commands the driver runs (dmsetup, losetup, blockdev).

Through the command-line tools, not libdevmapper: each call is one subprocess. There is often no
udev (containers, the test guest), so every dmsetup call skips udev synchronisation
(``DM_DISABLE_UDEV=1`` and ``--noudevsync``) and dmsetup creates the /dev/mapper nodes itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from engine.errors import SystemError

_ENV = {**os.environ, "DM_DISABLE_UDEV": "1", "LC_ALL": "C"}


class CommandError(SystemError):
    """A command failed; ``stderr`` is its message (``File exists`` tells a used device id)."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, env=_ENV)
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip()
        raise CommandError(f"devmapper: {' '.join(args)}: {err}", err)
    return proc.stdout


def dmsetup(*args: str) -> str:
    return run("dmsetup", "--noudevsync", *args)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


# -- device-mapper -----------------------------------------------------------------------------------


def targets() -> set[str]:
    """Target types the kernel offers (``thin-pool``, ``thin``, ...)."""
    return {line.split()[0] for line in dmsetup("targets").splitlines() if line.strip()}


def library_version() -> str:
    """``1.02.185 (2022-05-18)``, as dockerd's "Library Version" row shows it."""
    for line in run("dmsetup", "version").splitlines():
        if line.startswith("Library version:"):
            return line.partition(":")[2].strip()
    return ""


def exists(name: str) -> bool:
    try:
        dmsetup("info", "-c", "--noheadings", "-o", "name", name)
    except CommandError:
        return False
    return True


def names() -> list[str]:
    """Every device-mapper device's name (``dmsetup ls``)."""
    out = dmsetup("ls").strip()
    if out == "No devices found":
        return []
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def create(name: str, table: str) -> None:
    dmsetup("create", name, "--table", table)


def remove(name: str) -> None:
    dmsetup("remove", name)  # no --retry: that waits out udev, and there is none


def suspend(name: str) -> None:
    dmsetup("suspend", name)


def resume(name: str) -> None:
    dmsetup("resume", name)


def message(pool: str, text: str) -> None:
    dmsetup("message", pool, "0", text)


def table(name: str) -> str:
    return dmsetup("table", name).strip()


@dataclass(frozen=True)
class PoolStatus:
    transaction_id: int
    metadata_used: int  # 4 KiB blocks
    metadata_total: int
    data_used: int  # pool blocks
    data_total: int


_POOL_STATUS = re.compile(r"^\d+ \d+ thin-pool (\d+) (\d+)/(\d+) (\d+)/(\d+)")


def pool_status(name: str) -> PoolStatus:
    out = dmsetup("status", name).strip()
    m = _POOL_STATUS.match(out)
    if not m:
        raise SystemError(f"devmapper: unexpected status of {name}: {out!r}")
    return PoolStatus(*(int(g) for g in m.groups()))


# -- loop devices and block devices ------------------------------------------------------------------


def attach_loop(path: str) -> str:
    """Attach ``path`` to a free loop device; returns ``/dev/loopN``."""
    return run("losetup", "--find", "--show", path).strip()


def detach_loop(device: str) -> None:
    run("losetup", "--detach", device)


def loop_of(path: str) -> str | None:
    """The loop device ``path`` is attached to already (a restart of the driver), or None."""
    out = run("losetup", "--noheadings", "--output", "NAME", "--associated", path).split()
    return out[0] if out else None


def sectors(device: str) -> int:
    return int(run("blockdev", "--getsz", device).strip())
