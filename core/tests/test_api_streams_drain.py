"""Hijacked connections: drain() holds the writer back while the client does not read (bounded
buffering), lets it go as the client catches up, and returns at once when the client is gone."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from aiohttp import web

from engine.api import streams
from engine.streams.conn import WRITE_HIGH_WATER

CHUNK = b"x" * 65536
CHUNKS = 256  # 16 MiB: far more than the socket buffers and the high-water mark together


async def _serve(tmp_path: Path, handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/attach", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    path = str(tmp_path / "api.sock")
    await web.UnixSite(runner, path).start()
    return runner, path


async def _open(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect(path)
    sock.sendall(
        b"POST /attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
    )
    sock.setblocking(False)
    return sock


def test_drain_waits_for_a_slow_client_and_loses_nothing(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, bytes]:
        written: list[int] = []

        async def handler(request: web.Request) -> web.StreamResponse:
            conn = await streams.hijack(request)
            for i in range(CHUNKS):
                conn.write(bytes([i % 256]) + CHUNK[1:])
                await conn.drain()
                written.append(i)
            conn.close()
            return conn.response

        runner, path = await _serve(tmp_path, handler)
        loop = asyncio.get_running_loop()
        sock = await _open(path)
        try:
            await asyncio.sleep(0.5)  # the client reads nothing for a while
            stalled_at = len(written)
            data = b""
            while True:
                got = await loop.sock_recv(sock, 1 << 20)
                if not got:
                    break
                data += got
            return stalled_at, data
        finally:
            sock.close()
            await runner.cleanup()

    stalled_at, data = asyncio.run(asyncio.wait_for(scenario(), 30))
    # the writer stopped after about the high-water mark plus what the socket buffers hold
    assert stalled_at * len(CHUNK) < WRITE_HIGH_WATER + (8 << 20)
    assert stalled_at < CHUNKS
    body = data[data.index(b"\r\n\r\n") + 4 :]
    assert len(body) == CHUNKS * len(CHUNK)
    assert [body[i * len(CHUNK)] for i in range(CHUNKS)] == [i % 256 for i in range(CHUNKS)]


def test_drain_returns_when_the_client_goes_away(tmp_path: Path) -> None:
    async def scenario() -> str:
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def handler(request: web.Request) -> web.StreamResponse:
            conn = await streams.hijack(request)
            for _ in range(CHUNKS):
                conn.write(CHUNK)
                await conn.drain()
                if conn.is_closed:
                    outcome.set_result("stopped")
                    return conn.response
            outcome.set_result("wrote everything")
            return conn.response

        runner, path = await _serve(tmp_path, handler)
        sock = await _open(path)
        await asyncio.sleep(0.3)
        sock.close()  # never read a byte
        try:
            return await asyncio.wait_for(outcome, 10)
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == "stopped"


def test_output_waits_for_the_header_read_and_survives_an_early_half_close(tmp_path: Path) -> None:
    """A client that reads the answer late and half-closes (no stdin, as the docker CLI does) before it
    reads: the body follows the headers in a separate read (docker-py loses body bytes buffered with
    the headers) and the half-close does not end the session."""

    async def scenario() -> tuple[bytes, bytes]:
        async def handler(request: web.Request) -> web.StreamResponse:
            conn = await streams.hijack(request)
            conn.write(b"output after the headers")
            await conn.drain()
            conn.close()
            return conn.response

        runner, path = await _serve(tmp_path, handler)
        loop = asyncio.get_running_loop()
        sock = await _open(path)
        try:
            await asyncio.sleep(0.3)  # the server has answered; the answer waits unread
            sock.shutdown(socket.SHUT_WR)
            await asyncio.sleep(0.1)
            first = await loop.sock_recv(sock, 1 << 16)
            rest = b""
            while got := await loop.sock_recv(sock, 1 << 16):
                rest += got
            return first, rest
        finally:
            sock.close()
            await runner.cleanup()

    first, rest = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert first.startswith(b"HTTP/1.1 101") and first.endswith(b"\r\n\r\n")
    assert rest == b"output after the headers"


def test_finished_hijacks_release_their_http_connection(tmp_path: Path) -> None:
    """aiohttp keeps every connection it served in its Server until its protocol sees the connection
    lost; a hijack swaps the protocol, so the hijacked side must hand the loss back (else every attach
    or exec start leaks its request handler: the soak's RSS grew by ~6 KiB per exec)."""

    async def main() -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            conn = await streams.hijack(request)
            conn.write(b"bye")
            conn.close()
            return conn.response

        runner, path = await _serve(tmp_path, handler)
        try:
            for client_closes in (False, True) * 10:
                sock = await _open(path)
                loop = asyncio.get_running_loop()
                if client_closes:
                    sock.close()
                else:
                    while await loop.sock_recv(sock, 65536):
                        pass
                    sock.close()
            for _ in range(100):
                if not runner.server.connections:
                    break
                await asyncio.sleep(0.02)
            assert runner.server.connections == []
        finally:
            await runner.cleanup()

    asyncio.run(main())
