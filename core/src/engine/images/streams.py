"""Readable streams the image operations put between a source and the layer store: hashing a blob,
reporting progress, and turning a writer (a container's diff) into a reader."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import IO, Any, BinaryIO

from engine.distribution.progress import progress_bar

Emit = Callable[[dict[str, Any]], None]


class HashingReader:
    """sha256 of everything read through it (an OCI layer blob's digest, compressed as stored)."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self._sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self._sha.update(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


class ProgressReader:
    """Reports ``progressDetail`` messages while a stream is read (import from URL, load)."""

    def __init__(self, source: Any, total: int, emit: Emit, action: str, id: str = "") -> None:
        self.source, self.total, self.emit, self.action, self.id = source, total, emit, action, id
        self.current = 0
        self._last = 0.0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.current += len(data)
        now = time.monotonic()
        if not data or now - self._last > 0.1:
            self._last = now
            message: dict[str, Any] = {
                "status": self.action,
                "progressDetail": {"current": self.current, **({"total": self.total} if self.total > 0 else {})},
                "progress": progress_bar(self.current, self.total),
            }
            if self.id:
                message["id"] = self.id
            self.emit(message)
        return data

    def readable(self) -> bool:
        return True


class PipeFromWriter:
    """A readable stream fed by ``produce(out)`` running in its own thread (diff -> register)."""

    def __init__(self, produce: Callable[[IO[bytes]], None]) -> None:
        r, w = os.pipe()
        self._reader = os.fdopen(r, "rb", buffering=1 << 16)
        self._error: BaseException | None = None

        def run() -> None:
            try:
                with os.fdopen(w, "wb", buffering=1 << 16) as out:
                    produce(out)
            except BaseException as exc:  # surfaced to the reader at EOF
                self._error = exc

        self._thread = threading.Thread(target=run, name="rw-diff", daemon=True)
        self._thread.start()

    def read(self, size: int = -1) -> bytes:
        data = self._reader.read(size)
        if not data:
            self._thread.join()
            if self._error is not None:
                raise self._error
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._reader.close()
        self._thread.join(timeout=60)
