"""The NetworkController (``daemon.networks``): networks, endpoints, IPAM and container sandboxes.

Core owns the objects and their state on disk; drivers (loaded by name from the
``engine.network_drivers`` entry points) own the data path. Everything here is blocking and
thread-safe: routes call it through ``asyncio.to_thread``. Locks are per network and per
container, taken in sorted order.

State under ``<data-root>/network/``: ``networks/<id>.json``, ``endpoints/<id>.json``,
``sandboxes/<container-id>.json``, ``containers/<container-id>.json`` (connections of stopped
containers), ``ipam/<pool>.json``, and ``drivers/<driver>/`` (the drivers' own). Runtime state
under ``<exec-root>/netns/`` (one bind-mounted namespace file per sandbox).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from engine import opcounters
from engine.drivers.cluster import parse_cluster
from engine.drivers.locks import KeyedLocks
from engine.drivers.network import (
    IPAMData,
    NetworkDriver,
    NetworkDriverContext,
    NetworkSpec,
    Peer,
)
from engine.drivers.records import RecordDir
from engine.drivers.timefmt import parse_rfc3339nano, rfc3339nano
from engine.errors import (
    Conflict,
    DriverNotInstalled,
    EngineError,
    Forbidden,
    InvalidParameter,
    NotFound,
)
from engine.filters import Filters, timestamp_ns
from engine.networks.ipam import DefaultIPAM, IPAMDriver
from engine.networks.model import Endpoint, Network, SandboxRecord, new_id
from engine.networks.sandboxes import Sandbox, Sandboxes
from engine.networks.settings import network_resource
from engine.networks.validation import validate_container

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.drivers.storage import IdMap
    from engine.events import EventBus
    from engine.hooks import Hooks
    from engine.registry import DriverRegistry

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_EXEC_ROOT = Path("/run/engine")
PREDEFINED = ("bridge", "host", "none")
#: the network drivers behind the predefined networks
PREDEFINED_DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}
NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def instance_name(exec_root: Path) -> str:
    """A name unique to one daemon on this host, for host-global objects (firewall table, default
    bridge): ``engine`` for the default exec-root, ``engine-<hash8>`` for any other, so test
    daemons and a second engine never collide with each other."""
    if Path(exec_root) == DEFAULT_EXEC_ROOT:
        return "engine"
    return "engine-" + hashlib.sha256(str(exec_root).encode()).hexdigest()[:8]


def off_event_loop(fn: Callable[..., T]) -> Callable[..., T]:
    """The controller's blocking entry points must run in a worker thread (``asyncio.to_thread``);
    called on an event loop's thread by mistake, they still work (netlink clients refuse to run
    there) by running in a helper thread, with a warning naming the caller's mistake."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        log.warning("networks.%s called on the event loop; use asyncio.to_thread", fn.__name__)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(fn, *args, **kwargs).result()

    return wrapper


