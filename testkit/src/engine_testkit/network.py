"""The network driver conformance suite (libnetwork's driverapi contract, run for real).

A driver's conformance file is a one-line subclass::

    from engine_testkit.network import NetworkDriverSuite

    class TestBridge(NetworkDriverSuite):
        driver_name = "bridge"

Optional class attributes: ``driver_options`` (the ``docker network create -o`` options of the
networks the suite creates) and ``daemon_config`` (the daemon.json keys the driver reads from its
context).

The suite needs nothing of engine but the public driver SDK: it loads the driver by its
entry-point name (which proves the packaging), constructs it with a :class:`NetworkDriverContext`
of its own (temp state dir and exec-root, a unique ``instance`` so host-global names cannot clash)
and plays core's part itself: it makes the network namespaces, hands out addresses from a subnet
nothing on the host routes, and calls the driver in core's order (``create_endpoint -> join``,
``leave -> delete_endpoint``, restore after a restart, cleanup after a crash). Every test ends
with a leak check: after every network was deleted and ``stop`` ran, ``leftovers()`` is empty and
no namespace file is left. Traffic flows only between namespaces the test made and the host.
Hosts that cannot run it (not root, no network namespaces, no busybox) skip with the reason.

The other helpers here (``free_subnet``, ``in_sandbox``, ``links_in``, ``TCPEcho``, ``tcp_get``,
``host_links``, ``host_address``, ``free_port``, ``http_get``) use only the standard library and
the same SDK; helpers that drive engine's own NetworkController live in
:mod:`engine_testkit.network_core`.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

# The public driver SDK: the only part of engine this suite imports (the registry is engine-core's
# public loader of entry points).
from engine.drivers import DRIVER_API_VERSION, netns
from engine.drivers.network import (
    EndpointInterface,
    IPAMData,
    JoinInfo,
    NetworkDriver,
    NetworkDriverContext,
    NetworkSpec,
    SandboxInfo,
)
from engine.registry import NETWORK, DriverRegistry

BUSYBOX = "/bin/busybox"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "network driver tests need root"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespaces"
    if not Path(BUSYBOX).exists():
        return "busybox-static is not installed"
    return None


def host_routes_v4() -> list[ipaddress.IPv4Network]:
    """The IPv4 destinations routed in this network namespace (from /proc/net/route), default aside."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == "00000000" and parts[7] == "00000000":
                    continue  # the default route overlaps everything
                dest = ipaddress.IPv4Address(int(parts[1], 16).to_bytes(4, "little"))
                mask = ipaddress.IPv4Address(int(parts[7], 16).to_bytes(4, "little"))
                out.append(ipaddress.IPv4Network((dest, str(mask)), strict=False))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return out


_HANDED_OUT: set[ipaddress.IPv4Network] = set()


def free_subnet(prefix: int = 24) -> str:
    """A random IPv4 /24 in 10.214.0.0/16 that nothing on the host routes (parallel runs don't collide)."""
    routed = host_routes_v4()
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.214.{secrets.randbelow(256)}.0/{prefix}")
        if candidate in _HANDED_OUT or any(candidate.overlaps(r) for r in routed):
            continue
        _HANDED_OUT.add(candidate)  # never twice in one test run, even before its bridge exists
        return str(candidate)
    raise RuntimeError("no free test subnet in 10.214.0.0/16")


def in_sandbox(path: str | None, *argv: str, timeout: float = 10, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command in a sandbox's network namespace (``None``: the host's)."""
    prefix = ["nsenter", f"--net={path}"] if path else []
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout, **kwargs)


def links_in(path: str | None) -> list[str]:
    out = in_sandbox(path, "ip", "-o", "link", "show").stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip())


class TCPEcho:
    """A one-shot TCP server in a sandbox (busybox nc) answering ``reply``; stopped by PID."""

    def __init__(self, path: str | None, port: int, reply: str) -> None:
        prefix = ["nsenter", f"--net={path}"] if path else []
        self.proc = subprocess.Popen(
            [*prefix, BUSYBOX, "nc", "-l", "-p", str(port), "-e", BUSYBOX, "echo", reply],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.path, self.port = path, port
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.listening():
            time.sleep(0.02)

    def listening(self) -> bool:
        out = in_sandbox(self.path, "ss", "-ltnH", f"sport = :{self.port}").stdout
        return bool(out.strip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def tcp_get(path: str | None, host: str, port: int, timeout: int = 3) -> str:
    return in_sandbox(path, BUSYBOX, "nc", "-w", str(timeout), host, str(port), input="", timeout=timeout + 5).stdout


def ping(path: str | None, address: str) -> subprocess.CompletedProcess[str]:
    return in_sandbox(path, BUSYBOX, "ping", "-c", "1", "-W", "2", address)


def host_links(prefixes: tuple[str, ...]) -> list[str]:
    """The host's network interfaces whose names start with one of ``prefixes``."""
    return [name for name in links_in(None) if name.startswith(prefixes)]


