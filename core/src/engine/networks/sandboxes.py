"""The container side of the NetworkController: sandboxes (a container's network namespace and
endpoints), connect/disconnect, and the /etc/hosts, /etc/resolv.conf and hostname contents.

:class:`SandboxOps` is mixed into :class:`engine.networks.controller.NetworkController`; it uses
the controller's state (``networks``, ``endpoints``, ``sandboxes``, ``ipam``, locks, drivers).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.drivers import netns
from engine.drivers.network import EndpointInterface, LinkRule, PortBinding, SandboxInfo
from engine.errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound, SystemError
from engine.networks import etcfiles
from engine.networks.model import Endpoint, Network, SandboxRecord, new_id
from engine.networks.settings import network_settings, ports_map
from engine.networks.settings import normalize_port as normalize

log = logging.getLogger(__name__)

T = TypeVar("T")

HOST_RESOLV_CONF = Path("/etc/resolv.conf")
HOST_HOSTS = Path("/etc/hosts")


def host_resolv_conf_path() -> Path:
    """The resolv.conf containers' files are derived from; ``ENGINE_RESOLV_CONF`` overrides it (tests)."""
    return Path(os.environ.get("ENGINE_RESOLV_CONF") or HOST_RESOLV_CONF)


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


class SandboxOps:
    """The container side of NetworkController (mixed into it): sandboxes, endpoints, etc files."""

    # ---- containers: validation at create ---------------------------------------------------------

    @off_event_loop
    def validate_container(
        self, config: Mapping[str, Any], host_config: Mapping[str, Any], networking_config: Mapping[str, Any] | None
    ) -> list[str]:
        """Checks dockerd runs at ``POST /containers/create``; returns its warnings.

        A network that does not exist is *not* an error here: dockerd creates the container and fails
        its start with "network x not found" (a 404 at create would make the docker CLI try to pull
        the image).

        :raises InvalidParameter: conflicting options, with dockerd's messages.
        """
        warnings: list[str] = []
        mode = _mode(host_config)
        if mode == "default":
            mode = "none" if self.bridge_disabled() else "bridge"
        endpoints = dict((networking_config or {}).get("EndpointsConfig") or {})
        if mode.startswith("container:"):
            if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
                raise InvalidParameter("conflicting options: port publishing and the container type network mode")
            if host_config.get("Dns") or host_config.get("DnsSearch") or host_config.get("DnsOptions"):
                raise InvalidParameter("conflicting options: dns and the network mode")
            if host_config.get("ExtraHosts"):
                raise InvalidParameter("conflicting options: custom host-to-IP mapping and the network mode")
            if config.get("Hostname"):
                raise InvalidParameter("conflicting options: hostname and the network mode")
            return warnings
        try:
            net: Network | None = self.get(mode)
        except NotFound:
            net = None
        if mode == "host" or (net is not None and net.driver == "host"):
            if host_config.get("Links"):
                raise InvalidParameter(
                    "conflicting options: host type networking can't be used with links. "
                    "This would result in undefined behavior"
                )
            if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
                warnings.append("Published ports are discarded when using host network mode")
        for key, cfg in endpoints.items():
            try:
                other = self.get(key)
            except NotFound:
                continue  # reported at start, as dockerd
            ipam = (cfg or {}).get("IPAMConfig") or {}
            if ipam.get("IPv4Address") or ipam.get("IPv6Address"):
                self._check_static_ip(other)
            if (cfg or {}).get("Aliases") and (other.predefined):
                raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        mac = config.get("MacAddress") or ""
        if mac and not re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", mac):
            raise InvalidParameter(f"invalid MAC address: {mac}")
        try:
            etcfiles.validate_extra_hosts(host_config.get("ExtraHosts") or [], self.host_gateway_ip() or "?")
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None
        return warnings

    def _check_static_ip(self, net: Network) -> None:
        if net.predefined or not self.driver(net.driver).uses_ipam:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        if not net.user_subnet:
            raise InvalidParameter(
                "user specified IP address is supported only when connecting to networks with user configured subnets"
            )

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

    # ---- containers: sandboxes ------------------------------------------------------------------

    def sandbox_of(self, container_id: str) -> Sandbox | None:
        """The running container's sandbox (for ``--network container:<id>``), or None."""
        sb = self.sandboxes.get(container_id)
        if sb is None:
            return None
        return self._public(sb)

    @off_event_loop
    def setup_sandbox(
        self,
        container_id: str,
        name: str,
        config: Mapping[str, Any],
        host_config: Mapping[str, Any],
        networking_config: Mapping[str, Any] | None = None,
    ) -> Sandbox:
        """Create the container's network namespace and join its networks (container start).

        Idempotent per container: a second call returns the existing sandbox. On any error,
        everything made so far is undone (the container does not start half-wired).
        """
        name = name.lstrip("/")
        with self._lock("c:" + container_id):
            if container_id in self.sandboxes:
                return self._public(self.sandboxes[container_id])
            mode = _mode(host_config)
            if mode == "default":
                mode = "none" if self.bridge_disabled() else "bridge"
            sb = SandboxRecord(
                container_id=container_id,
                id=new_id(),
                key=None,
                mode=mode,
                name=name,
                hostname=config.get("Hostname") or container_id[:12],
                domainname=config.get("Domainname") or "",
                extra_hosts=list(host_config.get("ExtraHosts") or []),
                dns_servers=list(host_config.get("Dns") or self.config.get("dns") or []),
                dns_search=list(host_config.get("DnsSearch") or self.config.get("dns-search") or []),
                dns_options=list(host_config.get("DnsOptions") or self.config.get("dns-opts") or []),
                port_bindings=dict(host_config.get("PortBindings") or {}),
                exposed_ports=list((config.get("ExposedPorts") or {}).keys()),
                publish_all=bool(host_config.get("PublishAllPorts")),
            )
            if mode.startswith("container:"):
                return self._join_other(sb, mode.split(":", 1)[1])
            primary = self.get(mode)
            endpoints_cfg = self._endpoint_configs(networking_config, primary)
            endpoints_cfg.update(self._pending_connections(container_id, exclude=primary))
            drv = self.driver(primary.driver)
            if primary.driver == "host":
                sb.hostname = config.get("Hostname") or socket.gethostname()
            try:
                if drv.needs_sandbox:
                    sb.key = str(self.netns_dir / sb.id[:12])
                    netns.create(Path(sb.key))
                self.sandboxes[container_id] = sb
                self._join(sb, primary, endpoints_cfg.pop(primary.id, {}), config)
                if not drv.exclusive:
                    for net_id, cfg in endpoints_cfg.items():
                        self._join(sb, self.networks[net_id], cfg, config)
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
            net = primary if key in (primary.name, primary.id) else self.get(key)
            out[net.id] = dict(cfg or {})
        return out

    def _join_other(self, sb: SandboxRecord, other_id: str) -> Sandbox:
        other = self.sandboxes.get(other_id)
        if other is None:
            matches = [c for c in self.sandboxes if c.startswith(other_id)]
            other = self.sandboxes.get(matches[0]) if len(matches) == 1 else None
        if other is None:
            raise Conflict(f"cannot join network of a non running container: {other_id}")
        sb.key = other.key
        sb.joined_to = other.container_id
        sb.hostname = other.hostname
        self.sandboxes[sb.container_id] = sb
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
        drv = self.driver(net.driver)
        with self._lock(net.id):
            if net.id not in self.networks:
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
                if drv.uses_ipam:
                    self._allocate_endpoint(net, ep, iface)
                ep.ifname = _next_ifname(self._sandbox_endpoints(sb)) if drv.needs_sandbox else ""
                opts = {
                    "mac_address": config.get("MacAddress") or "",
                    "container_name": sb.name,
                    "container_id": sb.container_id,
                }
                drv.create_endpoint(net.id, ep.id, iface, opts)
                ep.mac_address = iface.mac_address
                self.endpoints[ep.id] = ep
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
                        bound = drv.program_external_connectivity(net.id, ep.id, self._wanted_ports(sb))
                    except EngineError as exc:
                        raise SystemError(
                            f"driver failed programming external connectivity on endpoint {sb.name} "
                            f"({ep.id}): {exc.message}"
                        ) from None
                    ep.ports = [_binding_json(b) for b in bound]
            except BaseException:
                self._drop_endpoint(ep, sb)
                raise
        if not net.predefined and not sb.embedded_dns and sb.key:
            sb.embedded_dns = True
        self.daemon.events.publish(
            "network", "connect", net.id, {"container": sb.container_id, "name": net.name, "type": net.driver}
        )
        self.daemon.pm.hook.engine_network_endpoint_joined(
            network_id=net.id, container_id=sb.container_id, endpoint=self._settings(sb)["Networks"].get(net.name, {})
        )
        return ep

    def _allocate_endpoint(self, net: Network, ep: Endpoint, iface: EndpointInterface) -> None:
        requested = ep.ipam_config or {}
        want_v4 = requested.get("IPv4Address") or ""
        want_v6 = requested.get("IPv6Address") or ""
        if want_v4 or want_v6:
            self._check_static_ip(net)
        for index, cfg in enumerate(net.pools()):
            subnet = ipaddress.ip_network(cfg.subnet)
            pool_id = net.pool_id(index)
            if subnet.version == 4 and not ep.ipv4:
                if want_v4 and ipaddress.ip_address(want_v4) not in subnet:
                    continue
                ip = self.ipam.request_address(pool_id, want_v4, owner=ep.id, persist=False)
                ep.ipv4, ep.pool_id = f"{ip}/{subnet.prefixlen}", pool_id
                iface.address = ipaddress.IPv4Interface(ep.ipv4)
            elif subnet.version == 6 and net.enable_ipv6 and not ep.ipv6:
                if want_v6 and ipaddress.ip_address(want_v6) not in subnet:
                    continue
                ip = self.ipam.request_address(pool_id, want_v6, owner=ep.id, persist=False)
                ep.ipv6, ep.pool_id_v6 = f"{ip}/{subnet.prefixlen}", pool_id
                iface.address_v6 = ipaddress.IPv6Interface(ep.ipv6)
        if want_v4 and not ep.ipv4:
            raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {want_v4}")

    def _drop_endpoint(self, ep: Endpoint, sb: SandboxRecord | None = None) -> None:
        """Undo an endpoint completely; every step tolerates what was never done."""
        net = self.networks.get(ep.network_id)
        if net is not None:
            drv = self.driver(net.driver)
            for step in (drv.revoke_links, drv.revoke_external_connectivity, drv.leave, drv.delete_endpoint):
                try:
                    step(net.id, ep.id)
                except Exception:
                    log.exception("%s of endpoint %s failed", step.__name__, ep.id[:12])
        if ep.ipv4 and ep.pool_id:
            self.ipam.release_address(ep.pool_id, str(ipaddress.ip_interface(ep.ipv4).ip), persist=False)
        if ep.ipv6 and ep.pool_id_v6:
            self.ipam.release_address(ep.pool_id_v6, str(ipaddress.ip_interface(ep.ipv6).ip), persist=False)
        self.endpoints.pop(ep.id, None)
        if sb is not None and sb.endpoint_ids.get(ep.network_id) == ep.id:
            del sb.endpoint_ids[ep.network_id]
            if ep.network_id in sb.endpoints:
                sb.endpoints.remove(ep.network_id)

    def _sandbox_endpoints(self, sb: SandboxRecord) -> list[Endpoint]:
        return [self.endpoints[e] for n in sb.endpoints if (e := sb.endpoint_ids.get(n)) in self.endpoints]

    def _wanted_ports(self, sb: SandboxRecord) -> list[PortBinding]:
        out = []
        seen = set()
        for port, bindings in sb.port_bindings.items():
            cport, _, proto = port.partition("/")
            for b in bindings or [{}]:
                host_ip = (b or {}).get("HostIp") or ""
                start, end = _port_range((b or {}).get("HostPort") or "")
                out.append(PortBinding(proto or "tcp", int(cport), host_ip, start, end))
                seen.add(port if "/" in port else f"{port}/tcp")
        if sb.publish_all:
            for port in sb.exposed_ports:
                key = port if "/" in port else f"{port}/tcp"
                if key in seen:
                    continue
                cport, _, proto = key.partition("/")
                out.append(PortBinding(proto, int(cport)))
        return out

    def _links(self, sb: SandboxRecord, links: list[str]) -> None:
        """Legacy ``--link name:alias``: hosts records of the linked containers (default bridge)."""
        for link in links:
            target, _, alias = link.partition(":")
            target = target.lstrip("/")
            alias = alias.rsplit("/", 1)[-1] or target
            other = next((s for s in self.sandboxes.values() if s.name == target or s.container_id == target), None)
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
        net = self.networks.get(ep.network_id)
        if net is None:
            return
        ports = {normalize(p) for p in [*other.exposed_ports, *other.port_bindings]}
        rules = []
        for port in sorted(ports):
            number, _, proto = port.partition("/")
            rules.append(LinkRule(str(ipaddress.ip_interface(ep.ipv4).ip), child_ip, proto, int(number)))
        if rules:
            self.driver(net.driver).program_links(net.id, ep.id, rules)

    def _write_dns(self, sb: SandboxRecord) -> None:
        sb.upstream_dns = self._resolv_conf(sb)[1]
        if sb.embedded_dns and sb.key:
            self._dns_attach(sb)

    def _dns_attach(self, sb: SandboxRecord) -> None:
        """Serve the embedded DNS (127.0.0.11) in the sandbox; engine.networks.dns does the work."""
        try:
            if self.dns is None:
                from engine.networks.dns import EmbeddedDNS

                self.dns = EmbeddedDNS(self)
            self.dns.attach(sb)
        except ImportError:
            log.warning("embedded DNS not available")

    @off_event_loop
    def teardown_sandbox(self, container_id: str) -> None:
        """Leave every network and delete the namespace (container stop). Idempotent."""
        with self._lock("c:" + container_id):
            sb = self.sandboxes.get(container_id)
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
            ep = self.endpoints.get(sb.endpoint_ids.get(net_id, ""))
            if ep is None:
                continue
            net = self.networks.get(net_id)
            with self._lock(net_id):
                self._drop_endpoint(ep, sb)
            if net is not None:
                self.daemon.events.publish(
                    "network",
                    "disconnect",
                    net.id,
                    {"container": sb.container_id, "name": net.name, "type": net.driver},
                )
                self.daemon.pm.hook.engine_network_endpoint_left(network_id=net.id, container_id=sb.container_id)
        if sb.key and not sb.joined_to:
            netns.delete(Path(sb.key))
        self.sandboxes.pop(sb.container_id, None)
        self._sandboxes_dir.delete(sb.container_id)

    @off_event_loop
    def container_renamed(self, container_id: str, new_name: str) -> None:
        """``docker rename``: endpoints (and so the embedded DNS) answer to the new name."""
        new_name = new_name.lstrip("/")
        with self._lock("c:" + container_id):
            sb = self.sandboxes.get(container_id)
            if sb is None:
                return
            sb.name = new_name
            for ep in self._sandbox_endpoints(sb):
                ep.name = new_name
            self._save_sandbox(sb)

    @off_event_loop
    def release_container(self, container_id: str) -> None:
        """Forget a removed container (its pending connections); tears down a leftover sandbox."""
        self.teardown_sandbox(container_id)
        self._containers_dir.delete(container_id)

    def _save_sandbox(self, sb: SandboxRecord) -> None:
        """The sandbox and its endpoints, in one atomic write."""
        sb.endpoint_records = {
            net_id: self.endpoints[ep_id].to_json()
            for net_id, ep_id in sb.endpoint_ids.items()
            if ep_id in self.endpoints
        }
        self._sandboxes_dir.save(sb.container_id, sb.to_json())

    # ---- connect / disconnect ---------------------------------------------------------------------

    def _pending_connections(self, container_id: str, exclude: Network) -> dict[str, dict[str, Any]]:
        path = self._containers_dir.path / f"{container_id}.json"
        if not path.exists():
            return {}
        from engine.drivers.records import read_json

        out = {}
        for net_id, cfg in (read_json(path).get("networks") or {}).items():
            if net_id in self.networks and net_id != exclude.id:
                out[net_id] = cfg
        return out

    def _set_pending(self, container_id: str, net: Network, cfg: Mapping[str, Any] | None) -> None:
        path = self._containers_dir.path / f"{container_id}.json"
        from engine.drivers.records import read_json

        data = read_json(path) if path.exists() else {"networks": {}}
        if cfg is None:
            data["networks"].pop(net.id, None)
        else:
            data["networks"][net.id] = dict(cfg)
        self._containers_dir.save(container_id, data)

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
        """``docker network connect``: join a running container now; for a stopped one, remember the
        connection for its next start. Returns the new ``NetworkSettings`` when the container runs."""
        net = self.get(ref)
        cfg = dict(endpoint_config or {})
        if net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        if net.driver == "null":
            raise Forbidden(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode"
            )
        ipam = cfg.get("IPAMConfig") or {}
        if ipam.get("IPv4Address") or ipam.get("IPv6Address"):
            self._check_static_ip(net)
        with self._lock("c:" + container_id):
            sb = self.sandboxes.get(container_id)
            if sb is None:
                self._set_pending(container_id, net, cfg)
                return None
            if sb.joined_to:
                raise Forbidden(
                    "container sharing network namespace with another container or host cannot be "
                    "connected to any other network"
                )
            primary = self.networks.get(sb.endpoints[0]) if sb.endpoints else None
            if sb.key is None or (primary is not None and self.driver(primary.driver).exclusive) or sb.mode == "none":
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

    @off_event_loop
    def disconnect(self, ref: str, container_id: str, force: bool = False) -> dict[str, Any] | None:
        """``docker network disconnect``; returns the new ``NetworkSettings`` when the container runs."""
        try:
            net = self.get(ref)
        except NotFound:
            if not force:
                raise
            return None
        if net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        with self._lock("c:" + container_id):
            self._set_pending(container_id, net, None)
            sb = self.sandboxes.get(container_id)
            if sb is None:
                return None
            ep = self.endpoints.get(sb.endpoint_ids.get(net.id, ""))
            if ep is None:
                raise InvalidParameter(f"container {container_id} is not connected to network {net.name}")
            with self._lock(net.id):
                self._drop_endpoint(ep, sb)
            self.daemon.events.publish(
                "network", "disconnect", net.id, {"container": container_id, "name": net.name, "type": net.driver}
            )
            self.daemon.pm.hook.engine_network_endpoint_left(network_id=net.id, container_id=container_id)
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
        hosts_path = self.daemon.data_root / "containers" / sb.container_id / "hosts"
        if not hosts_path.exists():
            return
        content = self._hosts(sb)
        try:
            with open(hosts_path, "r+") as f:
                f.write(content)
                f.truncate()
        except OSError as exc:
            log.warning("updating %s failed: %s", hosts_path, exc)

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
            net = self.networks.get(net_id)
            ep = self.endpoints.get(sb.endpoint_ids.get(net_id, ""))
            if net is None:
                continue
            nets.append((net.name, net, ep, None))
            if ep is not None:
                bindings.extend(ep.ports)
        key = sb.key or str(self.netns_dir / "default")
        ports = ports_map(sb.exposed_ports, bindings, sb.port_bindings) if sb.key else {}
        return network_settings(sandbox_id=sb.id, sandbox_key=key, networks=nets, ports=ports)

    def _hosts(self, sb: SandboxRecord) -> str:
        extra = etcfiles.parse_extra_hosts(sb.extra_hosts, self.host_gateway_ip())
        extra += [(ip, names) for ip, names in sb.links]
        if sb.key is None:  # host network: the host's file plus --add-host
            try:
                base = HOST_HOSTS.read_text()
            except OSError:
                base = etcfiles.build_hosts()
            if base and not base.endswith("\n"):
                base += "\n"
            return base + "".join(f"{ip}\t{names}\n" for ip, names in extra)
        own = []
        for ep in self._sandbox_endpoints(sb):
            if ep.ipv4:
                own.append((str(ipaddress.ip_interface(ep.ipv4).ip), etcfiles.own_names(sb.hostname, sb.domainname)))
            if ep.ipv6:
                own.append((str(ipaddress.ip_interface(ep.ipv6).ip), etcfiles.own_names(sb.hostname, sb.domainname)))
        return etcfiles.build_hosts(own, extra)

    def _resolv_conf(self, sb: SandboxRecord) -> tuple[str, list[str]]:
        host = etcfiles.ResolvConf.read(host_resolv_conf_path())
        if sb.key is None and not (sb.dns_servers or sb.dns_search or sb.dns_options):
            return host.text, []
        dns = etcfiles.DNSSettings(sb.dns_servers, sb.dns_search, sb.dns_options)
        ipv6 = any(self.networks[n].enable_ipv6 for n in sb.endpoints if n in self.networks)
        return etcfiles.container_resolv_conf(host, dns, embedded=sb.embedded_dns, ipv6=ipv6)


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


def _mode(host_config: Mapping[str, Any]) -> str:
    return str(host_config.get("NetworkMode") or "default")


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


def _ports(ep: Endpoint) -> list[PortBinding]:
    return [PortBinding(p["proto"], p["container_port"], p["host_ip"], p["host_port"]) for p in ep.ports]


def _binding_json(b: PortBinding) -> dict[str, Any]:
    return {"proto": b.proto, "container_port": b.container_port, "host_ip": b.host_ip, "host_port": b.host_port}


def _port_range(raw: str) -> tuple[int, int]:
    if not raw:
        return 0, 0
    start, _, end = raw.partition("-")
    try:
        s = int(start)
        e = int(end) if end else 0
    except ValueError:
        raise InvalidParameter(f"invalid port specification: {raw!r}") from None
    if not (0 <= s <= 65535) or (e and not (s <= e <= 65535)):
        raise InvalidParameter(f"invalid port specification: {raw!r}")
    return s, (e if e != s else 0)


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
