"""Garbage bodies against a daemon (issue 14, item 2): 200 MB of random bytes to POST /build and POST
/images/load while another client polls GET /containers/json.

    .venv/bin/python benchmarks/reliability_garbage.py --target engine=unix:///tmp/x/engine.sock \
        [--target dockerd=unix:///tmp/ref/docker.sock] [--pid engine=1234] [--mb 200]

Without --target it starts its own engined (temp dirs, vfs storage) and stops it by PID afterwards.

Printed per target: the time until each garbage upload is answered and the answer's message; the
GET /containers/json latency p50/p99/max before and during the uploads; the daemon's RSS before, at
its peak during the uploads and afterwards (with --pid, or the engined this script started).
The issue's goal: answered within a second, p99 under 100 ms, RSS growth under 50 MB.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def get_latency(path: str) -> float:
    started = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(path)
        sock.sendall(b"GET /v1.41/containers/json HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n")
        while sock.recv(65536):
            pass
    return time.monotonic() - started


def upload(path: str, url: str, megabytes: int, result: dict) -> None:
    block = os.urandom(1 << 20)
    started = time.monotonic()
    answer = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(120)
        sock.connect(path)
        sock.sendall(
            f"POST {url} HTTP/1.1\r\nHost: e\r\nContent-Type: application/x-tar\r\n"
            f"Content-Length: {megabytes << 20}\r\n\r\n".encode()
        )

        def read() -> None:
            nonlocal answer
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
                    if "answered" not in result:
                        result["answered"] = time.monotonic() - started
            except OSError:
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            for _ in range(megabytes):
                sock.sendall(block)
        except OSError:
            pass
        result["sent"] = time.monotonic() - started
        reader.join(120)
    head, _, body = answer.partition(b"\r\n\r\n")
    result["status"] = head.split(b" ", 2)[1].decode() if head else "none"
    result["message"] = body[-200:].decode(errors="replace").strip()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(name: str, sock_path: str, pid: int | None, megabytes: int) -> None:
    baseline = [get_latency(sock_path) for _ in range(100)]
    rss_before = rss_mib(pid)
    results: dict[str, dict] = {"/v1.41/build": {}, "/v1.41/images/load": {}}
    threads = [threading.Thread(target=upload, args=(sock_path, url, megabytes, res)) for url, res in results.items()]
    for thread in threads:
        thread.start()
    during: list[float] = []
    peak = rss_before
    while any(t.is_alive() for t in threads):
        during.append(get_latency(sock_path))
        rss = rss_mib(pid)
        if rss is not None and peak is not None:
            peak = max(peak, rss)
        time.sleep(0.01)
    time.sleep(1)
    rss_after = rss_mib(pid)
    print(f"== {name}")
    for url, res in results.items():
        print(
            f"  {url:20} answered in {res.get('answered', float('nan')):.2f}s (body sent in "
            f"{res.get('sent', float('nan')):.2f}s) status {res.get('status')}: {res.get('message', '')[:100]}"
        )
    ms = 1000
    print(
        f"  GET /containers/json before: p50 {statistics.median(baseline) * ms:.1f} ms, p99 "
        f"{percentile(baseline, 0.99) * ms:.1f} ms"
    )
    if during:
        print(
            f"  GET /containers/json during ({len(during)} requests): p50 {statistics.median(during) * ms:.1f} ms, "
            f"p99 {percentile(during, 0.99) * ms:.1f} ms, max {max(during) * ms:.1f} ms"
        )
    if rss_before is not None:
        print(f"  RSS before {rss_before:.0f} MiB, peak {peak:.0f} MiB, after {rss_after:.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", default=[], help="name=unix:///path.sock")
    parser.add_argument("--pid", action="append", default=[], help="name=pid of that daemon (for RSS)")
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    pids = {k: int(v) for k, v in (p.split("=", 1) for p in args.pid)}
    if args.target:
        for target in args.target:
            name, _, url = target.partition("=")
            measure(name, url.removeprefix("unix://"), pids.get(name), args.mb)
        return 0
    sys.path.insert(0, str(REPO / "testkit" / "src"))
    from engine_testkit.daemon import EngineDaemon

    with EngineDaemon(config={"storage-driver": "vfs"}) as daemon:
        assert daemon.proc is not None
        measure("engine", str(daemon.socket), daemon.proc.pid, args.mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
