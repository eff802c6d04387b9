"""Published ports: host port allocation (dockerd's portallocator) and the engine-proxy processes.

A binding with no host IP is published on ``0.0.0.0`` and, when the host has IPv6, on ``::``
(dockerd 20.10 shows both in ``docker port``). The daemon binds the listening sockets itself:
a port engine already handed out fails with dockerd's "Bind for 0.0.0.0:8080 failed: port is
already allocated"; a port some other program holds fails with docker-proxy's "Error starting
userland proxy: listen tcp4 0.0.0.0:8080: bind: address already in use". The sockets are then
inherited by one engine-proxy per published port, started in its own session so it outlives
a daemon restart; its pid and start time are recorded so a restarted daemon adopts it (or
kills a stray one) without ever signalling a recycled pid.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError

log = logging.getLogger(__name__)

PROXY_SCRIPT = Path(__file__).with_name("proxy.py")
#: dockerd's dynamic range on kernels whose ip_local_port_range ends at 60999
DYNAMIC_RANGE = (49153, 60999)


class PortAllocated(EngineError):
    def __init__(self, host_ip: str, port: int) -> None:
        super().__init__(f"Bind for {host_ip}:{port} failed: port is already allocated")


class ProxyStartError(EngineError):
    pass


def host_has_ipv6() -> bool:
    return Path("/proc/net/if_inet6").exists() and socket.has_ipv6


@dataclass
class Bound:
    """One published port as bound: the address users see, and the sockets still held."""

    proto: str
    host_ip: str  # "0.0.0.0", "::", or the address the user gave
    host_port: int
    sockets: list[socket.socket]


class PortAllocator:
    """Host ports engine handed out, per (proto, host ip); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken: set[tuple[str, str, int]] = set()

    def reserve(self, proto: str, host_ip: str, port: int) -> None:
        with self._lock:
            key = (proto, host_ip, port)
            if key in self._taken:
                raise PortAllocated(host_ip, port)
            self._taken.add(key)

    def release(self, proto: str, host_ip: str, port: int) -> None:
        with self._lock:
            self._taken.discard((proto, host_ip, port))

    def taken(self, proto: str, host_ip: str, port: int) -> bool:
        with self._lock:
            return (proto, host_ip, port) in self._taken


def _bind(proto: str, host_ip: str, port: int, listen: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host_ip, port))
        if listen and kind == socket.SOCK_STREAM:
            sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_error(proto: str, host_ip: str, port: int, exc: OSError) -> ProxyStartError:
    fam = "6" if ":" in host_ip else "4"
    shown = f"[{host_ip}]" if ":" in host_ip else host_ip
    reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc)).lower()
    return ProxyStartError(f"Error starting userland proxy: listen {proto}{fam} {shown}:{port}: bind: {reason}")


def bind_published(
    allocator: PortAllocator,
    proto: str,
    host_ips: list[str],
    port_start: int,
    port_end: int,
    listen: bool,
) -> list[Bound]:
    """Reserve and bind one host port on every address of ``host_ips`` (the same port on all).

    ``port_start == 0`` picks a dynamic port; a range picks its first port free everywhere.
    """
    if port_start == 0:
        candidates = range(DYNAMIC_RANGE[0], DYNAMIC_RANGE[1] + 1)
        explicit = False
    elif port_end:
        candidates = range(port_start, port_end + 1)
        explicit = False
    else:
        candidates = range(port_start, port_start + 1)
        explicit = True
    last_error: EngineError | None = None
    for port in candidates:
        bound: list[Bound] = []
        try:
            for ip in host_ips:
                allocator.reserve(proto, ip, port)
                bound.append(Bound(proto, ip, port, []))
                try:
                    bound[-1].sockets.append(_bind(proto, ip, port, listen))
                except OSError as exc:
                    raise _bind_error(proto, ip, port, exc) from None
            return bound
        except EngineError as exc:
            for b in bound:
                allocator.release(proto, b.host_ip, b.host_port)
                for s in b.sockets:
                    s.close()
            if explicit:
                raise
            last_error = exc
    if port_start == 0:
        raise EngineError("failed to allocate a host port: all ports are in use") from last_error
    raise last_error or EngineError(f"no free host port in {port_start}-{port_end}")


# ---- the proxy processes -----------------------------------------------------------------------


def proc_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def proxy_alive(pid: int, start_time: str) -> bool:
    return bool(pid) and proc_start_time(pid) == start_time


