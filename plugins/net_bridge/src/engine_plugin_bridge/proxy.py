"""engine-proxy: forwards one published port to a container (dockerd's docker-proxy).

It runs as its own process in its own session, so published ports keep working while the
daemon restarts (live-restore). The daemon binds the listening sockets itself (so a port
conflict is reported at once, with dockerd's message) and hands them over as inherited file
descriptors (``--listen-fd``); docker-proxy's flags (``-host-ip``/``-host-port``) work too.

Only the standard library is used, and the daemon starts it as ``python -I -S proxy.py`` so it
starts fast and stays small. TCP: one accept loop per listener, two copy threads per
connection, half-close passed on. UDP: one upstream socket per client address, dropped after
90 s without traffic (docker-proxy's UDPConnTrackTimeout).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time

BUFFER = 64 * 1024
UDP_TIMEOUT = 90.0


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if not n:
                break
            dst.sendall(view[:n])
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve_tcp_conn(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve_tcp(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except InterruptedError:
            continue
        except OSError:
            time.sleep(0.05)
            continue
        threading.Thread(target=_serve_tcp_conn, args=(client, target), daemon=True).start()


def serve_udp(listener: socket.socket, target: tuple[str, int]) -> None:
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    conns: dict[object, tuple[socket.socket, list[float]]] = {}
    lock = threading.Lock()

    def reply_loop(client: object, upstream: socket.socket, last: list[float]) -> None:
        upstream.settimeout(5)
        while True:
            try:
                data = upstream.recv(BUFFER)
            except TimeoutError:
                if time.monotonic() - last[0] > UDP_TIMEOUT:
                    break
                continue
            except OSError:
                break
            last[0] = time.monotonic()
            try:
                listener.sendto(data, client)  # type: ignore[arg-type]
            except OSError:
                break
        with lock:
            conns.pop(client, None)
        upstream.close()

    while True:
        try:
            data, client = listener.recvfrom(BUFFER)
        except OSError:
            continue
        with lock:
            entry = conns.get(client)
            if entry is None:
                upstream = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    upstream.connect(target)
                except OSError:
                    upstream.close()
                    continue
                entry = (upstream, [time.monotonic()])
                conns[client] = entry
                threading.Thread(target=reply_loop, args=(client, upstream, entry[1]), daemon=True).start()
        entry[1][0] = time.monotonic()
        try:
            entry[0].send(data)
        except OSError:
            pass


def _listener_from_args(proto: str, host_ip: str, host_port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host_ip or "0.0.0.0", host_port))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engine-proxy", allow_abbrev=False)
    parser.add_argument("-proto", "--proto", default="tcp", choices=("tcp", "udp"))
    parser.add_argument("-container-ip", "--container-ip", required=True)
    parser.add_argument("-container-port", "--container-port", type=int, required=True)
    parser.add_argument("-host-ip", "--host-ip", default="")
    parser.add_argument("-host-port", "--host-port", type=int, default=0)
    parser.add_argument("--listen-fd", type=int, action="append", default=[])
    parser.add_argument("--tag", default="", help="an owner tag, shown in ps (ignored)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    kind = socket.SOCK_STREAM if args.proto == "tcp" else socket.SOCK_DGRAM
    listeners = [socket.socket(fileno=fd) for fd in args.listen_fd]
    if not listeners:
        try:
            listeners = [_listener_from_args(args.proto, args.host_ip, args.host_port)]
        except OSError as exc:
            print(f"listen {args.proto}: {exc}", file=sys.stderr)
            return 1
    target = (args.container_ip, args.container_port)
    serve = serve_tcp if kind == socket.SOCK_STREAM else serve_udp
    threads = [threading.Thread(target=serve, args=(sock, target), daemon=True) for sock in listeners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
