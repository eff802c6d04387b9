"""The subsystems a daemon runs, built in start order (stopped in reverse), each with the
collaborators its constructor names. Part of the composition root (with engine.daemon and engine.cli)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.containers.service import ContainerService
    from engine.daemon import Daemon
    from engine.images.service import ImageService
    from engine.networks import NetworkController
    from engine.runtime import Runtime
    from engine.volumes import VolumeService


#: a subsystem's start or stop: sync or async
Step = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True)
class Stage:
    """One subsystem as the daemon starts and stops it (``None``: nothing to do at that step)."""

    name: str
    start: Step | None
    stop: Step | None


@dataclass(frozen=True)
class Subsystems:
    images: ImageService
    volumes: VolumeService
    networks: NetworkController
    runtime: Runtime
    containers: ContainerService

    def in_start_order(self) -> list[Stage]:
        return [
            Stage("images", None, self.images.stop),  # ready once constructed
            Stage("volumes", self.volumes.start, self.volumes.stop),
            Stage("networks", self.networks.start, self.networks.stop),
            Stage("runtime", self.runtime.start, self.runtime.stop),
            Stage("containers", self.containers.start, self.containers.stop),
        ]


def make_subsystems(daemon: Daemon) -> Subsystems:
    # imported here: the daemon builds the API application meanwhile, and these pull in a lot
    from engine.containers.service import ContainerService
    from engine.images.service import ImageService
    from engine.logs.collaborators import DaemonLogging
    from engine.runtime import Runtime
    from engine.volumes import VolumeService

    driver = daemon.storage
    assert driver is not None, "the storage driver starts before the subsystems"

    config = _config_reader(daemon)

    # images: first (containers need image configs and layers)
    images = ImageService(
        daemon.data_root / "image" / driver.name, driver, config=config, events=daemon.events, hooks=daemon.hooks
    )
    # volumes: before containers (containers reference and mount volumes)
    volumes = VolumeService(daemon.data_root / "volumes", daemon.events, daemon.hooks, root_ids=daemon.id_map.root())
    # networks: before containers (containers join networks at start, leave them at stop)
    networks = network_controller(daemon)
    # runtime: before containers (OCI specs, one shim per container; containers outlive the daemon)
    runtime = Runtime(daemon.exec_root, config, daemon.hooks)
    # containers: last (they use images, volumes, networks and the runtime; stopped first)
    containers = ContainerService(
        daemon.data_root / "containers",
        config=config,
        events=daemon.events,
        images=images,
        volumes=volumes,
        networks=networks,
        runtime=runtime,
        storage_driver=driver.name,
        logging=DaemonLogging(config, daemon.log_drivers, daemon.hooks),
        id_map=daemon.id_map,
    )
    return Subsystems(images, volumes, networks, runtime, containers)


def network_controller(daemon: Daemon) -> NetworkController:
    """The network controller with its collaborators (also what engine's own networking tests build
    over an unstarted daemon)."""
    from engine.networks import NetworkController

    return NetworkController(
        daemon.data_root / "network",
        daemon.exec_root,
        config=_config_reader(daemon),
        drivers=daemon.network_drivers,
        events=daemon.events,
        hooks=daemon.hooks,
        containers_root=daemon.data_root / "containers",
        id_map=daemon.id_map,
    )


def _config_reader(daemon: Daemon) -> Callable[[], DaemonConfig]:
    """The configuration in effect: SIGHUP replaces the daemon's, so services that read reloadable
    keys (registries, address pools, host-gateway-ip...) read it through this at each use."""

    def config() -> DaemonConfig:
        return daemon.config

    return config
