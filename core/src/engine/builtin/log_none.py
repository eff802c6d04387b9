"""The ``none`` log driver: output is discarded and ``docker logs`` has nothing to read."""

from __future__ import annotations

from engine import DRIVER_API_VERSION
from engine.drivers.log import LogDriver, LogMessage


class NoneLogDriver(LogDriver):
    name = "none"
    API_VERSION = DRIVER_API_VERSION

    def log(self, message: LogMessage) -> None:
        pass
