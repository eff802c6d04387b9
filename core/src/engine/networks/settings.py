"""Shapes of the API: a network for ``GET /networks``, and a container's ``NetworkSettings``."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from engine.networks.model import Endpoint, Network


def endpoint_settings(
    network: Network | None, endpoint: Endpoint | None, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One ``NetworkSettings.Networks.<name>`` entry (dockerd 20.10 / API 1.41 shape)."""
    config = config or {}
    ipv4 = ipaddress.ip_interface(endpoint.ipv4) if endpoint and endpoint.ipv4 else None
    ipv6 = ipaddress.ip_interface(endpoint.ipv6) if endpoint and endpoint.ipv6 else None
    aliases = endpoint.aliases if endpoint else config.get("Aliases")
    links = endpoint.links if endpoint else config.get("Links")
    return {
        "IPAMConfig": (endpoint.ipam_config if endpoint else config.get("IPAMConfig")) or None,
        "Links": list(links) if links else None,
        "Aliases": list(aliases) if aliases else None,
        "NetworkID": network.id if network and endpoint else config.get("NetworkID", ""),
        "EndpointID": endpoint.id if endpoint else "",
        "Gateway": endpoint.gateway if endpoint else "",
        "IPAddress": str(ipv4.ip) if ipv4 else "",
        "IPPrefixLen": ipv4.network.prefixlen if ipv4 else 0,
        "IPv6Gateway": endpoint.gateway_v6 if endpoint else "",
        "GlobalIPv6Address": str(ipv6.ip) if ipv6 else "",
        "GlobalIPv6PrefixLen": ipv6.network.prefixlen if ipv6 else 0,
        "MacAddress": endpoint.mac_address if endpoint else "",
        "DriverOpts": (endpoint.driver_opts if endpoint else config.get("DriverOpts")) or None,
    }


def ports_map(
    exposed: Iterable[str], bindings: Iterable[Mapping[str, Any]], publish: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``NetworkSettings.Ports``: every exposed or published port, ``None`` when not bound."""
    out: dict[str, Any] = {}
    for port in exposed:
        out.setdefault(normalize_port(port), None)
    for port in publish or {}:
        out.setdefault(normalize_port(port), None)
    for b in bindings:
        key = f"{b['container_port']}/{b['proto']}"
        out[key] = (out.get(key) or []) + [{"HostIp": b["host_ip"], "HostPort": str(b["host_port"])}]
    return out


def normalize_port(port: str) -> str:
    return port if "/" in port else f"{port}/tcp"


def network_settings(
    *,
    sandbox_id: str,
    sandbox_key: str,
    networks: list[tuple[str, Network | None, Endpoint | None, Mapping[str, Any] | None]],
    ports: dict[str, Any],
) -> dict[str, Any]:
    """A container's ``NetworkSettings``; the legacy top-level fields mirror the default ``bridge``."""
    entries = {name: endpoint_settings(net, ep, cfg) for name, net, ep, cfg in networks}
    legacy = (
        entries.get("bridge") if any(n and n.predefined and n.name == "bridge" for _, n, _, _ in networks) else None
    )
    legacy = legacy or {}
    return {
        "Bridge": "",
        "SandboxID": sandbox_id,
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": sandbox_key,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": legacy.get("EndpointID", ""),
        "Gateway": legacy.get("Gateway", ""),
        "GlobalIPv6Address": legacy.get("GlobalIPv6Address", ""),
        "GlobalIPv6PrefixLen": legacy.get("GlobalIPv6PrefixLen", 0),
        "IPAddress": legacy.get("IPAddress", ""),
        "IPPrefixLen": legacy.get("IPPrefixLen", 0),
        "IPv6Gateway": legacy.get("IPv6Gateway", ""),
        "MacAddress": legacy.get("MacAddress", ""),
        "Networks": entries,
    }


def initial_settings(host_config: Mapping[str, Any], networking_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``NetworkSettings`` of a created (never started) container, as dockerd shows it."""
    mode = host_config.get("NetworkMode") or "default"
    name = "bridge" if mode == "default" else mode
    configs = dict((networking_config or {}).get("EndpointsConfig") or {})
    networks: list[tuple[str, Network | None, Endpoint | None, Mapping[str, Any] | None]] = []
    if not name.startswith("container:"):
        networks.append((name, None, None, configs.pop(name, None) or {}))
    for other, cfg in configs.items():
        networks.append((other, None, None, cfg or {}))
    out = network_settings(sandbox_id="", sandbox_key="", networks=networks, ports={})
    return out


def stopped_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A running container's ``NetworkSettings`` after it stopped: addresses and endpoints cleared,
    the network list and the users' endpoint configs kept (dockerd's cleanup)."""
    out = dict(settings)
    for key in ("EndpointID", "Gateway", "GlobalIPv6Address", "IPAddress", "IPv6Gateway", "MacAddress"):
        out[key] = ""
    out["GlobalIPv6PrefixLen"] = out["IPPrefixLen"] = 0
    out["Ports"] = {}
    out["SandboxKey"] = ""
    out["SandboxID"] = ""
    networks = {}
    for name, entry in (settings.get("Networks") or {}).items():
        e = dict(entry)
        for key in ("EndpointID", "Gateway", "IPAddress", "IPv6Gateway", "GlobalIPv6Address", "MacAddress"):
            e[key] = ""
        e["IPPrefixLen"] = e["GlobalIPv6PrefixLen"] = 0
        networks[name] = e
    out["Networks"] = networks
    return out


def network_resource(
    network: Network, containers: Mapping[str, dict[str, Any]] | None, options: Mapping[str, str]
) -> dict[str, Any]:
    """One network as ``GET /networks/{id}`` shows it."""
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": network.created,
        "Scope": network.scope,
        "Driver": network.driver,
        "EnableIPv6": network.enable_ipv6,
        "IPAM": {
            "Driver": network.ipam_driver,
            "Options": dict(network.ipam_options) if network.ipam_options is not None else None,
            "Config": [c.to_api() for c in network.pools()],
        },
        "Internal": network.internal,
        "Attachable": network.attachable,
        "Ingress": network.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": dict(containers or {}),
        "Options": dict(options),
        "Labels": dict(network.labels),
    }
