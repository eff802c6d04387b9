"""``docker logs`` from the journal, as dockerd 20.10 reads it: the entries matching
``CONTAINER_ID_FULL=<id>``, with tail, since, until and follow.

Uses Debian's python3-systemd (``systemd.journal``, libsystemd's sd-journal). The journal API
blocks, so each step runs in a worker thread; one ``Reader`` is used by one step at a time.

A message's time is the time the container wrote it, from the entry's SYSLOG_TIMESTAMP (the same
time json-file stores); dockerd shows the journal's receive time (``__REALTIME_TIMESTAMP``), used
here only for entries without that field. The receive time is never earlier than the write time,
so seeking the journal to the receive time ``since`` skips nothing; ``since``, ``until`` and the
tail are then decided on the write times.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from engine.drivers.log import LogMessage, PartialMeta, ReadConfig
from engine.drivers.timefmt import parse_rfc3339nano
from engine_plugin_journald.fields import OWN_FIELDS

#: where journald answers varlink calls (systemd 248+); ``Synchronize`` returns once every entry
#: sent before the call is stored
VARLINK_PATH = "/run/systemd/journal/io.systemd.journal"
BATCH = 4096  # entries per step in a worker thread (fewer hops between the thread and the loop)
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


_ATTR_KEYS: dict[frozenset[str], tuple[str, ...]] = {}


def _attr_keys(entry: dict[str, Any]) -> tuple[str, ...]:
    """The entry's fields that are attributes: the entries of a container mostly have one set of
    fields, so the choice is made once per set (a per-entry scan was a quarter of a read's cost)."""
    fields = frozenset(entry)
    keys = _ATTR_KEYS.get(fields)
    if keys is None:
        if len(_ATTR_KEYS) > 256:
            _ATTR_KEYS.clear()
        keys = _ATTR_KEYS[fields] = tuple(k for k in entry if not k.startswith("_") and k not in OWN_FIELDS)
    return keys


_last_stamp: tuple[bytes, int] = (b"", 0)  # the lines of one read of the output share a time


def _stamp_ns(raw: bytes) -> int:
    global _last_stamp
    last = _last_stamp
    if last[0] == raw:
        return last[1]
    ns = parse_rfc3339nano(raw.decode())
    _last_stamp = (raw, ns)
    return ns


def to_message(entry: dict[str, Any], realtime_us: int | Callable[[], int]) -> LogMessage:
    """An entry as the message ``docker logs`` writes: the newline back unless it is a piece of a
    long line, the stream from PRIORITY, the extra fields as attributes (``--details``).
    ``realtime_us`` (or a function giving it, asked only when needed): the receive time."""
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
    attrs = {key: _value(entry[key]).decode(errors="replace") for key in _attr_keys(entry)}
    ns = 0
    if "SYSLOG_TIMESTAMP" in entry:
        try:
            ns = _stamp_ns(_value(entry["SYSLOG_TIMESTAMP"]))
        except ValueError:
            pass
    if not ns:
        ns = (realtime_us() if callable(realtime_us) else realtime_us) * 1000
    return LogMessage(line, source, ns / 1e9, ns, partial, attrs)


class JournalCursor:
    """An open journal positioned for one ``docker logs`` request."""

    def __init__(
        self, container_id: str, config: ReadConfig, directory: str | None = None, varlink: str = VARLINK_PATH
    ) -> None:
        journal = _journal_module()
        self.config = config
        self.varlink = varlink
        self.reader = journal.Reader(path=directory) if directory else journal.Reader()
        self.reader.add_match(CONTAINER_ID_FULL=container_id)
        self.pending: list[LogMessage] = []
        # sd-journal is not thread-safe: one step at a time, and close waits for the running one
        self._lock = threading.Lock()
        self._closed = False
        self._position()

    def _current(self) -> LogMessage:
        return to_message(self.reader._get_all(), self.reader._get_realtime)

    def _position(self) -> None:
        """The cheap part of the seek, done at once: with a tail, the journal's last entry now
        (the tail itself is read later, in a worker thread); else ``since`` or the start."""
        r, config = self.reader, self.config
        self._since_reached = not config.since_ns
        self._tail_cursor = ""
        # journald stores entries asynchronously: what was logged before this call must count
        # (dockerd waits for its last entry to show up in the journal for the same reason)
        self._synced = False
        if config.tail < 0:
            r.seek_head()
            if config.since_ns:
                r.seek_realtime(config.since_ns // 1000)
            return
        self._synced = synchronize(self.varlink, timeout=1.0)
        r.seek_tail()
        if not r._previous():
            # no entry yet: the tail is the head (a conceptual tail position would skip the
            # entries written before the first read, systemd#9934)
            r.seek_head()
        elif config.tail > 0:
            self._tail_cursor = r._get_cursor()

    def _take_tail(self) -> None:
        """The last ``tail`` messages written up to ``until``, stepping back from the entry that was
        last when reading began (not further than the entries received before ``since``); reading
        goes on after that entry."""
        r, config = self.reader, self.config
        since_us = config.since_ns // 1000
        newest, self._tail_cursor = self._tail_cursor, ""
        r.seek_cursor(newest)
        on_entry = r._next()
        back: list[LogMessage] = []
        while on_entry and len(back) < config.tail:
            if since_us and r._get_realtime() < since_us:
                break  # received before since, so written before it too
            message = self._current()
            if not (config.until_ns and message.time_ns > config.until_ns):
                back.append(message)
            on_entry = r._previous()
        back.reverse()
        self.pending = back
        r.seek_cursor(newest)
        r._next()

    def _admit(self, message: LogMessage) -> bool | None:
        """json-file's rules, which go by position: messages before the first one written at or
        after ``since`` are skipped (later ones are not, even when the clock went back), and
        reading stops at the first one written after ``until``. None: stop."""
        if not self._since_reached:
            if message.time_ns < self.config.since_ns:
                return False
            self._since_reached = True
        if self.config.until_ns and message.time_ns > self.config.until_ns:
            return None
        return True

    def drain(self, limit: int = BATCH) -> tuple[list[LogMessage], bool]:
        """The next messages (up to ``limit``) and whether ``until`` was passed."""
        with self._lock:
            if self._closed:
                return [], True
            return self._drain(limit)

    def _drain(self, limit: int) -> tuple[list[LogMessage], bool]:
        if not self._synced:
            self._synced = True
            synchronize(self.varlink)
        if self._tail_cursor:
            self._take_tail()
        batch: list[LogMessage] = []
        while self.pending and len(batch) < limit:
            message = self.pending.pop(0)
            admit = self._admit(message)
            if admit is None:
                self.pending = []
                return batch, True
            if admit:
                batch.append(message)
        while len(batch) < limit and self.reader._next():
            message = self._current()
            admit = self._admit(message)
            if admit is None:
                return batch, True
            if admit:
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


async def read_batches(cursor: JournalCursor, closed: threading.Event) -> AsyncIterator[list[LogMessage]]:
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
                await asyncio.to_thread(synchronize, cursor.varlink)
                continue
            await asyncio.to_thread(cursor.wait, FOLLOW_POLL)
    finally:
        # not on the loop: a step may still be running in a worker thread (a cancelled wait)
        threading.Thread(target=cursor.close, name="journal-reader-close", daemon=True).start()
