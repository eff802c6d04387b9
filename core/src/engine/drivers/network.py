"""The network driver contract (libnetwork's driverapi).

A driver owns the data path of its networks: bridges, veth pairs, firewall rules, published
ports. Core (:mod:`engine.networks`) owns the objects (networks, endpoints, sandboxes), the
IPAM, the ``/etc/hosts``/``resolv.conf`` contents and the embedded DNS, and calls the driver to
wire them. A *sandbox* is a container's network namespace, named by its path (a file under
``<exec-root>/netns/`` bind-mounted from the namespace) or ``None`` for the host's namespace.

Call order for one container on one network::

    create_endpoint -> join -> program_external_connectivity   (container start / connect)
    revoke_external_connectivity -> leave -> delete_endpoint    (container stop / disconnect)

Every method is blocking and is called from a worker thread, never from the event loop;
core serialises calls per network. ``create_network`` is also called at daemon start for
every stored network (it must be idempotent: "create or restore"), and ``delete_network``
at shutdown for networks without live endpoints (so a stopped daemon leaves no bridges or
firewall rules behind); ``restore_endpoint`` re-adopts endpoints of containers that kept
running across a live-restore restart.
"""

from __future__ import annotations

import abc
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "Capability",
    "EndpointInterface",
    "IPAMData",
    "JoinInfo",
    "LinkRule",
    "NetworkDriver",
    "NetworkDriverContext",
    "NetworkSpec",
    "NoDataPathNetworkDriver",
    "Peer",
    "PortBinding",
    "SandboxInfo",
]


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
class NetworkSpec:
    """Everything a driver needs to create (or restore) one network."""

    network_id: str
    name: str
    options: Mapping[str, str]  # ``docker network create -o`` (driver options), as strings
    ipv4: list[IPAMData] = field(default_factory=list)
    ipv6: list[IPAMData] = field(default_factory=list)
    internal: bool = False
    enable_ipv6: bool = False
    #: the daemon's own default network (``bridge``): configured from daemon.json, not from options
    default: bool = False
    #: core's record of the network (opaque JSON): a global-scope driver keeps it in its cluster
    #: store and hands it back from :meth:`NetworkDriver.global_networks` on every engine
    record: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class EndpointInterface:
    """The addresses core's IPAM gave an endpoint; the driver may set ``mac_address``."""

    address: ipaddress.IPv4Interface | None = None
    address_v6: ipaddress.IPv6Interface | None = None
    mac_address: str = ""


@dataclass
class PortBinding:
    """One published port: container port/proto to a host ip/port (0 = pick one).

    ``host_port``..``host_port_end`` is a range the driver picks one free port from
    (``-p 8000-8010:80``); ``host_port_end == 0`` means just ``host_port``.
    """

    proto: str
    container_port: int
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0


@dataclass(frozen=True)
class LinkRule:
    """Legacy ``--link``: the linking container may reach the linked one on this port (and back)."""

    parent_ip: str
    child_ip: str
    proto: str
    port: int


@dataclass
class SandboxInfo:
    """Where and how an endpoint joins a sandbox."""

    key: str  # the netns path
    container_id: str
    ifname: str  # the interface name to create inside the sandbox: eth0, eth1, ...
    #: install the default route through this endpoint's network gateway
    default_route: bool = True


@dataclass
class JoinInfo:
    """What a driver tells core when an endpoint joined a sandbox."""

    interface_name: str = ""  # the name inside the sandbox it created
    gateway: str = ""  # the IPv4 gateway it routes through ("" = none)
    gateway_v6: str = ""
    disable_gateway_service: bool = False
    static_routes: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Peer:
    """An endpoint of a global-scope network on another engine, as the embedded DNS answers it."""

    name: str  # the container's name
    ipv4: str  # its address, without prefix length
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkDriverContext:
    """What core hands a driver when it constructs it."""

    state_dir: Path  # <data-root>/network/<driver>: the driver's own persistent state
    exec_root: Path  # <exec-root>: runtime state (netns files, pid files)
    config: Mapping[str, Any]  # the daemon configuration (daemon.json keys)
    #: a name unique to this daemon on this host, for host-global objects (nftables table,
    #: default bridge): ``engine`` for the default exec-root, else derived from the exec-root
    instance: str = "engine"


