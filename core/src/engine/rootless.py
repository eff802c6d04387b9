"""Rootless mode's facts about this process, as dockerd's ``rootless`` package: whether engined runs
under RootlessKit, and the per-user default paths it then uses (dockerd's getDefaultPaths).

Read once from the environment at import: RootlessKit sets ``ROOTLESSKIT_STATE_DIR`` for its child.
"""

from __future__ import annotations

import os
from pathlib import Path


def running_with_rootlesskit() -> bool:
    """Whether RootlessKit started this process (dockerd's RunningWithRootlessKit)."""
    return bool(os.environ.get("ROOTLESSKIT_STATE_DIR"))


def _runtime_dir() -> Path:
    return Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")


def _home() -> Path:
    return Path(os.environ.get("HOME") or os.path.expanduser("~"))


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else _home() / fallback


def data_root() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "engine"


def exec_root() -> Path:
    return _runtime_dir() / "engine"


def pidfile() -> Path:
    return _runtime_dir() / "engine.pid"


def socket_path() -> Path:
    return _runtime_dir() / "engine.sock"


def config_file() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "engine" / "daemon.json"


#: evaluated once: the defaults of a process started by RootlessKit are the per-user ones
ROOTLESSKIT = running_with_rootlesskit()
