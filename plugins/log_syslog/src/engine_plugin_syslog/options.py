"""The syslog driver's ``--log-opt`` options, parsed and checked with dockerd's error messages."""

from __future__ import annotations

import errno
import os
import re
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from engine.errors import InvalidParameter
from engine_plugin_syslog.formats import SECURE_PROTO, parse_format

OPTIONS = frozenset(
    {
        "env",
        "env-regex",
        "labels",
        "labels-regex",
        "syslog-address",
        "syslog-facility",
        "syslog-tls-ca-cert",
        "syslog-tls-cert",
        "syslog-tls-key",
        "syslog-tls-skip-verify",
        "tag",
        "syslog-format",
    }
)
TRANSPORTS = ("tcp", "tcp+tls", "udp", "unix", "unixgram")
DEFAULT_PORT = 514

# syslog(3) facility codes, shifted into the priority as in <syslog.h>
FACILITIES = {
    name: code << 3
    for code, name in enumerate(
        ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp")
    )
} | {f"local{i}": (16 + i) << 3 for i in range(8)}
LOG_DAEMON = FACILITIES["daemon"]
LOG_INFO, LOG_ERR = 6, 3


def go_errno(code: int) -> str:
    """Go's wording of an errno ("no such file or directory")."""
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def parse_address(address: str) -> tuple[str, str]:
    """``syslog-address`` as (proto, address); ("", "") for the local syslog.

    tcp/udp addresses get port 514 when they have none; unix socket paths must exist.
    :raises ValueError: with dockerd's message.
    """
    if not address:
        return "", ""
    if not any(address.startswith(f"{proto}://") for proto in TRANSPORTS):
        raise ValueError(f"syslog-address should be in form proto://address, got {address}")
    try:
        url = urlsplit(address)
    except ValueError:
        raise ValueError(f"parse \"{address}\": missing ']' in host") from None
    if url.scheme in ("unix", "unixgram"):
        if not os.path.exists(url.path):
            raise ValueError(f"stat {url.path}: {go_errno(errno.ENOENT)}")
        return url.scheme, url.path
    host = url.netloc
    try:
        split_host_port(host)
    except ValueError as exc:
        if "missing port in address" not in str(exc):
            raise
        host = f"{host}:{DEFAULT_PORT}"
    return url.scheme, host


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``, with its error messages (the port is not checked here)."""

    def error(why: str) -> ValueError:
        return ValueError(f"address {hostport}: {why}")

    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise error("missing ']' in address")
        rest = hostport[end + 1 :]
        if not rest:
            raise error("missing port in address")
        if not rest.startswith(":"):
            raise error("missing port in address" if "]" not in rest else "unexpected ']' in address")
        host, port = hostport[1:end], rest[1:]
        if ":" in port:
            raise error("too many colons in address")
        return host, port
    host, colon, port = hostport.rpartition(":")
    if not colon:
        raise error("missing port in address")
    if ":" in host:
        raise error("too many colons in address")
    if "[" in host or "]" in host:
        raise error("unexpected '[' in address")
    return host, port


def parse_facility(facility: str) -> int:
    """``syslog-facility``: a name or a number 0-23; default daemon.

    :raises ValueError: "invalid syslog facility", dockerd's message.
    """
    if not facility:
        return LOG_DAEMON
    if facility in FACILITIES:
        return FACILITIES[facility]
    if re.fullmatch(r"[+-]?\d+", facility) and 0 <= int(facility) <= 23:
        return int(facility) << 3
    raise ValueError("invalid syslog facility")


def tls_context(options: Mapping[str, str]) -> ssl.SSLContext:
    """The client context for ``tcp+tls`` (docker's go-connections ``tlsconfig.Client``).

    ``syslog-tls-skip-verify`` turns verification off when present, whatever its value, as in
    dockerd. Without ``syslog-tls-ca-cert`` the system's CAs are trusted.
    :raises ValueError: an unreadable CA file or key pair.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    ca = options.get("syslog-tls-ca-cert", "")
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except OSError as exc:
            raise ValueError(f"Could not read CA certificate {ca!r}: open {ca}: {go_errno(exc.errno or 0)}") from None
        except ssl.SSLError:
            raise ValueError(f"failed to append certificates from PEM file: {ca!r}") from None
    else:
        context.load_default_certs()
    cert, key = options.get("syslog-tls-cert", ""), options.get("syslog-tls-key", "")
    if cert or key:
        try:
            context.load_cert_chain(cert, key or None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"Could not load X509 key pair (cert: {cert!r}, key: {key!r}): {exc}") from None
    if "syslog-tls-skip-verify" in options:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def check_options(options: Mapping[str, str]) -> None:
    """dockerd's ``ValidateLogOpt`` for syslog, plus the regexps and TLS files dockerd only finds
    when the container starts.

    :raises InvalidParameter: with dockerd's message.
    """
    for key in options:
        if key not in OPTIONS:
            raise InvalidParameter(f"unknown log opt '{key}' for syslog log driver")
    try:
        proto, _ = parse_address(options.get("syslog-address", ""))
        parse_facility(options.get("syslog-facility", ""))
        parse_format(options.get("syslog-format", ""), "")
        if proto == SECURE_PROTO:
            tls_context(options)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None
