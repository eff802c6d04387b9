"""Container routes: parse the request, call ``daemon.containers``, shape the answer.

``GET /containers/{id}/logs`` is in routes/logs.py; exec lives in routes/exec.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.api.keys import DAEMON
from engine.api.router import Router
from engine.api.streams import body_reader, hijack, in_upload_thread
from engine.api.util import dumps, json_response, no_content, query_bool, query_int, read_json
from engine.errors import InvalidParameter, NotFound

if TYPE_CHECKING:
    from engine.containers.service import ContainerService


def _service(request: web.Request) -> ContainerService:
    return request.app[DAEMON].containers


def _id(request: web.Request) -> str:
    return request.match_info["id"]


async def create(request: web.Request) -> web.Response:
    body = await read_json(request, schema="ContainerCreateRequest")
    name = request.query.get("name") or None
    platform = request.query.get("platform", "")
    if platform and platform.split("/")[0] not in ("linux", ""):
        raise InvalidParameter(f'"{platform}": unknown operating system or architecture: invalid argument')
    container_id, warnings = await asyncio.to_thread(_service(request).create, name, body)
    return json_response({"Id": container_id, "Warnings": warnings}, status=201)


async def list_containers(request: web.Request) -> web.Response:
    size = query_bool(request, "size")
    options = {
        "all": query_bool(request, "all"),
        "limit": query_int(request, "limit", -1) or -1,
        "size": size,
        "filters": request.query.get("filters"),
    }
    if size:  # sizes walk the containers' layers on disk: off the loop
        return json_response(await asyncio.to_thread(_service(request).list, **options))
    # without sizes the list is built from memory (the stores' short dict locks only): a thread hop
    # would cost more than the work, and 500 clients at once queued behind 64 threads and the GIL
    return json_response(_service(request).list(**options))


async def inspect(request: web.Request) -> web.Response:
    data = await asyncio.to_thread(_service(request).inspect, _id(request), query_bool(request, "size"))
    return json_response(data)


async def rename(request: web.Request) -> web.Response:
    await asyncio.to_thread(_service(request).rename, _id(request), request.query.get("name", ""))
    return no_content()


async def remove(request: web.Request) -> web.Response:
    await _service(request).remove_container(
        _id(request),
        force=query_bool(request, "force"),
        volumes=query_bool(request, "v"),
        link=query_bool(request, "link"),
    )
    return no_content()


async def prune(request: web.Request) -> web.Response:
    report = await asyncio.to_thread(_service(request).prune, request.query.get("filters"))
    return json_response(report)


async def wait(request: web.Request) -> web.StreamResponse:
    """Headers go out at once (the CLI waits before it starts the container), the body at the exit."""
    service = _service(request)
    container = await asyncio.to_thread(service.get, _id(request))
    future = await asyncio.to_thread(service.wait, container.id, request.query.get("condition", ""))
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    await response.prepare(request)
    waiting = asyncio.wrap_future(future)
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=1.0)
            if done:
                break
            if request.transport is None or request.transport.is_closing():
                container.state.cancel_wait(future)
                return response
        result = waiting.result()
    finally:
        if not waiting.done():
            waiting.cancel()
    error = {"Message": result.error} if result.error else None
    with contextlib.suppress(ConnectionResetError):  # the client left between our checks
        await response.write(dumps({"Error": error, "StatusCode": result.exit_code}).encode())
        await response.write_eof()
    return response


async def start(request: web.Request) -> web.Response:
    if request.can_read_body:
        raw = await request.read()
        if raw.strip() not in (b"", b"null", b"{}"):
            raise InvalidParameter(
                "starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24"
            )
    await _service(request).start_container(_id(request), detach_keys=request.query.get("detachKeys", ""))
    return no_content()


async def stop(request: web.Request) -> web.Response:
    timeout = query_int(request, "t", None)
    await _service(request).stop_container(_id(request), timeout)
    return no_content()


async def restart(request: web.Request) -> web.Response:
    timeout = query_int(request, "t", None)
    await _service(request).restart_container(_id(request), timeout)
    return no_content()


async def kill(request: web.Request) -> web.Response:
    await _service(request).kill_container(_id(request), request.query.get("signal", ""))
    return no_content()


async def pause(request: web.Request) -> web.Response:
    await asyncio.to_thread(_service(request).pause, _id(request))
    return no_content()


async def unpause(request: web.Request) -> web.Response:
    await asyncio.to_thread(_service(request).unpause, _id(request))
    return no_content()


async def resize(request: web.Request) -> web.Response:
    height = query_int(request, "h", 0) or 0
    width = query_int(request, "w", 0) or 0
    await _service(request).resize(_id(request), height, width)
    return web.Response(status=200, content_type="text/plain")


async def attach(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    container = await asyncio.to_thread(service.get, _id(request))
    options = {
        "stdin": query_bool(request, "stdin"),
        "stdout": query_bool(request, "stdout"),
        "stderr": query_bool(request, "stderr"),
        "stream": query_bool(request, "stream"),
        "logs": query_bool(request, "logs"),
        "detach_keys": request.query.get("detachKeys", ""),
    }
    plan = service.prepare_attach(container, options["detach_keys"])
    try:
        conn = await hijack(request)
    except BaseException:
        plan.close()  # its spool reader would hold output back from the log copier's acks
        raise
    await service.attach(container, conn, plan, **options)
    return conn.response


async def attach_ws(request: web.Request) -> web.StreamResponse:
    """The websocket form of attach: raw output frames, stdin from the client's messages."""
    from engine.api.websocket import WebSocketConn

    service = _service(request)
    container = await asyncio.to_thread(service.get, _id(request))
    plan = service.prepare_attach(container, request.query.get("detachKeys", ""))
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    conn = WebSocketConn(ws)
    await service.attach(
        container,
        conn,
        plan,
        stdin=query_bool(request, "stdin"),
        stdout=query_bool(request, "stdout"),
        stderr=query_bool(request, "stderr"),
        stream=query_bool(request, "stream"),
        logs=query_bool(request, "logs"),
    )
    await conn.wait_closed()
    return ws


