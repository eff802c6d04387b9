"""Plain counters that subsystems bump without importing a metrics library; engine.metrics reads
them at scrape time (the ``metrics-addr`` server) and nothing else pays for them."""

from __future__ import annotations


class Counter:
    """A monotonic count. Bumped from the event loop (or under the GIL): no lock needed."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


#: health probes run (dockerd's engine_daemon_health_checks_total)
HEALTH_CHECKS = Counter()
#: health probes that could not be run (dockerd's engine_daemon_health_checks_failed_total)
HEALTH_CHECKS_FAILED = Counter()
