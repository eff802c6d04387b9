"""Step timings of the container hot paths (create, start, exit, remove), logged when the daemon runs
with ``ENGINE_TRACE_CONTAINERS=1``: what the start-path profiling in benchmarks/containers.py reads."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("engine.containers.trace")
ENABLED = os.environ.get("ENGINE_TRACE_CONTAINERS", "") not in ("", "0")


class Steps:
    """Collects ``(step, ms)`` for one operation and logs them in one line at the end."""

    def __init__(self, operation: str, container_id: str) -> None:
        self.operation = operation
        self.container_id = container_id
        self.start = time.perf_counter()
        self.last = self.start
        self.steps: list[tuple[str, float]] = []

    def mark(self, step: str) -> None:
        if not ENABLED:
            return
        now = time.perf_counter()
        self.steps.append((step, (now - self.last) * 1000))
        self.last = now

    def done(self) -> None:
        if not ENABLED:
            return
        total = (time.perf_counter() - self.start) * 1000
        detail = " ".join(f"{name}={ms:.1f}" for name, ms in self.steps)
        log.info("trace %s %s total=%.1fms %s", self.operation, self.container_id[:12], total, detail)


@contextmanager
def steps(operation: str, container_id: str) -> Iterator[Steps]:
    s = Steps(operation, container_id)
    try:
        yield s
    finally:
        s.done()
