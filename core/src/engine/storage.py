"""Choosing and starting the storage driver, as dockerd does.

An explicit ``storage-driver`` wins. Otherwise a driver whose directory under the data-root
already holds layers is reused (two such drivers is an error: the user must choose). Otherwise
the first driver of :data:`PRIORITY` that is installed and supported on this host is used.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.config import DaemonConfig
from engine.drivers.storage import IDENTITY, IdMap, StorageDriver
from engine.errors import ConfigError, DriverNotSupported
from engine.registry import DriverRegistry

log = logging.getLogger(__name__)

#: moby 20.10's auto-pick order, without the removed and explicit-only drivers
PRIORITY = ("btrfs", "zfs", "overlay2", "vfs")

#: drivers whose storage-opts carry another prefix than the driver's name (dockerd's ``dm.basesize``)
OPTION_PREFIX = {"devicemapper": "dm"}


def driver_options(name: str, config: DaemonConfig, known: list[str]) -> dict[str, str]:
    """``storage-opts`` for driver ``name``: its own prefix stripped; another driver's prefix is refused."""
    options = {}
    for key, value in config.storage_options().items():
        prefix, dot, rest = key.partition(".")
        if dot and prefix == OPTION_PREFIX.get(name, name):
            options[rest] = value
        elif dot and (prefix in known or prefix in ("dm", "zfs", "btrfs", "overlay2")):
            raise ConfigError(f"{name}: unknown option {key}")
        else:
            options[key] = value
    return options


def _prior_state(root: Path, names: list[str]) -> list[str]:
    found = []
    for name in names:
        home = root / name
        if home.is_dir() and any(home.iterdir()):
            found.append(name)
    return found


def start_storage_driver(
    config: DaemonConfig,
    registry: DriverRegistry[StorageDriver],
    id_map: IdMap = IDENTITY,
    root: Path | None = None,
) -> StorageDriver:
    """Load, initialise and return the storage driver under ``root`` (the data-root unless given:
    userns-remap keeps one per mapping); raises ConfigError/DriverError naming the problem."""
    root = root or config.data_root
    names = registry.names()
    explicit = config["storage-driver"]
    if explicit:
        cls = registry.load(explicit, explicit=True)
        try:
            return cls.init(root / explicit, driver_options(explicit, config, names), id_map)
        except DriverNotSupported as exc:
            raise ConfigError(f"error initializing graphdriver: driver not supported: {explicit}: {exc}") from None
    prior = _prior_state(root, names)
    if len(prior) > 1:
        raise ConfigError(
            f"{root} contains several graphdrivers: {', '.join(prior)}; "
            "please cleanup or explicitly choose storage driver (-s <DRIVER>)"
        )
    candidates = prior or [name for name in PRIORITY if name in names]
    for name in candidates:
        cls = registry.load(name, explicit=bool(prior))
        try:
            driver = cls.init(root / name, driver_options(name, config, names), id_map)
        except DriverNotSupported as exc:
            if prior:
                raise ConfigError(f"error initializing graphdriver: {name}: {exc}") from None
            log.debug("storage driver %s not supported here: %s", name, exc)
            continue
        log.info("storage driver %s chosen", name)
        return driver
    raise ConfigError("no supported storage driver is installed")
