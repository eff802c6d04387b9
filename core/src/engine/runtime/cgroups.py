"""cgroup v1 (hybrid) paths, raw statistics and cleanup for a container's ``cgroupsPath``.

runc with the cgroupfs driver puts an absolute ``cgroupsPath`` ("/engine/<id>") under the root of
every v1 hierarchy. It removes the leaf on delete but never the parents, so we rmdir those.
"""

from __future__ import annotations

import contextlib
import os
import time
from functools import cache
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")


@cache
def hierarchies() -> dict[str, Path]:
    """Controller name -> mount point of its v1 hierarchy (``name=systemd`` as "systemd")."""
    found: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = right.split()
        if len(fields) < 3 or fields[0] != "cgroup":
            continue
        mount_point = Path(left.split()[4])
        for opt in fields[2].split(","):
            if opt.startswith("name="):
                found.setdefault(opt[5:], mount_point)
            elif opt not in ("rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children"):
                found.setdefault(opt, mount_point)
    return found


@cache
def all_mounts() -> tuple[Path, ...]:
    """Every cgroup hierarchy runc creates directories in: the v1 ones and, on a hybrid host, the
    cgroup2 mount (/sys/fs/cgroup/unified), where runc makes the container's directory too."""
    found = set(hierarchies().values())
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                found.add(Path(left.split()[4]))
    except OSError:
        pass
    return tuple(sorted(found))


def cgroup_dir(controller: str, cgroups_path: str) -> Path | None:
    mount = hierarchies().get(controller)
    if mount is None:
        return None
    return mount / cgroups_path.lstrip("/")


def oom_control_file(cgroups_path: str) -> Path | None:
    d = cgroup_dir("memory", cgroups_path)
    return d / "memory.oom_control" if d is not None else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_int(path: Path) -> int | None:
    """A cgroup file holding one number (None: unreadable, e.g. the container is gone)."""
    text = _read(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def read_kv(path: Path) -> dict[str, int]:
    """A cgroup file of ``key value`` lines (``cpuacct.stat``, ``memory.stat``)."""
    out = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def read_blkio(path: Path) -> list[dict[str, Any]]:
    """``major:minor op value`` lines (the ``Total`` line dropped), as Docker's BlkioStatEntry."""
    entries = []
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        with contextlib.suppress(ValueError):
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return entries


def stats(cgroups_path: str) -> dict[str, Any]:
    """Raw numbers from the container's cgroups (None where a file is missing). engine.containers.stats shapes them into
    Docker's stats JSON."""
    mem = cgroup_dir("memory", cgroups_path)
    cpuacct = cgroup_dir("cpuacct", cgroups_path)
    cpu = cgroup_dir("cpu", cgroups_path)
    pids = cgroup_dir("pids", cgroups_path)
    blkio = cgroup_dir("blkio", cgroups_path)
    out: dict[str, Any] = {"read_ns": time.time_ns()}
    if mem is not None:
        out["memory"] = {
            "usage": read_int(mem / "memory.usage_in_bytes"),
            "max_usage": read_int(mem / "memory.max_usage_in_bytes"),
            "limit": read_int(mem / "memory.limit_in_bytes"),
            "failcnt": read_int(mem / "memory.failcnt"),
            "stat": read_kv(mem / "memory.stat"),
            "oom_control": read_kv(mem / "memory.oom_control"),
        }
    if cpuacct is not None:
        percpu = (_read(cpuacct / "cpuacct.usage_percpu") or "").split()
        out["cpuacct"] = {
            "usage": read_int(cpuacct / "cpuacct.usage"),
            "usage_percpu": [int(x) for x in percpu if x.isdigit()],
            "stat": read_kv(cpuacct / "cpuacct.stat"),  # user/system in USER_HZ ticks
        }
    if cpu is not None:
        out["cpu"] = {"stat": read_kv(cpu / "cpu.stat")}  # nr_periods, nr_throttled, throttled_time
    if pids is not None:
        limit = (_read(pids / "pids.max") or "").strip()
        out["pids"] = {"current": read_int(pids / "pids.current"), "limit": int(limit) if limit.isdigit() else None}
    if blkio is not None:
        out["blkio"] = {
            name: read_blkio(blkio / f"blkio.{file}")
            for name, file in (
                ("io_service_bytes_recursive", "throttle.io_service_bytes_recursive"),
                ("io_serviced_recursive", "throttle.io_serviced_recursive"),
                ("io_queue_recursive", "io_queued_recursive"),
                ("io_service_time_recursive", "io_service_time_recursive"),
                ("io_wait_time_recursive", "io_wait_time_recursive"),
                ("io_merged_recursive", "io_merged_recursive"),
                ("io_time_recursive", "time_recursive"),
                ("sectors_recursive", "sectors_recursive"),
            )
        }
    return out


def system_cpu_usage_ns() -> int:
    """Host CPU time in ns from /proc/stat's first line (Docker's ``system_cpu_usage``)."""
    line = Path("/proc/stat").read_text().splitlines()[0].split()
    ticks = sum(int(x) for x in line[1:8])
    return ticks * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def online_cpus() -> int:
    return len(os.sched_getaffinity(0))


def remove(cgroups_path: str, retries: int = 20) -> list[str]:
    """rmdir the container's cgroup in every hierarchy (after its processes are gone). Returns the
    directories that could not be removed."""
    left = []
    for mount in all_mounts():
        d = mount / cgroups_path.lstrip("/")
        for attempt in range(retries):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                # EBUSY while the last task is still being torn down
                if attempt == retries - 1:
                    left.append(str(d))
                else:
                    time.sleep(0.01)
    return left


def remove_parent(parent: str) -> None:
    """rmdir an empty parent (e.g. "/engine") in every hierarchy; busy ones are kept."""
    if parent.strip("/") == "":
        return
    for mount in all_mounts():
        with contextlib.suppress(OSError):
            (mount / parent.lstrip("/")).rmdir()
