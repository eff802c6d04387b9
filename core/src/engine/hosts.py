"""Listen addresses (``-H``/``hosts``) parsed exactly as dockerd 20.10 parses them.

dockerd's rules (moby opts/hosts.go) are surprising in places, and clients depend on them:

- an address without ``proto://`` is **tcp**: ``:2375`` is ``tcp://localhost:2375`` and a bare path
  ``/x.sock`` is ``tcp://localhost:2375/x.sock`` (which then fails to listen, as in dockerd);
- ``tcp://:7777`` binds ``localhost``, not every interface; ``tcp://`` is ``tcp://localhost:2375``;
- ``unix://`` is the default socket; an empty address is the default socket, or
  ``tcp://localhost:2376`` when TLS is on.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from engine import rootless

DEFAULT_HTTP_HOST = "localhost"
DEFAULT_HTTP_PORT = 2375
DEFAULT_TLS_HTTP_PORT = 2376
#: under RootlessKit: $XDG_RUNTIME_DIR/engine.sock (rootless mode)
DEFAULT_UNIX_SOCKET = str(rootless.socket_path()) if rootless.ROOTLESSKIT else "/run/engine.sock"
DEFAULT_TCP_HOST = f"tcp://{DEFAULT_HTTP_HOST}:{DEFAULT_HTTP_PORT}"
DEFAULT_TLS_HOST = f"tcp://{DEFAULT_HTTP_HOST}:{DEFAULT_TLS_HTTP_PORT}"


class HostError(ValueError):
    """An address dockerd would refuse; the message is dockerd's."""


def validate_host(value: str) -> str:
    """The ``-H`` flag's validator: the value must parse, but is kept as typed (TLS may change its default)."""
    host = value.strip()
    if host:
        parse_daemon_host(host)
    return value


def parse_host(value: str, default_to_tls: bool = False) -> str:
    """The address to listen on, defaults filled in (``ParseHost``)."""
    host = value.strip()
    if not host:
        return DEFAULT_TLS_HOST if default_to_tls else f"unix://{DEFAULT_UNIX_SOCKET}"
    return parse_daemon_host(host)


def parse_daemon_host(addr: str) -> str:
    proto, sep, rest = addr.partition("://")
    if not sep and proto:
        proto, rest = "tcp", proto
    if proto == "tcp":
        return parse_tcp_addr(rest, DEFAULT_TCP_HOST)
    if proto == "unix":
        return _parse_simple(proto, rest, DEFAULT_UNIX_SOCKET)
    if proto in ("fd", "ssh"):
        return addr
    raise HostError(f"Invalid bind address format: {addr}")


def _parse_simple(proto: str, addr: str, default: str) -> str:
    addr = addr.removeprefix(proto + "://")
    if "://" in addr:
        raise HostError(f"Invalid proto, expected {proto}: {addr}")
    return f"{proto}://{addr or default}"


def _split_host_port(hostport: str) -> tuple[str, str]:
    """Go's net.SplitHostPort: ``host:port`` or ``[v6]:port``; raises ValueError."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or hostport[end + 1 : end + 2] != ":":
            raise ValueError("missing port in address")
        host, port = hostport[1:end], hostport[end + 2 :]
        if "[" in port or "]" in port:
            raise ValueError("unexpected bracket")
        return host, port
    if hostport.count(":") != 1:
        raise ValueError("missing port in address" if ":" not in hostport else "too many colons in address")
    host, _, port = hostport.partition(":")
    return host, port


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_tcp_addr(try_addr: str, default_addr: str) -> str:
    """``ParseTCPAddr``: fill in the default host and port; keep a path (dockerd 20.10 does)."""
    if try_addr in ("", "tcp://"):
        return default_addr
    addr = try_addr.removeprefix("tcp://")
    if "://" in addr or addr == "":
        raise HostError(f"Invalid proto, expected tcp: {try_addr}")
    default_host, default_port = _split_host_port(default_addr.removeprefix("tcp://"))
    if addr.endswith("]:"):
        addr += default_port
    url = urlsplit("tcp://" + addr)
    netloc, path = url.netloc, url.path
    try:
        host, port = _split_host_port(netloc)
    except ValueError:
        try:
            host, port = _split_host_port(_join_host_port(netloc, default_port))
        except ValueError:
            raise HostError(f"Invalid bind address format: {try_addr}") from None
    host = host or default_host
    port = port or default_port
    if not port.isdigit():
        raise HostError(f"Invalid bind address format: {try_addr}")
    return f"tcp://{_join_host_port(host, port)}{path}"