async def top(request: web.Request) -> web.Response:
    data = await asyncio.to_thread(_service(request).top, _id(request), request.query.get("ps_args", ""))
    return json_response(data)


async def stats(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    container = await asyncio.to_thread(service.get, _id(request))
    stream = query_bool(request, "stream", True)
    one_shot = query_bool(request, "one-shot")
    if one_shot and stream:
        raise InvalidParameter("cannot have stream=true and one-shot=true")
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    async for sample in service.stats(container, stream=stream, one_shot=one_shot):
        if not response.prepared:
            await response.prepare(request)
        try:
            await response.write(dumps(sample).encode())
        except (ConnectionResetError, RuntimeError):
            break
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response


async def changes(request: web.Request) -> web.Response:
    data = await asyncio.to_thread(_service(request).changes, _id(request))
    return json_response(data)


async def export(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    container = await asyncio.to_thread(service.get, _id(request))
    response = web.StreamResponse(status=200)
    response.content_type = "application/x-tar"
    await _stream_from_thread(request, response, lambda out: service.export(container, out))
    return response


async def update(request: web.Request) -> web.Response:
    body = await read_json(request, schema="ContainerUpdateRequest")
    warnings = await asyncio.to_thread(_service(request).update, _id(request), body)
    return json_response({"Warnings": warnings})


def _stat_header(stat: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(stat, separators=(",", ":")).encode()).decode()


async def archive_head(request: web.Request) -> web.Response:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("path is required") from None
    stat = await asyncio.to_thread(_service(request).archive_stat, _id(request), path)
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})


