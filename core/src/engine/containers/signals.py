"""Signal names as Docker accepts them (``SIGTERM``, ``TERM``, ``15``, ``RTMIN+3``)."""

from __future__ import annotations

import signal

from engine.errors import InvalidParameter

SIGNALS: dict[str, int] = {s.name[3:]: int(s) for s in signal.Signals if s.name.startswith("SIG") and "_" not in s.name}
SIGNALS.update({"IOT": 6, "CLD": 17, "POLL": 29})
for _i in range(1, 16):
    SIGNALS[f"RTMIN+{_i}"] = signal.SIGRTMIN + _i
    SIGNALS[f"RTMAX-{_i}"] = signal.SIGRTMAX - _i
SIGNALS["RTMIN"] = signal.SIGRTMIN
SIGNALS["RTMAX"] = signal.SIGRTMAX

NAMES: dict[int, str] = {}
for _name, _num in SIGNALS.items():
    NAMES.setdefault(_num, _name)
NAMES.update({6: "ABRT", 17: "CHLD", 29: "IO"})


def parse(raw: str) -> int:
    """dockerd's signal.ParseSignal: a number (not 0) or a name with or without ``SIG``."""
    raw = raw.strip()
    if raw.isdigit():
        num = int(raw)
        if num == 0:
            raise InvalidParameter(f"Invalid signal: {raw}")
        if num > signal.SIGRTMAX:  # dockerd's ValidSignalForPlatform
            raise InvalidParameter(f"The linux daemon does not support signal {num}")
        return num
    key = raw.upper()
    if key.startswith("SIG"):
        key = key[3:]
    if key not in SIGNALS:
        raise InvalidParameter(f"Invalid signal: {raw}")
    return SIGNALS[key]


def name(num: int) -> str:
    return "SIG" + NAMES.get(num, str(num))
