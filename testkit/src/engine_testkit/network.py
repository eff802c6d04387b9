"""The network driver conformance suite (libnetwork's driverapi contract, run for real).

A driver's conformance file is a one-line subclass::

    from engine_testkit.network import NetworkDriverSuite

    class TestBridge(NetworkDriverSuite):
        driver_name = "bridge"

The driver is loaded by its entry-point name through engine's real NetworkController (own
temp data-root and exec-root, so its default bridge and nftables table names are unique to
the test), and every test ends with a leak check: no namespace files, links, firewall table
or proxy processes left. Traffic only flows between namespaces the test made and the host.
Hosts that cannot run it (not root, no network namespaces) skip with the reason.

Below the suite's own helpers are those the networking tests share (driver, daemon and end-to-end):
``dismantle`` a test's controller, ``host_links``, ``host_address``, ``free_port``, ``http_get`` and
``TinyDNS``, an upstream DNS server of the test's own.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

BUSYBOX = "/bin/busybox"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "network driver tests need root"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespaces"
    if not Path(BUSYBOX).exists():
        return "busybox-static is not installed"
    return None


def make_controller(root: Path, config: dict[str, Any] | None = None) -> Any:
    """A NetworkController over a real (unstarted) Daemon object with its own data-root/exec-root."""
    from engine.config import core_schema, merge
    from engine.daemon import Daemon
    from engine.networks import NetworkController
    from engine.plugins import make_plugin_manager

    pm = make_plugin_manager()
    schema = core_schema()
    pm.hook.engine_add_config.call_historic(kwargs={"schema": schema})
    values = {"data-root": str(root / "data"), "exec-root": str(root / "exec"), **(config or {})}
    daemon = Daemon(merge(schema, values, {}), pm, schema)
    daemon.data_root.mkdir(parents=True, exist_ok=True)
    daemon.exec_root.mkdir(parents=True, exist_ok=True)
    return NetworkController(daemon)


_HANDED_OUT: set[ipaddress.IPv4Network] = set()


def free_subnet(prefix: int = 24) -> str:
    """A random IPv4 /24 in 10.214.0.0/16 that nothing on the host routes (parallel runs don't collide)."""
    from engine.networks.ipam import host_routes_v4

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


# ---- helpers of the networking tests (driver, daemon and end-to-end) -------------------------------


def dismantle(ctl: Any) -> None:
    """Tear down every sandbox and user-defined network of a test's controller, then stop it (the
    test's leak check follows)."""
    for cid in list(ctl.sandboxes):
        ctl.teardown_sandbox(cid)
    for net in list(ctl.networks.values()):
        if not net.predefined:
            ctl.remove(net.id)
    ctl.stop()


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


class TinyDNS:
    """A DNS server of the test's own on a loopback address: answers every A query with one address
    and records the names asked (``queries``), so no test query leaves the host."""

    def __init__(self, address: str, answer: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.2)
        self.answer = answer
        self.queries: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from engine.networks import dnsmsg

        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            q = dnsmsg.parse_query(data)
            self.queries.append(q.name)
            self.sock.sendto(dnsmsg.response(q, 0, [dnsmsg.a_record(self.answer)]), peer)

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


class NetworkDriverSuite:
    """Conformance tests for one network driver; subclasses set ``driver_name``."""

    driver_name: ClassVar[str] = ""
    #: daemon.json keys for the controller under test
    daemon_config: ClassVar[dict[str, Any]] = {}

    # ---- fixtures ------------------------------------------------------------------------------

    @pytest.fixture
    def ctl(self, tmp_path: Path) -> Iterator[Any]:
        reason = skip_reason()
        if reason:
            pytest.skip(reason)
        config = dict(self.daemon_config)
        if self.driver_name != "bridge":
            config.setdefault("bridge", "none")  # no default bridge: test only this driver
        self._config = config
        self._ctl = make_controller(tmp_path, config)
        if not self._ctl.daemon.network_drivers.is_installed(self.driver_name):
            pytest.skip(f"network driver {self.driver_name!r} is not installed")
        self._ctl.start()
        try:
            yield self._ctl
        finally:
            controller = self._ctl  # a test may have replaced it (restart)
            dismantle(controller)
        assert controller.leftovers() == [], "the driver left things behind"
        assert not list((tmp_path / "exec" / "netns").glob("*")), "namespace files left behind"

    @property
    def driver_cls(self) -> Any:
        from engine import registry

        return registry.DriverRegistry(registry.NETWORK).load(self.driver_name)

    def network(self, ctl: Any, **kwargs: Any) -> Any:
        """A network of this driver: a new one when users may create them, else the predefined one."""
        if self.driver_cls.user_creatable:
            name = kwargs.pop("name", f"conf-{secrets.token_hex(4)}")
            ipam = kwargs.pop("ipam", {"Config": [{"Subnet": free_subnet()}]})
            return ctl.create_network(name, self.driver_name, ipam=ipam, **kwargs)
        return next(n for n in ctl.networks.values() if n.driver == self.driver_name)

    def start(self, ctl: Any, net: Any, name: str, **host_config: Any) -> Any:
        cid = secrets.token_hex(32)
        return ctl.setup_sandbox(cid, name, {"Hostname": name}, {"NetworkMode": net.name, **host_config}, None)

    # ---- the contract --------------------------------------------------------------------------

    def test_entry_point_loads(self) -> None:
        cls = self.driver_cls
        from engine.drivers import DRIVER_API_VERSION

        assert cls.API_VERSION == DRIVER_API_VERSION
        assert cls.capability.data_scope in ("local", "global")

    def test_create_and_delete_network(self, ctl: Any) -> None:
        if not self.driver_cls.user_creatable:
            from engine.errors import Forbidden

            with pytest.raises(Forbidden):
                ctl.create_network(f"conf-{secrets.token_hex(4)}", self.driver_name)
            return
        net = self.network(ctl)
        shown = ctl.inspect(net)
        assert shown["Driver"] == self.driver_name and shown["Id"] == net.id
        if self.driver_cls.uses_ipam:
            assert shown["IPAM"]["Config"][0]["Gateway"]
        ctl.remove(net.id)
        assert net.id not in ctl.networks

    def test_join_and_leave_sandbox(self, ctl: Any) -> None:
        net = self.network(ctl)
        sb = self.start(ctl, net, "conf-a")
        settings = sb.network_settings["Networks"][net.name]
        assert settings["NetworkID"] == net.id and settings["EndpointID"]
        if not self.driver_cls.needs_sandbox:
            assert sb.netns_path is None
        else:
            assert sb.netns_path and Path(sb.netns_path).exists()
            inside = links_in(sb.netns_path)
            assert "lo" in inside
            if self.driver_cls.uses_ipam:
                assert "eth0" in inside and settings["IPAddress"]
                addr = in_sandbox(sb.netns_path, "ip", "-o", "-4", "addr", "show", "eth0").stdout
                assert f"{settings['IPAddress']}/{settings['IPPrefixLen']}" in addr
            else:
                assert inside == ["lo"]
        ctl.teardown_sandbox(sb.container_id)
        if sb.netns_path:
            assert not Path(sb.netns_path).exists()
        assert ctl.inspect(net)["Containers"] == {}

    def test_traffic_between_sandboxes(self, ctl: Any) -> None:
        if not (self.driver_cls.uses_ipam and self.driver_cls.needs_sandbox):
            pytest.skip(f"{self.driver_name} gives containers no addresses of their own")
        net = self.network(ctl)
        a = self.start(ctl, net, "conf-a")
        b = self.start(ctl, net, "conf-b")
        ip_b = b.network_settings["Networks"][net.name]["IPAddress"]
        ping = in_sandbox(a.netns_path, BUSYBOX, "ping", "-c", "1", "-W", "2", ip_b)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        server = TCPEcho(b.netns_path, 7000, "conformance")
        try:
            assert tcp_get(a.netns_path, ip_b, 7000) == "conformance\n"
        finally:
            server.stop()
        # the host reaches the container through the network's gateway route
        assert in_sandbox(None, BUSYBOX, "ping", "-c", "1", "-W", "2", ip_b).returncode == 0

    def test_addresses_are_released(self, ctl: Any) -> None:
        if not self.driver_cls.uses_ipam:
            pytest.skip(f"{self.driver_name} uses no IPAM")
        net = self.network(ctl)
        first = self.start(ctl, net, "conf-a")
        ip = first.network_settings["Networks"][net.name]["IPAddress"]
        ctl.teardown_sandbox(first.container_id)
        pool = ctl.ipam.get_pool(net.pool_id(0))
        assert ip not in pool.allocated

    def test_live_sandbox_survives_restart(self, ctl: Any, tmp_path: Path) -> None:
        """A daemon restart (live-restore) re-adopts a sandbox a process still lives in."""
        net = self.network(ctl)
        sb = self.start(ctl, net, "conf-a")
        endpoint = sb.network_settings["Networks"][net.name]["EndpointID"]
        holder = None
        if sb.netns_path:
            holder = subprocess.Popen(["nsenter", f"--net={sb.netns_path}", BUSYBOX, "sleep", "60"])
        try:
            ctl.stop()
            self._ctl = again = make_controller(tmp_path, self._config)
            again.start()
            assert again.get(net.name).id == net.id
            kept = again.sandbox_of(sb.container_id)
            assert kept is not None, "the live sandbox was dropped"
            assert kept.netns_path == sb.netns_path
            assert kept.network_settings["Networks"][net.name]["EndpointID"] == endpoint
            if self.driver_cls.uses_ipam and sb.netns_path:
                ip = kept.network_settings["Networks"][net.name]["IPAddress"]
                assert in_sandbox(None, BUSYBOX, "ping", "-c", "1", "-W", "2", ip).returncode == 0
            again.teardown_sandbox(sb.container_id)
        finally:
            if holder is not None:
                holder.kill()
                holder.wait()

    def test_stale_sandbox_cleaned_after_crash(self, ctl: Any, tmp_path: Path) -> None:
        """kill -9 of the daemon with a sandbox nobody lives in: the next start removes it."""
        net = self.network(ctl)
        sb = self.start(ctl, net, "conf-a")
        # no stop(): as after kill -9
        self._ctl = again = make_controller(tmp_path, self._config)
        again.start()
        if sb.netns_path:
            assert again.sandbox_of(sb.container_id) is None
            assert not Path(sb.netns_path).exists()
            assert again.inspect(again.get(net.id))["Containers"] == {}
