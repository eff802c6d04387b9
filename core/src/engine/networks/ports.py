"""Published ports: what a sandbox asks its network driver to bind, and the bindings saved with endpoints."""

from __future__ import annotations

from typing import Any

from engine.drivers.network import PortBinding
from engine.errors import InvalidParameter
from engine.networks.model import Endpoint, SandboxRecord


def wanted_ports(sb: SandboxRecord) -> list[PortBinding]:
    """The bindings a sandbox asks its driver for: ``-p`` ones, plus every exposed port with ``-P``."""
    out = []
    seen = set()
    for port, bindings in sb.port_bindings.items():
        cport, _, proto = port.partition("/")
        for b in bindings or [{}]:
            host_ip = (b or {}).get("HostIp") or ""
            start, end = port_range((b or {}).get("HostPort") or "")
            out.append(PortBinding(proto or "tcp", int(cport), host_ip, start, end))
            seen.add(port if "/" in port else f"{port}/tcp")
    if sb.publish_all:
        for port in sb.exposed_ports:
            key = port if "/" in port else f"{port}/tcp"
            if key in seen:
                continue
            cport, _, proto = key.partition("/")
            out.append(PortBinding(proto, int(cport)))
    return out


def stored_bindings(ep: Endpoint) -> list[PortBinding]:
    """The bindings a driver made for an endpoint, as saved with it."""
    return [PortBinding(p["proto"], p["container_port"], p["host_ip"], p["host_port"]) for p in ep.ports]


def binding_json(b: PortBinding) -> dict[str, Any]:
    """A driver's binding as saved with its endpoint."""
    return {"proto": b.proto, "container_port": b.container_port, "host_ip": b.host_ip, "host_port": b.host_port}


def port_range(raw: str) -> tuple[int, int]:
    """A HostPort (``8080``, ``8000-8010``, empty for any) as ``(start, end)``; end 0 for a single port."""
    if not raw:
        return 0, 0
    start, _, end = raw.partition("-")
    try:
        s = int(start)
        e = int(end) if end else 0
    except ValueError:
        raise InvalidParameter(f"invalid port specification: {raw!r}") from None
    if not (0 <= s <= 65535) or (e and not (s <= e <= 65535)):
        raise InvalidParameter(f"invalid port specification: {raw!r}")
    return s, (e if e != s else 0)
