"""Endpoints of features engine does not serve, answering as dockerd does when they are off."""

from __future__ import annotations

from aiohttp import web

from engine.api.router import Router
from engine.api.util import json_response
from engine.errors import NotFound, Unavailable

NOT_SWARM = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.'


async def not_a_swarm_manager(request: web.Request) -> web.Response:
    raise Unavailable(NOT_SWARM)


async def swarm_inspect(request: web.Request) -> web.Response:
    raise Unavailable(NOT_SWARM)


async def no_plugins(request: web.Request) -> web.Response:
    return json_response([])


async def no_such_plugin(request: web.Request) -> web.Response:
    raise NotFound(f'plugin "{request.match_info["name"]}" not found')


async def build_prune(request: web.Request) -> web.Response:
    # `docker system prune` always calls this (API >= 1.31). POST /build itself is served now
    # (routes/build.py, the classic builder); its cache is made of ordinary parent/child images,
    # which image prune removes, so there is no separate BuildKit cache store to prune here
    return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


async def options(request: web.Request) -> web.Response:
    return web.Response(status=200)


SWARM_RESOURCES = ("/services", "/nodes", "/tasks", "/secrets", "/configs")


def setup(router: Router) -> None:
    router.get("/swarm", swarm_inspect)
    for path in ("/swarm/init", "/swarm/join", "/swarm/leave", "/swarm/update", "/swarm/unlock"):
        router.post(path, not_a_swarm_manager)
    router.get("/swarm/unlockkey", not_a_swarm_manager)
    for resource in SWARM_RESOURCES:
        router.get(resource, not_a_swarm_manager)
        router.post(resource + "/create", not_a_swarm_manager)
        router.get(resource + "/{id}", not_a_swarm_manager)
        router.delete(resource + "/{id}", not_a_swarm_manager)
        router.post(resource + "/{id}/update", not_a_swarm_manager)
    router.get("/services/{id}/logs", not_a_swarm_manager)
    router.get("/tasks/{id}/logs", not_a_swarm_manager)
    router.get("/plugins", no_plugins)
    # no managed plugins: drivers are Python distributions, listed by GET /info under Plugins
    router.get("/plugins/{name}/json", no_such_plugin)
    router.delete("/plugins/{name}", no_such_plugin)
    for action in ("enable", "disable", "push", "set", "upgrade"):
        router.post("/plugins/{name}/" + action, no_such_plugin)
    router.post("/build/prune", build_prune)
    # CORS preflight: any path answers 200 (dockerd's options route); with the catch-all, a wrong
    # method on an unknown path is a 405, which the error middleware turns into dockerd's 404
    router.app.router.add_route("OPTIONS", "/{tail:.*}", options)
