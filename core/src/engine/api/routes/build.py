"""``POST /build``: the classic builder (engine.builder) behind dockerd's streamed JSON answer.

The body (the context tar) is unpacked and the Dockerfile read before anything is written, so
those errors get a normal HTTP error; from the first step on, errors are reported in-band as
``{"errorDetail": ...}`` messages, exactly as dockerd does.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.api.keys import DAEMON
from engine.api.router import Router
from engine.api.streams import JSONStream, body_reader, in_upload_thread
from engine.api.util import api_version, query_bool, query_int
from engine.builder import context as ctx
from engine.builder import run as runmod
from engine.builder.steps import Builder, BuildOptions
from engine.errors import EngineError, InvalidParameter
from engine.images.references import parse_normalized_named
from engine.streams.stdcopy import STDERR

if TYPE_CHECKING:
    from engine.containers.service import ContainerService

_DONE = object()
#: drains of builds whose handler was cancelled (kept referenced until they finish)
_DRAINS: set[asyncio.Task[None]] = set()


def _json_query(request: web.Request, name: str) -> dict[str, Any]:
    raw = request.query.get(name, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameter(f"invalid {name} value: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {name} value: expected an object")
    return value


def _tags(request: web.Request) -> list[Any]:
    refs = []
    for text in request.query.getall("t", []):
        if not text:
            continue
        ref = parse_normalized_named(text)
        if ref.canonical:
            raise InvalidParameter("build tag cannot contain a digest")
        refs.append(ref.tag_name_only())
    return refs


def _host_config(request: web.Request) -> dict[str, Any]:
    """dockerd's hostConfigFromOptions: what the build containers run with."""
    hc: dict[str, Any] = {
        "NetworkMode": request.query.get("networkmode") or "default",
        "LogConfig": {"Type": "none", "Config": {}},
    }
    hosts = [h for item in request.query.getall("extrahosts", []) for h in item.split(",") if h]
    if hosts:
        hc["ExtraHosts"] = hosts
    for key, name in (
        ("ShmSize", "shmsize"),
        ("Memory", "memory"),
        ("MemorySwap", "memswap"),
        ("CpuShares", "cpushares"),
        ("CpuPeriod", "cpuperiod"),
        ("CpuQuota", "cpuquota"),
    ):
        value = query_int(request, name, None)
        if value:
            hc[key] = value
    for key, name in (("CpusetCpus", "cpusetcpus"), ("CpusetMems", "cpusetmems"), ("CgroupParent", "cgroupparent")):
        if request.query.get(name):
            hc[key] = request.query[name]
    if request.query.get("ulimits"):
        try:
            hc["Ulimits"] = json.loads(request.query["ulimits"])
        except ValueError as exc:
            raise InvalidParameter(f"invalid ulimits value: {exc}") from None
    return hc


def _options(request: web.Request) -> BuildOptions:
    if request.query.get("version", "1") == "2":
        raise InvalidParameter("buildkit not supported by daemon")
    if request.query.get("remote"):
        raise InvalidParameter(
            f"remote build contexts are not supported by engine (no network access): {request.query['remote']}"
        )
    cache_from: Any = []
    if request.query.get("cachefrom"):
        try:
            cache_from = json.loads(request.query["cachefrom"])
        except ValueError as exc:
            raise InvalidParameter(f"invalid cachefrom value: {exc}") from None
    if not isinstance(cache_from, list):
        cache_from = []
    build_args = _json_query(request, "buildargs")
    labels = _json_query(request, "labels")
    return BuildOptions(
        dockerfile=request.query.get("dockerfile") or ctx.DEFAULT_DOCKERFILE,
        tags=_tags(request),
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        labels={str(k): str(v) for k, v in labels.items()},
        no_cache=query_bool(request, "nocache"),
        rm=query_bool(request, "rm", True),
        force_rm=query_bool(request, "forcerm"),
        pull=query_bool(request, "pull"),
        target=request.query.get("target", ""),
        host_config=_host_config(request),
        cache_from=[str(ref) for ref in cache_from if ref],
    )


