"""The hot paths of issue 16, side by side for several daemons, interleaved so that every daemon sees
the same machine load (the machine is shared: one round measures each target in turn, several rounds,
medians of the rounds).

    .venv/bin/python benchmarks/hotpaths.py --target engine=unix:///tmp/e/engine.sock \
        --target dockerd=unix:///tmp/engine-ref-dockerd/docker.sock [--rounds 5] [--startup]

Measured per target:
- ``docker exec C true`` (the CLI's wall time) in a running busybox (``--network none``);
- exec_create + exec_start of ``true`` over docker-py's APIClient (one kept client);
- with --runc-root: ``runc exec`` of ``true`` alone in the same container (the floor of both);
- raw ``GET /_ping`` on one kept-alive connection (median of 200 per round);
- 500 parallel ``GET /containers/json``, each on its own connection, all sent at once (p50 and p90
  of the latencies, from the moment all are launched);
- the daemon's RSS (its own process; with --tree also its helpers, containerd for dockerd);
- with --startup: exec to the first answered ``GET /_ping`` of a fresh daemon on its own temp dirs,
  engined (every plugin of the venv installed, overlay2) and dockerd (scripts/reference-dockerd's
  flags), both polled every 2 ms the same way; each stopped by PID and cleaned up.

Prints a table with the 1-minute load average at the start and end, and writes
benchmarks/results/hotpaths-<time>.{json,txt}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from containers import IMAGE, docker, ensure_image, smaps_rollup, socket_owner

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent


def ping_once(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(path)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class KeepAlive:
    """One kept-alive HTTP/1.1 connection with a minimal reader (Content-Length bodies only)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.buf = b""

    def get(self, path: str) -> bytes:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: d\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buf = rest[length:]
        return rest[:length]

    def close(self) -> None:
        self.sock.close()


def bench_ping(host: str, n: int = 200) -> float:
    conn = KeepAlive(host.removeprefix("unix://"))
    try:
        for _ in range(20):
            conn.get("/_ping")
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            conn.get("/_ping")
            samples.append((time.perf_counter() - start) * 1000)
        return statistics.median(samples)
    finally:
        conn.close()


async def _parallel_list(path: str, n: int) -> list[float]:
    request = b"GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"

    async def one(t0: float) -> float:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(request)
        await writer.drain()
        data = await reader.read()
        writer.close()
        assert data.startswith(b"HTTP/1.1 200"), data[:80]
        return (time.perf_counter() - t0) * 1000

    t0 = time.perf_counter()
    return list(await asyncio.gather(*(one(t0) for _ in range(n))))


