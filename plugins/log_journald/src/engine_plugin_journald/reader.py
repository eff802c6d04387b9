"""``docker logs`` from the journal, as dockerd 20.10 reads it: the entries matching
``CONTAINER_ID_FULL=<id>``, with tail, since, until and follow.

Uses Debian's python3-systemd (``systemd.journal``, libsystemd's sd-journal). The journal API
blocks, so each step runs in a worker thread; one ``Reader`` is used by one step at a time.
Times are the journal's receive times (``__REALTIME_TIMESTAMP``, microseconds), as dockerd's.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

from engine.drivers.log import LogMessage, PartialMeta, ReadConfig
from engine_plugin_journald.fields import OWN_FIELDS

#: where journald answers varlink calls (systemd 248+); ``Synchronize`` returns once every entry
#: sent before the call is stored
VARLINK_PATH = "/run/systemd/journal/io.systemd.journal"
BATCH = 1000
FOLLOW_POLL = 0.25  # seconds a follower waits for the journal before checking for the logger's close


def _journal_module() -> Any:
    try:
        from systemd import journal
    except ImportError as exc:  # pragma: no cover - depends on the host
        raise RuntimeError(
            "reading from the journal needs python3-systemd (Debian) in a venv with system site-packages"
        ) from exc
    return journal


def synchronize(path: str = VARLINK_PATH, timeout: float = 5.0) -> bool:
    """Ask journald to store everything sent so far (``journalctl --sync``); False when it cannot."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps({"method": "io.systemd.Journal.Synchronize", "parameters": {}}).encode() + b"\0")
            reply = b""
            while not reply.endswith(b"\0"):
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                reply += chunk
        return "error" not in json.loads(reply[:-1])
    except (OSError, ValueError):
        return False


def _value(raw: Any) -> bytes:
    if isinstance(raw, list):  # a field given more than once: the last
        raw = raw[-1]
    return raw if isinstance(raw, bytes) else str(raw).encode()


def to_message(entry: dict[str, Any], realtime_us: int) -> LogMessage:
    """An entry as the message ``docker logs`` writes: the newline back unless it is a piece of a
    long line, the stream from PRIORITY, the extra fields as attributes (``--details``)."""
    line = _value(entry.get("MESSAGE", b""))
    source = "stderr" if _value(entry.get("PRIORITY", b"")) == b"3" else "stdout"
    partial = None
    if "CONTAINER_PARTIAL_ID" in entry or "CONTAINER_PARTIAL_MESSAGE" in entry:
        ordinal = _value(entry.get("CONTAINER_PARTIAL_ORDINAL", b"0"))
        partial = PartialMeta(
            _value(entry.get("CONTAINER_PARTIAL_ID", b"")).decode(errors="replace"),
            int(ordinal) if ordinal.isdigit() else 0,
            "CONTAINER_PARTIAL_MESSAGE" not in entry,
        )
    attrs = {
        key: _value(value).decode(errors="replace")
        for key, value in entry.items()
        if not key.startswith("_") and key not in OWN_FIELDS
    }
    ns = realtime_us * 1000
    return LogMessage(line, source, ns / 1e9, ns, partial, attrs)


class JournalCursor:
    """An open journal positioned for one ``docker logs`` request."""

    def __init__(self, container_id: str, config: ReadConfig, directory: str | None = None) -> None:
        journal = _journal_module()
        self.config = config
        self.reader = journal.Reader(path=directory) if directory else journal.Reader()
        self.reader.add_match(CONTAINER_ID_FULL=container_id)
        self.pending: list[LogMessage] = []
        # sd-journal is not thread-safe: one step at a time, and close waits for the running one
        self._lock = threading.Lock()
        self._closed = False
        self._position()

    def _current(self) -> tuple[int, LogMessage]:
        realtime = self.reader._get_realtime()
        return realtime, to_message(self.reader._get_all(), realtime)

    def _position(self) -> None:
        """The cheap part of dockerd's seek, done at once (no entry is read): the end, or ``until``
        when there is a tail to take; else ``since`` or the start."""
        r, config = self.reader, self.config
        self._tail_pending = config.tail > 0
        if config.tail >= 0:
            if config.until_ns:
                r.seek_realtime(config.until_ns // 1000 + 1)
            else:
                r.seek_tail()
                if config.tail == 0:
                    r._previous()  # on the last entry: the next step reads what comes after it
        else:
            r.seek_head()
            if config.since_ns:
                r.seek_realtime(config.since_ns // 1000)

    def _take_tail(self) -> None:
        """The last ``tail`` entries up to ``until`` and not before ``since``, stepping back from
        the end; reading goes on after the newest of them."""
        r, config = self.reader, self.config
        since_us, until_us = config.since_ns // 1000, config.until_ns // 1000
        back: list[LogMessage] = []
        newest = ""
        while len(back) < config.tail and r._previous():
            realtime, message = self._current()
            if realtime < since_us:
                break
            if until_us and realtime > until_us:
                continue
            if not newest:
                newest = r._get_cursor()
            back.append(message)
        back.reverse()
        self.pending = back
        if newest:
            r.seek_cursor(newest)
            r._next()
        elif not until_us:
            r.seek_tail()
            r._previous()

    def drain(self, limit: int = BATCH) -> tuple[list[LogMessage], bool]:
        """The next messages (up to ``limit``) and whether ``until`` was passed."""
        with self._lock:
            if self._closed:
                return [], True
            return self._drain(limit)

    def _drain(self, limit: int) -> tuple[list[LogMessage], bool]:
        if self._tail_pending:
            self._tail_pending = False
            self._take_tail()
        if self.pending:
            batch, self.pending = self.pending[:limit], self.pending[limit:]
            return batch, False
        since_ns, until_ns = self.config.since_ns, self.config.until_ns
        batch: list[LogMessage] = []
        while len(batch) < limit and self.reader._next():
            realtime, message = self._current()
            if until_ns and realtime * 1000 > until_ns:
                return batch, True
            if realtime * 1000 >= since_ns:
                batch.append(message)
        return batch, False

    def wait(self, timeout: float) -> None:
        with self._lock:
            if not self._closed:
                self.reader.wait(timeout)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.reader.close()


async def read_batches(
    cursor: JournalCursor, closed: threading.Event, varlink: str = VARLINK_PATH
) -> AsyncIterator[list[LogMessage]]:
    """Batches from ``cursor``; with follow, new entries until the logger closes (then what journald
    still had queued), or until the consumer stops iterating."""
    follow = cursor.config.follow
    try:
        while True:
            batch, passed_until = await asyncio.to_thread(cursor.drain)
            if batch:
                yield batch
            if passed_until:
                return
            if batch:
                continue
            if not follow:
                return
            if closed.is_set():
                # the container's last lines may still sit in journald's socket: have them stored
                follow = False
                await asyncio.to_thread(synchronize, varlink)
                continue
            await asyncio.to_thread(cursor.wait, FOLLOW_POLL)
    finally:
        # not on the loop: a step may still be running in a worker thread (a cancelled wait)
        threading.Thread(target=cursor.close, name="journal-reader-close", daemon=True).start()
