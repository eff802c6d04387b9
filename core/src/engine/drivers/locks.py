"""Per-key locks: one lock per network, container, layer or image id, never one global lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """``with locks(key, ...):`` holds the locks of every key given.

    Keys are taken in sorted order, so two callers that lock the same keys never deadlock each
    other. A lock is re-entrant (the holding thread may take it again) and is dropped when nobody
    holds or waits for it, so the table does not grow with every id ever seen.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.RLock, int]] = {}

    @contextmanager
    def __call__(self, *keys: str) -> Iterator[None]:
        ordered = sorted(set(keys))
        with self._guard:
            locks = []
            for key in ordered:
                lock, users = self._locks.get(key) or (threading.RLock(), 0)
                self._locks[key] = (lock, users + 1)
                locks.append(lock)
        taken = 0
        try:
            for lock in locks:
                lock.acquire()
                taken += 1
            yield
        finally:
            for lock in reversed(locks[:taken]):
                lock.release()
            with self._guard:
                for key in ordered:
                    lock, users = self._locks[key]
                    if users == 1:
                        del self._locks[key]
                    else:
                        self._locks[key] = (lock, users - 1)
