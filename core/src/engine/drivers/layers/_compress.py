"""Decompression of layer streams: gzip, bzip2, xz and zstd, detected by magic."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import subprocess
import threading
from typing import BinaryIO

from engine.drivers.layers._base import _CHUNK, ArchiveError


class _Prefixed:
    """A reader that first returns ``head`` (bytes already read to sniff the format), then ``rest``."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            if len(data) < n:
                data += self._rest.read(n - len(data)) or b""
            return data
        return self._rest.read(n)

    def readable(self) -> bool:
        return True


class _ZstdReader:
    """zstd through the ``zstd`` command (Python 3.11 has no zstd module); a thread feeds its stdin."""

    def __init__(self, src: _Prefixed) -> None:
        zstd = shutil.which("zstd")
        if not zstd:
            raise ArchiveError("zstd-compressed archive, but the zstd command is not installed")
        self._proc = subprocess.Popen([zstd, "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._feeder = threading.Thread(target=self._feed, args=(src,), daemon=True)
        self._feeder.start()

    def _feed(self, src: _Prefixed) -> None:
        assert self._proc.stdin is not None
        try:
            while chunk := src.read(_CHUNK):
                self._proc.stdin.write(chunk)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def read(self, n: int = -1) -> bytes:
        assert self._proc.stdout is not None
        if self._proc.stdout.closed:
            return b""  # read again after the end (tar readers do): close() closed the pipe
        data = self._proc.stdout.read(n)
        if not data:
            self.close()
        return data

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdout is not None
            self._proc.stdout.close()
            self._proc.wait()
        self._feeder.join()
        if self._proc.returncode not in (0, None, -13):  # -13: we closed its stdout early
            raise ArchiveError(f"zstd: decompression failed (exit {self._proc.returncode})")


def decompress(stream: BinaryIO) -> BinaryIO:
    """Return a reader of ``stream``'s uncompressed bytes (gzip, bzip2, xz, zstd by magic; else as is)."""
    head = b""
    while len(head) < 6:
        more = stream.read(6 - len(head))
        if not more:
            break
        head += more
    src = _Prefixed(head, stream)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[arg-type]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(src)  # type: ignore[arg-type,return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(src)  # type: ignore[arg-type,return-value]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return _ZstdReader(src)  # type: ignore[return-value]
    return src  # type: ignore[return-value]


def _drain(stream: BinaryIO) -> None:
    while stream.read(_CHUNK):
        pass
