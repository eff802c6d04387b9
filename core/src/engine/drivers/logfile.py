"""A rotating file of log lines, and its reader (moby's ``loggerutils.LogFile``).

One :class:`LogFile` per container log: the driver writes batches of messages through a
:class:`Codec` (one line per message), the file rotates at ``max_size`` to ``<path>.1``,
``<path>.2``... (gzipped ``.1.gz``... when ``compress``), and ``docker logs`` reads it back
with tail, since/until and follow.

Followers learn about new data from the writer itself: every write publishes the write
position ``(rotation number, size)`` and wakes the waiting readers on their event loops. That
is how moby follows since 23.0 (it dropped fsnotify); it has no missed events, knows exactly
how many rotations happened while a reader lagged (so it reads the files rotated in between),
and ends followers when the driver closes. The writer is always in this process (the copier
feeds it), so a file watcher would add nothing but races.

File reads run in worker threads; the event loop only awaits them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import gzip
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.drivers import timefmt
from engine.drivers.log import LogMessage, ReadConfig

__all__ = ["Codec", "LogFile", "LogFileClosed", "Rotation", "messages_of"]

log = logging.getLogger(__name__)

BATCH_BYTES = 256 * 1024  # bytes read per batch of messages handed to the event loop
BLOCK = 64 * 1024  # backwards scan block for tail


class Codec(Protocol):
    """How messages become lines. ``encode`` returns one line ending in ``\\n`` (and no other
    newline); ``decode`` gets that line without its ``\\n`` and raises ``ValueError`` on garbage.
    A codec may add ``encode_many(messages) -> list[bytes]``, a faster batch ``encode``."""

    def encode(self, message: LogMessage) -> bytes: ...

    def decode(self, line: bytes) -> LogMessage: ...


@dataclass(frozen=True)
class Rotation:
    max_size: int = -1  # bytes; -1: never rotate
    max_files: int = 1  # files kept, the current one included
    compress: bool = False  # gzip rotated files


class LogFileClosed(Exception):
    """Writing to a closed log file."""


class _Waiter:
    __slots__ = ("event", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the reader's loop is gone
            pass


async def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    """``asyncio.to_thread`` that, when cancelled, still waits for the thread: the caller closes
    the file descriptors the thread is reading right after."""
    future = asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise


class LogFile:
    """The writer and reader of one container's log file. Thread-safe."""

    def __init__(self, path: Path, codec: Codec, rotation: Rotation = Rotation(), perms: int = 0o640) -> None:
        self.path = Path(path)
        self.codec = codec
        self.rotation = rotation
        self.perms = perms
        self._lock = threading.Lock()  # file operations and the write position
        self._fd: int | None = None  # opened on the first write
        # (rotation number, size of the current file); replaced, never mutated, so readers
        # may look at it without the lock
        self._pos: tuple[int, int] = (0, 0)
        self._opened_at = (0, 0)  # the position when the writer opened the file
        self._last_ns = 0
        self._closed = False
        self._compressor: threading.Thread | None = None
        # a lock of its own: the event loop takes it, and _lock may be held through a rotation
        self._waiters_lock = threading.Lock()
        self._waiters: set[_Waiter] = set()

    # -- writing -----------------------------------------------------------------------------------

    def write(self, messages: Sequence[LogMessage]) -> None:
        """Append messages (one write per batch, no fsync), rotating when the file is full."""
        if not messages:
            return
        encode_many = getattr(self.codec, "encode_many", None)
        lines = encode_many(messages) if encode_many is not None else [self.codec.encode(m) for m in messages]
        max_size = self.rotation.max_size
        with self._lock:
            if self._closed:
                raise LogFileClosed(f"cannot write because the output file was closed: {self.path}")
            if self._fd is None:
                self._open_for_writing()
            rotation, size = self._pos
            if max_size < 0:
                data = b"".join(lines)
                self._write_all(data)
                size += len(data)
                self._last_ns = messages[-1].time_ns
            else:
                # as moby: rotate before a write when the file has reached max-size
                start = 0
                pending = 0
                for i, line in enumerate(lines):
                    if size + pending >= max_size:
                        if i > start:
                            self._write_all(b"".join(lines[start:i]))
                            self._last_ns = messages[i - 1].time_ns
                        size += pending
                        self._pos = (rotation, size)
                        self._rotate()
                        rotation, size = self._pos
                        start, pending = i, 0
                    pending += len(line)
                self._write_all(b"".join(lines[start:]))
                self._last_ns = messages[-1].time_ns
                size += pending
            self._pos = (rotation, size)
        self._wake_readers()

    def _wake_readers(self) -> None:
        if self._waiters:
            with self._waiters_lock:
                waiters = list(self._waiters)
            for waiter in waiters:
                waiter.wake()

    def _open_for_writing(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.perms)
        self._pos = self._opened_at = (self._pos[0], os.fstat(self._fd).st_size)

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _rotate(self) -> None:
        """Close the full file, shift the rotated ones, start an empty one (lock held)."""
        if self._compressor is not None:  # the previous .1 must be compressed before it moves
            self._compressor.join()
            self._compressor = None
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        path, keep, ext = str(self.path), self.rotation.max_files, ".gz" if self.rotation.compress else ""
        try:
            if keep < 2:
                # readers may still be reading it: unlink rather than truncate
                _unlink(path)
            else:
                _unlink(f"{path}.{keep - 1}{ext}")
                for i in range(keep - 1, 1, -1):
                    _rename(f"{path}.{i - 1}{ext}", f"{path}.{i}{ext}")
                _rename(path, f"{path}.1")
        except OSError as exc:
            log.warning("error rotating log file %s, log data may have been lost: %s", path, exc)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, self.perms)
        self._pos = (self._pos[0] + 1, 0)
        if self.rotation.compress and keep >= 2:
            self._compressor = threading.Thread(
                target=_compress_file, args=(f"{path}.1", self._last_ns), name="log-compress", daemon=True
            )
            self._compressor.start()

    def close(self) -> None:
        """No more writes; followers read what is left and end."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            compressor, self._compressor = self._compressor, None
        self._wake_readers()
        if compressor is not None:
            compressor.join()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- reading -----------------------------------------------------------------------------------

    def read(self, config: ReadConfig) -> AsyncIterator[list[LogMessage]]:
        """Batches of the messages ``config`` asks for; with ``follow``, new ones as they are
        written (across rotations) until :meth:`close`.

        Call it on the event loop. As moby, the write position is taken right away, so a follower
        with ``tail=0`` gets exactly what is written after this call."""
        waiter = _Waiter() if config.follow else None
        if waiter is not None:
            with self._waiters_lock:  # never held for long
                self._waiters.add(waiter)
        start = self._pos if self._fd is not None else (self._pos[0], self._size_on_disk())
        return self._read(config, waiter, start)

    def _size_on_disk(self) -> int:
        """The current file's size while no writer has it open (0: not written yet). Taken when the
        read is asked for, so a writer that opens the file before the read starts does not move the
        line between what the read's tail covers and what it follows."""
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    async def _read(
        self, config: ReadConfig, waiter: _Waiter | None, start: tuple[int, int] | None
    ) -> AsyncIterator[list[LogMessage]]:
        try:
            snapshot = await _in_thread(self._snapshot, config.tail != 0, start)
            try:
                reader = _Reader(self.codec, config)
                initial = reader.initial(snapshot)
                try:
                    while (batch := await _in_thread(next, initial, None)) is not None:
                        if batch:
                            yield batch
                finally:
                    initial.close()
                if waiter is not None and not reader.done:
                    async for batch in self._follow(reader, waiter, snapshot):
                        yield batch
            finally:
                snapshot.close()
        finally:
            if waiter is not None:
                with self._waiters_lock:
                    self._waiters.discard(waiter)

    def _snapshot(self, with_rotated: bool, start: tuple[int, int] | None) -> _Snapshot:
        """Open the files to read and fix the position the read starts following from, atomically
        with respect to rotation.

        ``start`` is the write position when the read was asked for (None: the writer had not
        opened the file then). The initial read (tail, since...) covers everything before it, the
        follow everything after it, like moby. The file of ``start`` may have been rotated to
        ``.k`` since; if it is gone (or compressed), the read starts at the current position."""
        with self._lock:
            fd, rotation, size = self._open_current_locked()
            if start is None:
                start = self._opened_at if self._fd is not None else (rotation, size)
            k = rotation - start[0]
            if k > 0:
                start_fd = None
                if k < self.rotation.max_files:
                    with contextlib.suppress(FileNotFoundError):
                        start_fd = os.open(f"{self.path}.{k}", os.O_RDONLY | os.O_CLOEXEC)
                if start_fd is None:
                    start, k = (rotation, size), 0
                else:
                    if fd is not None:
                        os.close(fd)
                    fd = start_fd
            rotated: list[_Source] = []
            if with_rotated:
                for i in range(self.rotation.max_files - 1, k, -1):  # the files older than start's
                    source = _open_rotated(f"{self.path}.{i}")
                    if source is not None:
                        rotated.append(source)
            return _Snapshot(rotated, fd, start[0], start[1])

    def _open_current_locked(self) -> tuple[int | None, int, int]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, self._pos[0], 0
        rotation, size = self._pos
        if self._fd is None:  # nobody writes here (a stopped container): read what is there
            size = os.fstat(fd).st_size
        return fd, rotation, size

    async def _follow(self, reader: _Reader, waiter: _Waiter, snapshot: _Snapshot) -> AsyncIterator[list[LogMessage]]:
        """New messages, from the position the snapshot fixed."""
        read_rotation, read_size = snapshot.rotation, snapshot.size
        while not reader.done:
            waiter.event.clear()
            closed = self._closed  # read before the position: once closed, the position is final
            rotation, size = self._pos
            if rotation != read_rotation:
                moved = self._after_rotation(reader, snapshot, read_rotation, read_size)
                try:
                    while (batch := await _in_thread(next, moved, None)) is not None:
                        if batch:
                            yield batch
                finally:
                    moved.close()
                read_rotation, read_size = snapshot.rotation, 0
            elif size > read_size and snapshot.fd is None:
                # the file did not exist when we started: open it, atomically with its position
                snapshot.fd, read_rotation, _ = await _in_thread(self._reopen_current)
                read_size = 0
                if snapshot.fd is None:  # removed again already: wait for the next write
                    await waiter.event.wait()
            elif size > read_size:
                end = min(size, read_size + 4 * BATCH_BYTES)
                batch = await _in_thread(reader.read_range, snapshot.fd, read_size, end)
                read_size = end
                if batch:
                    yield batch
            elif closed:
                return
            else:
                await waiter.event.wait()

    def _reopen_current(self) -> tuple[int | None, int, int]:
        with self._lock:
            return self._open_current_locked()

    def _after_rotation(
        self, reader: _Reader, snapshot: _Snapshot, read_rotation: int, read_size: int
    ) -> Iterator[list[LogMessage]]:
        """Batches of the rest of the file we were reading and of the files rotated out since
        (run step by step in worker threads); then ``snapshot`` holds the new current file."""
        # the file of read_rotation is now .n (n = rotations since), the ones after it .n-1 ... .1;
        # ours is read from the fd we hold or, when it did not exist yet when we started, as .n
        skip_ours = snapshot.fd is not None
        if snapshot.fd is not None:
            end = os.fstat(snapshot.fd).st_size  # final: the writer closed it before renaming
            yield from reader.iter_range(snapshot.fd, read_size, end)
            os.close(snapshot.fd)
            snapshot.fd = None
        with self._lock:
            rotation = self._pos[0]
            missed: list[_Source] = []
            oldest = rotation - read_rotation - (1 if skip_ours else 0)
            for k in range(min(oldest, self.rotation.max_files - 1), 0, -1):
                source = _open_rotated(f"{self.path}.{k}")
                if source is not None:
                    missed.append(source)
            snapshot.fd, snapshot.rotation, _ = self._open_current_locked()
        try:
            for source in missed:
                if not reader.done:
                    yield from reader.read_source(source)
        finally:
            for source in missed:
                source.close()


