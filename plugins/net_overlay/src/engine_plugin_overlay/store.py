"""The overlay driver's state in the cluster store (etcd), shared by every engine of the cluster.

Keys under ``<cluster-store path>/engine/overlay/``::

    networks/<network-id>          {"record": core's network record, "vni": n, "subnets": [...]}
    vni/<n>                        network id       (created only if absent: a VNI is taken once)
    pools/<subnet>                 network id       (same, for automatically picked subnets)
    ipam/<network-id>/<address>    owner            (same: an address is handed out once)
    endpoints/<network-id>/<ep-id> {"ip", "mac", "host", "name", "aliases"}
    nodes/<advertised address>     {"instance"}

Every "take" is a transaction that compares the key's create revision with 0 (the key does not
exist) before writing it, so two engines allocating at the same instant never get the same VNI,
subnet or address: one transaction succeeds, the other sees the key and tries the next value.
Endpoints, their addresses and the node key carry this engine's lease: an engine that dies stops
refreshing it, and etcd deletes them when it expires, so the other hosts drop their FDB entries.

A watch on the whole prefix keeps an in-memory copy of networks and endpoints current; core and
the data path read that copy, never the store, on their hot paths.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.drivers.cluster import ClusterConfig
from engine.errors import Conflict, Forbidden, InvalidParameter, Unavailable

from .etcd import KV, Etcd, StoreUnavailable, absent, delete_op, put_op, value_is

log = logging.getLogger(__name__)

LEASE_TTL = 10  # seconds an engine's endpoints outlive it
VNI_FIRST = 4096  # as libnetwork: VNIs 4096..2^24-1
VNI_LAST = (1 << 24) - 1
#: engine's global default pool: /24s of it, when `docker network create -d overlay` names no subnet
GLOBAL_POOL = ipaddress.ip_network("10.215.0.0/16")
RETRY_S = 1.0


@dataclass(frozen=True)
class RemoteEndpoint:
    network_id: str
    endpoint_id: str
    ip: ipaddress.IPv4Interface
    mac: str
    host: str  # the advertised (VTEP) address of its engine
    name: str
    aliases: tuple[str, ...] = ()


class ClusterState:
    """The store, its watch and this engine's lease. Blocking and thread-safe."""

    def __init__(self, cluster: ClusterConfig, instance: str) -> None:
        self.cluster = cluster
        self.etcd = Etcd(cluster)
        self.prefix = cluster.path.rstrip("/") + "/engine/overlay/"
        self.instance = instance
        self.me = ""  # the advertised address, set by start()
        self._lock = threading.RLock()
        self.networks: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, RemoteEndpoint]] = {}
        self.synced = False  # the copy reflects the store (set by the first successful sync)
        self._lease = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        #: called (from the watch thread) for every endpoint added or removed: (endpoint, added)
        self.on_endpoint: Callable[[RemoteEndpoint, bool], None] = lambda ep, added: None
        #: called when a network vanished from the store
        self.on_network_gone: Callable[[str], None] = lambda network_id: None
        self._own: dict[str, bytes] = {}  # this engine's leased keys and values, put back after a lease loss

    # ---- life ------------------------------------------------------------------------------------

    def start(self, me: str) -> None:
        self.me = me
        for target in (self._watch_loop, self._lease_loop):
            thread = threading.Thread(target=target, name=f"overlay-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, revoke: bool = True) -> None:
        self._stopping.set()
        self.etcd.close()
        if self._lease and revoke:
            try:  # endpoints and the node key go at once instead of at lease expiry
                self.etcd.revoke(self._lease)
            except Unavailable:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def threads_alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def require(self) -> None:
        """Raise the store's error when it is not reachable (overlay work needs it)."""
        if not self.synced:
            self.sync()

    # ---- the in-memory copy ----------------------------------------------------------------------

    def sync(self) -> int:
        kvs, revision = self.etcd.range(self.prefix)
        networks: dict[str, dict[str, Any]] = {}
        endpoints: dict[str, dict[str, RemoteEndpoint]] = {}
        for kv in kvs:
            self._apply(kv, networks, endpoints)
        with self._lock:
            old = {(nid, eid): ep for nid, eps in self.endpoints.items() for eid, ep in eps.items()}
            new = {(nid, eid): ep for nid, eps in endpoints.items() for eid, ep in eps.items()}
            gone_networks = set(self.networks) - set(networks)
            self.networks, self.endpoints, self.synced = networks, endpoints, True
        for key in old.keys() - new.keys():
            self.on_endpoint(old[key], False)
        for key in new.keys() - old.keys():
            self.on_endpoint(new[key], True)
        for nid in gone_networks:
            self.on_network_gone(nid)
        return revision

    def _apply(self, kv: KV, networks: dict[str, Any], endpoints: dict[str, Any]) -> None:
        parts = kv.key[len(self.prefix) :].split("/")
        if parts[0] == "networks" and len(parts) == 2:
            networks[parts[1]] = kv.json()
        elif parts[0] == "endpoints" and len(parts) == 3:
            data = kv.json()
            endpoints.setdefault(parts[1], {})[parts[2]] = RemoteEndpoint(
                network_id=parts[1],
                endpoint_id=parts[2],
                ip=ipaddress.IPv4Interface(data["ip"]),
                mac=data["mac"],
                host=data["host"],
                name=data.get("name", ""),
                aliases=tuple(data.get("aliases") or ()),
            )

    def _event(self, kind: str, kv: KV) -> None:
        parts = kv.key[len(self.prefix) :].split("/")
        if kind == "PUT":
            with self._lock:
                before = (
                    self.endpoints.get(parts[1], {}).get(parts[2])
                    if parts[0] == "endpoints" and len(parts) == 3
                    else None
                )
                self._apply(kv, self.networks, self.endpoints)
                after = (
                    self.endpoints.get(parts[1], {}).get(parts[2])
                    if parts[0] == "endpoints" and len(parts) == 3
                    else None
                )
            if after is not None and after != before:
                if before is not None:
                    self.on_endpoint(before, False)
                self.on_endpoint(after, True)
            return
        if parts[0] == "networks" and len(parts) == 2:
            with self._lock:
                gone = self.networks.pop(parts[1], None)
            if gone is not None:
                self.on_network_gone(parts[1])
        elif parts[0] == "endpoints" and len(parts) == 3:
            with self._lock:
                ep = self.endpoints.get(parts[1], {}).pop(parts[2], None)
            if ep is not None:
                self.on_endpoint(ep, False)

    def _watch_loop(self) -> None:
        """Keep the copy current; after a store outage, resynchronise and watch again."""
        while not self._stopping.is_set():
            try:
                revision = self.sync()
                for event in self.etcd.watch(self.prefix, revision + 1):
                    self._event(event.kind, event.kv)
            except Unavailable as exc:
                if self._stopping.is_set():
                    return
                if self.synced:
                    log.warning("overlay: %s", exc.message)
                self.synced = False
            except Exception:
                log.exception("overlay: store watch failed")
                self.synced = False
            self._stopping.wait(RETRY_S)

    def _lease_loop(self) -> None:
        """Refresh the lease; when it was lost (an outage longer than its TTL), take a new one and
        put this engine's endpoints back."""
        while not self._stopping.is_set():
            try:
                if not self._lease or self.etcd.keepalive(self._lease) <= 0:
                    self._new_lease()
            except Unavailable:
                pass
            except Exception:
                log.exception("overlay: lease refresh failed")
            self._stopping.wait(LEASE_TTL / 3)

    def _new_lease(self) -> None:
        lease = self.etcd.grant(LEASE_TTL)
        with self._lock:
            self._lease = lease
            own = dict(self._own)
        self.etcd.put(self.prefix + f"nodes/{self.me}", json.dumps({"instance": self.instance}), lease)
        for key, value in own.items():
            self.etcd.put(key, value, lease)

    def lease(self) -> int:
        with self._lock:
            if self._lease:
                return self._lease
        self._new_lease()
        return self._lease

    # ---- networks --------------------------------------------------------------------------------

    def take_vni(self, network_id: str, wanted: int = 0) -> int:
        """A VXLAN network identifier nobody in the cluster uses (``wanted``: that one or an error)."""
        if wanted:
            key = self.prefix + f"vni/{wanted}"
            if not self.etcd.txn([absent(key)], [put_op(key, network_id)]):
                raise Forbidden(f"VXLAN network identifier {wanted} is already in use in the cluster")
            return wanted
        used = {int(kv.key.rsplit("/", 1)[1]) for kv in self.etcd.range(self.prefix + "vni/")[0]}
        for vni in range(VNI_FIRST, VNI_LAST + 1):
            if vni in used:
                continue
            key = self.prefix + f"vni/{vni}"
            if self.etcd.txn([absent(key)], [put_op(key, network_id)]):
                return vni
        raise Unavailable("no VXLAN network identifier left")

    def take_subnet(self, network_id: str, subnet: str) -> str:
        """Reserve ``subnet`` cluster-wide (or the first free /24 of the global pool)."""
        if subnet:
            key = self.prefix + "pools/" + subnet.replace("/", "_")
            if not self.etcd.txn([absent(key)], [put_op(key, network_id)]):
                raise Forbidden("Pool overlaps with other one on this address space")
            return subnet
        taken = [
            ipaddress.ip_network(kv.key.rsplit("/", 1)[1].replace("_", "/"))
            for kv in self.etcd.range(self.prefix + "pools/")[0]
        ]
        for candidate in GLOBAL_POOL.subnets(new_prefix=24):
            if any(candidate.overlaps(t) for t in taken):
                continue
            key = self.prefix + "pools/" + str(candidate).replace("/", "_")
            if self.etcd.txn([absent(key)], [put_op(key, network_id)]):
                return str(candidate)
        raise Unavailable("could not find an available, non-overlapping IPv4 address pool for the overlay network")

    def release_vni(self, vni: int) -> None:
        self.etcd.delete(self.prefix + f"vni/{vni}")

    def release_addresses(self, network_id: str) -> None:
        self.etcd.delete(self.prefix + f"ipam/{network_id}/", prefix=True)

    def release_subnets(self, subnets: Iterable[str]) -> None:
        for subnet in subnets:
            self.etcd.delete(self.prefix + "pools/" + subnet.replace("/", "_"))

    def publish_network(self, network_id: str, data: dict[str, Any], create: bool) -> None:
        key = self.prefix + f"networks/{network_id}"
        if create:
            if not self.etcd.txn([absent(key)], [put_op(key, json.dumps(data))]):
                raise Conflict(f"network {network_id} already exists in the cluster store")
        else:
            self.etcd.put(key, json.dumps(data))
        with self._lock:
            self.networks[network_id] = data

    def remove_network(self, network_id: str) -> None:
        """Delete the network and everything it took, in one transaction; refused while any host
        has endpoints on it."""
        with self._lock:
            data = self.networks.get(network_id)
        remote = self.etcd.range(self.prefix + f"endpoints/{network_id}/")[0]
        if remote:
            hosts = sorted({json.loads(kv.value).get("host", "?") for kv in remote})
            raise Forbidden(f"network {network_id} has active endpoints on {', '.join(hosts)}")
        ops = [delete_op(self.prefix + f"networks/{network_id}")]
        if data:
            ops.append(delete_op(self.prefix + f"vni/{data['vni']}"))
            ops += [delete_op(self.prefix + "pools/" + s.replace("/", "_")) for s in data.get("subnets", [])]
        self.etcd.txn([], ops)
        self.etcd.delete(self.prefix + f"ipam/{network_id}/", prefix=True)
        with self._lock:
            self.networks.pop(network_id, None)

    # ---- addresses -------------------------------------------------------------------------------

    def take_address(
        self, network_id: str, subnet: ipaddress.IPv4Network, ip_range: str, wanted: str, owner: str, leased: bool
    ) -> ipaddress.IPv4Address:
        """One address of the network, handed out once across the cluster."""
        prefix = self.prefix + f"ipam/{network_id}/"
        lease = self.lease() if leased else 0
        if wanted:
            address = ipaddress.IPv4Address(wanted)
            if address not in subnet:
                raise InvalidParameter(f"requested address {wanted} is out of range")
            if not self.etcd.txn([absent(prefix + wanted)], [put_op(prefix + wanted, owner, lease)]):
                raise Forbidden("Address already in use")
            self._remember(prefix + wanted, owner, lease)
            return address
        pool = ipaddress.ip_network(ip_range) if ip_range else subnet
        taken = {kv.key.rsplit("/", 1)[1] for kv in self.etcd.range(prefix)[0]}
        for address in pool.hosts():
            if str(address) in taken or address == subnet.broadcast_address:
                continue
            key = prefix + str(address)
            if self.etcd.txn([absent(key)], [put_op(key, owner, lease)]):
                self._remember(key, owner, lease)
                return address
        raise Unavailable("No available addresses on this pool")

    def claim_address(self, network_id: str, address: str, owner: str) -> None:
        """Put an address this endpoint already held under this instance's lease (after a restart)."""
        key = self.prefix + f"ipam/{network_id}/{address}"
        lease = self.lease()
        mine = value_is(key, owner)
        if not (
            self.etcd.txn([absent(key)], [put_op(key, owner, lease)])
            or self.etcd.txn([mine], [put_op(key, owner, lease)])
        ):
            raise Forbidden(f"address {address} was taken by another endpoint while this engine was down")
        self._remember(key, owner, lease)

    def release_address(self, network_id: str, address: str) -> None:
        key = self.prefix + f"ipam/{network_id}/{address}"
        self.etcd.delete(key)
        with self._lock:
            self._own.pop(key, None)

    def _remember(self, key: str, value: str, lease: int) -> None:
        if lease:
            with self._lock:
                self._own[key] = value.encode()

    # ---- endpoints -------------------------------------------------------------------------------

    def publish_endpoint(self, ep: RemoteEndpoint) -> None:
        key = self.prefix + f"endpoints/{ep.network_id}/{ep.endpoint_id}"
        value = json.dumps(
            {"ip": str(ep.ip), "mac": ep.mac, "host": ep.host, "name": ep.name, "aliases": list(ep.aliases)}
        ).encode()
        self.etcd.put(key, value, self.lease())
        with self._lock:
            self._own[key] = value
            self.endpoints.setdefault(ep.network_id, {})[ep.endpoint_id] = ep

    def withdraw_endpoint(self, network_id: str, endpoint_id: str) -> None:
        key = self.prefix + f"endpoints/{network_id}/{endpoint_id}"
        with self._lock:
            self._own.pop(key, None)
            self.endpoints.get(network_id, {}).pop(endpoint_id, None)
        self.etcd.delete(key)

    def endpoints_of(self, network_id: str) -> list[RemoteEndpoint]:
        with self._lock:
            return list(self.endpoints.get(network_id, {}).values())

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.synced and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.synced


__all__ = ["ClusterState", "RemoteEndpoint", "StoreUnavailable"]
