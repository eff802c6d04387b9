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
