"""Human sizes as dockerd reads and prints them (github.com/docker/go-units), with go-units' error text.

Two parsers on purpose, as in dockerd: ``RAMInBytes`` counts in binary multiples (``1m`` is 1,048,576)
and serves most size options (default-shm-size, storage and volume sizes, max-buffer-size, the log
cache's max-size); ``FromHumanSize`` counts in decimal ones (``10m`` is 10,000,000) and serves
json-file's max-size. Both read the same text: ``1024``, ``64m``, ``1.5 GiB``...
"""

from __future__ import annotations

import re

_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = "kmgtp"

__all__ = ["bytes_size", "from_human_size", "parse_size", "ram_in_bytes"]


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


def ram_in_bytes(text: str) -> int:
    """go-units ``RAMInBytes``: binary multiples."""
    return _parse_size(text, 1024)


def from_human_size(text: str) -> int:
    """go-units ``FromHumanSize``: decimal multiples."""
    return _parse_size(text, 1000)


def parse_size(value: str | int) -> int:
    """A size option as daemon.json and ``--storage-opt``/``-o size=`` give it: an int is already
    bytes, text is read by :func:`ram_in_bytes` (binary multiples, ``64m``, ``1.5g``, ``1024``)."""
    return value if isinstance(value, int) else ram_in_bytes(value)


def bytes_size(size: float) -> str:
    """go-units ``BytesSize``: ``"%.4g"`` with binary units (``1.5GiB``)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{units[i]}"
