"""HEALTHCHECK flags (Go durations) and dockerd's commit message for it."""

from __future__ import annotations

import json
import re

from engine.builder.context import BuildError

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds."""
    if text in ("0", ""):
        return 0
    pos = 0
    total = 0.0
    sign = 1
    if text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        pos = 1
    if pos == len(text):
        raise ValueError(text)
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError(text)
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * int(total)


def format_duration(ns: int) -> str:
    """Go's Duration.String()."""
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


def flag_duration(flags: dict[str, str], name: str) -> int:
    raw = flags.get(name, "")
    if not raw:
        return 0
    try:
        value = parse_duration(raw)
    except ValueError:
        raise BuildError(f'time: invalid duration "{raw}"') from None
    if value < 1_000_000:
        raise BuildError(f'Interval "{name}" cannot be less than 1ms')
    return value


def commit_message(health: dict) -> str:
    """``HEALTHCHECK %q`` of the Go struct pointer, as dockerd writes it into the history."""
    test = " ".join(json.dumps(t, ensure_ascii=False) for t in health.get("Test") or [])
    durations = " ".join(
        '"' + format_duration(int(health.get(k) or 0)) + '"' for k in ("Interval", "Timeout", "StartPeriod")
    )
    retries = int(health.get("Retries") or 0)
    char = chr(retries) if 0x20 <= retries < 0x7F and retries != 0x27 else f"\\x{retries:02x}"
    return f"HEALTHCHECK &{{[{test}] {durations} '{char}'}}"