def host_address() -> str:
    """The host's own primary IPv4 address (this only asks the routing table: nothing is sent to 1.1.1.1)."""
    out = subprocess.run(["ip", "-o", "-4", "route", "get", "1.1.1.1"], capture_output=True, text=True).stdout.split()
    return out[out.index("src") + 1]


def free_port() -> int:
    """A TCP port free on every host address right now (to publish a container port on)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def http_get(address: str, port: int, path: str = "/index.html", deadline_s: float = 10) -> str:
    """The body of an HTTP GET, retried for ``deadline_s`` while the server starts; "" if it never answered."""
    import urllib.request

    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}:{port}{path}", timeout=3) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.2)


_MOVED_TO_NETWORK_CORE = ("make_controller", "dismantle", "TinyDNS")


def __getattr__(name: str) -> Any:
    """The helpers that drive engine's own NetworkController live in :mod:`engine_testkit.network_core`;
    imports of them from here still resolve (loaded only then, so the suite stays on the SDK)."""
    if name in _MOVED_TO_NETWORK_CORE:
        from engine_testkit import network_core

        return getattr(network_core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- core's part, played by the suite ----------------------------------------------------------------


@dataclass
class Endpoint:
    """One container's endpoint on one network, as core would track it."""

    network: NetworkSpec
    endpoint_id: str
    container_id: str
    key: str  # the sandbox's netns path ("" for drivers whose containers share the host's namespace)
    iface: EndpointInterface
    ifname: str
    joined: JoinInfo | None = None

    @property
    def ip(self) -> str:
        return str(self.iface.address.ip) if self.iface.address is not None else ""


