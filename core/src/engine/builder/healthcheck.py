"""HEALTHCHECK flags (Go durations) and dockerd's commit message for it."""

from __future__ import annotations

import json

from engine.builder.context import BuildError
from engine.drivers.duration import format_duration, parse_duration


def flag_duration(flags: dict[str, str], name: str) -> int:
    raw = flags.get(name, "")
    if not raw:
        return 0
    try:
        value = parse_duration(raw)
    except ValueError as exc:  # Go's 'time: invalid duration "x"'
        raise BuildError(str(exc)) from None
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
