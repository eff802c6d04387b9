"""One directory of JSON records, one file per key, each written atomically."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.fsutil import write_json

log = logging.getLogger(__name__)


class RecordDir:
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
                log.error("ignoring unreadable network state %s: %s", file, exc)
        for tmp in self.path.glob(".*.tmp-*"):  # left by a kill -9 mid-write
            tmp.unlink(missing_ok=True)
        return out


class KeyedLocks:
    """One lock per key (network id, container id): never one global lock."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}

    @contextmanager
    def __call__(self, *keys: str) -> Iterator[None]:
        with self._guard:
            locks = [self._locks.setdefault(k, threading.RLock()) for k in sorted(set(keys))]
        for lock in locks:  # sorted: no lock-order deadlocks
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()
