"""Container benchmarks, end to end, side by side for several daemons (engine and a reference dockerd).

    .venv/bin/python benchmarks/containers.py [--target engine=unix:///run/engine.sock]
        [--target dockerd=unix:///tmp/engine-ref-dockerd/docker.sock] [--runs 20] [--containers 10]

Without --target it measures $DOCKER_HOST (label "engine"). The reference dockerd is the integrator's
(``scripts/reference-dockerd start``); this script never starts a daemon. Each target gets a
``busybox:latest`` imported from Debian's busybox-static when it has none.

Measured per target:
- ``docker run --rm --network none busybox true``: wall time of the CLI command (median, p90);
- ``docker exec <running> true``: wall time;
- create -> start -> wait -> remove throughput over the API, a few clients in parallel;
- the classic builder (``DOCKER_BUILDKIT=0``): a 5-step build without cache and fully cached;
- memory per running container on the engine side: the PSS and RSS of the process that owns the
  container's init (engine-shim, or containerd-shim-runc-v2 for dockerd) from /proc/<pid>/smaps_rollup,
  and the growth of the daemon's own process tree (dockerd + containerd, or engined) per container.

Prints one table and writes benchmarks/results/containers-<time>.{json,txt}.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
IMAGE = "busybox:latest"


def docker_env(host: str) -> dict[str, str]:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_CONTEXT", None)
    return env


def docker(host: str, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], env=docker_env(host), capture_output=True, check=check, input=input)


def ensure_image(host: str) -> None:
    if docker(host, "image", "inspect", IMAGE, check=False).returncode == 0:
        return
    from engine_testkit.busybox import busybox_rootfs_tar

    docker(host, "import", "-c", 'CMD ["sh"]', "-", IMAGE, input=busybox_rootfs_tar())


def timed(fn: Any, runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[max(0, int(len(ordered) * 0.9) - 1)],
        "min": ordered[0],
        "mean": statistics.fmean(ordered),
    }


# -- processes and memory ---------------------------------------------------------------------------


def socket_owner(path: str) -> int | None:
    """The pid listening on a unix socket path (the daemon), from /proc/net/unix and /proc/*/fd."""
    inodes = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == path:
            inodes.add(fields[6])
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(proc.name)
        except OSError:
            continue
    return None


def ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if ppid(int(proc.name)) == pid:
                    out.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss and Pss in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key] = int(rest.split()[0])
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def daemon_tree_rss(daemon_pid: int, exclude: set[int]) -> int:
    """RSS (KiB) of the daemon and its helper children (containerd for dockerd), shims excluded."""
    total = 0
    stack = [daemon_pid]
    seen = set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid in exclude:
            continue
        seen.add(pid)
        name = comm(pid)
        if "shim" in name:
            continue
        try:
            total += smaps_rollup(pid).get("Rss", 0)
        except OSError:
            continue
        stack.extend(children(pid))
    return total


# -- the measurements -------------------------------------------------------------------------------


def bench_run_rm(host: str, runs: int, network: str) -> dict[str, float]:
    args = ["run", "--rm", "--network", network, IMAGE, "true"] if network else ["run", "--rm", IMAGE, "true"]
    return summary(timed(lambda: docker(host, *args), runs))


def bench_exec(host: str, runs: int, network: str) -> dict[str, float]:
    name = f"bench-exec-{os.getpid()}"
    docker(host, "run", "-d", "--name", name, *(["--network", network] if network else []), IMAGE, "sleep", "600")
    try:
        return summary(timed(lambda: docker(host, "exec", name, "true"), runs))
    finally:
        docker(host, "rm", "-f", name, check=False)


def bench_throughput(host: str, total: int, clients: int, network: str) -> dict[str, float]:
    import docker as docker_py

    def one(i: int) -> None:
        client = local.client
        host_config = client.create_host_config(network_mode=network) if network else None
        cid = client.create_container(IMAGE, ["true"], host_config=host_config)["Id"]
        client.start(cid)
        client.wait(cid)
        client.remove_container(cid)

    import threading

    local = threading.local()

    def init() -> None:
        local.client = docker_py.APIClient(base_url=host, version="1.41", timeout=120)

    with concurrent.futures.ThreadPoolExecutor(clients, initializer=init) as pool:
        list(pool.map(one, range(clients)))  # warm up every client
        start = time.perf_counter()
        list(pool.map(one, range(total)))
        elapsed = time.perf_counter() - start
    return {"per_second": total / elapsed, "seconds": elapsed}


def bench_memory(host: str, count: int, network: str) -> dict[str, float]:
    sock = host.removeprefix("unix://")
    daemon_pid = socket_owner(sock)
    names = [f"bench-mem-{os.getpid()}-{i}" for i in range(count)]
    before = daemon_tree_rss(daemon_pid, set()) if daemon_pid else 0
    try:
        for name in names:
            docker(
                host, "run", "-d", "--name", name, *(["--network", network] if network else []), IMAGE, "sleep", "600"
            )
        time.sleep(1.0)
        shims = []
        for name in names:
            pid = int(docker(host, "inspect", "-f", "{{.State.Pid}}", name).stdout.decode().strip())
            shims.append(ppid(pid))
        # with several containers per shim (containerd's grouping), count each shim once
        unique = sorted(set(shims))
        mems = [smaps_rollup(pid) for pid in unique]
        after = daemon_tree_rss(daemon_pid, set(unique)) if daemon_pid else 0
        return {
            "shim_pss_kib": sum(m["Pss"] for m in mems) / count,
            "shim_rss_kib": sum(m["Rss"] for m in mems) / count,
            "shim": comm(unique[0]) if unique else "?",
            "daemon_rss_delta_kib": (after - before) / count if daemon_pid else float("nan"),
        }
    finally:
        docker(host, "rm", "-f", *names, check=False)


BUILD_DOCKERFILE = f"""FROM {IMAGE}
LABEL engine-bench-build={{pid}}
RUN echo hello > /greeting
COPY payload /payload
CMD ["cat", "/greeting"]
"""


def bench_build(host: str, runs: int) -> dict[str, dict[str, float]]:
    """Classic builder (``DOCKER_BUILDKIT=0``): a 5-step build without cache (one RUN container, one
    COPY layer) and the same build again, all steps from the cache."""
    import tempfile

    tag = f"bench-build-{os.getpid()}:1"
    with tempfile.TemporaryDirectory() as context:
        Path(context, "Dockerfile").write_text(BUILD_DOCKERFILE.format(pid=os.getpid()))
        Path(context, "payload").write_bytes(os.urandom(1 << 20))
        env = {**docker_env(host), "DOCKER_BUILDKIT": "0"}

        def build(*flags: str) -> None:
            subprocess.run(
                ["docker", "build", "-q", *flags, "-t", tag, context], env=env, capture_output=True, check=True
            )

        try:
            cold = timed(lambda: build("--no-cache"), runs, warmup=1)
            cached = timed(build, runs, warmup=1)
        finally:
            docker(host, "rmi", tag, check=False)
            # the earlier runs' images, untagged by the later ones: only this run's, by its label
            docker(host, "image", "prune", "-f", "--filter", f"label=engine-bench-build={os.getpid()}", check=False)
    return {"cold": summary(cold), "cached": summary(cached)}


def measure(label: str, host: str, args: argparse.Namespace) -> dict[str, Any]:
    ensure_image(host)
    version = docker(host, "version", "-f", "{{.Server.Version}}").stdout.decode().strip()
    print(f"[{label}] {host} (server {version})", file=sys.stderr)
    result: dict[str, Any] = {"host": host, "server_version": version}
    result["run_rm"] = bench_run_rm(host, args.runs, args.network)
    print(f"[{label}] run --rm: {result['run_rm']['median']:.0f} ms median", file=sys.stderr)
    result["exec"] = bench_exec(host, args.runs, args.network)
    result["throughput"] = bench_throughput(host, args.throughput, args.clients, args.network)
    result["memory"] = bench_memory(host, args.containers, args.network)
    result["build"] = bench_build(host, max(3, args.runs // 4))
    return result


ROWS = [
    ("run --rm true, median ms", lambda r: r["run_rm"]["median"], "{:.0f}"),
    ("run --rm true, p90 ms", lambda r: r["run_rm"]["p90"], "{:.0f}"),
    ("exec true, median ms", lambda r: r["exec"]["median"], "{:.0f}"),
    ("exec true, p90 ms", lambda r: r["exec"]["p90"], "{:.0f}"),
    ("create+start+wait+rm per s", lambda r: r["throughput"]["per_second"], "{:.1f}"),
    ("shim process", lambda r: r["memory"]["shim"], "{}"),
    ("shim PSS per container KiB", lambda r: r["memory"]["shim_pss_kib"], "{:.0f}"),
    ("shim RSS per container KiB", lambda r: r["memory"]["shim_rss_kib"], "{:.0f}"),
    ("daemon RSS growth per container KiB", lambda r: r["memory"]["daemon_rss_delta_kib"], "{:.0f}"),
    ("build (5 steps, no cache), median ms", lambda r: r["build"]["cold"]["median"], "{:.0f}"),
    ("build (5 steps, all cached), median ms", lambda r: r["build"]["cached"]["median"], "{:.0f}"),
]


def table(results: dict[str, dict[str, Any]]) -> str:
    labels = list(results)
    width = max(len(r[0]) for r in ROWS) + 2
    lines = ["".ljust(width) + "".join(label.rjust(22) for label in labels)]
    for title, get, fmt in ROWS:
        cells = []
        for label in labels:
            try:
                cells.append(fmt.format(get(results[label])).rjust(22))
            except (KeyError, TypeError, ValueError):
                cells.append("-".rjust(22))
        lines.append(title.ljust(width) + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", default=[], help="label=DOCKER_HOST (repeatable)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per latency figure")
    parser.add_argument("--throughput", type=int, default=40, help="containers for the throughput figure")
    parser.add_argument("--clients", type=int, default=4, help="parallel API clients for the throughput")
    parser.add_argument("--containers", type=int, default=10, help="running containers for the memory figure")
    parser.add_argument("--network", default="none", help='network mode for every container ("" = default)')
    args = parser.parse_args(argv)
    targets = [t.split("=", 1) for t in args.target] or [["engine", os.environ.get("DOCKER_HOST", "")]]
    results: dict[str, dict[str, Any]] = {}
    for label, host in targets:
        if not host:
            parser.error("no target: give --target label=unix:///path or set DOCKER_HOST")
        results[label] = measure(label, host, args)
    text = table(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    meta = {"args": vars(args), "time": stamp, "uname": os.uname().release, "ncpu": os.cpu_count()}
    (RESULTS / f"containers-{stamp}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (RESULTS / f"containers-{stamp}.txt").write_text(text + "\n")
    print(f"saved to {RESULTS}/containers-{stamp}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
