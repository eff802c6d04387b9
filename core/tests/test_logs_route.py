"""``GET /containers/{id}/logs`` over HTTP, against logs written by the real json-file driver."""

from __future__ import annotations

import asyncio
import struct
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from logs_helpers import ContainersStandIn, make_container, make_daemon

from engine.api import middlewares
from engine.api.keys import DAEMON, OPEN_STREAMS
from engine.api.router import Router, make_application
from engine.api.routes import logs as logs_route
from engine.logs import start_logging

pytest.importorskip("engine_plugin_json_file", reason="the default log driver (engine-plugin-json-file) is needed")

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z


def demux(body: bytes) -> list[tuple[int, bytes]]:
    frames, pos = [], 0
    while pos < len(body):
        stream, size = struct.unpack(">BxxxL", body[pos : pos + 8])
        frames.append((stream, body[pos + 8 : pos + 8 + size]))
        pos += 8 + size
    return frames


async def source(
    items: list[tuple[str, int, bytes]], gate: asyncio.Event | None = None, gate_at: int = -1
) -> AsyncIterator[Any]:
    """The items, holding back from ``gate_at`` (default: the last one) until ``gate`` is set."""
    for i, item in enumerate(items):
        if gate is not None and i == gate_at % len(items):
            await gate.wait()
        yield item


ITEMS = [
    ("stdout", T0, b"out one\n"),
    ("stderr", T0 + 1_000_000_000, b"err one\n"),
    ("stdout", T0 + 2_000_000_000, b"out two\n"),
    ("stdout", T0 + 3_000_000_000, b"half"),
]


def serve(tmp_path: Path, scenario: Callable[[TestClient, Any, Any], Awaitable[None]], **container_kw: Any) -> None:
    """Run ``scenario(client, daemon, container)`` with a container whose logs hold ITEMS."""

    async def main() -> None:
        daemon = make_daemon(tmp_path)
        container = make_container(daemon, "app", **container_kw)
        daemon.containers = ContainersStandIn(container, logging=daemon)  # type: ignore[assignment]
        logger = start_logging(daemon, container, source(ITEMS))
        await logger.close()
        app = make_application(middlewares=[middlewares.errors])
        app[DAEMON] = daemon
        app[OPEN_STREAMS] = weakref.WeakSet()
        logs_route.setup(Router(app))
        async with TestClient(TestServer(app)) as client:
            await scenario(client, daemon, container)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_framed_output_and_filters(tmp_path: Path) -> None:
    async def scenario(client: TestClient, daemon: Any, container: Any) -> None:
        resp = await client.get("/v1.41/containers/app/logs?stdout=1&stderr=1")
        assert resp.status == 200
        assert demux(await resp.read()) == [(1, b"out one\n"), (2, b"err one\n"), (1, b"out two\n"), (1, b"half")]
        resp = await client.get(f"/containers/{container.id[:12]}/logs?stderr=1")
        assert demux(await resp.read()) == [(2, b"err one\n")]
        resp = await client.get("/containers/app/logs?stdout=1&stderr=1&tail=2")
        assert demux(await resp.read()) == [(1, b"out two\n"), (1, b"half")]
        resp = await client.get("/containers/app/logs?stdout=1&stderr=1&tail=all")
        assert len(demux(await resp.read())) == 4
        resp = await client.get("/containers/app/logs?stdout=1&stderr=1&tail=0")
        assert await resp.read() == b""
        resp = await client.get(
            f"/containers/app/logs?stdout=1&stderr=1&since={T0 // 10**9 + 1}&until={T0 // 10**9 + 2}"
        )
        assert demux(await resp.read()) == [(2, b"err one\n"), (1, b"out two\n")]
        resp = await client.get(f"/containers/app/logs?stdout=1&since={T0 // 10**9}.5")
        assert demux(await resp.read()) == [(1, b"out two\n"), (1, b"half")]

    serve(tmp_path, scenario)


