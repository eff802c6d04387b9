"""``GET /containers/{id}/logs``: a container's stored (and, with ``follow``, new) output.

As dockerd: the parameters are checked and the container looked up before the 200 goes out;
after that errors can only go in band ("Error grabbing logs: ..." on the system-error
stream). Non-TTY containers get stdcopy frames (one per message), TTY containers the raw
bytes. ``timestamps`` prefixes RFC3339NanoFixed times, ``details`` the extra attributes
(``k=v,k2=v2 `` query-escaped). ``follow`` ends when the container stops (its log driver
closes), when the client goes away, or at daemon shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import quote_plus

from aiohttp import web

from engine.api.keys import DAEMON, OPEN_STREAMS
from engine.api.router import Router
from engine.api.streams import STDERR, STDOUT, SYSTEMERR, frame
from engine.api.util import query_bool
from engine.drivers.log import LogMessage, ReadConfig
from engine.drivers.timefmt import parse_unix_timestamp, rfc3339nano_fixed
from engine.errors import InvalidParameter, NotFound
from engine.logs import open_reader

log = logging.getLogger(__name__)

DISCONNECT_POLL = 0.5  # seconds between checks that a following client is still there


def parse_tail(raw: str) -> int:
    """``tail``: a number of lines; anything else (``all``, "") means all, as dockerd's Atoi fallback."""
    try:
        return int(raw)
    except ValueError:
        return -1


def parse_time(raw: str) -> int:
    try:
        return parse_unix_timestamp(raw)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None


def read_config(request: web.Request) -> ReadConfig:
    query = request.query
    since = parse_time(query["since"]) if query.get("since") else 0
    until = parse_time(query["until"]) if query.get("until") not in (None, "", "0") else 0
    return ReadConfig(
        since_ns=since, until_ns=until, tail=parse_tail(query.get("tail", "")), follow=query_bool(request, "follow")
    )


def attrs_prefix(attrs: dict[str, str]) -> bytes:
    """moby's ``attrsByteSlice``: sorted ``key=value`` pairs, query-escaped, comma-separated."""
    return ",".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(attrs.items())).encode()


def renderer(
    *, stdout: bool, stderr: bool, timestamps: bool, details: bool, tty: bool
) -> Callable[[LogMessage], bytes]:
    def render(message: LogMessage) -> bytes:
        source = message.source
        if (
            (source == "stdout" and not stdout)
            or (source == "stderr" and not stderr)
            or source
            not in (
                "stdout",
                "stderr",
            )
        ):
            return b""
        line = message.with_newline()
        if details:
            line = attrs_prefix(message.attrs) + b" " + line
        if timestamps:
            line = rfc3339nano_fixed(message.time_ns).encode() + b" " + line
        if tty:
            return line
        return frame(STDOUT if source == "stdout" else STDERR, line)

    return render


async def container_logs(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not (stdout or stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    name = request.match_info["name"]
    containers = getattr(daemon, "containers", None)
    if containers is None:
        raise NotFound(f"No such container: {name}")
    container = await asyncio.to_thread(containers.get, name)
    config = read_config(request)
    source = await asyncio.to_thread(open_reader, daemon, container)
    tty = bool((container.config or {}).get("Tty"))
    render = renderer(
        stdout=stdout,
        stderr=stderr,
        timestamps=query_bool(request, "timestamps"),
        details=query_bool(request, "details"),
        tty=tty,
    )
    response = web.StreamResponse(status=200)
    # what Go's net/http sends for dockerd's early flush of an empty body
    response.content_type = "text/plain"
    response.charset = "utf-8"
    try:
        await response.prepare(request)
        stream = _FollowedStream()
        request.app[OPEN_STREAMS].add(stream)
        pump = asyncio.create_task(_pump(source.batches(config), render, response, tty))
        try:
            await _until_done(pump, request, stream)
        finally:
            if not pump.done():
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        if not _gone(request):
            await response.write_eof()
    except ConnectionResetError:
        pass
    finally:
        await asyncio.to_thread(source.close)
    return response


async def _pump(batches, render, response: web.StreamResponse, tty: bool) -> None:  # type: ignore[no-untyped-def]
    try:
        async for batch in batches:
            data = b"".join(map(render, batch))
            if data:
                await response.write(data)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:
        log.exception("reading logs failed")
        error = f"Error grabbing logs: {exc}\n".encode()
        await response.write(error if tty else frame(SYSTEMERR, error))
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _until_done(pump: asyncio.Task[None], request: web.Request, stream: _FollowedStream) -> None:
    """Wait for the pump; stop it when the client disconnects or the daemon shuts down."""
    closed = asyncio.ensure_future(stream.wait_closed())
    try:
        while True:
            done, _ = await asyncio.wait({pump, closed}, timeout=DISCONNECT_POLL, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                pump.result()
                return
            if closed in done or _gone(request):
                return
    finally:
        closed.cancel()


class _FollowedStream:
    """Registered in OPEN_STREAMS so that daemon shutdown ends ``logs -f``."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def close(self) -> None:
        self._event.set()

    async def wait_closed(self) -> None:
        await self._event.wait()


def setup(router: Router) -> None:
    router.get("/containers/{name}/logs", container_logs)
