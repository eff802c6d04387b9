"""The logging side of a container: its log config, its driver and copier, and its reader.

The containers subsystem calls, per container:

- at create: ``host_config["LogConfig"] = validate_log_config(setup, host_config.get("LogConfig"))``
  (fills in the daemon's default driver and options, validates; dockerd's
  ``mergeAndVerifyLogConfig``);
- before the runtime starts the container, in a thread: ``driver = open_driver(setup, container)``
  (the driver connects to its target; a failure fails the start with dockerd's "failed to
  initialize logging driver: ..."); its undo is ``driver.close()``;
- at start: ``logger = start_logging(setup, container, task.output("acked"), ack=task.ack,
  driver=driver)`` (the runtime's chunks; ``ack`` records how far the driver got, so a restarted
  daemon resumes there); then
  ``container.log_driver = logger.driver``, ``container.log_copier = logger`` and
  ``container.log_path = logger.driver.log_path``;
- when the container has exited (the output source ended): ``await logger.close()``
  (every message written, driver closed, ``docker logs -f`` followers end);
  at daemon shutdown with live-restore: ``await logger.stop()``.

The logs route calls :func:`open_reader`. ``setup`` is what logging uses of the daemon (its default
driver and options, log driver registry and hooks: :class:`~engine.logs.collaborators.LogSetup`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from engine import opcounters
from engine.drivers.log import LogDriver, LogInfo, LogMessage, ReadConfig
from engine.drivers.logfile import messages_of
from engine.drivers.logopts import CACHE_OPTIONS, NON_BLOCKING, copier_mode
from engine.drivers.timefmt import rfc3339nano
from engine.errors import DriverNotInstalled, EngineError, InvalidParameter, NotImplementedByEngine, SystemError
from engine.logs import cache
from engine.logs.collaborators import LoggedContainer, LogSetup
from engine.logs.copier import Chunk, Copier
from engine.logs.ring import RingDriver, call_bounded
from engine.shipped import install_hint

log = logging.getLogger(__name__)

NONE = "none"
CLOSE_TIMEOUT = 10.0  # dockerd's loggerCloseTimeout: a driver's close is not waited for longer
READ_NOT_SUPPORTED = "configured logging driver does not support reading"
INIT_FAILED = "failed to initialize logging driver"  # dockerd's wording when a driver cannot start


def _driver_class(setup: LogSetup, name: str) -> type[LogDriver]:
    try:
        return setup.log_drivers.load(name)
    except DriverNotInstalled as exc:
        hint = f" ({install_hint(exc.distribution)})" if exc.distribution else ""
        raise InvalidParameter(f"logger: no log driver named '{name}' is registered{hint}") from None


def validate_log_config(setup: LogSetup, log_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A container's ``HostConfig.LogConfig`` completed with the daemon's defaults and checked.

    :returns: ``{"Type": driver, "Config": options}`` to store in the host config.
    :raises InvalidParameter: unknown driver or bad option, with dockerd's message.
    """
    log_config = log_config or {}
    default_type = setup.config["log-driver"]
    default_options: Mapping[str, str] = setup.config["log-opts"] or {}
    driver = log_config.get("Type") or default_type
    options = {str(k): str(v) for k, v in (log_config.get("Config") or {}).items()}
    if driver == default_type:
        for key, value in default_options.items():
            options.setdefault(key, value)
    for key in CACHE_OPTIONS:  # the dual-logging defaults apply whatever the driver
        if key in default_options:
            options.setdefault(key, default_options[key])
    if driver != NONE:  # dockerd accepts anything for "none"
        _driver_class(setup, driver).validate_options(options)
    return {"Type": driver, "Config": options}


def log_config_of(setup: LogSetup, container: LoggedContainer) -> tuple[str, dict[str, str]]:
    config = (container.host_config or {}).get("LogConfig") or {}
    driver = config.get("Type") or setup.config["log-driver"]
    options = dict(config.get("Config") or {})
    if not config.get("Type"):
        options = {**dict(setup.config["log-opts"] or {}), **options}
    return driver, options


def make_log_info(setup: LogSetup, container: LoggedContainer) -> LogInfo:
    """What the driver knows about the container (moby's ``logger.Info``)."""
    _, options = log_config_of(setup, container)
    config = container.config or {}
    path = container.path or ""
    return LogInfo(
        container_id=container.id,
        container_name=container.name,
        image_id=container.image_id or config.get("Image", ""),
        image_name=config.get("Image", ""),
        created=rfc3339nano(container.created),
        env=tuple(config.get("Env") or ()),
        labels=dict(config.get("Labels") or {}),
        config=options,
        log_dir=Path(container.root),
        daemon_name="docker",  # what dockerd's {{.DaemonName}} says
        command=tuple([path, *(container.args or [])] if path else ()),
    )


def can_read(driver_cls: type[LogDriver]) -> bool:
    return bool(driver_cls.capabilities.read_logs or hasattr(driver_cls, "read_logs"))


def create_driver(setup: LogSetup, container: LoggedContainer) -> LogDriver:
    """The container's log driver, as dockerd's ``StartLogger`` assembles it: behind a drop-oldest
    buffer with ``mode=non-blocking`` (so a stuck target holds up nothing, the cache included),
    then wrapped with the local cache when it cannot read back."""
    name, options = log_config_of(setup, container)
    cls = _driver_class(setup, name)
    info = make_log_info(setup, container)
    driver = cls(info)
    opcounters.driver_made("log", driver)  # the driver itself, not the ring or cache around it
    mode, max_buffer = copier_mode(options)
    if mode == NON_BLOCKING and name != NONE:
        driver = RingDriver(driver, max_buffer)
    if name != NONE and not can_read(cls) and cache.cache_enabled(options):
        log.info(
            "configured log driver %s does not support reads, enabling local file cache for the logs of container %s",
            name,
            container.id[:12],
        )
        driver = cache.CachedLogDriver(driver, info)
    return driver


