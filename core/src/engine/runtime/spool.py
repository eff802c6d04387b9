"""The output spool a shim writes and the daemon reads.

The shim appends one record per read of the container's stdout/stderr (or pty) to segment files in
the spool directory. A record is a 16-byte little-endian header ``u32 length, u8 stream, u8 flags,
u16 reserved, u64 realtime ns`` followed by ``length`` bytes. Stream 1 is stdout (and the pty),
2 is stderr, 0 with length 0 is END: the process exited and all its output is in the spool.

Segments are named ``%016x.seg`` after the logical offset of their first byte, so an offset
(a position in the concatenation of all segments, always at a record boundary) is stable while
old segments are deleted. The consumer that owns the spool (the container's log copier) calls
:meth:`Spool.ack` with the offset it has durably consumed; segments wholly before it are deleted
and the offset is kept in the spool's ``acked`` file, so a restarted daemon resumes there and no
output is lost or repeated across a live-restore restart. Other readers (attach, exec clients)
read without acking. A segment is deleted only once every reader of the same :class:`Spool` object
that is less than ``PIN_LIMIT`` bytes behind the ack has left it too, so an attached client slower
than the log copier still sees every byte (a reader further behind than that, a client that stopped
reading, continues at the oldest segment left).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import struct
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.runtime import inotify

HEADER = struct.Struct("<IBBHQ")
HEADER_SIZE = HEADER.size  # 16
STREAM_END = 0
STDOUT = 1
STDERR = 2
SEGMENT_SUFFIX = ".seg"
ACKED_FILE = "acked"
_READ_SIZE = 1 << 18
PIN_LIMIT = 64 << 20  # how far behind the ack a reader still keeps segments from deletion

Offset = int | Literal["acked", "end", "start"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One read of the container's output: ``stream`` 1 (stdout/pty) or 2 (stderr), the time the shim
    read it, the bytes, and ``offset``, the spool offset just after this record (ack it to consume it)."""

    stream: int
    timestamp_ns: int
    data: bytes
    offset: int


