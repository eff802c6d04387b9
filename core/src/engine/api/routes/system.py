"""System routes: /_ping, /version, /info, /events, /system/df."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from engine import system_info
from engine.api.keys import DAEMON, OPEN_STREAMS
from engine.api.router import Router
from engine.api.util import dumps, json_response
from engine.drivers.timefmt import parse_unix_timestamp
from engine.errors import InvalidParameter
from engine.events import Event
from engine.filters import Filters


async def ping(request: web.Request) -> web.StreamResponse:
    # Builder-Version: dockerd 20.10 sends it only when ``features.buildkit`` is set; engine has only the
    # classic builder and always says "1", so that docker CLIs >= 23 do not switch to BuildKit.
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
        return parse_unix_timestamp(raw)
    except ValueError as exc:
        raise InvalidParameter(f"invalid value for {name}: {exc}") from None


def _fuzzy(filters: Filters, key: str, source: str) -> bool:
    """moby's FuzzyMatch: no filter on ``key``, or a filter value equal to or a prefix of ``source``."""
    wanted = filters.get(key)
    return not wanted or any(source == w or source.startswith(w) for w in wanted)


def _exact(filters: Filters, key: str, source: str) -> bool:
    wanted = filters.get(key)
    return not wanted or source in wanted


def _strip_tag(ref: str) -> str:
    name, sep, tag = ref.rpartition(":")
    return name if sep and "/" not in tag else ref


_FUZZY_EVENTS = {"health_status", "exec_create", "exec_start"}


def event_matcher(filters: Filters) -> Callable[[Event], bool]:
    """dockerd's events filter (moby daemon/events/filter.go): every filter key must match."""

    def matches(event: Event) -> bool:
        actor = event["Actor"]
        attrs = actor.get("Attributes") or {}
        etype, action = event["Type"], event["Action"]
        if filters.get("event") & _FUZZY_EVENTS:
            if not _fuzzy(filters, "event", action):
                return False
        elif not _exact(filters, "event", action):
            return False
        if not _exact(filters, "type", etype) or not _exact(filters, "scope", event.get("scope", "local")):
            return False
        for key in ("daemon", "container", "plugin", "volume", "network", "node", "service", "secret", "config"):
            if key in filters and not (
                _fuzzy(filters, key, actor["ID"]) or _fuzzy(filters, key, attrs.get("name", ""))
            ):
                return False
        if "image" in filters:
            name = attrs.get("name" if etype == "image" else "image", "")
            if not any(
                _exact(filters, "image", c) for c in (actor["ID"], name, _strip_tag(actor["ID"]), _strip_tag(name))
            ):
                return False
        return filters.match_labels(attrs)

    return matches


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /events``: past events for ``since``/``until``, then live ones until ``until`` or disconnect."""
    daemon = request.app[DAEMON]
    query = request.query
    since = parse_timestamp(query["since"], "since") if query.get("since") else None
    until = parse_timestamp(query["until"], "until") if query.get("until") else None
    if until is not None and since is not None and until < since:
        raise InvalidParameter(f"`since` time ({query['since']}) cannot be after `until` time ({query['until']})")
    filters = Filters.parse(query.get("filters"))  # dockerd does not check event filter keys
    only_past = until is not None and until < time.time_ns()
    # with only ``until``, every buffered event up to it is sent (moby loadBufferedEvents)
    past, sub = daemon.events.subscribe(event_matcher(filters), since if since is not None else (0 if until else None))
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    stream = _ClosableStream(response)
    request.app[OPEN_STREAMS].add(stream)
    try:
        await response.prepare(request)
        for event in past:
            if until is None or event["timeNano"] <= until:
                await response.write(dumps(event).encode())
        if only_past:
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
