"""One debug line per API request: method, path, status and duration as structured fields.

``--log-level debug`` (or ``--debug``) shows them, in the daemon's log format:
``level=debug msg="GET /v1.41/info 200" duration=1.234ms method=GET path=/v1.41/info status=200``.
aiohttp calls the logger once a response is finished (for a hijacked attach or exec stream, when
its connection closes); at other levels it is not called at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp.abc import AbstractAccessLogger

from engine.drivers.duration import format_duration

if TYPE_CHECKING:
    from aiohttp.web import BaseRequest, StreamResponse

logger = logging.getLogger("engine.api.requests")

#: also called with each finished request, its response and its duration (engine.metrics adds one)
observers: list[Callable[[BaseRequest, StreamResponse, float], None]] = []


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of a request's duration (float seconds, rounded to µs)."""
    return format_duration(round(seconds * 1e6) * 1000)


class RequestLog(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        for observe in observers:
            observe(request, response, time)
        if self.logger.isEnabledFor(logging.DEBUG):
            fields = {
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration": go_duration(time),
            }
            self.logger.debug("%s %s %d", request.method, request.path, response.status, extra={"fields": fields})

    @property
    def enabled(self) -> bool:
        return bool(observers) or self.logger.isEnabledFor(logging.DEBUG)
