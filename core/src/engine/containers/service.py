"""``daemon.containers``: the container subsystem's facade.

Create, lookup, inspect, list, rename, remove and prune live here; running containers are
handled by :mod:`engine.containers.lifecycle` (start/stop/kill/exit/restart policies), exec by
:mod:`engine.containers.exec`, attach by :mod:`engine.containers.attach`. Methods are blocking
and thread-safe (one lock per container); routes call them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.containers import create as createmod
from engine.containers import initlayer, listing, logcopy, names, trace, views
from engine.containers.model import BIND, TMPFS, VOLUME, Container, MountPoint
from engine.containers.mounts import parse_all
from engine.containers.state import WAIT_CONDITIONS, WaitResult
from engine.containers.store import ContainerStore
from engine.containers.timefmt import now_ns
from engine.drivers.storage import IDENTITY, IdMap
from engine.drivers.units import parse_size
from engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from engine.filters import Filters, timestamp_ns
from engine.hooks import ContainerContext

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.containers.attach import AttachPlan
    from engine.containers.collaborators import ImageSource
    from engine.events import EventBus
    from engine.logs.collaborators import LogSetup
    from engine.networks import NetworkController
    from engine.runtime import Runtime
    from engine.streams.conn import Conn
    from engine.volumes import VolumeService

log = logging.getLogger(__name__)

PRUNE_FILTERS = ("until", "label", "label!")


class ContainerService:
    def __init__(
        self,
        root: Path,
        *,
        config: Callable[[], DaemonConfig],
        events: EventBus,
        images: ImageSource,
        volumes: VolumeService,
        networks: NetworkController,
        runtime: Runtime,
        storage_driver: str,
        logging: LogSetup,
        id_map: IdMap = IDENTITY,
    ) -> None:
        """``root``: ``<data-root>/containers``; ``config``: the daemon's configuration in effect
        (SIGHUP replaces it); ``storage_driver``: the name recorded as a new container's Driver."""
        from engine.containers.exec import ExecManager
        from engine.containers.lifecycle import Lifecycle

        self._config = config
        self.events = events
        self.images = images
        self.volumes = volumes
        self.networks = networks
        self.runtime = runtime
        self.storage_driver = storage_driver
        self.logging = logging
        self.root: Path = root
        # userns-remap: container root is id_map.root() on the host (identity without remapping)
        self.id_map = id_map
        self.store = ContainerStore(self.root, id_map.root()[1])
        self.lifecycle = Lifecycle(self)
        self.execs = ExecManager(self)
        self._create_lock = threading.Lock()  # name generation + reservation only

    @property
    def config(self) -> DaemonConfig:
        return self._config()

    # -- subsystem lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        containers, unfinished = await asyncio.to_thread(self.store.load)
        for container_id, journal in unfinished:
            await asyncio.to_thread(self._rollback_unfinished, container_id, journal)
        self.images.set_usage_check(self.containers_using_image)
        await asyncio.to_thread(self._release_stale_volume_references)
        await self.lifecycle.restore(containers)

    def _release_stale_volume_references(self) -> None:
        """Volume references held by containers that do not exist (a create cut short before its
        journal was written): without this the volume could never be removed without force."""
        volumes = self.volumes
        existing = {c.id for c in self.store.all()}
        try:
            names = [v.name for v in volumes.list()]
        except Exception as exc:
            log.warning("listing volumes at start-up: %s", exc)
            return
        for name in names:
            for ref in volumes.references(name):
                if ref not in existing:
                    log.info("dropping the reference of unknown container %s to volume %s", ref[:12], name)
                    _quietly(volumes.release, name, ref)

    async def stop(self) -> None:
        await self.lifecycle.shutdown()

    # -- lookups --------------------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full ID, name or unique ID prefix; 404 ``No such container: <ref>``."""
        return self.store.get(ref)

    def all(self) -> list[Container]:
        return self.store.all()

    def containers_using_image(self, image_id: str) -> list[tuple[str, bool]]:
        """For the image service's rmi conflict check: (container ID, running) of every container of the image."""
        return [(c.id, c.state.running) for c in self.store.all() if c.image_id == image_id]

    def network_settings_changed(self, container_id: str, settings: dict[str, Any]) -> None:
        """After ``network connect/disconnect`` of a running container: inspect shows it, disk keeps it."""
        container = self.store.find(container_id)
        if container is None:
            return
        with container.lock:
            container.network_settings = settings
            try:
                self.store.save_state(container)
            except OSError as exc:
                log.warning("saving the network settings of %s: %s", container.short_id, exc)

    def connect_network(self, network: str, ref: str, endpoint_config: dict[str, Any]) -> None:
        """``POST /networks/{id}/connect``: join the container to the network (at once when it runs,
        at its next start otherwise) and keep the NetworkSettings it ends up with."""
        container = self._network_member(ref)
        settings = self.networks.connect(
            network, container.id, endpoint_config, name=container.name, config=container.config or {}
        )
        if settings is not None:
            self.network_settings_changed(container.id, settings)

    def disconnect_network(self, network: str, ref: str, *, force: bool = False) -> None:
        """``POST /networks/{id}/disconnect``."""
        container = self._network_member(ref)
        settings = self.networks.disconnect(network, container.id, force=force)
        if settings is not None:
            self.network_settings_changed(container.id, settings)

    def _network_member(self, ref: str) -> Container:
        if not ref:
            raise InvalidParameter("container is required")
        return self.get(ref)

    def log_reader(self, container: Container) -> Any:
        """Blocking: the container's log as its driver (or the local cache) reads it back
        (``engine.logs.LogSource``; close it when done)."""
        from engine.logs import open_reader

        return open_reader(self.logging, container)

    def publish(self, container: Container, action: str, **extra: str) -> None:
        self.events.publish("container", action, container.id, container.event_attributes(**extra))

    # -- create ---------------------------------------------------------------------------------------

    def create(self, name: str | None, body: dict[str, Any]) -> tuple[str, list[str]]:
        """``POST /containers/create``: returns the new ID and dockerd's warnings."""
        timing = trace.Steps("create", "")
        if not isinstance(body, dict):
            raise InvalidParameter("Config cannot be empty in order to create a container")
        request = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        host_config = body.get("HostConfig") or {}
        networking = _networking_config(body.get("NetworkingConfig") or {}, host_config)
        if name:
            name = names.validate(name)
        image_ref = request.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("No image specified")
        image = self.images.resolve(image_ref)
        timing.mark("image")
        merged = createmod.merge_image_config(request, image.config or {})
        createmod.validate_config(merged)
        path, args = createmod.command_of(merged)
        hc = createmod.normalize_host_config(
            host_config,
            default_shm_size=parse_size(self.config["default-shm-size"]),
            default_ipc_mode=self.config["default-ipc-mode"],
            default_cgroupns_mode=self.config["default-cgroupns-mode"],
            default_runtime=self.config["default-runtime"],
            log_driver=self.config["log-driver"],
        )
        warnings = createmod.validate_host_config(hc, runtimes={"runc", *self.config["runtimes"]})
        createmod.validate_network_mode(merged, hc)
        self.runtime.check_container(
            ContainerContext(id="", name=name or "", image_id=image.id, config=merged, host_config=hc)
        )
        self._validate_log_config(hc)
        # ("container:<ref>" is resolved at start, as dockerd: a 404 here would send the CLI pulling)
        warnings += self.networks.validate_container(merged, hc, networking) or []
        mount_points = parse_all(merged, hc, {})
        for mp in mount_points:
            if mp.type == BIND and mp.spec and not Path(mp.source).exists():
                raise InvalidParameter(
                    f'invalid mount config for type "bind": bind source path does not exist: {mp.source}'
                )
        for mp in mount_points:
            if mp.type == VOLUME and mp.anonymous and not mp.name:
                mp.name = secrets.token_hex(32)
        # the anonymous volumes this create makes (rolled back if it does not finish)
        new_volumes = [mp.name for mp in mount_points if mp.type == VOLUME and mp.anonymous]
        mount_points += self._volumes_from(hc, {mp.destination for mp in mount_points})

        timing.mark("validate")
        container_id = secrets.token_hex(32)
        timing.container_id = container_id
        merged["Hostname"] = createmod.default_hostname(container_id, merged, hc)
        config = createmod.normalize_config(merged)
        with self._create_lock:
            if name is None:
                name = self._generate_name(container_id)
            else:
                self.store.reserve_name(name, container_id)
        container = Container(
            id=container_id,
            name=name,
            created=now_ns(),
            path=path,
            args=args,
            config=config,
            host_config=hc,
            image_id=image.id,
            driver=self.storage_driver,
            root=self.store.dir_of(container_id),
            network_settings=self._initial_network_settings(hc, networking),
            mount_points={mp.destination: mp for mp in mount_points},
            networking_config=networking,
        )
        journal = {"volumes": new_volumes}
        try:
            self.store.begin_create(container_id, journal)
            timing.mark("journal")
        except BaseException:
            self.store.release_name(name, container_id)
            raise
        try:
            self.images.layers.create_rw_layer(
                container_id, image.top_layer, initlayer.setup, dict(hc.get("StorageOpt") or {})
            )
            timing.mark("layer")
            self._create_volumes(container)
            timing.mark("volumes")
            self.store.commit_create(container)
            timing.mark("commit")
        except BaseException:
            self._rollback_unfinished(container_id, journal, container=container)
            self.store.release_name(name, container_id)
            raise
        self.store.add(container)
        self.publish(container, "create")
        timing.done()
        return container_id, warnings

    def _volumes_from(self, hc: dict[str, Any], taken: set[str]) -> list[MountPoint]:
        """``--volumes-from c[:ro|rw]``: the other container's mounts (the same volumes and binds)."""
        out: list[MountPoint] = []
        for spec in hc.get("VolumesFrom") or []:
            ref, _, mode = spec.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidParameter(f"invalid mode for volumes-from: {mode}")
            source = self.get(ref)
            for dest, mp in source.mount_points.items():
                if dest in taken or mp.type == TMPFS:
                    continue
                copy = MountPoint.from_json(mp.to_json())
                if mode:
                    copy.rw = mode == "rw"
                out.append(copy)
                taken.add(dest)
        return out

    def _generate_name(self, container_id: str) -> str:
        for retry in range(6):
            candidate = "/" + names.generate(retry)
            if self.store.name_owner(candidate) is None:
                self.store.reserve_name(candidate, container_id)
                return candidate
        # dockerd falls back to the short ID after repeated collisions
        candidate = "/" + container_id[:12]
        self.store.reserve_name(candidate, container_id)
        return candidate

    def _validate_log_config(self, hc: dict[str, Any]) -> None:
        logcopy.validate(self.logging, hc)

    def _initial_network_settings(self, hc: dict[str, Any], networking: dict[str, Any]) -> dict[str, Any]:
        try:
            from engine.networks import initial_settings

            return initial_settings(hc, networking)
        except ImportError:
            pass
        mode = hc["NetworkMode"]
        if mode.startswith("container:"):
            return views.network_settings_zero({})
        endpoints = (networking or {}).get("EndpointsConfig") or {}
        networks = {}
        primary = createmod.network_name(mode)
        networks[primary] = views.endpoint_zero(**_endpoint_request(endpoints.get(primary) or endpoints.get(mode)))
        for net_name, ep in endpoints.items():
            if net_name not in networks and net_name != mode:
                networks[net_name] = views.endpoint_zero(**_endpoint_request(ep))
        return views.network_settings_zero(networks)

    def _create_volumes(self, container: Container) -> None:
        """Create or reference each volume (the VolumeService; dockerd creates a named volume that does
        not exist yet) and copy the image's content into empty ones."""
        mounts = [mp for mp in container.mount_points.values() if mp.type == VOLUME]
        if not mounts:
            return
        volumes = self.volumes
        for mp in mounts:
            options = (mp.spec.get("VolumeOptions") or {}) if mp.spec else {}
            driver_config = options.get("DriverConfig") or {}
            volumes.create(
                name=mp.name,
                driver=mp.driver or "local",
                driver_opts=dict(driver_config.get("Options") or {}),
                labels=dict(options.get("Labels") or {}),
                anonymous=mp.anonymous,
                reference=container.id,
            )
            volumes.acquire(mp.name, container.id)
        to_copy = [mp for mp in mounts if mp.copy_data]
        if not to_copy:
            return
        from engine.containers.archive_ops import copy_image_content

        layers = self.images.layers
        rootfs = Path(layers.mount_rw(container.id))
        try:
            for mp in to_copy:
                path = volumes.mount(mp.name, container.id)
                try:
                    copy_image_content(rootfs, mp.destination, Path(path))
                finally:
                    volumes.unmount(mp.name, container.id)
        finally:
            layers.unmount_rw(container.id)

    def _rollback_unfinished(
        self, container_id: str, journal: dict[str, Any], container: Container | None = None
    ) -> None:
        """Undo a create that did not finish (at start-up, or after an error)."""
        log.info("rolling back the unfinished creation of container %s", container_id)
        volumes = self.volumes
        created = set(journal.get("volumes") or [])
        if container is not None:
            for mp in container.mount_points.values():
                if mp.type == VOLUME and mp.name not in created:
                    _quietly(volumes.release, mp.name, container_id)
        for volume in journal.get("volumes") or []:
            _quietly(volumes.release, volume, container_id)
            _quietly(volumes.remove, volume, force=True)
        _quietly(self.images.layers.remove_rw_layer, container_id)
        self.store.delete_dir(container_id)

    # -- inspect and list -----------------------------------------------------------------------------

    def volume_path(self, mp: MountPoint) -> str:
        try:
            return str(self.volumes.get(mp.name).mountpoint)
        except Exception:
            return ""

    def graph_driver(self, container: Container) -> dict[str, Any]:
        data: dict[str, Any] | None = None
        try:
            data = self.images.layers.rw_metadata(container.id)
        except Exception as exc:
            log.debug("no graph driver metadata for %s: %s", container.id, exc)
        return {"Data": data, "Name": container.driver}

    def size(self, container: Container) -> tuple[int, int]:
        try:
            return tuple(self.images.layers.rw_size(container.id))  # type: ignore[return-value]
        except Exception as exc:
            log.debug("size of %s: %s", container.id, exc)
            return (0, 0)

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        container = self.get(ref)
        with container.lock:
            return views.inspect(
                container,
                graph_driver=self.graph_driver(container),
                volume_path=self.volume_path,
                size=self.size(container) if size else None,
            )

    def list(self, *, all: bool = False, limit: int = -1, size: bool = False, filters: str | None = None) -> list:
        parsed = Filters.parse(filters, listing.PS_FILTERS)
        selected = listing.select(
            self.store.all(),
            listing.ListOptions(all=all, limit=limit, filters=parsed),
            lookup=self.get,
            ancestor_ids=self._ancestor_ids,
        )
        items = []
        for c in selected:
            try:
                items.append(
                    views.list_item(
                        c, names=[c.name], image=self._image_for_list(c), size=self.size(c) if size else None
                    )
                )
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                # a record stored before bodies were checked: one bad container must not hide the others
                log.warning("container %s left out of the listing: its stored config is unreadable: %s", c.id, exc)
        return items

    def _image_for_list(self, container: Container) -> str:
        """The image reference the container was made from, or its ID once that ref moved (dockerd)."""
        ref = container.config.get("Image", "")
        if ref == container.image_id:
            return ref
        try:
            if self.images.resolve(ref).id == container.image_id:
                return ref
        except Exception:
            pass
        return container.image_id

    def _ancestor_ids(self, ref: str) -> set[str]:
        try:
            image = self.images.resolve(ref)
        except Exception:
            return set()
        return {image.id}

    # -- rename, remove, prune --------------------------------------------------------------------------

    def rename(self, ref: str, new_name: str) -> None:
        if not ref or not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        container = self.get(ref)
        new_name = names.validate(new_name)
        with container.lock:
            old_name = container.name
            if old_name == new_name:
                raise InvalidParameter("Renaming a container with the same name as its current name")
            self.store.reserve_name(new_name, container.id)
            container.name = new_name
            try:
                self.store.save_state(container)
            except BaseException:
                container.name = old_name
                self.store.release_name(new_name, container.id)
                raise
            self.store.release_name(old_name, container.id)
            _quietly(self.networks.container_renamed, container.id, new_name.lstrip("/"))
        self.publish(container, "rename", oldName=old_name)

    async def remove_container(
        self, ref: str, *, force: bool = False, volumes: bool = False, link: bool = False
    ) -> None:
        """``DELETE /containers/{id}``: with ``force`` a running container is killed first, on the loop
        (see ``Lifecycle.kill_for_removal``), then removed in a worker thread."""
        if force:
            container = await asyncio.to_thread(self.get, ref)
            if container.state.running:
                await self.lifecycle.kill_for_removal(container)
        await asyncio.to_thread(self.remove, ref, force=force, volumes=volumes, link=link)

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False, link: bool = False) -> None:
        container = self.get(ref)
        if link:
            raise InvalidParameter(f"Conflict, cannot remove the default link name of the container {ref}")
        with container.lock:
            if container.state.removal_in_progress:
                raise Conflict(f"removal of container {container.bare_name} is already in progress")
            if container.state.running and not force:
                state = container.state.status()
                procedure = "Stop the container before attempting removal or force remove"
                if state == "paused":
                    procedure = "Unpause and then " + procedure[0].lower() + procedure[1:]
                raise Conflict(f"You cannot remove a {state} container {container.id}. {procedure}")
        if force and container.state.running:
            self.lifecycle.kill_and_wait(container)
        with container.lock:
            if container.state.removal_in_progress:
                raise Conflict(f"removal of container {container.bare_name} is already in progress")
            if container.state.running:
                raise Conflict(f"Could not kill running container {container.id}, cannot remove")
            container.state.removal_in_progress = True
        self._cleanup(container, remove_volumes=volumes)

    def _cleanup(self, container: Container, *, remove_volumes: bool) -> None:
        """Remove a stopped container (dockerd's cleanupContainer). It is marked Dead on disk first, so
        a daemon that dies meanwhile finishes the job at its next start; its files (RW layer and
        directory) go in the background, after the container is gone from the API."""
        timing = trace.Steps("remove", container.id)
        self.lifecycle.cancel_restart(container)
        with container.lock:
            container.state.dead = True
            try:
                self.store.save_state(container)
            except OSError:
                pass
        timing.mark("dead")
        self.lifecycle.forget_execs(container)
        self.store.discard(container)
        self._release_volumes(container, remove_volumes)
        _quietly(self.networks.release_container, container.id)
        timing.mark("volumes+network")
        self.publish(container, "destroy")
        container.state.set_removed()
        timing.done()
        self.lifecycle.background(self._remove_files, container)

    def _remove_files(self, container: Container) -> None:
        timing = trace.Steps("remove-files", container.id)
        try:
            self.images.layers.remove_rw_layer(container.id)
        except NotFound:
            pass
        except Exception as exc:
            # the directory stays, marked Dead: the next daemon start tries again
            log.error("unable to remove filesystem for %s: %s", container.id, getattr(exc, "message", exc))
            return
        timing.mark("layer")
        self.store.delete_dir(container.id)
        timing.mark("dir")
        timing.done()

    def _release_volumes(self, container: Container, remove: bool) -> None:
        volumes = self.volumes
        for mp in container.mount_points.values():
            if mp.type != VOLUME:
                continue
            _quietly(volumes.release, mp.name, container.id)
            if remove and mp.anonymous:
                try:
                    volumes.remove(mp.name)
                except (Conflict, NotFound):
                    pass  # still used by another container (volumes-from), or already gone
                except Exception as exc:
                    log.warning("removing volume %s of %s: %s", mp.name, container.id, exc)

    def prune(self, filters: str | None) -> dict[str, Any]:
        parsed = Filters.parse(filters, PRUNE_FILTERS)
        until = None
        for value in parsed.get("until"):
            until = timestamp_ns(value)
        deleted: list[str] = []
        reclaimed = 0
        for container in sorted(self.store.all(), key=lambda c: c.created):
            state = container.state
            if state.running or state.removal_in_progress:
                continue
            if until is not None and container.created >= until:
                continue
            if not parsed.match_labels(container.labels):
                continue
            size_rw, _ = self.size(container)
            try:
                self.remove(container.id)
            except EngineError as exc:
                log.warning("prune: cannot remove %s: %s", container.id, exc.message)
                continue
            deleted.append(container.id)
            reclaimed += size_rw
        self.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- wait -------------------------------------------------------------------------------------------

    def wait(self, ref: str, condition: str = "") -> concurrent.futures.Future[WaitResult]:
        condition = condition or "not-running"
        if condition not in WAIT_CONDITIONS:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        container = self.get(ref)
        with container.lock:
            return container.state.wait(condition)

    # -- running containers (lifecycle.py) ------------------------------------------------------------

    async def start_container(self, ref: str, detach_keys: str = "") -> None:
        if detach_keys:
            from engine.containers.attach import parse_detach_keys

            parse_detach_keys(detach_keys)
        await self.lifecycle.start(ref)

    async def stop_container(self, ref: str, timeout: int | None = None) -> None:
        await self.lifecycle.stop(ref, timeout)

    async def restart_container(self, ref: str, timeout: int | None = None) -> None:
        await self.lifecycle.restart(ref, timeout)

    async def kill_container(self, ref: str, signal: str = "") -> None:
        await self.lifecycle.kill(ref, signal)

    def pause(self, ref: str) -> None:
        self.lifecycle.pause(ref)

    def unpause(self, ref: str) -> None:
        self.lifecycle.unpause(ref)

    async def resize(self, ref: str, height: int, width: int) -> None:
        from engine.containers import ops

        await asyncio.to_thread(ops.resize, self, ref, height, width)

    # -- attach ---------------------------------------------------------------------------------------

    def prepare_attach(self, container: Container, detach_keys: str) -> AttachPlan:
        """Checks and the output position, fixed *before* the 101 answer so that nothing the
        container writes after the client's next request (start) is missed."""
        from engine.containers import attach

        return attach.prepare(self, container, detach_keys)

    async def attach(self, container: Container, conn: Conn, plan: AttachPlan, **options: Any) -> None:
        """Wire ``conn`` (the API's hijacked socket or WebSocket) to the container's stdio."""
        from engine.containers import attach

        await attach.run(self, container, conn, plan, **options)

    # -- inspection and file operations -----------------------------------------------------------------

    def top(self, ref: str, ps_args: str = "") -> dict[str, Any]:
        from engine.containers import ops

        return ops.top(self, ref, ps_args)

    def stats(self, container: Container, *, stream: bool = True, one_shot: bool = False) -> Any:
        from engine.containers import stats

        return stats.samples(container, stream=stream, one_shot=one_shot)

    def changes(self, ref: str) -> list[dict[str, Any]]:
        from engine.containers import ops

        return ops.changes(self, ref)

    def export(self, container: Container, out: Any) -> None:
        from engine.containers import archive_ops

        archive_ops.export(self, container, out)
        self.publish(container, "export")

    def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        from engine.containers import ops

        return ops.update(self, ref, body)

    def commit(self, ref: str, **kwargs: Any) -> str:
        from engine.containers import ops

        return ops.commit(self, ref, **kwargs)

    def archive_stat(self, ref: str, path: str) -> dict[str, Any]:
        from engine.containers import archive_ops

        return archive_ops.stat(self, self.get(ref), path)

    def archive_open(self, ref: str, path: str) -> Any:
        from engine.containers import archive_ops

        container = self.get(ref)
        handle = archive_ops.ArchiveHandle(self, container, path)
        self.publish(container, "archive-path")
        return handle

    def archive_put(self, container: Container, path: str, stream: Any, **options: Any) -> None:
        from engine.containers import archive_ops

        archive_ops.extract(self, container, path, stream, **options)
        self.publish(container, "extract-to-dir")

    # -- /info and /system/df ----------------------------------------------------------------------------

    def info_fields(self) -> dict[str, Any]:
        containers = self.store.all()
        running = sum(1 for c in containers if c.state.running and not c.state.paused)
        paused = sum(1 for c in containers if c.state.paused)
        return {
            "Containers": len(containers),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(containers) - running - paused,
        }

    def disk_usage(self) -> dict[str, Any]:
        items = []
        for container in self.store.all():
            items.append(
                views.list_item(
                    container,
                    names=[container.name],
                    image=self._image_for_list(container),
                    size=self.size(container),
                )
            )
        return {"Containers": items}


def _networking_config(networking: dict[str, Any], host_config: dict[str, Any]) -> dict[str, Any]:
    """Newer CLIs key the endpoint of ``--network default`` by "default"; dockerd files it under the
    default network ("bridge"), an empty one is simply dropped."""
    endpoints = dict(networking.get("EndpointsConfig") or {})
    if (host_config.get("NetworkMode") or "default") == "default" and "default" in endpoints:
        config = endpoints.pop("default")
        if config and any(config.values()):  # the CLI sends a zero-valued one
            endpoints.setdefault("bridge", config)
    if not endpoints:
        return {k: v for k, v in networking.items() if k != "EndpointsConfig"}
    return {**networking, "EndpointsConfig": endpoints}


def _endpoint_request(ep: dict[str, Any] | None) -> dict[str, Any]:
    if not ep:
        return {}
    out = {}
    for key in ("IPAMConfig", "Links", "Aliases", "DriverOpts", "MacAddress"):
        if ep.get(key):
            out[key] = ep[key]
    return out


def _quietly(fn: Any, *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        log.debug("%s%r: %s", getattr(fn, "__name__", fn), args, exc)
