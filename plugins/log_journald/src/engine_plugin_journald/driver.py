"""The journald log driver: each line of the container's output becomes one journal entry.

Entries are sent with the native protocol (:mod:`engine_plugin_journald.protocol`) and carry the
fields dockerd 20.10 sets (:mod:`engine_plugin_journald.fields`): CONTAINER_ID, CONTAINER_ID_FULL,
CONTAINER_NAME, CONTAINER_TAG, IMAGE_NAME, SYSLOG_IDENTIFIER (the tag, default ``{{.ID}}``),
PRIORITY 6 for stdout and 3 for stderr, CONTAINER_PARTIAL_* on the pieces of lines over 16 KiB,
and the ``labels``/``env`` attributes under sanitized names. ``docker logs`` reads them back from
the journal (:mod:`engine_plugin_journald.reader`). Options and messages are dockerd's.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.log import LogCapabilities, LogDriver, LogInfo, LogMessage, ReadConfig
from engine.drivers.logtag import DEFAULT_TEMPLATE, check_attribute_options, log_tag
from engine.errors import InvalidParameter
from engine_plugin_journald import protocol, reader
from engine_plugin_journald.fields import container_fields, entry_fields
from engine_plugin_journald.reader import JournalCursor, read_batches

OPTIONS = frozenset({"labels", "labels-regex", "env", "env-regex", "tag"})


class JournaldLogDriver(LogDriver):
    name = "journald"
    API_VERSION = DRIVER_API_VERSION
    capabilities = LogCapabilities(read_logs=True)

    #: where journald is; tests point these into the mount namespace of a journald they started
    socket_path: str = protocol.SOCKET_PATH
    journal_dir: str | None = None  # None: the local journal (/run/log/journal, /var/log/journal)
    varlink_path: str = reader.VARLINK_PATH

    def __init__(self, info: LogInfo) -> None:
        super().__init__(info)
        tag = log_tag(info, DEFAULT_TEMPLATE)
        fixed = container_fields(info, tag)
        self._fixed = [(key, value.encode()) for key, value in fixed.items()]
        # the container's fields are the same in every entry: encoded once, not once per line
        self._fixed_encoded = protocol.encode_entry(self._fixed)
        self._socket: protocol.JournalSocket | None = None
        self._open_lock = threading.Lock()
        self._closed = threading.Event()

    @classmethod
    def check_options(cls, options: Mapping[str, str]) -> None:
        for key in options:
            if key not in OPTIONS:
                raise InvalidParameter(f"unknown log opt '{key}' for journald log driver")
        check_attribute_options(options)

    def start(self) -> None:
        """dockerd's check when the container starts: without a journal, the start fails with
        "failed to initialize logging driver: journald is not enabled on this host"."""
        if not protocol.enabled(self.socket_path):
            raise OSError("journald is not enabled on this host")

    def _sock(self) -> protocol.JournalSocket:
        if self._socket is None:
            with self._open_lock:
                if self._socket is None:
                    self._socket = protocol.JournalSocket(self.socket_path)
        return self._socket

    def _encode(self, message: LogMessage) -> bytes:
        """``encode_entry(entry_fields(message, self._fixed))``, with the fixed part encoded ahead:
        the per-line fields (PRIORITY, MESSAGE) come before it, the timestamp and partial ones after."""
        fields = entry_fields(message, [])
        return protocol.encode_entry(fields[:2]) + self._fixed_encoded + protocol.encode_entry(fields[2:])

    def log(self, message: LogMessage) -> None:
        self._sock().send(self._encode(message))

    def log_many(self, messages: Sequence[LogMessage]) -> None:
        sock = self._sock()
        for message in messages:
            sock.send(self._encode(message))

    def read_log_batches(self, config: ReadConfig) -> AsyncIterator[list[LogMessage]]:
        """Positions the journal now (so ``tail=0`` with follow means what comes after this call)."""
        cursor = JournalCursor(self.info.container_id, config, self.journal_dir, self.varlink_path)
        return read_batches(cursor, self._closed)

    def read_logs(self, config: ReadConfig) -> AsyncIterator[LogMessage]:
        return _messages(self.read_log_batches(config))

    def close(self) -> None:
        self._closed.set()
        if self._socket is not None:
            self._socket.close()


async def _messages(batches: AsyncIterator[list[LogMessage]]) -> AsyncIterator[LogMessage]:
    async for batch in batches:
        for message in batch:
            yield message
