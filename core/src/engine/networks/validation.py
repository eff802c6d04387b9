"""The network checks of ``POST /containers/create`` (dockerd's), before any sandbox exists."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import InvalidParameter, NotFound
from engine.networks import etcfiles
from engine.networks.model import Network

if TYPE_CHECKING:
    from engine.networks.controller import NetworkController


def network_mode(host_config: Mapping[str, Any]) -> str:
    """HostConfig.NetworkMode, ``default`` when unset."""
    return str(host_config.get("NetworkMode") or "default")


def validate_container(
    ctl: NetworkController,
    config: Mapping[str, Any],
    host_config: Mapping[str, Any],
    networking_config: Mapping[str, Any] | None,
) -> list[str]:
    """Checks dockerd runs at ``POST /containers/create``; returns its warnings.

    A network that does not exist is *not* an error here: dockerd creates the container and fails
    its start with "network x not found" (a 404 at create would make the docker CLI try to pull
    the image).

    :raises InvalidParameter: conflicting options, with dockerd's messages.
    """
    warnings: list[str] = []
    mode = network_mode(host_config)
    if mode == "default":
        mode = "none" if ctl.bridge_disabled() else "bridge"
    endpoints = dict((networking_config or {}).get("EndpointsConfig") or {})
    if mode.startswith("container:"):
        if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
            raise InvalidParameter("conflicting options: port publishing and the container type network mode")
        if host_config.get("Dns") or host_config.get("DnsSearch") or host_config.get("DnsOptions"):
            raise InvalidParameter("conflicting options: dns and the network mode")
        if host_config.get("ExtraHosts"):
            raise InvalidParameter("conflicting options: custom host-to-IP mapping and the network mode")
        if config.get("Hostname"):
            raise InvalidParameter("conflicting options: hostname and the network mode")
        return warnings
    try:
        net: Network | None = ctl.get(mode)
    except NotFound:
        net = None
    if mode == "host" or (net is not None and net.driver == "host"):
        if host_config.get("Links"):
            raise InvalidParameter(
                "conflicting options: host type networking can't be used with links. "
                "This would result in undefined behavior"
            )
        if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
            warnings.append("Published ports are discarded when using host network mode")
    for key, cfg in endpoints.items():
        try:
            other = ctl.get(key)
        except NotFound:
            continue  # reported at start, as dockerd
        ipam = (cfg or {}).get("IPAMConfig") or {}
        if ipam.get("IPv4Address") or ipam.get("IPv6Address"):
            check_static_ip(ctl, other)
        if (cfg or {}).get("Aliases") and (other.predefined):
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
    mac = config.get("MacAddress") or ""
    if mac and not re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", mac):
        raise InvalidParameter(f"invalid MAC address: {mac}")
    try:
        etcfiles.validate_extra_hosts(host_config.get("ExtraHosts") or [], ctl.host_gateway_ip() or "?")
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None
    return warnings


def check_static_ip(ctl: NetworkController, net: Network) -> None:
    """``--ip``/``--ip6`` only on user-defined networks with a subnet the user chose (dockerd's rule)."""
    if net.predefined or not ctl.driver(net.driver).uses_ipam:
        raise InvalidParameter("user specified IP address is supported on user defined networks only")
    if not net.user_subnet:
        raise InvalidParameter(
            "user specified IP address is supported only when connecting to networks with user configured subnets"
        )
