"""Listeners, as dockerd 20.10 opens them: unix sockets (mode 0660, owned by root and the ``group``),
tcp (with TLS when ``tls``/``tlsverify``; without TLS only when it was turned off explicitly), and ``fd://`` (systemd socket activation).

``config["hosts"]`` already holds resolved addresses (:func:`engine.hosts.parse_host`).

Listeners are bound before the application exists (and before aiohttp is imported): the daemon
binds them first, then builds the application while its storage driver starts.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import socket
import ssl
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from engine.config import DaemonConfig
from engine.errors import ConfigError

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


#: the socket group used when none is configured; like dockerd's ``docker``, it may be absent
DEFAULT_SOCKET_GROUP = "engine"


def listen_backlog() -> int:
    """The accept queue Go's net package gives dockerd's listeners: the kernel's somaxconn (asyncio's
    default of 100 turns a burst of a few hundred clients away: a unix socket connect fails EAGAIN)."""
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text()) or 128
    except (OSError, ValueError):
        return 128


def tls_context(config: DaemonConfig) -> ssl.SSLContext | None:
    """The server TLS context (go-connections ``tlsconfig.Server``), or None without TLS.

    :raises ConfigError: unreadable certificate, key or CA, with go-connections' wording.
    """
    if not config["tls"]:
        return None
    cert, key, ca = config["tlscert"], config["tlskey"], config["tlscacert"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        missing = exc.filename or (cert if not Path(cert).exists() else key)
        raise ConfigError(
            f'Could not load X509 key pair (cert: "{cert}", key: "{key}"): open {missing}: no such file or directory'
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f'Error reading X509 key pair (cert: "{cert}", key: "{key}"): {exc}. Make sure the key is not encrypted.'
        ) from None
    if config["tlsverify"]:
        ctx.verify_mode = ssl.CERT_REQUIRED
        if ca:
            try:
                ctx.load_verify_locations(ca)
            except FileNotFoundError:
                raise ConfigError(
                    f'Could not read CA certificate "{ca}": open {ca}: no such file or directory'
                ) from None
            except (OSError, ssl.SSLError):
                raise ConfigError(f'failed to append certificates from PEM file: "{ca}"') from None
        else:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return ctx


def lookup_gid(group: str) -> int:
    """dockerd's ``lookupGID``: a group name or a numeric gid; raises ConfigError "group x not found"."""
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        pass
    if group.isdigit():
        try:
            grp.getgrgid(int(group))
        except KeyError:
            log.warning("Could not find GID %s", group)
        return int(group)
    raise ConfigError(f"group {group} not found")


def unix_socket(path: Path, group: str) -> socket.socket:
    """A listening unix socket at ``path``: mode 0660, owner root, group ``group`` (created without a
    window where it is more open: umask 0777 while binding)."""
    gid = os.getgid()
    if group:
        try:
            gid = lookup_gid(group)
        except ConfigError:
            if group != DEFAULT_SOCKET_GROUP:
                raise
            log.warning("could not change group %s to %s: group %s not found", path, group, group)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        if stat.S_ISDIR(path.lstat().st_mode):
            raise ConfigError(f"can't create unix socket {path}: remove {path}: is a directory")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"can't create unix socket {path}: listen unix {path}: bind: {exc.strerror.lower()}"
        ) from None
    finally:
        os.umask(old_umask)
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(socket.SOMAXCONN)
    sock.setblocking(False)
    return sock


def _systemd_sockets(addr: str) -> list[socket.socket]:
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        raise ConfigError("no sockets found via socket activation: make sure the service was started by systemd")
    count = int(os.environ.get("LISTEN_FDS", "0"))
    fds = list(range(3, 3 + count))
    if addr:
        if not addr.isdigit() or int(addr) not in fds:
            raise ConfigError(f"too many file descriptors: no socket with descriptor {addr}")
        fds = [int(addr)]
    if not fds:
        raise ConfigError("no sockets found via socket activation: make sure the service was started by systemd")
    return [socket.socket(fileno=fd) for fd in fds]


def _split_tcp(addr: str) -> tuple[str, int]:
    """``host:port`` of a resolved tcp address; a path after the port cannot be listened on (as in Go)."""
    if addr.startswith("["):
        host, _, port = addr[1:].partition("]:")
    else:
        host, _, port = addr.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"listen tcp: address tcp/{port}: unknown port")
    return host, int(port)


