"""Per-driver operation latencies (storage, network, log): each timed method of a driver instance is
shadowed on the instance by a wrapper that observes a histogram, so neither the driver nor its
callers know about metrics.

Storage: the daemon's one driver, at start. Network and log drivers: every instance as it is made
(engine.opcounters.driver_made, which the network controller and the container logger call); a
container's log driver is timed itself, not the non-blocking ring or the dual-logging cache around
it, so ``log_many`` is the time the driver took to take one batch of messages.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from prometheus_client import Histogram

from engine.metrics.registry import REGISTRY

# from 50 µs (a log batch to a file) to a minute (a diff of a big layer)
BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
           10, 30, 60)  # fmt: skip

STORAGE_OPERATIONS = Histogram(
    "engine_storage_driver_operation_seconds",
    "The number of seconds each storage driver operation takes",
    ["driver", "operation"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
NETWORK_OPERATIONS = Histogram(
    "engine_network_driver_operation_seconds",
    "The number of seconds each network driver operation takes",
    ["driver", "operation"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
LOG_OPERATIONS = Histogram(
    "engine_log_driver_operation_seconds",
    "The number of seconds each log driver operation takes (log_many: one batch of messages)",
    ["driver", "operation"],
    buckets=BUCKETS,
    registry=REGISTRY,
)

#: the methods timed, by driver kind (the ABCs of engine.drivers.storage, .network and .log)
TIMED: dict[str, tuple[Histogram, tuple[str, ...]]] = {
    "storage": (
        STORAGE_OPERATIONS,
        ("create", "create_read_write", "remove", "get", "put", "diff", "changes", "apply_diff", "diff_size"),
    ),
    "network": (
        NETWORK_OPERATIONS,
        (
            "create_network",
            "delete_network",
            "create_endpoint",
            "delete_endpoint",
            "join",
            "leave",
            "program_external_connectivity",
            "revoke_external_connectivity",
        ),
    ),
    "log": (LOG_OPERATIONS, ("log_many", "close")),
}


def instrument(kind: str, driver: Any) -> None:
    """Time ``driver``'s operations of its ``kind`` (a kind not in :data:`TIMED` is left alone)."""
    timed = TIMED.get(kind)
    if timed is None:
        return
    histogram, operations = timed
    name = getattr(driver, "name", type(driver).__name__)
    for operation in operations:
        method = getattr(driver, operation, None)
        if method is None or getattr(method, "_engine_timed", False):
            continue
        try:
            setattr(driver, operation, _timed(method, histogram.labels(name, operation)))
        except AttributeError:  # a driver with __slots__: left untimed rather than broken
            return


def _timed(method: Any, histogram: Any) -> Any:
    @functools.wraps(method)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()  # per call: drivers run in many threads at once
        try:
            return method(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - start)

    timed._engine_timed = True  # type: ignore[attr-defined]
    return timed
