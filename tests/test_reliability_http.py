"""HTTP edges as dockerd meets them (issue 14, item 3): header lines up to 1 MB, truncated and malformed
chunked bodies answered, slow clients not holding the daemon's workers."""

from __future__ import annotations

import socket
import time
from pathlib import Path

NAME_PREFIX = "rh-"


def connect(engine, timeout: float = 30) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(engine.socket))
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the daemon closes the connection (or the socket's timeout)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def status_of(answer: bytes) -> int:
    assert answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), answer[:200]
    return int(answer.split(b" ", 2)[1])


def threads_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("Threads:")[1].split()[0])


def ping(engine) -> int:
    with connect(engine) as sock:
        sock.sendall(b"GET /v1.41/containers/json HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n")
        return status_of(read_all(sock))


def test_header_line_of_one_megabyte_is_accepted(engine):
    """X-Registry-Config carries every stored credential: dockerd reads header lines up to 1 MB."""
    value = "a" * ((1 << 20) - 100)
    with connect(engine) as sock:
        sock.sendall(
            f"GET /_ping HTTP/1.1\r\nHost: engine\r\nX-Registry-Config: {value}\r\nConnection: close\r\n\r\n".encode()
        )
        assert status_of(read_all(sock)) == 200


def test_header_larger_than_dockerds_limit_is_refused(engine):
    value = "a" * (2 << 20)
    with connect(engine) as sock:
        try:
            sock.sendall(f"GET /_ping HTTP/1.1\r\nHost: engine\r\nX-Big: {value}\r\n\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            return  # refused before it was all sent
        answer = read_all(sock)
    assert answer == b"" or status_of(answer) in (400, 431)
    assert ping(engine) == 200


def test_truncated_chunked_body_is_answered(engine):
    """The client sends half a chunk and stops sending (half-close): it gets an answer."""
    with connect(engine) as sock:
        sock.sendall(
            b"POST /v1.41/containers/create HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\n"
            b'Transfer-Encoding: chunked\r\n\r\n40\r\n{"Image":'
        )
        sock.shutdown(socket.SHUT_WR)
        answer = read_all(sock)
    assert status_of(answer) == 400, answer
    assert ping(engine) == 200


def test_malformed_chunk_size_is_answered_and_closed(engine):
    with connect(engine) as sock:
        sock.sendall(
            b"POST /v1.41/containers/create HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        )
        answer = read_all(sock)  # ends: the daemon closed the connection
    assert status_of(answer) == 400, answer
    assert ping(engine) == 200


def test_huge_chunk_size_is_answered_and_closed(engine):
    """A chunk size past any body the daemon holds: refused at once, not waited for."""
    with connect(engine) as sock:
        sock.sendall(
            b"POST /v1.41/containers/create HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n{}\r\n"
        )
        answer = read_all(sock)
    assert status_of(answer) == 400, answer
    assert ping(engine) == 200


def test_slow_clients_do_not_hold_the_workers(engine):
    """160 clients trickle a request (headers, or a body to a worker-thread upload) and stall: other
    clients are still answered, and the daemon did not start a thread per slow client."""
    pid = engine.proc.pid
    threads_before = threads_of(pid)
    slow = []
    try:
        for i in range(160):
            sock = connect(engine)
            if i % 2:
                sock.sendall(b"GET /v1.41/containers/json HTTP/1.1\r\nHost: engine\r\nX-Slow: ")
            else:
                sock.sendall(
                    b"POST /v1.41/images/load HTTP/1.1\r\nHost: engine\r\nContent-Type: application/x-tar\r\n"
                    b"Content-Length: 100000\r\n\r\n" + b"\0" * 512
                )
            slow.append(sock)
        time.sleep(1)
        assert ping(engine) == 200
        threads = threads_of(pid)
        assert threads - threads_before < 50, (threads_before, threads)
    finally:
        for sock in slow:
            sock.close()
    assert ping(engine) == 200


def test_client_gone_mid_body_leaves_no_traceback(engine):
    start = len(engine.log())
    for path in ("/v1.41/containers/create", "/v1.41/images/load", "/v1.41/build"):
        with connect(engine) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n{".encode()
            )
            time.sleep(0.2)
    time.sleep(0.5)
    assert ping(engine) == 200
    added = engine.log()[start:]
    assert "Traceback" not in added, added
