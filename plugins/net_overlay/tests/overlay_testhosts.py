"""Test hosts made of network namespaces, an etcd, and engines running inside those hosts (helpers of
engine-plugin-overlay's tests; the ``cluster`` fixture is in conftest.py).

Layout (names prefixed per test run so that nothing collides): a switch namespace ``<p>sw`` with a
bridge, and hosts ``<p>h1``.. each joined to it by a veth pair, with underlay addresses from the
benchmark range 198.18.0.0/24, which exists only inside these namespaces. etcd runs in the switch
namespace on 198.18.0.100; engines run in the hosts (``ip netns exec``), each with its own
data-root, exec-root and socket (the socket is a path, so the docker CLI reaches it from here).
Everything is stopped by PID and deleted at the end, and the fixture checks that it is gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon
from engine_testkit.network import free_port

ETCD = shutil.which("etcd")
UNDERLAY = "198.18.0"
STORE_IP = f"{UNDERLAY}.100"
PREFIX = f"ov{os.getpid() % 10000}"


def ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    subprocess.run(cmd, check=True, capture_output=True)


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if ETCD is None:
        return "etcd is not installed (Debian etcd-server)"
    if not Path("/sys/module/vxlan").exists() and not Path("/proc/net/vxlan").exists():
        # built-in vxlan shows no module dir on some kernels: try a throwaway device instead
        probe = subprocess.run(["ip", "link", "add", f"{PREFIX}vx", "type", "vxlan", "id", "1", "dstport", "4789"],
                               capture_output=True)  # fmt: skip
        if probe.returncode != 0:
            return "the kernel has no VXLAN"
        subprocess.run(["ip", "link", "del", f"{PREFIX}vx"], check=False)
    return None


class NetnsHosts:
    """A switch namespace and N host namespaces on it."""

    def __init__(self, count: int) -> None:
        self.switch = f"{PREFIX}sw"
        self.hosts = [f"{PREFIX}h{i}" for i in range(1, count + 1)]
        subprocess.run(["ip", "netns", "add", self.switch], check=True)
        ip("link", "set", "lo", "up", ns=self.switch)
        ip("link", "add", "br0", "type", "bridge", ns=self.switch)
        ip("addr", "add", f"{STORE_IP}/24", "dev", "br0", ns=self.switch)
        ip("link", "set", "br0", "up", ns=self.switch)
        for i, host in enumerate(self.hosts, 1):
            self.add(host, i)

    def add(self, host: str, i: int) -> None:
        subprocess.run(["ip", "netns", "add", host], check=True)
        ip("link", "set", "lo", "up", ns=host)
        # created inside the host namespace, the peer moved to the switch: the root namespace never
        # holds either end
        ip("link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}", "netns", self.switch, ns=host)
        ip("link", "set", f"p{i}", "master", "br0", "up", ns=self.switch)
        ip("addr", "add", f"{UNDERLAY}.{i}/24", "dev", "eth0", ns=host)
        ip("link", "set", "eth0", "up", ns=host)

    def address(self, host: str) -> str:
        return f"{UNDERLAY}.{self.hosts.index(host) + 1}"

    def delete(self) -> None:
        for ns in [*self.hosts, self.switch]:
            subprocess.run(["ip", "netns", "delete", ns], check=False)

    def leftovers(self) -> list[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


class Etcd:
    """etcd 3.4 in a namespace (or on loopback with ``ns=None``), with a temp data dir."""

    def __init__(self, root: Path, ns: str | None, address: str, port: int = 2379) -> None:
        self.url = f"http://{address}:{port}"
        self.store = f"etcd://{address}:{port}"
        self.ns, self.address, self.port = ns, address, port
        self.data = root / "etcd"
        self.log = root / "etcd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []  # more etcd flags (TLS)
        self.health: list[str] = []  # more curl flags for the health check (TLS)

    def start(self) -> Etcd:
        # in its own namespace any port is free; on the machine's loopback ask for a free one
        peer = f"http://{self.address}:{self.port + 1 if self.ns else free_port()}"
        cmd = [
            str(ETCD), "--name", "t", "--data-dir", str(self.data), "--logger", "zap", "--log-outputs", "stderr",
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"t={peer}", "--initial-cluster-state", "new",
            *self.extra,
        ]  # fmt: skip
        if self.ns:
            cmd = ["ip", "netns", "exec", self.ns, *cmd]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log.read_text()}")
            health = ["curl", "-sf", *self.health, f"{self.url}/health"]
            if self.ns:
                health = ["ip", "netns", "exec", self.ns, *health]
            if subprocess.run(health, capture_output=True).returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not come up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HostEngine(EngineDaemon):
    """engined inside a test host's network namespace (nsenter execs it: same PID, stopped by it)."""

    def __init__(self, ns: str, **kwargs: object) -> None:
        root = kwargs.pop("root", None)
        env = {"ENGINE_RESOLV_CONF": ""}  # set below, to a resolver that stays inside the namespace
        super().__init__(root=root, env=env, **kwargs)  # type: ignore[arg-type]
        self.ns = ns
        self.root.mkdir(parents=True, exist_ok=True)
        resolv = self.root / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")  # loopback of the host namespace: nothing leaves it
        self.env["ENGINE_RESOLV_CONF"] = str(resolv)
        self.docker = DockerCLI(self.host)

    def command(self) -> list[str]:
        # nsenter switches only the network namespace: `ip netns exec` would also remount /sys in a
        # mount namespace of its own, which hides the cgroup mounts runc needs
        return ["nsenter", f"--net=/run/netns/{self.ns}", *super().command()]


def engine_config(store: str, advertise: str, **extra: object) -> dict[str, object]:
    return {
        "cluster-store": store,
        "cluster-advertise": f"{advertise}:2376",
        "bridge": "none",  # the overlay is under test; no default bridge or its firewall in the hosts
        "storage-driver": "vfs",
        **extra,
    }
