"""Throwaway installed distributions for tests: a ``*.dist-info`` directory (METADATA and
entry_points.txt) plus modules, in a directory the test puts on ``sys.path``/``PYTHONPATH``.

importlib.metadata (and so stevedore and our registries) finds these exactly as it finds a
``pip install``-ed distribution: the entry points are real, not patched.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path


def make_dist(
    site: Path,
    name: str,
    entry_points: Mapping[str, Mapping[str, str]],
    modules: Mapping[str, str] | None = None,
    version: str = "0.1.0",
) -> Path:
    """Create distribution ``name`` in ``site``; ``modules`` maps a relative file path to its source."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{ep} = {target}" for ep, target in eps.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    for relpath, source in (modules or {}).items():
        path = site / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    importlib.invalidate_caches()
    return info


def forget_modules(*prefixes: str) -> None:
    """Drop imported test modules so the next test imports its own version."""
    for mod in list(sys.modules):
        if mod.startswith(prefixes):
            del sys.modules[mod]
