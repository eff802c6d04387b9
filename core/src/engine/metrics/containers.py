"""Per-container resource figures (engine's own families), read at scrape time: cpu, memory and
block I/O from the container's cgroup v1 files, network from ``/proc/<pid>/net/dev`` (the counters
of the container's network namespace, loopback left out; none for ``--network host``, whose
counters are the host's). The same sources as ``docker stats``.

Bounded cost: a scrape reads at most :data:`MAX_CONTAINERS` running containers (six small files
each), in name order; how many were left out is served too
(``engine_container_metrics_omitted_containers``), so a dashboard knows it sees only part.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.containers.stats import network_stats
from engine.runtime import cgroups
from engine.system_info import mem_total

MAX_CONTAINERS = 500
_TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")
LABELS = ["id", "name"]


class ContainerCollector(Collector):
    """The running containers of ``containers`` (the containers service; None before it starts)."""

    def __init__(self, daemon: Any, limit: int = MAX_CONTAINERS) -> None:
        self.daemon = daemon
        self.limit = limit

    def _running(self) -> tuple[list[Any], int]:
        service = getattr(self.daemon, "containers", None)
        if service is None:
            return [], 0
        running = sorted(
            (c for c in service.all() if c.state.running and c.task is not None and c.state.pid),
            key=lambda c: c.name,  # a stable choice when over the limit
        )
        return running[: self.limit], max(0, len(running) - self.limit)

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "engine_container_cpu_usage_seconds",
            "CPU time used by the container's processes (cgroup cpuacct.usage)",
            labels=LABELS,
        )
        cpu_mode = CounterMetricFamily(
            "engine_container_cpu_mode_seconds",
            "CPU time used by the container's processes in user and system mode (cgroup cpuacct.stat)",
            labels=[*LABELS, "mode"],
        )
        memory = GaugeMetricFamily(
            "engine_container_memory_usage_bytes",
            "Memory used by the container, page cache included (cgroup memory.usage_in_bytes)",
            labels=LABELS,
        )
        limit = GaugeMetricFamily(
            "engine_container_memory_limit_bytes",
            "The container's memory limit (the host's memory when it has none, as docker stats)",
            labels=LABELS,
        )
        blkio = CounterMetricFamily(
            "engine_container_blkio_bytes",
            "Bytes read and written to block devices by the container (cgroup blkio, all devices)",
            labels=[*LABELS, "op"],
        )
        net = {
            key: CounterMetricFamily(
                f"engine_container_network_{name}",
                f"{what} by the container's network interface (its network namespace's /proc/net/dev)",
                labels=[*LABELS, "interface"],
            )
            for key, name, what in (
                ("rx_bytes", "receive_bytes", "Bytes received"),
                ("tx_bytes", "transmit_bytes", "Bytes transmitted"),
                ("rx_packets", "receive_packets", "Packets received"),
                ("tx_packets", "transmit_packets", "Packets transmitted"),
                ("rx_dropped", "receive_dropped", "Received packets dropped"),
                ("tx_dropped", "transmit_dropped", "Transmitted packets dropped"),
            )
        }
        running, omitted = self._running()
        machine = mem_total()
        for container in running:
            labels = [container.id, container.name.lstrip("/")]  # as docker ps shows it
            path = container.task.cgroups_path
            cpuacct = cgroups.cgroup_dir("cpuacct", path)
            usage = cgroups.read_int(cpuacct / "cpuacct.usage") if cpuacct is not None else None
            if usage is None:
                continue  # gone between the listing and now
            cpu.add_metric(labels, usage / 1e9)
            ticks = cgroups.read_kv(cpuacct / "cpuacct.stat")
            for mode in ("user", "system"):
                if mode in ticks:
                    cpu_mode.add_metric([*labels, mode], ticks[mode] * _TICK_SECONDS)
            mem = cgroups.cgroup_dir("memory", path)
            used = cgroups.read_int(mem / "memory.usage_in_bytes") if mem is not None else None
            if used is not None:
                memory.add_metric(labels, used)
            cap = cgroups.read_int(mem / "memory.limit_in_bytes") if mem is not None else None
            if cap is not None:
                limit.add_metric(labels, min(cap, machine) if machine else cap)
            io = {"read": 0, "write": 0}
            blk = cgroups.cgroup_dir("blkio", path)
            if blk is not None:
                for entry in cgroups.read_blkio(blk / "blkio.throttle.io_service_bytes_recursive"):
                    if entry["op"].lower() in io:
                        io[entry["op"].lower()] += entry["value"]
                for op, count in io.items():
                    blkio.add_metric([*labels, op], count)
            if (container.host_config or {}).get("NetworkMode") == "host":
                continue
            for interface, counters in (network_stats(container.state.pid) or {}).items():
                for key, family in net.items():
                    family.add_metric([*labels, interface], counters[key])
        yield from (cpu, cpu_mode, memory, limit, blkio, *net.values())
        yield GaugeMetricFamily(
            "engine_container_metrics_omitted_containers",
            f"Running containers left out of this scrape's per-container figures (at most {self.limit} are read)",
            value=omitted,
        )
