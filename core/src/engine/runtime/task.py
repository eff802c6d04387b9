"""Tasks: a running container process (or exec) owned by its shim, seen from the daemon.

A task object holds no live resources: everything is on disk under its state directory (the
shim's socket, pid files, spool, exit.json), so it can be dropped and rebuilt by
``Runtime.restore`` after a daemon restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal as signals
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import Conflict, EngineError, InvalidParameter
from engine.runtime import cgroups, control
from engine.runtime.oci import OCIRuntime, RuntimeCommandError
from engine.runtime.spool import Offset, Spool, SpoolReader

META_FILE = "runtime.json"
EXIT_FILE = "exit.json"
PID_FILE = "init.pid"
SHIM_PID_FILE = "shim.pid"
SOCKET = "shim.sock"
RUNC_LOG = "runc.log"
SHIM_LOG = "shim.log"

#: exit code reported when a shim vanished without writing exit.json (dockerd uses 255 likewise)
UNKNOWN_EXIT = 255


@dataclass(frozen=True)
class ExitStatus:
    """How a container process ended: ``exit_code`` (128+signal when killed), the signal, whether the
    memory cgroup OOM-killed anything in it, and when (realtime ns). ``error`` is set when the shim
    was lost and the status is unknown."""

    exit_code: int
    oom_killed: bool = False
    finished_at_ns: int = 0
    signal: int = 0
    pid: int = 0
    error: str = ""

    @property
    def finished_at(self) -> datetime:
        return datetime.fromtimestamp(self.finished_at_ns / 1e9, UTC)

    @classmethod
    def load(cls, path: Path) -> ExitStatus | None:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return cls(
            exit_code=int(data["exit_code"]),
            oom_killed=bool(data.get("oom_killed")),
            finished_at_ns=int(data.get("finished_at", 0)),
            signal=int(data.get("signal", 0)),
            pid=int(data.get("pid", 0)),
        )

    @classmethod
    def lost(cls, why: str) -> ExitStatus:
        return cls(exit_code=UNKNOWN_EXIT, finished_at_ns=time.time_ns(), error=why)


class StartFailed(EngineError):
    """The OCI runtime refused to start the process. ``message`` is dockerd's text
    ("OCI runtime create failed: <runc's error>: unknown"); ``exit_code`` is what dockerd records for
    the container (127 command not found, 126 not executable, 128 otherwise); ``runtime_message``
    is the runtime's own error."""

    def __init__(self, message: str, runtime_message: str, exit_code: int, invalid_config: bool) -> None:
        super().__init__(message)
        self.runtime_message = runtime_message
        self.exit_code = exit_code
        # dockerd answers 400 for a bad command/mount, 500 for the rest
        self.status = InvalidParameter.status if invalid_config else 500

    @classmethod
    def from_runtime(cls, action: str, runtime_message: str, command: str = "") -> StartFailed:
        msg = runtime_message or "unknown error"
        low = msg.lower()
        exit_code, invalid = 128, False
        if (not command or command.lower() in low) and (
            "executable file not found" in low or "no such file or directory" in low
        ):
            exit_code, invalid = 127, True
        elif "permission denied" in low:
            exit_code, invalid = 126, True
        elif "not a directory" in low:
            msg += (
                ": Are you trying to mount a directory onto a file (or vice-versa)? "
                "Check if the specified host path exists and is the expected type"
            )
            exit_code, invalid = 127, True
        return cls(f"OCI runtime {action} failed: {msg}: unknown", runtime_message, exit_code, invalid)


def read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


