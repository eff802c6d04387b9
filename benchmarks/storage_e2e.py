"""Container start end to end per storage driver: engine and the reference dockerd 20.10 side by side.

    .venv/bin/python benchmarks/storage_e2e.py [--driver btrfs --driver overlay2 --driver vfs] [--runs 15]

For each driver, one run makes a fresh loop btrfs (4 GiB sparse file, ``engine_testkit.backends``),
starts an engined (``"storage-driver": <driver>``) and the reference dockerd
(``scripts/reference-dockerd`` with ``STORAGE_DRIVER=<driver>``), both with their data-root on that
btrfs in separate subdirectories, imports the same two images into both (``busybox:latest`` from
Debian's busybox-static, and ``bench1000:latest``: the same rootfs plus 1,000 files of 64 bytes), and
times, alternating between the daemons run by run so that both see the same machine load:

- ``docker run --rm --network none busybox true``;
- ``docker run --rm --network none bench1000 true``;
- ``docker create --network none bench1000 true``: the storage half of a start (init and rw layers
  made; the container is removed outside the timing).

Wall time of the docker CLI command, in milliseconds (median and p90). Both daemons are stopped by
PID, the btrfs unmounted and its loop device detached afterwards.

Prints one table and writes benchmarks/results/storage-e2e-<time>.{json,txt}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
REFERENCE = REPO / "scripts" / "reference-dockerd"
BIG = "bench1000:latest"


def docker(host: str, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_CONTEXT", None)
    proc = subprocess.run(["docker", *args], env=env, capture_output=True, input=input)
    if check and proc.returncode:
        raise RuntimeError(f"docker {' '.join(args)} against {host}: {proc.stderr.decode(errors='replace')}")
    return proc


def load_images(host: str) -> None:
    from engine_testkit.busybox import busybox_rootfs_tar

    docker(host, "import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
    files = {f"usr/f{i:04d}": os.urandom(64) for i in range(1000)}
    docker(host, "import", "-c", 'CMD ["sh"]', "-", BIG, input=busybox_rootfs_tar(files))


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[max(0, int(len(ordered) * 0.9) - 1)],
        "n": len(ordered),
    }


def cases(host: str) -> dict[str, Callable[[], None]]:
    def run_busybox() -> None:
        docker(host, "run", "--rm", "--network", "none", "busybox:latest", "true")

    def run_big() -> None:
        docker(host, "run", "--rm", "--network", "none", BIG, "true")

    return {"run --rm busybox true": run_busybox, "run --rm bench1000 true": run_big}


def create_big(host: str) -> float:
    start = time.perf_counter()
    cid = docker(host, "create", "--network", "none", BIG, "true").stdout.decode().strip()
    elapsed = (time.perf_counter() - start) * 1000
    docker(host, "rm", cid)
    return elapsed


def measure(hosts: dict[str, str], runs: int, warmup: int = 2) -> dict[str, dict[str, dict[str, float]]]:
    """Every case, the daemons alternating run by run."""
    samples: dict[str, dict[str, list[float]]] = {label: {} for label in hosts}
    case_names = [*cases(next(iter(hosts.values()))), "create bench1000"]
    for case in case_names:
        for i in range(warmup + runs):
            for label, host in hosts.items():
                if case == "create bench1000":
                    elapsed = create_big(host)
                else:
                    start = time.perf_counter()
                    cases(host)[case]()
                    elapsed = (time.perf_counter() - start) * 1000
                if i >= warmup:
                    samples[label].setdefault(case, []).append(elapsed)
    return {label: {case: summary(s) for case, s in by_case.items()} for label, by_case in samples.items()}


def reference_env(root: Path, data_root: Path, driver: str) -> dict[str, str]:
    return {**os.environ, "ROOT": str(root), "DATA_ROOT": str(data_root), "STORAGE_DRIVER": driver}


def bench_driver(driver: str, runs: int) -> dict[str, Any]:
    from engine_testkit.backends import btrfs_loop
    from engine_testkit.daemon import EngineDaemon

    with btrfs_loop(4 << 30) as mnt:
        engine = EngineDaemon(config={"storage-driver": driver, "data-root": str(mnt / "engine")})
        ref_root = Path(tempfile.mkdtemp(prefix="s-e2e-ref-", dir="/tmp"))
        env = reference_env(ref_root, mnt / "dockerd", driver)
        try:
            engine.start(timeout=60)
            proc = subprocess.run([str(REFERENCE), "start"], env=env, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"reference dockerd did not start: {proc.stderr}")
            hosts = {"engine": engine.host, "dockerd": proc.stdout.strip()}
            for label, host in hosts.items():
                load_images(host)
                info = docker(host, "info", "--format", "{{.Driver}} {{.ServerVersion}}").stdout.decode().strip()
                print(f"storage-e2e: {driver}: {label} is {info}", file=sys.stderr, flush=True)
                if not info.startswith(driver):
                    raise RuntimeError(f"{label} runs {info}, not {driver}")
            return measure(hosts, runs)
        finally:
            subprocess.run([str(REFERENCE), "stop"], env=env, capture_output=True)  # kills dockerd by its PID
            engine.stop()
            engine.cleanup()


def table(results: dict[str, dict[str, Any]]) -> str:
    header = ["case", "driver", "engine median / p90 (ms)", "dockerd 20.10 median / p90 (ms)", "engine/dockerd"]
    rows = [header]
    for driver, by_label in results.items():
        for case, eng in by_label["engine"].items():
            ref = by_label["dockerd"][case]
            rows.append(
                [
                    case,
                    driver,
                    f"{eng['median']:.1f} / {eng['p90']:.1f}",
                    f"{ref['median']:.1f} / {ref['p90']:.1f}",
                    f"{eng['median'] / ref['median']:.2f}x",
                ]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--driver", action="append", help="storage driver (repeatable; default btrfs, overlay2, vfs)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per case and daemon")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (loop device, daemons)")
    drivers = args.driver or ["btrfs", "overlay2", "vfs"]
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    for driver in drivers:
        print(f"storage-e2e: {driver} ...", file=sys.stderr, flush=True)
        results[driver] = bench_driver(driver, args.runs)
    load_after = os.getloadavg()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    head = (
        f"# benchmarks/storage_e2e.py --runs {args.runs} {' '.join('--driver ' + d for d in drivers)}\n"
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, kernel {os.uname().release}, "
        f"{os.cpu_count()} cores shared with other jobs; load before {load_before[0]:.2f}, after {load_after[0]:.2f}\n"
        "# engined and dockerd 20.10 each with its data-root on the same 4 GiB loop btrfs (sparse file on\n"
        "# /tmp, a tmpfs), separate subdirectories; runs alternate between the two daemons\n"
    )
    text = head + table(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    meta = {"args": vars(args), "time": stamp, "uname": os.uname().release, "load": [load_before, load_after]}
    (RESULTS / f"storage-e2e-{stamp}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (RESULTS / f"storage-e2e-{stamp}.txt").write_text(text + "\n")
    print(f"saved to {RESULTS}/storage-e2e-{stamp}.txt", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
