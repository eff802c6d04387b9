"""Facts about the host engine runs on: OS release, memory, cgroup version, CPU architecture.

``GET /version`` and ``GET /info`` (engine.api.info) report them; container stats use the memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def os_release() -> dict[str, str]:
    out = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key] = value.strip().strip('"')
    except OSError:
        pass
    return out


def mem_total() -> int:
    """The machine's memory in bytes (/proc/meminfo MemTotal); 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cgroup_version() -> str:
    """ "2" only on a pure cgroup2 host; hybrid hosts (like these machines) are v1 to dockerd."""
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


def host_fields() -> dict[str, Any]:
    """The host as ``GET /info`` describes it; the metrics' ``engine_daemon_engine_info``, ``_cpus``
    and ``_memory`` families are read from this same dict, so the two never disagree."""
    import os
    import platform

    uname = platform.uname()
    osr = os_release()
    return {
        "KernelVersion": uname.release,
        "OperatingSystem": osr.get("PRETTY_NAME", "Linux"),
        "OSVersion": osr.get("VERSION_ID", ""),
        "OSType": "linux",
        "Architecture": uname.machine,
        "NCPU": os.cpu_count() or 1,
        "MemTotal": mem_total(),
    }
