"""Network routes: /networks (list, inspect, create, remove, connect, disconnect, prune)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.api.keys import DAEMON
from engine.api.router import Router
from engine.api.util import json_response, no_content, read_json
from engine.errors import InvalidParameter, NotFound
from engine.filters import Filters
from engine.networks.controller import NETWORK_FILTERS

if TYPE_CHECKING:
    from engine.networks import NetworkController


def _controller(request: web.Request) -> NetworkController:
    return request.app[DAEMON].networks


async def list_networks(request: web.Request) -> web.Response:
    ctl = _controller(request)
    filters = Filters.parse(request.query.get("filters"), NETWORK_FILTERS)

    def run() -> list[dict[str, Any]]:
        # dockerd 20.10 lists networks without their containers
        return [ctl.inspect(net, with_containers=False) for net in ctl.list(filters)]

    return json_response(await asyncio.to_thread(run))


async def inspect_network(request: web.Request) -> web.Response:
    ctl = _controller(request)
    ref = request.match_info["id"]
    scope = request.query.get("scope", "")

    def run() -> dict[str, Any]:
        net = ctl.get(ref)
        if scope and scope != net.scope:
            raise NotFound(f"network {ref} not found")
        return ctl.inspect(net)

    return json_response(await asyncio.to_thread(run))


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {what}: expected an object")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


async def create_network(request: web.Request) -> web.Response:
    ctl = _controller(request)
    body = await read_json(request, required=True, schema="NetworkCreateRequest")
    name = body.get("Name") or ""
    if body.get("Ingress"):
        raise InvalidParameter("ingress networks need swarm mode")
    if body.get("ConfigOnly") or (body.get("ConfigFrom") or {}).get("Network"):
        raise InvalidParameter("config-only networks are not supported")

    def run() -> Any:
        return ctl.create_network(
            name,
            body.get("Driver") or "bridge",
            options=_string_map(body.get("Options"), "options"),
            ipam=body.get("IPAM") or {},
            internal=bool(body.get("Internal")),
            attachable=bool(body.get("Attachable")),
            enable_ipv6=bool(body.get("EnableIPv6")),
            labels=_string_map(body.get("Labels"), "labels"),
            # API <= 1.43: a duplicate name is only refused when asked (the docker CLI always asks)
            check_duplicate=bool(body.get("CheckDuplicate")),
        )

    net = await asyncio.to_thread(run)
    return json_response({"Id": net.id, "Warning": ""}, status=201)


async def delete_network(request: web.Request) -> web.Response:
    ctl = _controller(request)
    await asyncio.to_thread(ctl.remove, request.match_info["id"])
    return no_content()


async def connect(request: web.Request) -> web.Response:
    body = await read_json(request, required=True, schema="NetworkConnect")
    await asyncio.to_thread(
        request.app[DAEMON].containers.connect_network,
        request.match_info["id"],
        body.get("Container") or "",
        body.get("EndpointConfig") or {},
    )
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    body = await read_json(request, required=True, schema="NetworkDisconnect")
    await asyncio.to_thread(
        request.app[DAEMON].containers.disconnect_network,
        request.match_info["id"],
        body.get("Container") or "",
        force=bool(body.get("Force")),
    )
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    ctl = _controller(request)
    filters = Filters.parse(request.query.get("filters"), ("until", "label", "label!"))
    removed = await asyncio.to_thread(ctl.prune, filters)
    return json_response({"NetworksDeleted": removed or None})


def setup(router: Router) -> None:
    router.get("/networks", list_networks)
    router.get("/networks/", list_networks)
    router.post("/networks/create", create_network)
    router.post("/networks/prune", prune)
    router.get("/networks/{id}", inspect_network)
    router.delete("/networks/{id}", delete_network)
    router.post("/networks/{id}/connect", connect)
    router.post("/networks/{id}/disconnect", disconnect)
