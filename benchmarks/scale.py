"""The cost as work grows (issue 16, item 4), side by side: a fresh engined and a fresh reference dockerd,
both started by this script on their own temp dirs, loaded with N containers (created; R of them
running) and M bridge networks, then measured phase by phase, one daemon after the other in each phase
so that both see the same machine load.

    .venv/bin/python benchmarks/scale.py [--containers 1000] [--running 200] [--networks 200]

Measured per daemon:
- create time per container and per network (bulk, 4 API clients in parallel);
- ``docker ps`` (running), ``docker ps -a`` (all), ``docker network ls``: CLI wall time, median of 5;
- ``docker inspect`` of one container and ``docker start`` of a created one: median of 10;
- daemon RSS (its own process; dockerd also with containerd) before and after loading;
- restart: SIGTERM (the running containers are stopped: they exit on SIGTERM) and a fresh start on
  the same roots: time to the first answered ``/_ping`` and until ``GET /containers/json?all=1``
  lists every container (the restore).

The running containers use ``--network none`` (bridge endpoints are not what this measures); the
networks are user-defined bridges on subnets of 10.231.0.0/16 (engine) and 10.232.0.0/16 (dockerd),
no traffic is sent. Everything made is removed at the end: containers, networks, both daemons (stopped
by PID), their roots. Writes benchmarks/results/scale-<time>.{json,txt}.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from containers import IMAGE, children, comm, ensure_image, smaps_rollup
from daemon import UnixHTTPConnection
from hotpaths import _wait_ping

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent
#: a running container that exits at once on SIGTERM (a bare sleep as PID 1 ignores it)
RUN_CMD = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


class Daemon:
    """One daemon this script starts and stops by PID on its own root."""

    label = ""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"engine-scale-{self.label}-", dir="/tmp"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def sock(self) -> str:
        raise NotImplementedError

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> float:
        cmd, env = self.command()
        with open(self.root / "daemon.log", "ab") as log:
            start = time.perf_counter()
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
            )
        return _wait_ping(self.proc, self.sock, start, timeout=300)

    def stop(self) -> float:
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        start = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return (time.perf_counter() - start) * 1000

    def rss_mib(self) -> tuple[float, float]:
        """The daemon's own RSS and with its helper children (containerd), shims excluded."""
        assert self.proc is not None
        own = smaps_rollup(self.proc.pid)["Rss"]
        tree = own
        for child in children(self.proc.pid):
            if "shim" not in comm(child):
                try:
                    tree += smaps_rollup(child)["Rss"]
                except OSError:
                    pass
        return own / 1024, tree / 1024

    def cleanup(self) -> None:
        raise NotImplementedError


class Engine(Daemon):
    label = "engine"

    def __init__(self) -> None:
        super().__init__()
        from engine_testkit.daemon import EngineDaemon

        self.testkit = EngineDaemon(root=self.root, config={"storage-driver": "overlay2"})
        self.testkit.owns_root = True

    @property
    def sock(self) -> str:
        return str(self.testkit.socket)

    def command(self) -> tuple[list[str], dict[str, str]]:
        cmd = self.testkit.command()
        self.testkit.config_file.write_text(json.dumps(self.testkit.config))
        return cmd, self.testkit.env

    def cleanup(self) -> None:
        self.testkit.proc = self.proc
        self.testkit.cleanup()


class Dockerd(Daemon):
    label = "dockerd"

    @property
    def sock(self) -> str:
        return str(self.root / "docker.sock")

    def command(self) -> tuple[list[str], dict[str, str]]:
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        root = self.root
        cmd = [
            dockerd, "--host", self.host, "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
            "--pidfile", f"{root}/docker.pid", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
            "--bridge=none", "--containerd-namespace", "engine-ref", "--containerd-plugins-namespace",
            "engine-ref-plugins", "--cgroup-parent", "/engine-ref-dockerd",
        ]  # fmt: skip
        return cmd, {}

    def cleanup(self) -> None:
        subprocess.run(
            [str(REPO / "scripts" / "reference-dockerd"), "stop"], env={**os.environ, "ROOT": str(self.root)}
        )
        from engine_testkit.daemon import mounts_under

        # dockerd bind-mounts its data-root on itself (private propagation): whatever is still mounted goes
        for mountpoint in sorted(mounts_under(self.root), reverse=True):
            subprocess.run(["umount", "-l", mountpoint], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def docker(host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", *args], env=env, capture_output=True, check=check)


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bulk(host: str, items: list[Any], fn: Callable[[Any, Any], None], clients: int = 4) -> float:
    """Run ``fn(client, item)`` over ``items`` with ``clients`` docker-py clients; ms per item."""
    import docker as docker_py

    local = threading.local()

    def one(item: Any) -> None:
        if not hasattr(local, "client"):
            local.client = docker_py.APIClient(base_url=host, version="1.41", timeout=300)
        fn(local.client, item)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, items))
    return (time.perf_counter() - start) * 1000 / max(1, len(items))


