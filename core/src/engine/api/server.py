"""Listeners: unix sockets (mode 0660, group from ``group``), tcp (with TLS), and fd:// (socket activation)."""

from __future__ import annotations

import grp
import logging
import os
import socket
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp.http_parser
import aiohttp.web_protocol
from aiohttp import web

from engine.config import DaemonConfig
from engine.errors import ConfigError

log = logging.getLogger(__name__)

# aiohttp's C request parser only honours "Upgrade: websocket"; its pure-Python parser also
# honours "Upgrade: tcp", which Docker's attach/exec hijack uses. Without it, stdin bytes
# sent right behind the request headers would be parsed as a new request and lost.
aiohttp.web_protocol.HttpRequestParser = aiohttp.http_parser.HttpRequestParserPy  # type: ignore[misc]


def _tls_context(config: DaemonConfig) -> ssl.SSLContext | None:
    if not (config["tls"] or config["tlsverify"]):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(config["tlscert"], config["tlskey"])
        if config["tlsverify"]:
            ctx.load_verify_locations(config["tlscacert"])
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"could not load TLS certificates: {exc}") from None
    return ctx


def _prepare_unix_path(path: Path, group: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigError(f"{path} exists and is not a socket")
        path.unlink()


def _secure_unix_socket(path: Path, group: str) -> None:
    gid = None
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            if group not in ("engine", "docker"):  # the defaults may be absent, as in dockerd
                raise ConfigError(f"group {group!r} for the API socket does not exist") from None
            log.warning("could not change group %s to %s: group not found", path, group)
    if gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, 0o660)


def _systemd_sockets() -> list[socket.socket]:
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0"))
    return [socket.socket(fileno=3 + i) for i in range(count)]


class APIServer:
    def __init__(self, app: web.Application, config: DaemonConfig) -> None:
        self.app = app
        self.config = config
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, handle_signals=False)
        self.unix_paths: list[Path] = []

    async def start(self) -> None:
        await self.runner.setup()
        tls = _tls_context(self.config)
        for host in self.config["hosts"]:
            url = urlsplit(host)
            if url.scheme == "unix":
                path = Path(url.path or "/run/engine.sock")
                _prepare_unix_path(path, self.config["group"])
                site: web.BaseSite = web.UnixSite(self.runner, str(path))
                await site.start()
                _secure_unix_socket(path, self.config["group"])
                self.unix_paths.append(path)
            elif url.scheme == "tcp":
                if tls is None:
                    log.warning(
                        "Binding to IP address without --tlsverify is insecure and gives root access "
                        "on this machine to everyone who has access to your network."
                    )
                hostname = url.hostname or "0.0.0.0"
                port = url.port or (2376 if tls else 2375)
                site = web.TCPSite(self.runner, hostname, port, ssl_context=tls)
                await site.start()
            elif url.scheme == "fd":
                sockets = _systemd_sockets()
                if not sockets:
                    raise ConfigError(
                        "no sockets found via socket activation: make sure the service was started by systemd"
                    )
                for sock in sockets:
                    await web.SockSite(self.runner, sock).start()
            else:
                raise ConfigError(f"invalid listen address {host!r}")
            log.info("API listening on %s", host)

    async def stop(self) -> None:
        await self.runner.cleanup()
        for path in self.unix_paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
