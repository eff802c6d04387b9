"""The contents of a container's /etc/hosts, /etc/resolv.conf and /etc/hostname, as dockerd writes them."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOSTS_DEFAULT = (
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
)

#: the embedded DNS server's address inside a container on a user-defined network
RESOLVER_IP = "127.0.0.11"
#: libnetwork's fallback when filtering leaves no nameserver
DEFAULT_NAMESERVERS_V4 = ("8.8.8.8", "8.8.4.4")
DEFAULT_NAMESERVERS_V6 = ("2001:4860:4860::8888", "2001:4860:4860::8844")


def build_hosts(own: Sequence[tuple[str, str]] = (), extra: Sequence[tuple[str, str]] = ()) -> str:
    """dockerd's generated /etc/hosts: localhost lines, ``extra`` (--add-host, links), then the
    container's own records (``ip``, ``names``)."""
    lines = [f"{ip}\t{names}" for ip, names in (*HOSTS_DEFAULT, *extra, *own)]
    return "\n".join(lines) + "\n"


def own_names(hostname: str, domainname: str = "") -> str:
    """The names of the container's own hosts record: ``fqdn short`` when there is a domain."""
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    short, dot, _ = fqdn.partition(".")
    return f"{fqdn} {short}" if dot else fqdn


def parse_extra_hosts(extra_hosts: Iterable[str], host_gateway: str = "") -> list[tuple[str, str]]:
    """``--add-host name:ip`` (also ``name=ip``); ``host-gateway`` becomes ``host_gateway``."""
    out = []
    for item in extra_hosts or ():
        if "=" in item and ":" not in item.split("=", 1)[0]:
            name, _, ip = item.partition("=")
        else:
            name, _, ip = item.partition(":")
        if ip == "host-gateway":
            ip = host_gateway
        out.append((ip, name))
    return out


def validate_extra_hosts(extra_hosts: Iterable[str], host_gateway: str) -> None:
    """dockerd's ValidateExtraHost, run at create: raises ValueError with its message."""
    for item in extra_hosts or ():
        name, sep, ip = item.partition(":")
        if not sep or not name:
            raise ValueError(f"invalid extra host: {item}")
        if ip == "host-gateway":
            if not host_gateway:
                raise ValueError("unable to derive the IP value for host-gateway")
            continue
        try:
            ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            raise ValueError(f"invalid IP address in add-host: {ip!r}") from None


# ---- resolv.conf ------------------------------------------------------------------------------------

_NS_RE = re.compile(r"^\s*nameserver\s+(\S+)\s*$")
_LOCALHOST_RE = re.compile(r"^\s*nameserver\s+(127\.\d+\.\d+\.\d+|::1)\s*$")
_V6_NS_RE = re.compile(r"^\s*nameserver\s+\S*:\S*\s*$")


@dataclass
class ResolvConf:
    """The parts of a resolv.conf engine needs: the raw text and its parsed directives."""

    text: str
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        conf = cls(text)
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].split(";", 1)[0].strip()
            if not line:
                continue
            key, _, rest = line.partition(" ")
            words = rest.split()
            if key == "nameserver" and words:
                conf.nameservers.append(words[0])
            elif key in ("search", "domain"):
                conf.search = words  # the last search/domain line wins, as in glibc
            elif key == "options":
                conf.options.extend(words)
        return conf

    @classmethod
    def read(cls, path: Path) -> ResolvConf:
        try:
            return cls.parse(path.read_text())
        except OSError:
            return cls("")


def filter_resolv_conf(text: str, ipv6: bool = False) -> str:
    """The host's file without localhost nameservers (and IPv6 ones unless ``ipv6``); libnetwork's
    FilterResolvDNS, including its fallback to Google's DNS when nothing is left."""
    kept = []
    for line in text.splitlines():
        if _LOCALHOST_RE.match(line) or (not ipv6 and _V6_NS_RE.match(line)):
            continue
        kept.append(line)
    out = "\n".join(kept)
    if kept:
        out += "\n"
    if not any(_NS_RE.match(line) for line in kept):
        defaults = DEFAULT_NAMESERVERS_V4 + (DEFAULT_NAMESERVERS_V6 if ipv6 else ())
        out += "".join(f"nameserver {ns}\n" for ns in defaults)
    return out


def build_resolv_conf(nameservers: Sequence[str], search: Sequence[str], options: Sequence[str]) -> str:
    """libnetwork's resolvconf.Build: search, nameservers, options."""
    out = ""
    if search:
        out += "search " + " ".join(search) + "\n"
    out += "".join(f"nameserver {ns}\n" for ns in nameservers)
    if options:
        out += "options " + " ".join(options) + "\n"
    return out


@dataclass
class DNSSettings:
    """The DNS settings of one container: its own flags merged over the daemon's keys."""

    servers: list[str]
    search: list[str]
    options: list[str]


def container_resolv_conf(
    host: ResolvConf, dns: DNSSettings, *, embedded: bool, ipv6: bool = False
) -> tuple[str, list[str]]:
    """The container's resolv.conf and the upstream servers the embedded DNS forwards to.

    :param embedded: the container is on a user-defined network: nameserver 127.0.0.11.
    """
    if embedded:
        # the embedded DNS forwards from the daemon's namespace: the host's own (even loopback) servers work
        upstream = list(dns.servers) if dns.servers else list(host.nameservers) or _usable_upstream([], ipv6)
        search = list(dns.search) if dns.search else host.search
        options = list(dns.options) if dns.options else list(host.options)
        if not any(o.startswith("ndots:") for o in options):
            options.append("ndots:0")
        return build_resolv_conf([RESOLVER_IP], search, options), upstream
    if dns.servers or dns.search or dns.options:
        servers = list(dns.servers) if dns.servers else _usable_upstream(host.nameservers, ipv6)
        search = list(dns.search) if dns.search else host.search
        options = list(dns.options) if dns.options else host.options
        return build_resolv_conf(servers, search, options), []
    return filter_resolv_conf(host.text, ipv6), []


def _usable_upstream(nameservers: Sequence[str], ipv6: bool) -> list[str]:
    out = [ns for ns in nameservers if not ns.startswith("127.") and ns != "::1" and (ipv6 or ":" not in ns)]
    return out or list(DEFAULT_NAMESERVERS_V4 + (DEFAULT_NAMESERVERS_V6 if ipv6 else ()))
