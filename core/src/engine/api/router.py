"""Every Docker route is served both unversioned and under ``/vX.Y``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

VERSION_PREFIX = r"/v{version:[0-9]+\.[0-9]+}"


class Router:
    def __init__(self, app: web.Application) -> None:
        self.app = app

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, handler)
        self.app.router.add_route(method, VERSION_PREFIX + path, handler)

    def get(self, path: str, handler: Handler) -> None:
        # aiohttp adds HEAD for GET routes unless told otherwise; Docker's HEAD routes are explicit
        self.app.router.add_get(path, handler, allow_head=False)
        self.app.router.add_get(VERSION_PREFIX + path, handler, allow_head=False)

    def post(self, path: str, handler: Handler) -> None:
        self.add("POST", path, handler)

    def put(self, path: str, handler: Handler) -> None:
        self.add("PUT", path, handler)

    def delete(self, path: str, handler: Handler) -> None:
        self.add("DELETE", path, handler)

    def head(self, path: str, handler: Handler) -> None:
        self.add("HEAD", path, handler)
