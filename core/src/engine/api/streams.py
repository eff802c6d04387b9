"""Streaming responses: JSON message streams, stdcopy framing, and hijacked connections.

A *hijacked* connection (attach, exec start) answers ``101 UPGRADED`` and then carries raw
bytes both ways. aiohttp's own protocol closes the transport when the client half-closes
(``CloseWrite`` after stdin EOF), but Docker clients expect output to keep flowing; so after
the 101 we swap in our own asyncio protocol that keeps the connection open on EOF.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import io
import socket
import struct
import sys
import termios
from typing import Any

from aiohttp import web

from engine.api.util import dumps

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
_HEADER = struct.Struct(">BxxxL")
#: how long a hijacked connection waits for the client to read the 101 answer (see _client_read_headers)
HEADERS_READ_TIMEOUT = 1.0
#: a hijacked connection's writer waits (drain) once this much output is buffered for a slow client,
#: until the buffer is down to a quarter of it
WRITE_HIGH_WATER = 1 << 20


def frame(stream: int, payload: bytes) -> bytes:
    """One stdcopy frame: ``[stream, 0, 0, 0, size (big-endian uint32)]`` then the payload."""
    return _HEADER.pack(stream, len(payload)) + payload


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


class _HijackedProtocol(asyncio.Protocol):
    def __init__(self, incoming: asyncio.Queue[bytes | None]) -> None:
        self.incoming = incoming
        self.closed = asyncio.get_running_loop().create_future()
        # flow control from the transport: cleared above the write buffer's high-water mark
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self.incoming.put_nowait(None)  # stdin closed; keep the connection for output
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.incoming.put_nowait(None)
        self.writable.set()  # nothing to wait for any more
        if not self.closed.done():
            self.closed.set_result(None)


class Hijacked:
    """The raw two-way stream of an attach or exec session.

    ``read()`` returns client bytes (``b""`` at EOF); ``write()`` sends raw bytes; ``close()``
    ends the session. ``disconnected`` resolves when the client goes away.
    """

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self.request = request
        self.response = response
        self.transport = request.transport
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._eof = False
        protocol = _HijackedProtocol(self._incoming)
        self._protocol = protocol
        self.disconnected: asyncio.Future[None] = protocol.closed
        # bytes the client sent right behind the request headers, before our protocol took over
        tail = getattr(request.protocol, "_message_tail", b"")
        if tail:
            self._incoming.put_nowait(bytes(tail))
        if self.transport is None:  # the client went away before the hijack
            protocol.connection_lost(None)
            return
        self.transport.set_protocol(protocol)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if self.transport.is_closing():
            protocol.connection_lost(None)

    async def read(self) -> bytes:
        if self._eof:
            return b""
        data = await self._incoming.get()
        if data is None:
            self._eof = True
            return b""
        return data

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the client is slow: asyncio transports buffer without bound, so the writer
        waits once WRITE_HIGH_WATER bytes are queued, until the transport has sent most of them."""
        if self.transport is not None and not self.transport.is_closing():
            await self._protocol.writable.wait()

    @property
    def is_closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        # tell aiohttp's handler loop that this connection is done: no keep-alive after hijack
        self.request.protocol.force_close()


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
    await _client_read_headers(conn)
    return conn


async def _client_read_headers(conn: Hijacked) -> None:
    """Hold the body back until the client has read the answer's headers (unix sockets).

    docker-py reads the headers through a buffered file and then the raw socket (docker-py #425):
    body bytes that arrived together with the headers land in that buffer and are lost, e.g. the
    whole replay of ``attach(logs=True)``. On a unix socket SIOCOUTQ counts the bytes the peer has
    not read yet, so waiting for it to reach zero closes that window; bounded, for clients that do
    not read before they write."""
    transport = conn.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return
    unread = bytearray(4)
    deadline = asyncio.get_running_loop().time() + HEADERS_READ_TIMEOUT
    pause = 0.0002
    while not conn.is_closed:  # a client that went away reads nothing more
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, unread)
        except (OSError, ValueError):  # ValueError: the socket was closed meanwhile (fileno -1)
            return
        if int.from_bytes(unread, sys.byteorder) == 0 or asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.01)


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
