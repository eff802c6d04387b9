"""The {{driver_name}} log driver.

This skeleton already passes engine-testkit's log reader conformance suite: it writes each
container's output to ``<container dir>/{{driver_name}}.log`` in the CRI log format (what
containerd and CRI-O write for Kubernetes, one message per line)::

    2026-01-02T03:04:05.123456789Z stdout F a complete line
    2026-01-02T03:04:05.123456790Z stderr P a piece of a long line, more follows

rotates it at ``max-size`` keeping ``max-file`` files, and reads it back for ``docker logs`` (tail,
since, until, follow across rotation) with the SDK's rotating ``LogFile``. Replace the marked parts
with your backend (a socket, a database, a remote service...). A driver that cannot read its logs
back simply leaves out ``read_logs``: engine then keeps a local copy for ``docker logs``.

The contract, in short (see ``engine.drivers.log.LogDriver`` for the full text):

- one instance per container, constructed with a ``LogInfo`` (ids, names, labels, ``--log-opt``
  values in ``info.config``, the container's directory); the constructor creates no files;
- ``check_options`` rejects unknown or bad ``--log-opt`` values with ``InvalidParameter``;
- ``log``/``log_many`` are called from the copier's thread with one ``LogMessage`` per line (a
  long line arrives in pieces marked ``partial``); ``close`` ends the container's logging;
- ``read_logs(config)`` returns an async iterator of messages; with ``config.follow`` it keeps
  yielding until the consumer stops or the driver closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

from engine.drivers.log import LogCapabilities, LogDriver, LogInfo, LogMessage, PartialMeta, ReadConfig
from engine.drivers.logfile import LogFile, Rotation, messages_of
from engine.drivers.timefmt import parse_rfc3339nano, rfc3339nano
from engine.drivers.units import from_human_size
from engine.errors import InvalidParameter

#: ``--log-opt`` keys this driver takes (the ones every driver takes, such as ``mode``, are core's)
OPTIONS = ("max-size", "max-file")


class CriCodec:
    """One message per line: ``<RFC 3339 time> <stream> <F|P> <bytes>`` (F: full line, P: partial)."""

    # REPLACE: your own format, if you keep a file

    def encode(self, message: LogMessage) -> bytes:
        full = message.partial is None or message.partial.last
        stamp = rfc3339nano(message.time_ns).encode()
        return b"%s %s %s %s\n" % (stamp, message.source.encode(), b"F" if full else b"P", message.line)

    def decode(self, line: bytes) -> LogMessage:
        try:
            stamp, source, tag, data = line.split(b" ", 3)
            ns = parse_rfc3339nano(stamp.decode())
        except ValueError as exc:
            raise ValueError(f"not a CRI log line: {exc}") from None
        partial = None if tag == b"F" else PartialMeta("", 0, False)
        return LogMessage(data, source.decode(), ns / 1e9, ns, partial)


def parse_rotation(options: Mapping[str, str]) -> Rotation:
    """``max-size`` (a size such as ``10m``) and ``max-file`` (files kept, at least 1)."""
    try:
        max_size = from_human_size(options["max-size"]) if "max-size" in options else -1
        max_file = int(options.get("max-file", "1"))
    except ValueError as exc:
        raise InvalidParameter(f"{{driver_name}}: {exc}") from None
    if "max-size" in options and max_size <= 0:
        raise InvalidParameter("{{driver_name}}: max-size must be a positive number")
    if max_file < 1:
        raise InvalidParameter("{{driver_name}}: max-file cannot be less than 1")
    return Rotation(max_size, max_file)


class {{class_name}}(LogDriver):
    name = "{{driver_name}}"  # must equal the entry-point name in pyproject.toml
    API_VERSION = 1  # the driver API (engine.drivers.DRIVER_API_VERSION) this was written and tested against
    capabilities = LogCapabilities(read_logs=True)

    def __init__(self, info: LogInfo) -> None:
        super().__init__(info)
        # LogFile opens the file on the first write: constructing a driver to read creates nothing
        self._file = LogFile(info.log_dir / "{{driver_name}}.log", CriCodec(), parse_rotation(info.config))

    @classmethod
    def check_options(cls, options: Mapping[str, str]) -> None:
        for key in options:
            if key not in OPTIONS:
                raise InvalidParameter(f"unknown log opt '{key}' for {cls.name} log driver")
        parse_rotation(options)

    @property
    def log_path(self) -> str:
        return str(self._file.path)

    def log(self, message: LogMessage) -> None:
        self._file.write((message,))

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        self._file.write(messages)  # one write per batch

    def read_logs(self, config: ReadConfig) -> AsyncIterator[LogMessage]:
        return messages_of(self._file.read(config))

    def close(self) -> None:
        self._file.close()
