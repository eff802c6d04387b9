"""Docker's stdcopy framing: the multiplexed stdout/stderr stream of a container without a TTY."""

from __future__ import annotations

import struct

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
_HEADER = struct.Struct(">BxxxL")


def frame(stream: int, payload: bytes) -> bytes:
    """One stdcopy frame: ``[stream, 0, 0, 0, size (big-endian uint32)]`` then the payload."""
    return _HEADER.pack(stream, len(payload)) + payload
