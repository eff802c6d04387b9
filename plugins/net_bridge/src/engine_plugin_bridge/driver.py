"""The ``bridge`` network driver: a Linux bridge per network, a veth pair per endpoint, NAT and
filtering in engine's own nftables table, published ports through engine-proxy.

The default ``bridge`` network takes its settings from daemon.json (``bridge``, ``bip``,
``mtu``, ``icc``, ``ip-masq``, ``ip``...); its Linux bridge is ``engine0`` for the default
daemon (never ``docker0``) and ``eng-<hash8>`` for a daemon with another exec-root. A
user-defined network's bridge is ``br-<network-id[:12]>`` unless
``com.docker.network.bridge.name`` names one. Driver state (which bridges engine created,
each endpoint's veth and proxies) is kept under the driver's state dir so a restarted daemon
can re-adopt live endpoints or clean up after a crash.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.network import (
    EndpointInterface,
    JoinInfo,
    LinkRule,
    NetworkDriver,
    NetworkDriverContext,
    NetworkSpec,
    PortBinding,
    SandboxInfo,
)
from engine.drivers.records import RecordDir
from engine.errors import Conflict, EngineError, InvalidParameter
from engine_plugin_bridge import links
from engine_plugin_bridge.firewall import Firewall, LinkAccept, NetworkRules, PortRule, Ruleset
from engine_plugin_bridge.ports import (
    PortAllocator,
    ProxyProcess,
    bind_published,
    host_has_ipv6,
    proxy_alive,
    spawn_proxy,
)

log = logging.getLogger(__name__)

OPT_PREFIX = "com.docker.network.bridge."
OPT_NAME = OPT_PREFIX + "name"
OPT_MASQ = OPT_PREFIX + "enable_ip_masquerade"
OPT_ICC = OPT_PREFIX + "enable_icc"
OPT_HOST_BINDING = OPT_PREFIX + "host_binding_ipv4"
OPT_INHIBIT = OPT_PREFIX + "inhibit_ipv4"
OPT_DEFAULT = OPT_PREFIX + "default_bridge"
OPT_MTU = "com.docker.network.driver.mtu"
BOOL_OPTIONS = (OPT_MASQ, OPT_ICC, OPT_INHIBIT, OPT_DEFAULT)
DEFAULT_MTU = 1500


def parse_bool(value: str, key: str) -> bool:
    low = str(value).strip().lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise InvalidParameter(f'failed to parse {key} value: strconv.ParseBool: parsing "{value}": invalid syntax')


def default_bridge_name(instance: str) -> str:
    return "engine0" if instance == "engine" else "eng-" + instance[-8:]


def mac_for(ip: ipaddress.IPv4Address | None) -> str:
    """dockerd's MAC for an address: 02:42 and the four bytes of the IPv4 address."""
    if ip is None:
        import secrets

        tail = secrets.token_bytes(4)
    else:
        tail = ip.packed
    return "02:42:" + ":".join(f"{b:02x}" for b in tail)


@dataclass
class BridgeNetwork:
    id: str
    name: str
    bridge: str
    mtu: int
    icc: bool
    masquerade: bool
    host_binding: str
    inhibit_ipv4: bool
    internal: bool
    default: bool
    subnet: ipaddress.IPv4Network | None = None
    gateway: ipaddress.IPv4Interface | None = None
    default_gateway: str = ""  # --default-gateway (aux address DefaultGatewayIPv4)
    subnet_v6: ipaddress.IPv6Network | None = None
    gateway_v6: ipaddress.IPv6Interface | None = None
    created_bridge: bool = False


@dataclass
class BridgeEndpoint:
    id: str
    network_id: str
    host_veth: str
    address: ipaddress.IPv4Interface | None = None
    address_v6: ipaddress.IPv6Interface | None = None
    mac: str = ""
    ports: list[dict[str, Any]] = field(default_factory=list)
    proxies: list[ProxyProcess] = field(default_factory=list)
    links: list[LinkRule] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "network_id": self.network_id,
            "host_veth": self.host_veth,
            "ports": self.ports,
            "proxies": [p.to_json() for p in self.proxies],
        }


