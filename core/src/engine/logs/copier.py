"""The copier: container output chunks in, log messages to the container's log driver out.

The runtime's shim writes container output to a spool, so the container never waits on us;
the copier reads the spool (an async iterator of ``(stream, timestamp_ns, data)`` chunks),
splits lines as moby's copier does, and hands messages to the driver from a worker thread
of its own, in batches (one thread hop per batch, not per line).

- Lines of 16 KiB or more are cut into partial messages (``PartialMeta`` id/ordinal/last,
  all pieces with the first piece's time); a fragment left at end of stream is flushed as a
  partial that is not last (json-file then stores it without a newline).
- ``mode=blocking`` (default): when the driver is slow, reading the spool waits (the spool
  grows, the container does not notice). ``mode=non-blocking``: messages wait in a buffer of
  ``max-buffer-size`` bytes and the oldest are dropped when it is full (as Docker documents).
- Every message is also offered to the ``engine_log_message`` hook, only when a plugin
  implements it (checked per batch, so the hot path stays cheap otherwise).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from engine.drivers.log import LogDriver, LogMessage, PartialMeta
from engine.logs.options import BLOCKING, DEFAULT_MAX_BUFFER_SIZE, NON_BLOCKING

log = logging.getLogger(__name__)

MAX_LINE = 16 * 1024  # moby's copier buffer: longer lines become partial messages
HIGH_WATER_BYTES = 1 << 20  # blocking mode: stop reading the spool with this much unwritten
HIGH_WATER_MESSAGES = 16384

Chunk = tuple[str, int, bytes]  # (stream "stdout"|"stderr", timestamp_ns, data)


@dataclass
class CopierStats:
    messages: int = 0
    bytes: int = 0
    dropped: int = 0  # non-blocking mode: oldest messages dropped when the buffer was full
    errors: int = 0  # driver errors


class _LineSplitter:
    """Line splitting for one stream, with moby's partial-message rules."""

    __slots__ = ("ordinal", "partial_id", "partial_ns", "rest", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.rest = b""
        self.partial_id = ""  # set while a long line is being cut into pieces
        self.ordinal = 0
        self.partial_ns = 0

    def _piece(self, data: bytes, ts: int, last: bool, out: list[LogMessage]) -> None:
        if not self.partial_id:
            self.partial_id = os.urandom(32).hex()
            self.ordinal = 1
            self.partial_ns = ts
        else:
            self.ordinal += 1
        ts = self.partial_ns
        out.append(LogMessage(data, self.source, ts / 1e9, ts, PartialMeta(self.partial_id, self.ordinal, last)))
        if last:
            self.partial_id = ""

    def feed(self, data: bytes, ts: int, out: list[LogMessage]) -> None:
        if self.rest:
            data = self.rest + data
        lines = data.split(b"\n")
        rest = lines.pop()
        source, seconds = self.source, ts / 1e9
        append = out.append
        for line in lines:
            if len(line) < MAX_LINE and not self.partial_id:
                append(LogMessage(line, source, seconds, ts))
                continue
            while len(line) >= MAX_LINE:
                self._piece(line[:MAX_LINE], ts, False, out)
                line = line[MAX_LINE:]
            self._piece(line, ts, True, out)
        while len(rest) >= MAX_LINE:
            self._piece(rest[:MAX_LINE], ts, False, out)
            rest = rest[MAX_LINE:]
        self.rest = rest

    def flush(self, ts: int, out: list[LogMessage]) -> None:
        """End of stream: what is left goes out as a partial that is not the last piece."""
        if self.rest:
            self._piece(self.rest, ts, False, out)
            self.rest = b""


class Copier:
    """Copies one container's output to its log driver. ``start()`` on the event loop, then
    ``await wait()`` (the source ended and the driver has everything) or ``await stop()``."""

    def __init__(
        self,
        source: AsyncIterator[Chunk],
        driver: LogDriver,
        *,
        container_id: str = "",
        hook: Any = None,
        mode: str = BLOCKING,
        max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
    ) -> None:
        if mode not in (BLOCKING, NON_BLOCKING):
            raise ValueError(f"logger: logging mode not supported: {mode}")
        self.source = source
        self.driver = driver
        self.container_id = container_id
        self.hook = hook  # daemon.pm.hook.engine_log_message, or None
        self.mode = mode
        self.max_buffer_size = max_buffer_size
        self.stats = CopierStats()
        self._splitters = {"stdout": _LineSplitter("stdout"), "stderr": _LineSplitter("stderr")}
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[LogMessage] = collections.deque()
        self._queued_bytes = 0
        self._eof = False
        self._want_drain = False
        self._drained: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task[None] | None = None
        self._writer: threading.Thread | None = None
        self._writer_done: asyncio.Future[None] | None = None
        self._last_error_log = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._drained = asyncio.Event()
        self._writer_done = self._loop.create_future()
        self._writer = threading.Thread(
            target=self._write_loop, name=f"log-copier-{self.container_id[:12]}", daemon=True
        )
        self._writer.start()
        self._reader = self._loop.create_task(self._read_loop(), name=f"log-copier-{self.container_id[:12]}")

    async def wait(self) -> None:
        """Until the source has ended and the driver has been handed every message."""
        assert self._reader is not None and self._writer_done is not None
        await asyncio.shield(self._reader)
        await asyncio.shield(self._writer_done)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop reading now; what was read still reaches the driver (within ``timeout``)."""
        assert self._reader is not None and self._writer_done is not None
        self._reader.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(self._writer_done), timeout)
        except TimeoutError:
            log.warning(
                "log driver %s of container %s did not take its last messages in time",
                self.driver.name,
                self.container_id[:12],
            )

    @property
    def done(self) -> bool:
        return self._writer_done is not None and self._writer_done.done()

    # -- the event-loop side: read and split ------------------------------------------------------

    async def _read_loop(self) -> None:
        last_ts = time.time_ns()
        try:
            splitters = self._splitters
            async for stream, ts, data in self.source:
                out: list[LogMessage] = []
                splitter = splitters.get(stream)
                if splitter is None:
                    continue
                splitter.feed(data, ts, out)
                last_ts = ts
                if out:
                    await self._enqueue(out)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("error reading the output of container %s", self.container_id[:12])
        finally:
            out = []
            for splitter in self._splitters.values():
                splitter.flush(last_ts, out)
            with self._cond:
                self._put(out)
                self._eof = True
                self._cond.notify()

    def _put(self, messages: list[LogMessage]) -> None:
        """Queue messages (lock held); non-blocking mode drops the oldest beyond the buffer size."""
        queue = self._queue
        queue.extend(messages)
        self._queued_bytes += sum(len(m.line) for m in messages)
        if self.mode == NON_BLOCKING and self._queued_bytes > self.max_buffer_size:
            while self._queued_bytes > self.max_buffer_size and len(queue) > 1:
                self._queued_bytes -= len(queue.popleft().line)
                self.stats.dropped += 1

    async def _enqueue(self, messages: list[LogMessage]) -> None:
        assert self._drained is not None
        with self._cond:
            self._put(messages)
            self._cond.notify()
        if self.mode != BLOCKING:
            return
        while True:
            with self._cond:
                if (self._queued_bytes <= HIGH_WATER_BYTES and len(self._queue) <= HIGH_WATER_MESSAGES) or self.done:
                    return
                self._drained.clear()
                self._want_drain = True
            await self._drained.wait()

    # -- the worker-thread side: hand batches to the driver ---------------------------------------

    def _write_loop(self) -> None:
        assert self._loop is not None and self._writer_done is not None and self._drained is not None
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._eof:
                        self._cond.wait()
                    if not self._queue:
                        break
                    batch = list(self._queue)
                    self._queue.clear()
                    self._queued_bytes = 0
                    if self._want_drain:
                        self._want_drain = False
                        self._loop.call_soon_threadsafe(self._drained.set)
                self._deliver(batch)
        finally:
            self._resolve(self._writer_done)
            self._loop.call_soon_threadsafe(self._drained.set)

    def _resolve(self, future: asyncio.Future[None]) -> None:
        def done() -> None:
            if not future.done():
                future.set_result(None)

        try:
            self._loop.call_soon_threadsafe(done)  # type: ignore[union-attr]
        except RuntimeError:  # the loop is closed (daemon exit)
            pass

    def _deliver(self, batch: list[LogMessage]) -> None:
        hook = self.hook
        if hook is not None and hook.get_hookimpls():
            for message in batch:
                try:
                    hook(
                        container_id=self.container_id,
                        source=message.source,
                        line=message.with_newline(),
                        timestamp=message.timestamp,
                    )
                except Exception:
                    self._log_error("engine_log_message hook failed")
        try:
            self.driver.log_many(batch)
        except Exception as exc:
            self.stats.errors += 1
            self._log_error(f"failed to log {len(batch)} messages for logger {self.driver.name}: {exc}")
        self.stats.messages += len(batch)
        self.stats.bytes += sum(len(m.line) for m in batch)

    def _log_error(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 10:  # a broken driver must not flood the daemon's log
            self._last_error_log = now
            log.error("container %s: %s", self.container_id[:12], message)
