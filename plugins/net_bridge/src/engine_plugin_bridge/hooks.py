"""The bridge driver's daemon.json keys (dockerd's names, types and defaults)."""

from __future__ import annotations

from engine import hookimpl

OWNER = "engine-plugin-bridge"

#: (key, type, default, flags, help)
KEYS: tuple[tuple[str, str, object, tuple[str, ...], str], ...] = (
    ("bridge", "string", "", ("--bridge", "-b"), "Attach containers to a network bridge ('none' disables it)"),
    ("bip", "string", "", ("--bip",), "Specify network bridge IP"),
    ("fixed-cidr", "string", "", ("--fixed-cidr",), "IPv4 subnet for fixed IPs"),
    ("fixed-cidr-v6", "string", "", ("--fixed-cidr-v6",), "IPv6 subnet for fixed IPs"),
    ("default-gateway", "string", "", ("--default-gateway",), "Container default gateway IPv4 address"),
    ("default-gateway-v6", "string", "", ("--default-gateway-v6",), "Container default gateway IPv6 address"),
    ("icc", "bool", True, ("--icc",), "Enable inter-container communication"),
    ("ip", "string", "0.0.0.0", ("--ip",), "Default IP when binding container ports"),
    ("iptables", "bool", True, ("--iptables",), "Enable addition of firewall rules (engine's nftables table)"),
    ("ip6tables", "bool", False, ("--ip6tables",), "Enable addition of ip6tables rules"),
    ("ip-forward", "bool", True, ("--ip-forward",), "Enable net.ipv4.ip_forward"),
    ("ip-masq", "bool", True, ("--ip-masq",), "Enable IP masquerading"),
    ("ipv6", "bool", False, ("--ipv6",), "Enable IPv6 networking"),
    ("mtu", "int", 0, ("--mtu",), "Set the containers network MTU"),
    ("userland-proxy", "bool", True, ("--userland-proxy",), "Use userland proxy for loopback traffic"),
    ("userland-proxy-path", "string", "", ("--userland-proxy-path",), "Path to the userland proxy binary"),
)


@hookimpl
def engine_add_config(schema) -> None:  # type: ignore[no-untyped-def]
    for key, type_, default, flags, help_ in KEYS:
        if key in schema:  # declared already (e.g. by core): never twice
            continue
        schema.add(key, type_, default, help_, flags=flags, owner=OWNER)
