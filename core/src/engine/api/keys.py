"""Typed application keys (aiohttp AppKey)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from engine.daemon import Daemon

#: the daemon whose typed subsystem fields the routes call (the app is made by the daemon)
DAEMON: web.AppKey[Daemon] = web.AppKey("daemon")
#: open streaming responses (events, logs -f, attach) closed at shutdown
OPEN_STREAMS = web.AppKey("open_streams", weakref.WeakSet)
#: a request body that a middleware already read whole (the authorization check): the handler's
#: read (engine.api.util.read_body) takes it from here, since the stream is spent
READ_BODY = "engine.read_body"