def open_driver(setup: LogSetup, container: LoggedContainer) -> LogDriver:
    """The container's driver, started: connected to its target (blocking: call in a thread).

    :raises EngineError: the driver could not start: "failed to initialize logging driver: <why>"
        (dockerd's message, a 500 as dockerd answers it); nothing is left open.
    """
    driver = create_driver(setup, container)
    try:
        driver.start()
    except Exception as exc:
        close_unused_driver(driver)
        why = exc.message if isinstance(exc, EngineError) else str(exc)
        raise SystemError(f"{INIT_FAILED}: {why}") from exc
    return driver


def close_unused_driver(driver: LogDriver) -> None:
    """Close a driver from :func:`open_driver` that no copier took (the start failed later on);
    blocking, bounded as every driver close."""
    call_bounded(driver.close, CLOSE_TIMEOUT, f"closing log driver {driver.name}")


class ContainerLogger:
    """A running container's driver and copier."""

    def __init__(self, driver: LogDriver, copier: Copier) -> None:
        self.driver = driver
        self.copier = copier

    async def close(self, timeout: float | None = None) -> None:
        """After the output source ended: wait until everything is written, close the driver.

        The wait lasts as long as the driver keeps taking messages: ``timeout`` is how long it may
        take none before the copier is stopped (a stuck driver), not a bound on a long backlog,
        which the spool lets a container leave behind in a burst (blocking mode loses nothing)."""
        stats = self.copier.stats
        while True:
            delivered = stats.messages
            try:
                await asyncio.wait_for(self.copier.wait(), timeout)
                break
            except TimeoutError:
                if stats.messages == delivered:
                    await self.copier.stop()
                    break
        await self._close_driver()

    async def stop(self) -> None:
        """Stop copying now (daemon shutdown); what was read is written; the driver is closed."""
        await self.copier.stop()
        await self._close_driver()

    async def _close_driver(self) -> None:
        # a driver stuck on its target must not hold up the container's exit or the daemon's stop
        what = f"closing log driver {self.driver.name} of container {self.copier.container_id[:12]}"
        await asyncio.to_thread(call_bounded, self.driver.close, CLOSE_TIMEOUT, what)


def start_logging(
    setup: LogSetup,
    container: LoggedContainer,
    source: AsyncIterator[Chunk],
    ack: Callable[[int], None] | None = None,
    driver: LogDriver | None = None,
) -> ContainerLogger:
    """Start copying ``source`` to ``driver`` (from :func:`open_driver`), or to a driver created
    here and not started, which connects on its first message (call on the loop).

    The ``none`` driver still gets a copier: the output has to be drained from the spool.
    """
    if driver is None:
        driver = create_driver(setup, container)
    copier = Copier(
        source,
        driver,
        container_id=container.id,
        hook=setup.hooks.log_message if setup.hooks.wants_log_messages() else None,
        ack=ack,
    )
    copier.start()
    return ContainerLogger(driver, copier)


class LogSource:
    """What ``docker logs`` reads: the running driver (``live``: follow works) or, for a stopped
    container, a read-only instance closed after reading."""

    def __init__(self, reader: Any, live: bool, owned: LogDriver | None = None) -> None:
        self.reader = reader
        self.live = live
        self._owned = owned

    def batches(self, config: ReadConfig) -> AsyncIterator[list[LogMessage]]:
        if not self.live and config.follow:
            config = ReadConfig(config.since_ns, config.until_ns, config.tail, False)
        return read_batches(self.reader, config)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None


def read_batches(reader: Any, config: ReadConfig) -> AsyncIterator[list[LogMessage]]:
    """Batches from a reader: its ``read_log_batches`` when it has one, else one per message."""
    batches = getattr(reader, "read_log_batches", None)
    if batches is not None:
        return batches(config)

    async def single() -> AsyncIterator[list[LogMessage]]:
        async for message in reader.read_logs(config):
            yield [message]

    return single()


def open_reader(setup: LogSetup, container: LoggedContainer) -> LogSource:
    """The reader behind ``docker logs`` for a container (blocking: call in a thread).

    :raises NotImplementedByEngine: the driver is ``none``, or cannot read and has no cache
        ("configured logging driver does not support reading", as dockerd).
    """
    name, options = log_config_of(setup, container)
    if name == NONE:
        raise NotImplementedByEngine(READ_NOT_SUPPORTED)
    running = container.log_driver
    if running is not None and hasattr(running, "read_logs"):
        return LogSource(running, live=True)
    cls = _driver_class(setup, name)
    if can_read(cls):
        driver = cls(make_log_info(setup, container))
        return LogSource(driver, live=False, owned=driver)
    if cache.cache_enabled(options):
        reader = cache.cache_file(Path(container.root), options)
        return LogSource(_FileReader(reader), live=False)
    raise NotImplementedByEngine(READ_NOT_SUPPORTED)


class _FileReader:
    def __init__(self, file: Any) -> None:
        self.file = file

    def read_log_batches(self, config: ReadConfig) -> AsyncIterator[list[LogMessage]]:
        return self.file.read(config)

    def read_logs(self, config: ReadConfig) -> AsyncIterator[LogMessage]:
        return messages_of(self.file.read(config))
