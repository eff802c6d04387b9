"""The raw two-way connection of an attach or exec session, and its hijacked-socket form.

A *hijacked* connection (attach, exec start) carries raw bytes both ways once the API answered
``101 UPGRADED``. aiohttp's own protocol closes the transport when the client half-closes
(``CloseWrite`` after stdin EOF), but Docker clients expect output to keep flowing; so the API
swaps in ``HijackedConn``'s asyncio protocol, which keeps the connection open on EOF. This module
knows transports and sockets, not HTTP.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import sys
import termios
from collections.abc import Callable
from typing import Protocol

#: how long a hijacked connection waits for the client to read the 101 answer (see client_read_headers)
HEADERS_READ_TIMEOUT = 1.0
#: a hijacked connection's writer waits (drain) once this much output is buffered for a slow client,
#: until the buffer is down to a quarter of it
WRITE_HIGH_WATER = 1 << 20


class Conn(Protocol):
    """What an attach or exec session needs of its client connection (a hijacked socket or the
    API's WebSocket). ``raw``: output is never stdcopy-framed (WebSocket attach)."""

    raw: bool
    disconnected: asyncio.Future[None]

    async def read(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    @property
    def is_closed(self) -> bool: ...

    def close(self) -> None: ...


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


class HijackedConn:
    """The raw two-way stream of an attach or exec session over a taken-over transport.

    ``read()`` returns client bytes (``b""`` at EOF); ``write()`` sends raw bytes; ``close()``
    ends the session. ``disconnected`` resolves when the client goes away. ``pending``: bytes the
    client sent right behind the request, before this protocol took over; ``on_close``: tells the
    HTTP server that the connection is done (no keep-alive after a hijack).
    """

    raw = False

    def __init__(
        self, transport: asyncio.Transport | None, *, pending: bytes = b"", on_close: Callable[[], None] | None = None
    ) -> None:
        self.transport = transport
        self._on_close = on_close
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._eof = False
        protocol = _HijackedProtocol(self._incoming)
        self._protocol = protocol
        self.disconnected: asyncio.Future[None] = protocol.closed
        if pending:
            self._incoming.put_nowait(bytes(pending))
        if transport is None:  # the client went away before the hijack
            protocol.connection_lost(None)
            return
        transport.set_protocol(protocol)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if transport.is_closing():
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
        if self._on_close is not None:
            self._on_close()


async def client_read_headers(conn: HijackedConn) -> None:
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
