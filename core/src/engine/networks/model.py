"""Networks, endpoints and sandboxes as engine stores them (one JSON file each, written atomically)."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def new_id() -> str:
    return secrets.token_hex(32)


class _Record:
    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class IPAMPoolConfig:
    """One entry of a network's IPAM.Config, as the user gave it (and as inspect shows it)."""

    subnet: str = ""
    ip_range: str = ""
    gateway: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Subnet": self.subnet}
        if self.ip_range:
            out["IPRange"] = self.ip_range
        if self.gateway:
            out["Gateway"] = self.gateway
        if self.aux_addresses:
            out["AuxiliaryAddresses"] = dict(self.aux_addresses)
        return out


@dataclass
class Network(_Record):
    id: str
    name: str
    driver: str
    created: str = ""
    scope: str = "local"
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    enable_ipv6: bool = False
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ipam_driver: str = "default"
    ipam_options: dict[str, str] | None = None
    #: the pools as configured: user-given, or filled in with what IPAM picked
    ipam_config: list[dict[str, Any]] = field(default_factory=list)
    #: whether the user gave --subnet (static --ip needs it)
    user_subnet: bool = False
    predefined: bool = False  # bridge/host/none, created by the daemon

    def pools(self) -> list[IPAMPoolConfig]:
        return [IPAMPoolConfig(**c) for c in self.ipam_config]

    def pool_id(self, index: int) -> str:
        return f"{self.id}-{index}"


@dataclass
class Endpoint(_Record):
    id: str
    network_id: str
    container_id: str
    name: str  # the container's name, without the leading slash
    ifname: str = ""  # eth0, eth1, ... inside the sandbox
    ipv4: str = ""  # address/prefix
    ipv6: str = ""
    gateway: str = ""
    gateway_v6: str = ""
    default_route: bool = False  # the container's default route goes through this endpoint
    mac_address: str = ""
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # "container:alias"
    ipam_config: dict[str, Any] | None = None  # the user's EndpointSettings.IPAMConfig
    driver_opts: dict[str, str] | None = None
    #: published ports actually bound: [{"proto","container_port","host_ip","host_port"}]
    ports: list[dict[str, Any]] = field(default_factory=list)
    pool_id: str = ""
    pool_id_v6: str = ""


@dataclass
class SandboxRecord(_Record):
    """What engine remembers about a running container's network namespace."""

    container_id: str
    id: str  # dockerd's SandboxID
    key: str | None  # the netns path; None: the host's namespace
    mode: str  # "host", "none", "bridge", "<network>", "container:<id>"
    name: str = ""
    hostname: str = ""
    domainname: str = ""
    #: network ids of the endpoints, in join order (eth0 first)
    endpoints: list[str] = field(default_factory=list)
    #: endpoint id per network id
    endpoint_ids: dict[str, str] = field(default_factory=dict)
    extra_hosts: list[str] = field(default_factory=list)
    links: list[list[str]] = field(default_factory=list)  # [[ip, names]] legacy --link host records
    dns_servers: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    upstream_dns: list[str] = field(default_factory=list)
    #: requested port bindings: {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    port_bindings: dict[str, Any] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)
    publish_all: bool = False
    joined_to: str = ""  # container:<id> mode: the container whose sandbox this is
    embedded_dns: bool = False
    #: the endpoints themselves (network id -> Endpoint JSON), saved with the sandbox in one write
    endpoint_records: dict[str, dict[str, Any]] = field(default_factory=dict)
