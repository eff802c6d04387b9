"""The one collector registry ``/metrics`` serves (engine's own, never prometheus_client's global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
