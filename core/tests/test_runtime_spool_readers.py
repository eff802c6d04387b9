"""Several readers of one spool: the consumer's acks must not delete output a slower reader (an
attached client) has not read yet, and a reader that fell too far behind must not stall."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.runtime import spool as spool_module
from engine.runtime.spool import HEADER, HEADER_SIZE, STREAM_END, Spool


def write_records(path: Path, payloads: list[bytes], limit: int, end: bool = True) -> None:
    """Segments as engine-shim writes them, rotating before a record that would pass ``limit``."""
    path.mkdir(exist_ok=True)
    start = size = 0
    records = [(1, p) for p in payloads] + ([(STREAM_END, b"")] if end else [])
    for stream, data in records:
        if size and size + HEADER_SIZE + len(data) > limit:
            start, size = start + size, 0
        with open(path / f"{start:016x}.seg", "ab") as f:
            f.write(HEADER.pack(len(data), stream, 0, 0, 1) + data)
        size += HEADER_SIZE + len(data)


async def drain(reader) -> list[bytes]:
    return [chunk.data async for chunk in reader]


def test_ack_keeps_segments_a_slower_reader_still_needs(tmp_path: Path) -> None:
    lines = [b"line%03d" % i for i in range(60)]
    write_records(tmp_path / "s", lines, limit=100)
    spool = Spool(tmp_path / "s")
    assert len(spool.segments()) > 10

    async def scenario() -> list[bytes]:
        slow = spool.reader("start", follow=False)
        first = [await slow.__anext__() for _ in range(3)]
        copied, ended = spool.read_available("acked")  # the log copier: reads everything, acks it
        assert ended and len(copied) == 60
        spool.ack(copied[-1].offset)
        rest = await drain(slow)
        return [c.data for c in first] + rest

    assert asyncio.run(scenario()) == lines
    # once the slow reader is done, the acked segments go
    assert len(spool.segments()) <= 2


def test_reader_too_far_behind_continues_at_the_oldest_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "PIN_LIMIT", 200)
    lines = [b"line%03d" % i for i in range(60)]
    write_records(tmp_path / "s", lines, limit=100)
    spool = Spool(tmp_path / "s")

    async def scenario() -> list[bytes]:
        slow = spool.reader("start", follow=False)
        got = [(await slow.__anext__()).data]
        copied, _ = spool.read_available("acked")
        spool.ack(copied[39].offset)  # far more than PIN_LIMIT past the slow reader
        return got + await drain(slow)

    got = asyncio.run(asyncio.wait_for(scenario(), 10))
    # what it had buffered, then a gap, then everything from the oldest segment left: no stall
    assert got[:4] == lines[:4]  # its first segment: read before the ack
    assert got[-1] == b"line059"
    resumed = lines.index(got[4])
    assert 4 < resumed <= 40 and got[4:] == lines[resumed:]
