"""A sandbox's /etc/hosts and /etc/resolv.conf: what its record and endpoints render to (with
:mod:`engine.networks.etcfiles`' dockerd formats), and the in-place rewrite of a running
container's hosts file when it connects or disconnects.

The sandboxes object (:mod:`engine.networks.sandboxes`) hands in what it looked up (the sandbox's
endpoints, the host-gateway address, whether a network is IPv6); nothing here holds state.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from engine.networks import etcfiles
from engine.networks.model import Endpoint, SandboxRecord

log = logging.getLogger(__name__)

HOST_RESOLV_CONF = Path("/etc/resolv.conf")
HOST_HOSTS = Path("/etc/hosts")


def host_resolv_conf_path() -> Path:
    """The resolv.conf containers' files are derived from; ``ENGINE_RESOLV_CONF`` overrides it (tests)."""
    return Path(os.environ.get("ENGINE_RESOLV_CONF") or HOST_RESOLV_CONF)


def hosts(sb: SandboxRecord, endpoints: list[Endpoint], host_gateway_ip: str) -> str:
    """The sandbox's /etc/hosts: on the host network, the host's file plus --add-host; otherwise
    dockerd's generated file with --add-host, links and the container's own addresses."""
    extra = etcfiles.parse_extra_hosts(sb.extra_hosts, host_gateway_ip)
    extra += [(ip, names) for ip, names in sb.links]
    if sb.key is None:  # host network: the host's file plus --add-host
        try:
            base = HOST_HOSTS.read_text()
        except OSError:
            base = etcfiles.build_hosts()
        if base and not base.endswith("\n"):
            base += "\n"
        return base + "".join(f"{ip}\t{names}\n" for ip, names in extra)
    own = []
    for ep in endpoints:
        if ep.ipv4:
            own.append((str(ipaddress.ip_interface(ep.ipv4).ip), etcfiles.own_names(sb.hostname, sb.domainname)))
        if ep.ipv6:
            own.append((str(ipaddress.ip_interface(ep.ipv6).ip), etcfiles.own_names(sb.hostname, sb.domainname)))
    return etcfiles.build_hosts(own, extra)


def resolv_conf(sb: SandboxRecord, ipv6: bool) -> tuple[str, list[str]]:
    """The sandbox's /etc/resolv.conf and the upstream servers the embedded DNS forwards to;
    ``ipv6``: one of its networks has IPv6 (IPv6 nameservers are kept)."""
    host = etcfiles.ResolvConf.read(host_resolv_conf_path())
    if sb.key is None and not (sb.dns_servers or sb.dns_search or sb.dns_options):
        return host.text, []
    dns = etcfiles.DNSSettings(sb.dns_servers, sb.dns_search, sb.dns_options)
    return etcfiles.container_resolv_conf(host, dns, embedded=sb.embedded_dns, ipv6=ipv6)


def rewrite_hosts(path: Path, content: str) -> None:
    """Rewrite a running container's /etc/hosts in place (a bind-mounted file keeps its inode);
    a container without one (not started yet) is left alone."""
    if not path.exists():
        return
    try:
        with open(path, "r+") as f:
            f.write(content)
            f.truncate()
    except OSError as exc:
        log.warning("updating %s failed: %s", path, exc)
