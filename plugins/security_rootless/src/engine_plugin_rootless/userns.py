"""What a daemon running in a user namespace (RootlessKit's) can and cannot do."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the host's (runc's RunningInUserNS)."""
    try:
        fields = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return fields != ["0", "0", "4294967295"]


def cgroups_writable() -> bool:
    """Whether containers can get cgroups here: a cgroup v1 hierarchy (the memory one stands for
    them) or the cgroup v2 root must be writable; RootlessKit without systemd delegation has neither."""
    for candidate in (CGROUP_ROOT / "memory", CGROUP_ROOT):
        if (candidate / "cgroup.procs").exists():
            return os.access(candidate, os.W_OK)
    return False


def current_oom_score_adj() -> int:
    try:
        return int(Path("/proc/self/oom_score_adj").read_text())
    except (OSError, ValueError):
        return 0
