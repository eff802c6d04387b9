"""The log driver contract (moby's daemon/logger).

One driver instance per container. The daemon's copier reads the container's stdout and
stderr and calls :meth:`LogDriver.log` with one :class:`LogMessage` per line (or per
16 KiB chunk of a long line, marked partial). Drivers that can read their logs back
implement :class:`LogReader`; for the others, the daemon keeps a local cache ("dual
logging", as dockerd 20.10) so ``docker logs`` still works.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from engine.drivers.logopts import driver_options
from engine.errors import InvalidParameter

__all__ = ["LogCapabilities", "LogDriver", "LogInfo", "LogMessage", "LogReader", "PartialMeta", "ReadConfig"]


@dataclass
class PartialMeta:
    """Set on messages that are pieces of one long line (moby's PartialLogMetaData)."""

    id: str
    ordinal: int
    last: bool


@dataclass(slots=True)
class LogMessage:
    line: bytes  # without the trailing newline for complete lines; partial pieces are raw
    source: str  # "stdout" or "stderr"
    timestamp: float  # seconds since the epoch (with nanosecond-ish precision from time.time_ns()/1e9)
    timestamp_ns: int = 0  # exact, when known; 0 means derive from ``timestamp``
    partial: PartialMeta | None = None
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def time_ns(self) -> int:
        return self.timestamp_ns or int(self.timestamp * 1e9)

    def with_newline(self) -> bytes:
        """The bytes as the container wrote them: the line and its newline, except for a piece of a
        long line that is not the last one (moby's rule, which ``docker logs`` output follows)."""
        if self.partial is None or self.partial.last:
            return self.line + b"\n"
        return self.line


@dataclass(frozen=True)
class LogInfo:
    """What a driver knows about its container (moby's logger.Info)."""

    container_id: str
    container_name: str  # with the leading "/"
    image_id: str
    image_name: str
    created: str  # RFC 3339
    env: tuple[str, ...]
    labels: Mapping[str, str]
    config: Mapping[str, str]  # the --log-opt options for this driver
    log_dir: Path  # the container's directory (<data-root>/containers/<id>)
    daemon_name: str = "engine"
    command: tuple[str, ...] = ()  # entrypoint and arguments (the tag template's ``{{.Command}}``)

    def extra_attributes(self) -> dict[str, str]:
        """Attributes from the ``labels``, ``labels-regex``, ``env`` and ``env-regex`` options."""
        import re

        attrs: dict[str, str] = {}
        for key in filter(None, (self.config.get("labels") or "").split(",")):
            if key in self.labels:
                attrs[key] = self.labels[key]
        if pattern := self.config.get("labels-regex"):
            attrs.update({k: v for k, v in self.labels.items() if re.search(pattern, k)})
        env = dict(item.split("=", 1) for item in self.env if "=" in item)
        for key in filter(None, (self.config.get("env") or "").split(",")):
            if key in env:
                attrs[key] = env[key]
        if pattern := self.config.get("env-regex"):
            attrs.update({k: v for k, v in env.items() if re.search(pattern, k)})
        return attrs

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    @property
    def name(self) -> str:
        return self.container_name.lstrip("/")


@dataclass(frozen=True)
class ReadConfig:
    """What ``docker logs`` asks for."""

    since_ns: int = 0  # 0: from the start
    until_ns: int = 0  # 0: no end
    tail: int = -1  # -1: all lines
    follow: bool = False


@dataclass(frozen=True)
class LogCapabilities:
    read_logs: bool = False


class LogDriver(abc.ABC):
    """Abstract log driver. Subclasses set ``name``, ``API_VERSION`` and ``capabilities``.

    A driver is constructed per container (also, briefly, to read the logs of a stopped
    container), so the constructor must not create files: open them on the first ``log``.
    """

    name: ClassVar[str]
    API_VERSION: ClassVar[int]
    capabilities: ClassVar[LogCapabilities] = LogCapabilities()

    def __init__(self, info: LogInfo) -> None:
        self.info = info

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        """Reject unknown or bad ``--log-opt`` values with ``engine.errors.InvalidParameter``.

        The options every driver takes (``mode``, ``max-buffer-size``, ``cache-*``) are checked
        here and the rest go to :meth:`check_options`, which drivers override."""
        cls.check_options(driver_options(options))

    @classmethod
    def check_options(cls, options: Mapping[str, str]) -> None:
        """The driver's own options (built-in ones removed); the default accepts none."""
        if options:
            raise InvalidParameter(f"unknown log opt '{sorted(options)[0]}' for {cls.name} log driver")

    def start(self) -> None:  # noqa: B027 - optional
        """Connect to the log target before the container starts (moby's driver constructors dial
        there). Blocking: called in a thread, never on the event loop. An exception fails the
        container's start with "failed to initialize logging driver: <the exception's text>"."""

    @abc.abstractmethod
    def log(self, message: LogMessage) -> None:
        """Record one message. Called from the copier's thread; must not block for long."""

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        """Record a batch (the copier hands over everything it has at once); override to write
        the batch in one go."""
        for message in messages:
            self.log(message)

    @property
    def log_path(self) -> str:
        """The file the driver writes, for inspect's ``LogPath`` ("" when there is none)."""
        return ""

    def close(self) -> None:  # noqa: B027 - optional
        """Flush and release; no ``log`` call follows. Followers of ``read_logs`` end."""


@runtime_checkable
class LogReader(Protocol):
    """Implemented by drivers whose logs ``docker logs`` can read back."""

    def read_logs(self, config: ReadConfig) -> AsyncIterator[LogMessage]:
        """Yield the stored messages matching ``config``; with ``follow``, keep yielding new ones
        (across rotation) until the consumer closes the iterator or the container's logger closes.

        Called on the event loop. Best as a plain method returning the iterator, taking the
        follow position right away (``tail=0`` then means "what is written after this call").
        A driver may also offer ``read_log_batches(config)``, an async iterator of message lists,
        which the logs route prefers (see ``engine.drivers.logfile`` for a file-based implementation)."""
        ...
