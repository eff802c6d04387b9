"""Plain counters that subsystems bump without importing a metrics library; engine.metrics reads
them at scrape time (the ``metrics-addr`` server) and nothing else pays for them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Counter:
    """A monotonic count, bumped from the event loop or from worker threads (builds run in one
    each): ``+=`` is not atomic across threads, hence the lock (uncontended: cheap)."""

    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        with self._lock:
            self.value += amount


class LabeledCounter:
    """Monotonic counts by one label (a driver name), bumped from several threads (one log copier
    per container), hence a lock: a batch of messages costs one acquire."""

    __slots__ = ("_lock", "_values")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def inc(self, label: str, amount: int = 1) -> None:
        with self._lock:
            self._values[label] = self._values.get(label, 0) + amount

    def values(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


#: health probes run (dockerd's engine_daemon_health_checks_total)
HEALTH_CHECKS = Counter()
#: health probes that could not be run (dockerd's engine_daemon_health_checks_failed_total)
HEALTH_CHECKS_FAILED = Counter()

#: builds started (POST /build) and failed, by dockerd's reason (builder_builds_*_total)
BUILDS_TRIGGERED = Counter()
BUILDS_FAILED = LabeledCounter()

#: dockerd's logger_* counters: partial messages made of lines of 16 KiB or more, and reads of a
#: container's output that failed (writes that failed are LOG_ERRORS)
LOG_PARTIAL_MESSAGES = Counter()
LOG_READS_FAILED = Counter()

#: container output delivered to log drivers, by driver: messages and bytes (newlines included)
LOG_MESSAGES = LabeledCounter()
LOG_BYTES = LabeledCounter()
#: messages dropped by non-blocking mode (buffer full), and driver errors, by driver
LOG_DROPPED = LabeledCounter()
LOG_ERRORS = LabeledCounter()

#: called with (kind, driver) for every network driver ("network") and container log driver ("log")
#: instance made; engine.metrics adds its timer here when ``metrics-addr`` is set (else it is empty)
DRIVER_OBSERVERS: list[Callable[[str, Any], None]] = []


def driver_made(kind: str, driver: Any) -> None:
    """A network or log driver instance was made: let the observers (the metrics server) see it."""
    for observe in DRIVER_OBSERVERS:
        observe(kind, driver)
