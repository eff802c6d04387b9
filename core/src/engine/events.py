"""The event bus behind ``GET /events``: publish, keep a short history, fan out to subscribers.

``publish`` may be called from any thread; subscribers are asyncio queues on the daemon's loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: dockerd keeps the last 256 events for ``since`` queries; so do we.
HISTORY = 256

Event = dict[str, Any]


@dataclass
class Subscription:
    queue: asyncio.Queue[Event]
    loop: asyncio.AbstractEventLoop
    matches: Callable[[Event], bool] = field(default=lambda e: True)


def make_event(
    type_: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None, scope: str = "local"
) -> Event:
    now = time.time_ns()
    event: Event = {
        "Type": type_,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
        "scope": scope,
        "time": now // 1_000_000_000,
        "timeNano": now,
    }
    if type_ in ("container", "image"):
        # the pre-1.22 fields the docker CLI still shows for these types
        event["status"] = action
        event["id"] = actor_id
        if type_ == "container" and "image" in event["Actor"]["Attributes"]:
            event["from"] = event["Actor"]["Attributes"]["image"]
    return event


class EventBus:
    def __init__(self) -> None:
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()
        self._observers: list[Callable[[Event], None]] = []

    def add_observer(self, observer: Callable[[Event], None]) -> None:
        """Call ``observer`` synchronously for every event (used to feed hooks)."""
        self._observers.append(observer)

    def publish(
        self, type_: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None, scope: str = "local"
    ) -> Event:
        event = make_event(type_, action, actor_id, attributes, scope)
        with self._lock:
            self._history.append(event)
            subscribers = list(self._subscribers)
        for sub in subscribers:
            if sub.matches(event):
                sub.loop.call_soon_threadsafe(sub.queue.put_nowait, event)
        for observer in self._observers:
            observer(event)
        return event

    def subscribe(
        self, matches: Callable[[Event], bool], since_ns: int | None = None
    ) -> tuple[list[Event], Subscription]:
        """Register a subscriber; returns the past events since ``since_ns`` (matching) and the subscription."""
        sub = Subscription(asyncio.Queue(), asyncio.get_running_loop(), matches)
        with self._lock:
            past = [e for e in self._history if since_ns is not None and e["timeNano"] >= since_ns and matches(e)]
            self._subscribers.append(sub)
        return past, sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def subscriber_count(self) -> int:
        """How many ``/events`` streams listen (``NEventsListener`` in ``GET /info``)."""
        with self._lock:
            return len(self._subscribers)

    def history(self) -> list[Event]:
        with self._lock:
            return list(self._history)
