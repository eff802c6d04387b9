"""The local log driver: dockerd's ``local`` format, rotated and compressed by default.

Writes ``<data-root>/containers/<id>/local-logs/container.log`` (the directory mode 0700, the files
0640), each message a length-framed protobuf record (:mod:`engine.drivers.logcodec_local`, the
same codec core's dual-logging cache uses), rotating at ``max-size`` (20m) into ``.1``, ``.2``...
up to ``max-file`` (5) files, the rotated ones gzipped unless ``compress=false``. Options, defaults
and error messages are dockerd 20.10's. As dockerd, inspect's ``LogPath`` stays empty: the file
layout is not an API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.log import LogCapabilities, LogDriver, LogInfo, LogMessage, ReadConfig
from engine.drivers.logcodec_local import LocalCodec
from engine.drivers.logfile import LogFile, Rotation, messages_of
from engine.drivers.strconv import atoi, parse_bool
from engine.drivers.units import from_human_size
from engine.errors import InvalidParameter

OPTIONS = ("max-file", "max-size", "compress")
LOG_DIR, LOG_FILE = "local-logs", "container.log"


@dataclass(frozen=True)
class LocalOptions:
    max_size: int = 20 * 1024 * 1024
    max_file: int = 5
    compress: bool = True

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> LocalOptions:
        """The options, checked as dockerd's local ``New`` and ``validateConfig`` do.

        :raises InvalidParameter: with dockerd's message.
        """
        defaults = cls()
        max_size, max_file, compress = defaults.max_size, defaults.max_file, defaults.compress
        if "max-size" in options:
            try:
                max_size = from_human_size(options["max-size"])
            except ValueError as exc:
                raise InvalidParameter(f"invalid value for max-size: {options['max-size']}: {exc}") from None
        if "max-file" in options:
            try:
                max_file = atoi(options["max-file"])
            except ValueError as exc:
                raise InvalidParameter(f"invalid value for max-file: {options['max-file']}: {exc}") from None
        if "compress" in options:
            try:
                compress = parse_bool(options["compress"])
            except ValueError as exc:
                raise InvalidParameter(f"error reading compress log option: {exc}") from None
        if max_size < 0:
            raise InvalidParameter("max size should be a positive number")
        if max_file < 0:
            raise InvalidParameter("max file count cannot be less than 0")
        if compress and max_file <= 1:
            raise InvalidParameter("compression cannot be enabled when max file count is 1")
        return cls(max_size, max_file, compress)


class LocalLogDriver(LogDriver):
    name = "local"
    API_VERSION = DRIVER_API_VERSION
    capabilities = LogCapabilities(read_logs=True)

    def __init__(self, info: LogInfo) -> None:
        super().__init__(info)
        options = LocalOptions.parse(info.config)
        self._dir = info.log_dir / LOG_DIR
        self._dir_made = False  # made 0700 (as dockerd) at the first write, not by a reader
        self._file = LogFile(
            self._dir / LOG_FILE,
            LocalCodec(),
            Rotation(options.max_size, max(options.max_file, 1), options.compress),
        )

    @classmethod
    def check_options(cls, options: Mapping[str, str]) -> None:
        for key in options:
            if key not in OPTIONS:
                raise InvalidParameter(f"unknown log opt '{key}' for log driver {cls.name}")
        # dockerd finds bad values only when the container starts; failing at create is kinder
        LocalOptions.parse(options)

    def log(self, message: LogMessage) -> None:
        self.log_many((message,))

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        if not self._dir_made:
            self._dir.mkdir(mode=0o700, exist_ok=True)
            self._dir_made = True
        self._file.write(messages)

    def read_logs(self, config: ReadConfig) -> AsyncIterator[LogMessage]:
        return messages_of(self._file.read(config))

    def read_log_batches(self, config: ReadConfig) -> AsyncIterator[list[LogMessage]]:
        """Batches of messages (the logs route writes one batch at a time)."""
        return self._file.read(config)

    def close(self) -> None:
        self._file.close()
