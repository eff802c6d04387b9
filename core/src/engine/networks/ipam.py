"""IPAM: address pools and addresses, as its own pluggable piece (libnetwork's ipamapi).

:class:`IPAMDriver` is the contract; :class:`DefaultIPAM` is the ``default`` driver. Its local
pools are engine's own (never dockerd's 172.17-31.0.0/16, so both daemons can run side by side):
``10.213.0.0/16`` split into /24s, unless daemon.json's ``default-address-pools`` says otherwise.
A pool picked automatically also skips subnets already routed on the host (another daemon's
bridge, a VPN), as dockerd does for its default bridge.

State is one JSON file per pool under ``<data-root>/network/ipam/``, written atomically when a pool,
its gateway or an aux address is reserved. Endpoint addresses are requested with ``persist=False``:
the controller stores them with the endpoint (one write per container start instead of two) and
hands them back with :meth:`DefaultIPAM.reconcile` at start, so allocations survive a restart
and a kill -9 without a second fsync'ed file per start. Dynamic addresses are handed out
serially (after the last one given, wrapping), as libnetwork does, so a freed address is not
reused at once.
"""

from __future__ import annotations

import abc
import ipaddress
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from engine.drivers.records import read_json, write_json
from engine.errors import EngineError, Forbidden, InvalidParameter, Unavailable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: engine's local default pools (dockerd's are 172.17.0.0/16.. and 192.168.0.0/16 in /20s)
DEFAULT_LOCAL_POOLS: tuple[dict[str, Any], ...] = ({"base": "10.213.0.0/16", "size": 24},)


class PoolOverlap(Forbidden):
    def __init__(self) -> None:
        super().__init__("Pool overlaps with other one on this address space")


class AddressInUse(Forbidden):
    def __init__(self) -> None:
        super().__init__("Address already in use")


class NoAvailableAddresses(Unavailable):
    def __init__(self) -> None:
        super().__init__("No available addresses on this pool")


class NoAvailablePool(EngineError):
    def __init__(self) -> None:
        super().__init__(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
        )


class AddressOutOfRange(InvalidParameter):
    def __init__(self) -> None:
        super().__init__("requested address is out of range")


@dataclass
class Pool:
    """One pool: a subnet, the optional range dynamic addresses come from, and what is taken."""

    id: str
    subnet: IPNetwork
    ip_range: IPNetwork | None = None
    #: addresses handed out (gateway, aux, endpoints), with what took them
    allocated: dict[str, str] = field(default_factory=dict)
    last: int = -1  # the offset of the last dynamic address, for serial allocation
    auto: bool = False  # picked from the default pools, not given by --subnet

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subnet": str(self.subnet),
            "ip_range": str(self.ip_range) if self.ip_range else None,
            "allocated": self.allocated,
            "last": self.last,
            "auto": self.auto,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Pool:
        return cls(
            id=data["id"],
            subnet=ipaddress.ip_network(data["subnet"]),
            ip_range=ipaddress.ip_network(data["ip_range"]) if data.get("ip_range") else None,
            allocated=dict(data.get("allocated", {})),
            last=int(data.get("last", -1)),
            auto=bool(data.get("auto", False)),
        )


class IPAMDriver(abc.ABC):
    """The IPAM contract: pools per network, addresses per endpoint. Blocking, thread-safe."""

    name: ClassVar[str]

    @abc.abstractmethod
    def request_pool(self, pool_id: str, subnet: str = "", ip_range: str = "", v6: bool = False) -> Pool:
        """Reserve ``subnet`` (or pick a free default pool when empty) under ``pool_id``.

        :raises PoolOverlap: the subnet overlaps a pool already reserved.
        """

    @abc.abstractmethod
    def release_pool(self, pool_id: str) -> None:
        """Forget a pool and everything allocated in it (idempotent)."""

    @abc.abstractmethod
    def get_pool(self, pool_id: str) -> Pool | None:
        """The pool, or None."""

    @abc.abstractmethod
    def request_address(self, pool_id: str, address: str = "", owner: str = "", persist: bool = True) -> IPAddress:
        """Allocate ``address`` (or the next free one from the pool's range when empty).

        ``persist=False``: the caller records the allocation itself and re-declares it with
        :meth:`reconcile` after a restart (the driver may keep it in memory only).

        :raises AddressInUse: ``address`` is taken.
        :raises NoAvailableAddresses: the pool (range) is full.
        :raises AddressOutOfRange: ``address`` is not in the pool's subnet.
        """

    @abc.abstractmethod
    def release_address(self, pool_id: str, address: str, persist: bool = True) -> None:
        """Give an address back (idempotent)."""

    def reconcile(self, pool_id: str, in_use: dict[str, str]) -> list[str]:
        """At start: the addresses (with owners) in use in a pool; others are released. Returns those."""
        return []


