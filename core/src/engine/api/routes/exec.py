"""Exec routes: ``POST /containers/{id}/exec``, ``POST /exec/{id}/start|resize``, ``GET /exec/{id}/json``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from engine.api.keys import DAEMON
from engine.api.router import Router
from engine.api.streams import hijack
from engine.api.util import json_response, query_int, read_json

if TYPE_CHECKING:
    from engine.containers.exec import ExecManager


def _execs(request: web.Request) -> ExecManager:
    return request.app[DAEMON].containers.execs


async def create(request: web.Request) -> web.Response:
    body = await read_json(request, required=True, schema="ExecConfig")
    exec_id = await asyncio.to_thread(_execs(request).create, request.match_info["id"], body)
    return json_response({"Id": exec_id}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, schema="ExecStartConfig")
    execs = _execs(request)
    instance, container = await asyncio.to_thread(execs.begin, request.match_info["id"])
    console_size = body.get("ConsoleSize")
    if body.get("Detach"):
        await execs.start(instance, container, None, console_size)
        return web.Response(status=200, content_type="application/json")
    conn = await hijack(request)
    await execs.start(instance, container, conn, console_size)
    return conn.response


async def resize(request: web.Request) -> web.Response:
    height = query_int(request, "h", 0) or 0
    width = query_int(request, "w", 0) or 0
    await asyncio.to_thread(_execs(request).resize, request.match_info["id"], height, width)
    return web.Response(status=200, content_type="text/plain")


async def inspect(request: web.Request) -> web.Response:
    return json_response(_execs(request).inspect(request.match_info["id"]))


def setup(router: Router) -> None:
    router.post("/containers/{id}/exec", create)
    router.post("/exec/{id}/start", start)
    router.post("/exec/{id}/resize", resize)
    router.get("/exec/{id}/json", inspect)