@dataclass
class DriverHarness:
    """One driver under test and the state core keeps around it: its networks, endpoints, sandboxes
    and addresses. ``restart()`` constructs a new driver instance over the same state dir, as a
    restarted daemon does."""

    cls: type[NetworkDriver]
    root: Path
    config: dict[str, Any]
    instance: str = field(default_factory=lambda: f"engine-{secrets.token_hex(4)}")
    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    _next_host: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = self.root / "data" / "network" / "drivers" / self.cls.name
        self.exec_root = self.root / "exec"
        self.netns_dir = self.exec_root / "netns"
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.netns_dir.mkdir(parents=True, exist_ok=True)
        self.driver = self._construct()

    def _construct(self) -> NetworkDriver:
        context = NetworkDriverContext(
            state_dir=self.state_dir, exec_root=self.exec_root, config=dict(self.config), instance=self.instance
        )
        driver = self.cls(context)
        driver.start()
        return driver

    # -- networks ----------------------------------------------------------------------------------

    def create_network(self, options: dict[str, str] | None = None) -> NetworkSpec:
        network_id = secrets.token_hex(32)
        ipv4: list[IPAMData] = []
        if self.cls.uses_ipam:
            pool = ipaddress.IPv4Network(free_subnet())
            ipv4.append(IPAMData(pool=pool, gateway=ipaddress.IPv4Interface(f"{pool[1]}/{pool.prefixlen}")))
            self._next_host[network_id] = 2
        name = f"conf-{network_id[:8]}" if self.cls.user_creatable else self.cls.name
        spec = NetworkSpec(network_id=network_id, name=name, options=dict(options or {}), ipv4=ipv4)
        self.driver.validate_options(spec.options)
        self.driver.create_network(spec)
        self.networks[network_id] = spec
        return spec

    def delete_network(self, spec: NetworkSpec) -> None:
        self.driver.delete_network(spec.network_id)
        self.networks.pop(spec.network_id, None)

    # -- containers --------------------------------------------------------------------------------

    def attach(self, spec: NetworkSpec) -> Endpoint:
        """A new container on ``spec``: its namespace, an address, ``create_endpoint`` and ``join``."""
        container_id = secrets.token_hex(32)
        key = ""
        if self.cls.needs_sandbox:
            key = str(self.netns_dir / container_id[:12])
            netns.create(Path(key))
        iface = EndpointInterface()
        if spec.ipv4:
            pool = spec.ipv4[0].pool
            host = self._next_host[spec.network_id]
            self._next_host[spec.network_id] = host + 1
            iface.address = ipaddress.IPv4Interface(f"{pool[host]}/{pool.prefixlen}")
        ep = Endpoint(spec, secrets.token_hex(32), container_id, key, iface, "eth0" if key else "")
        options = {"mac_address": "", "container_name": f"/{container_id[:8]}", "container_id": container_id}
        try:
            self.driver.create_endpoint(spec.network_id, ep.endpoint_id, iface, options)
            self.endpoints[ep.endpoint_id] = ep
            if key:
                ep.joined = self.driver.join(
                    spec.network_id, ep.endpoint_id, SandboxInfo(key, container_id, ep.ifname, True)
                )
        except BaseException:
            self.detach(ep)
            raise
        return ep

    def detach(self, ep: Endpoint) -> None:
        """Core's teardown of an endpoint: every step, each tolerating what was never done."""
        net, eid = ep.network.network_id, ep.endpoint_id
        for step in (self.driver.revoke_links, self.driver.revoke_external_connectivity):
            step(net, eid)
        if ep.key:
            self.driver.leave(net, eid)
        self.driver.delete_endpoint(net, eid)
        self.endpoints.pop(eid, None)
        if ep.key:
            netns.delete(Path(ep.key))

    # -- daemon restarts ---------------------------------------------------------------------------

    def stop(self) -> None:
        """A daemon shutdown: networks without live endpoints are released, then the driver stops."""
        live = {ep.network.network_id for ep in self.endpoints.values()}
        for spec in self.networks.values():
            if spec.network_id not in live:
                self.driver.delete_network(spec.network_id)
        self.driver.stop()

    def restart(self, crashed: bool = False) -> None:
        """A new driver instance over the same state, as at daemon start. After a clean stop the live
        endpoints are restored; after a crash (``crashed``: the old instance never stopped) nobody
        lives in the sandboxes, so they are torn down as stale, as core does."""
        if not crashed:
            self.stop()
        self.driver = self._construct()
        for spec in self.networks.values():
            self.driver.create_network(spec)
        for ep in list(self.endpoints.values()):
            if crashed:
                self.detach(ep)
            else:
                sandbox = SandboxInfo(ep.key, ep.container_id, ep.ifname)
                self.driver.restore_endpoint(ep.network.network_id, ep.endpoint_id, ep.iface, sandbox, [])
        self.driver.reconcile(set(self.endpoints))

    def dismantle(self) -> list[str]:
        """Remove every endpoint and network, stop the driver; returns what it still left behind."""
        for ep in list(self.endpoints.values()):
            self.detach(ep)
        for spec in list(self.networks.values()):
            self.delete_network(spec)
        self.driver.stop()
        left = list(self.driver.leftovers())
        left += [f"namespace file {p}" for p in self.netns_dir.glob("*")]
        return left


# ---- the suite ---------------------------------------------------------------------------------------