class Process:
    """What a container task and an exec task share: output spool, stdin, resize, signal, wait."""

    def __init__(self, container_id: str, state_dir: Path, meta: dict[str, Any], pid: int) -> None:
        self.container_id = container_id
        self.state_dir = state_dir
        self.meta = meta
        self.pid = pid
        self.tty: bool = bool(meta.get("tty"))
        self.open_stdin: bool = bool(meta.get("stdin"))
        self.socket = state_dir / SOCKET
        self.spool = Spool(Path(meta.get("spool_dir") or state_dir / "spool"), alive=self.is_alive)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.container_id[:12]} pid={self.pid}>"

    # -- state ------------------------------------------------------------------------------------

    def is_alive(self) -> bool:
        """Whether the shim still runs (the process may have exited and its output be draining)."""
        return control.alive(self.socket)

    def exit_status(self) -> ExitStatus | None:
        """The exit status once the shim wrote it, else None."""
        return ExitStatus.load(self.state_dir / EXIT_FILE)

    def shim_pid(self) -> int:
        return read_pid(self.state_dir / SHIM_PID_FILE)

    # -- output -----------------------------------------------------------------------------------

    def output(self, offset: Offset = "acked", follow: bool = True) -> SpoolReader:
        """Async iterator of :class:`engine.runtime.spool.Chunk` from ``offset``: "acked" (where the
        consumer left off: the log copier), "end" (only new output: attach), "start", or a number."""
        return self.spool.reader(offset, follow)

    def ack(self, offset: int) -> None:
        """The log copier consumed everything before ``offset`` (blocking, cheap)."""
        self.spool.ack(offset)

    # -- input ------------------------------------------------------------------------------------

    async def attach_stdin(self) -> control.StdinWriter:
        """A stdin connection for one attached client (bytes are dropped when stdin is not open).
        Conflict when the shim is gone (the process exited)."""
        try:
            reader, writer = await control.open_connection(self.socket)
        except (FileNotFoundError, ConnectionError):
            raise Conflict(f"container {self.container_id} is not running") from None
        return control.StdinWriter(reader, writer)

    def close_stdin(self) -> None:
        """Half-close: the process reads EOF once what was sent is consumed (no-op with a TTY)."""
        self._request(b"C", reply=False)

    def resize(self, height: int, width: int) -> None:
        """TIOCSWINSZ on the pty (no-op without a TTY)."""
        if not 0 <= height <= 0xFFFF or not 0 <= width <= 0xFFFF:
            raise InvalidParameter(f"invalid tty size {height}x{width}")
        self._request(b"R", struct.pack("<HH", height, width), reply=False)

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to the process through its shim (its parent, so no pid-reuse race).
        False if it has already exited."""
        for _ in range(50):
            try:
                answer = self._request(b"K", struct.pack("<I", int(sig)))
            except (FileNotFoundError, ConnectionError):
                answer = ""
            if answer == "ok":
                return True
            if answer.startswith("err 3"):  # ESRCH: exited, not yet reaped
                return False
            if answer:
                raise EngineError(f"cannot signal process {self.pid}: {answer}")
            # no answer: the shim is exiting (then exit.json exists or it is gone), or it turned us
            # away because all its client slots were busy (then ask again)
            if self.exit_status() is not None or not self.is_alive():
                return False
            time.sleep(0.02)
        raise EngineError(f"cannot signal process {self.pid}: its shim does not answer")

    def _request(self, op: bytes, payload: bytes = b"", reply: bool = True) -> str:
        try:
            return control.request(self.socket, op, payload, reply=reply)
        except (FileNotFoundError, ConnectionError):
            if op in (b"K",):
                raise
            raise Conflict(f"container {self.container_id} is not running") from None

    # -- waiting ----------------------------------------------------------------------------------

    async def wait(self) -> ExitStatus:
        """Until the process exited and its output is in the spool."""
        while True:
            try:
                reader, writer = await control.open_connection(self.socket)
            except OSError:
                return await asyncio.to_thread(self._final_status)
            answer = b""
            try:
                writer.write(control.frame(b"W"))
                await writer.drain()
                answer = await reader.read()  # the exit line, then EOF; or EOF if the shim died
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()
            if answer:
                # the shim answers once the exit is recorded: one small read, no thread hop
                status = self.exit_status()
                if status is not None:
                    return status
            if answer or not await asyncio.to_thread(self._turned_away):
                return await asyncio.to_thread(self._final_status)
            await asyncio.sleep(0.05)

    def wait_sync(self, timeout: float | None = None) -> ExitStatus | None:
        """Blocking wait; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            try:
                sock = control.connect(self.socket, left)
            except TimeoutError:
                return None
            except OSError:
                return self._final_status()
            answer = b""
            try:
                sock.sendall(control.frame(b"W"))
                while got := sock.recv(4096):
                    answer += got
            except TimeoutError:
                return None
            except OSError:
                pass
            finally:
                sock.close()
            if answer or not self._turned_away():
                return self._final_status()
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def _turned_away(self) -> bool:
        """EOF without an answer while the shim lives and no exit is recorded: all its client slots
        were busy (ask again), as opposed to the shim exiting or dying."""
        return self.exit_status() is None and self.is_alive()

    def _final_status(self) -> ExitStatus:
        for _ in range(50):
            status = self.exit_status()
            if status is not None:
                return status
            if not self.is_alive():
                break
            time.sleep(0.02)
        return self.exit_status() or ExitStatus.lost("the shim exited without recording an exit status")

    def _wait_shim_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_alive():
                return True
            time.sleep(0.02)
        return False


