"""The log copier: line splitting with moby's partial rules, batching, modes, the hook tee, acks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest

from engine.drivers.log import LogDriver, LogMessage
from engine.logs.copier import MAX_LINE, Copier


class RecordingDriver(LogDriver):
    """Keeps what it is given (a test double standing in for a real driver's storage)."""

    name = "recording"
    API_VERSION = 1

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.messages: list[LogMessage] = []
        self.batches: list[int] = []
        self.delay = delay
        self.fail = fail

    def log(self, message: LogMessage) -> None:
        self.log_many([message])

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.batches.append(len(messages))
        if self.fail:
            raise OSError("disk full")
        self.messages.extend(messages)


async def chunks(*items: tuple[str, int, bytes], pause: float = 0.0) -> AsyncIterator[tuple[str, int, bytes]]:
    for item in items:
        if pause:
            await asyncio.sleep(pause)
        yield item


def copy(items: list[tuple[str, int, bytes]], driver: LogDriver | None = None, **kwargs: object) -> RecordingDriver:
    driver = driver or RecordingDriver()

    async def main() -> None:
        kwargs.setdefault("container_id", "c" * 64)
        copier = Copier(chunks(*items), driver, **kwargs)  # type: ignore[arg-type]
        copier.start()
        await asyncio.wait_for(copier.wait(), 20)

    asyncio.run(main())
    return driver  # type: ignore[return-value]


def test_lines_split_across_chunks_keep_stream_and_time() -> None:
    driver = copy(
        [("stdout", 10, b"hel"), ("stderr", 11, b"err1\nerr"), ("stdout", 12, b"lo\nworld\n"), ("stderr", 13, b"2\n")]
    )
    got = [(m.source, m.line, m.time_ns, m.partial) for m in driver.messages]
    assert got == [
        ("stderr", b"err1", 11, None),
        ("stdout", b"hello", 12, None),
        ("stdout", b"world", 12, None),
        ("stderr", b"err2", 13, None),
    ]


def test_empty_lines_are_messages() -> None:
    driver = copy([("stdout", 1, b"\n\na\n")])
    assert [m.line for m in driver.messages] == [b"", b"", b"a"]


def test_long_line_becomes_partials_with_first_piece_time() -> None:
    line = b"x" * (2 * MAX_LINE + 100)
    driver = copy([("stdout", 5, line[:20000]), ("stdout", 9, line[20000:] + b"\nnext\n")])
    pieces = driver.messages[:3]
    assert [len(m.line) for m in pieces] == [MAX_LINE, MAX_LINE, 100]
    assert [(m.partial.ordinal, m.partial.last) for m in pieces] == [(1, False), (2, False), (3, True)]
    assert len({m.partial.id for m in pieces}) == 1 and len(pieces[0].partial.id) == 64
    assert {m.time_ns for m in pieces} == {5}
    assert b"".join(m.with_newline() for m in pieces) == line + b"\n"
    assert driver.messages[3].line == b"next" and driver.messages[3].partial is None


def test_line_of_exactly_16k_ends_with_an_empty_last_piece() -> None:
    driver = copy([("stdout", 1, b"y" * MAX_LINE + b"\n")])
    assert [(len(m.line), m.partial.last) for m in driver.messages] == [(MAX_LINE, False), (0, True)]


def test_fragment_at_end_of_stream_is_a_partial_without_newline() -> None:
    driver = copy([("stdout", 1, b"done\nno newline")])
    last = driver.messages[-1]
    assert last.line == b"no newline" and last.partial is not None and not last.partial.last
    assert last.with_newline() == b"no newline"


def test_messages_reach_the_driver_in_batches() -> None:
    data = b"".join(b"line %d\n" % i for i in range(5000))
    driver = copy([("stdout", 1, data[i : i + 4096]) for i in range(0, len(data), 4096)])
    assert [m.line for m in driver.messages] == [b"line %d" % i for i in range(5000)]
    assert len(driver.batches) < 5000 / 10  # far fewer thread hand-overs than lines


def test_non_blocking_mode_drops_the_oldest_when_the_driver_is_slow() -> None:
    driver = RecordingDriver(delay=0.05)
    items = [("stdout", i, b"m%04d\n" % i) for i in range(2000)]

    async def main() -> Copier:
        copier = Copier(chunks(*items), driver, mode="non-blocking", max_buffer_size=100)
        copier.start()
        await asyncio.wait_for(copier.wait(), 20)
        return copier

    copier = asyncio.run(main())
    lines = [m.line for m in driver.messages]
    assert copier.stats.dropped > 0
    assert len(lines) + copier.stats.dropped == 2000
    assert lines == sorted(lines)  # what survives is in order
    assert lines[-1] == b"m1999"  # the newest survive


def test_blocking_mode_loses_nothing_with_a_slow_driver() -> None:
    driver = RecordingDriver(delay=0.002)
    data = [("stdout", i, b"z" * 200 + b"\n") for i in range(20000)]  # 4 MB: above the high-water mark
    driver = copy(data, driver)
    assert len(driver.messages) == 20000


def test_driver_errors_do_not_stop_the_copier() -> None:
    driver = copy([("stdout", 1, b"a\n"), ("stdout", 2, b"b\n")], RecordingDriver(fail=True))
    assert sum(driver.batches) == 2


@dataclass
class FakeHook:
    """Stands in for pluggy's hook caller (``get_hookimpls`` and the call)."""

    impls: list[object]
    calls: list[dict[str, object]]

    def get_hookimpls(self) -> list[object]:
        return self.impls

    def __call__(self, **kwargs: object) -> None:
        self.calls.append(kwargs)


def test_hook_tee_only_when_implemented() -> None:
    idle = FakeHook([], [])
    copy([("stdout", 1, b"a\n")], hook=idle)
    assert idle.calls == []
    active = FakeHook([object()], [])
    copy([("stderr", 2_000_000_000, b"a\nb")], hook=active, container_id="x" * 64)
    assert [(c["source"], c["line"], c["timestamp"]) for c in active.calls] == [
        ("stderr", b"a\n", 2.0),
        ("stderr", b"b", 2.0),
    ]


def test_real_plugin_manager_hook() -> None:
    import pluggy

    from engine import hookspecs
    from engine.drivers import hookimpl

    pm = pluggy.PluginManager("engine")
    pm.add_hookspecs(hookspecs)
    seen: list[bytes] = []

    class Tee:
        @hookimpl
        def engine_log_message(self, container_id: str, source: str, line: bytes, timestamp: float) -> None:
            seen.append(line)

    copy([("stdout", 1, b"one\n")], hook=pm.hook.engine_log_message)
    assert seen == []
    pm.register(Tee())
    copy([("stdout", 1, b"one\n")], hook=pm.hook.engine_log_message)
    assert seen == [b"one\n"]


@dataclass(frozen=True)
class SpoolChunk:
    """The shape of engine.runtime.Chunk (stream 1|2 and the spool offset after the record)."""

    stream: int
    timestamp_ns: int
    data: bytes
    offset: int


def test_spool_chunks_are_acknowledged_once_written() -> None:
    acked: list[int] = []
    driver = RecordingDriver()

    async def source() -> AsyncIterator[SpoolChunk]:
        yield SpoolChunk(1, 1, b"a\n", 100)
        yield SpoolChunk(2, 2, b"half", 200)  # a fragment: its offset is not safe to ack yet
        yield SpoolChunk(2, 3, b" line\n", 300)

    async def main() -> None:
        copier = Copier(source(), driver, ack=acked.append)
        copier.start()
        await asyncio.wait_for(copier.wait(), 20)

    asyncio.run(main())
    assert [(m.source, m.line) for m in driver.messages] == [("stdout", b"a"), ("stderr", b"half line")]
    assert acked and acked[-1] == 300 and 200 not in acked
    assert acked == sorted(acked)


def test_stop_flushes_what_was_read() -> None:
    driver = RecordingDriver()
    gate = threading.Event()

    async def endless() -> AsyncIterator[tuple[str, int, bytes]]:
        yield ("stdout", 1, b"first\nsecond")
        gate.set()
        await asyncio.sleep(3600)
        yield ("stdout", 2, b"never\n")

    async def main() -> None:
        copier = Copier(endless(), driver)
        copier.start()
        await asyncio.to_thread(gate.wait, 5)
        await asyncio.wait_for(copier.stop(), 5)

    asyncio.run(main())
    assert [m.line for m in driver.messages] == [b"first", b"second"]


@pytest.mark.parametrize("mode", ["bogus"])
def test_unknown_mode_is_refused(mode: str) -> None:
    with pytest.raises(ValueError, match="logging mode not supported"):
        Copier(chunks(), RecordingDriver(), mode=mode)
