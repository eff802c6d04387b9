"""Driver registries: one per driver kind, backed by stevedore and entry points.

A driver is chosen by the name a user writes (daemon.json, ``--log-driver``,
``docker network create -d``); the entry-point group is an implementation detail.
A name nobody installed fails with the distribution to ``pip install``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from stevedore import driver as stevedore_driver

from engine import DRIVER_API_VERSION
from engine.errors import DriverAPIMismatch, DriverError, DriverNotInstalled, DriverRemoved

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class DriverKind:
    """What a registry loads: a user-facing kind name, its entry-point group, the ABC,
    and the distributions engine publishes for the names it documents."""

    kind: str
    group: str
    distributions: dict[str, str]
    #: names only loaded when named explicitly (never auto-picked), with the reason
    explicit_only: dict[str, str]


STORAGE = DriverKind(
    kind="storage",
    group="engine.storage_drivers",
    distributions={
        "overlay2": "engine-plugin-overlay2",
        "btrfs": "engine-plugin-btrfs",
        "zfs": "engine-plugin-zfs",
        "aufs": "engine-plugin-aufs",
        "devicemapper": "engine-plugin-devicemapper",
        "vfs": "engine-core",
    },
    explicit_only={
        "aufs": "aufs is deprecated (removed in Docker 24)",
        "devicemapper": "devicemapper is deprecated (removed in Docker 25)",
    },
)
NETWORK = DriverKind(
    kind="network",
    group="engine.network_drivers",
    distributions={
        "bridge": "engine-plugin-bridge",
        "host": "engine-plugin-host",
        "null": "engine-plugin-none",
        "overlay": "engine-plugin-overlay",
    },
    explicit_only={},
)
LOG = DriverKind(
    kind="logging",
    group="engine.log_drivers",
    distributions={
        "json-file": "engine-plugin-json-file",
        "syslog": "engine-plugin-syslog",
        "journald": "engine-plugin-journald",
        "none": "engine-core",
    },
    explicit_only={},
)


class DriverRegistry(Generic[T]):
    """Loads driver *classes* by name from one entry-point group.

    The registry returns classes, not instances: each kind has its own way to
    construct (storage drivers ``init(home, options, id_map)``, log drivers one per
    container). Loaded classes are cached per name.
    """

    def __init__(self, kind: DriverKind) -> None:
        self.kind = kind
        self._loaded: dict[str, type[T]] = {}

    def names(self) -> list[str]:
        """Every installed name in this group, sorted."""
        return sorted({ep.name for ep in entry_points(group=self.kind.group)})

    def is_installed(self, name: str) -> bool:
        return name in self.names()

    def load(self, name: str, *, explicit: bool = True) -> type[T]:
        """Return the driver class for ``name``.

        :param explicit: the user named the driver; explicit-only drivers refuse otherwise.
        :raises DriverNotInstalled: no installed distribution provides ``name``.
        :raises DriverRemoved: ``name`` is explicit-only and was not named explicitly.
        :raises DriverAPIMismatch: the driver was written for another driver API.
        """
        if not explicit and name in self.kind.explicit_only:
            raise DriverRemoved(f"{self.kind.explicit_only[name]}; name it explicitly to use it")
        if name in self._loaded:
            return self._loaded[name]
        if not self.is_installed(name):
            raise DriverNotInstalled(self.kind.kind, name, self.kind.distributions.get(name), self.names())
        try:
            manager = stevedore_driver.DriverManager(
                namespace=self.kind.group, name=name, invoke_on_load=False, on_load_failure_callback=_reraise
            )
        except DriverError:
            raise
        except Exception as exc:  # an installed plugin that fails to import
            raise DriverError(f"{self.kind.kind} driver {name!r} failed to load: {exc}") from exc
        cls: type[T] = manager.driver
        version = getattr(cls, "API_VERSION", None)
        if version != DRIVER_API_VERSION:
            raise DriverAPIMismatch(
                f"{self.kind.kind} driver {name!r} targets driver API {version}, engine has {DRIVER_API_VERSION}"
            )
        self._loaded[name] = cls
        return cls


def _reraise(manager: object, entrypoint: object, exc: BaseException) -> None:
    raise exc
