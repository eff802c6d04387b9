"""Secure or insecure: which registries may be reached over plain HTTP (dockerd's isSecureIndex).

Insecure are: addresses in 127.0.0.0/8 (always, as dockerd's default InsecureRegistryCIDRs),
``localhost``, and whatever ``insecure-registries`` lists (a CIDR or a ``host[:port]``). An insecure
registry is tried over HTTPS first (certificates unchecked) and then over HTTP; a secure one only
over HTTPS. Names are never resolved here, so deciding cannot hang on DNS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

DEFAULT_INSECURE_CIDRS = ("127.0.0.0/8",)


def split_host(name: str) -> str:
    """``host:port`` / ``[v6]:port`` -> the host part."""
    if name.startswith("["):
        return name[1:].partition("]")[0]
    host, sep, port = name.rpartition(":")
    return host if sep and port.isdigit() and host.count(":") == 0 else name


def is_insecure(name: str, insecure_registries: Iterable[str] = ()) -> bool:
    host = split_host(name)
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    cidrs = list(DEFAULT_INSECURE_CIDRS)
    for entry in insecure_registries:
        entry = entry.strip()
        entry = entry.removeprefix("http://").removeprefix("https://").rstrip("/")
        if "/" in entry:
            cidrs.append(entry)
        elif entry in (name, host):
            return True
    if address is None:
        return False
    for cidr in cidrs:
        try:
            if address in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            continue
    return False