def count_all(host: str) -> int:
    conn = UnixHTTPConnection(host.removeprefix("unix://"))
    try:
        conn.request("GET", "/v1.41/containers/json?all=1")
        return len(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--running", type=int, default=200)
    parser.add_argument("--networks", type=int, default=200)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    daemons: list[Daemon] = [Engine(), Dockerd()]
    subnet_base = {"engine": "10.231", "dockerd": "10.232"}
    rows: dict[str, dict[str, float]] = {d.label: {} for d in daemons}
    names = [f"scale-{i}" for i in range(args.containers)]
    nets = [f"scale-net-{i}" for i in range(args.networks)]

    def phase(title: str, fn: Callable[[Daemon], dict[str, float]]) -> None:
        for d in daemons:
            print(f"[{d.label}] {title} (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
            rows[d.label].update(fn(d))

    try:
        phase("start (empty)", lambda d: {"start to first /_ping, empty, ms": d.start()})
        for d in daemons:
            ensure_image(d.host)
        phase(
            "RSS (empty)",
            lambda d: dict(zip(("RSS MiB, empty", "RSS MiB with containerd, empty"), d.rss_mib(), strict=True)),
        )

        def make_networks(d: Daemon) -> dict[str, float]:
            base = subnet_base[d.label]

            def create(client: Any, i: int) -> None:
                ipam = {"Driver": "default", "Config": [{"Subnet": f"{base}.{i}.0/24"}]}
                client.create_network(nets[i], driver="bridge", ipam=ipam)

            return {"network create ms per network": bulk(d.host, list(range(args.networks)), create)}

        phase("networks", make_networks)

        def make_containers(d: Daemon) -> dict[str, float]:
            def create(client: Any, name: str) -> None:
                host_config = client.create_host_config(network_mode="none")
                client.create_container(IMAGE, RUN_CMD, name=name, host_config=host_config)

            per = bulk(d.host, names, create)
            start_per = bulk(d.host, names[: args.running], lambda client, name: client.start(name))
            return {"container create ms per container": per, "start (bulk) ms per container": start_per}

        phase("containers", make_containers)
        phase(
            "RSS (loaded)",
            lambda d: dict(zip(("RSS MiB, loaded", "RSS MiB with containerd, loaded"), d.rss_mib(), strict=True)),
        )
        phase("docker ps", lambda d: {"docker ps (running) ms": median_ms(lambda: docker(d.host, "ps"), 5)})
        phase("docker ps -a", lambda d: {"docker ps -a ms": median_ms(lambda: docker(d.host, "ps", "-a"), 5)})
        phase(
            "docker network ls",
            lambda d: {"docker network ls ms": median_ms(lambda: docker(d.host, "network", "ls"), 5)},
        )
        phase(
            "docker inspect",
            lambda d: {"docker inspect ms": median_ms(lambda: docker(d.host, "inspect", names[-1]), 10)},
        )
        start_names = iter(names[args.running : args.running + 20])  # ten created ones each
        phase(
            "docker start",
            lambda d: {
                "docker start (1 of many) ms": median_ms(lambda: docker(d.host, "start", next(start_names)), 10)
            },
        )

        def restart(d: Daemon) -> dict[str, float]:
            stopped = d.stop()
            start = time.perf_counter()
            first_ping = d.start()
            while count_all(d.host) < args.containers:
                time.sleep(0.01)
            restored = (time.perf_counter() - start) * 1000
            own, tree = d.rss_mib()
            return {
                "stop (SIGTERM to exit) ms": stopped,
                "restart to first /_ping ms": first_ping,
                "restart until all containers listed ms": restored,
                "RSS MiB after restart": own,
                "RSS MiB with containerd after restart": tree,
            }

        phase("restart", restart)
    finally:
        for d in daemons:
            print(f"[{d.label}] cleaning up", file=sys.stderr)
            try:
                if d.proc is not None and d.proc.poll() is None:
                    docker(d.host, "rm", "-f", *names, check=False)
                    for i in range(0, len(nets), 50):
                        docker(d.host, "network", "rm", *nets[i : i + 50], check=False)
                    docker(d.host, "rmi", "-f", IMAGE, check=False)
            finally:
                d.stop()
                d.cleanup()
    load_end = os.getloadavg()[0]
    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    width = max(len(k) for k in keys) + 2
    lines = [
        f"{args.containers} containers ({args.running} running, --network none), {args.networks} bridge networks; "
        f"load average (1 min) {load_start:.1f} at start, {load_end:.1f} at end"
    ]
    lines.append("".ljust(width) + "".join(d.label.rjust(12) for d in daemons))
    for key in keys:
        lines.append(key.ljust(width) + "".join(f"{rows[d.label].get(key, float('nan')):12.1f}" for d in daemons))
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    meta = {"args": vars(args), "load": [load_start, load_end], "time": stamp}
    (RESULTS / f"scale-{stamp}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    (RESULTS / f"scale-{stamp}.txt").write_text(text + "\n")
    print(f"saved to {RESULTS}/scale-{stamp}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
