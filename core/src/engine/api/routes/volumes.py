"""Volume routes: /volumes (list, inspect, create, remove, prune), as dockerd 20.10's volume router."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.api.keys import DAEMON
from engine.api.router import Router
from engine.api.util import json_response, no_content, query_bool
from engine.errors import InvalidParameter
from engine.filters import Filters

if TYPE_CHECKING:
    from engine.volumes import VolumeService


def _service(request: web.Request) -> VolumeService:
    return request.app[DAEMON].volumes


def _filters(request: web.Request, what: str) -> Filters:
    try:
        return Filters.parse(request.query.get("filters"))
    except InvalidParameter as exc:
        raise InvalidParameter(f"error reading {what} filters: {exc.message}") from None


async def list_volumes(request: web.Request) -> web.Response:
    service = _service(request)
    filters = _filters(request, "volume")
    volumes = await asyncio.to_thread(service.list, filters)
    return json_response({"Volumes": [v.to_api() for v in volumes], "Warnings": None})


async def inspect_volume(request: web.Request) -> web.Response:
    volume = await asyncio.to_thread(_service(request).get, request.match_info["name"])
    return json_response(volume.to_api())


_CREATE_FIELDS = {
    "Name": "string",
    "Driver": "string",
    "DriverOpts": "map[string]string",
    "Labels": "map[string]string",
}


def _check_create_body(body: Any) -> dict[str, Any]:
    """Decode ``VolumeCreateBody`` as Go's encoding/json would (wrong types are Go's message)."""
    if not isinstance(body, dict):
        kind = "array" if isinstance(body, list) else "value"
        raise InvalidParameter(f"json: cannot unmarshal {kind} into Go value of type volume.VolumeCreateBody")
    for key, go_type in _CREATE_FIELDS.items():
        value = body.get(key)
        if value is None:
            continue
        if go_type == "string" and not isinstance(value, str):
            raise InvalidParameter(
                f"json: cannot unmarshal {_kind(value)} into Go struct field VolumeCreateBody.{key} of type string"
            )
        if go_type != "string":
            if not isinstance(value, dict):
                raise InvalidParameter(
                    f"json: cannot unmarshal {_kind(value)} into Go struct field VolumeCreateBody.{key} of type {go_type}"
                )
            for item in value.values():
                if not isinstance(item, str):
                    raise InvalidParameter(
                        f"json: cannot unmarshal {_kind(item)} into Go struct field VolumeCreateBody.{key} of type string"
                    )
    return body


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


async def create_volume(request: web.Request) -> web.Response:
    content_type = request.headers.get("Content-Type", "")
    raw = await request.read()
    if content_type and content_type.split(";")[0].strip() != "application/json":
        raise InvalidParameter(f"Content-Type specified ({content_type}) must be 'application/json'")
    if not raw.strip():
        raise InvalidParameter("got EOF while reading request body")
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidParameter(f"invalid character in request body: {exc}") from None
    body = _check_create_body(body)
    volume = await asyncio.to_thread(
        _service(request).create,
        body.get("Name") or None,
        body.get("Driver") or "local",
        body.get("DriverOpts"),
        body.get("Labels"),
    )
    return json_response(volume.to_api(), status=201)


async def remove_volume(request: web.Request) -> web.Response:
    force = query_bool(request, "force")
    await asyncio.to_thread(_service(request).remove, request.match_info["name"], force)
    return no_content()


async def prune_volumes(request: web.Request) -> web.Response:
    filters = Filters.parse(request.query.get("filters"))
    report = await asyncio.to_thread(_service(request).prune, filters)
    return json_response(report)


def setup(router: Router) -> None:
    router.get("/volumes", list_volumes)
    router.post("/volumes/create", create_volume)
    router.post("/volumes/prune", prune_volumes)
    router.get("/volumes/{name}", inspect_volume)
    router.delete("/volumes/{name}", remove_volume)
