"""The ``overlay`` network driver: networks shared by every engine of one cluster store (etcd).

Control plane: the cluster store (:mod:`.store`): networks, VNIs, subnets, addresses and
endpoints, allocated with compare-and-swap transactions, endpoints leased. Data plane: VXLAN
(:mod:`.dataplane`), one sandbox namespace per network on each host that has a container on it,
made when the first container joins and removed when the last one leaves.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.drivers import DRIVER_API_VERSION, netns
from engine.drivers.cluster import ClusterConfig, advertise_ip, parse_cluster
from engine.drivers.network import (
    Capability,
    EndpointInterface,
    JoinInfo,
    NetworkDriver,
    NetworkDriverContext,
    NetworkSpec,
    Peer,
    SandboxInfo,
)
from engine.drivers.records import RecordDir
from engine.errors import EngineError, InvalidParameter, NotFound, Unavailable

from . import dataplane
from .store import ClusterState, RemoteEndpoint

log = logging.getLogger(__name__)

VNI_OPTION = "com.docker.network.driver.overlay.vxlanid_list"
ENCRYPTED_OPTION = "encrypted"
NO_STORE = (
    "overlay networks need a cluster store: set cluster-store (etcd://host:port) and cluster-advertise "
    "(<ip|interface>:<port>) in daemon.json"
)
SYNC_WAIT_S = 2.0


@dataclass
class _Local:
    network_id: str
    address: ipaddress.IPv4Interface
    mac: str
    name: str = ""
    aliases: tuple[str, ...] = ()
    joined: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "network_id": self.network_id,
            "address": str(self.address),
            "mac": self.mac,
            "name": self.name,
            "aliases": list(self.aliases),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Local:
        return cls(
            data["network_id"],
            ipaddress.IPv4Interface(data["address"]),
            data["mac"],
            data.get("name", ""),
            tuple(data.get("aliases") or ()),
        )


class OverlayNetworkDriver(NetworkDriver):
    name = "overlay"
    API_VERSION = DRIVER_API_VERSION
    capability = Capability(data_scope="global", connectivity_scope="global")
    allocates_addresses = True

    def __init__(self, context: NetworkDriverContext) -> None:
        super().__init__(context)
        self.root = Path(context.exec_root) / "overlay"
        self.state: ClusterState | None = None
        self.cluster: ClusterConfig | None = None
        self._problem = NO_STORE
        try:
            self.cluster = parse_cluster(context.config)
        except ValueError as exc:
            self._problem = f"overlay: {exc}"
        self._lock = threading.RLock()
        self._sandboxes: dict[str, Path] = {}  # network id -> the network's namespace here
        self._local: dict[str, _Local] = {}  # endpoint id -> this host's endpoint
        self._pending: dict[str, list[str]] = {}  # network id -> subnets reserved by assign_subnets
        #: this host's endpoints on disk, so that a restarted daemon re-adopts (live-restore) or
        #: withdraws (crash) them
        self._records = RecordDir(Path(context.state_dir) / "endpoints")

    # ---- life ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.cluster is None:
            return
        try:
            me = advertise_ip(self.cluster)
        except ValueError as exc:
            self._problem = f"overlay: {exc}"
            log.error("%s", self._problem)
            return
        state = ClusterState(self.cluster, self.context.instance)
        state.on_endpoint = self._peer_changed
        state.on_network_gone = self._network_gone
        state.start(me)
        self.state = state
        # the first `docker network ls` already shows the cluster's networks (when the store is up)
        if not state.wait_synced(SYNC_WAIT_S):
            log.warning("overlay: cluster store %s not reachable yet; retrying in the background", self.cluster.store)

    def stop(self) -> None:
        """Networks with a joined endpoint (containers kept by live-restore) keep their data path
        and their endpoints stay in the store until the lease runs out; the rest goes now."""
        with self._lock:
            live = {e.network_id for e in self._local.values() if e.joined}
            for network_id, path in list(self._sandboxes.items()):
                if network_id not in live:
                    dataplane.delete_sandbox(path)
            self._sandboxes.clear()
            self._local.clear()
        if self.state is not None:
            # without live endpoints the lease is revoked: this engine's keys leave the store at once
            self.state.stop(revoke=not live)

    def restore_endpoint(
        self,
        network_id: str,
        endpoint_id: str,
        iface: EndpointInterface,
        sandbox: SandboxInfo,
        ports: list[Any],
    ) -> None:
        local = self._local_of(endpoint_id)
        if local is None:
            return
        local.joined = True
        with self._lock:
            self._local[endpoint_id] = local
        state = self._need()
        data = self._network(state, network_id)
        path = self._sandbox_path(network_id, data)
        if netns.is_mounted(path):
            with self._lock:
                self._sandboxes[network_id] = path
        # the address and the endpoint under this instance's lease
        state.claim_address(network_id, str(local.address.ip), endpoint_id)
        state.publish_endpoint(self._remote(state, network_id, endpoint_id, local))

    def reconcile(self, endpoint_ids: set[str]) -> None:
        """Withdraw the endpoints a killed daemon left (in the store and here), and the namespaces of
        networks no endpoint here uses."""
        for endpoint_id, data in self._records.load_all().items():
            if endpoint_id not in endpoint_ids:
                self.delete_endpoint(data["network_id"], endpoint_id)
        with self._lock:
            mine = set(self._sandboxes.values())
        for path in sorted(self.root.glob("*")) if self.root.exists() else []:
            if path not in mine:
                dataplane.delete_sandbox(path)

    def _local_of(self, endpoint_id: str) -> _Local | None:
        with self._lock:
            local = self._local.get(endpoint_id)
        if local is None:
            data = self._records.load(endpoint_id)
            local = _Local.from_json(data) if data else None
        return local

    def _need(self) -> ClusterState:
        """The cluster state, or the error that says why overlay work cannot be done."""
        if self.state is None:
            raise Unavailable(self._problem) if self.cluster is not None else InvalidParameter(self._problem)
        self.state.require()
        return self.state

    # ---- networks --------------------------------------------------------------------------------

    def validate_options(self, options: Mapping[str, str]) -> None:
        if ENCRYPTED_OPTION in options:
            raise InvalidParameter(
                "overlay: --opt encrypted is not supported: engine does not implement IPsec ESP between "
                "hosts (xfrm states and policies with key rotation), and it never sends the traffic of an "
                "encrypted network in plaintext; create the network without it, or encrypt at the application"
            )
        if VNI_OPTION in options:
            raw = options[VNI_OPTION].split(",")[0]
            if not raw.isdigit() or not 1 <= int(raw) < (1 << 24):
                raise InvalidParameter(f"invalid VXLAN network identifier {options[VNI_OPTION]!r}")

    def assign_subnets(self, network_id: str, subnets: list[str]) -> list[str]:
        state = self._need()
        taken: list[str] = []
        try:
            for subnet in subnets:
                if ":" in subnet:
                    raise InvalidParameter("overlay: IPv6 subnets are not supported")
                taken.append(state.take_subnet(network_id, subnet))
        except BaseException:
            state.release_subnets(taken)
            raise
        with self._lock:
            self._pending[network_id] = taken
        return taken

    def create_network(self, spec: NetworkSpec) -> None:
        state = self._need()
        if spec.network_id in state.networks:
            return  # known to the cluster already
        with self._lock:
            subnets = self._pending.get(spec.network_id, [])
        wanted = spec.options.get(VNI_OPTION, "")
        vni = state.take_vni(spec.network_id, int(wanted.split(",")[0]) if wanted else 0)
        try:
            for pool in spec.ipv4:
                # the gateway and aux addresses are the network's for good (no lease)
                if pool.gateway is not None:
                    state.take_address(spec.network_id, pool.pool, "", str(pool.gateway.ip), "gateway", False)
                for name, aux in pool.aux_addresses.items():
                    state.take_address(spec.network_id, pool.pool, "", str(aux.ip), f"aux:{name}", False)
            data = {"record": dict(spec.record), "vni": vni, "subnets": subnets, "pools": _pools(spec)}
            state.publish_network(spec.network_id, data, create=True)
        except BaseException:
            state.release_vni(vni)
            state.release_addresses(spec.network_id)
            raise
        with self._lock:
            self._pending.pop(spec.network_id, None)

    def delete_network(self, network_id: str) -> None:
        state = self._need()
        with self._lock:
            pending = self._pending.pop(network_id, None)
        if network_id not in state.networks:
            if pending:  # a create that failed after assign_subnets
                state.release_subnets(pending)
            return
        state.remove_network(network_id)
        self._drop_sandbox(network_id)

    def global_networks(self) -> list[Mapping[str, Any]] | None:
        state = self.state
        if state is None or not state.synced:
            return None
        with state._lock:
            return [dict(d["record"]) for d in state.networks.values() if d.get("record")]

    def network_info(self, network_id: str) -> dict[str, str]:
        data = self.state.networks.get(network_id) if self.state is not None else None
        return {VNI_OPTION: str(data["vni"])} if data else {}

    def peers(self, network_id: str) -> list[Peer]:
        state = self.state
        if state is None:
            return []
        return [
            Peer(ep.name, str(ep.ip.ip), ep.aliases) for ep in state.endpoints_of(network_id) if ep.host != state.me
        ]

    # ---- endpoints -------------------------------------------------------------------------------

    def _network(self, state: ClusterState, network_id: str) -> dict[str, Any]:
        data = state.networks.get(network_id)
        if data is None:
            raise NotFound(f"network {network_id} not found in the cluster store {state.cluster.store}")
        return data

    def create_endpoint(
        self, network_id: str, endpoint_id: str, iface: EndpointInterface, options: Mapping[str, Any]
    ) -> None:
        state = self._need()
        data = self._network(state, network_id)
        if not data.get("pools"):
            raise InvalidParameter("overlay network has no IPv4 subnet")
        pool = data["pools"][0]
        subnet = ipaddress.IPv4Network(pool["subnet"])
        wanted = str(options.get("ipv4_address") or "")
        ip = state.take_address(network_id, subnet, pool.get("ip_range") or "", wanted, endpoint_id, True)
        address = ipaddress.IPv4Interface(f"{ip}/{subnet.prefixlen}")
        mac = str(options.get("mac_address") or "") or dataplane.mac_of(ip)
        name = str(options.get("container_name") or "").lstrip("/")
        local = _Local(network_id, address, mac, name, tuple(options.get("aliases") or ()))
        try:
            self._records.save(endpoint_id, local.to_json())
            state.publish_endpoint(self._remote(state, network_id, endpoint_id, local))
        except BaseException:
            self._records.delete(endpoint_id)
            state.release_address(network_id, str(ip))
            raise
        iface.address, iface.mac_address = address, mac
        with self._lock:
            self._local[endpoint_id] = local

    @staticmethod
    def _remote(state: ClusterState, network_id: str, endpoint_id: str, local: _Local) -> RemoteEndpoint:
        return RemoteEndpoint(network_id, endpoint_id, local.address, local.mac, state.me, local.name, local.aliases)

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        local = self._local_of(endpoint_id)
        with self._lock:
            self._local.pop(endpoint_id, None)
        if local is None:
            return
        state = self.state
        if state is not None:
            try:
                state.withdraw_endpoint(network_id, endpoint_id)
                state.release_address(network_id, str(local.address.ip))
            except Unavailable as exc:  # the lease takes them away when the store is back
                log.warning("overlay: %s", exc.message)
        self._records.delete(endpoint_id)
        with self._lock:
            still_used = any(e.network_id == network_id for e in self._local.values())
        if not still_used:
            self._drop_sandbox(network_id)

    def join(self, network_id: str, endpoint_id: str, sandbox: SandboxInfo) -> JoinInfo:
        state = self._need()
        local = self._local_of(endpoint_id)
        with self._lock:
            if local is None:
                raise NotFound(f"overlay endpoint {endpoint_id} not found")
            path = self._ensure_sandbox(state, network_id)
        dataplane.join(path, endpoint_id, sandbox.key, sandbox.ifname, local.address, local.mac)
        local.joined = True
        return JoinInfo(interface_name=sandbox.ifname)

    def leave(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            path = self._sandboxes.get(network_id)
            local = self._local.get(endpoint_id)
        if path is not None and local is not None and local.joined:
            dataplane.leave(path, endpoint_id)
            local.joined = False

    # ---- the data path here ------------------------------------------------------------------------

    def _ensure_sandbox(self, state: ClusterState, network_id: str) -> Path:
        """The network's namespace on this host, with every remote endpoint programmed (lock held)."""
        path = self._sandboxes.get(network_id)
        if path is not None:
            return path
        data = self._network(state, network_id)
        pool = data["pools"][0] if data.get("pools") else {}
        gateway = ipaddress.IPv4Interface(pool["gateway"]) if pool.get("gateway") else None
        path = self._sandbox_path(network_id, data)
        dataplane.create_sandbox(path, int(data["vni"]), state.me, gateway, self.context.instance)
        self._sandboxes[network_id] = path
        for ep in state.endpoints_of(network_id):
            if ep.host != state.me:
                dataplane.add_peer(path, ep.ip.ip, ep.mac, ep.host)
        return path

    def _sandbox_path(self, network_id: str, data: Mapping[str, Any]) -> Path:
        return self.root / f"{data['vni']}-{network_id[:12]}"

    def _drop_sandbox(self, network_id: str) -> None:
        with self._lock:
            path = self._sandboxes.pop(network_id, None)
            if path is not None:
                dataplane.delete_sandbox(path)

    def _peer_changed(self, ep: RemoteEndpoint, added: bool) -> None:
        """From the store's watch: program (or withdraw) a remote endpoint where we have the network."""
        state = self.state
        if state is not None and ep.host == state.me:
            return
        with self._lock:
            path = self._sandboxes.get(ep.network_id)
            if path is None:
                return
            try:
                if added:
                    dataplane.add_peer(path, ep.ip.ip, ep.mac, ep.host)
                else:
                    dataplane.remove_peer(path, ep.ip.ip, ep.mac, ep.host)
            except (OSError, EngineError):
                log.exception("overlay: programming peer %s of network %s failed", ep.ip, ep.network_id[:12])

    def _network_gone(self, network_id: str) -> None:
        with self._lock:
            used = any(e.network_id == network_id for e in self._local.values())
        if not used:
            self._drop_sandbox(network_id)

    def leftovers(self) -> list[str]:
        out = [str(p) for p in sorted(self.root.glob("*"))] if self.root.exists() else []
        out += [f"link {name}" for name in dataplane.vxlan_leftovers(self.context.instance)]
        if self.state is not None and self.state.stopped and self.state.threads_alive():
            out.append("overlay store threads still running after stop")
        return out


def _pools(spec: NetworkSpec) -> list[dict[str, str]]:
    """The network's IPv4 pools as the store keeps them (the ``--ip-range`` from core's record)."""
    ranges = {c.get("subnet"): c.get("ip_range") or "" for c in spec.record.get("ipam_config", [])}
    return [
        {
            "subnet": str(p.pool),
            "gateway": str(p.gateway) if p.gateway is not None else "",
            "ip_range": ranges.get(str(p.pool), ""),
        }
        for p in spec.ipv4
    ]


__all__ = ["OverlayNetworkDriver"]
