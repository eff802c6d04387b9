"""The syslog line formats and framings dockerd 20.10 sends (its srslog fork).

``syslog-format``:

- ``unix`` (dockerd: empty, the default): ``<PRI>Mmm _d hh:mm:ss TAG[PID]: MSG``, no hostname;
- ``rfc3164``: ``<PRI>Mmm _d hh:mm:ss HOST TAG[PID]: MSG``;
- ``rfc5424``: ``<PRI>1 RFC3339 HOST TAG PID TAG - MSG`` (the tag is the APP-NAME, as rsyslog
  fills ``%syslogtag%`` from it, and the MSGID);
- ``rfc5424micro``: the same with microseconds in the timestamp.

Every message ends with a newline (srslog appends one when it is missing). Over ``tcp+tls`` the
rfc5424 formats are framed with octet counting (RFC 5425: ``LEN SP MSG``, LEN counting the
newline too); everything else goes unframed. Timestamps are local time, as Go's ``time.Now()``;
engine stamps the time the container wrote the line rather than the time of sending.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

from engine.drivers import timefmt

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SECURE_PROTO = "tcp+tls"

#: (priority, hostname, tag, timestamp in seconds, content) -> message bytes
Formatter = Callable[[int, str, str, float, bytes], bytes]
Framer = Callable[[bytes], bytes]


def _local(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp).astimezone()


def stamp(timestamp: float) -> str:
    """Go's ``time.Stamp`` ("Jan _2 15:04:05"): English month, day padded with a space."""
    t = _local(timestamp)
    return f"{MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}"


def rfc3339(timestamp: float, micro: bool = False) -> str:
    """Go's ``time.RFC3339`` ("2006-01-02T15:04:05Z07:00"), or with ".000000" when ``micro``, in
    the local zone (by engine.drivers.timefmt; the time is rounded to the microsecond)."""
    whole = int(timestamp)
    micros = round((timestamp - whole) * 1e6)
    whole, micros = whole + micros // 1_000_000, micros % 1_000_000
    text = timefmt.rfc3339(whole * 1_000_000_000, local=True)
    return f"{text[:19]}.{micros:06d}{text[19:]}" if micro else text


def unix_format(priority: int, hostname: str, tag: str, timestamp: float, content: bytes) -> bytes:
    return f"<{priority}>{stamp(timestamp)} {tag}[{os.getpid()}]: ".encode() + content


def rfc3164_format(priority: int, hostname: str, tag: str, timestamp: float, content: bytes) -> bytes:
    return f"<{priority}>{stamp(timestamp)} {hostname} {tag}[{os.getpid()}]: ".encode() + content


def rfc5424_format(priority: int, hostname: str, tag: str, timestamp: float, content: bytes) -> bytes:
    return f"<{priority}>1 {rfc3339(timestamp)} {hostname} {tag} {os.getpid()} {tag} - ".encode() + content


def rfc5424micro_format(priority: int, hostname: str, tag: str, timestamp: float, content: bytes) -> bytes:
    return f"<{priority}>1 {rfc3339(timestamp, True)} {hostname} {tag} {os.getpid()} {tag} - ".encode() + content


def no_framing(message: bytes) -> bytes:
    return message


def octet_counting(message: bytes) -> bytes:
    """RFC 5425 framing: the length in bytes, a space, the message."""
    return b"%d %s" % (len(message), message)


FORMATS: dict[str, Formatter] = {
    "": unix_format,
    "unix": unix_format,
    "rfc3164": rfc3164_format,
    "rfc5424": rfc5424_format,
    "rfc5424micro": rfc5424micro_format,
}


def parse_format(name: str, proto: str) -> tuple[Formatter, Framer]:
    """The formatter and framer for ``syslog-format`` over ``proto``.

    :raises ValueError: "Invalid syslog format", dockerd's message.
    """
    try:
        formatter = FORMATS[name]
    except KeyError:
        raise ValueError("Invalid syslog format") from None
    framer = octet_counting if proto == SECURE_PROTO and name.startswith("rfc5424") else no_framing
    return formatter, framer


def message(
    formatter: Formatter, framer: Framer, priority: int, hostname: str, tag: str, ts: float, line: bytes
) -> bytes:
    """One framed message; the content gets its newline as srslog adds it."""
    if not line.endswith(b"\n"):
        line += b"\n"
    return framer(formatter(priority, hostname, tag, ts, line))


class Encoder:
    """:func:`message` for one driver, fast: a message's header (all before the content) depends
    only on the priority and the timestamp, to the second except in ``rfc5424micro``; the lines of
    one read of the container's output share a timestamp, so headers are built once per stream
    and second (or timestamp) instead of once per line (the cost of the syslog driver was the
    local-time conversion and ``getpid`` per line)."""

    MAX_CACHED = 64

    def __init__(self, formatter: Formatter, framer: Framer, hostname: str, tag: str) -> None:
        self.formatter = formatter
        self.framer = None if framer is no_framing else framer
        self.hostname = hostname
        self.tag = tag
        self.exact = formatter is rfc5424micro_format  # the header shows microseconds
        self._headers: dict[tuple[int, float], bytes] = {}

    def header(self, priority: int, ts: float) -> bytes:
        key = (priority, ts if self.exact else float(int(ts)))
        header = self._headers.get(key)
        if header is None:
            if len(self._headers) >= self.MAX_CACHED:
                self._headers.clear()
            header = self._headers[key] = self.formatter(priority, self.hostname, self.tag, ts, b"")
        return header

    def encode(self, priority: int, ts: float, line: bytes) -> bytes:
        """The same bytes as :func:`message` gives."""
        data = self.header(priority, ts) + line
        if not line.endswith(b"\n"):
            data += b"\n"
        return data if self.framer is None else self.framer(data)
