"""Log driver benchmarks: how fast container output gets stored and read back.

Per driver (default: every installed driver that can read back, plus ``none`` as the copier's
baseline), in a temp directory:

- ``write``: ``log_many`` in batches of 1000 lines (the driver alone);
- ``copier``: the daemon's path, 64 KiB output chunks through :class:`engine.logs.Copier`
  (line splitting, batching, the worker thread) into the driver;
- ``read``: ``docker logs`` of everything written (the reader's batches);
- ``tail``: the last 100 lines of that (milliseconds);
- ``follow``: median latency from a write to a follower receiving it (milliseconds).

``engine-bench logs [--driver NAME ...] [--lines N] [--size BYTES]`` or
``python -m engine_testkit.logs_bench`` prints one table; :class:`LogDriverBench` runs the cases
for one driver (and once, as a smoke test, under pytest).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from engine.drivers.log import LogDriver, LogMessage, ReadConfig
from engine.logs import Copier, read_batches
from engine.registry import LOG, DriverRegistry
from engine_testkit.logs import make_log_info

MB = 1_000_000


def _driver(name: str, root: Path, tag: str, options: dict[str, str] | None = None) -> LogDriver:
    cls = DriverRegistry[LogDriver](LOG).load(name)
    log_dir = root / tag
    log_dir.mkdir(exist_ok=True)
    cls.validate_options(dict(options or {}))
    return cls(make_log_info(log_dir, options, (tag.encode().hex() * 64)[:64]))


def _payload(lines: int, size: int) -> list[bytes]:
    body = b"x" * max(0, size - 8)
    return [b"%07d %s" % (i, body) for i in range(lines)]


def bench_write(name: str, root: Path, lines: list[bytes], options: dict[str, str] | None = None) -> float:
    driver = _driver(name, root, "write", options)
    now = time.time_ns()
    messages = [LogMessage(line, "stdout", now / 1e9, now + i) for i, line in enumerate(lines)]
    started = time.perf_counter()
    for i in range(0, len(messages), 1000):
        driver.log_many(messages[i : i + 1000])
    driver.close()
    return time.perf_counter() - started


async def _chunks(data: bytes) -> AsyncIterator[tuple[str, int, bytes]]:
    for i in range(0, len(data), 65536):
        yield ("stdout", time.time_ns(), data[i : i + 65536])


def bench_copier(name: str, root: Path, lines: list[bytes], options: dict[str, str] | None = None) -> float:
    driver = _driver(name, root, "copier", options)
    data = b"\n".join(lines) + b"\n"

    async def run() -> float:
        copier = Copier(_chunks(data), driver, container_id="bench")
        started = time.perf_counter()
        copier.start()
        await copier.wait()
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    driver.close()
    return elapsed


def bench_read(name: str, root: Path, count: int, options: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds to read everything, milliseconds for tail 100) from the write case's logs."""
    driver = _driver(name, root, "write", options)  # a new instance for the stopped "container" of the write case

    async def run() -> tuple[float, float, int]:
        started = time.perf_counter()
        got = 0
        async for batch in read_batches(driver, ReadConfig()):
            got += len(batch)
        everything = time.perf_counter() - started
        started = time.perf_counter()
        async for _batch in read_batches(driver, ReadConfig(tail=100)):
            pass
        return everything, (time.perf_counter() - started) * 1000, got

    everything, tail_ms, got = asyncio.run(run())
    driver.close()
    if got != count:
        raise RuntimeError(f"{name}: read {got} lines back, wrote {count}")
    return everything, tail_ms


def bench_follow(name: str, root: Path, samples: int = 200, options: dict[str, str] | None = None) -> float:
    """Median milliseconds from ``log`` returning to a follower holding the message."""
    driver = _driver(name, root, "follow", options)

    async def run() -> float:
        received: asyncio.Queue[int] = asyncio.Queue()

        async def follow() -> None:
            async for batch in read_batches(driver, ReadConfig(tail=0, follow=True)):
                for _message in batch:
                    received.put_nowait(time.perf_counter_ns())

        follower = asyncio.ensure_future(follow())
        await asyncio.sleep(0.05)
        delays = []
        for i in range(samples):
            now = time.time_ns()
            sent = time.perf_counter_ns()
            await asyncio.to_thread(driver.log, LogMessage(b"ping %d" % i, "stdout", now / 1e9, now))
            delays.append((await received.get() - sent) / 1e6)
        await asyncio.to_thread(driver.close)
        await follower
        return statistics.median(delays)

    return asyncio.run(run())


