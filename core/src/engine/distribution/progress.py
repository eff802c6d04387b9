"""dockerd's pull/push progress messages (pkg/progress over the JSON stream), from several threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from engine.drivers.units import human_size

Emit = Callable[[dict[str, Any]], None]
INTERVAL_S = 0.1


def progress_bar(current: int, total: int) -> str:
    """jsonmessage's ``[=====>     ]  1.2MB/2.3MB``."""
    if total <= 0:
        return f"{human_size(current):>8}"
    width = 50
    filled = min(width, int(width * current / total))
    bar = "=" * filled + (">" if filled < width else "") + " " * max(0, width - filled - 1)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


class Progress:
    """Serialises messages from download/upload threads onto one stream."""

    def __init__(self, emit: Emit | None) -> None:
        self._emit = emit
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        if self._emit is None:
            return
        with self._lock:
            self._emit(message)

    def message(self, id: str, text: str) -> None:
        """progress.Message: a line without progressDetail (``Pulling from``, ``Digest:``)."""
        self.send({"status": text, "id": id} if id else {"status": text})

    def update(self, id: str, action: str) -> None:
        """progress.Update: ``{"status","progressDetail":{},"id"}``."""
        self.send({"status": action, "progressDetail": {}, "id": id})

    def meter(self, id: str, action: str, total: int) -> Meter:
        return Meter(self, id, action, total)


class Meter:
    """``Downloading``/``Extracting``/``Pushing`` with current/total, at most every 100 ms."""

    def __init__(self, progress: Progress, id: str, action: str, total: int) -> None:
        self.progress, self.id, self.action, self.total = progress, id, action, total
        self.current = 0
        self._last = 0.0

    def add(self, count: int, final: bool = False) -> None:
        self.current += count
        now = time.monotonic()
        if final or now - self._last >= INTERVAL_S:
            self._last = now
            detail: dict[str, Any] = {"current": self.current}
            if self.total > 0:
                detail["total"] = self.total
            self.progress.send(
                {
                    "status": self.action,
                    "progressDetail": detail,
                    "progress": progress_bar(self.current, self.total),
                    "id": self.id,
                }
            )


class MeteredReader:
    """A reader that reports the bytes read through it on a Meter."""

    def __init__(self, source: Any, meter: Meter) -> None:
        self.source, self.meter = source, meter
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if data or not self._ended:
            self._ended = not data  # readers may ask again at EOF: report the end once
            self.meter.add(len(data), final=not data)
        return data

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return int(self.source.tell())

    def seek(self, offset: int, whence: int = 0) -> int:
        self.meter.current, self._ended = 0, False
        return int(self.source.seek(offset, whence))
