"""Image routes: list, inspect, history, tag, remove, prune, import/pull, save/load, search, push.

Handlers parse and shape only; the blocking work runs in :class:`engine.images.service.ImageService`
on worker threads. Request bodies (import, load) reach those threads through a blocking reader
over the aiohttp stream; responses they stream (progress, archives) come back the same way.
Progress streams end lines with ``\\r\\n`` as dockerd's streamformatter does.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

from aiohttp import web

from engine.api.keys import DAEMON
from engine.api.router import Router
from engine.api.streams import body_reader, in_upload_thread
from engine.api.util import json_response, query_bool, read_json
from engine.distribution.auth import AuthConfig
from engine.errors import EngineError, InvalidParameter, SystemError
from engine.filters import Filters
from engine.images import gojson
from engine.images.service import ImageService


def _images(request: web.Request) -> ImageService:
    return request.app[DAEMON].images


class ProgressStream:
    """A JSON message stream worker threads can write to; prepared at the first message."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(status=200)
        self.response.content_type = "application/json"
        self.started = False
        self._loop = asyncio.get_running_loop()

    async def send(self, message: dict[str, Any]) -> None:
        if not self.started:
            self.started = True
            await self.response.prepare(self.request)
        await self.response.write(gojson.dumps_bytes(message) + b"\r\n")

    def emit(self, message: dict[str, Any]) -> None:
        """Called from a worker thread."""
        asyncio.run_coroutine_threadsafe(self.send(message), self._loop).result()

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> web.StreamResponse:
        """Run ``fn`` in a thread; an error before the first message is a plain error response."""
        return await self.run_in(asyncio.to_thread, fn, *args, **kwargs)

    async def run_upload(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> web.StreamResponse:
        """:meth:`run` for work that reads the request body: on an upload thread (engine.api.streams)."""
        return await self.run_in(in_upload_thread, fn, *args, **kwargs)

    async def run_in(self, runner: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> web.StreamResponse:
        try:
            await runner(fn, *args, **kwargs)
        except Exception as exc:
            if not self.started:
                raise
            message = exc.message if isinstance(exc, EngineError) else str(exc) or type(exc).__name__
            await self.send({"errorDetail": {"message": message}, "error": message})
        if not self.started:
            self.started = True
            await self.response.prepare(self.request)
        await self.response.write_eof()
        return self.response


class ResponseWriter(io.RawIOBase):
    """A blocking writer into a prepared streaming response, for worker threads (archives)."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._response = response
        self._loop = loop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if chunk:
            asyncio.run_coroutine_threadsafe(self._response.write(chunk), self._loop).result()
        return len(chunk)


# -- handlers ------------------------------------------------------------------------------------------------


async def list_images(request: web.Request) -> web.Response:
    filters = Filters.parse(request.query.get("filters"))
    legacy = request.query.get("filter")
    if legacy:
        filters.values.setdefault("reference", set()).add(legacy)
    data = await asyncio.to_thread(_images(request).list_images, filters, query_bool(request, "all"))
    return json_response(data)


async def inspect(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(_images(request).inspect, request.match_info["name"]))


async def history(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(_images(request).history, request.match_info["name"]))


async def tag(request: web.Request) -> web.Response:
    await asyncio.to_thread(
        _images(request).tag, request.match_info["name"], request.query.get("repo", ""), request.query.get("tag", "")
    )
    return web.Response(status=201)


async def delete(request: web.Request) -> web.Response:
    records = await asyncio.to_thread(
        _images(request).delete,
        request.match_info["name"],
        query_bool(request, "force"),
        not query_bool(request, "noprune"),
    )
    return json_response(records)


async def prune(request: web.Request) -> web.Response:
    filters = Filters.parse(request.query.get("filters"))
    return json_response(await asyncio.to_thread(_images(request).prune, filters))


async def create(request: web.Request) -> web.StreamResponse:
    """Pull (``fromImage``) or import (``fromSrc``)."""
    images = _images(request)
    from_image = request.query.get("fromImage", "")
    if from_image:
        tag_ = request.query.get("tag", "")
        all_tags = not tag_ and await asyncio.to_thread(_name_only, from_image)
        stream = ProgressStream(request)
        return await stream.run(
            images.pull,
            from_image,
            tag_,
            all_tags=all_tags,
            auth=AuthConfig.from_header(request.headers.get("X-Registry-Auth")),
            platform=request.query.get("platform", ""),
            emit=stream.emit,
        )
    src = request.query.get("fromSrc", "")
    if not src:
        raise InvalidParameter("either fromImage or fromSrc must be given")
    platform = request.query.get("platform", "")
    os_name = platform.partition("/")[0] if platform else ""
    if os_name and os_name != "linux":
        raise InvalidParameter(f'"{platform}": operating system is not supported')
    stream = ProgressStream(request)
    return await (stream.run_upload if src == "-" else stream.run)(
        images.import_image,
        src,
        body_reader(request) if src == "-" else None,
        repo=request.query.get("repo", ""),
        tag=request.query.get("tag", ""),
        message=request.query.get("message", ""),
        changes=request.query.getall("changes", []),
        os_name=os_name,
        emit=stream.emit,
    )


async def load(request: web.Request) -> web.StreamResponse:
    quiet = query_bool(request, "quiet", True)
    stream = ProgressStream(request)
    return await stream.run_upload(_images(request).load, body_reader(request), stream.emit, quiet)


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    images = _images(request)
    plan = await asyncio.to_thread(images.save_plan, names)
    response = web.StreamResponse(status=200)
    response.content_type = "application/x-tar"
    try:
        await response.prepare(request)
    except BaseException:
        await asyncio.to_thread(images.release_plan, plan)
        raise
    writer = io.BufferedWriter(ResponseWriter(response, asyncio.get_running_loop()), buffer_size=1 << 18)

    def run() -> None:
        images.save(plan, writer)
        writer.flush()

    try:
        await asyncio.to_thread(run)
    except Exception:
        # the archive is half sent: dockerd, too, can only cut the connection
        request.protocol.force_close()  # type: ignore[union-attr]
        raise
    await response.write_eof()
    return response


async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def save_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


async def search(request: web.Request) -> web.Response:
    term = request.query.get("term", "")
    limit = request.query.get("limit", "") or "25"
    raise SystemError(
        f'Get "https://index.docker.io/v1/search?q={term}&n={limit}": dial tcp: lookup index.docker.io: no such host'
    )


async def push(request: web.Request) -> web.StreamResponse:
    """Push one tag, or every tag of the repository when ``tag`` is empty (``docker push -a``)."""
    stream = ProgressStream(request)
    return await stream.run(
        _images(request).push,
        request.match_info["name"],
        request.query.get("tag", ""),
        auth=AuthConfig.from_header(request.headers.get("X-Registry-Auth")),
        emit=stream.emit,
    )


async def auth(request: web.Request) -> web.Response:
    """``POST /auth`` (docker login): checked against the registry's /v2/ as dockerd does."""
    body = await read_json(request, schema="AuthConfig")
    status = await asyncio.to_thread(_images(request).login, AuthConfig.from_json(body))
    return json_response({"Status": status, "IdentityToken": ""})


def _name_only(image: str) -> bool:
    from engine.images.references import parse_normalized_named

    return parse_normalized_named(image).name_only


def setup(router: Router) -> None:
    router.get("/images/json", list_images)
    router.get("/images/search", search)
    router.get("/images/get", save_many)
    router.post("/images/create", create)
    router.post("/images/load", load)
    router.post("/images/prune", prune)
    router.get("/images/{name:.+}/json", inspect)
    router.get("/images/{name:.+}/history", history)
    router.get("/images/{name:.+}/get", save_one)
    router.post("/images/{name:.+}/tag", tag)
    router.post("/images/{name:.+}/push", push)
    router.delete("/images/{name:.+}", delete)
    router.post("/auth", auth)  # the registry login: with pull/push, the daemon's other registry client route
