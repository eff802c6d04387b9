"""Log options every driver takes, and go-units' size parsing.

dockerd handles ``mode`` and ``max-buffer-size`` (the copier's buffering) and the dual-logging
``cache-*`` options itself, before the driver's own validator sees the rest
(moby's ``logger.ValidateLogOpts``). Error texts are dockerd's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.errors import InvalidParameter

BLOCKING, NON_BLOCKING = "blocking", "non-blocking"
DEFAULT_MAX_BUFFER_SIZE = 1_000_000  # moby's ring buffer default (1e6 bytes)

#: dual logging (20.10): options of the local cache that serves ``docker logs`` for drivers
#: that cannot read back; defaults as dockerd's ``local`` driver
CACHE_DISABLED, CACHE_MAX_SIZE, CACHE_MAX_FILE, CACHE_COMPRESS = (
    "cache-disabled",
    "cache-max-size",
    "cache-max-file",
    "cache-compress",
)
CACHE_OPTIONS = (CACHE_DISABLED, CACHE_MAX_SIZE, CACHE_MAX_FILE, CACHE_COMPRESS)
BUILTIN_OPTIONS = frozenset({"mode", "max-buffer-size", *CACHE_OPTIONS})

_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = "kmgtp"


def _parse_size(text: str, base: int) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"invalid size: '{text}'")
    try:
        number = float(match.group(1))
    except ValueError:  # "1.2.3" passes the pattern, as in go-units, but is no number
        raise ValueError(f"invalid size: '{text}'") from None
    unit = match.group(2)
    if unit:
        number *= base ** (_UNITS.index(unit.lower()) + 1)
    return int(number)


def from_human_size(text: str) -> int:
    """go-units ``FromHumanSize``: decimal units (``10m`` is 10,000,000), as json-file's max-size."""
    return _parse_size(text, 1000)


def ram_in_bytes(text: str) -> int:
    """go-units ``RAMInBytes``: binary units (``1m`` is 1,048,576), as max-buffer-size and local's max-size."""
    return _parse_size(text, 1024)


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def parse_int(text: str) -> int:
    """Go's ``strconv.Atoi`` (decimal, optional sign)."""
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def check_builtin_options(options: Mapping[str, str]) -> None:
    mode = options.get("mode", "")
    if mode not in ("", BLOCKING, NON_BLOCKING):
        raise InvalidParameter(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in options:
        if mode != NON_BLOCKING:
            raise InvalidParameter(f"logger: max-buffer-size option is only supported with 'mode={NON_BLOCKING}'")
        try:
            ram_in_bytes(options["max-buffer-size"])
        except ValueError as exc:
            raise InvalidParameter(f"error parsing option max-buffer-size: {exc}") from None
    for key, check in ((CACHE_DISABLED, parse_bool), (CACHE_COMPRESS, parse_bool)):
        if options.get(key, "") != "":
            try:
                check(options[key])
            except ValueError:
                raise InvalidParameter(f"invalid value for option {key}: {options[key]}") from None
    if CACHE_MAX_SIZE in options:
        try:
            if ram_in_bytes(options[CACHE_MAX_SIZE]) <= 0:
                raise ValueError
        except ValueError:
            raise InvalidParameter(f"invalid value for option {CACHE_MAX_SIZE}: {options[CACHE_MAX_SIZE]}") from None
    if CACHE_MAX_FILE in options:
        try:
            if parse_int(options[CACHE_MAX_FILE]) < 1:
                raise ValueError
        except ValueError:
            raise InvalidParameter(f"invalid value for option {CACHE_MAX_FILE}: {options[CACHE_MAX_FILE]}") from None


def driver_options(options: Mapping[str, str]) -> dict[str, str]:
    """Check the built-in options and return the others (the driver's own)."""
    check_builtin_options(options)
    return {k: v for k, v in options.items() if k not in BUILTIN_OPTIONS}


def copier_mode(options: Mapping[str, str]) -> tuple[str, int]:
    """(mode, max buffer bytes) for the copier, from validated options."""
    mode = options.get("mode") or BLOCKING
    size = options.get("max-buffer-size")
    return mode, ram_in_bytes(size) if size else DEFAULT_MAX_BUFFER_SIZE