async def archive_get(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("path is required")
    handle = await asyncio.to_thread(service.archive_open, _id(request), path)
    response = web.StreamResponse(status=200)
    response.content_type = "application/x-tar"
    response.headers["X-Docker-Container-Path-Stat"] = _stat_header(handle.stat)
    await _stream_from_thread(request, response, handle.write_to, on_finish=handle.close)
    return response


async def archive_put(request: web.Request) -> web.Response:
    service = _service(request)
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("path is required")
    container = await asyncio.to_thread(service.get, _id(request))
    reader = body_reader(request)
    await in_upload_thread(
        service.archive_put,
        container,
        path,
        reader,
        no_overwrite_dir_non_dir=query_bool(request, "noOverwriteDirNonDir"),
        copy_uid_gid=query_bool(request, "copyUIDGID"),
    )
    return web.Response(status=200)


class _ThreadWriter:
    """A blocking file-like sink for a worker thread that feeds an async response."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]) -> None:
        self.loop = loop
        self.queue = queue
        self.closed = False

    def write(self, data: bytes) -> int:
        if self.closed:
            raise BrokenPipeError("client went away")
        if data:
            asyncio.run_coroutine_threadsafe(self.queue.put(bytes(data)), self.loop).result()
        return len(data)

    def flush(self) -> None:
        pass


async def _stream_from_thread(
    request: web.Request, response: web.StreamResponse, produce: Any, on_finish: Any = None
) -> None:
    """Run ``produce(writer)`` in a thread and stream what it writes (bounded queue: backpressure)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)
    writer = _ThreadWriter(loop, queue)

    def run() -> None:
        try:
            produce(writer)
        finally:
            if on_finish is not None:
                on_finish()
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    task = asyncio.ensure_future(asyncio.to_thread(run))
    await response.prepare(request)
    try:
        while True:
            chunk = await queue.get()
            if chunk is None:
                break
            await response.write(chunk)
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        writer.closed = True
        while not task.done():  # unblock the producer
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(0.01)
        raise
    finally:
        try:
            await task
        except Exception:
            pass


async def commit(request: web.Request) -> web.Response:
    body = await read_json(request, schema="ContainerConfig")
    ref = request.query.get("container", "")
    if not ref:
        raise NotFound("No such container: ")
    image_id = await asyncio.to_thread(
        _service(request).commit,
        ref,
        repo=request.query.get("repo", ""),
        tag=request.query.get("tag", ""),
        comment=request.query.get("comment", ""),
        author=request.query.get("author", ""),
        pause=query_bool(request, "pause", True),
        changes=request.query.getall("changes", []),
        config=body or None,
    )
    return json_response({"Id": image_id}, status=201)


def setup(router: Router) -> None:
    router.post("/containers/create", create)
    router.get("/containers/json", list_containers)
    router.post("/containers/prune", prune)
    router.get("/containers/{id}/json", inspect)
    router.post("/containers/{id}/rename", rename)
    router.delete("/containers/{id}", remove)
    router.post("/containers/{id}/wait", wait)
    router.post("/containers/{id}/start", start)
    router.post("/containers/{id}/stop", stop)
    router.post("/containers/{id}/restart", restart)
    router.post("/containers/{id}/kill", kill)
    router.post("/containers/{id}/pause", pause)
    router.post("/containers/{id}/unpause", unpause)
    router.post("/containers/{id}/resize", resize)
    router.post("/containers/{id}/attach", attach)
    router.get("/containers/{id}/attach/ws", attach_ws)
    router.get("/containers/{id}/top", top)
    router.get("/containers/{id}/stats", stats)
    router.get("/containers/{id}/changes", changes)
    router.get("/containers/{id}/export", export)
    router.post("/containers/{id}/update", update)
    router.head("/containers/{id}/archive", archive_head)
    router.get("/containers/{id}/archive", archive_get)
    router.put("/containers/{id}/archive", archive_put)
    router.post("/commit", commit)
