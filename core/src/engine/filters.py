"""Docker's ``filters`` query parameter: ``{"key": {"value": true}}`` (or the old ``{"key": ["value"]}``),
and the time values its ``until`` filters take."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping

from engine.drivers.duration import parse_duration
from engine.drivers.timefmt import parse_rfc3339nano, parse_unix_timestamp
from engine.errors import InvalidParameter


class Filters:
    def __init__(self, values: Mapping[str, set[str]] | None = None) -> None:
        self.values: dict[str, set[str]] = {k: set(v) for k, v in (values or {}).items()}

    @classmethod
    def parse(cls, raw: str | None, allowed: Iterable[str] | None = None) -> Filters:
        """Parse and check the keys; an unknown key is Docker's 400 "Invalid filter 'key'"."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidParameter(f"invalid filter: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidParameter("invalid filter: expected a JSON object")
        values: dict[str, set[str]] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                values[key] = {k for k, on in value.items() if on}
            elif isinstance(value, list):
                values[key] = {str(v) for v in value}
            else:
                raise InvalidParameter(f"invalid filter: bad value for {key!r}")
        allowed_set = set(allowed) if allowed is not None else None
        if allowed_set is not None:
            for key in values:
                if key not in allowed_set:
                    raise InvalidParameter(f"Invalid filter '{key}'")
        return cls(values)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str) -> set[str]:
        return self.values.get(key, set())

    def bool_value(self, key: str) -> bool | None:
        """A filter like ``dangling=true``; raises 400 for values other than true/false/1/0."""
        vals = self.get(key)
        if not vals:
            return None
        out = set()
        for v in vals:
            if v.lower() in ("true", "1"):
                out.add(True)
            elif v.lower() in ("false", "0"):
                out.add(False)
            else:
                raise InvalidParameter(f"Invalid filter '{key}={v}'")
        if len(out) > 1:
            return None
        return out.pop()

    def match_any(self, key: str, candidates: Iterable[str]) -> bool:
        """True when ``key`` is not filtered, or one of ``candidates`` equals a filter value."""
        vals = self.get(key)
        if not vals:
            return True
        return any(c in vals for c in candidates)

    def match_labels(self, labels: Mapping[str, str], key: str = "label") -> bool:
        """Every ``label`` filter (``k`` or ``k=v``) must match; ``label!`` filters must not."""
        for want in self.get(key):
            k, sep, v = want.partition("=")
            if k not in labels or (sep and labels[k] != v):
                return False
        for want in self.get(key + "!"):
            k, sep, v = want.partition("=")
            if k in labels and (not sep or labels[k] == v):
                return False
        return True


def timestamp_ns(value: str, now_ns: int | None = None) -> int:
    """A time filter value (``until`` of the prunes) as moby's ``timetypes.GetTimestamp`` reads it, in
    nanoseconds: a Go duration back from now (``10m``, ``1h30m``), an RFC 3339 time or a prefix of
    one (``2006-01-02``, ``2006-01-02T15``, ``2006-01-02T15:04``...; in the daemon's local zone when
    it names none), or unix seconds with an optional fraction.

    :raises InvalidParameter: ``failed to parse value as time or duration: "<value>"``.
    """
    now = time.time_ns() if now_ns is None else now_ns
    if value != "0":
        try:
            return now - parse_duration(value)
        except ValueError:
            pass
    try:
        return _go_time_ns(value)
    except ValueError:
        pass
    if "-" not in value:  # not time-like: unix seconds
        try:
            return parse_unix_timestamp(value)
        except ValueError:
            pass
    raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')


_TIME_PREFIX = re.compile(r"(\d{4}-\d\d-\d\d)(?:[Tt](\d\d)(?::(\d\d)(?::(\d\d)(\.\d+)?)?)?)?([Zz]|[+-]\d\d:\d\d)?")


def _go_time_ns(value: str) -> int:
    """An RFC 3339 time or date prefix (moby's layouts); no zone means the local zone."""
    m = _TIME_PREFIX.fullmatch(value)
    if m is None:
        raise ValueError(value)
    date, hour, minute, second, frac, zone = m.groups()
    text = f"{date}T{hour or '00'}:{minute or '00'}:{second or '00'}{frac or ''}{zone or 'Z'}"
    ns = parse_rfc3339nano(text)
    if zone is None:  # local wall time: shift by the zone's offset at that moment
        ns -= (time.localtime(ns // 1_000_000_000).tm_gmtoff or 0) * 1_000_000_000
    return ns
