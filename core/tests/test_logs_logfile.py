"""The rotating log file: rotation and compression on disk, tail, since, follow edge cases."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import time
from pathlib import Path

import pytest

from engine.drivers import logfile
from engine.drivers.log import LogMessage, ReadConfig
from engine.drivers.logfile import LogFile, LogFileClosed, Rotation
from engine.logs.cache import CacheCodec

T0 = 1_700_000_000_000_000_000


def msgs(n: int, start: int = 0, width: int = 30) -> list[LogMessage]:
    return [
        LogMessage(b"%06d %s" % (i, b"w" * width), "stdout", (T0 + i * 1000) / 1e9, T0 + i * 1000)
        for i in range(start, start + n)
    ]


def numbers(messages: list[LogMessage]) -> list[int]:
    return [int(m.line[:6]) for m in messages]


async def read(file: LogFile, config: ReadConfig = ReadConfig()) -> list[LogMessage]:
    return [m for batch in [b async for b in file.read(config)] for m in batch]


def run(coro, timeout: float = 20):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_rotation_keeps_max_files_and_reads_in_order(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "c.log", CacheCodec(), Rotation(max_size=1000, max_files=3))
    f.write(msgs(200))
    f.close()
    assert sorted(os.listdir(tmp_path)) == ["c.log", "c.log.1", "c.log.2"]
    for name in os.listdir(tmp_path):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o640
    got = numbers(run(read(LogFile(tmp_path / "c.log", CacheCodec(), Rotation(1000, 3)))))
    assert got == list(range(got[0], 200)) and got[0] > 0
    # every file but the current one reached max-size (rotation happens before the write that
    # would start past it, as dockerd)
    assert os.path.getsize(tmp_path / "c.log.1") >= 1000


def test_compressed_rotation_with_last_time_header(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "c.log", CacheCodec(), Rotation(max_size=1000, max_files=4, compress=True))
    f.write(msgs(300))
    f.close()  # waits for the compression in progress
    assert sorted(os.listdir(tmp_path)) == ["c.log", "c.log.1.gz", "c.log.2.gz", "c.log.3.gz"]
    with open(tmp_path / "c.log.1.gz", "rb") as raw:
        header = raw.read(12)
        assert header[3] & 4  # FEXTRA
        extra = json.loads(raw.read(int.from_bytes(header[10:12], "little")))
    last_line = gzip.decompress((tmp_path / "c.log.1.gz").read_bytes()).splitlines()[-1]
    assert extra["lastTime"].startswith("2023-11-14T22:13:20.")
    assert int(last_line.split(b" ")[0]) == logfile.timefmt.parse_rfc3339nano(extra["lastTime"])
    reader = LogFile(tmp_path / "c.log", CacheCodec(), Rotation(1000, 4, True))
    got = numbers(run(read(reader)))
    assert got == list(range(got[0], 300))
    # since skips whole compressed files by their header, and tail reads into them
    assert numbers(run(read(reader, ReadConfig(since_ns=T0 + 290 * 1000)))) == list(range(290, 300))
    assert numbers(run(read(reader, ReadConfig(tail=len(got) - 1)))) == got[1:]


def test_single_file_rotation_starts_over(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "c.log", CacheCodec(), Rotation(max_size=500, max_files=1))
    f.write(msgs(100))
    f.close()
    assert os.listdir(tmp_path) == ["c.log"]
    assert os.path.getsize(tmp_path / "c.log") < 600


def test_tail_scans_backwards_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfile, "BLOCK", 100)  # many blocks, lines straddling them
    f = LogFile(tmp_path / "c.log", CacheCodec())
    f.write(msgs(1000, width=7))
    for tail in (1, 2, 13, 999, 1000, 5000):
        assert numbers(run(read(f, ReadConfig(tail=tail)))) == list(range(max(0, 1000 - tail), 1000)), tail
    f.close()


def test_writing_after_close_fails(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "c.log", CacheCodec())
    f.close()
    with pytest.raises(LogFileClosed):
        f.write(msgs(1))


def test_follow_before_the_file_exists(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "sub" / "c.log", CacheCodec())

    async def scenario() -> list[LogMessage]:
        reader = asyncio.ensure_future(read(f, ReadConfig(tail=-1, follow=True)))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(f.write, msgs(5))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(f.write, msgs(5, 5))
        await asyncio.to_thread(f.close)
        return await reader

    assert numbers(run(scenario())) == list(range(10))


@pytest.mark.parametrize("existing", [0, 3])
def test_follower_position_is_taken_when_the_read_is_asked_for(tmp_path: Path, existing: int) -> None:
    """Before any writer opened the file: the tail covers what is on disk at the call, the follow
    everything written after it, however late the reader's first step runs (here: after the writer
    wrote and closed)."""
    path = tmp_path / "c.log"
    if existing:
        earlier = LogFile(path, CacheCodec())
        earlier.write(msgs(existing, 100))
        earlier.close()
    f = LogFile(path, CacheCodec())

    async def scenario() -> list[LogMessage]:
        iterator = f.read(ReadConfig(tail=1, follow=True))
        await asyncio.to_thread(f.write, msgs(5))
        await asyncio.to_thread(f.close)
        return [m async for batch in iterator for m in batch]

    assert numbers(run(scenario())) == ([100 + existing - 1] if existing else []) + list(range(5))


def test_lagging_follower_reads_the_files_rotated_in_between(tmp_path: Path) -> None:
    """Many rotations in one write batch: the follower finds the intermediate files."""
    f = LogFile(tmp_path / "c.log", CacheCodec(), Rotation(max_size=2000, max_files=20))

    async def scenario() -> list[LogMessage]:
        reader = asyncio.ensure_future(read(f, ReadConfig(tail=0, follow=True)))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(f.write, msgs(10))
        await asyncio.to_thread(f.write, msgs(400, 10))  # ~20 rotations at once
        await asyncio.to_thread(f.close)
        return await reader

    assert numbers(run(scenario())) == list(range(410))


def test_lagging_follower_with_compression(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "c.log", CacheCodec(), Rotation(max_size=2000, max_files=20, compress=True))

    async def scenario() -> list[LogMessage]:
        reader = asyncio.ensure_future(read(f, ReadConfig(tail=-1, follow=True)))
        await asyncio.sleep(0.05)
        for i in range(0, 400, 50):
            await asyncio.to_thread(f.write, msgs(50, i))
        await asyncio.to_thread(f.close)
        return await reader

    assert numbers(run(scenario())) == list(range(400))


def test_cancelled_follower_closes_its_files(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "c.log", CacheCodec(), Rotation(max_size=1000, max_files=3))
    f.write(msgs(100))
    before = len(os.listdir("/proc/self/fd"))

    async def scenario() -> None:
        iterator = f.read(ReadConfig(tail=-1, follow=True))
        first = await anext(iterator)
        assert first
        await iterator.aclose()

    run(scenario())
    assert len(os.listdir("/proc/self/fd")) == before
    assert not f._waiters
    f.close()


def test_follow_until_in_the_past_ends_at_the_next_message(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "c.log", CacheCodec())
    f.write(msgs(3))

    async def scenario() -> list[LogMessage]:
        reader = asyncio.ensure_future(read(f, ReadConfig(tail=-1, follow=True, until_ns=T0 + 2500)))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(f.write, msgs(3, 3))
        return await reader

    assert numbers(run(scenario())) == [0, 1, 2]
    f.close()


def test_write_throughput_is_not_per_line_syscalls(tmp_path: Path) -> None:
    """A batch is one write: 50k short lines take well under a second."""
    f = LogFile(tmp_path / "c.log", CacheCodec())
    batch = msgs(50_000, width=10)
    started = time.perf_counter()
    for i in range(0, len(batch), 1000):
        f.write(batch[i : i + 1000])
    elapsed = time.perf_counter() - started
    f.close()
    assert elapsed < 2.0