class BridgeNetworkDriver(NetworkDriver):
    name = "bridge"
    API_VERSION = DRIVER_API_VERSION

    def __init__(self, context: NetworkDriverContext) -> None:
        super().__init__(context)
        cfg = context.config
        self.iptables = bool(cfg.get("iptables", True))
        self.userland_proxy = bool(cfg.get("userland-proxy", True))
        self.proxy_path = str(cfg.get("userland-proxy-path") or "")
        self.firewall = Firewall(context.instance, enabled=self.iptables)
        self.networks: dict[str, BridgeNetwork] = {}
        self.endpoints: dict[str, BridgeEndpoint] = {}
        self.allocator = PortAllocator()
        self._lock = threading.RLock()
        self._net_state = RecordDir(context.state_dir / "networks")
        self._ep_state = RecordDir(context.state_dir / "endpoints")
        # --link accept rules live only in the firewall: recorded so a live-restore restart re-renders them
        self._link_state = RecordDir(context.state_dir / "links")

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.context.config
        if cfg.get("ip-forward", True):
            links.set_sysctl("net/ipv4/ip_forward", "1")
        if self.iptables:
            # bridged (same-bridge) traffic must pass the forward hook for icc=false and the user chain
            links.set_sysctl("net/bridge/bridge-nf-call-iptables", "1")
        # a crash may have left the table: start from a clean one (the user chain survives)
        try:
            self.firewall.remove()
        except Exception:
            log.exception("removing the stale firewall table failed")

    def stop(self) -> None:
        with self._lock:
            if not self.networks:
                self.firewall.remove()

    # ---- networks --------------------------------------------------------------------------------

    def validate_options(self, options: Mapping[str, str]) -> None:
        for key in BOOL_OPTIONS:
            if key in options:
                parse_bool(options[key], key)
        if OPT_MTU in options:
            try:
                mtu = int(options[OPT_MTU])
            except ValueError:
                raise InvalidParameter(f"invalid MTU value: {options[OPT_MTU]}") from None
            if mtu < 68:
                raise InvalidParameter(f"invalid MTU number: {mtu}")
        if OPT_HOST_BINDING in options:
            try:
                ipaddress.IPv4Address(options[OPT_HOST_BINDING])
            except ValueError:
                raise InvalidParameter(f"failed to parse {OPT_HOST_BINDING}: {options[OPT_HOST_BINDING]}") from None
        name = options.get(OPT_NAME)
        if name is not None and not (0 < len(name) <= 15):
            raise InvalidParameter(f"invalid bridge name {name!r}: at most 15 characters")
        with self._lock:
            for net in self.networks.values():
                if name and net.bridge == name:
                    raise Conflict(f"bridge name {name} already in use by network {net.name}")

    def _config(self, spec: NetworkSpec) -> BridgeNetwork:
        cfg = self.context.config
        opts = spec.options
        mtu_raw = cfg.get("mtu") or 0 if spec.default else opts.get(OPT_MTU, 0)
        mtu = int(mtu_raw or 0) or DEFAULT_MTU
        if spec.default:
            bridge = cfg.get("bridge") or default_bridge_name(self.context.instance)
            icc = bool(cfg.get("icc", True))
            masq = bool(cfg.get("ip-masq", True))
            binding = str(cfg.get("ip") or "0.0.0.0")
            inhibit = False
        else:
            bridge = opts.get(OPT_NAME) or f"br-{spec.network_id[:12]}"
            icc = parse_bool(opts.get(OPT_ICC, "true"), OPT_ICC)
            masq = parse_bool(opts.get(OPT_MASQ, "true"), OPT_MASQ)
            binding = opts.get(OPT_HOST_BINDING) or str(cfg.get("ip") or "0.0.0.0")
            inhibit = parse_bool(opts.get(OPT_INHIBIT, "false"), OPT_INHIBIT)
        net = BridgeNetwork(
            id=spec.network_id,
            name=spec.name,
            bridge=bridge,
            mtu=mtu,
            icc=icc,
            masquerade=masq,
            host_binding=binding,
            inhibit_ipv4=inhibit,
            internal=spec.internal,
            default=spec.default,
        )
        if spec.ipv4:
            data = spec.ipv4[0]
            net.subnet = data.pool  # type: ignore[assignment]
            net.gateway = data.gateway  # type: ignore[assignment]
            aux = data.aux_addresses.get("DefaultGatewayIPv4")
            net.default_gateway = str(aux.ip) if aux is not None else ""
        if spec.ipv6 and spec.enable_ipv6:
            net.subnet_v6 = spec.ipv6[0].pool  # type: ignore[assignment]
            net.gateway_v6 = spec.ipv6[0].gateway  # type: ignore[assignment]
        return net

    def create_network(self, spec: NetworkSpec) -> None:
        net = self._config(spec)
        with self._lock:
            for other in self.networks.values():
                if other.id != net.id and other.bridge == net.bridge:
                    raise Conflict(f"bridge name {net.bridge} already in use by network {other.name}")
        saved = self._net_state.load(net.id) or {}
        addresses: list[Any] = []
        if net.gateway is not None and not net.inhibit_ipv4:
            addresses.append(net.gateway)
        if net.gateway_v6 is not None:
            addresses.append(net.gateway_v6)
        created = links.ensure_bridge(net.bridge, net.mtu, addresses)
        net.created_bridge = created or bool(saved.get("created_bridge"))
        self._net_state.save(net.id, {"bridge": net.bridge, "created_bridge": net.created_bridge})
        if not self.userland_proxy:
            links.set_sysctl(f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
        with self._lock:
            self.networks[net.id] = net
            try:
                self._apply_firewall()
            except BaseException:
                del self.networks[net.id]
                raise

    def delete_network(self, network_id: str) -> None:
        with self._lock:
            net = self.networks.pop(network_id, None)
            saved = self._net_state.load(network_id) or {}
            if net is None and not saved:
                return
            self._apply_firewall()
        bridge = net.bridge if net else saved.get("bridge", "")
        created = net.created_bridge if net else bool(saved.get("created_bridge"))
        if bridge and created:
            links.delete_link(bridge)
        elif bridge and net is not None and net.gateway is not None:
            links.remove_addresses(bridge, [net.gateway])  # a bridge the user made: leave it as it was
        self._net_state.delete(network_id)

    def network_info(self, network_id: str) -> dict[str, str]:
        net = self.networks.get(network_id)
        if net is None or not net.default:
            return {}
        return {
            OPT_DEFAULT: "true",
            OPT_ICC: str(net.icc).lower(),
            OPT_MASQ: str(net.masquerade).lower(),
            OPT_HOST_BINDING: net.host_binding,
            OPT_NAME: net.bridge,
            OPT_MTU: str(net.mtu),
        }

    # ---- endpoints -------------------------------------------------------------------------------

    def create_endpoint(
        self, network_id: str, endpoint_id: str, iface: EndpointInterface, options: Mapping[str, Any]
    ) -> None:
        if network_id not in self.networks:
            raise EngineError(f"network {network_id} not found in the bridge driver")
        mac = str(options.get("mac_address") or "") or mac_for(iface.address.ip if iface.address else None)
        iface.mac_address = mac.lower()
        ep = BridgeEndpoint(
            id=endpoint_id,
            network_id=network_id,
            host_veth="veth" + endpoint_id[:7],
            address=iface.address,
            address_v6=iface.address_v6,
            mac=iface.mac_address,
        )
        with self._lock:
            self.endpoints[endpoint_id] = ep
        # nothing to persist yet: the veth is named after the endpoint and dies with the namespace

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            self.endpoints.pop(endpoint_id, None)
        self._ep_state.delete(endpoint_id)
        self._link_state.delete(endpoint_id)

    def join(self, network_id: str, endpoint_id: str, sandbox: SandboxInfo) -> JoinInfo:
        net = self.networks[network_id]
        ep = self.endpoints[endpoint_id]
        links.create_veth(ep.host_veth, net.bridge, net.mtu, sandbox.key, sandbox.ifname, ep.mac)
        gateway = ""
        if not net.internal and net.gateway is not None and not net.inhibit_ipv4:
            gateway = net.default_gateway or str(net.gateway.ip)
        gateway_v6 = str(net.gateway_v6.ip) if net.gateway_v6 is not None and not net.internal else ""
        links.configure_sandbox_interface(
            sandbox.key,
            sandbox.ifname,
            ep.address,
            ep.address_v6,
            gateway,
            gateway_v6,
            sandbox.default_route,
        )
        return JoinInfo(interface_name=sandbox.ifname, gateway=gateway, gateway_v6=gateway_v6)

    def leave(self, network_id: str, endpoint_id: str) -> None:
        ep = self.endpoints.get(endpoint_id)
        host_veth = ep.host_veth if ep else "veth" + endpoint_id[:7]
        links.delete_link(host_veth)

    # ---- published ports -------------------------------------------------------------------------

    def _host_ips(self, net: BridgeNetwork, requested: str) -> list[str]:
        ip = requested or net.host_binding
        if ip in ("0.0.0.0", "") and host_has_ipv6() and self.userland_proxy and not requested:
            return ["0.0.0.0", "::"]
        return [ip or "0.0.0.0"]

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, ports: list[PortBinding]
    ) -> list[PortBinding]:
        net = self.networks[network_id]
        ep = self.endpoints[endpoint_id]
        if net.internal or ep.address is None:
            return []
        done: list[PortBinding] = []
        log_path = self.context.state_dir / "proxy.log"
        try:
            for binding in ports:
                host_ips = self._host_ips(net, binding.host_ip)
                bound = bind_published(
                    self.allocator,
                    binding.proto,
                    host_ips,
                    binding.host_port,
                    binding.host_port_end,
                    listen=self.userland_proxy,
                )
                for b in bound:
                    ep.ports.append(
                        {
                            "proto": b.proto,
                            "container_port": binding.container_port,
                            "host_ip": b.host_ip,
                            "host_port": b.host_port,
                        }
                    )
                    done.append(PortBinding(b.proto, binding.container_port, b.host_ip, b.host_port))
                if self.userland_proxy:
                    ep.proxies.extend(
                        spawn_proxy(
                            binding.proto,
                            str(ep.address.ip),
                            binding.container_port,
                            bound,
                            tag=endpoint_id[:12],
                            proxy_path=self.proxy_path,
                            log_path=log_path,
                        )
                    )
                else:
                    for b in bound:
                        for s in b.sockets:
                            s.close()
            if ep.proxies:
                # the proxies outlive the daemon: record them so a restart adopts (or stops) them
                self._ep_state.save(endpoint_id, ep.to_json())
            with self._lock:
                self._apply_firewall()
        except BaseException:
            self.revoke_external_connectivity(network_id, endpoint_id)
            raise
        return done

    def revoke_external_connectivity(self, network_id: str, endpoint_id: str) -> None:
        ep = self.endpoints.get(endpoint_id)
        if ep is None:
            saved = self._ep_state.load(endpoint_id)
            if not saved:
                return
            ep = BridgeEndpoint(endpoint_id, network_id, saved.get("host_veth", ""), ports=saved.get("ports", []))
            ep.proxies = [ProxyProcess(p["pid"], p["start_time"]) for p in saved.get("proxies", [])]
        for proxy in ep.proxies:
            proxy.stop()
        for p in ep.ports:
            self.allocator.release(p["proto"], p["host_ip"], p["host_port"])
        had_ports = bool(ep.ports)
        ep.proxies, ep.ports = [], []
        self._ep_state.delete(endpoint_id)
        if had_ports:
            with self._lock:
                self._apply_firewall()

    def restore_endpoint(
        self,
        network_id: str,
        endpoint_id: str,
        iface: EndpointInterface,
        sandbox: SandboxInfo,
        ports: list[PortBinding],
    ) -> None:
        """Adopt a live container's endpoint: its veth and proxies kept running while we were down."""
        saved = self._ep_state.load(endpoint_id) or {}
        ep = BridgeEndpoint(
            id=endpoint_id,
            network_id=network_id,
            host_veth=saved.get("host_veth") or "veth" + endpoint_id[:7],
            address=iface.address,
            address_v6=iface.address_v6,
            mac=iface.mac_address,
            ports=list(
                saved.get("ports")
                or [
                    {
                        "proto": p.proto,
                        "container_port": p.container_port,
                        "host_ip": p.host_ip,
                        "host_port": p.host_port,
                    }
                    for p in ports
                ]
            ),
            proxies=[ProxyProcess(p["pid"], p["start_time"]) for p in saved.get("proxies", [])],
            links=[LinkRule(**rule) for rule in (self._link_state.load(endpoint_id) or {}).get("links", [])],
        )
        for p in ep.ports:
            self.allocator.reserve(p["proto"], p["host_ip"], p["host_port"])
        dead = [p for p in ep.proxies if not proxy_alive(p.pid, p.start_time)]
        with self._lock:
            self.endpoints[endpoint_id] = ep
        if dead and self.userland_proxy and ep.address is not None:
            log.warning("respawning %d dead port proxies of endpoint %s", len(dead), endpoint_id[:12])
            wanted = ep.ports
            self.revoke_external_connectivity(network_id, endpoint_id)
            groups: dict[tuple[str, int, int], list[str]] = {}
            for p in wanted:
                groups.setdefault((p["proto"], p["container_port"], p["host_port"]), []).append(p["host_ip"])
            for (proto, cport, hport), _ips in groups.items():
                self.program_external_connectivity(network_id, endpoint_id, [PortBinding(proto, cport, "", hport)])
        with self._lock:
            self._apply_firewall()

    def program_links(self, network_id: str, endpoint_id: str, links: list[LinkRule]) -> None:
        ep = self.endpoints.get(endpoint_id)
        if ep is None:
            return
        self._link_state.save(endpoint_id, {"links": [asdict(rule) for rule in links]})
        with self._lock:
            ep.links = list(links)
            self._apply_firewall()

    def revoke_links(self, network_id: str, endpoint_id: str) -> None:
        ep = self.endpoints.get(endpoint_id)
        self._link_state.delete(endpoint_id)
        if ep is None or not ep.links:
            return
        with self._lock:
            ep.links = []
            self._apply_firewall()

    def reconcile(self, endpoint_ids: set[str]) -> None:
        """Remove what a crash left: bridges of networks core never saved, proxies of unknown endpoints."""
        for network_id, saved in self._net_state.load_all().items():
            if network_id in self.networks:
                continue
            if saved.get("created_bridge") and saved.get("bridge"):
                log.info("removing bridge %s of an unknown network", saved["bridge"])
                links.delete_link(saved["bridge"])
            self._net_state.delete(network_id)
        for endpoint_id, saved in self._ep_state.load_all().items():
            if endpoint_id in endpoint_ids:
                continue
            for p in saved.get("proxies", []):
                ProxyProcess(p["pid"], p["start_time"]).stop()
            self._ep_state.delete(endpoint_id)
        for endpoint_id in self._link_state.load_all():
            if endpoint_id not in endpoint_ids:
                self._link_state.delete(endpoint_id)

    # ---- firewall --------------------------------------------------------------------------------

    def _apply_firewall(self) -> None:
        """Re-render engine's table from the current networks and ports (caller holds the lock)."""
        rules = Ruleset(userland_proxy=self.userland_proxy)
        for net in self.networks.values():
            rules.networks.append(
                NetworkRules(
                    bridge=net.bridge,
                    subnet=str(net.subnet) if net.subnet else "",
                    masquerade=net.masquerade,
                    icc=net.icc,
                    internal=net.internal,
                )
            )
        for ep in self.endpoints.values():
            net = self.networks.get(ep.network_id)
            if net is None or ep.address is None:
                continue
            for p in ep.ports:
                if ":" in p["host_ip"]:
                    continue  # IPv6 bindings are served by the proxy only
                rules.ports.append(
                    PortRule(
                        net.bridge, p["proto"], p["host_ip"], p["host_port"], str(ep.address.ip), p["container_port"]
                    )
                )
        for ep in self.endpoints.values():
            net = self.networks.get(ep.network_id)
            if net is not None:
                rules.links.extend(
                    LinkAccept(net.bridge, link.parent_ip, link.child_ip, link.proto, link.port) for link in ep.links
                )
        if not rules.networks:
            self.firewall.remove()  # the last network went: nothing of engine's stays in the ruleset
            return
        self.firewall.apply(rules)

    # ---- diagnostics -----------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        out = []
        names = {n.bridge for n in self.networks.values() if n.created_bridge}
        names |= {e.host_veth for e in self.endpoints.values()}
        for saved in self._net_state.load_all().values():
            if saved.get("created_bridge"):
                names.add(saved.get("bridge", ""))
        for name in sorted(n for n in names if n):
            if links.link_exists(name):
                out.append(f"link {name}")
        if self.iptables and self.firewall.exists():
            out.append(f"nftables table ip {self.firewall.table}")
        for saved in self._ep_state.load_all().values():
            for p in saved.get("proxies", []):
                if proxy_alive(p["pid"], p["start_time"]):
                    out.append(f"proxy pid {p['pid']}")
        return out
