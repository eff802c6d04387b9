"""The subsystems a daemon runs, in start order (stopped in reverse)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.daemon import Daemon


def make_subsystems(daemon: Daemon) -> list[Any]:
    return []
