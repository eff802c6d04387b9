"""A container's network at start and stop, through the NetworkController (``daemon.networks``).

When no controller is installed the container still runs: ``none``/default get a fresh network
namespace from the runtime (no path in the spec), ``host`` the host's, and /etc/hosts and
/etc/resolv.conf are written here.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import Conflict

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.containers.service import ContainerService

log = logging.getLogger(__name__)


@dataclass
class NetworkSetup:
    """What the runtime needs: the netns to join (None with ``new_netns``: a fresh one; None without
    it: the host's), and the files to bind-mount."""

    netns_path: str | None
    new_netns: bool
    network_settings: dict[str, Any]
    hosts: str
    resolv_conf: str
    hostname: str
    warnings: list[str] = field(default_factory=list)


def mode_of(container: Container) -> str:
    return container.host_config.get("NetworkMode") or "default"


def _joined_user_ns(service: ContainerService, container: Container) -> str | None:
    """userns-remap: a container sharing another's IPC or PID namespace (``container:<ref>``) must
    live in that one's user namespace, so its network namespace is made there too (as dockerd)."""
    if service.id_map.identity or container.host_config.get("UsernsMode") == "host":
        return None
    for key in ("IpcMode", "PidMode"):
        mode = container.host_config.get(key) or ""
        if mode.startswith("container:"):
            other = service.get(mode.partition(":")[2])
            if other.state.running and other.state.pid:
                return f"/proc/{other.state.pid}/ns/user"
    return None


def setup(service: ContainerService, container: Container) -> NetworkSetup:
    networks = service.networks
    mode = mode_of(container)
    host_config = dict(container.host_config)
    if mode.startswith("container:"):
        other = service.get(mode.partition(":")[2])
        if not other.state.running:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        host_config["NetworkMode"] = f"container:{other.id}"
    sandbox = networks.setup_sandbox(
        container.id,
        container.name,
        container.config,
        host_config,
        container.networking_config,
        user_ns=_joined_user_ns(service, container),
    )
    netns = sandbox.netns_path
    if mode.startswith("container:"):
        other_sb = networks.sandbox_of(host_config["NetworkMode"].partition(":")[2])
        netns = other_sb.netns_path if other_sb is not None else netns
    return NetworkSetup(
        netns_path=netns,
        new_netns=False,
        network_settings=sandbox.network_settings,
        hosts=sandbox.hosts,
        resolv_conf=sandbox.resolv_conf,
        hostname=sandbox.hostname,
        warnings=list(sandbox.warnings),
    )


def teardown(service: ContainerService, container: Container) -> dict[str, Any] | None:
    """Leave the networks; returns the NetworkSettings a stopped container shows (None: unchanged)."""
    networks = service.networks
    try:
        networks.teardown_sandbox(container.id)
    except Exception:
        log.exception("tearing down the network of %s failed", container.short_id)
    try:
        from engine.networks import stopped_settings

        return stopped_settings(container.network_settings or {})
    except ImportError:
        return None


def write_files(container: Container, net: NetworkSetup, owner: tuple[int, int] = (0, 0)) -> None:
    """containers/<id>/{hostname,hosts,resolv.conf}: rewritten at each start (the runtime bind-mounts
    them), as dockerd does. Plain writes: they are regenerated on every start."""
    for filename, content in (("hostname", net.hostname), ("hosts", net.hosts), ("resolv.conf", net.resolv_conf)):
        path = container.root / filename
        with open(path, "w") as f:
            f.write(content)
        path.chmod(0o644)
        if owner != (0, 0):  # userns-remap: container root owns them, as dockerd
            os.chown(path, *owner)
    container.hostname_path = str(container.root / "hostname")
    container.hosts_path = str(container.root / "hosts")
    container.resolv_conf_path = str(container.root / "resolv.conf")