def test_timestamps_and_details(tmp_path: Path) -> None:
    async def scenario(client: TestClient, daemon: Any, container: Any) -> None:
        resp = await client.get("/containers/app/logs?stdout=1&timestamps=1&details=1&tail=1")
        assert demux(await resp.read()) == [(1, b"2023-11-14T22:13:23.000000000Z team=x%2Fy+z half")]
        resp = await client.get("/containers/app/logs?stdout=1&timestamps=1&until=1700000000")
        assert demux(await resp.read()) == [(1, b"2023-11-14T22:13:20.000000000Z out one\n")]

    serve(tmp_path, scenario, log_config={"Config": {"labels": "team"}}, labels={"team": "x/y z"})


def test_tty_output_is_raw(tmp_path: Path) -> None:
    async def scenario(client: TestClient, daemon: Any, container: Any) -> None:
        resp = await client.get("/containers/app/logs?stdout=1&stderr=1")
        assert await resp.read() == b"out one\nerr one\nout two\nhalf"

    serve(tmp_path, scenario, tty=True)


def test_errors(tmp_path: Path) -> None:
    async def scenario(client: TestClient, daemon: Any, container: Any) -> None:
        resp = await client.get("/containers/app/logs")
        assert resp.status == 400
        assert await resp.json() == {"message": "Bad parameters: you must choose at least one stream"}
        resp = await client.get("/containers/nope/logs?stdout=1")
        assert resp.status == 404
        assert await resp.json() == {"message": "No such container: nope"}
        resp = await client.get("/containers/app/logs?stdout=1&since=yesterday")
        assert resp.status == 400
        container.host_config["LogConfig"] = {"Type": "none", "Config": {}}
        resp = await client.get("/containers/app/logs?stdout=1")
        assert resp.status == 501
        assert await resp.json() == {"message": "configured logging driver does not support reading"}

    serve(tmp_path, scenario)


def test_follow_streams_new_output_and_ends_when_the_container_stops(tmp_path: Path) -> None:
    async def scenario(client: TestClient, daemon: Any, container: Any) -> None:
        gate = asyncio.Event()
        logger = start_logging(
            daemon, container, source([("stdout", T0 + 5, b"live\n"), ("stderr", T0 + 6, b"last\n")], gate)
        )
        container.log_driver = logger.driver
        resp = await client.get("/containers/app/logs?stdout=1&stderr=1&follow=1&tail=1")
        assert resp.status == 200
        first = await asyncio.wait_for(resp.content.read(8 + len("live\n")), 5)
        assert demux(first) == [(1, b"live\n")]
        gate.set()  # the last output, then the container exits
        await logger.close()
        rest = await asyncio.wait_for(resp.read(), 5)
        assert demux(rest) == [(2, b"last\n")]

    serve(tmp_path, scenario)


def test_follow_on_a_stopped_container_returns_at_once(tmp_path: Path) -> None:
    async def scenario(client: TestClient, daemon: Any, container: Any) -> None:
        resp = await asyncio.wait_for(client.get("/containers/app/logs?stdout=1&follow=1"), 5)
        assert len(demux(await asyncio.wait_for(resp.read(), 5))) == 3

    serve(tmp_path, scenario)


def test_client_going_away_stops_following(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_route, "DISCONNECT_POLL", 0.05)

    async def scenario(client: TestClient, daemon: Any, container: Any) -> None:
        gate = asyncio.Event()
        items = [("stdout", T0 + 5, b"live\n"), ("stdout", T0 + 6, b"x\n")]
        logger = start_logging(daemon, container, source(items, gate, gate_at=0))
        container.log_driver = logger.driver
        waiters = logger.driver._file._waiters
        resp = await client.get("/containers/app/logs?stdout=1&follow=1&tail=0")
        for _ in range(100):
            if waiters:
                break
            await asyncio.sleep(0.02)
        gate.set()
        assert demux(await asyncio.wait_for(resp.content.read(8 + 5), 5)) == [(1, b"live\n")]
        resp.close()
        for _ in range(100):
            if not waiters:
                break
            await asyncio.sleep(0.02)
        assert not waiters, "the follower outlived its client"
        await logger.close()

    serve(tmp_path, scenario)
