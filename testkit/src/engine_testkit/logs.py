"""The log reader conformance suite (moby's ``loggertest.Reader`` cases).

A reader-capable log driver proves itself with a subclass, as the storage and network suites::

    class TestJsonFileReader(LogReaderSuite):
        driver_name = "json-file"
        rotation_options = {"max-size": "2k", "max-file": "3"}

``driver_name`` is the entry-point name (loading it by name also proves the packaging),
``driver_options`` the ``--log-opt`` values every driver instance gets, ``rotation_options`` options
that make the driver rotate quickly (omit them and the rotation cases skip, saying so),
``time_precision_ns`` what the driver keeps of a timestamp (1: nanoseconds; journald keeps
microseconds). ``cache = True`` runs the suite against the daemon's dual-logging cache in front of
the driver (for a driver that cannot read back; ``driver_name = "none"`` tests the cache alone)::

    class TestCacheReader(LogReaderSuite):
        driver_name = "none"
        cache = True
        rotation_options = {"cache-max-size": "10k"}

Override :meth:`make_driver` for drivers that need more than a ``LogInfo``.

Each driver instance made for a test is a "container": a later instance for the same container
must read what an earlier one wrote (a stopped container's logs). What is compared is what
``docker logs`` shows: the stream, the bytes (the line and its newline, none after a piece of
a long line that is not the last), and the time to the millisecond.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from engine.drivers.log import LogDriver, LogInfo, LogMessage, PartialMeta, ReadConfig
from engine.registry import LOG, DriverRegistry

MINUTE = 60 * 1_000_000_000
MS = 1_000_000
TIMEOUT = 20.0


def run(coro: Coroutine[Any, Any, Any], timeout: float = TIMEOUT) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def message(source: str, line: bytes, ns: int, partial: PartialMeta | None = None) -> LogMessage:
    return LogMessage(line, source, ns / 1e9, ns, partial)


def sample_messages() -> list[LogMessage]:
    """moby's makeTestMessages: partial pieces, a long line, and a clock that went backwards."""
    now = time.time_ns()
    return [
        message("stdout", b"a message", now - 30 * MINUTE),
        message("stdout", b"another message", now - 20 * MINUTE, PartialMeta("aaaaaaaa", 1, True)),
        message("stderr", b"to be...", now - 15 * MINUTE, PartialMeta("bbbbbbbb", 1, False)),
        message("stderr", b"continued", now - 15 * MINUTE, PartialMeta("bbbbbbbb", 2, True)),
        message("stderr", b"a really long message " + b"a" * 4096, now - 10 * MINUTE),
        message("stderr", b"just one more message", now - 10 * MINUTE),
        message("stdout", b"someone adjusted the clock", now - 90 * MINUTE),
    ]


