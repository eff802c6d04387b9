"""engine.metrics.containers: what one scrape reads, and its bound. The containers here are plain
records pointing at real cgroup files (the host's root cgroups, "/") and at this process's network
namespace; no container runs (tests/test_metrics.py scrapes real ones)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.metrics.containers import ContainerCollector


@dataclass
class Task:
    cgroups_path: str = "/"


@dataclass
class State:
    running: bool = True
    pid: int = field(default_factory=os.getpid)


@dataclass
class Record:
    id: str
    name: str
    state: State = field(default_factory=State)
    task: Task | None = field(default_factory=Task)
    host_config: dict[str, Any] = field(default_factory=dict)


class Containers:
    def __init__(self, records: list[Record]) -> None:
        self.records = records

    def all(self) -> list[Record]:
        return list(self.records)


@dataclass
class Daemon:
    containers: Containers | None


def scrape(daemon: Daemon, limit: int) -> dict[str, list]:
    registry = CollectorRegistry()
    registry.register(ContainerCollector(daemon, limit=limit))
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_at_most_limit_containers_are_read_and_the_rest_counted() -> None:
    records = [Record(id=f"{i:064x}", name=f"/c{i}") for i in range(5)]
    records.append(Record(id="f" * 64, name="/stopped", state=State(running=False)))
    metrics = scrape(Daemon(Containers(records)), limit=3)
    cpu = metrics["engine_container_cpu_usage_seconds"]
    assert [s.labels["name"] for s in cpu] == ["c0", "c1", "c2"]  # by name, without docker's leading /
    assert all(s.value > 0 for s in cpu)
    assert metrics["engine_container_metrics_omitted_containers"][0].value == 2
    assert {s.labels["op"] for s in metrics["engine_container_blkio_bytes"]} == {"read", "write"}


def test_host_network_mode_has_no_network_figures() -> None:
    records = [
        Record(id="a" * 64, name="/hostnet", host_config={"NetworkMode": "host"}),
        Record(id="b" * 64, name="/own"),
    ]
    metrics = scrape(Daemon(Containers(records)), limit=10)
    names = {s.labels["name"] for s in metrics["engine_container_network_receive_bytes"]}
    assert "hostnet" not in names
    assert {s.labels["name"] for s in metrics["engine_container_memory_usage_bytes"]} == {"hostnet", "own"}


def test_before_the_services_exist_nothing_is_read() -> None:
    metrics = scrape(Daemon(None), limit=10)
    assert metrics["engine_container_cpu_usage_seconds"] == []
    assert metrics["engine_container_metrics_omitted_containers"][0].value == 0