def tcp_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address ``host`` resolves to (``localhost``: 127.0.0.1 and ::1)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"listen tcp {host}:{port}: lookup {host}: {exc.strerror}") from None
    socks: list[socket.socket] = []
    for family, type_, proto, _, sockaddr in infos:
        if any(s.family == family and s.getsockname()[0] == sockaddr[0] for s in socks):
            continue
        sock = socket.socket(family, type_, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            for s in socks:
                s.close()
            raise ConfigError(f"listen tcp {host}:{port}: bind: {(exc.strerror or str(exc)).lower()}") from None
        socks.append(sock)
    return socks


class APIServer:
    """``bind()`` the configured listeners, later ``serve(app)`` on them; ``stop()`` closes both."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None
        self.unix_paths: list[Path] = []
        self.sites: list[web.BaseSite] = []
        self._bound: list[tuple[socket.socket, ssl.SSLContext | None, str]] = []

    async def start(self, app: web.Application) -> None:
        await self.bind()
        await self.serve(app)

    async def bind(self) -> None:
        """Open every listener without serving yet (dockerd opens them before the daemon starts).

        :raises ConfigError: "failed to create API server: ..." or "failed to load listeners: ...".
        """
        try:
            tls = tls_context(self.config)
        except ConfigError as exc:
            raise ConfigError(f"failed to create API server: {exc.message}") from None
        try:
            for host in self.config["hosts"]:
                self._bound.extend(await self._bind(host, tls))
        except ConfigError as exc:
            self._close_bound()
            raise ConfigError(f"failed to load listeners: {exc.message}") from None

    async def serve(self, app: web.Application) -> None:
        """Serve ``app`` on every bound listener."""
        from aiohttp import web

        from engine.api import protocol

        protocol.install()
        self.app = app
        from engine.api.request_log import RequestLog, logger

        self.runner = web.AppRunner(
            app,
            access_log_class=RequestLog,
            access_log=logger,
            shutdown_timeout=2.0,
            handle_signals=False,
            **protocol.server_options(),
        )
        await self.runner.setup()
        backlog = listen_backlog()
        for sock, context, shown in self._bound:
            site = web.SockSite(self.runner, sock, ssl_context=context, backlog=backlog)
            await site.start()
            self.sites.append(site)
            log.info("API listen on %s", shown)
        self._bound = []

    def _close_bound(self) -> None:
        for sock, _, _ in self._bound:
            sock.close()
        self._bound = []

    async def _bind(
        self, host: str, tls: ssl.SSLContext | None
    ) -> list[tuple[socket.socket, ssl.SSLContext | None, str]]:
        proto, _, addr = host.partition("://")
        if proto == "unix":
            path = Path(addr)
            sock = unix_socket(path, self.config["group"])
            self.unix_paths.append(path)
            return [(sock, None, str(path))]
        if proto == "tcp":
            hostname, port = _split_tcp(addr)
            self._check_insecure_tcp(host, tls)
            return [(sock, tls, addr) for sock in await asyncio.to_thread(tcp_sockets, hostname, port)]
        if proto == "fd":
            return [(sock, tls, host) for sock in _systemd_sockets(addr)]
        raise ConfigError(f'invalid protocol format: "{proto}"')

    def _check_insecure_tcp(self, host: str, tls: ssl.SSLContext | None) -> None:
        """tcp without TLS is refused unless TLS was turned off explicitly (``--tls=false`` or
        ``"tls": false`` in daemon.json); dockerd 20.10 only warns and waits.
        TLS without client verification is allowed with dockerd's warning."""
        if tls is not None and self.config["tlsverify"]:
            return
        if tls is None and not self._tls_turned_off():
            raise ConfigError(
                f"refusing to listen on {host} without TLS: anyone who can reach it would have root access on "
                "this machine. Use --tlsverify with --tlscacert, --tlscert and --tlskey, or turn TLS off "
                'explicitly with --tls=false ("tls": false in daemon.json)'
            )
        log.warning(
            "Binding to IP address without --tlsverify is insecure and gives root access on this machine "
            "to everyone who has access to your network. host=%s",
            host,
        )
        log.warning(
            "Binding to an IP address, even on localhost, can also give access to scripts run in a browser. Be safe out there! host=%s",
            host,
        )

    def _tls_turned_off(self) -> bool:
        """``tls`` set to false by a flag or in the file, not merely left unset (``tlsverify`` given at
        all turns TLS on, as in dockerd)."""
        return "tls" in (self.config.from_file | self.config.from_flags) and not self.config["tls"]

    async def stop(self) -> None:
        self._close_bound()
        if self.runner is not None:
            await self.runner.cleanup()
        for path in self.unix_paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
