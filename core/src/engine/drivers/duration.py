"""Go's ``time.Duration`` as text: ``time.ParseDuration`` and ``Duration.String``, in nanoseconds.

Docker reads durations this way everywhere (HEALTHCHECK flags, ``--change``, ``until`` filters,
driver options) and prints them the same way (``1m30s``, ``500ms``).
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` (``1h30m``, ``1.5s``, ``-2m``, ``0``), in nanoseconds.

    :raises ValueError: ``time: invalid duration "<text>"``.
    """
    if text == "0":
        return 0
    pos = 0
    total = 0.0
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        pos = 1
    if pos == len(text):  # "" or a lone sign
        raise ValueError(f'time: invalid duration "{text}"')
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * int(total)


def format_duration(ns: int) -> str:
    """Go's ``Duration.String()``: ``0s``, ``500ms``, ``1.5s``, ``1m30s``, ``2h0m0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = _trim(rest / 10**9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"