class ProxyProcess:
    """A running engine-proxy (or a userland-proxy-path program)."""

    def __init__(self, pid: int, start_time: str, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.start_time = start_time
        self.popen = popen

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "start_time": self.start_time}

    def stop(self, timeout: float = 2.0) -> None:
        if not proxy_alive(self.pid, self.start_time):
            self._reap()
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._reap() or not proxy_alive(self.pid, self.start_time):
                return
            time.sleep(0.01)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap(block=True)

    def _reap(self, block: bool = False) -> bool:
        if self.popen is None:
            return False
        try:
            return self.popen.wait(timeout=5 if block else 0) is not None
        except subprocess.TimeoutExpired:
            return False


def spawn_proxy(
    proto: str,
    container_ip: str,
    container_port: int,
    bound: list[Bound],
    tag: str,
    proxy_path: str = "",
    log_path: Path | None = None,
) -> list[ProxyProcess]:
    """Start the proxy for one published port; closes the daemon's copies of the sockets."""
    procs = []
    try:
        if proxy_path:
            # a docker-proxy compatible program binds by itself: one per address
            for b in bound:
                for s in b.sockets:
                    s.close()
                b.sockets.clear()
                cmd = [
                    proxy_path,
                    "-proto",
                    proto,
                    "-host-ip",
                    b.host_ip,
                    "-host-port",
                    str(b.host_port),
                    "-container-ip",
                    container_ip,
                    "-container-port",
                    str(container_port),
                ]
                procs.append(_start_external(cmd, log_path))
            return procs
        fds = [s.fileno() for b in bound for s in b.sockets]
        cmd = [
            sys.executable,
            "-I",
            "-S",
            str(PROXY_SCRIPT),
            "--proto",
            proto,
            "--container-ip",
            container_ip,
            "--container-port",
            str(container_port),
            "--tag",
            tag,
        ]
        for fd in fds:
            cmd += ["--listen-fd", str(fd)]
        procs.append(_start(cmd, fds, log_path))
        return procs
    except BaseException:
        for p in procs:
            p.stop()
        raise
    finally:
        for b in bound:
            for s in b.sockets:
                s.close()
            b.sockets.clear()


#: how long dockerd waits for a userland proxy to report on fd 3
PROXY_READY_TIMEOUT = 16.0


def _start_external(cmd: list[str], log_path: Path | None) -> ProxyProcess:
    """A ``userland-proxy-path`` program, with docker-proxy's readiness protocol: its fd 3 is a pipe
    on which it writes ``0`` once it serves, or ``1`` and the error; the start fails with it, as
    dockerd's (bash, whose redirections take any fd number, puts the pipe on fd 3 and execs the
    program: same PID)."""
    read_end, write_end = os.pipe()
    wrapped = ["/bin/bash", "-c", f'exec 3>&{write_end} {write_end}>&-; exec "$@"', "sh", *cmd]
    try:
        proc = _start(wrapped, [write_end], log_path)
    finally:
        os.close(write_end)
    try:
        report = _read_report(read_end, PROXY_READY_TIMEOUT)
    finally:
        os.close(read_end)
    if report is None:
        proc.stop()
        raise ProxyStartError("Error starting userland proxy: timed out proxy starting the userland proxy")
    if not report.startswith("0"):
        proc.stop()
        message = report[1:].strip() if report[:1] == "1" else report.strip()
        raise ProxyStartError(f"Error starting userland proxy: {message or 'exited without a report'}")
    return proc


def _read_report(fd: int, timeout: float) -> str | None:
    """Everything written to the pipe until its writer closes it or reports success; None on timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return data.decode(errors="replace")
        data += chunk
        if data.startswith(b"0"):
            return "0"


def _start(cmd: list[str], fds: list[int], log_path: Path | None) -> ProxyProcess:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        popen = subprocess.Popen(
            cmd, pass_fds=fds, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, close_fds=True
        )
    except OSError as exc:
        raise ProxyStartError(f"Error starting userland proxy: {exc}") from None
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]
    start = None
    for _ in range(100):
        start = proc_start_time(popen.pid)
        if start is not None:
            break
        time.sleep(0.001)
    if popen.poll() is not None:
        raise ProxyStartError(f"Error starting userland proxy: exited with {popen.returncode}")
    return ProxyProcess(popen.pid, start or "", popen)