async def messages_of(batches: AsyncIterator[list[LogMessage]]) -> AsyncIterator[LogMessage]:
    """One message at a time, for ``read_logs`` (drivers return ``messages_of(file.read(config))``
    from a plain method, so the read position is taken when ``read_logs`` is called)."""
    try:
        async for batch in batches:
            for message in batch:
                yield message
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass
class _Snapshot:
    rotated: list[_Source]  # older files, oldest first
    fd: int | None  # the file the read starts in
    rotation: int  # its rotation number
    size: int  # where the initial read ends and the follow starts

    def close(self) -> None:
        for source in self.rotated:
            source.close()
        self.rotated = []
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Source:
    """A rotated file: plain (read with pread) or gzipped (streamed)."""

    def __init__(self, path: str, fd: int, gz: bool) -> None:
        self.path, self.fd, self.gz = path, fd, gz
        self.size = 0 if gz else os.fstat(fd).st_size

    def last_time_ns(self, codec: Codec) -> int | None:
        """The time of the file's last message, to skip whole files older than ``since``."""
        if self.gz:
            return _gzip_last_time(self.fd)
        start, _ = _tail_offset(self.fd, self.size, 1)
        line = os.pread(self.fd, self.size - start, start).rstrip(b"\n")
        try:
            return codec.decode(line).time_ns if line else None
        except ValueError:
            return None

    def chunks(self) -> Iterator[bytes]:
        if self.gz:
            with os.fdopen(os.dup(self.fd), "rb") as raw, gzip.GzipFile(fileobj=raw) as stream:
                raw.seek(0)
                try:
                    while chunk := stream.read(BATCH_BYTES):
                        yield chunk
                except (OSError, EOFError, zlib.error) as exc:  # a damaged file: keep what was read
                    log.warning("error reading compressed log file %s: %s", self.path, exc)
        else:
            offset = 0
            while offset < self.size:
                chunk = os.pread(self.fd, min(BATCH_BYTES, self.size - offset), offset)
                if not chunk:
                    break
                offset += len(chunk)
                yield chunk

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_rotated(base: str) -> _Source | None:
    """``base`` if it exists (a file being compressed is still there), else ``base.gz``."""
    for path, gz in ((base, False), (base + ".gz", True)):
        try:
            return _Source(path, os.open(path, os.O_RDONLY | os.O_CLOEXEC), gz)
        except FileNotFoundError:
            continue
    return None


