"""Shared pieces of the logging tests: a real (unstarted) Daemon and a container stand-in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.cli import build_schema
from engine.config import merge
from engine.daemon import Daemon
from engine.errors import NotFound
from engine.plugins import make_plugin_manager


def make_daemon(tmp_path: Path, **file_values: Any) -> Daemon:
    """A Daemon built from a daemon.json (not started: the logs code needs config, registries, pm)."""
    pm = make_plugin_manager()
    schema = build_schema(pm)
    values = {"data-root": str(tmp_path / "data"), "exec-root": str(tmp_path / "exec"), **file_values}
    return Daemon(merge(schema, values, {}), pm, schema)


@dataclass(eq=False)
class ContainerStandIn:
    """The attributes the containers subsystem's Container has (id, name, config, host_config,
    log_driver, root...), for testing the logging side without the containers subsystem."""

    id: str
    name: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    root: Path
    image_id: str = "sha256:" + "ab" * 32
    created: int = 1_700_000_000_000_000_000
    path: str = "sh"
    args: list[str] = field(default_factory=lambda: ["-c", "echo hi"])
    log_driver: Any = None


def make_container(
    daemon: Daemon,
    name: str,
    log_config: dict[str, Any] | None = None,
    tty: bool = False,
    labels: dict[str, str] | None = None,
) -> ContainerStandIn:
    from engine.logs import validate_log_config

    container_id = (name.encode().hex() * 64)[:64]
    root = daemon.data_root / "containers" / container_id
    root.mkdir(parents=True, exist_ok=True)
    return ContainerStandIn(
        id=container_id,
        name="/" + name,
        config={"Image": "busybox", "Tty": tty, "Env": ["PATH=/bin", "A=1"], "Labels": labels or {"team": "x"}},
        host_config={"LogConfig": validate_log_config(daemon, log_config)},
        root=root,
    )


class ContainersStandIn:
    """``daemon.containers.get(name_or_id)`` and ``log_reader(container)`` as the containers
    subsystem provides them (``logging``: the daemon, as engine.subsystems hands it in)."""

    def __init__(self, *containers: ContainerStandIn, logging: Any) -> None:
        self.containers = list(containers)
        self.logging = logging

    def log_reader(self, container: ContainerStandIn) -> Any:
        from engine.logs import open_reader

        return open_reader(self.logging, container)

    def get(self, name_or_id: str) -> ContainerStandIn:
        for c in self.containers:
            if name_or_id in (c.id, c.name, c.name.lstrip("/")) or (
                len(name_or_id) >= 3 and c.id.startswith(name_or_id)
            ):
                return c
        raise NotFound(f"No such container: {name_or_id}")
