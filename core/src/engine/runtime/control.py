"""Client side of a shim's control socket (``shim.sock``).

Frames are ``u8 op, u32 length (LE), payload``: ``I`` stdin bytes, ``C`` close stdin, ``R`` resize
(u16 rows, u16 cols), ``K`` signal (u32), ``S`` state, ``W`` wait. ``K``/``S``/``W`` get one text line
back (``W`` once the process has exited: the exit.json line). A refused connection means the shim is
gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from pathlib import Path

_FRAME = struct.Struct("<BI")
MAX_STDIN_FRAME = 1 << 20


def frame(op: bytes, payload: bytes = b"") -> bytes:
    return _FRAME.pack(op[0], len(payload)) + payload


def connect(path: Path, timeout: float | None = 5.0) -> socket.socket:
    """Connect to a unix socket, also when its path is longer than sun_path (108 bytes):
    then through ``/proc/self/fd/<dir fd>/<name>``. A full listen backlog (EAGAIN: unix sockets do
    not wait for room when the socket has a timeout) is retried until ``timeout``."""
    raw = os.fsencode(path)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            if len(raw) < 108:
                sock.connect(raw)
            else:
                dfd = os.open(path.parent, os.O_PATH | os.O_CLOEXEC)
                try:
                    sock.connect(f"/proc/self/fd/{dfd}/{path.name}")
                finally:
                    os.close(dfd)
            return sock
        except BlockingIOError:
            sock.close()
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{path}: listen backlog full") from None
            time.sleep(0.005)
        except BaseException:
            sock.close()
            raise


def alive(path: Path) -> bool:
    """Whether a shim listens on ``path``."""
    try:
        connect(path, timeout=2.0).close()
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    except OSError:
        return False
    return True


def request(path: Path, op: bytes, payload: bytes = b"", reply: bool = True, timeout: float = 5.0) -> str:
    """One request on a fresh connection; returns the reply line ("" when none is expected)."""
    with connect(path, timeout) as sock:
        sock.sendall(frame(op, payload))
        if not reply:
            return ""
        data = b""
        while not data.endswith(b"\n"):
            got = sock.recv(4096)
            if not got:
                break
            data += got
        return data.decode().strip()


async def open_connection(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = await asyncio.to_thread(connect, path)
    sock.setblocking(False)
    return await asyncio.open_unix_connection(sock=sock)


class StdinWriter:
    """An attached client's stdin: bytes written here reach the container's stdin while connected.

    ``close_stdin()`` is the half-close (the container reads EOF); ``close()`` only detaches."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            part = view[:MAX_STDIN_FRAME]
            self._writer.write(frame(b"I", bytes(part)))
            view = view[len(part) :]
        # backpressure: the shim stops reading while the container does not consume its stdin
        await self._writer.drain()

    async def close_stdin(self) -> None:
        self._writer.write(frame(b"C"))
        await self._writer.drain()

    async def resize(self, height: int, width: int) -> None:
        self._writer.write(frame(b"R", struct.pack("<HH", height, width)))
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def __aenter__(self) -> StdinWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