class _Reader:
    """Decoding and filtering shared by the initial read and the follow.

    ``since`` skips messages until the first one at or after it; later ones all pass even when
    the clock went backwards (moby's rule since 23.0). ``until`` ends the read at the first
    message after it.
    """

    def __init__(self, codec: Codec, config: ReadConfig) -> None:
        self.codec = codec
        self.config = config
        self.since = config.since_ns
        self.done = False  # a message after ``until`` was seen: nothing more to send

    def decode_lines(self, lines: list[bytes]) -> list[LogMessage]:
        decode, until = self.codec.decode, self.config.until_ns
        out: list[LogMessage] = []
        for line in lines:
            if not line:
                continue
            try:
                message = decode(line)
            except ValueError:
                log.debug("skipping an undecodable log line: %r", line[:100])
                continue
            ts = message.time_ns
            if self.since:
                if ts < self.since:
                    continue
                self.since = 0
            if until and ts > until:
                self.done = True
                break
            out.append(message)
        return out

    def read_chunks(self, chunks: Iterator[bytes]) -> Iterator[list[LogMessage]]:
        rest = b""
        for chunk in chunks:
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield self.decode_lines(lines)
            if self.done:
                return
        if rest:
            yield self.decode_lines([rest])

    def read_source(self, source: _Source) -> Iterator[list[LogMessage]]:
        return self.read_chunks(source.chunks())

    def read_range(self, fd: int, start: int, end: int) -> list[LogMessage]:
        """Complete lines in ``[start, end)`` (the writer only publishes whole lines)."""
        data = _pread_all(fd, start, end)
        return self.decode_lines(data.split(b"\n"))

    def iter_range(self, fd: int, start: int, end: int) -> Iterator[list[LogMessage]]:
        """``[start, end)`` of a file no longer written, in batches."""
        while start < end and not self.done:
            stop = min(end, start + 4 * BATCH_BYTES)
            data = _pread_all(fd, start, stop)
            cut = data.rfind(b"\n") + 1 if stop < end else len(data)
            if cut == 0:  # no line is that long (16 KiB pieces, escaped at most 6x); garbage: skip it
                cut = len(data)
            yield self.decode_lines(data[:cut].split(b"\n"))
            start += cut

    def initial(self, snapshot: _Snapshot) -> Iterator[list[LogMessage]]:
        """What is stored now (``tail``, then since/until), in batches."""
        tail = self.config.tail
        if tail == 0:
            return
        current = _CurrentPart(snapshot.fd, snapshot.size)
        if tail > 0:
            yield from self._tail(snapshot.rotated, current, tail)
            return
        for source in snapshot.rotated:
            if self.since:
                last = source.last_time_ns(self.codec)
                if last is not None and last < self.since:
                    continue
            yield from self.read_source(source)
            if self.done:
                return
        yield from self.read_chunks(current.chunks())

    def _tail(self, rotated: list[_Source], current: _CurrentPart, wanted: int) -> Iterator[list[LogMessage]]:
        """The last ``wanted`` lines across the files, found by scanning backwards."""
        parts: list[Iterator[bytes]] = []
        for source in [current, *reversed(rotated)]:
            if wanted <= 0:
                break
            if isinstance(source, _Source) and source.gz:
                lines = collections.deque(_lines(source.chunks()), maxlen=wanted)
                wanted -= len(lines)
                parts.append(iter([b"\n".join(lines) + b"\n"] if lines else []))
                continue
            if source.fd is None or source.fd < 0 or source.size == 0:
                continue
            start, found = _tail_offset(source.fd, source.size, wanted)
            wanted -= found
            parts.append(_range_chunks(source.fd, start, source.size))
        for chunks in reversed(parts):
            yield from self.read_chunks(chunks)
            if self.done:
                return


