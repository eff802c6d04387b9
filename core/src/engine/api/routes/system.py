"""System routes: /_ping, /version, /info, /events, /system/df."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from engine import system_info
from engine.api.keys import DAEMON, OPEN_STREAMS
from engine.api.router import Router
from engine.api.util import dumps, json_response
from engine.errors import InvalidParameter
from engine.events import Event
from engine.filters import Filters


async def ping(request: web.Request) -> web.StreamResponse:
    headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache", "Builder-Version": "1"}
    if request.method == "HEAD":
        return web.Response(
            status=200, headers={**headers, "Content-Type": "text/plain; charset=utf-8", "Content-Length": "0"}
        )
    return web.Response(text="OK", headers=headers)


async def version(request: web.Request) -> web.Response:
    return json_response(system_info.version(request.app[DAEMON]))


async def info(request: web.Request) -> web.Response:
    data = await asyncio.to_thread(system_info.info, request.app[DAEMON])
    return json_response(data)


async def system_df(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    data = {"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": []}
    for subsystem in daemon.subsystems:
        contribute = getattr(subsystem, "disk_usage", None)
        if contribute is not None:
            data.update(await asyncio.to_thread(contribute))
    return json_response(data)


def parse_timestamp(raw: str, name: str) -> int:
    """Docker's ``since``/``until``: unix seconds with an optional fraction; returns nanoseconds."""
    try:
        seconds, _, frac = raw.partition(".")
        return int(seconds) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {raw!r}") from None


EVENT_FILTERS = (
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
)


def event_matcher(filters: Filters):
    def matches(event: Event) -> bool:
        actor = event["Actor"]
        attrs = actor.get("Attributes", {})
        action = event["Action"]
        etype = event["Type"]
        if not filters.match_any("type", [etype]):
            return False
        if not filters.match_any("event", [action, action.split(":")[0]]):
            return False
        if not filters.match_any("scope", [event.get("scope", "local")]):
            return False
        if not filters.match_labels(attrs):
            return False
        for key in ("container", "network", "volume", "daemon", "plugin"):
            if key in filters and (
                etype != key or not filters.match_any(key, [actor["ID"], actor["ID"][:12], attrs.get("name", "")])
            ):
                return False
        if "image" in filters:
            candidates = [attrs.get("image", ""), attrs.get("name", "")]
            if etype == "image":
                candidates.append(actor["ID"])
            if not filters.match_any("image", [c for c in candidates if c]):
                return False
        return True

    return matches


async def events(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    filters = Filters.parse(request.query.get("filters"), EVENT_FILTERS)
    now = time.time_ns()
    since = parse_timestamp(request.query["since"], "since") if request.query.get("since") else None
    until = parse_timestamp(request.query["until"], "until") if request.query.get("until") else None
    if since is not None and until is not None and since > until:
        raise InvalidParameter("`since` time must be before `until`")
    past, sub = daemon.events.subscribe(event_matcher(filters), since)
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    await response.prepare(request)
    stream = _ClosableStream(response)
    request.app[OPEN_STREAMS].add(stream)
    try:
        for event in past:
            if until is not None and event["timeNano"] > until:
                break
            await response.write(dumps(event).encode())
        if until is not None and until <= now:
            return response
        while not stream.closed:
            timeout = None if until is None else max(0.0, (until - time.time_ns()) / 1e9)
            get = asyncio.ensure_future(sub.queue.get())
            closed = asyncio.ensure_future(stream.wait_closed())
            done, _ = await asyncio.wait({get, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            if get not in done:
                get.cancel()
                break
            event = get.result()
            if until is not None and event["timeNano"] > until:
                break
            await response.write(dumps(event).encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        daemon.events.unsubscribe(sub)
    return response


class _ClosableStream:
    """An open streaming response the server closes at shutdown."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self.closed = False
        self._event = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self._event.set()

    async def wait_closed(self) -> None:
        await self._event.wait()


def setup(router: Router) -> None:
    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.get("/version", version)
    router.get("/info", info)
    router.get("/events", events)
    router.get("/system/df", system_df)
