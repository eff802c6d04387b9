"""Request parsing and response shaping shared by every route module."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from engine.api import bodies
from engine.api.keys import READ_BODY
from engine.errors import InvalidParameter


def dumps(data: Any) -> str:
    """Go's encoding/json output: compact, one trailing newline."""
    return json.dumps(data, separators=(",", ":")) + "\n"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data).encode(), status=status, content_type="application/json")


def no_content() -> web.Response:
    return web.Response(status=204)


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolValue: absent -> default; "", "0", "no", "false", "none" -> False; else True."""
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in ("", "0", "no", "false", "none")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {raw!r}") from None


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refused (400) past ``limit`` bytes rather than held in memory."""
    already = request.get(READ_BODY)
    if already is not None:  # the authorization middleware read it (small JSON bodies only)
        if len(already) > limit:
            raise InvalidParameter(f"request body too large: more than {limit} bytes")
        return already
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(1 << 16):
        size += len(chunk)
        if size > limit:
            raise InvalidParameter(f"request body too large: more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, *, required: bool = False, schema: str | None = None) -> dict[str, Any]:
    """The JSON body as a dict, checked against the Engine API definition ``schema`` (engine.api.bodies);
    an empty body is ``{}`` unless ``required``."""
    raw = await read_body(request, bodies.MAX_JSON_BODY)
    if not raw.strip():
        if required:
            raise InvalidParameter("request body is required")
        return {}
    data = bodies.loads(raw)
    if data is None:
        return {}
    if schema is not None:
        data = bodies.check(schema, data)
    if not isinstance(data, dict):
        raise InvalidParameter("invalid JSON: expected an object")
    return data


def api_version(request: web.Request) -> tuple[int, int]:
    """The API version the client asked for (the path's /vX.Y, else the daemon's)."""
    return request.get("api_version", (1, 41))


def version_tuple(raw: str) -> tuple[int, int]:
    major, _, minor = raw.partition(".")
    return int(major), int(minor or 0)