@dataclass
class _CurrentPart:
    """The part of the file the read starts in that the initial read covers: ``[0, size)``."""

    fd: int | None
    size: int

    def chunks(self) -> Iterator[bytes]:
        if self.fd is None:
            return iter(())
        return _range_chunks(self.fd, 0, self.size)


def _range_chunks(fd: int, start: int, end: int) -> Iterator[bytes]:
    while start < end:
        chunk = os.pread(fd, min(BATCH_BYTES, end - start), start)
        if not chunk:
            return
        start += len(chunk)
        yield chunk


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def _pread_all(fd: int, start: int, end: int) -> bytes:
    parts = []
    while start < end:
        chunk = os.pread(fd, end - start, start)
        if not chunk:
            break
        parts.append(chunk)
        start += len(chunk)
    return b"".join(parts)


def _tail_offset(fd: int, size: int, wanted: int) -> tuple[int, int]:
    """Where the last ``wanted`` lines of ``[0, size)`` start, and how many lines that is
    (fewer when the file has fewer). Reads backwards block by block."""
    # the last line's own newline is at size-1; the start is right after the
    # (wanted+1)-th newline from the end
    newlines = 0
    pos = size
    while pos > 0:
        start = max(0, pos - BLOCK)
        data = os.pread(fd, pos - start, start)
        idx = len(data)
        while (idx := data.rfind(b"\n", 0, idx)) >= 0:
            if start + idx == size - 1:
                continue  # the final newline ends the last line; it starts none
            newlines += 1
            if newlines == wanted:
                return start + idx + 1, wanted
        pos = start
    lines = newlines + (1 if size > 0 else 0)
    return 0, min(lines, wanted)


