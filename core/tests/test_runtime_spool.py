"""The spool format and reader, with a Python stand-in for the shim's writer (the real shim is
covered by test_runtime.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from engine.runtime.spool import HEADER, HEADER_SIZE, STREAM_END, Chunk, Spool


class Writer:
    """Writes records the way engine-shim does, rotating at ``limit`` bytes."""

    def __init__(self, path: Path, limit: int = 1 << 20) -> None:
        self.path, self.limit = path, limit
        self.start, self.size = 0, 0
        path.mkdir(exist_ok=True)
        (path / f"{0:016x}.seg").touch()

    def record(self, stream: int, data: bytes, ts: int = 1) -> bytes:
        return HEADER.pack(len(data), stream, 0, 0, ts) + data

    def raw(self, blob: bytes) -> None:
        with open(self.path / f"{self.start:016x}.seg", "ab") as f:
            f.write(blob)
        self.size += len(blob)

    def write(self, stream: int, data: bytes) -> None:
        if self.size and self.size + HEADER_SIZE + len(data) > self.limit:
            self.start += self.size
            self.size = 0
        self.raw(self.record(stream, data))

    def end(self) -> None:
        self.write(STREAM_END, b"")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


async def take(reader, n: int) -> list[Chunk]:
    out = []
    async for chunk in reader:
        out.append(chunk)
        if len(out) == n:
            break
    return out


def test_records_offsets_and_end(tmp_path: Path) -> None:
    w = Writer(tmp_path / "s")
    w.write(1, b"out")
    w.write(2, b"err")
    w.end()
    w.write(1, b"after end is never read")
    chunks, ended = Spool(w.path).read_available()
    assert ended
    assert [(c.stream, c.data, c.offset) for c in chunks] == [(1, b"out", 19), (2, b"err", 38)]
    assert [c.data for c in Spool(w.path).read_available(19)[0]] == [b"err"]


def test_partial_record_waits_for_the_rest(tmp_path: Path) -> None:
    w = Writer(tmp_path / "s")
    blob = w.record(1, b"hello world")
    w.raw(blob[:7])
    spool = Spool(w.path)
    assert spool.read_available() == ([], False)
    assert spool.end_offset() == 0  # a half-written record is not a place to start from

    async def follow() -> list[bytes]:
        reader = spool.reader("start")
        task = asyncio.ensure_future(take(reader, 2))
        await asyncio.sleep(0.05)
        w.raw(blob[7:])
        w.write(2, b"x")
        return [c.data for c in await task]

    assert run(follow()) == [b"hello world", b"x"]
    assert spool.end_offset() == HEADER_SIZE * 2 + 12


def test_rotation_ack_and_resume(tmp_path: Path) -> None:
    w = Writer(tmp_path / "s", limit=100)
    for i in range(20):
        w.write(1, f"line{i:02d}".encode())
    w.end()
    spool = Spool(w.path)
    assert len(spool.segments()) > 3
    chunks, ended = spool.read_available("acked")
    assert ended and [c.data for c in chunks] == [f"line{i:02d}".encode() for i in range(20)]
    spool.ack(chunks[9].offset)
    assert spool.segments()[0] <= chunks[9].offset  # no segment with unconsumed data was deleted
    assert all(nxt > chunks[9].offset for nxt in spool.segments()[1:2])
    # a new daemon (new Spool object) resumes exactly after the last ack
    again, _ = Spool(w.path).read_available("acked")
    assert [c.data for c in again] == [f"line{i:02d}".encode() for i in range(10, 20)]
    # a reader behind the oldest remaining segment starts at it
    late, _ = Spool(w.path).read_available(0)
    assert late[0].data <= b"line10"


def test_follow_ends_when_writer_is_gone(tmp_path: Path) -> None:
    w = Writer(tmp_path / "s")
    w.write(1, b"a")
    alive = [True]
    spool = Spool(w.path, alive=lambda: alive[0])

    async def scenario() -> list[bytes]:
        reader = spool.reader("start", idle_check=0.05)
        got = []

        async def consume() -> None:
            async for chunk in reader:
                got.append(chunk.data)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.15)
        w.write(1, b"b")
        await asyncio.sleep(0.15)
        alive[0] = False  # killed without END
        await task
        return got

    assert run(scenario()) == [b"a", b"b"]


def test_follow_across_segments_with_inotify(tmp_path: Path) -> None:
    w = Writer(tmp_path / "s", limit=64)
    spool = Spool(w.path)

    async def scenario() -> list[bytes]:
        reader = spool.reader("end", idle_check=5)
        task = asyncio.ensure_future(take(reader, 10))
        for i in range(10):
            await asyncio.sleep(0.01)
            w.write(1, f"{i}".encode() * 20)
        return [c.data for c in await task]

    assert run(scenario()) == [f"{i}".encode() * 20 for i in range(10)]
    assert len(spool.segments()) >= 5


@pytest.mark.parametrize("bad", [b"\xff" * 3, b""])
def test_garbage_files_are_ignored(tmp_path: Path, bad: bytes) -> None:
    w = Writer(tmp_path / "s")
    w.write(1, b"a")
    (w.path / "notes.txt").write_bytes(bad)
    (w.path / "zz.seg").write_bytes(bad)
    assert [c.data for c in Spool(w.path).read_available()[0]] == [b"a"]
    os.unlink(w.path / "zz.seg")


def _inotify_fds() -> int:
    return sum(1 for fd in os.listdir("/proc/self/fd") if "inotify" in os.path.realpath(f"/proc/self/fd/{fd}"))


def test_many_followers_share_one_inotify_instance(tmp_path: Path) -> None:
    """Linux allows 128 inotify instances per user: 200 following readers must not need 200."""
    writers = [Writer(tmp_path / f"s{i}") for i in range(200)]
    before = _inotify_fds()

    async def scenario() -> tuple[int, list[bytes]]:
        readers = [Spool(w.path).reader("start", idle_check=5) for w in writers]
        tasks = [asyncio.ensure_future(take(r, 1)) for r in readers]
        await asyncio.sleep(0.05)
        during = _inotify_fds()
        for i, w in enumerate(writers):
            w.write(1, b"%d" % i)
        got = [c[0].data for c in await asyncio.gather(*tasks)]
        for r in readers:
            await r.aclose()
        return during, got

    during, got = run(scenario())
    assert during == before + 1
    assert got == [b"%d" % i for i in range(200)]
    assert _inotify_fds() == before  # closed with the last watch
