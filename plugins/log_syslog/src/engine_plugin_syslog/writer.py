"""A connection to a syslog server that writes whole messages and reconnects once on failure
(srslog's ``writeAndRetry``)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

from engine_plugin_syslog.formats import SECURE_PROTO
from engine_plugin_syslog.options import split_host_port

#: where the local syslog listens, tried in this order with a datagram then a stream socket
LOCAL_PATHS = ("/dev/log", "/var/run/syslog", "/var/run/log")


def go_error(exc: OSError) -> str:
    """An errno's text as Go prints it ("connection refused": glibc's text, lower case)."""
    if isinstance(exc, TimeoutError) and not exc.strerror:
        return "i/o timeout"
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


class SyslogConnection:
    """One socket to ``address`` over ``proto`` (``""``: the local syslog), dialled by the first write."""

    def __init__(self, proto: str, address: str, tls: ssl.SSLContext | None = None, timeout: float = 30.0) -> None:
        self.proto = proto
        self.address = address
        self.tls = tls
        self.timeout = timeout
        self.local = proto == ""
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _dial(self) -> socket.socket:
        if self.local:
            return self._dial_local()
        if self.proto in ("unix", "unixgram"):
            kind = socket.SOCK_DGRAM if self.proto == "unixgram" else socket.SOCK_STREAM
            sock = socket.socket(socket.AF_UNIX, kind)
            try:
                sock.connect(self.address)
            except OSError as exc:
                sock.close()
                raise OSError(f"dial {self.proto} {self.address}: connect: {go_error(exc)}") from None
            return sock
        host, port = split_host_port(self.address)
        network = "udp" if self.proto == "udp" else "tcp"
        if not port.isdigit():
            raise OSError(f"dial {network}: lookup port {port}: unknown port")
        try:
            if network == "udp":
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.connect((host, int(port)))
            else:
                sock = socket.create_connection((host, int(port)), timeout=self.timeout)
                sock.settimeout(None)
        except OSError as exc:
            raise OSError(f"dial {network} {self.address}: connect: {go_error(exc)}") from None
        if self.proto == SECURE_PROTO:
            assert self.tls is not None
            try:
                sock = self.tls.wrap_socket(sock, server_hostname=host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise OSError(f"tls: {exc}") from None
        return sock

    @staticmethod
    def _dial_local() -> socket.socket:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            for path in LOCAL_PATHS:
                sock = socket.socket(socket.AF_UNIX, kind)
                try:
                    sock.connect(path)
                except OSError:
                    sock.close()
                    continue
                return sock
        raise OSError("Unix syslog delivery error")

    def connect(self) -> None:
        """Dial now (when not connected yet)."""
        with self._lock:
            if self._closed:
                raise OSError("syslog writer closed")
            if self._sock is None:
                self._redial()

    def write(self, data: bytes) -> None:
        self.write_many([data])

    def write_many(self, messages: list[bytes]) -> None:
        """Send framed messages: a datagram each, or one write for all on a stream. A send that
        fails is made once more on a new connection (srslog's ``writeAndRetry``); a stream that
        broke mid-batch cannot tell what arrived, so its retry sends the batch again."""
        with self._lock:
            if self._closed:
                raise OSError("syslog writer closed")
            sock = self._sock or self._redial()
            if sock.type == socket.SOCK_DGRAM:
                for data in messages:
                    self._retrying("send", data)
            else:
                self._retrying("sendall", b"".join(messages))

    def _retrying(self, method: str, data: bytes) -> None:
        if self._sock is not None:
            try:
                getattr(self._sock, method)(data)
                return
            except OSError:
                self._sock.close()
                self._sock = None
                if self._closed:  # close() broke a blocked write: no new connection
                    raise
        getattr(self._redial(), method)(data)

    def _redial(self) -> socket.socket:
        self._sock = self._dial()
        return self._sock

    def close(self) -> None:
        self._closed = True
        sock = self._sock
        if sock is not None:
            # a write blocked on a server that stopped reading holds the lock: shutting the socket
            # down makes it fail now (the plain socket's shutdown: TLS's would drop its state
            # under the writing thread)
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        with self._lock:
            if self._sock is not None:
                self._sock.close()  # TLS: no wait for the peer's close_notify (Go's Close does not wait either)
                self._sock = None