class _Output:
    """The builder's output (called from its worker thread) as messages on the loop's queue."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], containers: ContainerService, aux: bool
    ) -> None:
        self.loop = loop
        self.queue = queue
        self.containers = containers
        self.want_aux = aux
        self.cancelled = asyncio.Event()

    def _put(self, message: Any) -> None:
        _on_loop(self.loop, self.queue.put(message))

    def stdout(self, text: str) -> None:
        self._put({"stream": text})

    def aux(self, data: dict[str, Any]) -> None:
        if self.want_aux:
            self._put({"aux": data})

    def done(self) -> None:
        self._put(_DONE)

    def run_container(self, container_id: str) -> tuple[int, str]:
        # per stream: a UTF-8 sequence may be split across chunks
        decoders = {stream: codecs.getincrementaldecoder("utf-8")("replace") for stream in (1, STDERR)}

        async def emit(stream: int, data: bytes) -> None:
            text = decoders[STDERR if stream == STDERR else 1].decode(data)
            if not text:
                return
            if stream == STDERR:
                text = "\x1b[91m" + text + "\x1b[0m"  # dockerd's stderr formatter
            await self.queue.put({"stream": text})

        return _on_loop(self.loop, runmod.run_container(self.containers, container_id, emit, self.cancelled))


def _on_loop(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    """Run ``coro`` on the loop from a worker thread; gives up once the loop stopped (daemon
    shutdown), so a build thread never holds up the executor's shutdown."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    while True:
        try:
            return future.result(timeout=1.0)
        except concurrent.futures.TimeoutError:
            if not loop.is_running():
                future.cancel()
                raise ctx.BuildError("build cancelled") from None


def _error_message(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ctx.BuildError):
        message = exc.message
        detail: dict[str, Any] = {"code": exc.code, "message": message} if exc.code else {"message": message}
    else:
        message = str(exc.args[0]) if isinstance(exc, EngineError) and exc.args else str(exc)
        detail = {"message": message}
    return {"errorDetail": detail, "error": message}


async def build(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    options = _options(request)
    if query_bool(request, "squash"):
        raise InvalidParameter("squash is only supported with experimental mode")
    quiet = query_bool(request, "q")
    loop = asyncio.get_running_loop()
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="build-", dir=daemon.images.tmp))
    handed_over = False
    try:
        context_dir = work / "context"
        context_dir.mkdir()
        await in_upload_thread(ctx.extract, body_reader(request), context_dir)
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        output = _Output(loop, queue, daemon.containers, aux=api_version(request) >= (1, 30))
        builder = Builder(daemon.images, daemon.containers, options, context_dir, output)
        parsed = await asyncio.to_thread(builder.prepare)
        handed_over = True  # from here the build thread removes the work directory
        return await _stream(request, builder, parsed, output, queue, quiet, work)
    finally:
        if not handed_over:
            await asyncio.to_thread(shutil.rmtree, work, True)


async def _watch_client(request: web.Request, builder: Builder, output: _Output) -> None:
    """dockerd cancels a build whose client went away (docker build interrupted)."""
    while True:
        await asyncio.sleep(0.25)
        transport = request.transport
        if transport is None or transport.is_closing():
            builder.cancelled.set()
            output.cancelled.set()
            return


async def _drain(queue: asyncio.Queue[Any]) -> None:
    while await queue.get() is not _DONE:
        pass


async def _stream(
    request: web.Request,
    builder: Builder,
    parsed: Any,
    output: _Output,
    queue: asyncio.Queue[Any],
    quiet: bool,
    work: Path,
) -> web.StreamResponse:
    options = builder.options
    images = builder.images

    def run() -> str:
        try:
            image_id = builder.build(parsed)
            output.stdout(f"Successfully built {image_id.partition(':')[2][:12]}\n")
            for ref in options.tags:
                images.tag_reference(image_id, ref)
                output.stdout(f"Successfully tagged {ref.familiar}\n")
            return image_id
        finally:
            shutil.rmtree(work, ignore_errors=True)
            output.done()

    stream = JSONStream(request)
    job = asyncio.ensure_future(asyncio.to_thread(run))
    watcher = asyncio.ensure_future(_watch_client(request, builder, output))
    held: list[dict[str, Any]] = []  # -q: dockerd buffers everything and sends it only on error
    gone = False
    finished = False
    try:
        while True:
            message = await queue.get()
            if message is _DONE:
                finished = True
                break
            if quiet:
                held.append(message)
                continue
            if not gone:
                try:
                    await stream.send(message)
                except (ConnectionResetError, RuntimeError):
                    gone = True  # keep draining so the build stops and cleans up
                    builder.cancelled.set()
                    output.cancelled.set()
    finally:
        watcher.cancel()
        if not finished:  # the handler itself was cancelled (shutdown): stop the build, keep draining
            builder.cancelled.set()
            output.cancelled.set()
            drain = asyncio.ensure_future(_drain(queue))
            _DRAINS.add(drain)
            drain.add_done_callback(_DRAINS.discard)
    tail: list[dict[str, Any]] = []
    try:
        image_id = await job
    except Exception as exc:  # every failure is reported in-band
        tail = [*held, _error_message(exc)]
    else:
        if quiet:
            tail = [{"stream": image_id + "\n"}]
    if gone:
        return stream.response
    try:
        for message in tail:
            await stream.send(message)
        return await stream.finish()
    except ConnectionResetError:  # the client left meanwhile (aiohttp's reset error subclasses it)
        return stream.response


def setup(router: Router) -> None:
    router.post("/build", build)