class Spool:
    """A spool directory. Thread-safe for readers; ``ack`` is meant for one consumer."""

    def __init__(self, path: Path, alive: Callable[[], bool] | None = None) -> None:
        self.path = Path(path)
        # tells a following reader whether the writer (the shim) still exists; without END and
        # without a writer, a reader stops instead of waiting forever
        self.alive = alive
        self._acked: int | None = None  # cached: one consumer acks through this object
        self._oldest_end: int | None = None  # end of the oldest segment still on disk, once known
        self._listed_at = -(1 << 16)
        self._ack_fd = -1
        # readers of this object: their positions keep segments on disk (see _collect); the ack
        # comes from the copier's worker thread, readers live on the loop
        self._lock = threading.Lock()
        self._cursors: weakref.WeakSet[_Cursor] = weakref.WeakSet()

    def __del__(self) -> None:
        if self._ack_fd >= 0:
            os.close(self._ack_fd)

    # -- layout -----------------------------------------------------------------------------------

    def segments(self) -> list[int]:
        """Start offsets of the segment files, ascending."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        starts = []
        for name in names:
            if name.endswith(SEGMENT_SUFFIX):
                with contextlib.suppress(ValueError):
                    starts.append(int(name[: -len(SEGMENT_SUFFIX)], 16))
        return sorted(starts)

    def segment_path(self, start: int) -> Path:
        return self.path / f"{start:016x}{SEGMENT_SUFFIX}"

    def end_offset(self) -> int:
        """The offset after the last complete record (where a reader of new output starts)."""
        segs = self.segments()
        if not segs:
            return 0
        start = segs[-1]
        try:
            data = self.segment_path(start).read_bytes()
        except FileNotFoundError:
            return start
        pos = 0
        while pos + HEADER_SIZE <= len(data):
            (length, *_rest) = HEADER.unpack_from(data, pos)
            if pos + HEADER_SIZE + length > len(data):
                break
            pos += HEADER_SIZE + length
        return start + pos

    def acked(self) -> int:
        if self._acked is None:
            try:
                self._acked = int((self.path / ACKED_FILE).read_text().strip() or 0)
            except (FileNotFoundError, ValueError):
                self._acked = 0
        return self._acked

    def ack(self, offset: int) -> None:
        """Record that everything before ``offset`` is consumed; delete segments wholly before it.

        Blocking but cheap: one small write and a rename (the directory is listed only when the ack
        passes the end of the oldest segment)."""
        if offset <= self.acked():
            return
        # one fixed-width pwrite into a file kept open: a process crash cannot tear it, and unlike
        # write+rename it costs no journal flush (acks are frequent). The exec-root does not survive
        # a reboot, so no fsync either.
        if self._ack_fd < 0:
            self._ack_fd = os.open(self.path / ACKED_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.pwrite(self._ack_fd, b"%020d\n" % offset, 0)
        self._acked = offset
        self._collect()

    def _pin(self, cursor: _Cursor) -> None:
        with self._lock:
            self._cursors.add(cursor)

    def _unpin(self, cursor: _Cursor) -> None:
        with self._lock:
            self._cursors.discard(cursor)
        self._collect()

    def _collect(self) -> None:
        """Delete the segments wholly before the ack and before every reader within PIN_LIMIT of it."""
        with self._lock:
            limit = self._acked
            if limit is None:
                return  # nothing consumed through this object
            for cursor in self._cursors:
                if limit - PIN_LIMIT <= cursor.offset < limit:
                    limit = cursor.offset
            if self._oldest_end is not None and limit < self._oldest_end:
                return
            if self._oldest_end is None and limit - self._listed_at < 1 << 16:
                return  # a single segment: look for a rotation only every 64 KiB of progress
            self._listed_at = limit
            segs = self.segments()
            self._oldest_end = None
            for start, nxt in itertools.pairwise(segs):
                if nxt <= limit:
                    with contextlib.suppress(FileNotFoundError):
                        self.segment_path(start).unlink()
                else:
                    self._oldest_end = nxt
                    break

    # -- reading ----------------------------------------------------------------------------------

    def resolve(self, offset: Offset) -> int:
        if offset == "acked":
            return self.acked()
        if offset == "end":
            return self.end_offset()
        if offset == "start":
            segs = self.segments()
            return segs[0] if segs else 0
        return int(offset)

    def reader(self, offset: Offset = "acked", follow: bool = True, idle_check: float = 1.0) -> SpoolReader:
        """An async iterator of :class:`Chunk` from ``offset`` ("acked", "end", "start" or a number).

        With ``follow`` it waits for new output until END (or until the writer is gone); without, it
        stops at the current end."""
        return SpoolReader(self, self.resolve(offset), follow, idle_check)

    def read_available(self, offset: Offset = "start") -> tuple[list[Chunk], bool]:
        """Blocking, no waiting: the complete records from ``offset`` and whether END was reached."""
        cursor = _Cursor(self, self.resolve(offset))
        chunks: list[Chunk] = []
        try:
            while True:
                got = cursor.next_records()
                if got is None:
                    return chunks, True
                if not got:
                    return chunks, False
                chunks.extend(got)
        finally:
            cursor.close()


class _Cursor:
    """Synchronous position in a spool: the open segment, unparsed bytes, the logical offset."""

    def __init__(self, spool: Spool, offset: int) -> None:
        self.spool = spool
        self.offset = offset  # logical offset of the next record
        self.fd = -1
        self.seg_start = -1
        self.file_pos = 0  # bytes read from the open segment
        self.buf = b""
        self.ended = False
        self.pinned = True
        spool._pin(self)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.pinned:
            self.pinned = False
            self.spool._unpin(self)

    def _open(self) -> bool:
        segs = self.spool.segments()
        if not segs:
            return False
        candidates = [s for s in segs if s <= self.offset]
        # a reader behind the oldest segment (deleted by an ack) continues at the oldest one
        start = candidates[-1] if candidates else segs[0]
        if start > self.offset:
            self.offset = start
        try:
            fd = os.open(self.spool.segment_path(start), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.seg_start = fd, start
        self.file_pos = self.offset - start
        self.buf = b""
        return True

    def next_records(self) -> list[Chunk] | None:
        """Records available now ([] if none yet); None once END was read."""
        if self.ended:
            return None
        if self.fd < 0 and not self._open():
            return []
        out: list[Chunk] = []
        while not out:
            data = os.pread(self.fd, _READ_SIZE, self.file_pos)
            if data:
                self.file_pos += len(data)
                self.buf += data
                out = self._parse()
                if self.ended:
                    return out or None
                continue
            # at the end of this segment: move on if the writer started the next one exactly here
            nxt = self.seg_start + self.file_pos
            if self.buf or nxt == self.seg_start:
                return out
            if not self.spool.segment_path(nxt).exists():
                if os.fstat(self.fd).st_nlink:
                    return out  # the writer has not rotated yet
                # this segment was deleted under us (we were too far behind): go on at the oldest left
                if not self._open():
                    return out
                continue
            self.offset = nxt
            if not self._open():
                return out
            self.spool._collect()  # the segment we left may have been kept for us only
        return out

    def _parse(self) -> list[Chunk]:
        out = []
        buf, pos = self.buf, 0
        while pos + HEADER_SIZE <= len(buf):
            length, stream, _flags, _res, ts = HEADER.unpack_from(buf, pos)
            end = pos + HEADER_SIZE + length
            if end > len(buf):
                break
            self.offset += HEADER_SIZE + length
            if stream == STREAM_END:
                self.ended = True
                pos = end
                break
            out.append(Chunk(stream, ts, bytes(buf[pos + HEADER_SIZE : end]), self.offset))
            pos = end
        self.buf = buf[pos:]
        return out


class SpoolReader(AsyncIterator[Chunk]):
    """Async iterator over a spool. Reads are from the page cache of a file the shim just wrote, so
    they run on the loop; waiting uses the loop's shared inotify watcher on the spool directory
    (polling every ``idle_check`` seconds if inotify is unavailable)."""

    def __init__(self, spool: Spool, offset: int, follow: bool, idle_check: float) -> None:
        self.spool = spool
        self.follow = follow
        self.idle_check = idle_check
        self._cursor = _Cursor(spool, offset)
        self._pending: deque[Chunk] = deque()
        self._watch: tuple[inotify.DirectoryWatcher, int, asyncio.Event] | None = None
        self._watching = False
        self._done = False

    @property
    def offset(self) -> int:
        """The offset after the last chunk handed out (ack this to consume everything read)."""
        if self._pending:
            return self._pending[0].offset - HEADER_SIZE - len(self._pending[0].data)
        return self._cursor.offset

    def __aiter__(self) -> SpoolReader:
        return self

    async def __anext__(self) -> Chunk:
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._done:
                self.close()
                raise StopAsyncIteration
            if self.follow and not self._watching:
                self._start_watch()
            got = self._cursor.next_records()
            if got is None:
                self._done = True
                continue
            if got:
                self._pending.extend(got)
                continue
            if not self.follow:
                self._done = True
                continue
            if not await self._wait():
                # the writer is gone without END: one last look, then stop
                self._pending.extend(self._cursor.next_records() or [])
                self._done = True

    def _start_watch(self) -> None:
        # before the first read, so a change between that read and the wait is not missed
        self._watching = True
        with contextlib.suppress(OSError):
            self._watch = inotify.watch_dir(self.spool.path)

    async def _wait(self) -> bool:
        """Wait for a change; False when the writer has gone away (checked each idle period)."""
        event = self._watch[2] if self._watch else None
        try:
            if event is None:
                await asyncio.sleep(min(self.idle_check, 0.1))
                return self.spool.path.exists() and (self.spool.alive is None or self.spool.alive())
            await asyncio.wait_for(event.wait(), self.idle_check)
            event.clear()  # before the next read: a change after this sets it again
            return True
        except TimeoutError:
            # re-read anyway (cheap, covers a missed event) unless the writer is gone
            alive = self.spool.alive
            return (alive is None or alive()) and self.spool.path.exists()

    def close(self) -> None:
        self._cursor.close()
        if self._watch is not None:
            watcher, wd, event = self._watch
            self._watch = None
            with contextlib.suppress(Exception):
                watcher.remove(wd, event)

    async def aclose(self) -> None:
        self.close()

    def __del__(self) -> None:
        # a reader abandoned mid-iteration (``break``) still gives its watch back
        with contextlib.suppress(Exception):
            self.close()
