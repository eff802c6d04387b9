"""Go's RFC 3339 timestamps: the one formatter and parser of engine, fast enough for log lines.

json-file stores ``time.RFC3339Nano`` (fraction with trailing zeros trimmed, no fraction when it
is zero); ``docker logs -t`` prints ``RFC3339NanoFixed`` (always nine digits); the API shows
RFC3339Nano in UTC (containers, images) or in the daemon's local zone (networks' ``Created``,
``docker cp`` mtimes, volumes' ``CreatedAt`` without fraction, the system time), ``Z`` when the
offset is zero, as Go prints it. Times are nanoseconds since the epoch. Formatting caches the
date-and-time part of the current second, because consecutive log lines almost always share it.
"""

from __future__ import annotations

import calendar
import time

__all__ = [
    "ZERO_NS",
    "ZERO_TIME",
    "parse_rfc3339nano",
    "parse_unix_timestamp",
    "rfc3339",
    "rfc3339nano",
    "rfc3339nano_fixed",
]

_NS = 1_000_000_000

#: Go's zero ``time.Time`` (year 1), as it marshals and in nanoseconds since the epoch
ZERO_TIME = "0001-01-01T00:00:00Z"
ZERO_NS = -62135596800 * _NS


def _date_time(tm: time.struct_time) -> str:
    # not strftime: glibc prints year 1 as "1", Go as "0001"
    return f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"


class _SecondCache:
    """The last formatted UTC second, as one tuple so that threads (one copier per container)
    replace it atomically."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[int, str] = (-1, "")

    def get(self, second: int) -> str:
        last = self.last
        if last[0] != second:
            last = (second, _date_time(time.gmtime(second)))
            self.last = last
        return last[1]


_format_cache = _SecondCache()


def _local(second: int) -> tuple[str, str]:
    """Date-and-time and zone (``Z`` or ``+hh:mm``) of a second in the daemon's local zone."""
    tm = time.localtime(second)
    offset = tm.tm_gmtoff or 0
    if not offset:
        return _date_time(tm), "Z"
    sign = "+" if offset > 0 else "-"
    minutes = abs(offset) // 60
    return _date_time(tm), f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def rfc3339nano(ns: int, *, local: bool = False) -> str:
    """``2026-01-02T03:04:05.1234Z``: Go's ``time.RFC3339Nano``, in UTC or (``local``) in the
    daemon's zone (``2026-01-02T04:04:05.1234+01:00``)."""
    second, frac = divmod(ns, _NS)
    if local:
        prefix, zone = _local(second)
    else:
        prefix, zone = _format_cache.get(second), "Z"
    if frac == 0:
        return prefix + zone
    return f"{prefix}.{frac:09d}".rstrip("0") + zone


def rfc3339nano_fixed(ns: int) -> str:
    """``2026-01-02T03:04:05.123400000Z`` as moby's ``jsonmessage.RFC3339NanoFixed`` in UTC."""
    second, frac = divmod(ns, _NS)
    return f"{_format_cache.get(second)}.{frac:09d}Z"


def rfc3339(ns: int, *, local: bool = False) -> str:
    """``2026-01-02T03:04:05Z``: Go's ``time.RFC3339`` (whole seconds), in UTC or the local zone."""
    second = ns // _NS
    if local:
        prefix, zone = _local(second)
        return prefix + zone
    return _format_cache.get(second) + "Z"


_parse_cache: dict[str, int] = {}


def parse_rfc3339nano(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (any fraction length, ``Z`` or ``±hh:mm``).

    :raises ValueError: not an RFC 3339 time.
    """
    head = text[:19]  # YYYY-MM-DDTHH:MM:SS
    base = _parse_cache.get(head)
    if base is None:
        if len(head) != 19 or head[4] != "-" or head[10] not in "Tt" or head[13] != ":":
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        parsed = time.strptime(head, "%Y-%m-%dT%H:%M:%S")
        base = calendar.timegm(parsed)
        if len(_parse_cache) > 4096:
            _parse_cache.clear()
        _parse_cache[head] = base
    rest = text[19:]
    if rest[-1:] == "Z" and rest[:1] == "." and rest[1:-1].isdigit() and len(rest) <= 11:
        return base * _NS + int(rest[1:-1].ljust(9, "0"))  # the common UTC form, fast
    frac = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits:
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        frac = int((digits + "000000000")[:9])
        rest = rest[end:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return (base - offset) * _NS + frac


def parse_unix_timestamp(text: str) -> int:
    """Docker's ``since``/``until`` query form, ``<seconds>[.<fraction>]`` (moby's timetypes
    ``ParseTimestamps``), in nanoseconds.

    :raises ValueError: with Go's ``strconv.ParseInt`` wording.
    """
    seconds, dot, fraction = text.partition(".")

    def parse(part: str) -> int:
        stripped = part[1:] if part[:1] in "+-" else part
        if not stripped.isdigit() or not stripped.isascii():
            raise ValueError(f'strconv.ParseInt: parsing "{part}": invalid syntax')
        return int(part)

    value = parse(seconds) * _NS
    if dot:
        digits = parse(fraction)
        value += digits * 10 ** (9 - len(fraction)) if len(fraction) <= 9 else digits // 10 ** (len(fraction) - 9)
    return value
