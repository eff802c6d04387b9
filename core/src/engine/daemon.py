"""The Daemon: owns the configuration, the plugin manager, the driver registries and the subsystems.

Start-up is ordered (storage, images, volumes, networks, containers, then the API) and
shutdown runs in reverse. Each subsystem is a plain object with optional ``start``/``stop``
methods (sync or async).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import secrets
import socket
from pathlib import Path
from typing import Any

import pluggy

from engine import registry
from engine.config import ConfigSchema, DaemonConfig
from engine.config import reload as reload_config
from engine.drivers.log import LogDriver
from engine.drivers.network import NetworkDriver
from engine.drivers.records import write_atomic
from engine.drivers.storage import StorageDriver
from engine.errors import ConfigError
from engine.events import EventBus

log = logging.getLogger(__name__)

FREEZE_DELAY = 1.0  # seconds after start-up until its objects leave the cyclic GC


class Daemon:
    def __init__(self, config: DaemonConfig, pm: pluggy.PluginManager, schema: ConfigSchema) -> None:
        self.config = config
        self.pm = pm
        self.schema = schema
        self.events = EventBus()
        self.storage_drivers: registry.DriverRegistry[StorageDriver] = registry.DriverRegistry(registry.STORAGE)
        self.network_drivers: registry.DriverRegistry[NetworkDriver] = registry.DriverRegistry(registry.NETWORK)
        self.log_drivers: registry.DriverRegistry[LogDriver] = registry.DriverRegistry(registry.LOG)
        self.id = ""
        self.name = socket.gethostname()
        self.storage: StorageDriver | None = None
        # subsystems, in start order; each is set up in start()
        self.subsystems: list[Any] = []
        self.api: Any = None
        self._stopped = asyncio.Event()

    # -- paths -------------------------------------------------------------------------------------

    @property
    def data_root(self) -> Path:
        return self.config.data_root

    @property
    def exec_root(self) -> Path:
        return self.config.exec_root

    # -- lifecycle ---------------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        id_file = self.data_root / "engine-id"
        if not id_file.exists():
            raw = secrets.token_hex(18).upper()
            write_atomic(id_file, ":".join(raw[i : i + 4] for i in range(0, len(raw), 4)))
        self.id = id_file.read_text().strip()

    def _check_log_driver(self) -> None:
        """The default log driver must be installed and accept the default options."""
        cls = self.log_drivers.load(self.config["log-driver"])
        cls.validate_options(dict(self.config["log-opts"]))

    async def start(self) -> None:
        from engine.api.server import APIServer
        from engine.storage import start_storage_driver

        self._prepare_dirs()
        self._check_log_driver()
        # listeners are opened first, as dockerd does: a bad -H fails before anything else starts
        self.api = APIServer(self.config)
        await self.api.bind()
        # the storage driver starts in a worker thread (mostly mkdir and mount system calls, which
        # release the GIL) while this thread imports and builds the API application (Python)
        # (run_in_executor, not to_thread: the thread must start now, not at this coroutine's next await)
        storage = asyncio.get_running_loop().run_in_executor(
            None, start_storage_driver, self.config, self.storage_drivers
        )
        try:
            app = _make_app(self)
        finally:
            self.storage = await storage
        for subsystem in self._make_subsystems():
            self.subsystems.append(subsystem)
            await _call_maybe_async(getattr(subsystem, "start", None))
        self.events.add_observer(self._events_to_hooks)
        await self.api.serve(app)
        self.pm.hook.engine_daemon_started(daemon=self)
        log.info("engine %s started (storage driver %s, data-root %s)", self.id, self.storage.name, self.data_root)
        # a moment later, off the start-up path (a full collection takes ~50 ms here)
        asyncio.get_running_loop().call_later(FREEZE_DELAY, _freeze_startup_objects)

    def _make_subsystems(self) -> list[Any]:
        """Construct the subsystems in start order; each module owns its own construction."""
        from engine.subsystems import make_subsystems

        return make_subsystems(self)

    async def stop(self) -> None:
        self.pm.hook.engine_daemon_stopping(daemon=self)
        if self.api is not None:
            await self.api.stop()
        for subsystem in reversed(self.subsystems):
            try:
                await _call_maybe_async(getattr(subsystem, "stop", None))
            except Exception:
                log.exception("stopping %s failed", type(subsystem).__name__)
        if self.storage is not None:
            await asyncio.to_thread(self.storage.cleanup)
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def reload(self) -> None:
        """SIGHUP: re-read daemon.json; a bad file logs the error and keeps the running config."""
        import json

        from engine.cli import set_log_level

        log.info("Got signal to reload configuration, reloading from: %s", self.config.config_file)
        try:
            result = reload_config(self.schema, self.config)
        except ConfigError as exc:
            log.error("%s", exc.message)
            return
        new = result.config
        self.config = new
        if new.is_value_set("debug"):
            set_log_level("debug" if new["debug"] else new["log-level"])
        attributes = {**result.attributes, "name": self.name}
        log.info("Reloaded configuration: %s", json.dumps(new.as_json(), separators=(",", ":")))
        self.pm.hook.engine_daemon_reloaded(daemon=self, config=new, changed=result.changed)
        self.events.publish("daemon", "reload", self.id, attributes)

    def _events_to_hooks(self, event: dict[str, Any]) -> None:
        if event["Type"] == "container":
            self.pm.hook.engine_container_event(
                container_id=event["Actor"]["ID"], action=event["Action"], attributes=event["Actor"]["Attributes"]
            )

    def subsystem(self, kind: type) -> Any:
        for sub in self.subsystems:
            if isinstance(sub, kind):
                return sub
        raise LookupError(kind.__name__)


def _make_app(daemon: Daemon) -> Any:
    from engine.api.app import make_app  # aiohttp and every route module

    return make_app(daemon)


def _freeze_startup_objects() -> None:
    """Everything made at start-up (modules, routes, plugins, subsystems) lives as long as the daemon:
    keep it out of the cyclic GC, whose full collections otherwise rescan it again and again while
    output is copied (200 000 log lines: 25% less CPU)."""
    gc.collect()
    gc.freeze()


async def _call_maybe_async(fn: Any) -> None:
    if fn is None:
        return
    result = fn()
    if inspect.isawaitable(result):
        await result
