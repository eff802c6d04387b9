"""Dual logging (dockerd 20.10): a local copy of the logs of drivers that cannot read back.

Every message given to such a driver (syslog, gelf, fluentd...) is also written to
``<container dir>/container-cached.log``, so ``docker logs`` works for them. The cache rotates
with ``cache-max-size`` (20m), ``cache-max-file`` (5) and ``cache-compress`` (true), and
``cache-disabled=true`` turns it off (then ``docker logs`` answers "configured logging driver
does not support reading", as before 20.10).

The file format is engine's own (dockerd uses its ``local`` driver's protobuf framing), one
line per message: ``<unix ns> <o|e>[p] <line>`` where ``p`` marks a piece of a long line that
is not the last one and the line escapes ``\\`` and newline.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from engine.drivers.log import LogCapabilities, LogDriver, LogInfo, LogMessage, PartialMeta, ReadConfig
from engine.drivers.logfile import LogFile, Rotation, messages_of
from engine.drivers.logopts import (
    CACHE_COMPRESS,
    CACHE_DISABLED,
    CACHE_MAX_FILE,
    CACHE_MAX_SIZE,
)
from engine.drivers.strconv import atoi, parse_bool
from engine.drivers.units import ram_in_bytes

CACHE_FILE = "container-cached.log"
DEFAULT_ROTATION = Rotation(max_size=20 * 1024 * 1024, max_files=5, compress=True)

_UNESCAPE = re.compile(rb"\\(.)", re.S)


def _unescape(match: re.Match[bytes]) -> bytes:
    return b"\n" if match.group(1) == b"n" else match.group(1)


class CacheCodec:
    def encode(self, message: LogMessage) -> bytes:
        line = message.line
        if b"\\" in line or b"\n" in line:
            line = line.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
        flags = b"o" if message.source == "stdout" else b"e"
        if message.partial is not None and not message.partial.last:
            flags += b"p"
        return b"%d %s %s\n" % (message.time_ns, flags, line)

    def decode(self, line: bytes) -> LogMessage:
        try:
            stamp, flags, payload = line.split(b" ", 2)
            ts = int(stamp)
        except ValueError:
            raise ValueError("not a cache line") from None
        if b"\\" in payload:
            payload = _UNESCAPE.sub(_unescape, payload)
        partial = PartialMeta("", 0, False) if flags.endswith(b"p") else None
        return LogMessage(payload, "stdout" if flags[:1] == b"o" else "stderr", ts / 1e9, ts, partial)


def cache_enabled(options: Mapping[str, str]) -> bool:
    """moby's ``ShouldUseCache``."""
    value = options.get(CACHE_DISABLED, "")
    if not value:
        return True
    try:
        return not parse_bool(value)
    except ValueError:
        return False


def cache_rotation(options: Mapping[str, str]) -> Rotation:
    max_size = ram_in_bytes(options[CACHE_MAX_SIZE]) if options.get(CACHE_MAX_SIZE) else DEFAULT_ROTATION.max_size
    max_files = atoi(options[CACHE_MAX_FILE]) if options.get(CACHE_MAX_FILE) else DEFAULT_ROTATION.max_files
    compress = parse_bool(options[CACHE_COMPRESS]) if options.get(CACHE_COMPRESS) else DEFAULT_ROTATION.compress
    return Rotation(max_size=max_size, max_files=max_files, compress=compress and max_files > 1)


def cache_file(log_dir: Path, options: Mapping[str, str]) -> LogFile:
    return LogFile(log_dir / CACHE_FILE, CacheCodec(), cache_rotation(options))


class CachedLogDriver(LogDriver):
    """Wraps a driver that cannot read back: writes to it and to the cache, reads the cache."""

    name = "cache"
    API_VERSION = 0  # never loaded from an entry point
    capabilities = LogCapabilities(read_logs=True)

    def __init__(self, inner: LogDriver, info: LogInfo) -> None:
        super().__init__(info)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # report the real driver's name
        self.cache = cache_file(info.log_dir, info.config)

    def log(self, message: LogMessage) -> None:
        self.log_many([message])

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        try:
            self.inner.log_many(messages)
        finally:
            self.cache.write(messages)

    def read_logs(self, config: ReadConfig) -> AsyncIterator[LogMessage]:
        return messages_of(self.cache.read(config))

    def read_log_batches(self, config: ReadConfig) -> AsyncIterator[list[LogMessage]]:
        return self.cache.read(config)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.cache.close()
