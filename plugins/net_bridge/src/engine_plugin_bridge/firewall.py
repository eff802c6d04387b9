"""NAT and filtering in engine's own nftables table, never touching anyone else's rules.

The whole table (``table ip <instance>``, ``engine`` for the default daemon) is rendered from
the driver's state and loaded in one ``nft -f`` transaction, so it is always consistent and a
restart after a crash simply replaces whatever was left. Chains, as dockerd's iptables chains:

- ``forward`` (filter, hook forward): ``jump user`` first (the DOCKER-USER equivalent: put your
  own rules in chain ``user``; engine never flushes it), then ``jump isolation`` (drop traffic
  between two engine bridges), then per network: established traffic in, published ports in,
  inter-container traffic (``icc``), outbound (not for ``--internal``), anything else into
  the bridge dropped (dockerd's FORWARD policy DROP, limited to engine's bridges).
- ``prerouting``/``output`` (nat): packets to a local address ``jump portmap`` (DNAT per
  published port; ``output`` skips 127.0.0.0/8 while the userland proxy serves loopback).
- ``postrouting`` (nat): masquerade out of each network (``ip-masq``), hairpin masquerade.

Only IPv4 is filtered and NATed (dockerd's ip6tables is off by default too).
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

NFT = "nft"


class FirewallError(RuntimeError):
    pass


@dataclass(frozen=True)
class NetworkRules:
    bridge: str
    subnet: str  # IPv4 CIDR, "" when the network has none
    masquerade: bool = True
    icc: bool = True
    internal: bool = False


@dataclass(frozen=True)
class PortRule:
    bridge: str
    proto: str  # tcp | udp | sctp
    host_ip: str  # "" or "0.0.0.0": every local address
    host_port: int
    container_ip: str
    container_port: int


@dataclass(frozen=True)
class LinkAccept:
    """Legacy --link under icc=false: parent may reach child's port, and the replies come back."""

    bridge: str
    parent_ip: str
    child_ip: str
    proto: str
    port: int


@dataclass
class Ruleset:
    networks: list[NetworkRules] = field(default_factory=list)
    ports: list[PortRule] = field(default_factory=list)
    links: list[LinkAccept] = field(default_factory=list)
    userland_proxy: bool = True


def _q(name: str) -> str:
    return json.dumps(name)  # nft accepts double-quoted strings


