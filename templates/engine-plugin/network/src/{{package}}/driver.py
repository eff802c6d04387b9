"""The {{driver_name}} network driver.

This skeleton already passes engine-testkit's conformance suite: each network is a Linux bridge
with the gateway address on it, each endpoint a veth pair with one end on the bridge and the other
in the container's network namespace (as ``eth0``, with its address and a default route through
the gateway). Containers of one network reach each other and the host; nothing is NATed or
published and no firewall rule is written: replace the marked parts (a VXLAN, an IPVLAN, routes
instead of a bridge...) and keep the suite green.

The contract, in short (see ``engine.drivers.network.NetworkDriver`` for the full text): core owns
networks, endpoints, addresses (IPAM) and namespaces and calls the driver, from worker threads, in
this order for one container on one network::

    create_endpoint -> join -> program_external_connectivity   (container start / connect)
    revoke_external_connectivity -> leave -> delete_endpoint    (container stop / disconnect)

``create_network`` also runs at every daemon start ("create or restore": idempotent),
``delete_network`` at shutdown for networks without live endpoints, ``restore_endpoint`` for
containers that kept running across a restart (live-restore), and ``reconcile`` after that, to
remove what a crash left behind. What the driver made is recorded under ``context.state_dir``,
so a new driver instance knows it.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Mapping
from typing import Any

from pyroute2.iproute import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from engine.drivers import netns
from engine.drivers.network import (
    Capability,
    EndpointInterface,
    JoinInfo,
    NetworkDriver,
    NetworkDriverContext,
    NetworkSpec,
    SandboxInfo,
)
from engine.drivers.records import RecordDir
from engine.errors import InvalidParameter, NotFound

#: ``docker network create -o com.docker.network.driver.mtu=1400``
OPT_MTU = "com.docker.network.driver.mtu"
KNOWN_OPTIONS = frozenset({OPT_MTU})
ENODEV, ENOENT, EEXIST = 19, 2, 17


def bridge_name(network_id: str) -> str:
    return "nb" + network_id[:12]  # link names have at most 15 characters


def veth_name(endpoint_id: str) -> str:
    return "nv" + endpoint_id[:12]


def _index(ipr: IPRoute, name: str) -> int | None:
    try:
        found = ipr.link("get", ifname=name)
    except NetlinkError as exc:
        if exc.code in (ENODEV, ENOENT):
            return None
        raise
    return found[0]["index"] if found else None


def _delete_link(name: str) -> None:
    with IPRoute() as ipr:
        try:
            ipr.link("del", ifname=name)
        except NetlinkError as exc:
            if exc.code not in (ENODEV, ENOENT):
                raise


class {{class_name}}(NetworkDriver):
    name = "{{driver_name}}"  # must equal the entry-point name in pyproject.toml
    API_VERSION = 1  # the driver API (engine.drivers.DRIVER_API_VERSION) this was written and tested against
    capability = Capability(data_scope="local")

    def __init__(self, context: NetworkDriverContext) -> None:
        super().__init__(context)
        self._lock = threading.Lock()
        self.networks: dict[str, dict[str, Any]] = {}  # network id -> its record
        self.endpoints: dict[str, dict[str, Any]] = {}  # endpoint id -> its record
        self._network_records = RecordDir(context.state_dir / "networks")
        self._endpoint_records = RecordDir(context.state_dir / "endpoints")

    def validate_options(self, options: Mapping[str, str]) -> None:
        for key in options:
            if key not in KNOWN_OPTIONS:
                raise InvalidParameter(f"{self.name}: unknown option {key}")
        mtu = options.get(OPT_MTU)
        if mtu is not None and (not mtu.isdigit() or int(mtu) < 68):
            raise InvalidParameter(f"invalid MTU number: {mtu}")

    # ---- networks --------------------------------------------------------------------------------

    def create_network(self, spec: NetworkSpec) -> None:
        # REPLACE: whatever carries your network's traffic (here: a bridge with the gateway on it)
        name = bridge_name(spec.network_id)
        saved = self._network_records.load(spec.network_id) or {}
        created = bool(saved.get("created"))
        with IPRoute() as ipr:
            index = _index(ipr, name)
            if index is None:
                ipr.link("add", ifname=name, kind="bridge")
                created = True
                index = _index(ipr, name)
            if OPT_MTU in spec.options:
                ipr.link("set", index=index, mtu=int(spec.options[OPT_MTU]))
            have = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)}
            for data in spec.ipv4:
                gateway = data.gateway
                if gateway is not None and (str(gateway.ip), gateway.network.prefixlen) not in have:
                    ipr.addr("add", index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
            ipr.link("set", index=index, state="up")
        record = {
            "bridge": name,
            "created": created,
            "gateway": str(spec.ipv4[0].gateway.ip) if spec.ipv4 and spec.ipv4[0].gateway else "",
            "mtu": int(spec.options.get(OPT_MTU, 0)),
        }
        self._network_records.save(spec.network_id, record)
        with self._lock:
            self.networks[spec.network_id] = record

    def delete_network(self, network_id: str) -> None:
        with self._lock:
            record = self.networks.pop(network_id, None) or self._network_records.load(network_id)
        if record and record.get("created"):
            _delete_link(record["bridge"])
        self._network_records.delete(network_id)

    # ---- endpoints -------------------------------------------------------------------------------

    def create_endpoint(
        self, network_id: str, endpoint_id: str, iface: EndpointInterface, options: Mapping[str, Any]
    ) -> None:
        if network_id not in self.networks:
            raise NotFound(f"{self.name}: network {network_id} not found")
        mac = str(options.get("mac_address") or "")
        if not mac and iface.address is not None:
            mac = "02:42:" + ":".join(f"{b:02x}" for b in iface.address.ip.packed)  # dockerd's choice
        iface.mac_address = mac
        record = {
            "network_id": network_id,
            "veth": veth_name(endpoint_id),
            "address": str(iface.address) if iface.address else "",
            "mac": mac,
        }
        # recorded before anything exists, so a crash in between leaves nothing reconcile cannot find
        self._endpoint_records.save(endpoint_id, record)
        with self._lock:
            self.endpoints[endpoint_id] = record

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            self.endpoints.pop(endpoint_id, None)
        self._endpoint_records.delete(endpoint_id)

    def join(self, network_id: str, endpoint_id: str, sandbox: SandboxInfo) -> JoinInfo:
        # REPLACE: how a container gets onto your network
        network, endpoint = self.networks[network_id], self.endpoints[endpoint_id]
        fd = os.open(sandbox.key, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with IPRoute() as ipr:
                peer: dict[str, Any] = {"ifname": sandbox.ifname, "net_ns_fd": fd}
                if endpoint["mac"]:
                    peer["address"] = endpoint["mac"]
                if network["mtu"]:
                    peer["mtu"] = network["mtu"]
                master = _index(ipr, network["bridge"])
                # one request: the peer is born inside the sandbox, its name never taken on the host
                ipr.link("add", ifname=endpoint["veth"], kind="veth", peer=peer, master=master, state="up")
        finally:
            os.close(fd)
        address = ipaddress.IPv4Interface(endpoint["address"]) if endpoint["address"] else None
        gateway = network["gateway"] if sandbox.default_route else ""

        def inside() -> None:
            with IPRoute() as ipr:
                index = _index(ipr, sandbox.ifname)
                if address is not None:
                    ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
                ipr.link("set", index=index, state="up")
                if gateway:
                    ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)

        try:
            netns.run_in(sandbox.key, inside)
        except BaseException:
            _delete_link(endpoint["veth"])
            raise
        return JoinInfo(interface_name=sandbox.ifname, gateway=gateway)

    def leave(self, network_id: str, endpoint_id: str) -> None:
        # deleting the host end deletes its peer in the sandbox too
        _delete_link(veth_name(endpoint_id))

    # ---- restarts --------------------------------------------------------------------------------

    def restore_endpoint(
        self, network_id: str, endpoint_id: str, iface: EndpointInterface, sandbox: SandboxInfo, ports: list[Any]
    ) -> None:
        record = self._endpoint_records.load(endpoint_id) or {
            "network_id": network_id,
            "veth": veth_name(endpoint_id),
            "address": str(iface.address) if iface.address else "",
            "mac": iface.mac_address,
        }
        with self._lock:
            self.endpoints[endpoint_id] = record

    def reconcile(self, endpoint_ids: set[str]) -> None:
        for endpoint_id, record in self._endpoint_records.load_all().items():
            if endpoint_id not in endpoint_ids:
                _delete_link(record["veth"])
                self._endpoint_records.delete(endpoint_id)
        for network_id, record in self._network_records.load_all().items():
            if network_id not in self.networks:  # core did not restore it: gone while we were down
                if record.get("created"):
                    _delete_link(record["bridge"])
                self._network_records.delete(network_id)

    # ---- diagnostics -----------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        names = {r["bridge"] for r in self._network_records.load_all().values() if r.get("created")}
        names |= {r["bridge"] for r in self.networks.values() if r.get("created")}
        names |= {r["veth"] for r in self._endpoint_records.load_all().values()}
        names |= {r["veth"] for r in self.endpoints.values()}
        with IPRoute() as ipr:
            return [f"link {name}" for name in sorted(names) if _index(ipr, name) is not None]
