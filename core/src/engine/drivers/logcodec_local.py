"""dockerd's ``local`` log file format: the ``local`` driver's files and the dual-logging cache.

Each record is a protobuf ``LogEntry`` (moby's ``api/types/plugins/logdriver/entry.proto``)::

    LogEntry { string source = 1; int64 time_nano = 2; bytes line = 3; bool partial = 4;
               PartialLogEntryMetadata partial_log_metadata = 5; }
    PartialLogEntryMetadata { bool last = 1; string id = 2; int32 ordinal = 3; }

framed by its length as a 4-byte big-endian integer *before and after* it; the trailing length
lets a reader walk the file backwards for ``--tail``. Zero values are omitted (proto3), fields in
number order, as gogo-protobuf writes them; a reader skips fields it does not know (newer dockerd
adds ``repeated LogAttr attrs = 6``).

The protobuf is encoded by hand: it is five scalar fields and one small nested message, and a
varint codec of a dozen lines is faster than building a message object per line and needs no
generated code or ``protobuf`` runtime dependency.

:class:`LocalCodec` plugs into :class:`engine.drivers.logfile.LogFile` (the SDK's rotating log file):
it carries its own :class:`LengthFraming`, which the file uses instead of newline-separated lines.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

from engine.drivers.log import LogMessage, PartialMeta

__all__ = ["FRAME", "LENGTH_FRAMING", "LengthFraming", "LocalCodec", "decode_entry", "encode_entry", "frame"]

FRAME = 4  # bytes of each length field
_SOURCE_FIELDS = {"stdout": b"\x0a\x06stdout", "stderr": b"\x0a\x06stderr"}
MAX_RECORD = 1 << 20  # a record longer than this is garbage (lines are cut at 16 KiB)
_LEN = struct.Struct(">I")


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64/int32: two's complement on 10 bytes, as protobuf does
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _partial_meta(meta: PartialMeta) -> bytes:
    out = b"\x08\x01" if meta.last else b""
    if meta.id:
        ident = meta.id.encode()
        out += b"\x12" + _varint(len(ident)) + ident
    if meta.ordinal:
        out += b"\x18" + _varint(meta.ordinal)
    return out


def encode_entry(message: LogMessage) -> bytes:
    """The protobuf ``LogEntry`` of a message (without framing)."""
    source = message.source.encode()
    parts = [b"\x0a", _varint(len(source)), source] if source else []
    ns = message.timestamp_ns or int(message.timestamp * 1e9)
    if ns:
        parts += (b"\x10", _varint(ns))
    line = message.line
    if line:
        parts += (b"\x1a", _varint(len(line)), line)
    if message.partial is not None:
        meta = _partial_meta(message.partial)
        parts += (b"\x20\x01\x2a", _varint(len(meta)), meta)
    return b"".join(parts)


def _skip(data: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        return _read_varint(data, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        size, pos = _read_varint(data, pos)
        return pos + size
    if wire == 5:
        return pos + 4
    raise ValueError(f"unsupported protobuf wire type {wire}")


def _decode_meta(data: bytes) -> PartialMeta:
    last, ident, ordinal = False, "", 0
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            value, pos = _read_varint(data, pos)
            last = bool(value)
        elif field == 2 and wire == 2:
            size, pos = _read_varint(data, pos)
            ident = data[pos : pos + size].decode("utf-8", "replace")
            pos += size
        elif field == 3 and wire == 0:
            value, pos = _read_varint(data, pos)
            ordinal = _signed64(value)
        else:
            pos = _skip(data, pos, wire)
    if pos != end:
        raise ValueError("truncated partial log metadata")
    return PartialMeta(ident, ordinal, last)


_SOURCES = {b"stdout": "stdout", b"stderr": "stderr"}


def decode_entry(data: bytes) -> LogMessage:
    """A ``LogEntry`` back into a message; ``ValueError`` when it is not one."""
    # fast path for the common layout (source, a 9-byte time, a line shorter than 16 KiB, no
    # partial metadata: what ``docker logs`` reads most); anything else takes the general parser
    if data[:2] == b"\x0a\x06" and len(data) > 19 and data[8] == 0x10 and data[17] < 0x80 and data[18] == 0x1A:
        source = _SOURCES.get(data[2:8])
        if source is not None:
            size = data[19]
            pos = 20
            if size >= 0x80:
                size = (size & 0x7F) | (data[20] << 7)
                pos = 21
            if pos + size == len(data) and size < 0x4000:
                ns = int.from_bytes(data[9:17], "little")  # varint groups, reassembled below
                ns = (
                    (ns & 0x7F)
                    | ((ns >> 1) & 0x3F80)
                    | ((ns >> 2) & 0x1FC000)
                    | ((ns >> 3) & 0xFE00000)
                    | ((ns >> 4) & 0x7F0000000)
                    | ((ns >> 5) & 0x3F800000000)
                    | ((ns >> 6) & 0x1FC0000000000)
                    | ((ns >> 7) & 0xFE000000000000)
                    | (data[17] << 56)
                )
                return LogMessage(data[pos:], source, ns / 1e9, ns)
    return _decode_entry(data)


def _decode_entry(data: bytes) -> LogMessage:
    source, ns, line, partial, meta = "", 0, b"", False, None
    pos, end = 0, len(data)
    try:
        while pos < end:
            key, pos = _read_varint(data, pos)
            field, wire = key >> 3, key & 7
            if field == 1 and wire == 2:
                size, pos = _read_varint(data, pos)
                source = data[pos : pos + size].decode("utf-8", "replace")
                pos += size
            elif field == 2 and wire == 0:
                value, pos = _read_varint(data, pos)
                ns = _signed64(value)
            elif field == 3 and wire == 2:
                size, pos = _read_varint(data, pos)
                line = data[pos : pos + size]
                pos += size
            elif field == 4 and wire == 0:
                value, pos = _read_varint(data, pos)
                partial = bool(value)
            elif field == 5 and wire == 2:
                size, pos = _read_varint(data, pos)
                meta = _decode_meta(data[pos : pos + size])
                pos += size
            else:
                pos = _skip(data, pos, wire)
    except IndexError:
        raise ValueError("truncated log entry") from None
    if pos != end:
        raise ValueError("truncated log entry")
    if partial and meta is None:
        meta = PartialMeta("", 0, False)
    return LogMessage(line, source, ns / 1e9, ns, meta if partial else None)


def frame(entry: bytes) -> bytes:
    size = _LEN.pack(len(entry))
    return size + entry + size


class LengthFraming:
    """Records framed by a 4-byte big-endian length before and after (the file layer's view)."""

    def split(self, data: bytes) -> tuple[list[bytes], int]:
        """The complete records at the start of ``data`` and how many bytes they take.

        :raises ValueError: the data is not framed records (a corrupt file)."""
        records: list[bytes] = []
        pos, end = 0, len(data)
        unpack = _LEN.unpack_from
        while end - pos >= FRAME:
            (size,) = unpack(data, pos)
            stop = pos + FRAME + size
            if size > MAX_RECORD:
                raise ValueError(f"log record of {size} bytes: not a local log file")
            if stop + FRAME > end:
                break
            if unpack(data, stop)[0] != size:
                raise ValueError("log record lengths do not match: not a local log file")
            records.append(data[pos + FRAME : stop])
            pos = stop + FRAME
        return records, pos

    def join(self, records: Sequence[bytes]) -> bytes:
        return b"".join(frame(r) for r in records)

    def tail_offset(self, fd: int, size: int, wanted: int) -> tuple[int, int]:
        """Where the last ``wanted`` records of ``[0, size)`` start, and how many that is (fewer
        when the file has fewer), read backwards through the trailing lengths."""
        pos, found = size, 0
        while pos >= 2 * FRAME and found < wanted:
            trailer = os.pread(fd, FRAME, pos - FRAME)
            if len(trailer) < FRAME:
                break
            (length,) = _LEN.unpack(trailer)
            start = pos - 2 * FRAME - length
            if length > MAX_RECORD or start < 0:
                break  # corrupt: what follows pos is all we can trust
            pos = start
            found += 1
        return pos, found


LENGTH_FRAMING = LengthFraming()


class LocalCodec:
    """The ``local`` format for :class:`~engine.drivers.logfile.LogFile`: ``encode`` returns a whole
    framed record, ``decode`` gets the record's protobuf (the framing strips the lengths)."""

    framing = LENGTH_FRAMING

    def encode(self, message: LogMessage) -> bytes:
        return frame(encode_entry(message))

    def encode_many(self, messages: Sequence[LogMessage]) -> list[bytes]:
        """:func:`encode_entry` and :func:`frame` of each message, written out for speed (the
        driver's hot path): the stream's field is a constant, the time's varint is reused while
        the time repeats (the copier stamps every line of an output chunk alike)."""
        out: list[bytes] = []
        append = out.append
        pack = _LEN.pack
        heads = _SOURCE_FIELDS
        last_ns, stamp = -1, b""
        for message in messages:
            head = heads.get(message.source)
            if head is None or message.partial is not None:
                append(frame(encode_entry(message)))
                continue
            ns = message.timestamp_ns or int(message.timestamp * 1e9)
            if ns != last_ns:
                last_ns, stamp = ns, (b"\x10" + _varint(ns) if ns else b"")
            line = message.line
            size = len(line)
            if not size:
                body = head + stamp
            elif size < 0x80:
                body = head + stamp + bytes((0x1A, size)) + line
            elif size < 0x4000:
                body = head + stamp + bytes((0x1A, (size & 0x7F) | 0x80, size >> 7)) + line
            else:
                body = head + stamp + b"\x1a" + _varint(size) + line
            length = pack(len(body))
            append(length + body + length)
        return out

    def decode(self, record: bytes) -> LogMessage:
        return decode_entry(record)
