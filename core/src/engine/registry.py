"""Driver registries: one per driver kind, backed by stevedore and entry points.

A driver is chosen by the name a user writes (daemon.json, ``--log-driver``,
``docker network create -d``); the entry-point group is an implementation detail.
A name nobody installed fails with the distribution to ``pip install``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Generic, TypeVar

from stevedore import driver as stevedore_driver
from stevedore import extension as stevedore_extension

from engine import entrypoints
from engine.drivers import DRIVER_API_VERSION
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
    #: the ABC every driver of this kind subclasses, as ``module:Class``
    base: str = ""

    def base_class(self) -> type:
        module, _, name = self.base.partition(":")
        return getattr(importlib.import_module(module), name)


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
    base="engine.drivers.storage:StorageDriver",
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
    base="engine.drivers.network:NetworkDriver",
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
    base="engine.drivers.log:LogDriver",
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
        return sorted({ep.name for ep in entrypoints.group(self.kind.group)})

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
        listing = entrypoints.group(self.kind.group)
        found = [ep for ep in listing if ep.name == name]
        if not found:
            raise DriverNotInstalled(self.kind.kind, name, self.kind.distributions.get(name), self.names())
        providers = sorted({_dist_name(ep) for ep in found})
        if len(providers) > 1:
            raise DriverError(
                f"{self.kind.kind} driver {name!r} is provided by more than one distribution: {', '.join(providers)}; "
                "uninstall all but one"
            )
        _share_listing(self.kind.group, listing)
        try:
            manager = stevedore_driver.DriverManager(
                namespace=self.kind.group, name=name, invoke_on_load=False, on_load_failure_callback=_reraise
            )
        except DriverError:
            raise
        except Exception as exc:  # an installed plugin that fails to import
            raise DriverError(f"{self.kind.kind} driver {name!r} failed to load: {exc}") from exc
        cls: type[T] = manager.driver
        self.check_driver_class(name, cls)
        self._loaded[name] = cls
        return cls

    def check_driver_class(self, name: str, cls: object) -> None:
        """The class must subclass the kind's ABC and target this engine's driver API.

        :raises DriverError: not a driver of this kind.
        :raises DriverAPIMismatch: written for another ``DRIVER_API_VERSION``.
        """
        base = self.kind.base_class() if self.kind.base else object
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise DriverError(f"{self.kind.kind} driver {name!r} is not a {base.__name__} subclass: {cls!r}")
        version = getattr(cls, "API_VERSION", None)
        if version != DRIVER_API_VERSION:
            raise DriverAPIMismatch(
                f"{self.kind.kind} driver {name!r} targets driver API {version}, engine has {DRIVER_API_VERSION}"
            )


def _share_listing(group: str, listing: tuple[importlib.metadata.EntryPoint, ...]) -> None:
    """Hand stevedore the group's entry points as engine.entrypoints has them: stevedore would scan
    every distribution again (~30 ms at start-up) and then keep its listing for the life of the
    process, so a distribution installed since (``pip install`` while the daemon runs, a test's
    throwaway dist-info) would stay invisible to it."""
    cache = getattr(stevedore_extension.ExtensionManager, "ENTRY_POINT_CACHE", None)
    if isinstance(cache, dict):
        cache[group] = list(listing)


def _dist_name(ep: object) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "?"


def _reraise(manager: object, entrypoint: object, exc: BaseException) -> None:
    raise exc