# -- rotation helpers ------------------------------------------------------------------------------


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _rename(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def _compress_file(path: str, last_ns: int) -> None:
    """``path`` -> ``path.gz``; the plain file goes only once the gzip file is complete, so a
    reader always finds one whole copy. The gzip header's extra field carries
    ``{"lastTime": ...}`` as dockerd writes it, which lets ``since`` skip the file unread."""
    tmp = f"{path}.gz.tmp"
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            extra = json.dumps({"lastTime": timefmt.rfc3339nano(last_ns)}, separators=(",", ":")).encode()
            # gzip member header: magic, deflate, FEXTRA, mtime, xfl, OS (unix)
            dst.write(struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 4, int(time.time()), 0, 3))
            dst.write(struct.pack("<H", len(extra)) + extra)
            deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            crc, size = 0, 0
            while chunk := src.read(1 << 20):
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                dst.write(deflate.compress(chunk))
            dst.write(deflate.flush())
            dst.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
        os.chmod(tmp, 0o640)
        os.rename(tmp, f"{path}.gz")
        os.unlink(path)
    except FileNotFoundError:
        _unlink(tmp)
    except OSError as exc:
        log.error("error compressing log file %s after rotation: %s", path, exc)
        _unlink(tmp)


def _gzip_last_time(fd: int) -> int | None:
    header = os.pread(fd, 12, 0)
    if len(header) < 12 or header[:2] != b"\x1f\x8b" or not header[3] & 4:
        return None
    (xlen,) = struct.unpack("<H", header[10:12])
    try:
        extra = json.loads(os.pread(fd, xlen, 12))
        return timefmt.parse_rfc3339nano(extra["lastTime"])
    except (ValueError, KeyError, TypeError):
        return None