def bench_parallel_list(host: str, n: int) -> tuple[float, float]:
    samples = sorted(asyncio.run(_parallel_list(host.removeprefix("unix://"), n)))
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def bench_exec_cli(host: str, name: str, n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        docker(host, "exec", name, "true")
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench_runc_exec(runc_root: str, container_id: str, n: int) -> float:
    """``runc exec`` alone in the same container: the floor under any daemon's exec."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(["runc", "--root", runc_root, "exec", container_id, "true"], check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench_exec_sdk(client: Any, name: str, n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        exec_id = client.exec_create(name, ["true"])["Id"]
        client.exec_start(exec_id)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def rss_mib(host: str) -> float:
    pid = socket_owner(host.removeprefix("unix://"))
    return smaps_rollup(pid)["Rss"] / 1024 if pid else float("nan")


# -- start-up ---------------------------------------------------------------------------------------


def _wait_ping(proc: subprocess.Popen[bytes], sock: str, start: float, timeout: float = 60) -> float:
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}")
        if os.path.exists(sock) and ping_once(sock):
            return (time.perf_counter() - start) * 1000
        time.sleep(0.002)
    raise RuntimeError("daemon did not answer /_ping")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def startup_engine() -> float:
    from engine_testkit.daemon import EngineDaemon

    daemon = EngineDaemon(config={"storage-driver": "overlay2"})
    cmd = daemon.command()
    daemon.config_file.write_text(json.dumps(daemon.config))
    with open(daemon.log_file, "ab") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **daemon.env}, start_new_session=True
        )
    try:
        return _wait_ping(proc, str(daemon.socket), start)
    finally:
        _stop(proc)
        daemon.proc = proc
        daemon.cleanup()


def startup_dockerd() -> float:
    root = Path(tempfile.mkdtemp(prefix="engine-bench-dockerd-", dir="/tmp"))
    sock = root / "docker.sock"
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    cmd = [
        dockerd, "--host", f"unix://{sock}", "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
        "--pidfile", f"{root}/docker.pid", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
        "--bridge=none", "--containerd-namespace", "engine-ref", "--containerd-plugins-namespace",
        "engine-ref-plugins", "--cgroup-parent", "/engine-ref-dockerd",
    ]  # fmt: skip
    with open(root / "dockerd.log", "ab") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return _wait_ping(proc, str(sock), start)
    finally:
        _stop(proc)
        # reference-dockerd stop: unmounts what is left under the root, removes it
        subprocess.run([str(REPO / "scripts" / "reference-dockerd"), "stop"], env={**os.environ, "ROOT": str(root)})
        from engine_testkit.daemon import mounts_under

        # dockerd bind-mounts its data-root on itself (private propagation): whatever is still mounted goes
        for mountpoint in sorted(mounts_under(root), reverse=True):
            subprocess.run(["umount", "-l", mountpoint], check=False)
        shutil.rmtree(root, ignore_errors=True)


# -- the table --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", default=[], help="label=DOCKER_HOST (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--exec-runs", type=int, default=10, help="execs per round and target")
    parser.add_argument("--parallel", type=int, default=500)
    parser.add_argument("--startup", action="store_true")
    parser.add_argument(
        "--runc-root", action="append", default=[], help="label=DIR: also time `runc --root DIR exec` alone"
    )
    parser.add_argument("--only", default="", help="comma list: exec,ping,list,startup (default all)")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(","))) or {"exec", "ping", "list", "startup"}
    targets = dict(t.split("=", 1) for t in args.target)
    runc_roots = dict(t.split("=", 1) for t in args.runc_root)
    load_start = os.getloadavg()[0]
    rounds: dict[str, dict[str, list[float]]] = {label: {} for label in targets}

    def add(label: str, key: str, value: float) -> None:
        rounds[label].setdefault(key, []).append(value)

    import docker as docker_py

    names = {}
    clients = {}
    for label, host in targets.items():
        ensure_image(host)
        add(label, "daemon RSS MiB, before", rss_mib(host))
        if "exec" in only:
            names[label] = f"bench-hot-{os.getpid()}"
            docker(host, "run", "-d", "--name", names[label], "--network", "none", IMAGE, "sleep", "3600")
            clients[label] = docker_py.APIClient(base_url=host, version="1.41", timeout=120)
    try:
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
            for label, host in targets.items():
                if "exec" in only:
                    add(label, "exec CLI ms", bench_exec_cli(host, names[label], args.exec_runs))
                    add(label, "exec SDK ms", bench_exec_sdk(clients[label], names[label], args.exec_runs))
                    if label in runc_roots:
                        cid = clients[label].inspect_container(names[label])["Id"]
                        add(
                            label, "runc exec alone ms (floor)", bench_runc_exec(runc_roots[label], cid, args.exec_runs)
                        )
                if "ping" in only:
                    add(label, "GET /_ping keep-alive ms", bench_ping(host))
                if "list" in only:
                    p50, p90 = bench_parallel_list(host, args.parallel)
                    add(label, f"{args.parallel} parallel GET /containers/json p50 ms", p50)
                    add(label, f"{args.parallel} parallel GET /containers/json p90 ms", p90)
            if args.startup and "startup" in only:
                for label in targets:
                    if label.startswith("engine"):
                        add(label, "start to first /_ping ms", startup_engine())
                    elif label.startswith("dockerd"):
                        add(label, "start to first /_ping ms", startup_dockerd())
    finally:
        for label, host in targets.items():
            if label in names:
                docker(host, "rm", "-f", names[label], check=False)
                clients[label].close()
    for label, host in targets.items():
        add(label, "daemon RSS MiB, after", rss_mib(host))
    load_end = os.getloadavg()[0]
    results = {label: {k: statistics.median(v) for k, v in row.items()} for label, row in rounds.items()}
    keys = list(dict.fromkeys(k for row in results.values() for k in row))
    width = max(len(k) for k in keys) + 2
    lines = [f"load average (1 min): {load_start:.1f} at start, {load_end:.1f} at end; medians of {args.rounds} rounds"]
    lines.append("".ljust(width) + "".join(label.rjust(12) for label in targets))
    for key in keys:
        cells = "".join(f"{results[label].get(key, float('nan')):12.2f}" for label in targets)
        lines.append(key.ljust(width) + cells)
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    meta = {"args": vars(args), "load": [load_start, load_end], "time": stamp}
    (RESULTS / f"hotpaths-{stamp}.json").write_text(
        json.dumps({"meta": meta, "results": results, "rounds": rounds}, indent=2) + "\n"
    )
    (RESULTS / f"hotpaths-{stamp}.txt").write_text(text + "\n")
    print(f"saved to {RESULTS}/hotpaths-{stamp}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