def host_routes_v4() -> list[ipaddress.IPv4Network]:
    """The IPv4 destinations routed in the daemon's network namespace (from /proc/net/route)."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                parts = line.split()
                dest = int(parts[1], 16).to_bytes(4, "little")
                mask = int(parts[7], 16).to_bytes(4, "little")
                if parts[1] == "00000000" and parts[7] == "00000000":
                    continue  # the default route overlaps everything
                net = ipaddress.IPv4Network((ipaddress.IPv4Address(dest), str(ipaddress.IPv4Address(mask))), False)
                out.append(net)
    except (OSError, StopIteration, ValueError):
        pass
    return out


def split_pools(pools: Iterable[Mapping[str, Any]]) -> list[IPNetwork]:
    """Expand ``default-address-pools`` entries (``{"base", "size"}``) into candidate subnets, lazily small."""
    out: list[IPNetwork] = []
    for pool in pools:
        base = ipaddress.ip_network(pool["base"], strict=False)
        size = int(pool["size"])
        if size < base.prefixlen:
            raise InvalidParameter(f"invalid pool size {size} for base {base}")
        out.extend(base.subnets(new_prefix=size))
    return out


class DefaultIPAM(IPAMDriver):
    name = "default"

    def __init__(self, state_dir: Path, default_pools: Iterable[Mapping[str, Any]] | None = None) -> None:
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.default_pools = list(default_pools or DEFAULT_LOCAL_POOLS)
        self._lock = threading.Lock()
        self._pools: dict[str, Pool] = {}
        for path in sorted(self.state_dir.glob("*.json")):
            try:
                pool = Pool.from_json(read_json(path))
            except (OSError, ValueError, KeyError):
                continue
            self._pools[pool.id] = pool

    # -- pools ----------------------------------------------------------------------------------

    def _save(self, pool: Pool) -> None:
        write_json(self.state_dir / f"{pool.id}.json", pool.to_json())

    def _overlaps(self, subnet: IPNetwork) -> bool:
        return any(p.subnet.version == subnet.version and p.subnet.overlaps(subnet) for p in self._pools.values())

    def request_pool(self, pool_id: str, subnet: str = "", ip_range: str = "", v6: bool = False) -> Pool:
        with self._lock:
            if pool_id in self._pools:
                return self._pools[pool_id]
            if subnet:
                try:
                    net = ipaddress.ip_network(subnet, strict=False)
                except ValueError:
                    raise InvalidParameter(f"invalid subnet {subnet}") from None
                if self._overlaps(net):
                    raise PoolOverlap()
                auto = False
            else:
                if v6:
                    raise InvalidParameter("an IPv6 subnet is required (no default IPv6 pools)")
                net = self._pick_default()
                auto = True
            rng = None
            if ip_range:
                try:
                    rng = ipaddress.ip_network(ip_range, strict=False)
                except ValueError:
                    raise InvalidParameter(f"invalid ip-range {ip_range}") from None
                if rng.version != net.version or not rng.subnet_of(net):  # type: ignore[arg-type]
                    raise InvalidParameter(f"ip-range {ip_range} is not within subnet {net}")
            pool = Pool(pool_id, net, rng, auto=auto)
            self._save(pool)
            self._pools[pool_id] = pool
            return pool

    def _pick_default(self) -> IPNetwork:
        routed = host_routes_v4()
        for candidate in split_pools(self.default_pools):
            if candidate.version != 4 or self._overlaps(candidate):
                continue
            if any(candidate.overlaps(r) for r in routed):
                continue
            return candidate
        raise NoAvailablePool()

    def release_pool(self, pool_id: str) -> None:
        with self._lock:
            self._pools.pop(pool_id, None)
            (self.state_dir / f"{pool_id}.json").unlink(missing_ok=True)

    def get_pool(self, pool_id: str) -> Pool | None:
        with self._lock:
            return self._pools.get(pool_id)

    def pools(self) -> list[Pool]:
        with self._lock:
            return list(self._pools.values())

    # -- addresses ------------------------------------------------------------------------------

    def request_address(self, pool_id: str, address: str = "", owner: str = "", persist: bool = True) -> IPAddress:
        with self._lock:
            pool = self._pools.get(pool_id)
            if pool is None:
                raise InvalidParameter(f"no such address pool {pool_id}")
            if address:
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    raise InvalidParameter(f"invalid address {address}") from None
                if ip not in pool.subnet:
                    raise AddressOutOfRange()
                if str(ip) in pool.allocated:
                    raise AddressInUse()
            else:
                ip = self._next_free(pool)
            pool.allocated[str(ip)] = owner
            if persist:
                self._save(pool)
            return ip

    def _next_free(self, pool: Pool) -> IPAddress:
        rng = pool.ip_range or pool.subnet
        first = int(rng.network_address)
        count = rng.num_addresses
        subnet_first = int(pool.subnet.network_address)
        subnet_last = int(pool.subnet.broadcast_address)
        for step in range(1, count + 1):
            offset = (pool.last + step) % count
            value = first + offset
            # never the subnet's own address (IPv6: the subnet-router anycast), nor IPv4's broadcast
            small = pool.subnet.prefixlen >= pool.subnet.max_prefixlen - 1  # /31, /32, /127, /128
            if not small and (value == subnet_first or (pool.subnet.version == 4 and value == subnet_last)):
                continue
            ip = ipaddress.ip_address(value)
            if str(ip) not in pool.allocated:
                pool.last = offset
                return ip
        raise NoAvailableAddresses()

    def release_address(self, pool_id: str, address: str, persist: bool = True) -> None:
        with self._lock:
            pool = self._pools.get(pool_id)
            if pool is None or address not in pool.allocated:
                return
            del pool.allocated[address]
            if persist:
                self._save(pool)

    def reconcile(self, pool_id: str, in_use: dict[str, str]) -> list[str]:
        """Make the pool's allocations exactly ``in_use`` (address -> owner); returns the released ones."""
        with self._lock:
            pool = self._pools.get(pool_id)
            if pool is None:
                return []
            stale = [a for a in pool.allocated if a not in in_use]
            changed = bool(stale) or any(pool.allocated.get(a) != o for a, o in in_use.items())
            pool.allocated = dict(in_use)
            if changed:
                self._save(pool)
            return stale
