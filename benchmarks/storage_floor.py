"""The floor of a container start on btrfs and on zfs-fuse: the backend's own calls, without the driver.

    .venv/bin/python benchmarks/storage_floor.py [--runs 20]

A container start asks storage for two layers: the init layer made from the image and written (the
hostname), then the container's layer made from it. Whatever the driver does, on btrfs that is two
snapshot ioctls (each commits a transaction), and on zfs through the ``zfs`` command two
``zfs snapshot`` plus two ``zfs clone`` (each a process, a libzfs start and a sync task in the zfs
daemon). This measures those calls alone, on the same backends ``engine-bench storage`` makes (a
loop btrfs, a zfs-fuse pool on a sparse file), next to the overlay2 driver's whole container start in
the same run, so that the ratio to overlay2 a driver can reach at best is plain:

- btrfs: ``snapshot image``: BTRFS_IOC_SNAP_CREATE_V2 of a 1,000-file subvolume (btrfsutil);
  ``snapshot written``: of a snapshot just written to (the init layer: its dirty data is flushed
  first); ``start sequence``: both plus the write, as the btrfs driver's start does it.
- zfs-fuse: ``exec /bin/true``; ``zfs get name``: the least a zfs command costs;
  ``zfs snapshot``, ``zfs clone -o mountpoint=none``, ``zfs clone -o mountpoint=<dir>`` (mounts it),
  ``zfs set mountpoint=none`` (unmounts); ``start sequence``: snapshot + mounted clone, write,
  snapshot + mounted clone, as the zfs driver's start does it.

Medians and 90th percentiles in milliseconds. Writes benchmarks/results/storage-floor-<time>.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
FILES = 1000


def timed(runs: int, body: Callable[[int], object]) -> tuple[float, float]:
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        body(i)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.9) - 1)]


def fill(root: Path) -> None:
    for i in range(FILES):
        directory = root / f"d{i // 100}"
        directory.mkdir(exist_ok=True)
        (directory / f"f{i}").write_bytes(os.urandom(64))


def write_hostname(root: Path) -> None:
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "hostname").write_bytes(b"c\n")


def overlay2_start(runs: int) -> dict[str, tuple[float, float]]:
    from engine_testkit.storage_bench import StorageDriverBench, driver_home

    bench = StorageDriverBench()
    with driver_home("overlay2") as driver:
        samples = bench.bench_container_start(driver, runs)
    samples = sorted(s * 1000 for s in samples)
    return {"overlay2 driver: container start": (statistics.median(samples), samples[max(0, int(runs * 0.9) - 1)])}


def btrfs_floor(runs: int) -> dict[str, tuple[float, float]]:
    import btrfsutil

    from engine_testkit.backends import btrfs_loop

    out = {}
    with btrfs_loop(4 << 30) as mnt:
        image = mnt / "image"
        btrfsutil.create_subvolume(os.fspath(image))
        fill(image)
        os.sync()
        out["btrfs: snapshot image"] = timed(runs, lambda i: btrfsutil.create_snapshot(image, mnt / f"a{i}"))

        def written(i: int) -> None:
            btrfsutil.create_snapshot(mnt / f"a{i}", mnt / f"b{i}")

        for i in range(runs):
            write_hostname(mnt / f"a{i}")
        out["btrfs: snapshot written"] = timed(runs, written)

        def sequence(i: int) -> None:
            btrfsutil.create_snapshot(image, mnt / f"c{i}-init")
            write_hostname(mnt / f"c{i}-init")
            btrfsutil.create_snapshot(mnt / f"c{i}-init", mnt / f"c{i}")

        out["btrfs: start sequence (2 snapshots)"] = timed(runs, sequence)
        for path in sorted(mnt.iterdir(), reverse=True):
            btrfsutil.delete_subvolume(os.fspath(path))
    return out


def zfs_floor(runs: int) -> dict[str, tuple[float, float]]:
    from engine_testkit import backends
    from engine_testkit.backends import zfs_dataset, zfs_pool

    def zfs(*args: str) -> None:
        subprocess.run(["zfs", *args], check=True, capture_output=True, stdin=subprocess.DEVNULL)

    out = {}
    with zfs_pool(4 << 30) as pool, zfs_dataset(pool, "floor") as place:
        fs = f"{pool.name}/floor"
        zfs("create", "-o", f"mountpoint={place}/image", f"{fs}/image")
        fill(place / "image")
        out["exec /bin/true"] = timed(runs, lambda i: subprocess.run(["/bin/true"], check=True))
        out["zfs get name"] = timed(runs, lambda i: zfs("get", "-H", "-o", "value", "name", fs))
        out["zfs snapshot"] = timed(runs, lambda i: zfs("snapshot", f"{fs}/image@s{i}"))
        out["zfs clone -o mountpoint=none"] = timed(
            runs, lambda i: zfs("clone", "-o", "mountpoint=none", f"{fs}/image@s{i}", f"{fs}/n{i}")
        )
        out["zfs snapshot (again, for the next case)"] = timed(runs, lambda i: zfs("snapshot", f"{fs}/image@m{i}"))
        out["zfs clone -o mountpoint=<dir>"] = timed(
            runs, lambda i: zfs("clone", "-o", f"mountpoint={place}/m{i}", f"{fs}/image@m{i}", f"{fs}/m{i}")
        )
        out["zfs set mountpoint=none (unmount)"] = timed(runs, lambda i: zfs("set", "mountpoint=none", f"{fs}/m{i}"))

        def sequence(i: int) -> None:
            zfs("snapshot", f"{fs}/image@c{i}-init")
            zfs("clone", "-o", f"mountpoint={place}/c{i}-init", f"{fs}/image@c{i}-init", f"{fs}/c{i}-init")
            write_hostname(place / f"c{i}-init")
            zfs("snapshot", f"{fs}/c{i}-init@c{i}")
            zfs("clone", "-o", f"mountpoint={place}/c{i}", f"{fs}/c{i}-init@c{i}", f"{fs}/c{i}")

        out["zfs: start sequence (2 snapshots, 2 mounted clones)"] = timed(runs, sequence)
        backends._retry("zfs", "destroy", "-R", f"{fs}/image")  # the clones too; zfs-fuse may say busy
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (loop device, zfs-fuse)")
    load_before = os.getloadavg()
    rows: dict[str, tuple[float, float]] = {}
    for part in (overlay2_start, btrfs_floor, zfs_floor):
        print(f"storage-floor: {part.__name__} ...", file=sys.stderr, flush=True)
        rows.update(part(args.runs))
    load_after = os.getloadavg()
    width = max(len(k) for k in rows)
    lines = [
        f"# benchmarks/storage_floor.py --runs {args.runs}",
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, kernel {os.uname().release}, {os.cpu_count()} cores "
        f"shared with other jobs; load before {load_before[0]:.2f}, after {load_after[0]:.2f}",
        "# loop btrfs and zfs-fuse pool vdev are sparse files on /tmp (a tmpfs); image of 1,000 files of 64 bytes",
        f"{'call':<{width}}  median / p90 (ms)",
        f"{'-' * width}  -----------------",
    ]
    lines += [f"{name:<{width}}  {median:8.3f} / {p90:.3f}" for name, (median, p90) in rows.items()]
    text = "\n".join(lines)
    print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"storage-floor-{stamp}.txt").write_text(text + "\n")
    print(f"saved to {RESULTS}/storage-floor-{stamp}.txt", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
