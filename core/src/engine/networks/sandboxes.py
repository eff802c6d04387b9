"""The container side of the NetworkController: sandboxes (a container's network namespace and
endpoints) and connect/disconnect; their /etc/hosts and /etc/resolv.conf are rendered by
:mod:`engine.networks.sandbox_files`.

:class:`Sandboxes` is an object the :class:`engine.networks.controller.NetworkController` holds and
calls (its container-facing methods delegate here); it asks the controller for the networks,
endpoints, IPAM, drivers and locks.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.drivers import netns
from engine.drivers.network import EndpointInterface, LinkRule, SandboxInfo
from engine.drivers.records import RecordDir
from engine.errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound, SystemError
from engine.networks import sandbox_files
from engine.networks.model import Endpoint, Network, SandboxRecord, new_id
from engine.networks.ports import binding_json, stored_bindings, wanted_ports
from engine.networks.settings import network_settings, ports_map
from engine.networks.settings import normalize_port as normalize
from engine.networks.validation import check_static_ip, network_mode

if TYPE_CHECKING:
    from engine.networks.controller import NetworkController
    from engine.networks.dns import EmbeddedDNS

log = logging.getLogger(__name__)


@dataclass
class Sandbox:
    """What the containers subsystem gets from :meth:`NetworkController.setup_sandbox`."""

    container_id: str
    netns_path: str | None  # None: the host's network namespace
    network_settings: dict[str, Any]
    hosts: str
    resolv_conf: str
    hostname: str
    warnings: list[str] = field(default_factory=list)


class Sandboxes:
    """The container side of the NetworkController (held by it as ``_sandboxes``): each running
    container's sandbox record, network namespace, endpoints and etc files, the connections of
    stopped containers, and the embedded DNS. Networks, endpoints, IPAM, drivers and the per-key
    locks stay the controller's; this asks it for them."""

    def __init__(self, controller: NetworkController, root: Path, netns_dir: Path, containers_root: Path) -> None:
        self.ctl = controller
        self.netns_dir = netns_dir
        self.containers_root = containers_root  # <id>/hosts: a running container's /etc/hosts
        #: the sandboxes of running containers, by container ID
        self.records: dict[str, SandboxRecord] = {}
        self._records_dir = RecordDir(root / "sandboxes")
        self._pending_dir = RecordDir(root / "containers")  # connections of stopped containers
        self.dns: EmbeddedDNS | None = None  # started with the first sandbox that needs it

    # ---- lifecycle ----------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the sandbox records, and the endpoints saved with them, back into memory."""
        for data in self._records_dir.load_all().values():
            sb = SandboxRecord.from_json(data)
            self.records[sb.container_id] = sb
            for record in sb.endpoint_records.values():
                ep = Endpoint.from_json(record)
                self.ctl.endpoints[ep.id] = ep

    def restore(self) -> None:
        """Adopt the sandboxes of containers that kept running; drop the ones nobody lives in."""
        for sb in list(self.records.values()):
            if sb.key and not (Path(sb.key).exists() and _netns_in_use(Path(sb.key))):
                log.info("removing stale network sandbox of container %s", sb.container_id[:12])
                try:
                    self._teardown(sb)
                except Exception:
                    log.exception("removing stale sandbox %s failed", sb.container_id[:12])
                continue
            for net_id in sb.endpoints:
                ep = self.ctl.endpoints.get(sb.endpoint_ids.get(net_id, ""))
                net = self.ctl.networks.get(net_id)
                if ep is None or net is None:
                    continue
                try:
                    self.ctl.driver(net.driver).restore_endpoint(
                        net.id,
                        ep.id,
                        _iface(ep),
                        SandboxInfo(sb.key or "", sb.container_id, ep.ifname),
                        stored_bindings(ep),
                    )
                except Exception:
                    log.exception("restoring endpoint %s failed", ep.id[:12])
            if sb.embedded_dns and sb.key:
                self._dns_attach(sb)

    def sweep_namespaces(self) -> None:
        """Delete namespace files no sandbox knows about (left by a crash)."""
        keys = {sb.key for sb in self.records.values() if sb.key}
        keys |= {str(netns.user_ns_of(key)) for key in keys}
        for file in self.netns_dir.iterdir() if self.netns_dir.exists() else []:
            if str(file) not in keys:
                netns.delete(file)

    def stop(self) -> None:
        if self.dns is not None:
            self.dns.stop()

    # ---- containers: sandboxes ------------------------------------------------------------------

    def sandbox_of(self, container_id: str) -> Sandbox | None:
        """The running container's sandbox (for ``--network container:<id>``), or None."""
        sb = self.records.get(container_id)
        if sb is None:
            return None
        return self._public(sb)

    def setup(
        self,
        container_id: str,
        name: str,
        config: Mapping[str, Any],
        host_config: Mapping[str, Any],
        networking_config: Mapping[str, Any] | None = None,
        user_ns: str | None = None,
    ) -> Sandbox:
        """Create the container's network namespace and join its networks (container start).

        Idempotent per container: a second call returns the existing sandbox. On any error,
        everything made so far is undone (the container does not start half-wired).
        """
        name = name.lstrip("/")
        with self.ctl.locks("c:" + container_id):
            if container_id in self.records:
                return self._public(self.records[container_id])
            mode = network_mode(host_config)
            if mode == "default":
                mode = "none" if self.ctl.bridge_disabled() else "bridge"
            sb = SandboxRecord(
                container_id=container_id,
                id=new_id(),
                key=None,
                mode=mode,
                name=name,
                hostname=config.get("Hostname") or container_id[:12],
                domainname=config.get("Domainname") or "",
                extra_hosts=list(host_config.get("ExtraHosts") or []),
                dns_servers=list(host_config.get("Dns") or self.ctl.config.get("dns") or []),
                dns_search=list(host_config.get("DnsSearch") or self.ctl.config.get("dns-search") or []),
                dns_options=list(host_config.get("DnsOptions") or self.ctl.config.get("dns-opts") or []),
                port_bindings=dict(host_config.get("PortBindings") or {}),
                exposed_ports=list((config.get("ExposedPorts") or {}).keys()),
                publish_all=bool(host_config.get("PublishAllPorts")),
            )
            if mode.startswith("container:"):
                return self._join_other(sb, mode.split(":", 1)[1])
            primary = self.ctl.get(mode)
            endpoints_cfg = self._endpoint_configs(networking_config, primary)
            endpoints_cfg.update(self._pending_connections(container_id, exclude=primary))
            drv = self.ctl.driver(primary.driver)
            if primary.driver == "host":
                sb.hostname = config.get("Hostname") or socket.gethostname()
            try:
                if drv.needs_sandbox:
                    sb.key = str(self.netns_dir / sb.id[:12])
                    # userns-remap: the namespace belongs to the container's user namespace
                    remapped = host_config.get("UsernsMode") != "host"
                    netns.create(
                        Path(sb.key),
                        id_map=self.ctl.id_map if remapped else None,
                        user_ns=user_ns if remapped else None,
                    )
                self.records[container_id] = sb
                self._join(sb, primary, endpoints_cfg.pop(primary.id, {}), config)
                if not drv.exclusive:
                    for net_id, cfg in endpoints_cfg.items():
                        self._join(sb, self.ctl.networks[net_id], cfg, config)
                self._links(sb, host_config.get("Links") or [])
                self._write_dns(sb)
                # one write per start: a crash before it leaves only things the next start sweeps
                # (namespace files nobody knows, addresses no endpoint holds, proxies of unknown endpoints)
                self._save_sandbox(sb)
            except BaseException:
                log.info("setting up the network of %s failed; undoing", container_id[:12])
                try:
                    self._teardown(sb)
                except Exception:
                    log.exception("undoing the network sandbox of %s failed", container_id[:12])
                raise
            return self._public(sb)

    def _endpoint_configs(
        self, networking_config: Mapping[str, Any] | None, primary: Network
    ) -> dict[str, dict[str, Any]]:
        """EndpointsConfig keyed by network ID, the primary network first. Keys are names or IDs; the
        networks besides the primary (API >= 1.44 clients send several) are joined too; unknown ones fail."""
        out: dict[str, dict[str, Any]] = {primary.id: {}}
        for key, cfg in dict((networking_config or {}).get("EndpointsConfig") or {}).items():
            net = primary if key in (primary.name, primary.id) else self.ctl.get(key)
            out[net.id] = dict(cfg or {})
        return out

    def _join_other(self, sb: SandboxRecord, other_id: str) -> Sandbox:
        other = self.records.get(other_id)
        if other is None:
            matches = [c for c in self.records if c.startswith(other_id)]
            other = self.records.get(matches[0]) if len(matches) == 1 else None
        if other is None:
            raise Conflict(f"cannot join network of a non running container: {other_id}")
        sb.key = other.key
        sb.joined_to = other.container_id
        sb.hostname = other.hostname
        self.records[sb.container_id] = sb
        self._save_sandbox(sb)
        pub = self._public(other)
        return Sandbox(
            container_id=sb.container_id,
            netns_path=other.key,
            network_settings=network_settings(sandbox_id="", sandbox_key="", networks=[], ports={}),
            hosts=pub.hosts,
            resolv_conf=pub.resolv_conf,
            hostname=pub.hostname,
        )

    def _join(self, sb: SandboxRecord, net: Network, cfg: Mapping[str, Any], config: Mapping[str, Any]) -> Endpoint:
        """Create an endpoint of ``net`` for the sandbox's container and join it to the sandbox."""
        if net.id in sb.endpoint_ids:
            raise Forbidden(f"endpoint with name {sb.name} already exists in network {net.name}")
        drv = self.ctl.driver(net.driver)
        with self.ctl.locks(net.id):
            if net.id not in self.ctl.networks:
                raise NotFound(f"network {net.name} not found")
            ep = Endpoint(
                id=new_id(),
                network_id=net.id,
                container_id=sb.container_id,
                name=sb.name,
                ipam_config=dict((cfg or {}).get("IPAMConfig") or {}) or None,
                driver_opts=dict((cfg or {}).get("DriverOpts") or {}) or None,
                links=list((cfg or {}).get("Links") or []),
            )
            user_aliases = list((cfg or {}).get("Aliases") or [])
            if not net.predefined:
                # dockerd 20.10 adds the short ID as an alias on user-defined networks
                ep.aliases = user_aliases + ([sb.container_id[:12]] if sb.container_id[:12] not in user_aliases else [])
            elif user_aliases:
                raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
            iface = EndpointInterface()
            try:
                if drv.uses_ipam and not drv.allocates_addresses:
                    self._allocate_endpoint(net, ep, iface)
                ep.ifname = _next_ifname(self._sandbox_endpoints(sb)) if drv.needs_sandbox else ""
                opts = {
                    "mac_address": config.get("MacAddress") or "",
                    "container_name": sb.name,
                    "container_id": sb.container_id,
                    "aliases": list(ep.aliases),
                }
                if drv.allocates_addresses:
                    opts["ipv4_address"] = (ep.ipam_config or {}).get("IPv4Address") or ""
                drv.create_endpoint(net.id, ep.id, iface, opts)
                ep.mac_address = iface.mac_address
                if drv.allocates_addresses and iface.address is not None:
                    ep.ipv4 = str(iface.address)
                self.ctl.endpoints[ep.id] = ep
                sb.endpoints.append(net.id)
                sb.endpoint_ids[net.id] = ep.id
                default_route = not net.internal and not any(
                    other.default_route for other in self._sandbox_endpoints(sb) if other.id != ep.id
                )
                if drv.needs_sandbox and sb.key:
                    info = drv.join(net.id, ep.id, SandboxInfo(sb.key, sb.container_id, ep.ifname, default_route))
                    ep.gateway = info.gateway
                    ep.gateway_v6 = info.gateway_v6
                    ep.default_route = default_route and bool(info.gateway or info.gateway_v6)
                if default_route and (sb.port_bindings or sb.publish_all):
                    try:
                        bound = drv.program_external_connectivity(net.id, ep.id, wanted_ports(sb))
                    except EngineError as exc:
                        raise SystemError(
                            f"driver failed programming external connectivity on endpoint {sb.name} "
                            f"({ep.id}): {exc.message}"
                        ) from None
                    ep.ports = [binding_json(b) for b in bound]
            except BaseException:
                self._drop_endpoint(ep, sb)
                raise
        if not net.predefined and not sb.embedded_dns and sb.key:
            sb.embedded_dns = True
        self.ctl.events.publish(
            "network", "connect", net.id, {"container": sb.container_id, "name": net.name, "type": net.driver}
        )
        self.ctl.hooks.network_endpoint_joined(
            network_id=net.id, container_id=sb.container_id, endpoint=self._settings(sb)["Networks"].get(net.name, {})
        )
        return ep

    def _allocate_endpoint(self, net: Network, ep: Endpoint, iface: EndpointInterface) -> None:
        requested = ep.ipam_config or {}
        want_v4 = requested.get("IPv4Address") or ""
        want_v6 = requested.get("IPv6Address") or ""
        if want_v4 or want_v6:
            check_static_ip(self.ctl, net)
        for index, cfg in enumerate(net.pools()):
            subnet = ipaddress.ip_network(cfg.subnet)
            pool_id = net.pool_id(index)
            if subnet.version == 4 and not ep.ipv4:
                if want_v4 and ipaddress.ip_address(want_v4) not in subnet:
                    continue
                ip = self.ctl.ipam.request_address(pool_id, want_v4, owner=ep.id, persist=False)
                ep.ipv4, ep.pool_id = f"{ip}/{subnet.prefixlen}", pool_id
                iface.address = ipaddress.IPv4Interface(ep.ipv4)
            elif subnet.version == 6 and net.enable_ipv6 and not ep.ipv6:
                if want_v6 and ipaddress.ip_address(want_v6) not in subnet:
                    continue
                ip = self.ctl.ipam.request_address(pool_id, want_v6, owner=ep.id, persist=False)
                ep.ipv6, ep.pool_id_v6 = f"{ip}/{subnet.prefixlen}", pool_id
                iface.address_v6 = ipaddress.IPv6Interface(ep.ipv6)
        if want_v4 and not ep.ipv4:
            raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {want_v4}")

    def _drop_endpoint(self, ep: Endpoint, sb: SandboxRecord | None = None) -> None:
        """Undo an endpoint completely; every step tolerates what was never done."""
        net = self.ctl.networks.get(ep.network_id)
        if net is not None:
            drv = self.ctl.driver(net.driver)
            for step in (drv.revoke_links, drv.revoke_external_connectivity, drv.leave, drv.delete_endpoint):
                try:
                    step(net.id, ep.id)
                except Exception:
                    log.exception("%s of endpoint %s failed", step.__name__, ep.id[:12])
        if ep.ipv4 and ep.pool_id:
            self.ctl.ipam.release_address(ep.pool_id, str(ipaddress.ip_interface(ep.ipv4).ip), persist=False)
        if ep.ipv6 and ep.pool_id_v6:
            self.ctl.ipam.release_address(ep.pool_id_v6, str(ipaddress.ip_interface(ep.ipv6).ip), persist=False)
        self.ctl.endpoints.pop(ep.id, None)
        if sb is not None and sb.endpoint_ids.get(ep.network_id) == ep.id:
            del sb.endpoint_ids[ep.network_id]
            if ep.network_id in sb.endpoints:
                sb.endpoints.remove(ep.network_id)

    def _sandbox_endpoints(self, sb: SandboxRecord) -> list[Endpoint]:
        return [self.ctl.endpoints[e] for n in sb.endpoints if (e := sb.endpoint_ids.get(n)) in self.ctl.endpoints]

    def _links(self, sb: SandboxRecord, links: list[str]) -> None:
        """Legacy ``--link name:alias``: hosts records of the linked containers (default bridge)."""
        for link in links:
            target, _, alias = link.partition(":")
            target = target.lstrip("/")
            alias = alias.rsplit("/", 1)[-1] or target
            other = next((s for s in self.records.values() if s.name == target or s.container_id == target), None)
            if other is None:
                continue
            ip = ""
            for ep in self._sandbox_endpoints(other):
                if ep.ipv4:
                    ip = str(ipaddress.ip_interface(ep.ipv4).ip)
                    break
            if not ip:
                continue
            names = f"{alias} {other.hostname}" + (f" {other.name}" if alias != other.name else "")
            sb.links.append([ip, names])
            self._link_rules(sb, other, ip)

    def _link_rules(self, sb: SandboxRecord, other: SandboxRecord, child_ip: str) -> None:
        """Let the driver open the linked container's exposed ports to this one (icc=false)."""
        mine = self._sandbox_endpoints(sb)
        if not mine or not mine[0].ipv4:
            return
        ep = mine[0]
        net = self.ctl.networks.get(ep.network_id)
        if net is None:
            return
        ports = {normalize(p) for p in [*other.exposed_ports, *other.port_bindings]}
        rules = []
        for port in sorted(ports):
            number, _, proto = port.partition("/")
            rules.append(LinkRule(str(ipaddress.ip_interface(ep.ipv4).ip), child_ip, proto, int(number)))
        if rules:
            self.ctl.driver(net.driver).program_links(net.id, ep.id, rules)

    def _write_dns(self, sb: SandboxRecord) -> None:
        sb.upstream_dns = self._resolv_conf(sb)[1]
        if sb.embedded_dns and sb.key:
            self._dns_attach(sb)

    def _dns_attach(self, sb: SandboxRecord) -> None:
        """Serve the embedded DNS (127.0.0.11) in the sandbox; engine.networks.dns does the work."""
        try:
            if self.dns is None:
                from engine.networks.dns import EmbeddedDNS

                self.dns = EmbeddedDNS(self.ctl)
            self.dns.attach(sb)
        except ImportError:
            log.warning("embedded DNS not available")

    def teardown(self, container_id: str) -> None:
        """Leave every network and delete the namespace (container stop). Idempotent."""
        with self.ctl.locks("c:" + container_id):
            sb = self.records.get(container_id)
            if sb is None:
                return
            self._teardown(sb)

    def _teardown(self, sb: SandboxRecord) -> None:
        if self.dns is not None and sb.embedded_dns:
            try:
                self.dns.detach(sb)
            except Exception:
                log.exception("detaching the embedded DNS of %s failed", sb.container_id[:12])
        for net_id in list(reversed(sb.endpoints)):
            ep = self.ctl.endpoints.get(sb.endpoint_ids.get(net_id, ""))
            if ep is None:
                continue
            net = self.ctl.networks.get(net_id)
            with self.ctl.locks(net_id):
                self._drop_endpoint(ep, sb)
            if net is not None:
                self.ctl.events.publish(
                    "network",
                    "disconnect",
                    net.id,
                    {"container": sb.container_id, "name": net.name, "type": net.driver},
                )
                self.ctl.hooks.network_endpoint_left(network_id=net.id, container_id=sb.container_id)
        if sb.key and not sb.joined_to:
            netns.delete(Path(sb.key))
        self.records.pop(sb.container_id, None)
        self._records_dir.delete(sb.container_id)

    def rename(self, container_id: str, new_name: str) -> None:
        """``docker rename``: endpoints (and so the embedded DNS) answer to the new name."""
        new_name = new_name.lstrip("/")
        with self.ctl.locks("c:" + container_id):
            sb = self.records.get(container_id)
            if sb is None:
                return
            sb.name = new_name
            for ep in self._sandbox_endpoints(sb):
                ep.name = new_name
            self._save_sandbox(sb)

    def release(self, container_id: str) -> None:
        """Forget a removed container (its pending connections); tears down a leftover sandbox."""
        self.teardown(container_id)
        self._pending_dir.delete(container_id)

    def _save_sandbox(self, sb: SandboxRecord) -> None:
        """The sandbox and its endpoints, in one atomic write."""
        sb.endpoint_records = {
            net_id: self.ctl.endpoints[ep_id].to_json()
            for net_id, ep_id in sb.endpoint_ids.items()
            if ep_id in self.ctl.endpoints
        }
        self._records_dir.save(sb.container_id, sb.to_json())

    # ---- connect / disconnect ---------------------------------------------------------------------

    def _pending_connections(self, container_id: str, exclude: Network) -> dict[str, dict[str, Any]]:
        path = self._pending_dir.path / f"{container_id}.json"
        if not path.exists():
            return {}
        from engine.drivers.records import read_json

        out = {}
        for net_id, cfg in (read_json(path).get("networks") or {}).items():
            if net_id in self.ctl.networks and net_id != exclude.id:
                out[net_id] = cfg
        return out

    def _set_pending(self, container_id: str, net: Network, cfg: Mapping[str, Any] | None) -> None:
        path = self._pending_dir.path / f"{container_id}.json"
        from engine.drivers.records import read_json

        data = read_json(path) if path.exists() else {"networks": {}}
        if cfg is None:
            data["networks"].pop(net.id, None)
        else:
            data["networks"][net.id] = dict(cfg)
        self._pending_dir.save(container_id, data)

    def connect(
        self,
        ref: str,
        container_id: str,
        endpoint_config: Mapping[str, Any] | None = None,
        *,
        name: str = "",
        config: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """``docker network connect``: join a running container now; for a stopped one, remember the
        connection for its next start. Returns the new ``NetworkSettings`` when the container runs."""
        net = self.ctl.get(ref)
        cfg = dict(endpoint_config or {})
        if net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        if net.driver == "null":
            raise Forbidden(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode"
            )
        ipam = cfg.get("IPAMConfig") or {}
        if ipam.get("IPv4Address") or ipam.get("IPv6Address"):
            check_static_ip(self.ctl, net)
        with self.ctl.locks("c:" + container_id):
            sb = self.records.get(container_id)
            if sb is None:
                self._set_pending(container_id, net, cfg)
                return None
            if sb.joined_to:
                raise Forbidden(
                    "container sharing network namespace with another container or host cannot be "
                    "connected to any other network"
                )
            primary = self.ctl.networks.get(sb.endpoints[0]) if sb.endpoints else None
            if (
                sb.key is None
                or (primary is not None and self.ctl.driver(primary.driver).exclusive)
                or sb.mode == "none"
            ):
                if sb.key is None:
                    raise Forbidden("container cannot be disconnected from host network or connected to host network")
                raise Forbidden(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode"
                )
            if net.id in sb.endpoint_ids:
                raise Forbidden(f"endpoint with name {sb.name} already exists in network {net.name}")
            self._join(sb, net, cfg, config or {})
            self._set_pending(container_id, net, cfg)
            if not net.predefined and sb.key:
                self._write_dns(sb)
            self._save_sandbox(sb)
            self._refresh_files(sb)
            return self._settings(sb)

    def disconnect(self, ref: str, container_id: str, force: bool = False) -> dict[str, Any] | None:
        """``docker network disconnect``; returns the new ``NetworkSettings`` when the container runs."""
        try:
            net = self.ctl.get(ref)
        except NotFound:
            if not force:
                raise
            return None
        if net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        with self.ctl.locks("c:" + container_id):
            self._set_pending(container_id, net, None)
            sb = self.records.get(container_id)
            if sb is None:
                return None
            ep = self.ctl.endpoints.get(sb.endpoint_ids.get(net.id, ""))
            if ep is None:
                raise InvalidParameter(f"container {container_id} is not connected to network {net.name}")
            with self.ctl.locks(net.id):
                self._drop_endpoint(ep, sb)
            self.ctl.events.publish(
                "network", "disconnect", net.id, {"container": container_id, "name": net.name, "type": net.driver}
            )
            self.ctl.hooks.network_endpoint_left(network_id=net.id, container_id=container_id)
            if ep.default_route:
                self._reelect_default_route(sb)
            self._save_sandbox(sb)
            self._refresh_files(sb)
            return self._settings(sb)

    def _reelect_default_route(self, sb: SandboxRecord) -> None:
        """The network that routed the container out went: the next one with a gateway takes over (as libnetwork)."""
        for ep in self._sandbox_endpoints(sb):
            if not (ep.gateway or ep.gateway_v6) or not ep.ifname or not sb.key:
                continue
            try:
                netns.run_in(sb.key, functools.partial(_set_default_route, ep.ifname, ep.gateway, ep.gateway_v6))
            except Exception:
                log.exception("moving the default route of %s to %s failed", sb.container_id[:12], ep.ifname)
                return
            ep.default_route = True
            return

    def _refresh_files(self, sb: SandboxRecord) -> None:
        """Rewrite the running container's /etc/hosts in place (a bind-mounted file keeps its inode)."""
        hosts_path = self.containers_root / sb.container_id / "hosts"
        if hosts_path.exists():
            sandbox_files.rewrite_hosts(hosts_path, self._hosts(sb))

    # ---- what containers get -----------------------------------------------------------------------------

    def _public(self, sb: SandboxRecord) -> Sandbox:
        resolv, upstream = self._resolv_conf(sb)
        if upstream != sb.upstream_dns:
            sb.upstream_dns = upstream
        return Sandbox(
            container_id=sb.container_id,
            netns_path=sb.key,
            network_settings=self._settings(sb),
            hosts=self._hosts(sb),
            resolv_conf=resolv,
            hostname=sb.hostname + "\n",
        )

    def _settings(self, sb: SandboxRecord) -> dict[str, Any]:
        if sb.joined_to:
            return network_settings(sandbox_id="", sandbox_key="", networks=[], ports={})
        nets = []
        bindings: list[dict[str, Any]] = []
        for net_id in sb.endpoints:
            net = self.ctl.networks.get(net_id)
            ep = self.ctl.endpoints.get(sb.endpoint_ids.get(net_id, ""))
            if net is None:
                continue
            nets.append((net.name, net, ep, None))
            if ep is not None:
                bindings.extend(ep.ports)
        key = sb.key or str(self.netns_dir / "default")
        ports = ports_map(sb.exposed_ports, bindings, sb.port_bindings) if sb.key else {}
        return network_settings(sandbox_id=sb.id, sandbox_key=key, networks=nets, ports=ports)

    def _hosts(self, sb: SandboxRecord) -> str:
        return sandbox_files.hosts(sb, self._sandbox_endpoints(sb), self.ctl.host_gateway_ip())

    def _resolv_conf(self, sb: SandboxRecord) -> tuple[str, list[str]]:
        ipv6 = any(self.ctl.networks[n].enable_ipv6 for n in sb.endpoints if n in self.ctl.networks)
        return sandbox_files.resolv_conf(sb, ipv6)


# ---- helpers ----------------------------------------------------------------------------------------


def _set_default_route(ifname: str, gateway: str, gateway_v6: str) -> None:
    """In the current (sandbox) namespace: the default route(s) through ``ifname``."""
    from pyroute2.iproute import IPRoute

    with IPRoute() as ipr:
        index = ipr.link("get", ifname=ifname)[0]["index"]
        if gateway:
            ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)
        if gateway_v6:
            ipr.route("replace", dst="::/0", gateway=gateway_v6, oif=index, family=10)


def _next_ifname(endpoints: list[Endpoint]) -> str:
    used = {ep.ifname for ep in endpoints}
    index = 0
    while f"eth{index}" in used:
        index += 1
    return f"eth{index}"


def _iface(ep: Endpoint) -> EndpointInterface:
    return EndpointInterface(
        address=ipaddress.IPv4Interface(ep.ipv4) if ep.ipv4 else None,
        address_v6=ipaddress.IPv6Interface(ep.ipv6) if ep.ipv6 else None,
        mac_address=ep.mac_address,
    )


def _netns_in_use(path: Path) -> bool:
    """Whether any process lives in the namespace bound at ``path`` (a stale one after a crash has none)."""
    try:
        target = os.stat(path)
    except OSError:
        return False
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if st.st_ino == target.st_ino and st.st_dev == target.st_dev:
            return True
    return False
