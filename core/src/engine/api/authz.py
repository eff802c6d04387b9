"""Authorization plugins with dockerd's authz protocol (moby pkg/authorization), and the chain that asks them.

``authorization-plugins`` names plugins. A name that an installed in-process plugin (pluggy, implementing
``engine_authorize_request``) carries is served in-process; any other name is an out-of-process plugin,
found as dockerd finds legacy plugins but in engine's own directories: a socket
``/run/engine/plugins/<name>.sock`` (or ``<name>/<name>.sock``), else a spec file ``<name>.spec`` (one
line: ``unix:///path`` or ``tcp://host:port``) or ``<name>.json`` (``{"Addr": ...}``) in
``/etc/engine/plugins`` or ``/usr/lib/engine/plugins``. It is activated with ``POST /Plugin.Activate``
(it must answer ``{"Implements": ["authz"]}``), then asked ``POST /AuthZPlugin.AuthZReq`` before a
request's handler runs and ``POST /AuthZPlugin.AuthZRes`` before its (buffered) response goes out.
Any deny wins: "authorization denied by plugin NAME: MSG", 403. A plugin's ``Err`` or an unreachable
plugin fails the request: "plugin NAME failed with error: ...", 500.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from engine.errors import ConfigError, Forbidden, SystemError

log = logging.getLogger(__name__)

SOCKETS_DIR = Path("/run/engine/plugins")
SPEC_DIRS = (Path("/etc/engine/plugins"), Path("/usr/lib/engine/plugins"))
IMPLEMENTS = "authz"
MIME = "application/vnd.docker.plugins.v1.2+json"
#: request and response bodies are sent to plugins only when JSON and under this size (as dockerd)
MAX_BODY = 1 << 20
#: seconds a plugin has to answer (aiohttp.ClientTimeout is built with the first session: importing
#: aiohttp's client package costs engined ~30% of its start-up)
TIMEOUT_SECONDS = 30


def find_plugin(name: str) -> str:
    """The address of legacy plugin ``name``: ``unix:///…`` or ``tcp://…`` (``http://`` for tcp).

    :raises ConfigError: no socket and no spec file, or a spec file that cannot be used.
    """
    for sock in (SOCKETS_DIR / f"{name}.sock", SOCKETS_DIR / name / f"{name}.sock"):
        if sock.is_socket():
            return f"unix://{sock}"
    for directory in SPEC_DIRS:
        for candidate in (directory / f"{name}.spec", directory / f"{name}.json", directory / name / f"{name}.spec"):
            if candidate.is_file():
                return _read_spec(name, candidate)
    raise ConfigError(f"plugin {name} not found: no {SOCKETS_DIR}/{name}.sock and no spec file")


def _read_spec(name: str, path: Path) -> str:
    try:
        text = path.read_text()
        addr = str(json.loads(text).get("Addr", "")) if path.suffix == ".json" else text.strip()
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"plugin {name}: reading {path}: {exc}") from None
    if not addr.startswith(("unix://", "tcp://", "http://")):
        raise ConfigError(f"plugin {name}: {path}: unknown protocol in {addr!r}")
    return addr


@dataclass
class PluginClient:
    """One out-of-process plugin: JSON over HTTP on its unix socket (or tcp)."""

    name: str
    address: str
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    def _session_and_base(self) -> tuple[aiohttp.ClientSession, str]:
        if self._session is None or self._session.closed:
            connector: aiohttp.BaseConnector
            if self.address.startswith("unix://"):
                connector = aiohttp.UnixConnector(path=self.address[len("unix://") :])
            else:
                connector = aiohttp.TCPConnector()
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            )
        if self.address.startswith("unix://"):
            return self._session, "http://plugin"
        return self._session, "http://" + self.address.split("://", 1)[1].rstrip("/")

    async def call(self, method: str, payload: Any) -> dict[str, Any]:
        """POST ``/<method>`` with ``payload`` as JSON; the JSON answer (SystemError when unusable)."""
        session, base = self._session_and_base()
        headers = {"Accept": MIME, "Content-Type": MIME}
        try:
            async with session.post(f"{base}/{method}", data=json.dumps(payload), headers=headers) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise SystemError(f"{method}: {_remote_error(text) or f'{resp.status} {resp.reason}'}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SystemError(f"{method}: {exc or exc.__class__.__name__}") from None
        try:
            answer = json.loads(text or "{}")
        except ValueError as exc:
            raise SystemError(f"{method}: decoding the answer: {exc}") from None
        return answer if isinstance(answer, dict) else {}

    async def activate(self) -> None:
        answer = await self.call("Plugin.Activate", None)
        if IMPLEMENTS not in (answer.get("Implements") or []):
            raise ConfigError(
                f"plugin {self.name} does not implement {IMPLEMENTS}: it implements {answer.get('Implements')}"
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _remote_error(text: str) -> str:
    try:
        return str(json.loads(text).get("Err") or "")
    except (ValueError, AttributeError):
        return text.strip()


def send_body(uri: str, content_type: str) -> bool:
    """dockerd's ``sendBody``: JSON bodies only, and never the body of ``/auth`` (registry passwords)."""
    return not uri.split("?", 1)[0].endswith("/auth") and content_type.split(";", 1)[0].strip() == "application/json"


