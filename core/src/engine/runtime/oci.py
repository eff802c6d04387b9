"""The OCI runtime command line (runc and compatible: crun, runsc ...), one object per configured runtime.

Everything here blocks (it runs the runtime binary); callers use threads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError, InvalidParameter

DEFAULT_RUNTIME = "runc"


class RuntimeCommandError(EngineError):
    """The runtime binary failed; ``message`` is its error text."""


@dataclass(frozen=True)
class OCIRuntime:
    """A runtime as configured: name (as in ``HostConfig.Runtime``), binary, ``runtimeArgs``, and the
    state directory we give it with ``--root``."""

    name: str
    path: str
    args: tuple[str, ...] = ()
    root: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def global_args(self) -> list[str]:
        out = []
        if self.root and "--root" not in self.args:
            out += ["--root", self.root]
        return out + list(self.args)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "args": list(self.args), "root": self.root}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OCIRuntime:
        return cls(data["name"], data["path"], tuple(data.get("args", ())), data.get("root", ""))

    # -- commands ---------------------------------------------------------------------------------

    def run(self, *args: str, input: bytes | None = None, timeout: float = 60.0) -> bytes:
        cmd = [self.path, *self.global_args(), *args]
        try:
            proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise RuntimeCommandError(f"{self.name}: {exc.strerror}: {self.path}") from exc
        if proc.returncode != 0:
            raise RuntimeCommandError(error_text(proc.stderr) or f"{self.name} {args[0]} exited {proc.returncode}")
        return proc.stdout

    def kill(self, container_id: str, signal: int, all: bool = False) -> None:
        self.run("kill", *(["--all"] if all else []), container_id, str(signal))

    def pause(self, container_id: str) -> None:
        self.run("pause", container_id)

    def resume(self, container_id: str) -> None:
        self.run("resume", container_id)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self.run("update", "--resources", "-", container_id, input=json.dumps(resources).encode())

    def ps(self, container_id: str) -> list[int]:
        out = self.run("ps", "--format", "json", container_id)
        return [int(p) for p in json.loads(out or b"[]") or []]

    def state(self, container_id: str) -> dict[str, Any] | None:
        """``runc state`` as a dict, or None when the runtime does not know the container."""
        try:
            return json.loads(self.run("state", container_id))
        except RuntimeCommandError as exc:
            if "does not exist" in exc.message or "not exist" in exc.message:
                return None
            raise

    def delete(self, container_id: str, force: bool = True) -> None:
        try:
            self.run("delete", *(["--force"] if force else []), container_id)
        except RuntimeCommandError as exc:
            if "does not exist" not in exc.message:
                raise


def error_text(stderr: bytes) -> str:
    """runc's message from its stderr (plain or logrus text format)."""
    text = stderr.decode(errors="replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    if 'msg="' in last:
        msg = last.split('msg="', 1)[1]
        return msg.rsplit('"', 1)[0].replace('\\"', '"')
    return last


def log_error(log_file: Path) -> str:
    """The last error a runtime wrote to its ``--log`` file (json format)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal", "panic"):
            return str(entry.get("msg", ""))
    return ""


def resolve_runtime(name: str | None, config: Any, state_base: Path) -> OCIRuntime:
    """The runtime called ``name`` (None/"" = the daemon's ``default-runtime``), from daemon.json's
    ``runtimes`` plus the built-in runc found on PATH."""
    runtimes: dict[str, Any] = dict(config.get("runtimes", {}) or {}) if config is not None else {}
    default = (config.get("default-runtime") if config is not None else None) or DEFAULT_RUNTIME
    name = name or default
    if name == DEFAULT_RUNTIME:
        path = shutil.which("runc") or "runc"
        args: tuple[str, ...] = ()
    elif name in runtimes:
        entry = runtimes[name]
        path = entry["path"]
        if not os.path.isabs(path):
            path = shutil.which(path) or path
        args = tuple(entry.get("runtimeArgs", ()) or ())
    else:
        raise InvalidParameter(f"Unknown runtime specified {name}")
    return OCIRuntime(name, path, args, str(state_base / f"runtime-{name}"))
