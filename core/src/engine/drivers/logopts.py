"""Log options every driver takes.

dockerd handles ``mode`` and ``max-buffer-size`` (the copier's buffering) and the dual-logging
``cache-*`` options itself, before the driver's own validator sees the rest
(moby's ``logger.ValidateLogOpts``). Error texts are dockerd's.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.drivers.strconv import atoi, parse_bool
from engine.drivers.units import ram_in_bytes
from engine.errors import InvalidParameter

__all__ = [
    "BLOCKING",
    "BUILTIN_OPTIONS",
    "CACHE_COMPRESS",
    "CACHE_DISABLED",
    "CACHE_MAX_FILE",
    "CACHE_MAX_SIZE",
    "CACHE_OPTIONS",
    "DEFAULT_MAX_BUFFER_SIZE",
    "NON_BLOCKING",
    "check_builtin_options",
    "copier_mode",
    "driver_options",
]

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
            if atoi(options[CACHE_MAX_FILE]) < 1:
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
