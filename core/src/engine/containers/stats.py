"""``GET /containers/{id}/stats``: cgroup v1 figures (the runtime's raw numbers) shaped as Docker's StatsJSON,
one sample a second; ``precpu_stats`` is the previous sample, as dockerd's collector does."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.containers.timefmt import rfc3339nano
from engine.drivers.timefmt import ZERO_TIME
from engine.system_info import mem_total

if TYPE_CHECKING:
    from engine.containers.model import Container

INTERVAL = 1.0
_BLKIO_KEYS = (
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _empty_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def empty(container: Container) -> dict[str, Any]:
    """What dockerd answers for a container that does not run."""
    return {
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {key: None for key in _BLKIO_KEYS},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _empty_cpu(),
        "precpu_stats": _empty_cpu(),
        "memory_stats": {},
        "name": container.name,
        "id": container.id,
    }


def network_stats(pid: int) -> dict[str, dict[str, int]] | None:
    """Per-interface counters of the network namespace ``pid`` lives in (loopback left out)."""
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return None
    out = {}
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in rest.split()]
        out[name] = {
            "rx_bytes": v[0],
            "rx_packets": v[1],
            "rx_errors": v[2],
            "rx_dropped": v[3],
            "tx_bytes": v[8],
            "tx_packets": v[9],
            "tx_errors": v[10],
            "tx_dropped": v[11],
        }
    return out


def shape(container: Container, raw: dict[str, Any], pid: int) -> dict[str, Any]:
    """One StatsJSON (without precpu) from ``engine.runtime.cgroups.stats``."""
    from engine.runtime import cgroups

    cpuacct = raw.get("cpuacct") or {}
    cpu_stat = (raw.get("cpu") or {}).get("stat") or {}
    ticks = cpuacct.get("stat") or {}
    usage: dict[str, Any] = {"total_usage": int(cpuacct.get("usage") or 0)}
    if cpuacct.get("usage_percpu"):
        usage["percpu_usage"] = list(cpuacct["usage_percpu"])
    usage["usage_in_kernelmode"] = int(ticks.get("system", 0)) * _TICK_NS
    usage["usage_in_usermode"] = int(ticks.get("user", 0)) * _TICK_NS
    cpu_stats = {
        "cpu_usage": usage,
        "system_cpu_usage": cgroups.system_cpu_usage_ns(),
        "online_cpus": cgroups.online_cpus(),
        "throttling_data": {
            "periods": int(cpu_stat.get("nr_periods", 0)),
            "throttled_periods": int(cpu_stat.get("nr_throttled", 0)),
            "throttled_time": int(cpu_stat.get("throttled_time", 0)),
        },
    }
    memory: dict[str, Any] = {}
    mem = raw.get("memory")
    if mem:
        limit = int(mem.get("limit") or 0)
        machine = mem_total()
        if machine and limit > machine:
            limit = machine  # no limit set: dockerd shows the machine's memory
        memory = {
            "usage": int(mem.get("usage") or 0),
            "max_usage": int(mem.get("max_usage") or 0),
            "stats": dict(mem.get("stat") or {}),
            "failcnt": int(mem.get("failcnt") or 0),
            "limit": limit,
        }
    pids: dict[str, Any] = {}
    if raw.get("pids"):
        if raw["pids"].get("current"):
            pids["current"] = int(raw["pids"]["current"])
        if raw["pids"].get("limit"):
            pids["limit"] = int(raw["pids"]["limit"])
    blkio_raw = raw.get("blkio") or {}
    data: dict[str, Any] = {
        "read": rfc3339nano(int(raw.get("read_ns") or 0)),
        "preread": ZERO_TIME,
        "pids_stats": pids,
        "blkio_stats": {key: (blkio_raw.get(key) or None) for key in _BLKIO_KEYS},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats,
        "precpu_stats": _empty_cpu(),
        "memory_stats": memory,
        "name": container.name,
        "id": container.id,
    }
    networks = network_stats(pid) if pid else None
    if networks is not None and container.host_config.get("NetworkMode") != "host":
        data["networks"] = networks
    return data


async def samples(container: Container, *, stream: bool, one_shot: bool) -> AsyncIterator[dict[str, Any]]:
    """The stats stream of one container (see the module docstring)."""
    previous: dict[str, Any] | None = None
    first = True
    while True:
        task = container.task
        if task is None or not container.state.running or container.state.restarting:
            if not stream:
                yield empty(container)
                return
            yield empty(container)
            await asyncio.sleep(INTERVAL)
            continue
        try:
            raw = await asyncio.to_thread(task.stats)
        except Exception:
            raw = {}
        sample = shape(container, raw, container.state.pid)
        if previous is not None:
            sample["precpu_stats"] = previous["cpu_stats"]
            sample["preread"] = previous["read"]
        previous = sample
        if not stream and not one_shot and first:
            first = False  # prime precpu_stats so the one answer has real CPU figures (dockerd)
            await asyncio.sleep(INTERVAL)
            continue
        yield sample
        if not stream:
            return
        await asyncio.sleep(INTERVAL)
