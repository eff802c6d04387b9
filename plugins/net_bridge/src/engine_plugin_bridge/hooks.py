"""The bridge driver's daemon.json keys (dockerd's names, types and defaults) and their checks."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from engine.drivers import hookimpl

OWNER = "engine-plugin-bridge"


def _cidr(key: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value:
            try:
                ipaddress.ip_interface(value)
                if "/" not in value:
                    raise ValueError
            except ValueError:
                raise ValueError(f"invalid CIDR address: {value}") from None
        return value

    return check


def _ip(key: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"invalid IP address: {value}") from None
        return value

    return check


def _mtu(value: int) -> int:
    if value < 0:
        raise ValueError(f"invalid MTU: {value}")
    return value


#: (key, type, default, flags, help, validate)
KEYS: tuple[tuple[str, str, Any, tuple[str, ...], str, Any], ...] = (
    ("bridge", "string", "", ("--bridge", "-b"), "Attach containers to a network bridge ('none' disables it)", None),
    ("bip", "string", "", ("--bip",), "Specify network bridge IP", _cidr("bip")),
    ("fixed-cidr", "string", "", ("--fixed-cidr",), "IPv4 subnet for fixed IPs", _cidr("fixed-cidr")),
    ("fixed-cidr-v6", "string", "", ("--fixed-cidr-v6",), "IPv6 subnet for fixed IPs", _cidr("fixed-cidr-v6")),
    ("default-gateway", "string", "", ("--default-gateway",), "Container default gateway IPv4 address",
     _ip("default-gateway")),
    ("default-gateway-v6", "string", "", ("--default-gateway-v6",), "Container default gateway IPv6 address",
     _ip("default-gateway-v6")),
    ("icc", "bool", True, ("--icc",), "Enable inter-container communication", None),
    ("ip", "string", "0.0.0.0", ("--ip",), "Default IP when binding container ports", _ip("ip")),
    ("iptables", "bool", True, ("--iptables",), "Enable addition of firewall rules (engine's nftables table)", None),
    ("ip6tables", "bool", False, ("--ip6tables",), "Enable addition of ip6tables rules", None),
    ("ip-forward", "bool", True, ("--ip-forward",), "Enable net.ipv4.ip_forward", None),
    ("ip-masq", "bool", True, ("--ip-masq",), "Enable IP masquerading", None),
    ("ipv6", "bool", False, ("--ipv6",), "Enable IPv6 networking", None),
    ("mtu", "int", 0, ("--mtu",), "Set the containers network MTU", _mtu),
    ("userland-proxy", "bool", True, ("--userland-proxy",), "Use userland proxy for loopback traffic", None),
    ("userland-proxy-path", "string", "", ("--userland-proxy-path",), "Path to the userland proxy binary", None),
)  # fmt: skip


def check_bridge_settings(values: dict[str, Any]) -> None:
    """dockerd's verifyDaemonSettings rules that span the bridge keys."""
    if values.get("bridge") and values.get("bip"):
        raise ValueError("You specified -b & --bip, mutually exclusive options. Please specify only one")
    if values.get("icc") is False and values.get("iptables") is False:
        raise ValueError(
            "You specified --iptables=false with --icc=false. ICC=false uses iptables to function. "
            "Please set --icc or --iptables to true"
        )
    # iptables=false with ip-masq=true: dockerd silently turns masquerading off (nothing to check)


@hookimpl
def engine_add_config(schema) -> None:  # type: ignore[no-untyped-def]
    for key, type_, default, flags, help_, validate in KEYS:
        if key in schema:  # declared already (e.g. by core): never twice
            continue
        extra = {"validate": validate} if validate is not None else {}
        schema.add(key, type_, default, help_, flags=flags, owner=OWNER, **extra)
    if hasattr(schema, "add_check"):
        schema.add_check(check_bridge_settings)
