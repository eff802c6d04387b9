"""The copier: container output chunks in, log messages to the container's log driver out.

The runtime's shim writes container output to a spool, so the container never waits on us;
the copier reads the spool (an async iterator of chunks: ``engine.runtime.Chunk`` objects with
``stream`` 1|2, ``timestamp_ns``, ``data``, ``offset``, or plain ``(stream, timestamp_ns, data)``
tuples with ``stream`` "stdout"|"stderr"), splits lines as moby's copier does, and hands
messages to the driver from a worker thread of its own, in batches (one thread hop per batch,
not per line). With an ``ack`` callback (``task.ack``), the spool offset of what the driver has
been given is acknowledged (at most every ``ACK_INTERVAL``, and at the end), so a restarted
daemon resumes there.

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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from engine.drivers.log import LogDriver, LogMessage, PartialMeta
from engine.drivers.logopts import BLOCKING, DEFAULT_MAX_BUFFER_SIZE, NON_BLOCKING

log = logging.getLogger(__name__)

MAX_LINE = 16 * 1024  # moby's copier buffer: longer lines become partial messages
HIGH_WATER_BYTES = 1 << 20  # blocking mode: stop reading the spool with this much unwritten
HIGH_WATER_MESSAGES = 16384
ACK_INTERVAL = 0.2  # seconds between spool acknowledgements

Chunk = Any  # engine.runtime.Chunk, or a (stream, timestamp_ns, data) tuple
_STREAMS = {1: "stdout", 2: "stderr", "stdout": "stdout", "stderr": "stderr"}


@dataclass
class CopierStats:
    messages: int = 0
    bytes: int = 0  # output bytes read (newlines included)
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
        if not self.partial_id and (not lines or max(map(len, lines)) < MAX_LINE):
            out.extend([LogMessage(line, source, seconds, ts) for line in lines])  # the common case
            lines = []
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
        ack: Callable[[int], None] | None = None,
    ) -> None:
        if mode not in (BLOCKING, NON_BLOCKING):
            raise ValueError(f"logger: logging mode not supported: {mode}")
        self.source = source
        self.driver = driver
        self.container_id = container_id
        self.hook = hook  # daemon.pm.hook.engine_log_message, or None
        self.mode = mode
        self.max_buffer_size = max_buffer_size
        self.ack = ack  # blocking; called from the worker thread
        self.stats = CopierStats()
        self._splitters = {"stdout": _LineSplitter("stdout"), "stderr": _LineSplitter("stderr")}
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[LogMessage] = collections.deque()
        self._queued_bytes = 0
        self._queued_offset: int | None = None  # spool offset up to which the queue holds everything
        self._acked: int | None = None
        self._last_ack = 0.0
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
        offset: int | None = None
        splitters = self._splitters
        try:
            async for chunk in self.source:
                if isinstance(chunk, tuple):
                    stream, ts, data = chunk[0], chunk[1], chunk[2]
                else:
                    stream, ts, data, offset = chunk.stream, chunk.timestamp_ns, chunk.data, chunk.offset
                splitter = splitters.get(_STREAMS.get(stream, ""))
                if splitter is None:
                    continue
                out: list[LogMessage] = []
                splitter.feed(data, ts, out)
                last_ts = ts
                # acknowledge a chunk only once nothing of it waits in a splitter
                settled = offset if not (splitters["stdout"].rest or splitters["stderr"].rest) else None
                await self._enqueue(out, settled, len(data))
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("error reading the output of container %s", self.container_id[:12])
        finally:
            out = []
            for splitter in splitters.values():
                splitter.flush(last_ts, out)
            with self._cond:
                self._put(out, offset, sum(len(m.line) for m in out))
                self._eof = True
                self._cond.notify()

    def _put(self, messages: list[LogMessage], offset: int | None, size: int) -> None:
        """Queue messages of ``size`` bytes (lock held); non-blocking mode drops the oldest
        beyond the buffer size."""
        if offset is not None:
            self._queued_offset = offset
        queue = self._queue
        queue.extend(messages)
        self._queued_bytes += size
        if self.mode == NON_BLOCKING and self._queued_bytes > self.max_buffer_size:
            while self._queued_bytes > self.max_buffer_size and len(queue) > 1:
                self._queued_bytes -= len(queue.popleft().line) + 1
                self.stats.dropped += 1

    async def _enqueue(self, messages: list[LogMessage], offset: int | None, size: int) -> None:
        assert self._drained is not None
        if not messages:
            if offset is not None:
                with self._cond:
                    self._queued_offset = offset
            return
        with self._cond:
            self._put(messages, offset, size)
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
                        ack_due = self.ack is not None and self._queued_offset != self._acked
                        self._cond.wait(ACK_INTERVAL if ack_due else None)
                        if ack_due:
                            break
                    if not self._queue and self._eof:
                        break
                    batch = list(self._queue)
                    offset, size = self._queued_offset, self._queued_bytes
                    self._queue.clear()
                    self._queued_bytes = 0
                    if self._want_drain:
                        self._want_drain = False
                        self._loop.call_soon_threadsafe(self._drained.set)
                if batch:
                    self._deliver(batch, size)
                self._acknowledge(offset, force=False)
            self._acknowledge(self._queued_offset, force=True)
        finally:
            self._finished()

    def _acknowledge(self, offset: int | None, *, force: bool) -> None:
        if self.ack is None or offset is None or offset == self._acked:
            return
        now = time.monotonic()
        if not force and now - self._last_ack < ACK_INTERVAL:
            return
        try:
            self.ack(offset)
            self._acked = offset
            self._last_ack = now
        except Exception as exc:
            self._log_error(f"acknowledging output offset {offset} failed: {exc}")

    def _finished(self) -> None:
        """Tell the loop the writer is done (and release a reader waiting for room)."""
        future, drained = self._writer_done, self._drained
        assert future is not None and drained is not None

        def done() -> None:
            drained.set()
            if not future.done():
                future.set_result(None)

        try:
            self._loop.call_soon_threadsafe(done)  # type: ignore[union-attr]
        except RuntimeError:  # the loop is closed (daemon exit)
            pass

    def _deliver(self, batch: list[LogMessage], size: int) -> None:
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
        self.stats.bytes += size

    def _log_error(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 10:  # a broken driver must not flood the daemon's log
            self._last_error_log = now
            log.error("container %s: %s", self.container_id[:12], message)
