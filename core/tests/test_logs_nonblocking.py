"""mode=non-blocking and max-buffer-size: a dead log target never holds up a container's logging.

The target is real: a TCP server on loopback that accepts the connection and never reads, so the
driver's ``sendall`` blocks once the socket buffers are full. The driver (``StuckTcpDriver``) is
written here for the test (the shape of a syslog or gelf driver over TCP); it cannot read back, so
dual logging serves ``docker logs`` from the cache.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
from logs_helpers import make_container, make_daemon

from engine import opcounters
from engine.drivers import DRIVER_API_VERSION
from engine.drivers.log import LogDriver, LogInfo, LogMessage, ReadConfig
from engine.logs import open_reader, start_logging
from engine.logs.cache import CachedLogDriver
from engine.logs.ring import RingDriver

pytest.importorskip("engine_plugin_json_file", reason="the default log driver (engine-plugin-json-file) is needed")


@pytest.fixture
def deaf_server() -> Iterator[tuple[str, int]]:
    """A loopback TCP server that accepts connections and never reads from them."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[:2]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


class StuckTcpDriver(LogDriver):
    """Sends each line to ``address`` over TCP (a test driver; blocks when the peer stops reading)."""

    name = "stuck-tcp"
    API_VERSION = DRIVER_API_VERSION
    address: tuple[str, int] = ("127.0.0.1", 0)
    instances: list[StuckTcpDriver] = []

    def __init__(self, info: LogInfo) -> None:
        super().__init__(info)
        self.sock = socket.create_connection(self.address)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        self.sent = 0
        self.instances.append(self)

    def log(self, message: LogMessage) -> None:
        self.log_many([message])

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        for message in messages:
            self.sock.sendall(message.line + b"\n")
            self.sent += 1

    def close(self) -> None:
        # shutdown wakes a sendall blocked in the copier's or the ring's thread
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


LINES = 20_000


async def output() -> AsyncIterator[tuple[str, int, bytes]]:
    """~4 MB of output in 40 KB chunks, as a container writing as fast as it can."""
    base = time.time_ns()
    for start in range(0, LINES, 100):
        data = b"".join(b"line %06d %s\n" % (i, b"x" * 180) for i in range(start, start + 100))
        yield ("stdout", base + start, data)
        await asyncio.sleep(0)


def test_non_blocking_mode_with_a_dead_target(tmp_path, deaf_server) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(tmp_path)
    StuckTcpDriver.address = deaf_server
    daemon.log_drivers._loaded["stuck-tcp"] = StuckTcpDriver  # stands in for an installed entry point
    options = {"mode": "non-blocking", "max-buffer-size": "64k"}
    container = make_container(daemon, "deaf", {"Type": "stuck-tcp", "Config": options})

    dropped_before = opcounters.LOG_DROPPED.values().get("stuck-tcp", 0)
    bytes_before = opcounters.LOG_BYTES.values().get("stuck-tcp", 0)

    async def scenario() -> list[LogMessage]:
        logger = start_logging(daemon, container, output())
        assert isinstance(logger.driver, CachedLogDriver) and isinstance(logger.driver.inner, RingDriver)
        # the whole output is copied and the logger closes although the target stopped reading
        # long ago (the timeout only turns a hang into a failure)
        await asyncio.wait_for(logger.close(5.0), 60)
        ring = logger.driver.inner
        assert ring.dropped > 0 and StuckTcpDriver.instances[-1].sent < LINES
        # the drops are counted for the driver by its own name (metrics-addr serves these counts)
        assert opcounters.LOG_DROPPED.values()["stuck-tcp"] - dropped_before == ring.dropped
        reader = open_reader(daemon, container)
        return [m async for batch in reader.batches(ReadConfig()) for m in batch]

    cached = asyncio.run(scenario())
    # the cache beside the stuck driver got every line
    assert [m.line[:11] for m in cached] == [b"line %06d" % i for i in range(LINES)]
    # bytes delivered to the driver (the ring took them all; it dropped some later), newlines included
    assert opcounters.LOG_BYTES.values()["stuck-tcp"] - bytes_before == sum(len(m.line) + 1 for m in cached)
    # and /metrics serves both, by driver
    from engine.metrics import _log_counters

    served = {f.name: {s.labels["driver"]: s.value for s in f.samples} for f in _log_counters()}
    assert served["engine_log_dropped_messages"]["stuck-tcp"] == opcounters.LOG_DROPPED.values()["stuck-tcp"]
    assert served["engine_log_bytes"]["stuck-tcp"] == opcounters.LOG_BYTES.values()["stuck-tcp"]


def test_ring_drops_the_oldest_and_delivers_in_order() -> None:
    class Slow(LogDriver):
        name = "slow"
        API_VERSION = DRIVER_API_VERSION

        def __init__(self, info: LogInfo) -> None:
            super().__init__(info)
            self.got: list[bytes] = []

        def log(self, message: LogMessage) -> None:
            time.sleep(0.01)
            self.got.append(message.line)

    from engine_testkit.logs import make_log_info

    inner = Slow(make_log_info(__import__("pathlib").Path("/nonexistent")))
    ring = RingDriver(inner, max_bytes=50)
    assert not hasattr(ring, "read_logs")  # the wrapped driver cannot read back: neither can the ring
    for i in range(200):
        ring.log(LogMessage(b"m%03d" % i, "stdout", 0, i + 1))
    ring.close()
    assert inner.got == sorted(inner.got) and inner.got[-1] == b"m199"
    assert ring.dropped > 0 and len(inner.got) + ring.dropped == 200
