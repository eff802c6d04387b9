"""``mode=non-blocking``: a driver behind a bounded buffer and a thread of its own (moby's RingLogger).

:class:`RingDriver` wraps any driver. ``log_many`` only queues (it never waits on the target); a
worker thread hands the queue to the driver in batches; when more than ``max-buffer-size`` bytes
wait, the oldest messages are dropped (counted, and reported in the daemon's log). So a slow or
dead log target (a syslog server that stopped reading, a full journal) never holds up the copier:
not the container's output, not the dual-logging cache written beside it, not the container's exit.

``close`` gives the driver what is queued while it makes progress, then closes it; a driver stuck
in a write is abandoned after ``STALL_TIMEOUT`` (its thread is a daemon thread) with a warning, as
dockerd's "Logger didn't exit in time: logs may be truncated".
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine import opcounters
from engine.drivers.log import LogDriver, LogMessage
from engine.drivers.logopts import DEFAULT_MAX_BUFFER_SIZE

log = logging.getLogger(__name__)

STALL_TIMEOUT = 2.0  # seconds without progress after which a closing driver is given up on


def call_bounded(fn: Callable[[], Any], timeout: float, what: str) -> bool:
    """Run ``fn`` in a daemon thread and wait at most ``timeout``: False (and a warning) when it
    is still running then, and it is left to finish (or hang) on its own."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("%s failed", what)
        finally:
            done.set()

    threading.Thread(target=run, name=what, daemon=True).start()
    if done.wait(timeout):
        return True
    log.warning("%s did not finish in %.0fs: logs may be truncated", what, timeout)
    return False


class RingDriver(LogDriver):
    """A driver behind a drop-oldest buffer of ``max_bytes`` (see the module docstring)."""

    name = "ring"
    API_VERSION = 0  # never loaded from an entry point

    def __init__(self, inner: LogDriver, max_bytes: int = DEFAULT_MAX_BUFFER_SIZE) -> None:
        super().__init__(inner.info)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # report the real driver's name
        self.capabilities = inner.capabilities  # type: ignore[misc]
        self.max_bytes = max_bytes
        self.dropped = 0
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[LogMessage] = collections.deque()
        self._bytes = 0
        self._closing = False
        self._busy = False  # the worker is inside the driver
        self._progress = time.monotonic()  # when the worker last finished a batch
        self._worker = threading.Thread(target=self._run, name=f"log-ring-{inner.info.container_id[:12]}", daemon=True)
        self._worker.start()

    def __getattr__(self, name: str) -> Any:
        # read_logs, read_log_batches... of the wrapped driver (only when it has them, so that
        # ``hasattr(driver, "read_logs")`` still tells whether the logs can be read back)
        if name.startswith("read_"):
            return getattr(self.inner, name)
        raise AttributeError(name)

    @property
    def log_path(self) -> str:
        return self.inner.log_path

    def start(self) -> None:
        self.inner.start()

    def log(self, message: LogMessage) -> None:
        self.log_many((message,))

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        size = sum(len(m.line) for m in messages)
        with self._cond:
            if self._closing:
                return
            self._queue.extend(messages)
            self._bytes += size
            queue = self._queue
            dropped = 0
            while self._bytes > self.max_bytes and len(queue) > 1:
                self._bytes -= len(queue.popleft().line)
                dropped += 1
            self._cond.notify()
        if dropped:
            self.dropped += dropped
            opcounters.LOG_DROPPED.inc(self.inner.name, dropped)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._bytes = 0
                self._busy = True
                self._progress = time.monotonic()
            try:
                self.inner.log_many(batch)
            except Exception as exc:
                opcounters.LOG_ERRORS.inc(self.inner.name)  # the copier never sees this driver's errors
                log.error("log driver %s failed to log %d messages: %s", self.inner.name, len(batch), exc)
            with self._cond:
                self._busy = False
                self._progress = time.monotonic()
                self._cond.notify_all()

    def close(self) -> None:
        """Hand over what is queued while the driver keeps up, then close it (bounded)."""
        with self._cond:
            self._closing = True
            if not self._busy:  # an idle worker is up to date: count the stall from now
                self._progress = time.monotonic()
            self._cond.notify_all()
            while (self._queue or self._busy) and time.monotonic() - self._progress < STALL_TIMEOUT:
                self._cond.wait(0.1)
            if self._queue or self._busy:
                self.dropped += len(self._queue)
                opcounters.LOG_DROPPED.inc(self.inner.name, len(self._queue))
                self._queue.clear()
        if self.dropped:
            log.warning(
                "log driver %s of container %s: %d messages dropped (mode=non-blocking, max-buffer-size=%d)",
                self.inner.name,
                self.info.short_id,
                self.dropped,
                self.max_bytes,
            )
        call_bounded(self.inner.close, STALL_TIMEOUT, f"closing log driver {self.inner.name}")
