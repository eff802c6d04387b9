"""The network driver contract (libnetwork's driverapi).

A driver owns the data path of its networks: bridges, veth pairs, firewall rules. Core
owns the objects (networks, endpoints, IPAM) and calls the driver to wire them. A
*sandbox* is a container's network namespace, named by its path (``/proc/<pid>/ns/net``
or a bind-mounted file under the exec-root).
"""

from __future__ import annotations

import abc
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class Capability:
    data_scope: str = "local"  # "local" or "global"
    connectivity_scope: str = "local"


@dataclass
class IPAMData:
    """One address pool assigned to a network (libnetwork's driverapi.IPAMData)."""

    pool: ipaddress.IPv4Network | ipaddress.IPv6Network
    gateway: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None = None
    aux_addresses: dict[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface] = field(default_factory=dict)


@dataclass
class EndpointInterface:
    """The addresses core's IPAM gave an endpoint; the driver may set ``mac_address``."""

    address: ipaddress.IPv4Interface | None = None
    address_v6: ipaddress.IPv6Interface | None = None
    mac_address: str = ""


@dataclass
class PortBinding:
    """One published port: container port/proto to a host ip/port (0 = pick one)."""

    proto: str
    container_port: int
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0


@dataclass
class JoinInfo:
    """What a driver tells core when an endpoint joins a sandbox."""

    interface_name: str = ""  # the name inside the sandbox (eth0, eth1, ...) it created
    gateway: str = ""
    gateway_v6: str = ""
    disable_gateway_service: bool = False
    static_routes: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class NetworkDriverContext:
    """What core hands a driver when it constructs it."""

    state_dir: Path  # <data-root>/network/<driver>: the driver's own persistent state
    exec_root: Path  # <exec-root>: runtime state (netns files, pid files)
    config: Mapping[str, Any]  # the daemon configuration (daemon.json keys)


class NetworkDriver(abc.ABC):
    """Abstract network driver. Subclasses set ``name``, ``API_VERSION`` and ``capability``."""

    name: ClassVar[str]
    API_VERSION: ClassVar[int]
    capability: ClassVar[Capability] = Capability()
    #: whether networks of this driver take IPAM pools (host and null do not)
    uses_ipam: ClassVar[bool] = True
    #: whether users may create more networks of this driver (host and null: only the built-in one)
    user_creatable: ClassVar[bool] = True

    def __init__(self, context: NetworkDriverContext) -> None:
        self.context = context

    def start(self) -> None:  # noqa: B027 - optional
        """Called once after construction, before any network is restored or created."""

    def stop(self) -> None:  # noqa: B027 - optional
        """Called at daemon shutdown, after every endpoint left."""

    @abc.abstractmethod
    def create_network(
        self, network_id: str, options: Mapping[str, Any], ipv4: list[IPAMData], ipv6: list[IPAMData]
    ) -> None:
        """Create (or, at restart, restore) the network's data path."""

    @abc.abstractmethod
    def delete_network(self, network_id: str) -> None:
        """Remove everything ``create_network`` made."""

    @abc.abstractmethod
    def create_endpoint(
        self, network_id: str, endpoint_id: str, iface: EndpointInterface, options: Mapping[str, Any]
    ) -> None:
        """Prepare an endpoint (e.g. the veth pair); may fill ``iface.mac_address``."""

    @abc.abstractmethod
    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        """Remove what ``create_endpoint`` made."""

    @abc.abstractmethod
    def join(self, network_id: str, endpoint_id: str, sandbox_key: str, options: Mapping[str, Any]) -> JoinInfo:
        """Move the endpoint's interface into the sandbox (a netns path) and configure it."""

    @abc.abstractmethod
    def leave(self, network_id: str, endpoint_id: str) -> None:
        """Undo ``join``."""

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, ports: list[PortBinding]
    ) -> list[PortBinding]:
        """Publish ports for an endpoint; returns the bindings with host ports filled in."""
        return []

    def revoke_external_connectivity(self, network_id: str, endpoint_id: str) -> None:  # noqa: B027
        """Withdraw what ``program_external_connectivity`` published."""

    def network_info(self, network_id: str) -> dict[str, str]:
        """Extra options to show in ``docker network inspect`` ``Options``."""
        return {}