class NetworkDriver(abc.ABC):
    """Abstract network driver. Subclasses set ``name``, ``API_VERSION`` and ``capability``.

    Errors: raise :mod:`engine.errors` exceptions (``InvalidParameter`` for bad options,
    ``Conflict`` for a port already allocated, ...) with dockerd's wording; anything else
    becomes a 500.
    """

    name: ClassVar[str]
    API_VERSION: ClassVar[int]
    capability: ClassVar[Capability] = Capability()
    #: whether networks of this driver take IPAM pools (host and null do not)
    uses_ipam: ClassVar[bool] = True
    #: whether users may create more networks of this driver (host and null: only the built-in one)
    user_creatable: ClassVar[bool] = True
    #: the containers of this driver's networks get their own network namespace (host: no)
    needs_sandbox: ClassVar[bool] = True
    #: whether a container may join more networks besides one of this driver (host, null: no)
    exclusive: ClassVar[bool] = False

    #: the driver hands out endpoint addresses itself (the cluster-wide IPAM of a global-scope
    #: driver): core's IPAM reserves only the network's pools, and ``create_endpoint`` fills
    #: ``iface.address`` (``options["ipv4_address"]`` holds the user's ``--ip``, if any)
    allocates_addresses: ClassVar[bool] = False

    def __init__(self, context: NetworkDriverContext) -> None:
        self.context = context

    def start(self) -> None:  # noqa: B027 - optional
        """Called once after construction, before any network is restored or created."""

    def stop(self) -> None:  # noqa: B027 - optional
        """Called at daemon shutdown, after every network without live endpoints was released."""

    def validate_options(self, options: Mapping[str, str]) -> None:  # noqa: B027 - optional
        """Reject bad ``-o`` options before anything is created (raise ``InvalidParameter``)."""

    @abc.abstractmethod
    def create_network(self, spec: NetworkSpec) -> None:
        """Create (or, at restart, restore) the network's data path. Must be idempotent."""

    @abc.abstractmethod
    def delete_network(self, network_id: str) -> None:
        """Remove everything ``create_network`` made. Must tolerate partial state."""

    @abc.abstractmethod
    def create_endpoint(
        self, network_id: str, endpoint_id: str, iface: EndpointInterface, options: Mapping[str, Any]
    ) -> None:
        """Prepare an endpoint (e.g. the veth pair); may fill ``iface.mac_address``.

        ``options`` may hold ``mac_address`` (the user's ``--mac-address``), and holds
        ``container_name``, ``container_id`` and ``aliases`` (the endpoint's network aliases);
        with ``allocates_addresses``, ``ipv4_address`` (the user's ``--ip``, or "").
        """

    @abc.abstractmethod
    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        """Remove what ``create_endpoint`` made."""

    @abc.abstractmethod
    def join(self, network_id: str, endpoint_id: str, sandbox: SandboxInfo) -> JoinInfo:
        """Move the endpoint's interface into the sandbox and configure it (addresses, routes)."""

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

    def program_links(self, network_id: str, endpoint_id: str, links: list[LinkRule]) -> None:  # noqa: B027
        """Legacy links of an endpoint (matters where inter-container traffic is otherwise blocked)."""

    def revoke_links(self, network_id: str, endpoint_id: str) -> None:  # noqa: B027 - optional
        """Withdraw what ``program_links`` set up."""

    def restore_endpoint(  # noqa: B027 - optional
        self,
        network_id: str,
        endpoint_id: str,
        iface: EndpointInterface,
        sandbox: SandboxInfo,
        ports: list[PortBinding],
    ) -> None:
        """Re-adopt an endpoint whose container kept running while the daemon restarted."""

    def reconcile(self, endpoint_ids: set[str]) -> None:  # noqa: B027 - optional
        """At start, after every live endpoint was restored: release whatever the driver still holds
        for endpoints not in ``endpoint_ids`` (a container start cut short by a crash)."""

    def network_info(self, network_id: str) -> dict[str, str]:
        """Extra options to show in ``docker network inspect`` ``Options``."""
        return {}

    def assign_subnets(self, network_id: str, subnets: list[str]) -> list[str]:
        """Global scope: reserve a new network's subnets cluster-wide before core's IPAM takes them
        on this host; ``""`` asks for a free one. Returns the subnets to use (same order)."""
        return subnets

    def global_networks(self) -> list[Mapping[str, Any]] | None:
        """Global scope: the records (:attr:`NetworkSpec.record`) of every network of this driver in
        the cluster, created on any engine; ``None`` when the driver cannot tell (no store, or
        unreachable): core then keeps the networks it knows. Called often: answer from memory."""
        return None

    def peers(self, network_id: str) -> list[Peer]:
        """Global scope: the network's endpoints on other engines (the embedded DNS answers them)."""
        return []

    def leftovers(self) -> list[str]:
        """What this driver still has on the host (links, rules, processes), for leak checks.

        An empty list after every network was deleted and ``stop`` ran means nothing leaked.
        """
        return []


class NoDataPathNetworkDriver(NetworkDriver):
    """Base of drivers whose one predefined network has no data path (libnetwork's ``host`` and
    ``null``): nothing to create or wire, so every call is a no-op; no IPAM, no user-created
    networks, and a container on such a network joins no other. Subclasses set ``name`` and
    ``API_VERSION`` (and ``needs_sandbox``)."""

    uses_ipam = False
    user_creatable = False
    exclusive = True

    def create_network(self, spec: NetworkSpec) -> None:
        pass

    def delete_network(self, network_id: str) -> None:
        pass

    def create_endpoint(
        self, network_id: str, endpoint_id: str, iface: EndpointInterface, options: Mapping[str, Any]
    ) -> None:
        pass

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        pass

    def join(self, network_id: str, endpoint_id: str, sandbox: SandboxInfo) -> JoinInfo:
        return JoinInfo()

    def leave(self, network_id: str, endpoint_id: str) -> None:
        pass
