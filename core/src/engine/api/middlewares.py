"""Middlewares, outermost first: Docker's error form, API version checks, authorization."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from engine import API_VERSION, MIN_API_VERSION
from engine.api import authz
from engine.api.keys import DAEMON, READ_BODY
from engine.api.protocol import UnexpectedEOF
from engine.api.util import dumps, version_tuple
from engine.errors import EngineError, Forbidden, InvalidParameter, os_error_message

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=dumps({"message": message}).encode(), content_type="application/json")


def _payload_message(exc: Exception) -> str:
    """Go's words for a body that could not be read."""
    if isinstance(exc, UnexpectedEOF):
        return "unexpected EOF"
    text = str(exc)
    if "too large" in text:
        return "http chunk length too large"
    if "Not enough data" in text:
        return "unexpected EOF"
    return "invalid byte in chunk length"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map engine errors and aiohttp's own HTTP errors to ``{"message": ...}`` responses."""
    try:
        return await handler(request)
    except EngineError as exc:
        if exc.status == 304:
            return web.Response(status=304)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc.message)
        return error_response(exc.status, exc.message)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        # dockerd answers both an unknown path and a known path with the wrong method this way
        return error_response(404, "page not found")
    except web.HTTPException:
        raise
    except (ConnectionResetError, BrokenPipeError):
        raise
    except (RequestPayloadError, UnexpectedEOF) as exc:
        # a body cut short or badly chunked: the client's error; the connection cannot be reused
        request.protocol.keep_alive(False)
        return error_response(400, _payload_message(exc))
    except OSError as exc:  # the host's trouble (a full disk, an I/O error), not a bug: no traceback
        message = os_error_message(exc)
        log.error("%s %s: %s", request.method, request.path, message)
        return error_response(500, message)
    except Exception as exc:
        if isinstance(exc, ValueError) and "embedded null byte" in str(exc):
            # a NUL in a path or an argument the client sent: Go's syscalls answer EINVAL
            return error_response(400, "invalid argument: the request has a NUL byte in a path or an argument")
        # a bug: answer like dockerd (500 with the message), log the traceback
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, str(exc) or exc.__class__.__name__)


MAX_VERSION = version_tuple(API_VERSION)
MIN_VERSION = version_tuple(MIN_API_VERSION)


@web.middleware
async def api_versions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the ``/vX.Y`` prefix: too new or too old is a 400, as dockerd answers.

    A path no route matches is a 404 whatever its version, as dockerd's not-found handler.
    """
    if request.match_info.http_exception is not None:
        return await handler(request)
    raw = request.match_info.get("version")
    if raw is not None:
        version = version_tuple(raw)
        if version > MAX_VERSION:
            raise InvalidParameter(f"client version {raw} is too new. Maximum supported API version is {API_VERSION}")
        if version < MIN_VERSION:
            raise InvalidParameter(
                f"client version {raw} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version"
            )
        request["api_version"] = version
    else:
        request["api_version"] = MAX_VERSION
    return await handler(request)


def tls_user(request: web.Request) -> str:
    """The authenticated user of an API request: its TLS client certificate's common name, as dockerd."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is None:
        return ""
    cert = ssl_object.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return ""


def _canonical_headers(headers: Any) -> dict[str, str]:
    """A header map as Go's ``http.Header`` shows it to plugins: canonical keys, first value of each."""
    out: dict[str, str] = {}
    for key, value in headers.items():
        out.setdefault("-".join(part.capitalize() for part in key.split("-")), value)
    return out


@web.middleware
async def authorization(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Ask the in-process ``engine_authorize_request`` implementations, then the out-of-process
    authorization plugins (AuthZReq); any deny is a 403 naming the plugin, as moby's authorization
    chain answers ("authorization denied by plugin <name>: <msg>"). The plugins see a buffered
    response too (AuthZRes) and may still deny it; a streamed response has gone out already."""
    daemon = request.app[DAEMON]
    hooks, chain = daemon.hooks, daemon.authz
    in_process = hooks.wants_authorization()  # once per request: it lists the hook implementations
    if not chain and not in_process:
        return await handler(request)
    uri = request.raw_path
    body = b""
    if (
        authz.send_body(uri, request.headers.get("Content-Type", ""))
        and 0 < (request.content_length or 0) < authz.MAX_BODY
    ):
        body = await request.read()
        request[READ_BODY] = body
    user = tls_user(request)
    headers = _canonical_headers(request.headers)
    if in_process:
        denied = hooks.authorize_request(user, request.method, str(request.rel_url), headers, body)
        if denied is not None:
            plugin, message = denied
            raise Forbidden(f"authorization denied by plugin {plugin}: {message}")
    if not chain:
        return await handler(request)
    req = authz.AuthzRequest(user, request.method, uri, headers, body)
    await chain.authorize_request(req)
    try:
        response = await handler(request)
    except EngineError as exc:  # the plugins see error answers too
        if exc.status == 304:
            raise
        response = error_response(exc.status, exc.message)
    if isinstance(response, web.Response) and not response.prepared:
        req.response_status = response.status
        req.response_headers = _canonical_headers(response.headers)
        if authz.send_body(uri, response.headers.get("Content-Type", "")) and isinstance(response.body, bytes):
            req.response_body = response.body
        await chain.authorize_response(req)
    return response