def _b64(body: bytes | None) -> str | None:
    return base64.b64encode(body).decode() if body else None


@dataclass
class AuthzRequest:
    """What the plugins see of one API call (moby's ``authorization.Request``)."""

    user: str
    method: str
    uri: str
    headers: dict[str, str]
    body: bytes
    response_status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "User": self.user,
            "UserAuthNMethod": "TLS" if self.user else "",
            "RequestMethod": self.method,
            "RequestURI": self.uri,
            "RequestBody": _b64(self.body),
            "RequestHeaders": self.headers,
        }
        if self.response_status:
            out["ResponseStatusCode"] = self.response_status
            out["ResponseHeaders"] = self.response_headers
            out["ResponseBody"] = _b64(self.response_body)
        return out


class AuthzChain:
    """The configured out-of-process plugins, asked in order; the first deny stops the call."""

    def __init__(self, plugins: Iterable[PluginClient] = ()) -> None:
        self.plugins = list(plugins)

    def __bool__(self) -> bool:
        return bool(self.plugins)

    @classmethod
    async def load(cls, names: Iterable[str], in_process: Iterable[str]) -> AuthzChain:
        """Find and activate every named plugin that is not an in-process one.

        :raises ConfigError: "failed to validate authorization plugin: ..." for a missing, unreachable
            or non-authz plugin (dockerd refuses to start, and to reload, the same way).
        """
        local = set(in_process)
        plugins = []
        try:
            for name in names:
                if name in local:
                    continue
                plugin = PluginClient(name, find_plugin(name))
                plugins.append(plugin)
                try:
                    await plugin.activate()
                except SystemError as exc:
                    raise ConfigError(f"plugin {name}: {exc.message}") from None
        except ConfigError as exc:
            for plugin in plugins:
                await plugin.close()
            raise ConfigError(f"failed to validate authorization plugin: {exc.message}") from None
        return cls(plugins)

    async def close(self) -> None:
        for plugin in self.plugins:
            await plugin.close()

    async def authorize_request(self, req: AuthzRequest) -> None:
        await self._ask("AuthZPlugin.AuthZReq", req)

    async def authorize_response(self, req: AuthzRequest) -> None:
        await self._ask("AuthZPlugin.AuthZRes", req)

    async def _ask(self, method: str, req: AuthzRequest) -> None:
        payload = req.payload()
        for plugin in self.plugins:
            log.debug("AuthZ request using plugin %s", plugin.name)
            try:
                answer = await plugin.call(method, payload)
            except SystemError as exc:
                raise SystemError(f"plugin {plugin.name} failed with error: {exc.message}") from None
            if answer.get("Err"):
                raise SystemError(f"plugin {plugin.name} failed with error: {answer['Err']}")
            if not answer.get("Allow"):
                raise Forbidden(f"authorization denied by plugin {plugin.name}: {answer.get('Msg', '')}")
