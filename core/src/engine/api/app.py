"""The aiohttp application: middlewares, Docker's response headers, and every route module."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from aiohttp import web

from engine import API_VERSION, DOCKER_VERSION
from engine.api import middlewares
from engine.api.keys import DAEMON, OPEN_STREAMS
from engine.api.router import Router, make_application
from engine.api.routes import ROUTE_MODULES

if TYPE_CHECKING:
    from engine.daemon import Daemon


async def _docker_headers(request: web.Request, response: web.StreamResponse) -> None:
    daemon = request.app[DAEMON]
    response.headers["Server"] = f"Docker/{DOCKER_VERSION} (linux)"
    response.headers["Api-Version"] = API_VERSION
    response.headers["Ostype"] = "linux"
    response.headers["Docker-Experimental"] = "true" if daemon.config["experimental"] else "false"
    cors = daemon.config["api-cors-header"]
    if cors:
        response.headers["Access-Control-Allow-Origin"] = cors
        response.headers["Access-Control-Allow-Headers"] = (
            "Origin, X-Requested-With, Content-Type, Accept, X-Registry-Auth"
        )
        response.headers["Access-Control-Allow-Methods"] = "HEAD, GET, POST, DELETE, PUT, OPTIONS"


async def _close_open_streams(app: web.Application) -> None:
    for stream in list(app[OPEN_STREAMS]):
        stream.close()


def make_app(daemon: Daemon) -> web.Application:
    app = make_application(
        middlewares=[middlewares.errors, middlewares.api_versions, middlewares.authorization],
        client_max_size=0,  # image loads and archive uploads are unbounded streams
    )
    app[DAEMON] = daemon
    app[OPEN_STREAMS] = weakref.WeakSet()
    app.on_response_prepare.append(_docker_headers)
    app.on_shutdown.append(_close_open_streams)
    router = Router(app)
    for module in ROUTE_MODULES:
        module.setup(router)
    return app
