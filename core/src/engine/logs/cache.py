"""Dual logging (dockerd 20.10): a local copy of the logs of drivers that cannot read back.

Every message given to such a driver (syslog, gelf, fluentd...) is also written to
``<container dir>/container-cached.log`` (where dockerd keeps it), in dockerd's ``local`` driver
format (:mod:`engine.drivers.logcodec_local`: length-framed protobuf records), so ``docker logs``
works for them. The cache rotates with ``cache-max-size`` (20m), ``cache-max-file`` (5) and
``cache-compress`` (true), and ``cache-disabled=true`` turns it off (then ``docker logs`` answers
"configured logging driver does not support reading", as before 20.10).

dockerd 20.10 accepts ``cache-max-size``, ``cache-max-file`` and ``cache-compress`` without looking
at their values and does not apply them (its cache is its ``local`` driver, which reads the
unprefixed keys: the cache stays 20m x 5 compressed whatever they say; checked against the
reference dockerd). engine applies them as Docker documents them and refuses bad values at create,
worded as dockerd words a bad ``cache-disabled``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from engine.drivers.log import LogCapabilities, LogDriver, LogInfo, LogMessage, ReadConfig
from engine.drivers.logcodec_local import LocalCodec
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
    return LogFile(log_dir / CACHE_FILE, LocalCodec(), cache_rotation(options))


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

    def start(self) -> None:
        self.inner.start()

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
