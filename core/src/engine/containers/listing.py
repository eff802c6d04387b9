"""``GET /containers/json``: which containers ps shows (all, limit, before/since, filters), as
dockerd's daemon/list.go decides."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from engine.containers.model import Container
from engine.containers.state import HEALTH_STARTING, HEALTHY, NO_HEALTHCHECK, UNHEALTHY
from engine.errors import InvalidParameter
from engine.filters import Filters

PS_FILTERS = (
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
)
STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH_STATES = (HEALTH_STARTING, HEALTHY, UNHEALTHY, NO_HEALTHCHECK)


@dataclass
class ListOptions:
    all: bool = False
    limit: int = -1
    filters: Filters | None = None


def _regex_match(patterns: set[str], value: str) -> bool:
    for pattern in patterns:
        try:
            if re.search(pattern, value):
                return True
        except re.error:
            if pattern in value:
                return True
    return False


def _port_filter(values: set[str]) -> set[str]:
    out = set()
    for value in values:
        port, _, proto = value.partition("/")
        proto = proto or "tcp"
        start, _, end = port.partition("-")
        try:
            lo = int(start)
            hi = int(end) if end else lo
        except ValueError:
            raise InvalidParameter(f"Invalid filter: invalid port {value!r}") from None
        out.update(f"{p}/{proto}" for p in range(lo, hi + 1))
    return out


def select(
    containers: list[Container],
    options: ListOptions,
    *,
    lookup: Callable[[str], Container],
    ancestor_ids: Callable[[str], set[str]],
) -> list[Container]:
    """The containers to show, newest first."""
    filters = options.filters or Filters()
    show_all = options.all or options.limit > 0
    for value in filters.get("status"):
        if value not in STATES:
            raise InvalidParameter(f"Unrecognised filter value for status: {value}")
        show_all = True
    for value in filters.get("health"):
        if value not in HEALTH_STATES:
            raise InvalidParameter(f"Unrecognised filter value for health: {value}")
    exited: set[int] = set()
    for value in filters.get("exited"):
        try:
            exited.add(int(value))
        except ValueError:
            raise InvalidParameter(f'strconv.Atoi: parsing "{value}": invalid syntax') from None
    is_task = filters.bool_value("is-task") if "is-task" in filters else None
    before = since = None
    for value in filters.get("before"):
        before = lookup(value)
    for value in filters.get("since"):
        since = lookup(value)
    ancestors: set[str] | None = None
    if "ancestor" in filters:
        ancestors = set()
        for ref in filters.get("ancestor"):
            ancestors |= ancestor_ids(ref)
    publish = _port_filter(filters.get("publish")) if "publish" in filters else None
    expose = _port_filter(filters.get("expose")) if "expose" in filters else None

    ordered = sorted(containers, key=lambda c: c.created, reverse=True)
    out: list[Container] = []
    passed_before = before is None
    for container in ordered:
        if not passed_before:
            if container.id == before.id:  # type: ignore[union-attr]
                passed_before = True
            continue
        if since is not None and container.id == since.id:
            break
        state = container.state
        if not state.running and not show_all:
            continue
        if is_task is True:
            continue
        if not _regex_match(filters.get("id"), container.id) and "id" in filters:
            continue
        if "name" in filters and not _regex_match(filters.get("name"), container.name):
            continue
        if not filters.match_labels(container.labels):
            continue
        if "status" in filters and state.status() not in filters.get("status"):
            continue
        if exited and (state.running or state.started_at == 0 or state.exit_code not in exited):
            continue
        if "health" in filters:
            health = state.health.status if state.health else NO_HEALTHCHECK
            if health not in filters.get("health"):
                continue
        if ancestors is not None and container.image_id not in ancestors:
            continue
        if "volume" in filters:
            wanted = filters.get("volume")
            if not any(
                mp.name in wanted or mp.destination in wanted or (mp.source and mp.source in wanted)
                for mp in container.mount_points.values()
            ):
                continue
        if "network" in filters:
            networks = (container.network_settings or {}).get("Networks") or {}
            wanted = filters.get("network")
            if not any(
                name in wanted
                or (ep or {}).get("NetworkID", "") in wanted
                or any((ep or {}).get("NetworkID", "").startswith(w) for w in wanted if w)
                for name, ep in networks.items()
            ):
                continue
        if publish is not None:
            ports = {p for p, b in ((container.network_settings or {}).get("Ports") or {}).items() if b}
            if not ports & publish:
                continue
        if expose is not None:
            ports = set((container.config.get("ExposedPorts") or {}).keys())
            if not ports & expose:
                continue
        if "isolation" in filters and "default" not in filters.get("isolation") and "" not in filters.get("isolation"):
            continue
        out.append(container)
        if options.limit > 0 and len(out) >= options.limit:
            break
    return out
