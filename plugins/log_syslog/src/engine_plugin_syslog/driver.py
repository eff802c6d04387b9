"""The syslog log driver: each line of the container's output becomes one syslog message.

stdout lines are sent with severity info (6), stderr lines with err (3), in the
``syslog-facility`` (default daemon). The tag (``tag``, default ``{{.ID}}``, the short id) is the
program name of the message. Empty lines are not sent, as in dockerd. Options and their error
messages are dockerd's (:mod:`engine_plugin_syslog.options`); the line formats are in
:mod:`engine_plugin_syslog.formats`.

As in dockerd, ``labels``, ``labels-regex``, ``env`` and ``env-regex`` are accepted but add
nothing to the messages (syslog lines have no place for them). The driver cannot read back:
``docker logs`` is served by the daemon's local cache (dual logging).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.log import LogDriver, LogInfo, LogMessage
from engine.drivers.logtag import DEFAULT_TEMPLATE, check_attribute_options, log_tag
from engine.errors import InvalidParameter
from engine_plugin_syslog import formats, options
from engine_plugin_syslog.writer import SyslogConnection


class SyslogLogDriver(LogDriver):
    name = "syslog"
    API_VERSION = DRIVER_API_VERSION

    def __init__(self, info: LogInfo) -> None:
        super().__init__(info)
        config = info.config
        self.tag = log_tag(info, DEFAULT_TEMPLATE)
        try:
            proto, address = options.parse_address(config.get("syslog-address", ""))
            self.facility = options.parse_facility(config.get("syslog-facility", ""))
            self.formatter, self.framer = formats.parse_format(config.get("syslog-format", ""), proto)
            tls = options.tls_context(config) if proto == formats.SECURE_PROTO else None
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None
        self.hostname = socket.gethostname()
        self._encoder = formats.Encoder(self.formatter, self.framer, self.hostname, self.tag)
        # dockerd dials in its constructor; engine builds drivers on the event loop too (to read a
        # stopped container's logs, which syslog cannot anyway): the dial is in start(), which the
        # daemon calls in a thread before the container starts (a failure fails the start)
        self._conn = SyslogConnection(proto, address, tls)

    def start(self) -> None:
        """Dial the server: "dial tcp 127.0.0.1:514: connect: connection refused" fails the start.
        A connection lost later is dialled again by the next write (srslog's retry)."""
        self._conn.connect()

    @classmethod
    def check_options(cls, config: Mapping[str, str]) -> None:
        options.check_options(config)
        check_attribute_options(config)

    def encode(self, message: LogMessage) -> bytes:
        severity = options.LOG_ERR if message.source == "stderr" else options.LOG_INFO
        return self._encoder.encode(self.facility | severity, message.timestamp, message.line)

    def log(self, message: LogMessage) -> None:
        if message.line:
            self._conn.write(self.encode(message))

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        encode = self._encoder.encode
        out, err = self.facility | options.LOG_INFO, self.facility | options.LOG_ERR
        encoded = [encode(err if m.source == "stderr" else out, m.timestamp, m.line) for m in messages if m.line]
        if encoded:
            self._conn.write_many(encoded)

    def close(self) -> None:
        self._conn.close()
