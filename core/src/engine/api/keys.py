"""Typed application keys (aiohttp AppKey)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    pass

DAEMON = web.AppKey("daemon", "Daemon")
#: open streaming responses (events, logs -f, attach) closed at shutdown
OPEN_STREAMS = web.AppKey("open_streams", weakref.WeakSet)
