"""Registry failures worded as dockerd 20.10 shows them.

A registry answers errors as ``{"errors":[{"code":"MANIFEST_UNKNOWN","message":"...","detail":...}]}``;
Go's errcode prints one as ``<code, lowercased, _ as space>: <message>``. Transport failures carry
Go's ``<Method> "<url>": <cause>`` form (``dial tcp 127.0.0.1:1: connect: connection refused``).
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
from dataclasses import dataclass
from http import HTTPStatus

from engine.errors import EngineError


@dataclass(frozen=True)
class ErrorCode:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code.lower().replace('_', ' ')}: {self.message}"


class RegistryError(EngineError):
    """The registry refused a request; ``codes`` are its errcode entries (the first one counts)."""

    status = 500

    def __init__(self, http_status: int, codes: list[ErrorCode], text: str) -> None:
        super().__init__(text)
        self.http_status = http_status
        self.codes = codes

    @property
    def code(self) -> str:
        return self.codes[0].code if self.codes else ""


class TransportError(EngineError):
    """No HTTP answer (refused, TLS mismatch, timeout): worth retrying or falling back to plain HTTP."""

    status = 500


def from_response(status: int, body: bytes) -> RegistryError:
    """The error a non-2xx answer stands for (distribution's client.HandleErrorResponse)."""
    codes: list[ErrorCode] = []
    try:
        data = json.loads(body or b"{}")
        for entry in data.get("errors") or []:
            codes.append(ErrorCode(str(entry.get("code") or "UNKNOWN"), str(entry.get("message") or "")))
    except (ValueError, AttributeError):
        codes = []
    if codes:
        return RegistryError(status, codes, str(codes[0]))
    if status == 401:
        code = ErrorCode("UNAUTHORIZED", "authentication required")
        return RegistryError(status, [code], str(code))
    if status == 404:
        # a HEAD has no body: distribution's client reports the bare status
        return RegistryError(status, [], f"unexpected status code {status} {reason_phrase(status)}")
    reason = reason_phrase(status)
    return RegistryError(status, [], f"received unexpected HTTP status: {status} {reason}")


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def transport_error(method: str, url: str, host: str, exc: BaseException) -> TransportError:
    """``Get "http://h/v2/": dial tcp h: connect: connection refused`` and friends."""
    verb = method.capitalize()
    if isinstance(exc, ssl.SSLError):
        cause = "http: server gave HTTP response to HTTPS client"
        if "WRONG_VERSION_NUMBER" not in str(exc) and "record layer failure" not in str(exc):
            cause = f"tls: {exc.reason or exc}"
    elif isinstance(exc, ConnectionRefusedError):
        cause = f"dial tcp {host}: connect: connection refused"
    elif isinstance(exc, socket.gaierror):
        cause = f"dial tcp: lookup {host.rsplit(':', 1)[0]}: no such host"
    elif isinstance(exc, TimeoutError | socket.timeout):
        cause = f"dial tcp {host}: i/o timeout"
    elif isinstance(exc, OSError) and exc.errno == errno.ECONNRESET:
        cause = "read: connection reset by peer"
    else:
        cause = str(exc) or type(exc).__name__
    return TransportError(f'{verb} "{url}": {cause}')
