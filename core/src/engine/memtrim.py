"""Give memory back to the system after a burst of work.

glibc keeps freed memory in its heaps and per-thread arenas, and the API's worker threads each get
an arena: after a burst (hundreds of parallel requests, a log stream, a build) the daemon's RSS
stayed ~15 MiB above its idle size for good. Every few seconds :class:`MemoryTrimmer` looks at the
RSS (one read of /proc/self/statm); when it grew by ``GROWTH`` since the last trim and has stopped
moving (the burst is over: a trim takes the arenas' locks, so not in the middle of a layer load), it
runs a full garbage collection and ``malloc_trim(0)`` (in a worker thread: it walks every arena), which returns
the free pages of every arena to the kernel.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0  # seconds between two looks at the RSS
GROWTH = 2 << 20  # bytes of RSS growth since the last trim that call for another
STEADY = 1 << 20  # an RSS that moved less than this since the last look: the burst is over

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def _load_malloc_trim() -> object | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: no `ldconfig -p` as find_library
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class MemoryTrimmer:
    """Runs on the daemon's loop from ``start()`` to ``stop()``."""

    def __init__(self) -> None:
        self._malloc_trim = _load_malloc_trim()
        self._baseline = 0
        self._last = 0
        self._handle: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._baseline = self._last = rss_bytes()
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(CHECK_EVERY, self._check)

    def _check(self) -> None:
        self._schedule()
        if self._running is not None and not self._running.done():
            return
        try:
            rss = rss_bytes()
        except OSError:
            return
        settling, self._last = abs(rss - self._last) >= STEADY, rss
        if rss - self._baseline < GROWTH:
            self._baseline = min(self._baseline, rss)
            return
        if settling:  # still growing or shrinking: work is going on, trim once it is over
            return
        gc.collect()
        if self._malloc_trim is None:
            self._baseline = rss_bytes()
            return
        self._running = asyncio.get_running_loop().run_in_executor(None, self._trim)

    def _trim(self) -> None:
        before = rss_bytes()
        self._malloc_trim(0)  # type: ignore[operator]
        self._baseline = rss_bytes()
        log.debug("trimmed the heap: RSS %d -> %d KiB", before >> 10, self._baseline >> 10)
