"""``engine-bench``: driver benchmarks from the command line.

``engine-bench storage [--driver NAME ...] [--repeat N] [--files N] [--home NAME=DIR ...]`` runs the
graphbench cases (:mod:`engine_testkit.storage_bench`) for each driver (default: every installed
storage driver) and prints one table: per case and driver, the median and 90th percentile in
milliseconds. btrfs and zfs need their own filesystem: unless ``--home btrfs=DIR`` names a place on
one, the bench makes it (a loop-mounted btrfs; zfs-fuse and a pool on a sparse file, see
:mod:`engine_testkit.backends`) and takes it down afterwards.

``engine-bench logs [--driver NAME ...] [--lines N] [--size BYTES]`` measures log drivers
(:mod:`engine_testkit.logs_bench`): lines/s and MB/s written, through the copier, read back.

``engine-bench network --driver NAME [...] [--repeat N]`` measures network drivers alone through the
public SDK (:class:`engine_testkit.network_bench.NetworkDriverBench`, as root): endpoint setup and
teardown, container-to-container TCP throughput.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TextIO

from engine.registry import STORAGE, DriverRegistry
from engine_testkit import backends, logs_bench
from engine_testkit.storage_bench import StorageDriverBench, Unsupported, summarize


@contextmanager
def bench_place(name: str, homes: Mapping[str, Path]) -> Iterator[Path | None]:
    """Where ``name``'s temp homes go: a ``--home`` given, a backend made for the run, or None (/tmp)."""
    if name in homes:
        yield homes[name]
        return
    with ExitStack() as stack:
        try:
            if name == "btrfs":
                yield stack.enter_context(backends.btrfs_loop(4 << 30))
                return
            if name == "zfs":
                pool = stack.enter_context(backends.zfs_pool(4 << 30))
                yield stack.enter_context(backends.zfs_dataset(pool, "bench"))
                return
        except backends.BackendUnavailable as exc:
            raise Unsupported(f"no {name} backend: {exc}") from None
        yield None


def storage_table(
    drivers: Sequence[str],
    repeat: int,
    files: int,
    log: TextIO = sys.stderr,
    bench: StorageDriverBench | None = None,
    homes: Mapping[str, Path] | None = None,
) -> str:
    """Run the storage benchmarks for ``drivers``; returns the table (unsupported drivers noted below it)."""
    if bench is None:
        bench = StorageDriverBench()
        bench.diff_sizes = ((10, 10), (10, files))  # type: ignore[misc]
    results: dict[str, dict[str, list[float]]] = {}
    skipped: dict[str, str] = {}
    for name in drivers:
        print(f"engine-bench: storage driver {name} ...", file=log, flush=True)
        try:
            with bench_place(name, homes or {}) as place:
                results[name] = bench.run(repeat=repeat, name=name, tmp_root=place)
        except Unsupported as exc:
            skipped[name] = str(exc)
    cases = [case for case, _ in bench.cases()]
    measured = [name for name in drivers if name in results]
    header = ["case"] + [f"{name} median / p90 (ms)" for name in measured]
    rows = [header]
    for case in cases:
        row = [case]
        for name in measured:
            median, p90 = summarize(results[name][case])
            row.append(f"{median:.3f} / {p90:.3f}")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"({repeat} runs per case; diff-N over the parent; temp homes in $ENGINE_BENCH_TMP or /tmp)")
    for name, reason in skipped.items():
        lines.append(f"{name}: skipped, not supported here: {reason}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engine-bench", description="engine driver benchmarks")
    sub = parser.add_subparsers(dest="kind", required=True)
    storage = sub.add_parser("storage", help="storage drivers: moby's graphbench cases")
    storage.add_argument("--driver", action="append", help="driver name (repeatable; default: all installed)")
    storage.add_argument("--repeat", type=int, default=10, help="runs per case (default 10)")
    storage.add_argument("--files", type=int, default=1000, help="top file count of the big diff-N case")
    storage.add_argument(
        "--home",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="run driver NAME's homes below DIR (btrfs/zfs: a place on that filesystem; default: made for the run)",
    )
    logs = sub.add_parser("logs", help="log drivers: write, copier, read, tail and follow")
    logs_bench.add_arguments(logs)
    network = sub.add_parser("network", help="network drivers: endpoint setup/teardown, c2c throughput (root)")
    network.add_argument("--driver", action="append", required=True, help="driver name (repeatable)")
    network.add_argument("--repeat", type=int, default=10, help="endpoints per driver (default 10)")
    args = parser.parse_args(argv)
    if args.kind == "network":
        from engine_testkit import network_bench

        print(network_bench.sdk_table(args.driver, max(1, args.repeat)))
        return 0
    if args.kind == "logs":
        return logs_bench.run(args)
    if args.kind == "storage":
        drivers = args.driver or DriverRegistry(STORAGE).names()
        homes = {}
        for item in args.home:
            name, sep, place = item.partition("=")
            if not sep or not place:
                parser.error(f"--home wants NAME=DIR, not {item!r}")
            homes[name] = Path(place)
        print(storage_table(drivers, max(1, args.repeat), args.files, homes=homes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
