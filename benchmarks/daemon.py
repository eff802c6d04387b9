"""Daemon benchmarks, side by side for several daemons (engine and a reference dockerd 20.10).

    .venv/bin/python benchmarks/daemon.py --target engine=unix:///run/engine.sock \
        --target dockerd=unix:///tmp/engine-ref-dockerd/docker.sock [--startup]

Measured per target (the daemons are the caller's; nothing here starts them, except --startup):
- API latency: HEAD /_ping, GET /version, GET /containers/json, GET /images/json over the unix socket
  (median and p90 of 200 requests on one kept-alive connection);
- log throughput: a busybox container writes 200 000 lines of 80 bytes to stdout with the default
  log driver: detached (start to exit, every line in the log by then), attached (streamed to
  `docker start -a` as well), and the time `docker logs` takes to read them back;
- layer throughput: `docker load` and `docker save` of a one-layer image of 128 MiB of incompressible
  data (MiB/s);
- with --startup: start-up latency, from exec to the first successful /_ping, of a fresh engined and a
  fresh reference dockerd, each on its own temp dirs (median of 5), stopped by PID afterwards.

Prints one table and writes benchmarks/results/daemon-<time>.{json,txt}.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent
IMAGE = "busybox:latest"
LOG_LINES = 200_000
LAYER_MIB = 128


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def docker(host: str, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", *args], env=env, capture_output=True, check=check, input=input)


def ensure_image(host: str) -> None:
    if docker(host, "image", "inspect", IMAGE, check=False).returncode == 0:
        return
    from engine_testkit.busybox import busybox_rootfs_tar

    docker(host, "import", "-c", 'CMD ["sh"]', "-", IMAGE, input=busybox_rootfs_tar())


def median_p90(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def api_latency(host: str, requests: int = 200) -> dict[str, tuple[float, float]]:
    conn = UnixHTTPConnection(host.removeprefix("unix://"))
    out = {}
    for method, path in (
        ("HEAD", "/_ping"),
        ("GET", "/v1.41/version"),
        ("GET", "/v1.41/containers/json"),
        ("GET", "/v1.41/images/json"),
    ):
        samples = []
        for i in range(requests + 10):
            start = time.perf_counter()
            conn.request(method, path)
            response = conn.getresponse()
            response.read()
            if i >= 10:  # warm-up
                samples.append((time.perf_counter() - start) * 1000)
        out[f"{method} {path.removeprefix('/v1.41')}"] = median_p90(samples)
    conn.close()
    return out


def log_throughput(host: str) -> dict[str, float]:
    """Detached: start to exit of a container whose 200 000 lines must all be in its log by then.
    Attached: the same output streamed to `docker start -a` (the attach path). Read: `docker logs`."""
    script = f"yes {'x' * 79} | head -n {LOG_LINES}"
    out: dict[str, float] = {}
    for mode in ("detached", "attached"):
        name = f"bench-logs-{mode}-{os.getpid()}"
        docker(host, "create", "--name", name, "--network", "none", IMAGE, "sh", "-c", script)
        try:
            start = time.perf_counter()
            if mode == "detached":
                docker(host, "start", name)
                docker(host, "wait", name)
            else:
                docker(host, "start", "-a", name)
            out[f"{mode} write lines/s"] = LOG_LINES / (time.perf_counter() - start)
            if mode == "detached":
                start = time.perf_counter()
                logs = docker(host, "logs", name)
                out["read lines/s"] = logs.stdout.count(b"\n") / (time.perf_counter() - start)
                out["lines in the log at exit"] = logs.stdout.count(b"\n")
        finally:
            docker(host, "rm", "-f", name, check=False)
    return out


def layer_archive(path: Path) -> None:
    """A docker-archive with one layer of LAYER_MIB of random data (incompressible, nothing to dedupe)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for i in range(LAYER_MIB // 16):
            data = os.urandom(16 << 20)
            info = tarfile.TarInfo(f"blob{i}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["bench-layer:1"], "Layers": ["layer/layer.tar"]}])
    with tarfile.open(path, "w") as tar:
        for name, data in (
            (config_name, config),
            ("layer/layer.tar", layer_bytes),
            ("manifest.json", manifest.encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def layer_throughput(host: str, archive: Path) -> dict[str, float]:
    docker(host, "rmi", "-f", "bench-layer:1", check=False)
    start = time.perf_counter()
    docker(host, "load", "-i", str(archive))
    load = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        docker(host, "save", "-o", f"{tmp}/out.tar", "bench-layer:1")
        save = time.perf_counter() - start
    docker(host, "rmi", "-f", "bench-layer:1")
    return {"load MiB/s": LAYER_MIB / load, "save MiB/s": LAYER_MIB / save}


def ping_ok(sock: str) -> bool:
    try:
        conn = UnixHTTPConnection(sock)
        conn.request("GET", "/_ping")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def startup_engine() -> float:
    from engine_testkit.daemon import EngineDaemon

    daemon = EngineDaemon(config={"storage-driver": "overlay2"})
    start = time.perf_counter()
    daemon.start(timeout=60)
    elapsed = time.perf_counter() - start
    daemon.stop()
    daemon.cleanup()
    return elapsed * 1000


def startup_dockerd() -> float:
    root = tempfile.mkdtemp(prefix="engine-bench-dockerd-", dir="/tmp")
    env = {**os.environ, "ROOT": root}
    start = time.perf_counter()
    subprocess.run([str(REPO / "scripts" / "reference-dockerd"), "start"], env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - start  # the script polls `docker version` every 0.1 s
    subprocess.run([str(REPO / "scripts" / "reference-dockerd"), "stop"], env=env, check=True, capture_output=True)
    return elapsed * 1000


def table(results: dict[str, dict[str, Any]]) -> str:
    labels = list(results)
    rows: list[tuple[str, list[str]]] = []
    keys = [k for k in results[labels[0]] if k != "server"]
    for key in keys:
        cells = []
        for label in labels:
            value = results[label].get(key)
            if isinstance(value, (list, tuple)):
                cells.append(f"{value[0]:.2f} / {value[1]:.2f}")
            elif isinstance(value, float):
                cells.append(f"{value:,.0f}" if value >= 100 else f"{value:.1f}")
            else:
                cells.append(str(value))
        rows.append((key, cells))
    width = max(len(k) for k, _ in rows) + 2
    cols = [max(len(label), *(len(c[i]) for _, c in rows)) + 2 for i, label in enumerate(labels)]
    lines = [" " * width + "".join(label.rjust(w) for label, w in zip(labels, cols, strict=True))]
    lines += [key.ljust(width) + "".join(c.rjust(w) for c, w in zip(cells, cols, strict=True)) for key, cells in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", default=[], help="label=DOCKER_HOST (repeatable)")
    parser.add_argument("--startup", action="store_true", help="also measure start-up of fresh engined/dockerd")
    args = parser.parse_args(argv)
    targets = dict(t.split("=", 1) for t in args.target) or {"engine": os.environ.get("DOCKER_HOST", "")}
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "layer.tar"
        layer_archive(archive)
        for label, host in targets.items():
            print(f"[{label}] {host}", file=sys.stderr)
            ensure_image(host)
            row: dict[str, Any] = {}
            for name, value in api_latency(host).items():
                row[f"API {name} ms (median / p90)"] = value
            row.update({f"logs {k}": v for k, v in log_throughput(host).items()})
            row.update({f"layer {k}": v for k, v in layer_throughput(host, archive).items()})
            results[label] = row
    if args.startup:
        starts = {"engine": [startup_engine() for _ in range(5)], "dockerd": [startup_dockerd() for _ in range(5)]}
        for label, samples in starts.items():
            results.setdefault(label, {k: "-" for k in next(iter(results.values()))})
            results[label]["start-up to first /_ping ms (median / p90)"] = median_p90(samples)
        for row in results.values():
            row.setdefault("start-up to first /_ping ms (median / p90)", "-")
    text = table(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"daemon-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"daemon-{stamp}.txt").write_text(text + "\n")
    print(f"saved to {RESULTS / f'daemon-{stamp}.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
