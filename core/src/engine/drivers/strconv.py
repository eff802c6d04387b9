"""Go's strconv parsers, as dockerd reads flags and options with them, with Go's error texts.

Which one applies is dockerd's choice per option: pflag's int flags take ``ParseInt(s, 0, 64)``
(``0x10``, ``010``), ulimits ``ParseInt(s, 10, 64)``, log options such as max-file ``Atoi``.
"""

from __future__ import annotations

import re

__all__ = ["atoi", "parse_bool", "parse_int"]


def parse_bool(text: str) -> bool:
    """``strconv.ParseBool``: exactly 1 t T TRUE true True, or 0 f F FALSE false False."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _decimal(text: str, func: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f'strconv.{func}: parsing "{text}": invalid syntax')
    return int(text)


def atoi(text: str) -> int:
    """``strconv.Atoi``: decimal, optional sign."""
    return _decimal(text, "Atoi")


def parse_int(text: str, base: int = 0) -> int:
    """``strconv.ParseInt(text, base, 64)`` for base 10 or 0 (0: Go's literal syntax, decimal, 0x hex,
    0o/0 octal, 0b binary, underscores between digits)."""
    if base == 10:
        return _decimal(text, "ParseInt")
    cleaned = text.replace("_", "") if re.fullmatch(r"[+-]?(0[xXoObB])?[0-9a-fA-F]+(_[0-9a-fA-F]+)*", text) else text
    try:
        if re.fullmatch(r"[+-]?0[0-7]+", cleaned):
            return int(cleaned, 8)
        return int(cleaned, 0)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None
