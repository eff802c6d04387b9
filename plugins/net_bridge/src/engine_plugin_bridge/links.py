"""Netlink work through pyroute2: bridges, veth pairs, addresses and routes, in and out of namespaces."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from pyroute2.iproute import IPRoute  # not `from pyroute2`: engine.lazy_packages
from pyroute2.netlink.exceptions import NetlinkError

from engine.drivers import netns

ENOENT = 2
EEXIST = 17
ENODEV = 19
IFA_F_NODAD = 0x02


def link_index(ipr: IPRoute, name: str) -> int | None:
    """The index of one link by name (a single RTM_GETLINK, not a dump of every link)."""
    try:
        found = ipr.link("get", ifname=name)
    except NetlinkError as exc:
        if exc.code in (ENODEV, ENOENT):
            return None
        raise
    return found[0]["index"] if found else None


def link_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return link_index(ipr, name) is not None


def links_matching(prefixes: Iterable[str]) -> list[str]:
    """Names of the links in the daemon's namespace that start with one of ``prefixes``."""
    prefixes = tuple(prefixes)
    with IPRoute() as ipr:
        names = [link.get("ifname") or "" for link in ipr.get_links()]
    return sorted(n for n in names if n.startswith(prefixes))


def ensure_bridge(name: str, mtu: int, addresses: Iterable[ipaddress.IPv4Interface | ipaddress.IPv6Interface]) -> bool:
    """Create the bridge if missing, give it ``addresses`` and bring it up. Returns whether it was created."""
    created = False
    with IPRoute() as ipr:
        index = link_index(ipr, name)
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="bridge")
                created = True
            except NetlinkError as exc:
                if exc.code != EEXIST:
                    raise
            index = link_index(ipr, name)
            assert index is not None
        if mtu:
            ipr.link("set", index=index, mtu=mtu)
        have = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index)}
        for iface in addresses:
            if (str(iface.ip), iface.network.prefixlen) in have:
                continue
            family = 10 if iface.version == 6 else 2
            try:
                ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen, family=family)
            except NetlinkError as exc:
                if exc.code != EEXIST:
                    raise
        ipr.link("set", index=index, state="up")
    return created


def delete_link(name: str) -> None:
    """Delete a link (bridge, veth) by name; a missing one is fine."""
    with IPRoute() as ipr:
        try:
            ipr.link("del", ifname=name)
        except NetlinkError as exc:
            if exc.code not in (ENODEV, ENOENT):
                raise


def remove_addresses(name: str, addresses: Iterable[ipaddress.IPv4Interface | ipaddress.IPv6Interface]) -> None:
    with IPRoute() as ipr:
        index = link_index(ipr, name)
        if index is None:
            return
        for iface in addresses:
            try:
                ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
            except NetlinkError:
                pass


def create_veth(host_name: str, bridge: str, mtu: int, sandbox_key: str, ifname: str, mac: str = "") -> None:
    """A veth pair in one netlink request: ``host_name`` up on ``bridge`` here, its peer ``ifname``
    (with ``mac``) created directly in the sandbox, so no name is ever taken in the host namespace."""
    fd = os.open(sandbox_key, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as ipr:
            master = link_index(ipr, bridge)
            if master is None:
                raise RuntimeError(f"bridge {bridge} vanished")
            peer: dict[str, object] = {"ifname": ifname, "net_ns_fd": fd}
            extra: dict[str, object] = {}
            if mac:
                peer["address"] = mac
            if mtu:
                peer["mtu"] = extra["mtu"] = mtu
            ipr.link("add", ifname=host_name, kind="veth", peer=peer, master=master, state="up", **extra)
    finally:
        os.close(fd)


def configure_sandbox_interface(
    sandbox_key: str,
    ifname: str,
    address: ipaddress.IPv4Interface | None,
    address_v6: ipaddress.IPv6Interface | None,
    gateway: str,
    gateway_v6: str,
    default_route: bool,
) -> None:
    """Inside the sandbox: addresses, up, and the default route through the gateway."""

    def inside() -> None:
        with IPRoute() as ipr:
            index = link_index(ipr, ifname)
            if index is None:
                raise RuntimeError(f"{ifname} not found in {sandbox_key}")
            if address is not None:
                ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
            if address_v6 is not None:
                ipr.addr(
                    "add",
                    index=index,
                    address=str(address_v6.ip),
                    prefixlen=address_v6.network.prefixlen,
                    family=10,
                    flags=IFA_F_NODAD,  # usable at once, as libnetwork does (no duplicate detection wait)
                )
            ipr.link("set", index=index, state="up")
            if default_route and gateway:
                ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)
            if default_route and gateway_v6:
                ipr.route("replace", dst="::/0", gateway=gateway_v6, oif=index, family=10)

    netns.run_in(sandbox_key, inside)


def set_sysctl(path: str, value: str) -> str | None:
    """Write a /proc/sys value; returns the old one (None when the file does not exist)."""
    file = Path("/proc/sys") / path
    try:
        old = file.read_text().strip()
    except OSError:
        return None
    if old != value:
        file.write_text(value)
    return old


def get_sysctl(path: str) -> str | None:
    try:
        return (Path("/proc/sys") / path).read_text().strip()
    except OSError:
        return None
