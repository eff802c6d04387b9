"""The subsystems a daemon runs, in start order (stopped in reverse)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.daemon import Daemon


def make_subsystems(daemon: Daemon) -> list[Any]:
    subsystems: list[Any] = []
    # images: first (containers need image configs and layers)
    from engine.images.service import ImageService

    daemon.images = ImageService(daemon)
    subsystems.append(daemon.images)
    # volumes: before containers (containers reference and mount volumes)
    from engine.volumes import VolumeService

    daemon.volumes = VolumeService.from_daemon(daemon)
    subsystems.append(daemon.volumes)
    # networks: before containers (containers join networks at start, leave them at stop)
    from engine.networks import NetworkController

    daemon.networks = NetworkController(daemon)
    subsystems.append(daemon.networks)
    # runtime: before containers (OCI specs, one shim per container; containers outlive the daemon)
    from engine.runtime import Runtime

    daemon.runtime = Runtime.from_daemon(daemon)
    subsystems.append(daemon.runtime)
    # containers: last (they use images, volumes, networks and the runtime; stopped first)
    from engine.containers.service import ContainerService

    daemon.containers = ContainerService(daemon)
    subsystems.append(daemon.containers)
    return subsystems
