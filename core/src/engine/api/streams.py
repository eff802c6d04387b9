"""Streaming responses: JSON message streams, the hijack of attach/exec connections, request bodies.

The hijacked connection itself (and stdcopy framing) lives below the API, in engine.streams; this
module answers the HTTP upgrade and hands the socket over.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from typing import Any

from aiohttp import web

from engine.api.util import dumps
from engine.streams.conn import HijackedConn, client_read_headers


class JSONStream:
    """A streamed ``application/json`` response of one JSON object per line (progress, events)."""

    def __init__(self, request: web.Request, content_type: str = "application/json") -> None:
        self.request = request
        self.response = web.StreamResponse(status=200)
        self.response.content_type = content_type
        self.prepared = False

    async def prepare(self) -> None:
        if not self.prepared:
            self.prepared = True
            await self.response.prepare(self.request)

    async def send(self, message: dict[str, Any]) -> None:
        await self.prepare()
        await self.response.write(dumps(message).encode())

    async def error(self, message: str) -> None:
        """A stream that already started can only report errors in-band (Docker's errorDetail)."""
        await self.send({"errorDetail": {"message": message}, "error": message})

    async def finish(self) -> web.StreamResponse:
        await self.prepare()
        await self.response.write_eof()
        return self.response


class Hijacked(HijackedConn):
    """A hijacked attach or exec connection with the request it came in on and the 101 answer the
    route returns to aiohttp."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self.request = request
        self.response = response
        super().__init__(
            request.transport,  # type: ignore[arg-type]
            # bytes the client sent right behind the request headers, before our protocol took over
            pending=bytes(getattr(request.protocol, "_message_tail", b"")),
            # tell aiohttp's handler loop that this connection is done: no keep-alive after hijack
            on_close=request.protocol.force_close,
        )
        # aiohttp's handler never sees the end of a connection it no longer owns: without this it
        # stayed in the server's connection table, pinned by its keep-alive timer (3630 s), with its
        # request, parser and buffers; 117 of them after one benchmark run
        handler = request.protocol
        request.task.add_done_callback(lambda _task: handler.connection_lost(None))


async def hijack(request: web.Request) -> Hijacked:
    """Answer the upgrade (``101 UPGRADED``, or ``200 OK`` without an Upgrade header) and take the socket."""
    upgrade = "upgrade" in request.headers.get("Connection", "").lower() or "Upgrade" in request.headers
    if upgrade:
        response = web.StreamResponse(status=101, reason="UPGRADED")
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    else:
        response = web.StreamResponse(status=200)
    response.headers["Content-Type"] = "application/vnd.docker.raw-stream"
    # no Content-Length and no chunking: the body is the raw stream
    response.force_close()
    response._length_check = False  # type: ignore[attr-defined]
    await response.prepare(request)
    # our protocol first: aiohttp's would close the connection at a client's early half-close
    conn = Hijacked(request, response)
    await client_read_headers(conn)
    return conn


class RequestBody(io.RawIOBase):
    """The request body as a blocking file for worker threads (tar uploads: load, import, cp, build).
    A read gives up once the loop has stopped (daemon shutdown), so a worker never holds up the
    executor's shutdown waiting for the loop."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._content = request.content
        self._loop = loop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        future = asyncio.run_coroutine_threadsafe(self._content.read(len(view)), self._loop)
        while True:
            try:
                data = future.result(timeout=1.0)
                break
            except concurrent.futures.TimeoutError:
                if not self._loop.is_running():
                    future.cancel()
                    raise ConnectionAbortedError("the daemon is shutting down") from None
        view[: len(data)] = data
        return len(data)


def body_reader(request: web.Request) -> io.BufferedReader:
    """On the loop: a buffered blocking reader of ``request``'s body, to hand to a worker thread."""
    return io.BufferedReader(RequestBody(request, asyncio.get_running_loop()), buffer_size=1 << 20)
