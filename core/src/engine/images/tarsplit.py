"""Record a layer tar while it is applied, and rebuild the identical bytes later.

A layer's diff ID is the sha256 of its uncompressed tar, and image IDs are built from diff
IDs, so ``docker save`` must emit each layer tar byte for byte as it came in. Like
tar-split, :class:`TarRecorder` passes the stream through unchanged to whoever reads it (the
storage driver's ``apply_diff``) and keeps every byte that is not a regular file's payload
(headers, PAX and long-name records, padding, end blocks, trailing garbage) plus, for each
payload, the file's name, size and CRC-32. :func:`reassemble` replays that record, reading
payloads back from the mounted layer.

The record is engine's own format (gzip of JSON lines), stored as ``tar-split.json.gz``:
``{"engine-tar-split": 1}`` then ``{"type": 2, "payload": base64}`` for raw segments and
``{"type": 1, "name": ..., "size": n, "crc32": c}`` (``name_raw`` in base64 when the name is
not UTF-8) for file payloads.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import posixpath
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from engine.drivers import layers
from engine.errors import InvalidParameter, SystemError

BLOCK = 512
FORMAT_VERSION = 1
#: typeflags whose payload is file content (read back from the layer on export)
_REGULAR = (b"0", b"\0", b"7")
#: typeflags that never carry a payload, whatever their size field says
_HEADER_ONLY = (b"1", b"2", b"3", b"4", b"5", b"6")
_SEGMENT_FLUSH = 1 << 20


class TarSplitError(SystemError):
    pass


def _parse_number(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256 (GNU/star) for large values
        value = field[0] & 0x7F
        for b in field[1:]:
            value = (value << 8) | b
        return value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0


def _checksum_ok(header: bytes) -> bool:
    try:
        want = _parse_number(header[148:156])
    except ValueError:
        return False
    unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
    signed = unsigned - 2 * sum(b for b in header[:148] + header[156:] if b > 127)
    return want in (unsigned, signed)


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1 : pos + length - 1]  # drop the trailing newline
        key, _, value = record.partition(b"=")
        out[key] = value
        pos += length
    return out


class _Writer:
    """The JSON-lines record, gzip-compressed, written as the tar streams by."""

    def __init__(self, out: IO[bytes]) -> None:
        self._gz = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0)
        self._line({"engine-tar-split": FORMAT_VERSION})

    def _line(self, entry: dict[str, Any]) -> None:
        self._gz.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")

    def segment(self, data: bytes) -> None:
        if data:
            self._line({"type": 2, "payload": base64.b64encode(data).decode()})

    def file(self, name: bytes, size: int, crc: int) -> None:
        entry: dict[str, Any] = {"type": 1, "size": size, "crc32": crc}
        try:
            entry["name"] = name.decode()
        except UnicodeDecodeError:
            entry["name_raw"] = base64.b64encode(name).decode()
        self._line(entry)

    def close(self) -> None:
        self._gz.close()


class TarRecorder(io.RawIOBase):
    """A read-through wrapper: hashes everything read (the diff ID) and records the tar's layout.

    Call :meth:`finish` after the consumer is done: it drains whatever the consumer left
    unread (trailing blocks, garbage after the end of archive), as dockerd does, and returns
    ``(diff_id, total_bytes)``.
    """

    def __init__(self, source: BinaryIO, record: IO[bytes]) -> None:
        super().__init__()
        self._source = source
        self._writer = _Writer(record)
        self._sha = hashlib.sha256()
        self.total = 0
        self._pending = bytearray()  # raw bytes not yet written as a segment
        self._state = "header"
        self._need = BLOCK  # bytes left in the current state
        self._header = bytearray()
        self._meta = bytearray()  # payload of a PAX / long-name entry
        self._meta_type = b""
        self._long_name: bytes | None = None
        self._pax: dict[bytes, bytes] = {}
        self._file_name = b""
        self._file_size = 0
        self._crc = 0
        self._finished = False

    # -- io.RawIOBase ------------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        if not data:
            return 0
        n = len(data)
        view[:n] = data
        self._consume(bytes(data))
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._source.read() if size is None or size < 0 else self._source.read(size)
        if data:
            self._consume(bytes(data))
        return data or b""

    # -- the state machine ---------------------------------------------------------------------------

    def _consume(self, data: bytes) -> None:
        self._sha.update(data)
        self.total += len(data)
        pos = 0
        while pos < len(data):
            state = self._state
            if state == "tail":
                self._pending += data[pos:]
                break
            take = min(self._need, len(data) - pos)
            chunk = data[pos : pos + take]
            pos += take
            self._need -= take
            if state == "header":
                self._header += chunk
                self._pending += chunk
                if self._need == 0:
                    self._on_header(bytes(self._header))
                    self._header.clear()
            elif state == "meta":
                self._pending += chunk
                self._meta += chunk
                if self._need == 0:
                    self._on_meta()
            elif state == "payload":
                self._crc = zlib.crc32(chunk, self._crc)
                if self._need == 0:
                    self._writer.file(self._file_name, self._file_size, self._crc)
                    self._enter_padding(self._file_size)
            elif state == "skip":  # padding after a payload
                self._pending += chunk
                if self._need == 0:
                    self._state, self._need = "header", BLOCK
            if len(self._pending) >= _SEGMENT_FLUSH:
                self._flush()

    def _flush(self) -> None:
        self._writer.segment(bytes(self._pending))
        self._pending.clear()

    def _enter_padding(self, size: int) -> None:
        pad = (-size) % BLOCK
        if pad:
            self._state, self._need = "skip", pad
        else:
            self._state, self._need = "header", BLOCK

    def _on_header(self, header: bytes) -> None:
        if header == b"\0" * BLOCK or not _checksum_ok(header):
            self._state = "tail"  # end of archive (or not a tar): keep the rest verbatim
            return
        typeflag = header[156:157]
        size = _parse_number(header[124:136])
        if typeflag in (b"x", b"g", b"L", b"K"):
            self._meta_type, self._meta = typeflag, bytearray()
            self._meta_padded = size + (-size) % BLOCK
            self._meta_size = size
            if self._meta_padded:
                self._state, self._need = "meta", self._meta_padded
            else:
                self._on_meta()
            return
        name = self._long_name
        if name is None:
            name = header[0:100].split(b"\0", 1)[0]
            if header[257:263] == b"ustar\0":
                prefix = header[345:500].split(b"\0", 1)[0]
                if prefix:
                    name = prefix + b"/" + name
        if b"path" in self._pax:
            name = self._pax[b"path"]
        if b"size" in self._pax:
            try:
                size = int(self._pax[b"size"])
            except ValueError:
                pass
        self._long_name, self._pax = None, {}
        if typeflag in _HEADER_ONLY:
            size = 0
        if size == 0:
            self._state, self._need = "header", BLOCK
        elif typeflag in _REGULAR:
            self._flush()
            self._file_name, self._file_size, self._crc = name, size, 0
            self._state, self._need = "payload", size
        else:  # GNU sparse and unknown types: keep their payload verbatim
            self._state, self._need = "skip", size + (-size) % BLOCK

    def _on_meta(self) -> None:
        payload = bytes(self._meta[: self._meta_size])
        if self._meta_type == b"x":
            self._pax.update(_pax_records(payload))
        elif self._meta_type == b"L":
            self._long_name = payload.split(b"\0", 1)[0]
        self._meta = bytearray()
        self._state, self._need = "header", BLOCK

    # -- end ---------------------------------------------------------------------------------------------

    def finish(self) -> tuple[str, int]:
        """Drain the rest of the source, close the record; returns ``("sha256:<hex>", bytes)``."""
        if not self._finished:
            while self.read(1 << 20):
                pass
            if self._state == "payload":
                raise InvalidParameter("unexpected EOF in layer tar")
            self._flush()
            self._writer.close()
            self._finished = True
        return "sha256:" + self._sha.hexdigest(), self.total


# -- reassembly ---------------------------------------------------------------------------------------


def entries(record: IO[bytes]) -> Iterator[dict[str, Any]]:
    with gzip.GzipFile(fileobj=record, mode="rb") as gz:
        first = gz.readline()
        if json.loads(first).get("engine-tar-split") != FORMAT_VERSION:
            raise TarSplitError("unknown tar-split record format")
        for line in gz:
            yield json.loads(line)


def tar_size(record_path: Path) -> int:
    """The size of the tar :func:`reassemble` would write."""
    total = 0
    with open(record_path, "rb") as f:
        for entry in entries(f):
            if entry["type"] == 2:
                total += len(base64.b64decode(entry["payload"]))
            else:
                total += entry["size"]
    return total


def _entry_name(entry: dict[str, Any]) -> bytes:
    if "name_raw" in entry:
        return base64.b64decode(entry["name_raw"])
    return entry["name"].encode("utf-8", "surrogateescape")


def open_in_root(root: Path, name: bytes) -> int:
    """Open ``name`` (a tar path) under ``root`` for reading, symlinks on the way resolved inside ``root``
    (as dockerd's chrooted extraction placed the file); the file itself must not be a symlink."""
    clean = posixpath.normpath(b"/" + name).lstrip(b"/")
    if not clean or clean == b".":
        raise TarSplitError(f"invalid file name in layer record: {name!r}")
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        out = layers.open_in_root(root_fd, root, os.fsdecode(clean), os.O_RDONLY | os.O_NOFOLLOW)
    finally:
        os.close(root_fd)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        raise TarSplitError(f"{name.decode(errors='replace')} is not a regular file in the layer")
    return out


def reassemble(record_path: Path, root: Path, out: IO[bytes]) -> int:
    """Write the original tar to ``out`` from the record and the layer mounted at ``root``."""
    written = 0
    with open(record_path, "rb") as f:
        for entry in entries(f):
            if entry["type"] == 2:
                data = base64.b64decode(entry["payload"])
                out.write(data)
                written += len(data)
                continue
            name, size = _entry_name(entry), entry["size"]
            try:
                fd = open_in_root(root, name)
            except OSError as exc:
                raise TarSplitError(f"layer file {name.decode(errors='replace')} is missing: {exc}") from None
            crc, left = 0, size
            with os.fdopen(fd, "rb") as src:
                while left:
                    chunk = src.read(min(left, 1 << 20))
                    if not chunk:
                        raise TarSplitError(f"layer file {name.decode(errors='replace')} is shorter than recorded")
                    crc = zlib.crc32(chunk, crc)
                    out.write(chunk)
                    left -= len(chunk)
            if crc != entry["crc32"]:
                raise TarSplitError(f"layer file {name.decode(errors='replace')} changed since it was applied")
            written += size
    return written