def render(table: str, rules: Ruleset) -> str:
    """The nft script that (re)defines every chain of ``table`` except ``user``."""
    t = f"ip {table}"
    lines = [
        f"add table {t}",
        f"add chain {t} user",
        f"add set {t} bridges {{ type ifname; }}",
        f"flush set {t} bridges",
        f"add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}",
        f"add chain {t} isolation",
        f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
        f"add chain {t} output {{ type nat hook output priority -100; policy accept; }}",
        f"add chain {t} portmap",
        f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
    ]
    for chain in ("forward", "isolation", "prerouting", "output", "portmap", "postrouting"):
        lines.append(f"flush chain {t} {chain}")
    bridges = [n.bridge for n in rules.networks]
    if bridges:
        lines.append(f"add element {t} bridges {{ {', '.join(_q(b) for b in bridges)} }}")

    # filter
    lines.append(f"add rule {t} forward jump user")
    lines.append(f"add rule {t} forward jump isolation")
    for n in rules.networks:
        b = _q(n.bridge)
        lines.append(f"add rule {t} isolation iifname {b} oifname != {b} oifname @bridges drop")
    by_bridge: dict[str, list[PortRule]] = {}
    for p in rules.ports:
        by_bridge.setdefault(p.bridge, []).append(p)
    for n in rules.networks:
        b = _q(n.bridge)
        if n.internal:
            lines.append(f"add rule {t} forward iifname {b} oifname {b} {'accept' if n.icc else 'drop'}")
            lines.append(f"add rule {t} forward iifname {b} drop")
            lines.append(f"add rule {t} forward oifname {b} drop")
            continue
        lines.append(f"add rule {t} forward oifname {b} ct state established,related accept")
        for p in by_bridge.get(n.bridge, []):
            lines.append(
                f"add rule {t} forward iifname != {b} oifname {b} ip daddr {p.container_ip} "
                f"{p.proto} dport {p.container_port} accept"
            )
        if not n.icc:
            for link in (x for x in rules.links if x.bridge == n.bridge):
                lines.append(
                    f"add rule {t} forward iifname {b} oifname {b} ip saddr {link.parent_ip} "
                    f"ip daddr {link.child_ip} {link.proto} dport {link.port} accept"
                )
                lines.append(
                    f"add rule {t} forward iifname {b} oifname {b} ip saddr {link.child_ip} "
                    f"ip daddr {link.parent_ip} {link.proto} sport {link.port} accept"
                )
        lines.append(f"add rule {t} forward iifname {b} oifname {b} {'accept' if n.icc else 'drop'}")
        lines.append(f"add rule {t} forward iifname {b} oifname != {b} accept")
        lines.append(f"add rule {t} forward oifname {b} drop")

    # nat
    lines.append(f"add rule {t} prerouting fib daddr type local jump portmap")
    if rules.userland_proxy:
        lines.append(f"add rule {t} output ip daddr != 127.0.0.0/8 fib daddr type local jump portmap")
    else:
        lines.append(f"add rule {t} output fib daddr type local jump portmap")
    internal = {n.bridge for n in rules.networks if n.internal}
    if rules.userland_proxy:
        for n in rules.networks:
            # containers reach published ports through the proxy on the host address (hairpin)
            lines.append(f"add rule {t} portmap iifname {_q(n.bridge)} return")
    for p in rules.ports:
        if p.bridge in internal:
            continue
        match = f"ip daddr {p.host_ip} " if p.host_ip and p.host_ip != "0.0.0.0" else ""
        ifmatch = f"iifname != {_q(p.bridge)} " if rules.userland_proxy else ""
        lines.append(
            f"add rule {t} portmap {ifmatch}{match}{p.proto} dport {p.host_port} "
            f"dnat to {p.container_ip}:{p.container_port}"
        )
    for n in rules.networks:
        if n.masquerade and n.subnet and not n.internal:
            lines.append(f"add rule {t} postrouting ip saddr {n.subnet} oifname != {_q(n.bridge)} masquerade")
        if not rules.userland_proxy and not n.internal:
            lines.append(f"add rule {t} postrouting oifname {_q(n.bridge)} fib saddr type local masquerade")
    for p in rules.ports:
        if p.bridge in internal:
            continue
        lines.append(
            f"add rule {t} postrouting ip saddr {p.container_ip} ip daddr {p.container_ip} "
            f"{p.proto} dport {p.container_port} masquerade"
        )
    return "\n".join(lines) + "\n"


def nft(script: str, *args: str) -> str:
    proc = subprocess.run([NFT, *args, "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FirewallError(f"nft failed: {proc.stderr.strip()}\n{script}")
    return proc.stdout


def nft_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NFT, *args], capture_output=True, text=True, check=False)


class Firewall:
    """engine's nftables table for one daemon."""

    def __init__(self, table: str, enabled: bool = True) -> None:
        self.table = table
        self.enabled = enabled

    def apply(self, rules: Ruleset) -> None:
        if not self.enabled:
            return
        nft(render(self.table, rules))

    def exists(self) -> bool:
        return nft_cmd("list", "table", "ip", self.table).returncode == 0

    def user_rules(self) -> int:
        """How many rules users put in chain ``user``."""
        proc = nft_cmd("-j", "list", "chain", "ip", self.table, "user")
        if proc.returncode != 0:
            return 0
        try:
            items = json.loads(proc.stdout).get("nftables", [])
        except ValueError:
            return 0
        return sum(1 for item in items if "rule" in item)

    def remove(self) -> None:
        """Delete the table; a ``user`` chain with rules in it is kept (as dockerd keeps DOCKER-USER)."""
        if not self.exists():
            return
        if self.user_rules():
            t = f"ip {self.table}"
            chains = ("forward", "isolation", "prerouting", "output", "portmap", "postrouting")
            script = "".join(f"flush chain {t} {c}\n" for c in chains)
            script += "".join(f"delete chain {t} {c}\n" for c in chains)
            nft(script + f"delete set {t} bridges\n")
            return
        proc = nft_cmd("delete", "table", "ip", self.table)
        if proc.returncode != 0 and self.exists():
            raise FirewallError(f"nft delete table failed: {proc.stderr.strip()}")
