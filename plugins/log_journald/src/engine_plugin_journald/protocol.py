"""The native journal protocol (what ``sd_journal_send`` speaks), in pure Python.

An entry is one datagram to ``/run/systemd/journal/socket``: ``KEY=VALUE\\n`` per field, or, for
a value holding a newline (or any binary data), ``KEY\\n`` + the length as a little-endian u64 +
the bytes + ``\\n``. When the datagram is too big for the socket (EMSGSIZE/ENOBUFS), the entry
goes into a sealed memfd whose descriptor is passed with SCM_RIGHTS in an empty datagram, as
libsystemd does.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Iterable

SOCKET_PATH = "/run/systemd/journal/socket"
SNDBUF_SIZE = 8 * 1024 * 1024  # libsystemd asks for this much send buffer
SO_SNDBUFFORCE = 32  # <asm-generic/socket.h>; not in Python's socket module
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


def encode_field(key: str, value: bytes) -> bytes:
    if b"\n" in value:
        return key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
    return key.encode() + b"=" + value + b"\n"


def encode_entry(fields: Iterable[tuple[str, bytes]]) -> bytes:
    return b"".join(encode_field(key, value) for key, value in fields)


def valid_field_name(name: str) -> bool:
    """journald keeps only fields of upper-case letters, digits and underscores, not starting
    with an underscore or a digit, at most 64 characters."""
    return (
        0 < len(name) <= 64
        and name[0] != "_"
        and not name[0].isdigit()
        and all("A" <= c <= "Z" or "0" <= c <= "9" or c == "_" for c in name)
    )


def enabled(path: str = SOCKET_PATH) -> bool:
    """go-systemd's ``journal.Enabled()``: a datagram socket connects to the journal's."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


class JournalSocket:
    """An unconnected datagram socket to the journal. Thread-safe: every entry is one datagram."""

    def __init__(self, path: str = SOCKET_PATH) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SNDBUF_SIZE)
        except OSError:  # not privileged: the default (wmem_default) or what SO_SNDBUF allows
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF_SIZE)

    def send(self, data: bytes) -> None:
        """Send one encoded entry.

        :raises OSError: the journal is not there (ENOENT, ECONNREFUSED) or refused the entry.
        """
        try:
            self._sock.sendto(data, self.path)
            return
        except (FileNotFoundError, ConnectionRefusedError):
            raise OSError(f"journald is not enabled on this host ({self.path})") from None
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
        self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> None:
        fd = os.memfd_create("journal-data", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)  # journald takes a sealed memfd as is
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            self._sock.sendmsg([], rights, 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._sock.close()