def logs_table(drivers: Sequence[str], lines: int = 200_000, size: int = 80, log=sys.stderr) -> str:  # type: ignore[no-untyped-def]
    payload = _payload(lines, size)
    megabytes = sum(len(line) + 1 for line in payload) / MB
    rows = [
        [
            "driver",
            "write lines/s",
            "write MB/s",
            "copier lines/s",
            "copier MB/s",
            "read lines/s",
            "tail 100 ms",
            "follow ms",
        ]
    ]
    for name in drivers:
        print(f"engine-bench: log driver {name} ...", file=log, flush=True)
        with tempfile.TemporaryDirectory(prefix="engine-bench-logs-") as tmp:
            root = Path(tmp)
            write = bench_write(name, root, payload)
            copier = bench_copier(name, root, payload)
            cls = DriverRegistry[LogDriver](LOG).load(name)
            if hasattr(cls, "read_logs"):
                read, tail_ms = bench_read(name, root, lines)
                follow_ms = bench_follow(name, root)
                reading = [f"{lines / read:,.0f}", f"{tail_ms:.1f}", f"{follow_ms:.2f}"]
            else:
                reading = ["-", "-", "-"]
        rows.append(
            [
                name,
                f"{lines / write:,.0f}",
                f"{megabytes / write:.1f}",
                f"{lines / copier:,.0f}",
                f"{megabytes / copier:.1f}",
                *reading,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append(f"({lines:,} lines of {size} bytes; MB = 10^6 bytes; temp dirs in $TMPDIR or /tmp)")
    return "\n".join(out)


class LogDriverBench:
    """One log driver measured alone. ``run()`` returns ``{case: value}``: seconds to write
    ``lines`` lines with ``log_many`` and through the copier, and for drivers that read back, seconds
    to read them all, milliseconds for the last 100 and the median follow latency. Runs once as a
    pytest smoke test: ``class TestMineBench(LogDriverBench): driver_name = "mine"``."""

    driver_name: ClassVar[str] = ""
    driver_options: ClassVar[dict[str, str]] = {}
    lines: ClassVar[int] = 200_000
    size: ClassVar[int] = 80

    def run(self, root: Path, lines: int | None = None, follow_samples: int = 200) -> dict[str, float]:
        count = lines or self.lines
        payload = _payload(count, self.size)
        options = dict(self.driver_options)
        out = {
            "write (s)": bench_write(self.driver_name, root, payload, options),
            "copier (s)": bench_copier(self.driver_name, root, payload, options),
        }
        if hasattr(DriverRegistry[LogDriver](LOG).load(self.driver_name), "read_logs"):
            out["read (s)"], out["tail 100 (ms)"] = bench_read(self.driver_name, root, count, options)
            out["follow (ms)"] = bench_follow(self.driver_name, root, follow_samples, options)
        return out

    def test_bench_cases_run(self, tmp_path: Path) -> None:
        """The cases run (small sizes: this proves they work, it measures nothing)."""
        if not self.driver_name:
            pytest.skip("LogDriverBench: set driver_name in the subclass")
        results = self.run(tmp_path, lines=1000, follow_samples=5)
        assert {"write (s)", "copier (s)"} <= set(results)
        assert all(value >= 0 for value in results.values()), results


def default_drivers() -> list[str]:
    registry = DriverRegistry[LogDriver](LOG)
    names = []
    for name in registry.names():
        try:
            cls = registry.load(name)
        except Exception:
            continue
        if hasattr(cls, "read_logs") or name == "none":
            names.append(name)
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--driver", action="append", help="log driver (repeatable; default: readers and none)")
    parser.add_argument("--lines", type=int, default=200_000, help="lines per case (default 200000)")
    parser.add_argument("--size", type=int, default=80, help="bytes per line (default 80)")


def run(args: argparse.Namespace) -> int:
    print(logs_table(args.driver or default_drivers(), max(1000, args.lines), max(8, args.size)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engine-bench logs", description="log driver benchmarks")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