def shown(messages: list[LogMessage]) -> list[tuple[str, bytes, int]]:
    """What ``docker logs`` shows of messages: stream, bytes, time in milliseconds."""
    return [(m.source, m.with_newline(), m.time_ns // MS) for m in messages]


async def read_all(driver: LogDriver, config: ReadConfig) -> list[LogMessage]:
    return [m async for m in driver.read_logs(config)]  # type: ignore[attr-defined]


def make_log_info(log_dir: Path, options: dict[str, str] | None = None, container_id: str = "") -> LogInfo:
    """A ``LogInfo`` for a made-up container logging into ``log_dir``."""
    container_id = container_id or "c0" * 32
    return LogInfo(
        container_id=container_id,
        container_name=f"/{container_id[:8]}",
        image_id="sha256:" + "0" * 64,
        image_name="busybox",
        created="2026-01-01T00:00:00Z",
        env=("A=1",),
        labels={"l": "v"},
        config=dict(options or {}),
        log_dir=log_dir,
    )


class LogReaderSuite:
    """Subclass with ``driver_name`` set (and optionally ``driver_options``, ``rotation_options``)."""

    driver_name: ClassVar[str] = ""
    #: ``--log-opt`` values every driver instance gets
    driver_options: ClassVar[dict[str, str]] = {}
    #: options that make the driver rotate within a few kilobytes (None: the rotation cases skip)
    rotation_options: ClassVar[dict[str, str] | None] = None
    #: run against the dual-logging cache in front of the driver
    cache: ClassVar[bool] = False
    #: what the driver keeps of a timestamp, in nanoseconds
    time_precision_ns: ClassVar[int] = 1

    # -- driver construction -----------------------------------------------------------------------

    def driver_class(self) -> type[LogDriver]:
        if not self.driver_name:
            pytest.skip("LogReaderSuite: set driver_name in the subclass")
        cls = DriverRegistry[LogDriver](LOG).load(self.driver_name)
        if not hasattr(cls, "read_logs") and not self.cache:
            pytest.skip(f"log driver {self.driver_name} cannot read logs back")
        return cls

    def make_info(self, log_dir: Path, container_id: str, options: dict[str, str]) -> LogInfo:
        return make_log_info(log_dir, options, container_id)

    def make_driver(self, info: LogInfo) -> LogDriver:
        """One driver instance for ``info`` (override for drivers that need more)."""
        cls = self.driver_class()
        cls.validate_options(info.config)
        if self.cache:
            from engine.logs.cache import CachedLogDriver

            return CachedLogDriver(cls(info), info)
        return cls(info)

    @pytest.fixture
    def factory(self, tmp_path: Path) -> Iterator[Callable[..., LogDriver]]:
        """``factory(name, rotate=False)``: a new driver instance for container ``name``."""
        made: list[LogDriver] = []

        def make(name: str = "c", rotate: bool = False) -> LogDriver:
            options = dict(self.driver_options)
            if rotate:
                if self.rotation_options is None:
                    pytest.skip(f"no rotation_options given for log driver {self.driver_name}")
                options.update(self.rotation_options)
            container_id = (name.encode().hex() + "0" * 64)[:64]
            log_dir = tmp_path / container_id
            log_dir.mkdir(exist_ok=True)
            driver = self.make_driver(self.make_info(log_dir, container_id, options))
            made.append(driver)
            return driver

        yield make
        for driver in made:
            driver.close()

    @staticmethod
    def log_all(driver: LogDriver, messages: list[LogMessage]) -> list[LogMessage]:
        for m in messages:
            driver.log(LogMessage(m.line, m.source, m.timestamp, m.timestamp_ns, m.partial))
        return messages

    # -- tail, since, until --------------------------------------------------------------------------

    @pytest.mark.parametrize("live", [True, False], ids=["live", "stopped"])
    def test_tail(self, factory: Callable[..., LogDriver], live: bool) -> None:
        driver = factory("tail")
        mm = self.log_all(driver, sample_messages())
        if not live:
            driver.close()
            driver = factory("tail")
        cases = {
            "exact": (ReadConfig(tail=len(mm)), mm),
            "less": (ReadConfig(tail=2), mm[-2:]),
            "more": (ReadConfig(tail=100), mm),
            "all": (ReadConfig(tail=-1), mm),
            "since": (ReadConfig(since_ns=mm[1].time_ns // MS * MS), mm[1:]),
            "more-than-since": (ReadConfig(tail=len(mm), since_ns=mm[1].time_ns // MS * MS), mm[1:]),
            "less-than-since": (ReadConfig(tail=len(mm) - 2, since_ns=mm[1].time_ns // MS * MS), mm[2:]),
            "until": (ReadConfig(until_ns=mm[2].time_ns - MS), mm[:2]),
            "since-and-until": (ReadConfig(since_ns=mm[1].time_ns // MS * MS, until_ns=mm[1].time_ns + MS), mm[1:2]),
        }

        async def check() -> None:
            for name, (config, expected) in cases.items():
                got = await read_all(driver, config)
                assert shown(got) == shown(expected), name

        run(check())

    @pytest.mark.parametrize("live", [True, False], ids=["live", "stopped"])
    def test_tail_empty(self, factory: Callable[..., LogDriver], live: bool) -> None:
        driver = factory("empty")
        if not live:
            driver.close()
            driver = factory("empty")
        configs = [
            ReadConfig(tail=0),
            ReadConfig(tail=-1),
            ReadConfig(tail=42),
            ReadConfig(since_ns=1_000_000_000),
            ReadConfig(until_ns=4_102_444_800 * 1_000_000_000),
        ]

        async def check() -> None:
            for config in configs:
                assert await read_all(driver, config) == [], config

        run(check())

    # -- follow --------------------------------------------------------------------------------------

    async def _follow(
        self,
        driver: LogDriver,
        config: ReadConfig,
        write: Callable[[], Any],
        close: bool = True,
        first: list[LogMessage] | None = None,
    ) -> list[LogMessage]:
        """Start following, write (in a thread, as the copier does), close the driver, collect.

        ``first``: logged before ``write``, and ``write`` starts only once the follower has them, so
        the follower is known to be reading before a rotation can move files away under it."""
        got: list[LogMessage] = []
        reader = asyncio.ensure_future(_collect(driver.read_logs(config), got))  # type: ignore[attr-defined]
        if first:
            await asyncio.to_thread(driver.log_many, first)
            while len(got) < len(first) and not reader.done():
                await asyncio.sleep(0.01)
        await asyncio.to_thread(write)
        if close:
            await asyncio.to_thread(driver.close)
        return await reader

    @pytest.mark.parametrize("tail", [-1, 0, 1, 42])
    def test_follow_from_empty(self, factory: Callable[..., LogDriver], tail: int) -> None:
        driver = factory(f"followstart{tail}")
        mm = sample_messages()
        got = run(self._follow(driver, ReadConfig(tail=tail, follow=True), lambda: self.log_all(driver, mm)))
        assert shown(got) == shown(mm)

    def test_follow_attach_mid_stream(self, factory: Callable[..., LogDriver]) -> None:
        driver = factory("followmiddle")
        mm = sample_messages()
        self.log_all(driver, mm[:1])
        got = run(self._follow(driver, ReadConfig(tail=-1, follow=True), lambda: self.log_all(driver, mm[1:])))
        assert shown(got) == shown(mm)

    def test_follow_since(self, factory: Callable[..., LogDriver]) -> None:
        driver = factory("followsince")
        mm = sample_messages()
        config = ReadConfig(tail=-1, follow=True, since_ns=mm[2].time_ns // MS * MS)
        got = run(self._follow(driver, config, lambda: self.log_all(driver, mm)))
        assert shown(got) == shown(mm[2:])

    def test_follow_until_ends_before_close(self, factory: Callable[..., LogDriver]) -> None:
        driver = factory("followuntil")
        mm = sample_messages()
        config = ReadConfig(tail=-1, follow=True, until_ns=mm[2].time_ns - MS)
        got = run(self._follow(driver, config, lambda: self.log_all(driver, mm), close=False))
        assert shown(got) == shown(mm[:2])

    def test_follow_since_and_until(self, factory: Callable[..., LogDriver]) -> None:
        driver = factory("followbounded")
        mm = sample_messages()
        config = ReadConfig(tail=-1, follow=True, since_ns=mm[1].time_ns - MS, until_ns=mm[2].time_ns - MS)
        got = run(self._follow(driver, config, lambda: self.log_all(driver, mm), close=False))
        assert shown(got) == shown(mm[1:2])

    @pytest.mark.parametrize("tail", [0, 1])
    def test_follow_tail(self, factory: Callable[..., LogDriver], tail: int) -> None:
        driver = factory(f"followtail{tail}")
        mm = sample_messages()
        self.log_all(driver, mm[:2])
        got = run(self._follow(driver, ReadConfig(tail=tail, follow=True), lambda: self.log_all(driver, mm[2:])))
        assert shown(got) == shown(mm[2 - tail :])

    def test_follow_multiple_starts(self, factory: Callable[..., LogDriver]) -> None:
        """A restarted container: a new driver instance appends and follows from the start."""
        driver = factory("restart")
        mm = sample_messages()
        self.log_all(driver, mm[:3])
        driver.close()
        driver = factory("restart")
        got = run(self._follow(driver, ReadConfig(tail=-1, follow=True), lambda: self.log_all(driver, mm[3:])))
        assert shown(got) == shown(mm)

    def test_closed_driver_ends_follow(self, factory: Callable[..., LogDriver]) -> None:
        """A follower waiting for output ends promptly when the container stops."""
        driver = factory("closed")
        self.log_all(driver, sample_messages()[:1])

        async def scenario() -> float:
            reader = asyncio.ensure_future(_collect(driver.read_logs(ReadConfig(tail=-1, follow=True))))  # type: ignore[attr-defined]
            await asyncio.sleep(0.2)
            assert not reader.done(), "follow ended before the driver closed"
            started = time.monotonic()
            await asyncio.to_thread(driver.close)
            assert len(await reader) == 1
            return time.monotonic() - started

        assert run(scenario()) < 2.0

    def test_concurrent(self, factory: Callable[..., LogDriver]) -> None:
        """Two writer threads (stdout, stderr) and two followers: each follower sees each stream
        complete and in order."""
        driver = factory("concurrent")
        now = time.time_ns()
        streams = {
            source: [message(source, b"%s %d" % (source.encode(), i), now + i * 1000) for i in range(500)]
            for source in ("stdout", "stderr")
        }

        async def scenario() -> list[list[LogMessage]]:
            readers = [
                asyncio.ensure_future(_collect(driver.read_logs(ReadConfig(tail=-1, follow=True))))  # type: ignore[attr-defined]
                for _ in range(2)
            ]
            threads = [threading.Thread(target=self.log_all, args=(driver, mm)) for mm in streams.values()]
            for t in threads:
                t.start()
            await asyncio.to_thread(lambda: [t.join() for t in threads])
            await asyncio.to_thread(driver.close)
            return list(await asyncio.gather(*readers))

        for got in run(scenario()):
            for source, mm in streams.items():
                assert shown([m for m in got if m.source == source]) == shown(mm)

    def test_partial_messages(self, factory: Callable[..., LogDriver]) -> None:
        """Pieces of a long line read back as the original bytes; a trailing piece without its
        end (output that stopped mid-line) has no newline."""
        driver = factory("partial")
        now = time.time_ns()
        pieces = [b"x" * 16384, b"y" * 16384, b"z" * 10]
        mm = [
            message("stdout", piece, now, PartialMeta("p" * 64, i + 1, i == len(pieces) - 1))
            for i, piece in enumerate(pieces)
        ]
        mm.append(message("stdout", b"no newline at the end", now + MS, PartialMeta("q" * 64, 1, False)))
        self.log_all(driver, mm)
        got = run(read_all(driver, ReadConfig()))
        assert b"".join(m.with_newline() for m in got) == b"".join(pieces) + b"\n" + b"no newline at the end"

    # -- rotation ------------------------------------------------------------------------------------

    def test_follow_across_rotation(self, factory: Callable[..., LogDriver]) -> None:
        """A follower keeps reading while the file is rotated under it, missing nothing; a later
        read returns the retained part, in order."""
        driver = factory("rotate", rotate=True)
        now = time.time_ns()
        mm = [message("stdout", b"line %05d %s" % (i, b"r" * 40), now + i * 1000) for i in range(2000)]

        def write() -> None:
            for i in range(7, len(mm), 7):  # small paced batches, as a copier under steady load
                driver.log_many(mm[i : i + 7])
                time.sleep(0.0005)

        got = run(self._follow(driver, ReadConfig(tail=-1, follow=True), write, first=mm[:7]))
        assert shown(got) == shown(mm)
        stored = run(read_all(factory("rotate", rotate=True), ReadConfig()))
        assert 0 < len(stored) < len(mm), "the rotation options did not rotate"
        assert shown(stored) == shown(mm[-len(stored) :])

    def test_tail_across_rotated_files(self, factory: Callable[..., LogDriver]) -> None:
        driver = factory("rotatetail", rotate=True)
        now = time.time_ns()
        mm = [message("stderr", b"line %05d %s" % (i, b"t" * 40), now + i * 1000) for i in range(600)]
        driver.log_many(mm)
        driver.close()
        reader = factory("rotatetail", rotate=True)
        stored = run(read_all(reader, ReadConfig()))
        for tail in (1, 10, len(stored) - 1, len(stored), len(stored) + 5):
            got = run(read_all(reader, ReadConfig(tail=tail)))
            assert shown(got) == shown(stored[-tail:]), tail

    # -- several readers at once, long lines through the copier, timestamps ---------------------------

    def test_several_readers_at_once(self, factory: Callable[..., LogDriver]) -> None:
        """Followers that start before, during and after the writing (tail -1 and 0), and plain
        reads taken meanwhile, all at once: each sees a consistent, complete, ordered stream."""
        driver = factory("readers")
        now = time.time_ns()
        mm = [message("stdout", b"line %05d %s" % (i, b"s" * 30), now + i * 1000) for i in range(1500)]

        async def scenario() -> tuple[list[list[LogMessage]], list[LogMessage], list[list[LogMessage]]]:
            early = [
                asyncio.ensure_future(_collect(driver.read_logs(ReadConfig(tail=-1, follow=True)))) for _ in range(3)
            ]  # type: ignore[attr-defined]
            await asyncio.to_thread(driver.log_many, mm[:500])
            late_all = asyncio.ensure_future(_collect(driver.read_logs(ReadConfig(tail=-1, follow=True))))  # type: ignore[attr-defined]
            late_new = asyncio.ensure_future(_collect(driver.read_logs(ReadConfig(tail=0, follow=True))))  # type: ignore[attr-defined]
            snapshots = [asyncio.ensure_future(read_all(driver, ReadConfig(tail=-1))) for _ in range(3)]
            for i in range(500, len(mm), 50):
                await asyncio.to_thread(driver.log_many, mm[i : i + 50])
            await asyncio.to_thread(driver.close)
            followers = list(await asyncio.gather(*early, late_all))
            return followers, await late_new, list(await asyncio.gather(*snapshots))

        followers, new_only, snapshots = run(scenario())
        for got in followers:
            assert shown(got) == shown(mm)
        assert shown(new_only) == shown(mm[500:])
        index = {m.line: i for i, m in enumerate(mm)}
        for got in snapshots:  # what was stored when each read started, in order
            assert len(got) >= 500
            start = index[got[0].line]
            assert shown(got) == shown(mm[start : start + len(got)])

    def test_long_lines_are_split_and_joined(self, factory: Callable[..., LogDriver]) -> None:
        """Container output through the daemon's copier: lines of 16 KiB and more are stored as
        pieces and read back as the bytes the container wrote, newlines where it wrote them."""
        from engine.logs import Copier

        driver = factory("longlines")
        output = b"".join(
            [
                b"short\n",
                b"a" * 40_000 + b"\n",  # three pieces
                b"b" * 16_384 + b"\n",  # exactly one buffer: a full piece and an empty last one
                b"c" * 16_383 + b"\n",  # one below: a plain line
                b"\n",
                b"d" * 20_000,  # no newline at the end of the output
            ]
        )

        async def chunks() -> AsyncIterator[tuple[str, int, bytes]]:
            for i in range(0, len(output), 7000):  # chunk edges fall anywhere in the lines
                yield ("stdout", time.time_ns(), output[i : i + 7000])

        async def scenario() -> list[LogMessage]:
            copier = Copier(chunks(), driver, container_id="c" * 64)
            copier.start()
            await copier.wait()
            return await read_all(driver, ReadConfig())

        got = run(scenario())
        assert b"".join(m.with_newline() for m in got) == output
        assert max(len(m.line) for m in got) <= 16_384
        pieces = [m for m in got if m.partial is not None]
        # the pieces of one line carry its first piece's time (a1 and a2 of the 40000-byte line)
        assert len(pieces) >= 5 and pieces[0].time_ns == pieces[1].time_ns

    def test_timestamps(self, factory: Callable[..., LogDriver]) -> None:
        """Times come back as written, to the driver's precision, with the stream of each line;
        ``since`` and ``until`` compare at that precision too."""
        driver = factory("times")
        base = 1_700_000_000_123_456_789
        mm = [
            message("stdout", b"first", base),
            message("stderr", b"same instant", base),
            message("stdout", b"one ns later", base + 1),
            message("stderr", b"a second later", base + 1_000_000_789),
            message("stdout", b"a year later", base + 365 * 86400 * 1_000_000_000),
        ]
        self.log_all(driver, mm)
        precision = self.time_precision_ns

        def stamps(messages: list[LogMessage]) -> list[tuple[str, bytes, int]]:
            return [(m.source, m.line, m.time_ns // precision * precision) for m in messages]

        got = run(read_all(driver, ReadConfig()))
        assert stamps(got) == stamps(mm)
        since = run(read_all(driver, ReadConfig(since_ns=mm[3].time_ns // precision * precision)))
        assert stamps(since) == stamps(mm[3:])
        until = run(read_all(driver, ReadConfig(until_ns=mm[3].time_ns - precision)))
        assert stamps(until) == stamps(mm[:3])


async def _collect(iterator: Any, into: list[LogMessage] | None = None) -> list[LogMessage]:
    got = into if into is not None else []
    async for message in iterator:
        got.append(message)
    return got
