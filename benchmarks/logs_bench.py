"""Container logging end to end, engine and the reference dockerd 20.10 side by side in one run.

    .venv/bin/python benchmarks/logs_bench.py [--short 1000000] [--long 20000] [--long-size 4096]
        [--runs 3] [--driver json-file --driver local ...] [--no-reference]

The script starts what it measures and stops it when done: an engined of its own
(``engine_testkit.daemon.EngineDaemon``: temp socket, data-root, exec-root; stopped by its PID) and,
unless ``--no-reference``, dockerd 20.10 through ``scripts/reference-dockerd start`` with a ROOT of
its own (stopped with the script's ``stop``, which ends that dockerd by its pidfile). Each daemon
gets ``busybox:latest`` from Debian's busybox-static.

Per log driver (json-file and local; syslog and journald when engine has their plugins installed,
else skipped with the reason) and per daemon, median of ``--runs``. syslog writes over TCP to a
loopback server of the script that reads and discards. journald: the script starts a standalone
systemd-journald in a private mount namespace (tmpfs on /run/systemd, /run/log and
/var/log/journal there; rate limiting off, volatile storage: see ``journald_namespace``), and a
second engined and dockerd run inside it (``nsenter --mount``) for that driver only; all of it is
stopped by PID (the daemons first), and the namespace's mounts go with it.

- ``short``: a container writing ``--short`` lines of 2 bytes (``yes | head -n N``, busybox);
- ``long``: a container writing ``--long`` lines of ``--long-size`` bytes (``yes <x...> | head``);
  each from ``docker run -d`` until ``docker wait`` returns (the daemon has stored the output
  then), checked with ``docker logs | wc -l``: lines/s and MB/s of container output. The cost of
  an empty container (``true``, same path) is shown as ``start+wait of true`` and included in
  the figures;
- ``read``: ``docker logs`` of the short and the long container to a pipe that discards it:
  lines/s and MB/s.

Prints one table and writes benchmarks/results/logs-<time>.{json,txt}. The machine may be shared:
the figures are what one run measured then, nothing more.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from containers import docker, ensure_image  # the sibling benchmark's CLI helpers

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
MB = 1_000_000


# -- daemons --------------------------------------------------------------------------------------


@contextmanager
def engine_daemon(prefix: list[str] | None = None) -> Iterator[str]:
    """An engined of the script's own; ``prefix`` (nsenter ...) runs it in another mount namespace
    (nsenter execs engined, so the PID the daemon is stopped by stays engined's)."""
    from engine_testkit.daemon import EngineDaemon

    class Daemon(EngineDaemon):
        def command(self) -> list[str]:
            return [*(prefix or []), *super().command()]

    daemon = Daemon(config={"storage-driver": "overlay2", "bridge": "none", "log-level": "warn"})
    daemon.start()
    try:
        yield daemon.host
    finally:
        daemon.stop()
        daemon.cleanup()


@contextmanager
def reference_dockerd(prefix: list[str] | None = None) -> Iterator[str]:
    """dockerd 20.10 through scripts/reference-dockerd, under a ROOT only this run uses; ``prefix``
    (nsenter ...) starts it, and its own containerd, in another mount namespace, and stops it
    there (the script's stop unmounts what it finds in its own namespace's mount table)."""
    root = tempfile.mkdtemp(prefix="engine-logs-bench-dockerd-", dir="/tmp")
    env = {**os.environ, "ROOT": root, "PATH": os.environ.get("PATH", "") + ":/usr/sbin"}
    script = [*(prefix or []), str(REPO / "scripts" / "reference-dockerd")]
    started = subprocess.run([*script, "start"], env=env, capture_output=True, text=True)
    try:
        if started.returncode != 0:
            raise RuntimeError(f"reference dockerd did not start: {started.stderr.strip()}")
        yield started.stdout.strip()
    finally:
        subprocess.run([*script, "stop"], env=env, check=False)


JOURNALD = "/lib/systemd/systemd-journald"  # never with arguments: the first one names a journal namespace
#: the benchmark's journald: in memory, no rate limit (its default, 10000 messages per 30 s per
#: sender, would drop most lines of both daemons), room for the largest run
JOURNALD_CONF = """[Journal]
Storage=volatile
RateLimitIntervalSec=0
RateLimitBurst=0
RuntimeMaxUse=4G
RuntimeMaxFileSize=256M
"""


@contextmanager
def journald_namespace() -> Iterator[list[str]]:
    """A standalone systemd-journald in a private mount namespace (BACKENDS.md, journald): tmpfs
    on /run/systemd, /run/log and /var/log/journal and the config above bound over
    /etc/systemd/journald.conf, in that namespace only. Yields the ``nsenter`` prefix that runs a
    program inside it; journald is stopped by its PID at the end (the namespace ends with it)."""
    for path in ("/run/systemd", "/run/log", "/var/log/journal", "/etc/systemd/journald.conf"):
        if not os.path.exists(path):  # a mount point is needed; creating it would touch the host
            raise RuntimeError(f"{path} is missing: cannot set up the benchmark's journald")
    workdir = Path(tempfile.mkdtemp(prefix="engine-logs-bench-journald-", dir="/tmp"))
    conf = workdir / "journald.conf"
    conf.write_text(JOURNALD_CONF)
    setup = (
        "mount -t tmpfs -o mode=755 tmpfs /run/systemd && mount -t tmpfs -o mode=755 tmpfs /run/log && "
        "mount -t tmpfs -o mode=2755 tmpfs /var/log/journal && "
        f"mount --bind {conf} /etc/systemd/journald.conf && exec {JOURNALD}"
    )
    with open(workdir / "journald.log", "wb") as log:
        proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", setup],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    try:
        socket_path = f"/proc/{proc.pid}/root/run/systemd/journal/socket"
        for _ in range(400):
            if proc.poll() is not None:
                raise RuntimeError(f"journald exited: {(workdir / 'journald.log').read_text(errors='replace')}")
            if os.path.exists(socket_path):
                break
            time.sleep(0.025)
        else:
            raise RuntimeError("journald did not come up")
        yield ["nsenter", f"--mount=/proc/{proc.pid}/ns/mnt"]
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for child in workdir.iterdir():
            child.unlink()
        workdir.rmdir()


# -- log targets for the drivers that need one -----------------------------------------------------


@contextmanager
def discarding_tcp_server() -> Iterator[str]:
    """A loopback TCP server reading and discarding everything (a syslog server that keeps up)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def drain(conn: socket.socket) -> None:
        with conn:
            while conn.recv(1 << 20):
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        host, port = server.getsockname()[:2]
        yield f"tcp://{host}:{port}"
    finally:
        stop.set()
        thread.join()
        server.close()


def engine_log_drivers() -> set[str]:
    return {ep.name for ep in entry_points(group="engine.log_drivers")}


def driver_setup(name: str, installed: set[str]) -> tuple[list[str] | None, str]:
    """(``--log-opt`` arguments, or None to skip; the reason for a skip)."""
    if name not in installed:
        return None, f"engine-plugin-{name} not installed"
    if name == "journald" and not os.access(JOURNALD, os.X_OK):
        return None, f"no {JOURNALD} to start"
    return [], ""


# -- measurements ---------------------------------------------------------------------------------


def run_to_exit(host: str, log_args: list[str], script: str) -> tuple[float, str]:
    """Seconds from ``docker run -d`` until ``docker wait`` returns, and the container's id."""
    started = time.perf_counter()
    cid = (
        docker(host, "run", "-d", "--network", "none", *log_args, "busybox", "sh", "-c", script).stdout.decode().strip()
    )
    code = docker(host, "wait", cid).stdout.decode().strip()
    elapsed = time.perf_counter() - started
    if code != "0":
        raise RuntimeError(f"benchmark container exited {code}")
    return elapsed, cid


def read_back(host: str, cid: str) -> tuple[float, int, int]:
    """Seconds for ``docker logs`` of the whole log, and the lines and bytes it gave."""
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_CONTEXT", None)
    started = time.perf_counter()
    proc = subprocess.Popen(["docker", "logs", cid], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines = size = 0
    while chunk := proc.stdout.read(1 << 20):
        lines += chunk.count(b"\n")
        size += len(chunk)
    proc.wait()
    return time.perf_counter() - started, lines, size


def median_of(runs: int, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
    samples = [fn() for _ in range(runs)]
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def workload(host: str, log_args: list[str], lines: int, size: int, runs: int) -> dict[str, float]:
    payload = "y" if size <= 2 else "x" * (size - 1)
    script = f"yes {payload} | head -n {lines}"

    def once() -> dict[str, float]:
        elapsed, cid = run_to_exit(host, log_args, script)
        try:
            read_s, got, got_bytes = read_back(host, cid)
        finally:
            docker(host, "rm", "-f", cid, check=False)
        return {
            "write_s": elapsed,
            "write_lines_per_s": lines / elapsed,
            "write_mb_per_s": lines * size / elapsed / MB,
            "read_s": read_s,
            "read_lines_per_s": got / read_s,
            "read_mb_per_s": got_bytes / read_s / MB,
            "lines_read": got,
            "lost": lines - got,
        }

    return median_of(runs, once)


def baseline(host: str, runs: int) -> float:
    samples = []
    for _ in range(runs + 1):
        elapsed, cid = run_to_exit(host, [], "true")
        docker(host, "rm", "-f", cid, check=False)
        samples.append(elapsed)
    return statistics.median(samples[1:])


def measure(label: str, host: str, drivers: list[str], installed: set[str], args: argparse.Namespace) -> dict[str, Any]:
    ensure_image(host)
    version = docker(host, "version", "-f", "{{.Server.Version}}").stdout.decode().strip()
    print(f"[{label}] {host} (server {version})", file=sys.stderr)
    result: dict[str, Any] = {"host": host, "server_version": version, "baseline_s": baseline(host, args.runs)}
    with discarding_tcp_server() as syslog_address:
        for name in drivers:
            extra, reason = driver_setup(name, installed)
            if extra is None:
                result[name] = {"skipped": reason}
                print(f"[{label}] {name}: skipped ({reason})", file=sys.stderr)
                continue
            log_args = ["--log-driver", name, *extra]
            if name == "syslog":
                log_args += ["--log-opt", f"syslog-address={syslog_address}"]
            result[name] = {
                "short": workload(host, log_args, args.short, 2, args.runs),
                "long": workload(host, log_args, args.long, args.long_size, args.runs),
            }
            short, long = result[name]["short"], result[name]["long"]
            print(
                f"[{label}] {name}: short {short['write_lines_per_s']:.0f} lines/s, "
                f"long {long['write_mb_per_s']:.1f} MB/s, read {short['read_lines_per_s']:.0f} lines/s",
                file=sys.stderr,
            )
    return result


# -- output ---------------------------------------------------------------------------------------


def table(results: dict[str, dict[str, Any]], drivers: list[str], args: argparse.Namespace) -> str:
    labels = list(results)
    rows: list[tuple[str, list[str]]] = [
        ("start+wait of `true`, ms", [f"{results[label]['baseline_s'] * 1000:.0f}" for label in labels])
    ]
    figures = [
        ("short", "write_lines_per_s", f"{args.short} x 2 B lines written, lines/s", "{:,.0f}"),
        ("short", "write_mb_per_s", "  same, MB/s", "{:.2f}"),
        ("long", "write_lines_per_s", f"{args.long} x {args.long_size} B lines written, lines/s", "{:,.0f}"),
        ("long", "write_mb_per_s", "  same, MB/s", "{:.1f}"),
        ("short", "read_lines_per_s", "docker logs of the short lines, lines/s", "{:,.0f}"),
        ("short", "read_mb_per_s", "  same, MB/s", "{:.2f}"),
        ("long", "read_lines_per_s", "docker logs of the long lines, lines/s", "{:,.0f}"),
        ("long", "read_mb_per_s", "  same, MB/s", "{:.1f}"),
        ("short", "lost", "short lines missing from docker logs", "{:.0f}"),
        ("long", "lost", "long lines missing from docker logs", "{:.0f}"),
    ]
    for name in drivers:
        reasons = {results[label].get(name, {}).get("skipped") for label in labels}
        if None not in reasons:
            rows.append((f"[{name}] skipped: {'; '.join(sorted(reasons))}", ["" for _ in labels]))
            continue
        rows.append((f"[{name}]", ["" for _ in labels]))
        for part, key, title, fmt in figures:
            cells = []
            for label in labels:
                entry = results[label].get(name, {})
                if "skipped" in entry:
                    cells.append("skipped")
                else:
                    try:
                        cells.append(fmt.format(entry[part][key]))
                    except KeyError:
                        cells.append("-")
            rows.append((title, cells))
    width = max(len(title) for title, _ in rows if not title.startswith("[")) + 2
    lines = ["".ljust(width) + "".join(label.rjust(18) for label in labels)]
    lines += [title.ljust(width) + "".join(cell.rjust(18) for cell in cells) for title, cells in rows]
    return "\n".join(lines)


def merge(into: dict[str, Any], measured: dict[str, Any]) -> None:
    """A daemon's figures of another set of drivers; the host, version and ``true`` baseline stay
    those of the first daemon (the one outside any namespace)."""
    for key, value in measured.items():
        into.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=1_000_000, help="short lines per container")
    parser.add_argument("--long", type=int, default=20_000, help="long lines per container")
    parser.add_argument("--long-size", type=int, default=4096, help="bytes per long line, newline included")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--driver", action="append", default=[], help="log driver (repeatable)")
    parser.add_argument("--no-reference", action="store_true", help="engine only, no dockerd")
    args = parser.parse_args(argv)
    drivers = args.driver or ["json-file", "local", "syslog", "journald"]
    installed = engine_log_drivers()
    results: dict[str, dict[str, Any]] = {"engine": {}}
    if not args.no_reference:
        results["dockerd 20.10"] = {}
    # journald: both daemons inside the mount namespace of a journald of the script's own
    outside = [name for name in drivers if name != "journald"]
    inside = [name for name in drivers if name == "journald"]
    if inside and driver_setup("journald", installed)[0] is None:
        outside, inside = drivers, []  # measure() reports the skip
    for names, namespace in ((outside, None), (inside, journald_namespace)):
        if not names:
            continue
        with namespace() if namespace else nullcontext([]) as prefix:
            with engine_daemon(prefix) as host:
                merge(results["engine"], measure("engine", host, names, installed, args))
            if not args.no_reference:
                # dockerd has every driver built in: it runs what engine could run, for the comparison
                with reference_dockerd(prefix) as host:
                    merge(results["dockerd 20.10"], measure("dockerd", host, names, installed, args))
    load = os.getloadavg()
    text = table(results, drivers, args) + (
        f"\n{os.cpu_count()} CPUs, load average {load[0]:.1f} at the end of the run: a shared machine, other"
        " sessions ran their own work meanwhile; the figures are one run's, not a steady state."
    )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    meta = {
        "args": vars(args),
        "time": stamp,
        "uname": os.uname().release,
        "ncpu": os.cpu_count(),
        "loadavg_at_end": load,
        "note": "shared machine: other sessions ran their own work during this run",
    }
    (RESULTS / f"logs-{stamp}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (RESULTS / f"logs-{stamp}.txt").write_text(text + "\n")
    print(f"saved to {RESULTS}/logs-{stamp}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
