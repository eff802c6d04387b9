"""The Daemon: owns the configuration, the plugin manager, the driver registries and the subsystems.

Start-up is ordered (storage, images, volumes, networks, runtime, containers, then the API) and
shutdown runs in reverse. Each subsystem is a plain object with optional ``start``/``stop``
methods (sync or async), built by engine.subsystems with the collaborators it names; the Daemon
holds each one in a typed field. The daemon and engine.cli are the composition root: nothing
below them imports either.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from engine import registry, rootless
from engine.config import ConfigSchema, DaemonConfig
from engine.config import reload as reload_config
from engine.drivers.log import LogDriver
from engine.drivers.network import NetworkDriver
from engine.drivers.records import write_atomic
from engine.drivers.storage import IDENTITY, IdMap, StorageDriver
from engine.errors import ConfigError
from engine.events import EventBus
from engine.hooks import DaemonContext, Hooks
from engine.memtrim import MemoryTrimmer
from engine.shipped import install_hint

if TYPE_CHECKING:
    from engine.api.authz import AuthzChain
    from engine.api.server import APIServer
    from engine.containers.service import ContainerService
    from engine.images.service import ImageService
    from engine.networks import NetworkController
    from engine.runtime import Runtime
    from engine.subsystems import Stage
    from engine.volumes import VolumeService

log = logging.getLogger(__name__)

FREEZE_DELAY = 1.0  # seconds after start-up until its objects leave the cyclic GC


class Daemon:
    # the subsystems, in start order: built by start() (engine.subsystems) once the storage driver runs
    images: ImageService
    volumes: VolumeService
    networks: NetworkController
    runtime: Runtime
    containers: ContainerService

    def __init__(self, config: DaemonConfig, pm: pluggy.PluginManager, schema: ConfigSchema) -> None:
        self.config = config
        self.pm = pm
        self.hooks = Hooks(pm)
        self.schema = schema
        self.events = EventBus()
        self.storage_drivers: registry.DriverRegistry[StorageDriver] = registry.DriverRegistry(registry.STORAGE)
        self.network_drivers: registry.DriverRegistry[NetworkDriver] = registry.DriverRegistry(registry.NETWORK)
        self.log_drivers: registry.DriverRegistry[LogDriver] = registry.DriverRegistry(registry.LOG)
        self.id = ""
        self.name = socket.gethostname()
        self.storage: StorageDriver | None = None
        # userns-remap: resolved by a security plugin at start-up (identity: no remapping)
        self.id_map: IdMap = IDENTITY
        # the subsystems' start/stop steps, in start order (stopped in reverse)
        self.subsystems: list[Stage] = []
        self.api: APIServer | None = None
        #: the out-of-process authorization plugins (``authorization-plugins``), set at start and on SIGHUP
        self.authz: AuthzChain | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._trimmer = MemoryTrimmer()

    # -- paths -------------------------------------------------------------------------------------

    @property
    def data_root(self) -> Path:
        """Where this daemon keeps its state: with userns-remap, a subdirectory per mapping
        (``<data-root>/<uid>.<gid>``, as dockerd), so remapped and plain layers never mix."""
        if self.id_map.identity:
            return self.config.data_root
        uid, gid = self.id_map.root()
        return self.config.data_root / f"{uid}.{gid}"

    @property
    def exec_root(self) -> Path:
        return self.config.exec_root

    # -- lifecycle ---------------------------------------------------------------------------------

    def _check_rootless(self) -> None:
        """dockerd's rules: RootlessKit's child must run in rootless mode; rootless mode is limited."""
        if rootless.running_with_rootlesskit():
            if not self.config["rootless"]:
                raise ConfigError("rootless mode needs to be enabled for running with RootlessKit")
            log.info("Running with RootlessKit integration")
        if self.config["rootless"]:
            log.warning("Running in rootless mode. This mode has feature limitations.")

    def _resolve_id_map(self) -> None:
        value = self.config["userns-remap"]
        if value and not self.hooks.resolves_id_map():
            raise ConfigError(
                f"userns-remap is set but no plugin resolves it: {install_hint('engine-plugin-userns-remap')}"
            )
        self.id_map = self.hooks.security_resolve_id_map(self.config) or IDENTITY
        if value and self.id_map.identity:
            log.warning("User namespaces: root cannot be remapped with itself; user namespaces are OFF")
        elif value:
            log.info("User namespaces: ID ranges will be mapped to subuid/subgid ranges of: %s", value)

    def _prepare_dirs(self) -> None:
        self.config.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        if not self.id_map.identity:
            # the remapped root must traverse to its layers, volumes and container files (dockerd:
            # 0710, group the remapped root's group)
            _, gid = self.id_map.root()
            for path in (self.config.data_root, self.data_root):
                path.mkdir(exist_ok=True, mode=0o710)
                os.chown(path, 0, gid)
                os.chmod(path, 0o710)
        self.exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        id_file = self.config.data_root / "engine-id"
        if not id_file.exists():
            raw = secrets.token_hex(18).upper()
            write_atomic(id_file, ":".join(raw[i : i + 4] for i in range(0, len(raw), 4)))
        self.id = id_file.read_text().strip()

    def _check_seccomp_profile(self) -> None:
        """dockerd reads ``seccomp-profile`` when it starts: an unreadable file stops start-up."""
        profile = self.config["seccomp-profile"]
        if not profile or profile == "unconfined":
            return
        try:
            Path(profile).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"failed to start daemon: opening seccomp profile ({profile}) failed: "
                f"open {profile}: {(exc.strerror or str(exc)).lower()}"
            ) from None

    def _check_log_driver(self) -> None:
        """The default log driver must be installed and accept the default options."""
        cls = self.log_drivers.load(self.config["log-driver"])
        cls.validate_options(dict(self.config["log-opts"]))

    async def start(self) -> None:
        from engine.api.server import APIServer
        from engine.storage import start_storage_driver

        self._check_rootless()
        self._resolve_id_map()
        self._prepare_dirs()
        self._check_log_driver()
        # listeners are opened first, as dockerd does: a bad -H fails before anything else starts
        self.api = APIServer(self.config)
        await self.api.bind()
        self._check_seccomp_profile()
        await self._load_authz(reloading=False)
        # the storage driver starts in a worker thread (mostly mkdir and mount system calls, which
        # release the GIL) while this thread imports and builds the API application (Python)
        # (run_in_executor, not to_thread: the thread must start now, not at this coroutine's next await)
        storage = asyncio.get_running_loop().run_in_executor(
            None, start_storage_driver, self.config, self.storage_drivers, self.id_map, self.data_root
        )
        try:
            app = _make_app(self)
        finally:
            self.storage = await storage
        for stage in self._make_subsystems():
            self.subsystems.append(stage)
            await _call_maybe_async(stage.start)
        self.events.add_observer(self._events_to_hooks)
        await self.api.serve(app)
        self.hooks.daemon_started(self.context())
        log.info("engine %s started (storage driver %s, data-root %s)", self.id, self.storage.name, self.data_root)
        # a moment later, off the start-up path (a full collection takes ~50 ms here)
        asyncio.get_running_loop().call_later(FREEZE_DELAY, _freeze_startup_objects)
        self._trimmer.start()  # memory kept after bursts of work goes back to the system

    def _make_subsystems(self) -> list[Stage]:
        """Construct the subsystems in start order, each with the collaborators it names."""
        from engine.subsystems import make_subsystems

        subsystems = make_subsystems(self)
        self.images = subsystems.images
        self.volumes = subsystems.volumes
        self.networks = subsystems.networks
        self.runtime = subsystems.runtime
        self.containers = subsystems.containers
        return subsystems.in_start_order()

    def context(self) -> DaemonContext:
        """What lifecycle hooks see of the daemon."""
        return DaemonContext(
            id=self.id,
            name=self.name,
            data_root=self.data_root,
            exec_root=self.exec_root,
            config=self.config,
            storage_driver=self.storage.name if self.storage is not None else "",
        )

    async def stop(self) -> None:
        self._trimmer.stop()
        self.hooks.daemon_stopping(self.context())
        if self.api is not None:
            await self.api.stop()
        if self.authz is not None:
            await self.authz.close()
        for stage in reversed(self.subsystems):
            try:
                await _call_maybe_async(stage.stop)
            except Exception:
                log.exception("stopping the %s subsystem failed", stage.name)
        if self.storage is not None:
            await asyncio.to_thread(self.storage.cleanup)
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def reload(self) -> None:
        """SIGHUP: re-read daemon.json; a bad file logs the error and keeps the running config."""
        import json

        from engine.daemonlog import set_level as set_log_level

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
        # the authorization plugins are looked up and activated again (network calls) before the
        # reload is announced, so that whoever sees the event also sees the new set
        self._reload_task = asyncio.get_running_loop().create_task(self._after_reload(new, result.changed, attributes))

    async def _after_reload(self, new: DaemonConfig, changed: Any, attributes: dict[str, str]) -> None:
        await self._load_authz(reloading=True)
        self.hooks.daemon_reloaded(self.context(), new, changed)
        self.events.publish("daemon", "reload", self.id, attributes)

    async def _load_authz(self, reloading: bool) -> None:
        """Find and activate the ``authorization-plugins`` served out of process. At start-up a bad
        one stops the daemon (as dockerd); on reload it is logged and the previous set stays (dockerd
        exits)."""
        from engine.api.authz import AuthzChain

        try:
            chain = await AuthzChain.load(self.config["authorization-plugins"], self.hooks.authorizers())
        except ConfigError as exc:
            if not reloading:
                raise
            log.error("Error validating authorization plugin: %s (the previous plugins stay)", exc.message)
            return
        old, self.authz = self.authz, chain
        if old is not None:
            await old.close()

    def _events_to_hooks(self, event: dict[str, Any]) -> None:
        if event["Type"] == "container":
            self.hooks.container_event(event["Actor"]["ID"], event["Action"], event["Actor"]["Attributes"])


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
