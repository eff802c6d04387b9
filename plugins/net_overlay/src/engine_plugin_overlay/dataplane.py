"""The VXLAN data path of one overlay network on this host, as libnetwork lays it out.

Per network a sandbox network namespace holds a bridge ``br0`` (with the gateway address) and
the VXLAN device ``vxlan0``. The VXLAN device is created in the daemon's namespace, where the
underlay (the advertised address) lives, and then moved into the sandbox: its UDP socket stays
in the daemon's namespace while the device serves the sandbox. Containers hang on ``br0`` by a
veth pair. Remote endpoints are static entries: an FDB entry (their MAC is behind their host's
VTEP) and a neighbour entry (answered by the device's ARP proxy), so there is no flooding and
no learning.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from engine.drivers import netns

VXLAN_PORT = 4789
MTU = 1450  # 1500 minus the VXLAN encapsulation (50 bytes)
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
AF_BRIDGE = 7
EEXIST = 17
ENOENT = 2
ESRCH = 3
ENODEV = 19


def mac_of(ip: ipaddress.IPv4Address) -> str:
    """dockerd's MAC for an address: 02:42 and the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def vxlan_name(vni: int, instance: str) -> str:
    """The device's transient name in the daemon's namespace (unique per VNI and engine instance)."""
    return f"vx{vni:06x}{_suffix(instance)}"


def _suffix(instance: str) -> str:
    return hashlib.sha256(instance.encode()).hexdigest()[:4]


def create_sandbox(path: Path, vni: int, local_ip: str, gateway: ipaddress.IPv4Interface | None, instance: str) -> None:
    """The network's namespace with br0 (gateway address) and vxlan0; idempotent."""
    if netns.is_mounted(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    netns.create(path)
    try:

        def bridge() -> None:
            with IPRoute() as ipr:
                ipr.link("add", ifname="br0", kind="bridge", mtu=MTU)
                index = _index(ipr, "br0")
                if gateway is not None:
                    ipr.addr("add", index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
                ipr.link("set", index=index, state="up")

        netns.run_in(path, bridge)
        name = vxlan_name(vni, instance)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with IPRoute() as ipr:
                old = _index(ipr, name)
                if old is not None:  # left by a daemon killed between add and move
                    ipr.link("del", index=old)
                ipr.link(
                    "add",
                    ifname=name,
                    kind="vxlan",
                    vxlan_id=vni,
                    vxlan_local=local_ip,
                    vxlan_port=VXLAN_PORT,
                    vxlan_learning=0,
                    vxlan_proxy=1,
                    mtu=MTU,
                )
                ipr.link("set", index=_index(ipr, name), net_ns_fd=fd, ifname="vxlan0")
        finally:
            os.close(fd)

        def attach() -> None:
            with IPRoute() as ipr:
                ipr.link("set", index=_index(ipr, "vxlan0"), master=_index(ipr, "br0"), state="up")

        netns.run_in(path, attach)
    except BaseException:
        netns.delete(path)
        raise


def delete_sandbox(path: Path) -> None:
    """Delete vxlan0 first, then the namespace (which takes br0 and the veth ends with it).

    The kernel tears a namespace down asynchronously; until it has, a VXLAN device left in it
    still holds its VNI on the daemon namespace's UDP socket, and a new network given the same
    VNI at once would fail with EEXIST. Deleting the device explicitly frees the VNI at once.
    """
    if netns.is_mounted(path):

        def inside() -> None:
            with IPRoute() as ipr:
                index = _index(ipr, "vxlan0")
                if index is not None:
                    ipr.link("del", index=index)

        try:
            netns.run_in(path, inside)
        except (OSError, NetlinkError):
            pass  # the namespace goes anyway
    netns.delete(path)


def add_peer(path: Path, ip: ipaddress.IPv4Address, mac: str, host: str) -> None:
    """A remote endpoint: its MAC is behind ``host``'s VTEP; its address answers with that MAC."""

    def inside() -> None:
        with IPRoute() as ipr:
            index = _index(ipr, "vxlan0")
            if index is None:
                return
            ipr.neigh("replace", dst=str(ip), lladdr=mac, ifindex=index, state=NUD_PERMANENT)
            ipr.fdb("replace", ifindex=index, lladdr=mac, dst=host, state=NUD_PERMANENT, flags=NTF_SELF)

    netns.run_in(path, inside)


def remove_peer(path: Path, ip: ipaddress.IPv4Address, mac: str, host: str) -> None:
    def inside() -> None:
        with IPRoute() as ipr:
            index = _index(ipr, "vxlan0")
            if index is None:
                return
            for call in (
                lambda: ipr.neigh("del", dst=str(ip), lladdr=mac, ifindex=index),
                lambda: ipr.fdb("del", ifindex=index, lladdr=mac, dst=host, flags=NTF_SELF),
            ):
                try:
                    call()
                except NetlinkError as exc:
                    if exc.code not in (ENOENT, ESRCH, ENODEV):
                        raise

    if netns.is_mounted(path):
        netns.run_in(path, inside)


def veth_name(endpoint_id: str) -> str:
    return "veth" + endpoint_id[:7]


def join(
    path: Path, endpoint_id: str, sandbox_key: str, ifname: str, address: ipaddress.IPv4Interface, mac: str
) -> None:
    """A veth pair: one end on br0 in the network's namespace, the other ``ifname`` in the container's."""
    fd = os.open(sandbox_key, os.O_RDONLY | os.O_CLOEXEC)
    try:

        def pair() -> None:
            with IPRoute() as ipr:
                peer = {"ifname": ifname, "net_ns_fd": fd, "address": mac, "mtu": MTU}
                ipr.link("add", ifname=veth_name(endpoint_id), kind="veth", peer=peer, mtu=MTU,
                         master=_index(ipr, "br0"), state="up")  # fmt: skip

        netns.run_in(path, pair)
    finally:
        os.close(fd)

    def inside() -> None:
        with IPRoute() as ipr:
            index = _index(ipr, ifname)
            ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
            ipr.link("set", index=index, state="up")

    netns.run_in(sandbox_key, inside)


def leave(path: Path, endpoint_id: str) -> None:
    def inside() -> None:
        with IPRoute() as ipr:
            index = _index(ipr, veth_name(endpoint_id))
            if index is not None:
                try:
                    ipr.link("del", index=index)
                except NetlinkError as exc:
                    if exc.code != ENODEV:
                        raise

    if netns.is_mounted(path):
        netns.run_in(path, inside)


def vxlan_leftovers(instance: str) -> list[str]:
    """VXLAN devices of this instance still in the daemon's namespace (a move that never happened)."""
    suffix = _suffix(instance)
    with IPRoute() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return [n for n in names if n and n.startswith("vx") and n.endswith(suffix) and len(n) == 12]
