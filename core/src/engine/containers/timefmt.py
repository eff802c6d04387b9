"""Container times as the Docker API shows them: 0 is "unset" (Go's zero time), and human durations.

The RFC 3339 formatting and parsing itself is the SDK's :mod:`engine.drivers.timefmt`.
"""

from __future__ import annotations

import time

from engine.drivers import timefmt as log_time
from engine.drivers.timefmt import ZERO_TIME


def now_ns() -> int:
    return time.time_ns()


def rfc3339nano(ns: int) -> str:
    """``2026-11-28T21:35:21.58592846Z`` (Go's RFC3339Nano: trailing zeros of the fraction trimmed);
    unset times (0) are Go's zero time."""
    return log_time.rfc3339nano(ns) if ns > 0 else ZERO_TIME


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch; the zero time (or garbage) is 0."""
    if not text or text.startswith("0001-01-01"):
        return 0
    try:
        return log_time.parse_rfc3339nano(text)
    except ValueError:
        return 0


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
