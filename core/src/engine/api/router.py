"""Every Docker route is served both unversioned and under ``/vX.Y``.

Each route is registered once, unversioned; :class:`VersionedDispatcher` strips the ``/vX.Y`` prefix
before matching and hands the version to the ``api_versions`` middleware as ``match_info["version"]``.
Registering every route twice under ``/v{version}/…`` put all the versioned ones under one key of
aiohttp's resource index, so each versioned request tried ~100 route regexes in turn (a third of
the time of ``GET /v1.41/containers/json``), and doubled the routes built at start-up.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_urldispatcher import UrlMappingMatchInfo

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: the ``/vX.Y`` prefix and the path behind it (raw, still percent-encoded)
VERSIONED_PATH = re.compile(r"/v([0-9]+\.[0-9]+)(/.*)", re.DOTALL)


class VersionedDispatcher(web.UrlDispatcher):
    """aiohttp's dispatcher, matching ``/vX.Y/path`` as ``/path`` with ``version`` in the match info."""

    async def resolve(self, request: web.Request) -> UrlMappingMatchInfo:
        raw = request.rel_url.raw_path
        found = VERSIONED_PATH.fullmatch(raw) if raw.startswith("/v") else None
        if found is None:
            return await super().resolve(request)
        unversioned = request.clone(rel_url=request.rel_url.with_path(found.group(2), encoded=True))
        match_info = await super().resolve(unversioned)
        if match_info.http_exception is None:
            match_info["version"] = found.group(1)
        return match_info


def make_application(**kwargs: object) -> web.Application:
    """``web.Application`` with the :class:`VersionedDispatcher` (aiohttp 3 deprecates passing a router,
    without a replacement yet; the warning is silenced here only)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "router argument is deprecated", DeprecationWarning)
        return web.Application(router=VersionedDispatcher(), **kwargs)  # type: ignore[arg-type]


class Router:
    def __init__(self, app: web.Application) -> None:
        self.app = app

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, handler)

    def get(self, path: str, handler: Handler) -> None:
        # aiohttp adds HEAD for GET routes unless told otherwise; Docker's HEAD routes are explicit
        self.app.router.add_get(path, handler, allow_head=False)

    def post(self, path: str, handler: Handler) -> None:
        self.add("POST", path, handler)

    def put(self, path: str, handler: Handler) -> None:
        self.add("PUT", path, handler)

    def delete(self, path: str, handler: Handler) -> None:
        self.add("DELETE", path, handler)

    def head(self, path: str, handler: Handler) -> None:
        self.add("HEAD", path, handler)
