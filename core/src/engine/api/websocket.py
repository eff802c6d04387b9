"""WebSocket attach (``GET /containers/{id}/attach/ws``): the websocket as an attach connection."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from aiohttp.http import WSMsgType


class WebSocketConn:
    """``GET /containers/{id}/attach/ws``: the websocket as an attach connection (raw bytes both ways).
    Output goes through one writer task, so messages keep their order."""

    raw = True

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.response = ws
        self.disconnected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read_loop())
        self._writer = asyncio.ensure_future(self._write_loop())

    async def _read_loop(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    self._incoming.put_nowait(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    self._incoming.put_nowait(msg.data.encode())
        finally:
            self._incoming.put_nowait(None)
            if not self.disconnected.done():
                self.disconnected.set_result(None)

    async def _write_loop(self) -> None:
        while True:
            data = await self._outgoing.get()
            if data is None:
                break
            try:
                await self.ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                break
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def read(self) -> bytes:
        data = await self._incoming.get()
        return data or b""

    def write(self, data: bytes) -> None:
        if not self.ws.closed:
            self._outgoing.put_nowait(bytes(data))

    async def drain(self) -> None:
        while self._outgoing.qsize() > 64 and not self._writer.done():
            await asyncio.sleep(0.01)

    @property
    def is_closed(self) -> bool:
        return self.ws.closed

    def close(self) -> None:
        self._outgoing.put_nowait(None)

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer
        self._reader.cancel()
