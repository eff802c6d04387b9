"""Entry points by group, scanned once per process.

Each ``importlib.metadata.entry_points(group=...)`` call reads and parses the ``entry_points.txt``
of every installed distribution (~70 with the system site-packages here, 3-7 ms a call), and a
daemon start asked ~15 times (plugins, each registry's names() and load(), stevedore's own scan).
Here the scan happens once and is kept while ``sys.path`` and its directories stay the same
(modification time and link count: a ``*.dist-info`` directory added or removed, as ``pip
install`` does) and until ``importlib.invalidate_caches()``, which also resets importlib.metadata's
own directory caches (tests that make throwaway distributions call it).
"""

from __future__ import annotations

import os
import sys
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

_lock = threading.Lock()
_key: tuple[tuple[str, int, int], ...] | None = None
_scan: Any = None  # what entry_points() returned: SelectableGroups (3.11) or EntryPoints
_groups: dict[str, tuple[EntryPoint, ...]] = {}


def _path_key() -> tuple[tuple[str, int, int], ...]:
    key = []
    for entry in sys.path:
        try:
            st = os.stat(entry or ".")
        except OSError:
            key.append((entry, -1, -1))
        else:
            key.append((entry, st.st_mtime_ns, st.st_nlink))
    return tuple(key)


class _ScanInvalidator:
    """On ``sys.meta_path`` (as importlib.metadata's own finder is) only to hear
    ``importlib.invalidate_caches()``; it finds no modules."""

    @staticmethod
    def find_spec(*_args: Any) -> None:
        return None

    @staticmethod
    def invalidate_caches() -> None:
        global _scan
        _scan = None


sys.meta_path.append(_ScanInvalidator)


def group(name: str) -> tuple[EntryPoint, ...]:
    """``entry_points(group=name)``, from the per-process scan."""
    global _key, _scan
    key = _path_key()
    with _lock:
        if key != _key or _scan is None:
            _scan = entry_points()
            _groups.clear()
            _key = key
        found = _groups.get(name)
        if found is None:
            found = _groups[name] = tuple(_scan.select(group=name))
        return found