class NetworkDriverSuite:
    """Conformance tests for one network driver; subclasses set ``driver_name``."""

    driver_name: ClassVar[str] = ""
    #: ``docker network create -o`` options of the networks the suite creates
    driver_options: ClassVar[dict[str, str]] = {}
    #: daemon.json keys the driver finds in ``context.config``
    daemon_config: ClassVar[dict[str, Any]] = {}

    @property
    def driver_cls(self) -> type[NetworkDriver]:
        if not self.driver_name:
            pytest.skip("NetworkDriverSuite: set driver_name in the subclass")
        return DriverRegistry[NetworkDriver](NETWORK).load(self.driver_name)

    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[DriverHarness]:
        reason = skip_reason()
        if reason:
            pytest.skip(reason)
        made = DriverHarness(self.driver_cls, tmp_path, dict(self.daemon_config))
        try:
            yield made
        finally:
            left = made.dismantle()
        assert left == [], "the driver left things behind"

    def network(self, harness: DriverHarness) -> NetworkSpec:
        """A network of this driver (for drivers users cannot create networks of: their one network)."""
        return harness.create_network(self.driver_options if self.driver_cls.user_creatable else {})

    def assert_attached(self, ep: Endpoint) -> None:
        """The endpoint's interface is up in its sandbox with its address, routed through its gateway."""
        if not ep.key:
            return
        inside = links_in(ep.key)
        assert "lo" in inside
        if not self.driver_cls.uses_ipam:
            assert inside == ["lo"], f"{self.driver_name} put interfaces in a sandbox without addresses"
            return
        assert ep.joined is not None and ep.joined.interface_name in ("", ep.ifname)
        assert ep.ifname in inside, f"{ep.ifname} is not in the sandbox: {inside}"
        addr = in_sandbox(ep.key, "ip", "-o", "-4", "addr", "show", ep.ifname).stdout
        assert str(ep.iface.address) in addr, addr
        link = in_sandbox(ep.key, "ip", "-o", "link", "show", ep.ifname).stdout
        assert "UP" in link.partition("<")[2].partition(">")[0].split(","), f"{ep.ifname} is not up: {link}"
        if ep.joined.gateway:
            route = in_sandbox(ep.key, "ip", "-4", "route", "show", "default").stdout
            assert f"via {ep.joined.gateway} " in route, route

    # ---- the contract --------------------------------------------------------------------------

    def test_entry_point_loads(self) -> None:
        cls = self.driver_cls
        assert cls.name == self.driver_name, "the class's name must be its entry-point name"
        assert issubclass(cls, NetworkDriver)
        assert cls.API_VERSION == DRIVER_API_VERSION
        assert cls.capability.data_scope in ("local", "global")
        assert cls.capability.connectivity_scope in ("local", "global")

    def test_create_and_delete_network(self, harness: DriverHarness) -> None:
        net = self.network(harness)
        harness.driver.create_network(net)  # "create or restore": a second call is a no-op
        info = harness.driver.network_info(net.network_id)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in info.items()), info
        harness.delete_network(net)
        harness.driver.delete_network(net.network_id)  # tolerates what is already gone
        assert harness.driver.leftovers() == []

    def test_join_and_leave_sandbox(self, harness: DriverHarness) -> None:
        net = self.network(harness)
        ep = harness.attach(net)
        self.assert_attached(ep)
        key = ep.key
        harness.detach(ep)
        if key:
            assert not Path(key).exists()

    def test_leave_keeps_the_sandbox(self, harness: DriverHarness) -> None:
        """``leave`` takes the driver's interface out of a sandbox that lives on (``docker network
        disconnect``)."""
        if not (self.driver_cls.uses_ipam and self.driver_cls.needs_sandbox):
            pytest.skip(f"{self.driver_name} puts no interface in a sandbox")
        net = self.network(harness)
        ep = harness.attach(net)
        harness.driver.leave(net.network_id, ep.endpoint_id)
        assert links_in(ep.key) == ["lo"]
        harness.driver.delete_endpoint(net.network_id, ep.endpoint_id)
        del harness.endpoints[ep.endpoint_id]
        netns.delete(Path(ep.key))

    def test_traffic_between_sandboxes(self, harness: DriverHarness) -> None:
        if not (self.driver_cls.uses_ipam and self.driver_cls.needs_sandbox):
            pytest.skip(f"{self.driver_name} gives containers no addresses of their own")
        net = self.network(harness)
        a = harness.attach(net)
        b = harness.attach(net)
        result = ping(a.key, b.ip)
        assert result.returncode == 0, result.stdout + result.stderr
        server = TCPEcho(b.key, 7000, "conformance")
        try:
            assert tcp_get(a.key, b.ip, 7000) == "conformance\n"
        finally:
            server.stop()
        if b.joined is not None and b.joined.gateway:
            # the host reaches a container of a network with a gateway
            assert ping(None, b.ip).returncode == 0

    def test_live_endpoint_survives_restart(self, harness: DriverHarness) -> None:
        """A daemon restart (live-restore): the network is restored, the endpoint re-adopted, and the
        container keeps its interface and connectivity."""
        net = self.network(harness)
        ep = harness.attach(net)
        holder = None
        if ep.key:
            holder = subprocess.Popen(["nsenter", f"--net={ep.key}", BUSYBOX, "sleep", "60"])
        try:
            harness.restart()
            self.assert_attached(ep)
            if ep.joined is not None and ep.joined.gateway:
                assert ping(None, ep.ip).returncode == 0
        finally:
            if holder is not None:
                holder.kill()
                holder.wait()

    def test_stale_endpoint_cleaned_after_crash(self, harness: DriverHarness) -> None:
        """kill -9 of the daemon with a container nobody lives in any more: the next start tears its
        endpoint down through a new driver instance (which never saw it), and nothing is left."""
        net = self.network(harness)
        harness.attach(net)
        harness.restart(crashed=True)
        assert harness.endpoints == {}
        assert not list(harness.netns_dir.glob("*"))