class Task(Process):
    """A container's init process. Blocking methods are meant for threads (``asyncio.to_thread``)."""

    def __init__(self, container_id: str, state_dir: Path, meta: dict[str, Any], pid: int) -> None:
        super().__init__(container_id, state_dir, meta, pid)
        self.runtime = OCIRuntime.from_json(meta["runtime"])
        self.cgroups_path: str = meta.get("cgroups_path") or ""

    @property
    def id(self) -> str:
        return self.container_id

    def kill(self, sig: int = signals.SIGTERM, all: bool = False) -> bool:
        """Signal the container's init (``all``: every process in it, through the runtime). False if
        it is not running any more."""
        if all:
            try:
                self.runtime.kill(self.container_id, sig, all=True)
            except RuntimeCommandError:
                return False
            return True
        return self.signal(sig)

    def pause(self) -> None:
        self.runtime.pause(self.container_id)

    def resume(self) -> None:
        self.runtime.resume(self.container_id)

    def update(self, resources: dict[str, Any]) -> None:
        """``runc update`` with an OCI ``linux.resources`` dict (see ``spec.linux_resources``)."""
        self.runtime.update(self.container_id, resources)

    def pids(self) -> list[int]:
        """Host pids of every process in the container (``runc ps``)."""
        return self.runtime.ps(self.container_id)

    def stats(self) -> dict[str, Any]:
        """Raw cgroup numbers (see ``engine.runtime.cgroups.stats``)."""
        return cgroups.stats(self.cgroups_path)

    def state(self) -> dict[str, Any] | None:
        """The runtime's view (``runc state``: status running/paused/stopped/created, pid ...)."""
        return self.runtime.state(self.container_id)

    def delete(self, timeout: float = 10.0) -> None:
        """Remove everything: kill what still runs, ``runc delete``, the cgroups, the state dir."""
        delete_container(self.state_dir, self.container_id, timeout)


class ExecTask(Process):
    """A process started by ``docker exec`` in a running container."""

    def __init__(self, container_id: str, exec_id: str, state_dir: Path, meta: dict[str, Any], pid: int) -> None:
        super().__init__(container_id, state_dir, meta, pid)
        self.exec_id = exec_id

    @property
    def id(self) -> str:
        return self.exec_id

    def kill(self, sig: int = signals.SIGKILL) -> bool:
        return self.signal(sig)

    def delete(self, timeout: float = 5.0) -> None:
        """Kill the process if it still runs, then remove its state directory."""
        if self.is_alive():
            self.signal(signals.SIGKILL)
            self._wait_shim_gone(timeout)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def read_meta(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / META_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def shim_running(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` is still the shim of ``state_dir`` and not yet a zombie (checked against its
    command line, so a reused pid never counts)."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and bool(cmdline) and cmdline[0].endswith(b"engine-shim") and os.fsencode(state_dir) in cmdline


def delete_container(state_dir: Path, container_id: str, timeout: float = 10.0) -> None:
    meta = read_meta(state_dir)
    if meta is None:
        shutil.rmtree(state_dir, ignore_errors=True)
        return
    exec_dir = state_dir / "exec"
    dirs = [state_dir] + ([d for d in exec_dir.iterdir() if d.is_dir()] if exec_dir.is_dir() else [])
    shims = [(d, read_pid(d / SHIM_PID_FILE)) for d in dirs]  # before they exit and remove the files
    runtime = OCIRuntime.from_json(meta["runtime"])
    runtime.delete(container_id, force=True)  # SIGKILLs a running init first
    deadline = time.monotonic() + timeout
    for d, pid in shims:
        while shim_running(pid, d) and time.monotonic() < deadline:
            time.sleep(0.01)
        if shim_running(pid, d):
            # last resort for a shim that outlived its container (host pid namespace leftovers)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signals.SIGKILL)
    if meta.get("cgroups_path"):
        cgroups.remove(meta["cgroups_path"])
    shutil.rmtree(state_dir, ignore_errors=True)
