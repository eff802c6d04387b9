"""Container logging end to end below the API: log config checks, driver + copier, readers, dual logging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from logs_helpers import make_container, make_daemon

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.log import LogDriver, LogMessage, ReadConfig
from engine.errors import InvalidParameter, NotImplementedByEngine
from engine.logs import open_reader, start_logging, validate_log_config
from engine.logs.cache import CACHE_FILE, CachedLogDriver

pytest.importorskip("engine_plugin_json_file", reason="the default log driver (engine-plugin-json-file) is needed")


class DiscardDriver(LogDriver):
    """A driver that cannot read back (as syslog, gelf...): the dual-logging case."""

    name = "discard"
    API_VERSION = DRIVER_API_VERSION
    seen: list[bytes] = []

    def log(self, message: LogMessage) -> None:
        self.seen.append(message.line)

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        self.seen.extend(m.line for m in messages)


def with_discard(daemon):  # type: ignore[no-untyped-def]
    # stands in for an installed entry point; the registry caches loaded classes by name
    daemon.log_drivers._loaded["discard"] = DiscardDriver
    return daemon


async def output(*lines: bytes) -> AsyncIterator[tuple[str, int, bytes]]:
    for i, line in enumerate(lines):
        yield ("stdout" if i % 2 == 0 else "stderr", 1_700_000_000_000_000_000 + i, line)


async def read(source, config: ReadConfig = ReadConfig()) -> list[LogMessage]:  # type: ignore[no-untyped-def]
    return [m for batch in [b async for b in source.batches(config)] for m in batch]


# -- validate_log_config ----------------------------------------------------------------------------


def test_log_config_gets_the_daemon_defaults(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, **{"log-opts": {"max-size": "10m", "cache-disabled": "true"}})
    assert validate_log_config(daemon, None) == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "cache-disabled": "true"},
    }
    assert validate_log_config(daemon, {"Type": "json-file", "Config": {"max-size": "1k"}})["Config"] == {
        "max-size": "1k",
        "cache-disabled": "true",
    }
    # another driver takes only the dual-logging defaults
    assert validate_log_config(daemon, {"Type": "none", "Config": {}}) == {
        "Type": "none",
        "Config": {"cache-disabled": "true"},
    }


def test_log_config_errors_as_dockerd(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path)
    cases = {
        ("json-file", "foo", "bar"): "unknown log opt 'foo' for json-file log driver",
        ("json-file", "mode", "fast"): "logger: logging mode not supported: fast",
        (
            "json-file",
            "max-buffer-size",
            "1m",
        ): "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
        ("json-file", "cache-disabled", "maybe"): "invalid value for option cache-disabled: maybe",
        ("json-file", "max-size", "lots"): "invalid size: 'lots'",
    }
    for (driver, key, value), message in cases.items():
        with pytest.raises(InvalidParameter) as err:
            validate_log_config(daemon, {"Type": driver, "Config": {key: value}})
        assert err.value.message == message
    with pytest.raises(InvalidParameter, match="logger: no log driver named 'gelf' is registered"):
        validate_log_config(daemon, {"Type": "gelf"})
    # dockerd checks nothing for "none"; built-in options pass for any driver
    validate_log_config(daemon, {"Type": "none", "Config": {"whatever": "x"}})
    validate_log_config(daemon, {"Type": "json-file", "Config": {"mode": "non-blocking", "max-buffer-size": "4m"}})


def test_daemon_wide_options_are_checked_with_the_builtins(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, **{"log-opts": {"mode": "non-blocking", "cache-max-file": "3", "max-file": "2"}})
    daemon._check_log_driver()  # what start-up runs: built-in keys are not "unknown log opt"
    bad = make_daemon(tmp_path, **{"log-opts": {"max-file": "0"}})
    with pytest.raises(InvalidParameter, match="max-file cannot be less than 1"):
        bad._check_log_driver()


# -- running containers -----------------------------------------------------------------------------


def test_running_container_logs_follow_until_the_container_stops(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path)
    container = make_container(daemon, "web")

    async def scenario() -> tuple[list[LogMessage], list[LogMessage]]:
        gate = asyncio.Event()

        async def source() -> AsyncIterator[tuple[str, int, bytes]]:
            yield ("stdout", 1_700_000_000_000_000_000, b"one\ntwo\n")
            await gate.wait()
            yield ("stderr", 1_700_000_001_000_000_000, b"three\n")

        logger = start_logging(daemon, container, source())
        container.log_driver = logger.driver
        live = open_reader(daemon, container)
        assert live.live
        follower = asyncio.ensure_future(read(live, ReadConfig(tail=-1, follow=True)))
        await asyncio.sleep(0.1)
        assert not follower.done()
        gate.set()
        await logger.close()  # the output ended: the driver closes, the follower ends
        followed = await asyncio.wait_for(follower, 5)
        container.log_driver = None
        stopped = open_reader(daemon, container)
        assert not stopped.live
        try:
            stored = await read(stopped, ReadConfig(tail=-1, follow=True))  # follow is ignored when stopped
        finally:
            stopped.close()
        return followed, stored

    followed, stored = asyncio.run(asyncio.wait_for(scenario(), 20))
    expected = [("stdout", b"one"), ("stdout", b"two"), ("stderr", b"three")]
    assert [(m.source, m.line) for m in followed] == expected
    assert [(m.source, m.line) for m in stored] == expected
    log_file = container.root / f"{container.id}-json.log"
    assert log_file.read_bytes().startswith(b'{"log":"one\\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}\n')


def test_none_driver_drains_output_and_refuses_reading(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path)
    container = make_container(daemon, "quiet", {"Type": "none"})

    async def scenario() -> None:
        logger = start_logging(daemon, container, output(b"a\n", b"b\n"))
        await logger.close()
        assert logger.copier.stats.messages == 2

    asyncio.run(scenario())
    with pytest.raises(NotImplementedByEngine, match=r"^configured logging driver does not support reading$"):
        open_reader(daemon, container)
    assert list(container.root.iterdir()) == []


def test_dual_logging_cache_serves_docker_logs(tmp_path: Path) -> None:
    daemon = with_discard(make_daemon(tmp_path))
    container = make_container(daemon, "remote", {"Type": "discard"})

    async def scenario() -> tuple[list[LogMessage], list[LogMessage]]:
        logger = start_logging(daemon, container, output(b"x\n", b"y\n"))
        assert isinstance(logger.driver, CachedLogDriver) and logger.driver.name == "discard"
        container.log_driver = logger.driver
        await logger.copier.wait()
        live = await read(open_reader(daemon, container))
        await logger.close()
        container.log_driver = None
        return live, await read(open_reader(daemon, container), ReadConfig(tail=1))

    live, tail = asyncio.run(scenario())
    assert [m.line for m in live] == [b"x", b"y"] and [m.line for m in tail] == [b"y"]
    assert DiscardDriver.seen[-2:] == [b"x", b"y"]
    assert (container.root / CACHE_FILE).exists()


def test_dual_logging_can_be_disabled(tmp_path: Path) -> None:
    daemon = with_discard(make_daemon(tmp_path))
    container = make_container(daemon, "nocache", {"Type": "discard", "Config": {"cache-disabled": "true"}})

    async def scenario() -> None:
        logger = start_logging(daemon, container, output(b"x\n"))
        assert not isinstance(logger.driver, CachedLogDriver)
        container.log_driver = logger.driver
        with pytest.raises(NotImplementedByEngine):
            open_reader(daemon, container)
        await logger.close()

    asyncio.run(scenario())
    assert not (container.root / CACHE_FILE).exists()


@pytest.mark.parametrize("compress", ["true", "false"])
def test_cache_options_rotate_and_compress(tmp_path: Path, compress: str) -> None:
    """cache-max-size, cache-max-file and cache-compress shape the cache's files; every line kept
    is read back in order."""
    daemon = with_discard(make_daemon(tmp_path))
    options = {"cache-max-size": "1k", "cache-max-file": "3", "cache-compress": compress}
    container = make_container(daemon, "rotating", {"Type": "discard", "Config": options})
    lines = [b"line %04d %s\n" % (i, b"x" * 90) for i in range(100)]  # ~10 KiB: several rotations

    async def scenario() -> list[LogMessage]:
        logger = start_logging(daemon, container, output(*lines))
        await logger.close()
        return await read(open_reader(daemon, container))

    kept = asyncio.run(scenario())
    ext = ".gz" if compress == "true" else ""
    names = sorted(p.name for p in container.root.iterdir() if p.name.startswith(CACHE_FILE))
    assert names == [CACHE_FILE, f"{CACHE_FILE}.1{ext}", f"{CACHE_FILE}.2{ext}"]
    got = [m.line for m in kept]
    assert 0 < len(got) < len(lines) and got == [line[:-1] for line in lines[-len(got) :]]


class SlowDriver(DiscardDriver):
    """Takes every batch, slowly (a remote target that keeps up, just not fast)."""

    name = "slow"

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        import time

        time.sleep(0.15)
        self.seen.extend(m.line for m in messages)


def test_close_waits_for_a_backlog_while_the_driver_makes_progress(tmp_path: Path) -> None:
    """Blocking mode loses nothing at exit: a backlog that takes the driver longer than the close
    timeout is written in full, since the driver keeps taking it."""
    daemon = make_daemon(tmp_path)
    daemon.log_drivers._loaded["slow"] = SlowDriver
    container = make_container(daemon, "backlog", {"Type": "slow", "Config": {"cache-disabled": "true"}})
    SlowDriver.seen = []

    async def burst() -> AsyncIterator[tuple[str, int, bytes]]:
        # 200k lines: well past the copier's high-water mark, so most are still unread when the
        # close starts, and a dozen batches of 0.15 s each: about 2 s in all, twice the close timeout,
        # whose 1 s of no progress a loaded machine's thread switches stay well within
        for i in range(200):
            yield ("stdout", 1_700_000_000_000_000_000 + i, b"".join(b"%d\n" % (i * 1000 + j) for j in range(1000)))

    async def scenario() -> None:
        logger = start_logging(daemon, container, burst())
        await logger.close(1.0)

    asyncio.run(scenario())
    assert SlowDriver.seen == [b"%d" % i for i in range(200_000)]


# -- a driver that cannot start ---------------------------------------------------------------------


class UnreachableDriver(DiscardDriver):
    """A driver whose target refuses the connection (as syslog over tcp to a closed port)."""

    name = "unreachable"
    started: list[str] = []
    closed: list[str] = []

    def start(self) -> None:
        self.started.append(self.info.container_id)
        raise OSError("dial tcp 127.0.0.1:9: connect: connection refused")

    def close(self) -> None:
        self.closed.append(self.info.container_id)


@pytest.mark.parametrize("options", [{}, {"mode": "non-blocking"}, {"cache-disabled": "true"}])
def test_a_driver_that_cannot_start_fails_with_dockerds_message(tmp_path: Path, options: dict[str, str]) -> None:
    """start() is reached through the non-blocking ring and the dual-logging cache; what it raises
    becomes dockerd's start error, and the driver is closed."""
    from engine.errors import SystemError
    from engine.logs import open_driver

    daemon = make_daemon(tmp_path)
    daemon.log_drivers._loaded["unreachable"] = UnreachableDriver
    container = make_container(daemon, "web", log_config={"Type": "unreachable", "Config": options})
    with pytest.raises(SystemError) as failed:
        open_driver(daemon, container)
    assert (
        failed.value.message == "failed to initialize logging driver: dial tcp 127.0.0.1:9: connect: connection refused"
    )
    assert failed.value.status == 500
    assert UnreachableDriver.started[-1] == UnreachableDriver.closed[-1] == container.id


def test_open_driver_starts_the_driver(tmp_path: Path) -> None:
    from engine.logs import open_driver

    daemon = with_discard(make_daemon(tmp_path))
    container = make_container(daemon, "web", log_config={"Type": "discard", "Config": {"mode": "non-blocking"}})
    driver = open_driver(daemon, container)
    try:
        assert isinstance(driver, CachedLogDriver)
    finally:
        driver.close()
