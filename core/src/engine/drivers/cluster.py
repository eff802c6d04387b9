"""The cluster store settings of daemon.json, parsed once for core and for global-scope drivers.

dockerd 19.03's ``cluster-store`` (``etcd://host:port[,host:port]``), ``cluster-store-opts``
(``kv.cacertfile``, ``kv.certfile``, ``kv.keyfile``) and ``cluster-advertise`` (``ip:port`` or
``interface:port``). Core validates them at start with :func:`parse_cluster`; a driver reads
them from its context's config with the same function, and resolves the advertised address
with :func:`advertise_ip` (an interface name is looked up when the driver needs it, as
dockerd does, so a daemon starts even when that interface has no address yet).
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["STORE_OPTS", "ClusterConfig", "advertise_ip", "parse_cluster"]

#: the cluster-store-opts keys engine acts on (TLS to the store); dockerd's others are refused
STORE_OPTS = ("kv.cacertfile", "kv.certfile", "kv.keyfile")
_SCHEMES = ("etcd",)


@dataclass(frozen=True)
class ClusterConfig:
    """The parsed cluster settings: the store's endpoints and TLS files, the advertised address."""

    store: str  # the URL as given (for messages)
    endpoints: tuple[tuple[str, int], ...]  # (host, port) of each store member
    path: str = "/docker"  # the key prefix (the URL's path, dockerd's default /docker)
    cacert: str = ""
    cert: str = ""
    key: str = ""
    advertise_host: str = ""  # an IP address or an interface name ("" when not set)
    advertise_port: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return bool(self.cacert or self.cert)


def _store(url: str) -> tuple[tuple[tuple[str, int], ...], str]:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise ValueError(f'unsupported cluster store "{url}": engine supports etcd://host:port[,host:port][/path]')
    hosts, _, path = rest.partition("/")
    endpoints = []
    for item in hosts.split(","):
        parts = urlsplit("//" + item.strip())
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ValueError(f'invalid cluster store address "{item}" in "{url}": want host:port')
        endpoints.append((parts.hostname, port))
    return tuple(endpoints), "/" + path.strip("/") if path.strip("/") else "/docker"


def _advertise(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid cluster-advertise {value!r}: want <ip|interface>:<port>")
    return host.strip("[]"), int(port)


def parse_cluster(config: Mapping[str, Any]) -> ClusterConfig | None:
    """The cluster settings of a daemon configuration, or None when ``cluster-store`` is not set.

    :raises ValueError: with dockerd's wording where it has one.
    """
    store = str(config.get("cluster-store") or "")
    advertise = str(config.get("cluster-advertise") or "")
    opts = dict(config.get("cluster-store-opts") or {})
    if not store:
        if advertise:
            raise ValueError(
                "invalid cluster configuration. --cluster-advertise must be accompanied by --cluster-store configuration"
            )
        if opts:
            raise ValueError("cluster-store-opts is set but cluster-store is not")
        return None
    endpoints, path = _store(store)
    unknown = sorted(set(opts) - set(STORE_OPTS))
    if unknown:
        raise ValueError(f"unsupported cluster-store-opts {', '.join(unknown)}: engine knows {', '.join(STORE_OPTS)}")
    if bool(opts.get("kv.certfile")) != bool(opts.get("kv.keyfile")):
        raise ValueError("cluster-store-opts: kv.certfile and kv.keyfile go together")
    host, port = _advertise(advertise) if advertise else ("", 0)
    return ClusterConfig(
        store=store,
        endpoints=endpoints,
        path=path,
        cacert=str(opts.get("kv.cacertfile") or ""),
        cert=str(opts.get("kv.certfile") or ""),
        key=str(opts.get("kv.keyfile") or ""),
        advertise_host=host,
        advertise_port=port,
    )


def _interface_ipv4(name: str) -> str:
    # SIOCGIFADDR: the interface's (first) IPv4 address, in the calling thread's network namespace
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            raw = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
        except OSError as exc:
            raise ValueError(f"cluster-advertise: interface {name} has no IPv4 address ({exc.strerror})") from None
    return socket.inet_ntoa(raw[20:24])


def advertise_ip(cluster: ClusterConfig) -> str:
    """The IP address ``cluster-advertise`` names (an interface's first IPv4 address).

    :raises ValueError: not set, or the interface has no IPv4 address.
    """
    if not cluster.advertise_host:
        raise ValueError(
            "cluster-advertise is not set: overlay networks need the address other hosts reach this one on"
        )
    try:
        return str(ipaddress.ip_address(cluster.advertise_host))
    except ValueError:
        return _interface_ipv4(cluster.advertise_host)
