"""The json-file log driver: dockerd's default, and what ``docker logs`` reads.

Writes ``<data-root>/containers/<id>/<id>-json.log`` in dockerd's exact line format
(:mod:`engine_plugin_json_file.codec`), rotating at ``max-size`` into ``.1``, ``.2``... up to
``max-file`` files, gzipped when ``compress``. Options and their error messages are dockerd's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.log import LogCapabilities, LogDriver, LogInfo, LogMessage, ReadConfig
from engine.drivers.logfile import LogFile, Rotation, messages_of
from engine.drivers.logtag import check_attribute_options, log_tag
from engine.drivers.strconv import atoi, parse_bool
from engine.drivers.units import from_human_size
from engine.errors import InvalidParameter
from engine_plugin_json_file.codec import JsonLineCodec

OPTIONS = ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag")


@dataclass(frozen=True)
class JsonFileOptions:
    max_size: int = -1
    max_file: int = 1
    compress: bool = False

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> JsonFileOptions:
        """The rotation options, checked as dockerd's json-file ``New`` does.

        :raises InvalidParameter: with dockerd's message.
        """
        max_size, max_file, compress = -1, 1, False
        try:
            if "max-size" in options:
                max_size = from_human_size(options["max-size"])
                if max_size <= 0:
                    raise ValueError("max-size must be a positive number")
            if "max-file" in options:
                max_file = atoi(options["max-file"])
                if max_file < 1:
                    raise ValueError("max-file cannot be less than 1")
            if "compress" in options:
                compress = parse_bool(options["compress"])
                if compress and (max_file == 1 or max_size == -1):
                    raise ValueError("compress cannot be true when max-file is less than 2 or max-size is not set")
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None
        return cls(max_size, max_file, compress)


class JsonFileLogDriver(LogDriver):
    name = "json-file"
    API_VERSION = DRIVER_API_VERSION
    capabilities = LogCapabilities(read_logs=True)

    def __init__(self, info: LogInfo) -> None:
        super().__init__(info)
        options = JsonFileOptions.parse(info.config)
        attrs = info.extra_attributes()
        tag = log_tag(info)  # no default: only a tag the user asked for
        if tag:
            attrs["tag"] = tag
        self._file = LogFile(
            info.log_dir / f"{info.container_id}-json.log",
            JsonLineCodec(attrs),
            Rotation(options.max_size, options.max_file, options.compress),
        )

    @classmethod
    def check_options(cls, options: Mapping[str, str]) -> None:
        for key in options:
            if key not in OPTIONS:
                raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")
        # dockerd finds these only when the container starts; failing at create is kinder
        JsonFileOptions.parse(options)
        check_attribute_options(options)

    @property
    def log_path(self) -> str:
        return str(self._file.path)

    def log(self, message: LogMessage) -> None:
        self._file.write((message,))

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        self._file.write(messages)

    def read_logs(self, config: ReadConfig) -> AsyncIterator[LogMessage]:
        return messages_of(self._file.read(config))

    def read_log_batches(self, config: ReadConfig) -> AsyncIterator[list[LogMessage]]:
        """Batches of messages (the logs route writes one batch at a time)."""
        return self._file.read(config)

    def close(self) -> None:
        self._file.close()
