"""Network driver benchmarks: endpoint setup, container-to-container throughput and latency.

Driver level (no daemon): each installed network driver through engine's NetworkController in a
temp root, namespaces made by the controller, traffic between Python sockets created inside
those namespaces (the sockets keep their namespace, so the measuring threads need no setns).

End to end (optional): for each ``--docker-host`` (engine, or a dockerd the integrator runs
beside it), containers on a fresh bridge network measured with the docker CLI and busybox:
``docker run`` on the network, and TCP throughput between two containers (busybox nc).

``python -m engine_testkit.network_bench [--driver NAME ...] [--repeat N] [--docker-host URL ...]``
prints one table per part.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine_testkit.network import dismantle, free_subnet, make_controller

MIB = 1024 * 1024


def _median_p90(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _socket_in(path: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    from engine.drivers import netns

    return netns.run_in(path, lambda: socket.socket(family, kind))


def tcp_throughput(server_ns: str, client_ns: str, server_ip: str, megabytes: int = 256) -> float:
    """MiB/s of one TCP stream from the client namespace to a server in the other."""
    listener = _socket_in(server_ns)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((server_ip, 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    received = [0]

    def serve() -> None:
        conn, _ = listener.accept()
        buf = bytearray(MIB)
        while True:
            n = conn.recv_into(buf)
            if not n:
                break
            received[0] += n
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = _socket_in(client_ns)
    client.connect((server_ip, port))
    chunk = b"\0" * MIB
    start = time.perf_counter()
    for _ in range(megabytes):
        client.sendall(chunk)
    client.shutdown(socket.SHUT_WR)
    thread.join()
    elapsed = time.perf_counter() - start
    client.close()
    listener.close()
    return received[0] / MIB / elapsed


def tcp_latency(server_ns: str | None, client_ns: str | None, ip: str, port: int = 0, rounds: int = 2000) -> float:
    """Median round trip in microseconds of a 1-byte ping-pong (``port``: connect to a published port)."""
    listener = None
    if not port:
        listener = _socket_in(server_ns) if server_ns else socket.socket()
        listener.bind((ip, 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def echo() -> None:
            conn, _ = listener.accept()  # type: ignore[union-attr]
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(1):
                conn.sendall(data)
            conn.close()

        threading.Thread(target=echo, daemon=True).start()
    client = _socket_in(client_ns) if client_ns else socket.socket()
    client.connect((ip, port))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        client.sendall(b"x")
        client.recv(1)
        times.append((time.perf_counter() - start) * 1e6)
    client.close()
    if listener is not None:
        listener.close()
    return statistics.median(times)


class _Echo:
    """An echo server inside a namespace, for the published-port case."""

    def __init__(self, ns: str, ip: str, port: int) -> None:
        self.listener = _socket_in(ns)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((ip, port))
        self.listener.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        while data := conn.recv(65536):
            conn.sendall(data)
        conn.close()

    def close(self) -> None:
        self.listener.close()


def bench_driver(driver: str, repeat: int, root: Path) -> dict[str, str]:
    """One column of the driver-level table."""
    from engine import registry

    cls = registry.DriverRegistry(registry.NETWORK).load(driver)
    config = {} if driver == "bridge" else {"bridge": "none"}
    ctl = make_controller(root, config)
    ctl.start()
    out: dict[str, str] = {}
    try:
        if cls.user_creatable:
            net = ctl.create_network(
                f"bench-{secrets.token_hex(3)}", driver, ipam={"Config": [{"Subnet": free_subnet()}]}
            )
        else:
            net = next(n for n in ctl.networks.values() if n.driver == driver)

        def run(**hc: Any) -> Any:
            return ctl.setup_sandbox(
                secrets.token_hex(32), f"b{secrets.token_hex(3)}", {}, {"NetworkMode": net.name, **hc}
            )

        setup, teardown = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            sb = run()
            t1 = time.perf_counter()
            ctl.teardown_sandbox(sb.container_id)
            setup.append((t1 - t0) * 1000)
            teardown.append((time.perf_counter() - t1) * 1000)
        out["endpoint setup (ms, median / p90)"] = "{:.2f} / {:.2f}".format(*_median_p90(setup))
        out["endpoint teardown (ms, median / p90)"] = "{:.2f} / {:.2f}".format(*_median_p90(teardown))
        if cls.uses_ipam and cls.needs_sandbox:
            a, b = run(), run()
            ip_b = b.network_settings["Networks"][net.name]["IPAddress"]
            best = max(tcp_throughput(b.netns_path, a.netns_path, ip_b) for _ in range(3))
            out["c2c TCP throughput (MiB/s)"] = f"{best:.0f}"
            out["c2c TCP round trip (us, median)"] = f"{tcp_latency(b.netns_path, a.netns_path, ip_b):.1f}"
            ctl.teardown_sandbox(b.container_id)
            pub = run(PortBindings={"7001/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
            ip = pub.network_settings["Networks"][net.name]["IPAddress"]
            port = int(pub.network_settings["Ports"]["7001/tcp"][0]["HostPort"])
            echo = _Echo(pub.netns_path, ip, 7001)
            try:
                out["host -> published port round trip (us, median)"] = "{:.1f}".format(
                    tcp_latency(None, None, "127.0.0.1", port, rounds=1000)
                )
            finally:
                echo.close()
    finally:
        dismantle(ctl)
    return out


def table(columns: dict[str, dict[str, str]], first: str = "case") -> str:
    cases: list[str] = []
    for values in columns.values():
        cases += [c for c in values if c not in cases]
    rows = [[first, *columns]]
    for case in cases:
        rows.append([case, *(columns[name].get(case, "-") for name in columns)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- end to end through the docker CLI ---------------------------------------------------------------


def _docker(host: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {**os.environ, "DOCKER_HOST": host}

    def run(*args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, **kwargs)
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    return run


def bench_docker_host(host: str, repeat: int, image: str = "busybox:latest", megabytes: int = 200) -> dict[str, str]:
    docker = _docker(host)
    net = f"bench-{secrets.token_hex(3)}"
    out: dict[str, str] = {}
    docker("network", "create", net)
    made: list[str] = []
    try:
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            cid = docker("run", "-d", "--network", net, image, "sleep", "600").stdout.strip()
            runs.append((time.perf_counter() - t0) * 1000)
            made.append(cid)
        out["docker run -d on a bridge network (ms, median / p90)"] = "{:.0f} / {:.0f}".format(*_median_p90(runs))
        server, client = made[0], made[1] if len(made) > 1 else made[0]
        template = f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}'
        ip = docker("inspect", "-f", template, server).stdout.strip()
        docker("exec", "-d", server, "sh", "-c", "nc -l -p 5001 > /dev/null")
        time.sleep(0.3)
        t0 = time.perf_counter()
        docker("exec", client, "sh", "-c", f"dd if=/dev/zero bs=1048576 count={megabytes} 2>/dev/null | nc {ip} 5001")
        out["c2c TCP throughput, busybox nc (MiB/s)"] = "%.0f" % (megabytes / (time.perf_counter() - t0))
        pings = docker("exec", client, "ping", "-c", "20", "-i", "0.05", ip).stdout
        avg = [line for line in pings.splitlines() if "min/avg/max" in line]
        if avg:
            out["c2c ping (ms avg)"] = avg[0].split("=")[1].split("/")[1]
    finally:
        if made:
            docker("rm", "-f", *made, check=False)
        docker("network", "rm", net, check=False)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="network_bench", description="engine network driver benchmarks")
    parser.add_argument("--driver", action="append", help="network driver (repeatable; default: every installed)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--docker-host", action="append", default=[], help="also measure end to end against this daemon"
    )
    parser.add_argument("--image", default="busybox:latest", help="image for the end-to-end part (must have nc, dd)")
    args = parser.parse_args(argv)
    from engine import registry

    drivers = args.driver or registry.DriverRegistry(registry.NETWORK).names()
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="engine-netbench-") as tmp:
        for i, driver in enumerate(drivers):
            print(f"network_bench: driver {driver} ...", file=sys.stderr, flush=True)
            columns[driver] = bench_driver(driver, args.repeat, Path(tmp) / str(i))
    print(table(columns, "driver level"))
    if args.docker_host:
        e2e = {}
        for host in args.docker_host:
            print(f"network_bench: {host} ...", file=sys.stderr, flush=True)
            e2e[host] = bench_docker_host(host, max(2, args.repeat // 2), args.image)
        print()
        print(table(e2e, "end to end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
