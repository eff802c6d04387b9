"""Persistent state for drivers and subsystems: crash-safe file writes and directories of JSON records.

A write goes to a temporary file, is fsynced and renamed over the old one, then the directory is
fsynced: a crash at any instant leaves the old or the new content, never a mix.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["RecordDir", "fsync_dir", "read_json", "sweep_temp", "temp_name", "write_atomic", "write_json"]

log = logging.getLogger(__name__)


def write_atomic(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Write a file so that a crash at any instant leaves the old or the new content, never a mix:
    temp file, fsync, rename, fsync of the directory."""
    tmp = temp_name(path)
    view = memoryview(data.encode() if isinstance(data, str) else data)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a temp file behind for ever
        raise
    fsync_dir(path.parent)


def temp_name(path: Path) -> Path:
    """The temp file an atomic write of ``path`` goes through (the pattern :func:`sweep_temp` removes)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")


def sweep_temp(directory: Path) -> list[Path]:
    """Remove the temp files of atomic writes a killed daemon left in ``directory``; returns them."""
    swept = []
    try:
        candidates = list(directory.glob(".*.tmp*"))
    except OSError:
        return swept
    for tmp in candidates:
        try:
            tmp.unlink()
        except IsADirectoryError:
            continue
        except OSError:
            continue
        swept.append(tmp)
    return swept


def fsync_dir(path: Path) -> None:
    """fsync a directory, so that a rename or a new entry in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: Any, mode: int = 0o600) -> None:
    """:func:`write_atomic` of compact JSON."""
    write_atomic(path, json.dumps(data, separators=(",", ":")), mode)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class RecordDir:
    """One directory of JSON records, one file ``<key>.json`` per key, each written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def save(self, key: str, data: dict[str, Any]) -> None:
        write_json(self.path / f"{key}.json", data)

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.path / f"{key}.json").read_text())
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        (self.path / f"{key}.json").unlink(missing_ok=True)

    def load_all(self) -> dict[str, dict[str, Any]]:
        out = {}
        for file in sorted(self.path.glob("*.json")):
            try:
                out[file.stem] = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                # a torn write cannot happen (atomic rename); anything else is reported, not fatal
                log.error("ignoring unreadable record %s: %s", file, exc)
        sweep_temp(self.path)  # left by a kill -9 mid-write
        return out
