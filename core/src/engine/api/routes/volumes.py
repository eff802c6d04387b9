"""Volume routes: /volumes (list, inspect, create, remove, prune), as dockerd 20.10's volume router."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from engine.api import bodies
from engine.api.keys import DAEMON
from engine.api.router import Router
from engine.api.util import json_response, no_content, query_bool, read_body
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


async def create_volume(request: web.Request) -> web.Response:
    content_type = request.headers.get("Content-Type", "")
    raw = await read_body(request, bodies.MAX_JSON_BODY)
    if content_type and content_type.split(";")[0].strip() != "application/json":
        raise InvalidParameter(f"Content-Type specified ({content_type}) must be 'application/json'")
    if not raw.strip():
        raise InvalidParameter("got EOF while reading request body")
    body = bodies.check("VolumeCreateBody", bodies.loads(raw)) or {}
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
