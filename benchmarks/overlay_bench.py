"""Cross-host overlay figures: engine's overlay driver beside the same VXLAN made by hand with ip(8).

Two test hosts (network namespaces on a switch namespace, underlay 198.18.0.0/24 that exists only
inside them), one "container" namespace on each. The reference is libnetwork's layout built with
``ip``/``bridge`` commands (BACKENDS.md section 8 b): a sandbox namespace per host with br0 and a
VXLAN device created in the host and moved in, static FDB and neighbour entries, a veth to the
container. The overlay case builds the same thing through two OverlayNetworkDriver instances (one
per host, through the public driver SDK, a real etcd on loopback as their store). Traffic: one TCP
stream (MiB/s) and a 1-byte ping-pong (median round trip, µs) between the two containers, with
Python sockets made inside the namespaces.

    .venv/bin/python benchmarks/overlay_bench.py [--repeat 5]

Needs root, etcd and VXLAN. Everything it makes is removed at the end (processes by PID).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from engine.drivers import netns
from engine.drivers.network import EndpointInterface, IPAMData, NetworkDriverContext, NetworkSpec, SandboxInfo
from engine.registry import NETWORK, DriverRegistry
from engine_testkit.network_bench import tcp_latency, tcp_throughput

P = f"ob{os.getpid() % 10000}"
UNDER = "198.18.0"
STORE = f"{UNDER}.100"  # etcd, in the switch namespace


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def ns_path(name: str) -> str:
    return f"/run/netns/{name}"


class Hosts:
    def __init__(self) -> None:
        self.names = [f"{P}sw", f"{P}h1", f"{P}h2"]
        sh("ip", "netns", "add", f"{P}sw")
        sh("ip", "-n", f"{P}sw", "link", "set", "lo", "up")
        sh("ip", "-n", f"{P}sw", "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", f"{P}sw", "addr", "add", f"{STORE}/24", "dev", "br0")
        sh("ip", "-n", f"{P}sw", "link", "set", "br0", "up")
        for i in (1, 2):
            h = f"{P}h{i}"
            sh("ip", "netns", "add", h)
            sh("ip", "-n", h, "link", "set", "lo", "up")
            sh("ip", "-n", h, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}", "netns", f"{P}sw")
            sh("ip", "-n", f"{P}sw", "link", "set", f"p{i}", "master", "br0", "up")
            sh("ip", "-n", h, "addr", "add", f"{UNDER}.{i}/24", "dev", "eth0")
            sh("ip", "-n", h, "link", "set", "eth0", "up")

    def add(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        self.names.append(name)
        return name

    def delete(self) -> None:
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "delete", name], check=False)


def measure(pairs: list[tuple[str, str, str]], repeat: int) -> list[tuple[float, float]]:
    """Median MiB/s and RTT of each (client ns, server ns, server ip), measured in alternation so
    that a busy machine weighs on every setup alike."""
    mibs: list[list[float]] = [[] for _ in pairs]
    rtts: list[list[float]] = [[] for _ in pairs]
    for _ in range(repeat):
        for i, (a, b, ip_b) in enumerate(pairs):
            mibs[i].append(tcp_throughput(b, a, ip_b, megabytes=128))
            rtts[i].append(tcp_latency(b, a, ip_b, rounds=1000))
    return [(statistics.median(m), statistics.median(r)) for m, r in zip(mibs, rtts, strict=True)]


def by_hand(hosts: Hosts) -> tuple[str, str, str]:
    """libnetwork's layout with ip(8), VNI 4242, 10.220.0.0/24."""
    for i in (1, 2):
        h, ov, c = f"{P}h{i}", hosts.add(f"{P}ov{i}"), hosts.add(f"{P}c{i}")
        sh("ip", "-n", ov, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", ov, "link", "set", "br0", "up")
        sh("ip", "-n", h, "link", "add", "vxlan1", "type", "vxlan", "id", "4242", "local", f"{UNDER}.{i}",
           "dstport", "4789", "nolearning", "proxy")  # fmt: skip
        sh("ip", "-n", h, "link", "set", "vxlan1", "netns", ov)
        sh("ip", "-n", ov, "link", "set", "vxlan1", "mtu", "1450", "master", "br0", "up")
        sh("ip", "-n", ov, "link", "add", "veth0", "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", c)
        sh("ip", "-n", ov, "link", "set", "veth0", "master", "br0", "up")
        sh("ip", "-n", c, "link", "set", "eth0", "mtu", "1450", "address", f"02:42:0a:dc:00:0{i}", "up")
        sh("ip", "-n", c, "addr", "add", f"10.220.0.{i}/24", "dev", "eth0")
    for i in (1, 2):
        j = 3 - i
        sh("bridge", "-n", f"{P}ov{i}", "fdb", "add", f"02:42:0a:dc:00:0{j}", "dev", "vxlan1", "dst", f"{UNDER}.{j}",
           "self", "permanent")  # fmt: skip
        sh("ip", "-n", f"{P}ov{i}", "neigh", "add", f"10.220.0.{j}", "lladdr", f"02:42:0a:dc:00:0{j}", "dev",
           "vxlan1", "nud", "permanent")  # fmt: skip
    return ns_path(f"{P}c1"), ns_path(f"{P}c2"), "10.220.0.2"


@contextlib.contextmanager
def with_driver(store: str, root: Path) -> Iterator[tuple[str, str, str]]:
    cls = DriverRegistry(NETWORK).load("overlay")
    drivers = []
    for i in (1, 2):
        config = {"cluster-store": store, "cluster-advertise": f"{UNDER}.{i}:2376"}
        context = NetworkDriverContext(root / f"state{i}", root / f"exec{i}", config, f"bench-{i}")
        (root / f"state{i}").mkdir(parents=True)
        drivers.append(cls(context))
    for i, drv in enumerate(drivers, 1):
        # started in its host's namespace: the store threads it starts live there too
        netns.run_in(ns_path(f"{P}h{i}"), drv.start)
    net_id = secrets.token_hex(32)
    pool = ipaddress.IPv4Network("10.221.0.0/24")
    spec = NetworkSpec(net_id, "bench", {}, [IPAMData(pool, ipaddress.IPv4Interface("10.221.0.1/24"))])
    h1 = ns_path(f"{P}h1")
    # every driver call runs in its host's namespace (where its daemon would run): the store is
    # reachable only from there, and nothing is ever sent from the machine's own namespace
    netns.run_in(h1, lambda: drivers[0].create_network(spec))
    keys: list[str] = []
    joined: list[tuple[object, str, str]] = []
    try:
        ip_b = ""
        for i, drv in enumerate(drivers, 1):
            while net_id not in drv.state.networks:  # the second driver learns it through its watch
                time.sleep(0.05)
            key = str(root / f"c{i}")
            netns.create(Path(key))
            keys.append(key)
            iface = EndpointInterface()
            ep = f"ep{i}" + secrets.token_hex(8)
            host = ns_path(f"{P}h{i}")
            # the driver's calls run in its host's namespace, where that host's daemon would run
            netns.run_in(host, lambda d=drv, e=ep, f=iface: d.create_endpoint(net_id, e, f, {}))
            joined.append((drv, ep, host))
            netns.run_in(host, lambda d=drv, e=ep, k=key: d.join(net_id, e, SandboxInfo(k, e, "eth0")))
            ip_b = str(iface.address.ip)
        deadline = time.monotonic() + 10
        while not drivers[0].peers(net_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield keys[0], keys[1], ip_b
    finally:
        for drv, ep, host in joined:
            netns.run_in(host, lambda d=drv, e=ep: (d.leave(net_id, e), d.delete_endpoint(net_id, e)))
        netns.run_in(h1, lambda: drivers[0].delete_network(net_id))
        for i, drv in enumerate(drivers, 1):
            netns.run_in(ns_path(f"{P}h{i}"), drv.stop)
        for key in keys:
            netns.delete(Path(key))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    etcd_bin = shutil.which("etcd")
    if os.geteuid() != 0 or etcd_bin is None:
        print("needs root and etcd (Debian etcd-server)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="overlay-bench-"))
    hosts = Hosts()
    port = 2379
    url, peer = f"http://{STORE}:{port}", f"http://{STORE}:{port + 1}"
    log = open(root / "etcd.log", "wb")  # noqa: SIM115 - closed below
    etcd = subprocess.Popen(
        ["ip", "netns", "exec", f"{P}sw", etcd_bin, "--name", "b", "--data-dir", str(root / "etcd"), "--logger", "zap", "--log-outputs", "stderr",
         "--listen-client-urls", url, "--advertise-client-urls", url, "--listen-peer-urls", peer,
         "--initial-advertise-peer-urls", peer, "--initial-cluster", f"b={peer}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        health = ["ip", "netns", "exec", f"{P}sw", "curl", "-sf", "-m", "2", f"{url}/health"]
        while subprocess.run(health, capture_output=True).returncode != 0:
            time.sleep(0.1)
        reference = by_hand(hosts)
        with with_driver(f"etcd://{STORE}:{port}", root) as overlay:
            hand, ours = measure([reference, overlay], args.repeat)
    finally:
        etcd.terminate()
        etcd.wait(10)
        hosts.delete()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"cross-host VXLAN, median of {args.repeat} alternated runs (one TCP stream of 128 MiB; 1-byte TCP "
          f"ping-pong); load average {load:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'':28}{'MiB/s':>10}{'RTT µs':>10}")
    print(f"{'by hand (ip link, bridge)':28}{hand[0]:>10.0f}{hand[1]:>10.1f}")
    print(f"{'engine overlay driver':28}{ours[0]:>10.0f}{ours[1]:>10.1f}")
    print(f"{'overlay / by hand':28}{ours[0] / hand[0]:>10.1%}{ours[1] / hand[1]:>10.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