class NetworkController:
    """``daemon.networks``. The container-facing contract is in the package docstring."""

    def __init__(
        self,
        root: Path,
        exec_root: Path,
        *,
        config: Callable[[], DaemonConfig],
        drivers: DriverRegistry[NetworkDriver],
        events: EventBus,
        hooks: Hooks,
        containers_root: Path,
        id_map: IdMap | None = None,
    ) -> None:
        """``root``: ``<data-root>/network``; ``exec_root``: the daemon's (namespace files, and the
        instance name of host-global objects); ``config``: the daemon's configuration in effect
        (SIGHUP replaces it); ``drivers``: the network driver registry; ``containers_root``:
        ``<data-root>/containers``, where a running container's hosts file is rewritten in place
        when it connects or disconnects; ``id_map``: the daemon's userns-remap mapping (None: none),
        whose user namespace a remapped container's network namespace belongs to."""
        self._config = config
        self.id_map = id_map
        self._driver_registry = drivers
        self.events = events
        self.hooks = hooks
        self.root = root
        self.exec_root = exec_root
        self.netns_dir = exec_root / "netns"
        self.instance = instance_name(exec_root)
        self._networks_dir = RecordDir(self.root / "networks")
        self.ipam: IPAMDriver = DefaultIPAM(self.root / "ipam", self._default_pools())
        self.networks: dict[str, Network] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self._drivers: dict[str, NetworkDriver] = {}
        #: per-key locks shared with the sandboxes: a network ID, or ``c:<container ID>``
        self.locks = KeyedLocks()
        self._sandboxes = Sandboxes(self, self.root, self.netns_dir, containers_root)
        self._global_lock = threading.Lock()

    @property
    def sandboxes(self) -> dict[str, SandboxRecord]:
        """The sandbox records of running containers by container ID (the :class:`Sandboxes`' own)."""
        return self._sandboxes.records

    # ---- configuration ---------------------------------------------------------------------------

    @property
    def config(self) -> DaemonConfig:
        return self._config()

    def _default_pools(self) -> list[dict[str, Any]] | None:
        return list(self.config.get("default-address-pools") or []) or None

    def bridge_disabled(self) -> bool:
        return self.config.get("bridge") == "none" or not self._driver_registry.is_installed("bridge")

    # ---- drivers ---------------------------------------------------------------------------------

    def driver(self, name: str) -> NetworkDriver:
        """The (one) instance of a network driver, loaded and started on first use."""
        drv = self._drivers.get(name)
        if drv is not None:
            return drv
        try:
            cls = self._driver_registry.load(name)
        except DriverNotInstalled as exc:
            raise NotFound(f'plugin "{name}" not found ({exc.message})') from None
        state_dir = self.root / "drivers" / name
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        context = NetworkDriverContext(
            state_dir=state_dir, exec_root=self.exec_root, config=self.config, instance=self.instance
        )
        drv = cls(context)
        opcounters.driver_made("network", drv)
        drv.start()
        self._drivers[name] = drv
        return drv

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Any:
        """Restore networks and sandboxes. Blocking (netlink, nft): from the daemon's event loop this
        returns a coroutine that runs it in a worker thread; elsewhere it runs at once."""
        if _on_event_loop():
            return asyncio.to_thread(self.start_blocking)
        self.start_blocking()
        return None

    def stop(self) -> Any:
        """Release networks without live endpoints, stop the drivers (threaded like :meth:`start`)."""
        if _on_event_loop():
            return asyncio.to_thread(self.stop_blocking)
        self.stop_blocking()
        return None

    def start_blocking(self) -> None:
        self.netns_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        for data in self._networks_dir.load_all().values():
            net = Network.from_json(data)
            self.networks[net.id] = net
        self._sandboxes.load()
        self._ensure_predefined()
        self._load_global_drivers()
        self.sync_global()
        for net in sorted(self.networks.values(), key=lambda n: (not n.predefined, n.created)):
            try:
                self._driver_create(net)
            except EngineError as exc:
                log.error("cannot restore network %s (%s): %s", net.name, net.driver, exc.message)
        self._restore_sandboxes()
        self._reconcile_ipam()

    def stop_blocking(self) -> None:
        self._sandboxes.stop()
        live = {nid for ep in self.endpoints.values() for nid in [ep.network_id]}
        for net in list(self.networks.values()):
            if net.id in live:
                continue  # a container kept running (live-restore): keep its data path
            if net.scope == "global":
                continue  # the cluster's, not this engine's: the driver's stop releases its data path here
            try:
                self.driver(net.driver).delete_network(net.id)
            except Exception:
                log.exception("releasing network %s failed", net.name)
        for drv in self._drivers.values():
            try:
                drv.stop()
            except Exception:
                log.exception("stopping network driver %s failed", drv.name)

    def _ensure_predefined(self) -> None:
        existing = {n.name: n for n in self.networks.values() if n.predefined}
        for name in PREDEFINED:
            drv = PREDEFINED_DRIVERS[name]
            if name == "bridge" and self.bridge_disabled():
                old = existing.get("bridge")
                if old is not None:
                    self._forget_network(old)
                continue
            if name in existing or not self._driver_registry.is_installed(drv):
                continue
            net = Network(
                id=new_id(), name=name, driver=drv, created=rfc3339nano(time.time_ns(), local=True), predefined=True
            )
            if name == "bridge":
                net.options = {}
                net.ipam_options = None
                self._allocate_pools(net, [], default_bridge=True)
            self._save_network(net)
            self.networks[net.id] = net

    def _restore_sandboxes(self) -> None:
        """Adopt the sandboxes of containers that kept running, let the drivers drop the rest."""
        self._sandboxes.restore()
        # drivers drop what they hold for endpoints nobody knows (e.g. proxies of a start cut by a crash)
        known = set(self.endpoints)
        for state_dir in sorted((self.root / "drivers").glob("*")):
            # drivers with state but no network left still get to clean up after themselves
            if state_dir.name not in self._drivers and self._driver_registry.is_installed(state_dir.name):
                try:
                    self.driver(state_dir.name)
                except EngineError as exc:
                    log.error("cannot load network driver %s: %s", state_dir.name, exc.message)
        for drv in list(self._drivers.values()):
            try:
                drv.reconcile(known)
            except Exception:
                log.exception("reconciling network driver %s failed", drv.name)
        self._sandboxes.sweep_namespaces()

    def _reconcile_ipam(self) -> None:
        if not isinstance(self.ipam, DefaultIPAM):
            return
        for pool in self.ipam.pools():
            if pool.id.rsplit("-", 1)[0] not in self.networks:
                # reserved by a network create that a crash cut short before the network was saved
                log.info("releasing orphaned address pool %s", pool.subnet)
                self.ipam.release_pool(pool.id)
        for net in self.networks.values():
            for index, cfg in enumerate(net.pools()):
                pool_id = net.pool_id(index)
                in_use: dict[str, str] = {}
                for ep in self.endpoints.values():
                    if ep.network_id != net.id:
                        continue
                    if ep.ipv4 and ep.pool_id == pool_id:
                        in_use[str(ipaddress.ip_interface(ep.ipv4).ip)] = ep.id
                    if ep.ipv6 and ep.pool_id_v6 == pool_id:
                        in_use[str(ipaddress.ip_interface(ep.ipv6).ip)] = ep.id
                if cfg.gateway:
                    in_use[cfg.gateway] = "gateway"
                for name, address in cfg.aux_addresses.items():
                    in_use[address] = f"aux:{name}"
                stale = self.ipam.reconcile(pool_id, in_use)
                if stale:
                    log.info("released %d stale addresses of network %s", len(stale), net.name)

    # ---- networks --------------------------------------------------------------------------------

    def _save_network(self, net: Network) -> None:
        self._networks_dir.save(net.id, net.to_json())

    def _driver_create(self, net: Network) -> None:
        drv = self.driver(net.driver)
        drv.create_network(self._spec(net))

    def _spec(self, net: Network) -> NetworkSpec:
        v4, v6 = [], []
        for cfg in net.pools():
            if not cfg.subnet:
                continue
            subnet = ipaddress.ip_network(cfg.subnet)
            gw = ipaddress.ip_interface(f"{cfg.gateway}/{subnet.prefixlen}") if cfg.gateway else None
            aux = {k: ipaddress.ip_interface(f"{v}/{subnet.prefixlen}") for k, v in cfg.aux_addresses.items()}
            data = IPAMData(pool=subnet, gateway=gw, aux_addresses=aux)
            (v6 if subnet.version == 6 else v4).append(data)
        return NetworkSpec(
            network_id=net.id,
            name=net.name,
            options=dict(net.options),
            ipv4=v4,
            ipv6=v6,
            internal=net.internal,
            enable_ipv6=net.enable_ipv6,
            default=net.predefined and net.name == "bridge",
            record=net.to_json(),
        )

    def _allocate_pools(self, net: Network, configs: list[dict[str, Any]], default_bridge: bool = False) -> None:
        """Reserve the network's pools, gateways and aux addresses in IPAM; fills ``net.ipam_config``."""
        wanted = [dict(c) for c in configs] or [{}]
        if default_bridge:
            wanted = [self._default_bridge_pool()]
        has_v6 = any(":" in (c.get("Subnet") or "") for c in wanted)
        if net.enable_ipv6 and not has_v6 and default_bridge and self.config.get("fixed-cidr-v6"):
            wanted.append({"Subnet": self.config.get("fixed-cidr-v6")})
        done: list[dict[str, Any]] = []
        try:
            for index, cfg in enumerate(wanted):
                pool_id = net.pool_id(index)
                subnet = cfg.get("Subnet") or ""
                pool = self.ipam.request_pool(pool_id, subnet, cfg.get("IPRange") or "", v6=":" in subnet)
                entry: dict[str, Any] = {"subnet": str(pool.subnet), "ip_range": cfg.get("IPRange") or ""}
                done.append({"pool_id": pool_id})
                gateway = cfg.get("Gateway") or ""
                if gateway:
                    _check_in(gateway, pool.subnet, "gateway")
                entry["gateway"] = str(self.ipam.request_address(pool_id, gateway, owner="gateway"))
                aux = {}
                for name, addr in (cfg.get("AuxiliaryAddresses") or {}).items():
                    _check_in(addr, pool.subnet, "auxiliary address")
                    aux[name] = str(self.ipam.request_address(pool_id, addr, owner=f"aux:{name}"))
                entry["aux_addresses"] = aux
                net.ipam_config.append(entry)
        except BaseException:
            for d in done:
                self.ipam.release_pool(d["pool_id"])
            net.ipam_config = []
            raise
        net.user_subnet = bool(configs and any(c.get("Subnet") for c in configs))

    def _default_bridge_pool(self) -> dict[str, Any]:
        """The default bridge's pool: ``bip`` (gateway/prefix), ``fixed-cidr`` as the range."""
        bip = self.config.get("bip") or ""
        fixed = self.config.get("fixed-cidr") or ""
        if bip:
            iface = ipaddress.ip_interface(bip)
            out: dict[str, Any] = {"Subnet": str(iface.network), "Gateway": str(iface.ip)}
        else:
            out = {}
        if fixed:
            fixed_net = ipaddress.ip_network(fixed, strict=False)
            if not bip:
                out["Subnet"] = str(fixed_net)
            elif fixed_net != iface.network:
                out["IPRange"] = str(fixed_net)
        if self.config.get("default-gateway"):
            out.setdefault("AuxiliaryAddresses", {})["DefaultGatewayIPv4"] = self.config.get("default-gateway")
        return out

    def create_network(
        self,
        name: str,
        driver: str = "",
        *,
        options: Mapping[str, str] | None = None,
        ipam: Mapping[str, Any] | None = None,
        internal: bool = False,
        attachable: bool = False,
        enable_ipv6: bool = False,
        labels: Mapping[str, str] | None = None,
        check_duplicate: bool = True,
    ) -> Network:
        """``POST /networks/create``."""
        driver = driver or "bridge"
        if not name:
            raise InvalidParameter("network name is required")
        if name in (*PREDEFINED, "default", "ingress"):
            raise Forbidden(f"{name} is a pre-defined network and cannot be created")
        if check_duplicate and any(n.name == name for n in self.networks.values()):
            raise Conflict(f"network with name {name} already exists")
        drv = self.driver(driver)
        if not drv.user_creatable:
            raise Forbidden(f'only one instance of "{drv.name if driver != "null" else "null"}" network is allowed')
        ipam = dict(ipam or {})
        ipam_driver = ipam.get("Driver") or "default"
        if ipam_driver != "default":
            raise NotFound(f'plugin "{ipam_driver}" not found')
        options = {str(k): str(v) for k, v in (options or {}).items()}
        drv.validate_options(options)
        net = Network(
            id=new_id(),
            name=name,
            driver=driver,
            created=rfc3339nano(time.time_ns(), local=True),
            internal=bool(internal),
            attachable=bool(attachable),
            enable_ipv6=bool(enable_ipv6),
            options=options,
            labels=dict(labels or {}),
            ipam_driver=ipam_driver,
            ipam_options=dict(ipam.get("Options") or {}),
        )
        configs = list(ipam.get("Config") or [])
        _validate_ipam_configs(configs)
        is_global = drv.capability.data_scope == "global"
        net.scope = drv.capability.data_scope
        with self.locks(net.id):
            try:
                if is_global and drv.uses_ipam:
                    # the subnets are the cluster's: the driver reserves them in its store first
                    wanted = [dict(c) for c in configs] or [{}]
                    subnets = drv.assign_subnets(net.id, [c.get("Subnet") or "" for c in wanted])
                    configs = [{**c, "Subnet": subnet} for c, subnet in zip(wanted, subnets, strict=True)]
                if drv.uses_ipam:
                    self._allocate_pools(net, configs)
                self._driver_create(net)
            except BaseException:
                self._release_pools(net)
                if is_global:
                    drv.delete_network(net.id)  # gives back what assign_subnets reserved
                raise
            if not is_global:  # a global network lives in the driver's cluster store
                self._save_network(net)
            self.networks[net.id] = net
        self.events.publish("network", "create", net.id, {"name": net.name, "type": net.driver})
        self.hooks.network_created(self.inspect(net))
        return net

    def _release_pools(self, net: Network) -> None:
        for index in range(len(net.ipam_config)):
            self.ipam.release_pool(net.pool_id(index))

    def get(self, ref: str) -> Network:
        """A network by full ID, name, or unique ID prefix (dockerd's lookup order)."""
        if not ref:
            raise NotFound("network  not found")
        self.sync_global()
        nets = list(self.networks.values())
        for net in nets:
            if net.id == ref:
                return net
        named = [n for n in nets if n.name == ref]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:  # possible with CheckDuplicate=false (docker-py's default)
            raise InvalidParameter(f"network {ref} is ambiguous ({len(named)} matches found based on name)")
        matches = [n for n in nets if n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def list(self, filters: Filters | None = None) -> list[Network]:
        filters = filters or Filters()
        out = []
        self.sync_global()
        for net in sorted(self.networks.values(), key=lambda n: n.created):
            if not filters.match_any("driver", [net.driver]):
                continue
            if "name" in filters and not any(re.search(v, net.name) for v in filters.get("name")):
                continue
            if "id" in filters and not any(re.search(v, net.id) for v in filters.get("id")):
                continue
            if not filters.match_any("scope", [net.scope]):
                continue
            if not filters.match_labels(net.labels):
                continue
            if "type" in filters:
                kinds = filters.get("type")
                bad = kinds - {"custom", "builtin"}
                if bad:
                    raise InvalidParameter(f"invalid filter: 'type'='{sorted(bad)[0]}'")
                if ("builtin" if net.predefined else "custom") not in kinds:
                    continue
            dangling = filters.bool_value("dangling")
            if dangling is not None:
                used = net.predefined or bool(self._containers_of(net.id))
                if dangling == used:
                    continue
            out.append(net)
        return out

    # ---- global-scope networks (a cluster store shared by several engines) ------------------------

    def _load_global_drivers(self) -> None:
        """With a cluster store configured, the global-scope drivers start with the daemon, so that
        the networks other engines created are known before anyone asks."""
        try:
            if parse_cluster(self.config) is None:
                return
        except ValueError:
            return
        for name in self._driver_registry.names():
            try:
                cls = self._driver_registry.load(name, explicit=False)
            except EngineError:
                continue
            if cls.capability.data_scope == "global":
                try:
                    self.driver(name)
                except EngineError as exc:
                    log.error("cannot start network driver %s: %s", name, exc.message)

    def sync_global(self) -> None:
        """Match the global-scope networks to what their drivers' stores hold: add the ones other
        engines created, drop the ones removed there (unless a container here still uses one)."""
        for drv in list(self._drivers.values()):
            if drv.capability.data_scope != "global":
                continue
            records = drv.global_networks()
            if records is None:
                continue
            added, dropped = [], []
            with self._global_lock:
                ids = set()
                for record in records:
                    ids.add(record["id"])
                    if record["id"] not in self.networks:
                        net = Network.from_json(record)
                        net.scope = "global"
                        self.networks[net.id] = net
                        added.append(net)
                for net in list(self.networks.values()):
                    if net.driver == drv.name and net.id not in ids and not self._containers_of(net.id):
                        self._release_pools(net)
                        self.networks.pop(net.id, None)
                        dropped.append(net)
            # this engine's /events tell of networks other engines created or removed, as of its own
            for net, action in [(n, "create") for n in added] + [(n, "destroy") for n in dropped]:
                self.events.publish("network", action, net.id, {"name": net.name, "type": net.driver})

    def peers(self, network_id: str) -> list[Peer]:
        """The endpoints of a global-scope network on other engines (for the embedded DNS)."""
        net = self.networks.get(network_id)
        drv = self._drivers.get(net.driver) if net is not None else None
        if drv is None or net is None or net.scope != "global":
            return []
        return drv.peers(network_id)

    def _containers_of(self, network_id: str) -> list[Endpoint]:
        return [ep for ep in self.endpoints.values() if ep.network_id == network_id]

    def options_of(self, net: Network) -> dict[str, str]:
        opts = dict(net.options)
        try:
            opts.update(self.driver(net.driver).network_info(net.id))
        except EngineError:
            pass
        return opts

    def inspect(self, net: Network, with_containers: bool = True) -> dict[str, Any]:
        containers: dict[str, dict[str, Any]] = {}
        if with_containers:
            for ep in self._containers_of(net.id):
                containers[ep.container_id] = {
                    "Name": ep.name,
                    "EndpointID": ep.id,
                    "MacAddress": ep.mac_address,
                    "IPv4Address": ep.ipv4,
                    "IPv6Address": ep.ipv6,
                }
        return network_resource(net, containers, self.options_of(net))

    def remove(self, ref: str) -> None:
        """``DELETE /networks/{id}``."""
        net = self.get(ref)
        if net.predefined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        with self.locks(net.id):
            if self._containers_of(net.id):
                raise Forbidden(f"error while removing network: network {net.name} id {net.id} has active endpoints")
            self.driver(net.driver).delete_network(net.id)
            self._forget_network(net)
        self.events.publish("network", "destroy", net.id, {"name": net.name, "type": net.driver})

    def _forget_network(self, net: Network) -> None:
        self._release_pools(net)
        self._networks_dir.delete(net.id)
        self.networks.pop(net.id, None)

    def prune(self, filters: Filters | None = None) -> list[str]:
        """``POST /networks/prune``: unused user-defined networks (``until``, ``label`` filters)."""
        filters = filters or Filters()
        removed = []
        until = _until(filters)
        for net in list(self.networks.values()):
            if net.predefined or self._containers_of(net.id):
                continue
            if not filters.match_labels(net.labels):
                continue
            if until is not None and _created_ts(net.created) >= until:
                continue
            try:
                self.remove(net.id)
            except EngineError as exc:
                log.warning("prune: cannot remove network %s: %s", net.name, exc.message)
                continue
            removed.append(net.name)
        self.events.publish("network", "prune", "", {"reclaimed": "0"})
        return removed

    # ---- containers (the work is :class:`Sandboxes`'; these are the blocking entry points) -------------

    @off_event_loop
    def validate_container(
        self, config: Mapping[str, Any], host_config: Mapping[str, Any], networking_config: Mapping[str, Any] | None
    ) -> list[str]:
        """Checks dockerd runs at ``POST /containers/create``; returns its warnings (see
        :func:`engine.networks.validation.validate_container`)."""
        return validate_container(self, config, host_config, networking_config)

    def host_gateway_ip(self) -> str:
        """``host-gateway`` in --add-host: daemon.json's host-gateway-ip, else the default bridge's gateway."""
        if self.config.get("host-gateway-ip"):
            return str(self.config.get("host-gateway-ip"))
        for net in self.networks.values():
            if net.predefined and net.name == "bridge":
                for cfg in net.pools():
                    if cfg.gateway and ":" not in cfg.gateway:
                        return cfg.gateway
        return ""

    def sandbox_of(self, container_id: str) -> Sandbox | None:
        """The running container's sandbox (for ``--network container:<id>``), or None."""
        return self._sandboxes.sandbox_of(container_id)

    @off_event_loop
    def setup_sandbox(
        self,
        container_id: str,
        name: str,
        config: Mapping[str, Any],
        host_config: Mapping[str, Any],
        networking_config: Mapping[str, Any] | None = None,
        user_ns: str | None = None,
    ) -> Sandbox:
        """Create the container's network namespace and join its networks (container start); idempotent,
        undone on error. ``user_ns``: an existing user namespace to make the network namespace in
        (userns-remap: the one of a container whose IPC or PID namespace this one shares)."""
        return self._sandboxes.setup(container_id, name, config, host_config, networking_config, user_ns)

    @off_event_loop
    def teardown_sandbox(self, container_id: str) -> None:
        """Leave every network and delete the namespace (container stop). Idempotent."""
        self._sandboxes.teardown(container_id)

    @off_event_loop
    def container_renamed(self, container_id: str, new_name: str) -> None:
        """``docker rename``: endpoints (and so the embedded DNS) answer to the new name."""
        self._sandboxes.rename(container_id, new_name)

    @off_event_loop
    def release_container(self, container_id: str) -> None:
        """Forget a removed container (its pending connections); tears down a leftover sandbox."""
        self._sandboxes.release(container_id)

    @off_event_loop
    def connect(
        self,
        ref: str,
        container_id: str,
        endpoint_config: Mapping[str, Any] | None = None,
        *,
        name: str = "",
        config: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """``docker network connect``; returns the new ``NetworkSettings`` when the container runs."""
        return self._sandboxes.connect(ref, container_id, endpoint_config, name=name, config=config)

    @off_event_loop
    def disconnect(self, ref: str, container_id: str, force: bool = False) -> dict[str, Any] | None:
        """``docker network disconnect``; returns the new ``NetworkSettings`` when the container runs."""
        return self._sandboxes.disconnect(ref, container_id, force)

    # ---- diagnostics ------------------------------------------------------------------------------

    def info_fields(self) -> dict[str, Any]:
        """``DefaultAddressPools`` in GET /info, only when daemon.json sets them (as dockerd)."""
        pools = self._default_pools()
        if not pools:
            return {}
        return {"DefaultAddressPools": [{"Base": p["base"], "Size": p["size"]} for p in pools]}

    def leftovers(self) -> list[str]:
        """Anything of this daemon's networking still on the host (for leak checks after stop)."""
        out = [str(p) for p in self.netns_dir.glob("*")] if self.netns_dir.exists() else []
        for drv in self._drivers.values():
            out.extend(drv.leftovers())
        return out


# ---- helpers ----------------------------------------------------------------------------------------


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _check_in(address: str, subnet: Any, what: str) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise InvalidParameter(f"invalid {what} address {address}") from None
    if ip not in subnet:
        raise InvalidParameter(f"{what} address {address} is not in subnet {subnet}")


def _validate_ipam_configs(configs: list[dict[str, Any]]) -> None:
    """dockerd's checks on ``--subnet/--ip-range/--gateway/--aux-address`` before anything is reserved."""
    subnets = []
    for cfg in configs:
        subnet = cfg.get("Subnet") or ""
        if not subnet:
            if cfg.get("IPRange") or cfg.get("Gateway") or cfg.get("AuxiliaryAddresses"):
                raise InvalidParameter("ip-range, gateway and aux-address need a subnet")
            continue
        try:
            net = ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            raise InvalidParameter(f"invalid CIDR address: {subnet}") from None
        if str(net) != subnet and ipaddress.ip_interface(subnet).ip != net.network_address:
            # dockerd keeps the subnet as given but rejects host bits only in strict cases; accept it normalized
            pass
        for other in subnets:
            if other.version == net.version and other.overlaps(net):
                raise Forbidden(f"networks have overlapping IPv{net.version} configuration")
        subnets.append(net)


def _until(filters: Filters) -> float | None:
    vals = filters.get("until")
    if not vals:
        return None
    return timestamp_ns(sorted(vals)[0]) / 1e9


def _created_ts(created: str) -> float:
    try:
        return parse_rfc3339nano(created) / 1e9
    except ValueError:
        return 0.0
