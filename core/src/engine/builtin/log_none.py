"""The ``none`` log driver: output is discarded and ``docker logs`` has nothing to read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.log import LogDriver, LogMessage


class NoneLogDriver(LogDriver):
    name = "none"
    API_VERSION = DRIVER_API_VERSION

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        """dockerd checks nothing for ``none`` (moby's ValidateLogOpts returns early)."""

    def log(self, message: LogMessage) -> None:
        pass

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        pass
