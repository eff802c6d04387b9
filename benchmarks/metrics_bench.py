"""What a ``/metrics`` scrape costs, side by side for several daemons (engine, a reference dockerd).

    .venv/bin/python benchmarks/metrics_bench.py \
        --target engine=unix:///run/engine.sock,http://127.0.0.1:9323/metrics \
        [--target dockerd=unix:///tmp/engine-ref-dockerd/docker.sock,http://127.0.0.1:9324/metrics] \
        [--containers 0,20,100]

The daemons are the caller's (started with ``metrics-addr``); nothing here starts them. Per target and
per count of running containers (busybox ``sleep``, ``--network none`` so that any daemon runs them,
made here and removed by name afterwards): the scrape time (median and p90 of 30 scrapes, one after
the other over loopback), the body's size and its number of samples. engine reads per-container
figures at scrape time (at most 500 containers), so its scrape grows with the containers; dockerd
20.10 has no per-container families. Benchmarks are not tests: figures only.

Prints one table and writes benchmarks/results/metrics-<time>.{json,txt}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
SCRAPES = 30
PREFIX = "metrics-bench-"


def docker(host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, check=check)


def scrape(url: str) -> tuple[float, bytes]:
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    start = time.perf_counter()
    with no_proxy.open(url, timeout=60) as response:
        body = response.read()
    return (time.perf_counter() - start) * 1000, body


def measure(url: str) -> dict[str, Any]:
    scrape(url)  # warm up (first-time imports, connection set-up)
    samples, body = [], b""
    for _ in range(SCRAPES):
        ms, body = scrape(url)
        samples.append(ms)
    samples.sort()
    lines = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
    return {
        "scrape ms (median / p90)": (statistics.median(samples), samples[int(len(samples) * 0.9)]),
        "body KiB": len(body) / 1024,
        "samples": len(lines),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", required=True, help="label=DOCKER_HOST,METRICS_URL")
    parser.add_argument("--containers", default="0,20,100", help="running container counts to measure at")
    parser.add_argument("--image", default="busybox:latest")
    args = parser.parse_args(argv)
    counts = sorted(int(n) for n in args.containers.split(","))
    results: dict[str, dict[str, Any]] = {}
    for target in args.target:
        label, _, rest = target.partition("=")
        host, _, url = rest.partition(",")
        row: dict[str, Any] = {}
        running: list[str] = []
        try:
            for count in counts:
                while len(running) < count:
                    name = f"{PREFIX}{len(running)}"
                    docker(host, "run", "-d", "--name", name, "--network", "none", args.image, "sleep", "3600")
                    running.append(name)
                print(f"[{label}] {count} containers", file=sys.stderr)
                for key, value in measure(url).items():
                    row[f"{count} containers: {key}"] = value
        finally:
            if running:
                docker(host, "rm", "-f", *running, check=False)
        results[label] = row
    text = table(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    load = os.getloadavg()[0]
    (RESULTS / f"metrics-{stamp}.json").write_text(json.dumps({"load1": load, "results": results}, indent=2) + "\n")
    (RESULTS / f"metrics-{stamp}.txt").write_text(f"load average (1 min) at the end: {load:.1f}\n{text}\n")
    print(f"saved to {RESULTS / f'metrics-{stamp}.json'}", file=sys.stderr)
    return 0


def table(results: dict[str, dict[str, Any]]) -> str:
    labels = list(results)
    keys = list(dict.fromkeys(k for row in results.values() for k in row))
    rows = []
    for key in keys:
        cells = []
        for label in labels:
            value = results[label].get(key, "-")
            if isinstance(value, tuple):
                cells.append(f"{value[0]:.1f} / {value[1]:.1f}")
            elif isinstance(value, float):
                cells.append(f"{value:.1f}")
            else:
                cells.append(str(value))
        rows.append((key, cells))
    width = max(len(k) for k, _ in rows) + 2
    cols = [max(len(label), *(len(c[i]) for _, c in rows)) + 2 for i, label in enumerate(labels)]
    lines = [" " * width + "".join(label.rjust(w) for label, w in zip(labels, cols, strict=True))]
    lines += [key.ljust(width) + "".join(c.rjust(w) for c, w in zip(cells, cols, strict=True)) for key, cells in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
