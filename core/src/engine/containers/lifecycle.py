"""Running containers: start, the exit path (restart policies, auto-remove), stop, kill, restart,
pause, daemon restore and shutdown.

Blocking steps (mounts, the network, the runtime) run in worker threads under the container's lock;
each running container has one supervisor coroutine on the daemon's loop that runs its log copier,
health checks, and waits for the exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal as signal_mod
import threading
from typing import TYPE_CHECKING, Any

from engine.containers import logcopy, netadapter, signals, trace
from engine.containers.restart import RestartManager
from engine.containers.state import NOT_RUNNING
from engine.errors import Conflict, EngineError, NotFound, NotModified, SystemError, os_error_message
from engine.hooks import ContainerContext

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.containers.service import ContainerService
    from engine.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 10.0  # seconds to wait for an exit after SIGKILL before giving up
DRAIN_TIMEOUT = 5.0  # seconds to let the log copier and attached clients read the last output


class Lifecycle:
    def __init__(self, service: ContainerService) -> None:
        self.service = service
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutting_down = False
        self._supervisors: dict[str, asyncio.Future[Any]] = {}
        self._background: set[concurrent.futures.Future[Any]] = set()
        self._managers: dict[str, RestartManager] = {}
        self._managers_lock = threading.Lock()
        self._start_waiters: dict[str, list[asyncio.Future[Any]]] = {}

    # -- helpers --------------------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        return self.service.runtime

    def publish(self, container: Container, action: str, **extra: str) -> None:
        self.service.publish(container, action, **extra)

    def _on_loop(self, coro: Any) -> concurrent.futures.Future[Any]:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def restart_manager(self, container: Container, reset: bool = False) -> RestartManager:
        with self._managers_lock:
            rm = self._managers.get(container.id)
            if rm is None or reset:
                if rm is not None:
                    rm.cancel()
                rm = RestartManager(container.restart_policy, container.restart_count)
                self._managers[container.id] = rm
            return rm

    def cancel_restart(self, container: Container) -> None:
        with self._managers_lock:
            rm = self._managers.pop(container.id, None)
        if rm is not None:
            rm.cancel()
        timer = container.restart_timer
        if timer is not None:
            container.restart_timer = None
            if self.loop is not None and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(timer.cancel)  # timer handles belong to the loop
            else:
                timer.cancel()

    # -- start ----------------------------------------------------------------------------------------

    async def start(self, ref: str) -> None:
        container = await asyncio.to_thread(self.service.get, ref)
        await asyncio.to_thread(self.start_container, container)

    def start_container(self, container: Container, reset: bool = True) -> None:
        """Blocking: start ``container`` (``reset``: an API start, which resets the restart policy's
        count and the manually-stopped mark; restart-policy starts keep them)."""
        with container.lock:
            state = container.state
            if state.paused:
                raise Conflict("cannot start a paused container, try unpause instead")
            if state.running and (reset or not state.restarting):  # restarting counts as running
                raise NotModified("container already started")
            if state.removal_in_progress or state.dead:
                raise Conflict("container is marked for removal and cannot be started")
            if self.shutting_down:
                raise Conflict("daemon is shutting down")
            if reset:
                self.cancel_restart(container)
                container.restart_count = 0
                container.has_been_manually_stopped = False
                self.restart_manager(container, reset=True)
            container.stopping = False
            try:
                task, log_driver = self._launch(container)
            except BaseException as exc:
                self._start_failed(container, exc)
                raise
            started_before = container.has_been_started_before
            container.task = task
            state.set_running(task.pid)
            container.has_been_started_before = True
            try:
                self.service.store.save_state(container)
            except OSError as exc:
                container.has_been_started_before = started_before
                self._undo_unrecorded_start(container, exc)
        self.publish(container, "start")
        self._supervise(container, task, log_driver=log_driver)

    def _launch(self, container: Container) -> tuple[Any, Any]:
        """Mount, network, spec, log driver, shim: returns the running task and its log driver
        (undoes its own steps on error)."""
        from engine.containers.runspec import spec_inputs

        layers = self.service.images.layers
        undo: list[Any] = []
        timing = trace.Steps("start", container.id)
        try:
            container.rootfs = str(layers.mount_rw(container.id))
            undo.append(lambda: self._unmount(container))
            undo.append(lambda: self._unmount_volumes(container))
            timing.mark("mount")
            net = netadapter.setup(self.service, container)
            undo.append(lambda: netadapter.teardown(self.service, container))
            container.network_settings = net.network_settings
            netadapter.write_files(container, net, self.service.id_map.root())
            timing.mark("network")
            inputs = spec_inputs(self.service, container, net)
            spec = self.runtime.build_spec(
                ContainerContext(
                    container.id, container.name, container.image_id, container.config, container.host_config
                ),
                container.config,
                container.host_config,
                inputs,
            )
            timing.mark("spec")
            # dockerd starts the logger as the task's stdio is set up: a driver that cannot reach
            # its target (syslog over tcp to a closed port) fails the start, before the process runs
            log_driver = logcopy.open_driver(self.service.logging, container)
            undo.append(lambda: logcopy.close_unused(log_driver))
            timing.mark("logger")
            task = self.runtime.start_task(
                container.id,
                spec,
                runtime=container.host_config.get("Runtime") or None,
                open_stdin=bool(container.config.get("OpenStdin")),
            )
        except BaseException:
            for step in reversed(undo):
                try:
                    step()
                except Exception:
                    log.exception("undoing a failed start of %s", container.short_id)
            raise
        timing.mark("runtime")
        timing.done()
        self._volume_events(container, "mount")
        return task, log_driver

    def _undo_unrecorded_start(self, container: Container, exc: OSError) -> None:
        """The container runs but its state could not be written (a full data-root): stop it again,
        so that disk (not running) and reality agree, and say so. Raises SystemError."""
        message = (
            f"cannot start container {container.id}: failed to record its state: {os_error_message(exc)}; "
            "the container was stopped again"
        )
        try:
            self.runtime.delete(container.id)  # kills what runs, runc delete, cgroups, exec-root dir
        except Exception:
            log.exception("stopping the unrecorded start of %s failed", container.short_id)
        container.task = None
        try:  # the disk is full: removing records may fail too; the process is gone already
            settings = netadapter.teardown(self.service, container)
            if settings is not None:
                container.network_settings = settings
        except Exception as teardown_exc:
            log.error("tearing down the network of %s failed: %s", container.short_id, teardown_exc)
        self._unmount_volumes(container)
        self._unmount(container)
        container.state.set_stopped(128)
        container.state.error = message
        with contextlib.suppress(OSError):  # space may be back already
            self.service.store.save_state(container)
        log.error("%s", message)
        raise SystemError(message)

    def _start_failed(self, container: Container, exc: BaseException) -> None:
        """dockerd's containerStart error path: record the error and exit code; auto-remove."""
        state = container.state
        state.error = os_error_message(exc) if isinstance(exc, OSError) else getattr(exc, "message", None) or str(exc)
        code = getattr(exc, "exit_code", None)
        state.exit_code = code if isinstance(code, int) else (state.exit_code or 128)
        if isinstance(exc, (NotModified,)):
            return
        with contextlib.suppress(OSError):
            self.service.store.save_state(container)
        if container.host_config.get("AutoRemove"):
            self.background(self._auto_remove, container)

    def _supervise(self, container: Container, task: Any, resumed: bool = False, log_driver: Any = None) -> None:
        """Start the per-run supervisor on the loop (log copier, health checks, exit)."""
        fut = self._on_loop(self._run_supervisor(container, task, resumed, log_driver))
        self._background.add(fut)
        fut.add_done_callback(self._background.discard)

    async def _run_supervisor(
        self, container: Container, task: Any, resumed: bool = False, log_driver: Any = None
    ) -> None:
        from engine.containers import health

        current = asyncio.current_task()
        assert current is not None
        self._supervisors[container.id] = current
        timing = trace.Steps("supervise", container.id)
        # attach sessions waiting for this start open their spool readers in done-callbacks: wake
        # them before the log copier's first read, so its acks cannot delete output they need
        for waiter in self._start_waiters.pop(container.id, []):
            if not waiter.done():
                waiter.set_result(task)
        try:
            await logcopy.start(self.service.logging, container, task, resume=resumed, driver=log_driver)
        except Exception:
            log.exception("starting the logging of %s failed", container.short_id)
        timing.mark("logging")
        monitor = health.start_monitor(self.service, container)
        container.health_monitor = monitor
        timing.mark("health")
        try:
            status = await task.wait()
            timing.mark("wait")
        except asyncio.CancelledError:  # daemon shutdown with live-restore: the container keeps running
            await logcopy.stop(container)
            if monitor is not None:
                monitor.cancel()
            raise
        if monitor is not None:
            monitor.cancel()
        await logcopy.finish(container, DRAIN_TIMEOUT)
        timing.mark("logger")
        await self._drain_readers(container)
        timing.mark("readers")
        timing.done()
        self._supervisors.pop(container.id, None)
        await asyncio.to_thread(self.handle_exit, container, task, status)

    async def _drain_readers(self, container: Container) -> None:
        readers = [r for r in container.readers if not r.done()]
        if readers:
            await asyncio.wait(readers, timeout=DRAIN_TIMEOUT)

    def wait_started(self, container: Container) -> asyncio.Future[Any]:
        """On the loop: a future resolved with the task of the container's next start (attach before
        start), or with None when the container is removed first."""
        assert self.loop is not None
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._start_waiters.setdefault(container.id, []).append(fut)
        return fut

    def _wake_start_waiters(self, container: Container) -> None:
        def wake() -> None:
            for waiter in self._start_waiters.pop(container.id, []):
                if not waiter.done():
                    waiter.set_result(None)

        if self.loop is not None:
            self.loop.call_soon_threadsafe(wake)

    # -- exit -----------------------------------------------------------------------------------------

    def handle_exit(self, container: Container, task: Any, status: Any) -> None:
        """Blocking: the task ended. Clean up, then stop, restart (policy) or auto-remove."""
        with container.lock:
            if container.task is not task:
                return
            container.task = None
            state = container.state
            ran_for = max(0.0, (status.finished_at_ns - state.started_at) / 1e9) if status.finished_at_ns else 0.0
            manually = container.has_been_manually_stopped or container.stopping
            delay = None
            if not self.shutting_down and not container.stopping:  # stop/kill cancel the policy (ExitOnNext)
                delay = self.restart_manager(container).should_restart(status.exit_code, manually, ran_for)
            self._release_run_resources(container)
            if status.oom_killed:
                self.publish(container, "oom")
            if delay is not None:
                container.restart_count += 1
                state.set_restarting(status.exit_code, oom_killed=status.oom_killed, notify=False)
            else:
                state.set_stopped(
                    status.exit_code,
                    oom_killed=status.oom_killed,
                    # never before StartedAt (which is taken once the runtime reported the start)
                    finished_at=max(status.finished_at_ns, state.started_at) if status.finished_at_ns else None,
                    notify=False,
                )
                if status.error:
                    state.error = status.error
            with contextlib.suppress(OSError):
                self.service.store.save_state(container)
            container.stopping = False
        self.publish(container, "die", exitCode=str(status.exit_code))
        state.notify_stop()
        if delay is not None:
            self._schedule_restart(container, delay)
        elif container.host_config.get("AutoRemove") and not self.shutting_down:
            self._auto_remove(container)

    def _release_run_resources(self, container: Container) -> None:
        """What a run holds: network, volume mounts, the rootfs mount, the runtime state (the logger
        was closed by the supervisor when the output ended)."""
        timing = trace.Steps("exit", container.id)
        settings = netadapter.teardown(self.service, container)
        if settings is not None:
            container.network_settings = settings
        timing.mark("network")
        self._unmount_volumes(container)
        self._volume_events(container, "unmount")
        self._unmount(container)
        timing.mark("unmount")
        timing.done()
        self.background(self._delete_task, container)

    def _delete_task(self, container: Container) -> None:
        """The runtime's state of a finished run (runc delete, cgroups, spool), off the exit path. Under
        the container's lock, and only while no new run started: a start replaces the old state itself."""
        with container.lock:
            if container.task is not None:
                return
            try:
                self.runtime.delete(container.id)
            except Exception:
                log.exception("deleting the runtime state of %s failed", container.short_id)

    def _unmount(self, container: Container) -> None:
        if not container.rootfs:
            return
        try:
            self.service.images.layers.unmount_rw(container.id)
        except NotFound:
            pass
        except Exception:
            log.exception("unmounting the rootfs of %s failed", container.short_id)
        container.rootfs = ""

    def _unmount_volumes(self, container: Container) -> None:
        """The run no longer needs its volumes (C mounts option volumes at first use)."""
        volumes = self.service.volumes
        for mp in container.mount_points.values():
            if mp.type == "volume":
                try:
                    volumes.unmount(mp.name, container.id)
                except Exception:
                    log.exception("unmounting volume %s of %s failed", mp.name, container.short_id)

    def _volume_events(self, container: Container, action: str) -> None:
        for mp in container.mount_points.values():
            if mp.type != "volume":
                continue
            attrs = {"driver": mp.driver or "local", "container": container.id}
            if action == "mount":
                attrs.update(
                    {"destination": mp.destination, "read/write": str(mp.rw).lower(), "propagation": mp.propagation}
                )
            self.service.events.publish("volume", action, mp.name, attrs)

    def background(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` in a worker thread, not waited for (tracked for shutdown)."""
        if self.loop is None or self.loop.is_closed():
            fn(*args)
            return
        fut = self._on_loop(asyncio.to_thread(fn, *args))
        self._background.add(fut)
        fut.add_done_callback(self._background.discard)

    def _schedule_restart(self, container: Container, delay: float) -> None:
        def fire() -> None:
            container.restart_timer = None
            self.background(self._restart_by_policy, container)

        def arm() -> None:
            container.restart_timer = self.loop.call_later(delay, fire)  # type: ignore[union-attr]

        assert self.loop is not None
        self.loop.call_soon_threadsafe(arm)

    def _restart_by_policy(self, container: Container) -> None:
        with container.lock:
            if not container.state.restarting or self.shutting_down:
                return
        try:
            self.start_container(container, reset=False)
        except Exception as exc:
            log.warning("restarting container %s failed: %s", container.short_id, getattr(exc, "message", exc))
            with container.lock:
                if container.state.restarting:
                    container.state.set_stopped(container.state.exit_code)
                    with contextlib.suppress(OSError):
                        self.service.store.save_state(container)
            if container.host_config.get("AutoRemove"):
                self._auto_remove(container)

    def _auto_remove(self, container: Container) -> None:
        try:
            self.service.remove(container.id, force=True, volumes=True)
        except NotFound:
            pass
        except EngineError as exc:
            log.error("auto-removing container %s failed: %s", container.short_id, exc.message)

    # -- stop, kill, restart --------------------------------------------------------------------------

    def stop_signal(self, container: Container) -> int:
        raw = container.config.get("StopSignal") or "SIGTERM"
        try:
            return signals.parse(str(raw))
        except EngineError:
            return signal_mod.SIGTERM

    def stop_timeout(self, container: Container, timeout: int | None) -> int | None:
        """Seconds to wait before SIGKILL; None waits forever (``-t -1``)."""
        if timeout is None:
            configured = container.config.get("StopTimeout")
            timeout = int(configured) if configured is not None else DEFAULT_STOP_TIMEOUT
        return None if timeout < 0 else timeout

    def send_signal(self, container: Container, sig: int) -> bool:
        """Blocking: dockerd's killWithSignal. Returns False when there was nothing to signal."""
        with container.lock:
            state = container.state
            if not state.running:
                raise Conflict(f"Container {container.id} is not running")
            stop_sig = self.stop_signal(container)
            custom = bool(container.config.get("StopSignal"))
            if sig == signal_mod.SIGKILL or not custom or sig == stop_sig:
                container.stopping = True  # "exit on next": no restart by policy
                self.cancel_restart(container)
            if not self.shutting_down:
                container.has_been_manually_stopped = True
                with contextlib.suppress(OSError):
                    self.service.store.save_state(container)
            if state.restarting:
                # nothing runs: with the stop signal, cancelling the pending restart is the stop
                if container.stopping:
                    state.set_stopped(state.exit_code)
                    with contextlib.suppress(OSError):
                        self.service.store.save_state(container)
                return False
            task = container.task
            if task is None:
                return False
            delivered = task.kill(sig)
            if state.paused and container.stopping:
                with contextlib.suppress(Exception):
                    task.resume()
                state.paused = False
        self.publish(container, "kill", signal=str(sig))
        return delivered

    async def _stop(self, container: Container, timeout: int | None) -> None:
        wait_for = self.stop_timeout(container, timeout)
        future = await asyncio.to_thread(self._wait_future, container)
        waiting = asyncio.wrap_future(future)
        try:
            await asyncio.to_thread(self.send_signal, container, self.stop_signal(container))
        except Conflict:
            return
        try:
            await asyncio.wait_for(asyncio.shield(waiting), wait_for)
            return
        except TimeoutError:
            log.info(
                "container %s did not stop within %ss after its stop signal; killing it",
                container.short_id,
                wait_for,
            )
        with contextlib.suppress(Conflict):
            await asyncio.to_thread(self.send_signal, container, signal_mod.SIGKILL)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), KILL_WAIT)
        except TimeoutError:
            raise EngineError(
                f"cannot stop container: {container.id}: tried to kill container, but did not receive an exit event"
            ) from None

    @staticmethod
    def _wait_future(container: Container) -> concurrent.futures.Future[Any]:
        with container.lock:
            return container.state.wait(NOT_RUNNING)

    async def stop(self, ref: str, timeout: int | None) -> None:
        container = await asyncio.to_thread(self.service.get, ref)
        if not container.state.running:
            raise NotModified("container already stopped")
        await self._stop(container, timeout)
        self.publish(container, "stop")

    async def kill(self, ref: str, signal_name: str) -> None:
        container = await asyncio.to_thread(self.service.get, ref)
        sig = signals.parse(signal_name) if signal_name else signal_mod.SIGKILL
        if sig == signal_mod.SIGKILL:
            if not await self._kill_and_wait(container, quiet=False):
                log.warning("container %s did not exit after SIGKILL", container.short_id)
            return
        await asyncio.to_thread(self.send_signal, container, sig)

    async def kill_for_removal(self, container: Container) -> None:
        """``rm -f`` of a running container: SIGKILL and wait for the exit to be processed, on the loop
        (a thread blocked per removal starved the exit handling when many were removed at once)."""
        if not await self._kill_and_wait(container, quiet=True):
            raise EngineError(f"Could not kill running container {container.id}, cannot remove")

    async def _kill_and_wait(self, container: Container, *, quiet: bool) -> bool:
        """SIGKILL, then True once the exit was processed; ``quiet``: not running is no error."""
        future = await asyncio.to_thread(self._wait_future, container)
        try:
            await asyncio.to_thread(self.send_signal, container, signal_mod.SIGKILL)
        except Conflict:
            if quiet:
                return True
            raise
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), KILL_WAIT)
        except TimeoutError:
            return False
        return True

    def kill_and_wait(self, container: Container) -> None:
        """Blocking: SIGKILL and wait for the exit to be processed (never from the API's threads
        while the loop needs them: see :meth:`kill_for_removal`)."""
        future = self._wait_future(container)
        try:
            self.send_signal(container, signal_mod.SIGKILL)
        except Conflict:
            return
        try:
            future.result(KILL_WAIT)
        except concurrent.futures.TimeoutError:
            raise EngineError(f"Could not kill running container {container.id}, cannot remove") from None

    async def restart(self, ref: str, timeout: int | None) -> None:
        container = await asyncio.to_thread(self.service.get, ref)
        if container.state.running:
            auto_remove = container.host_config.get("AutoRemove", False)
            container.host_config["AutoRemove"] = False  # not removed between the stop and the start
            try:
                await self._stop(container, timeout)
            finally:
                container.host_config["AutoRemove"] = auto_remove
            self.publish(container, "stop")
        await asyncio.to_thread(self.start_container, container)
        self.publish(container, "restart")

    # -- pause ----------------------------------------------------------------------------------------

    def pause(self, ref: str) -> None:
        container = self.service.get(ref)
        with container.lock:
            state = container.state
            if not state.running:
                raise Conflict(f"Container {container.id} is not running")
            if state.paused:
                raise Conflict(f"Container {container.id} is already paused")
            if state.restarting:
                raise Conflict(f"Container {container.id} is restarting, wait until the container is running")
            container.task.pause()
            state.paused = True
            self.service.store.save_state(container)
        self.publish(container, "pause")

    def unpause(self, ref: str) -> None:
        container = self.service.get(ref)
        with container.lock:
            state = container.state
            if not state.paused:
                raise Conflict(f"Container {container.id} is not paused")
            container.task.resume()
            state.paused = False
            self.service.store.save_state(container)
        self.publish(container, "unpause")

    # -- daemon start and shutdown --------------------------------------------------------------------

    async def restore(self, containers: list[Container]) -> None:
        """At daemon start: reattach running containers (live-restore), settle the others, then
        remove the half-removed and start what the restart policies say."""
        self.loop = asyncio.get_running_loop()
        live_restore = bool(self.service.config["live-restore"])
        to_remove: list[Container] = []
        to_start: list[Container] = []
        try:
            known = set(await asyncio.to_thread(self.runtime.known_containers))
        except Exception:
            known = set()
        ids = {c.id for c in containers}
        for cid in known - ids:  # the runtime state of a container that is gone
            log.info("removing the runtime state of unknown container %s", cid[:12])
            await asyncio.to_thread(self._delete_orphan_state, cid)
        try:
            leftovers = set(await asyncio.to_thread(self.runtime.state_dirs)) - ids - known
        except Exception:
            leftovers = set()
        for cid in sorted(leftovers):  # half-made or half-removed exec-root directories of removed containers
            log.info("removing the exec-root directory of removed container %s", cid[:12])
            await asyncio.to_thread(self._delete_orphan_state, cid)
        for container in containers:
            state = container.state
            was_running = state.running or state.paused or state.restarting
            if not was_running:
                # killed between the runtime start and the "running" checkpoint, or mid-teardown
                await self._settle_not_running(container, container.id in known)
            if state.removal_in_progress or state.dead:
                to_remove.append(container)
                continue
            if was_running:
                await self._restore_one(container, live_restore)
            if container.task is None and not container.state.running:
                if container.host_config.get("AutoRemove"):
                    to_remove.append(container)
                    continue
                rm = self.restart_manager(container)
                ran_for = max(0.0, (state.finished_at - state.started_at) / 1e9)
                if (
                    state.started_at
                    and rm.should_restart(state.exit_code, container.has_been_manually_stopped, ran_for) is not None
                ):
                    to_start.append(container)
        for container in to_remove:
            container.state.removal_in_progress = False
            container.state.dead = False
            try:
                await asyncio.to_thread(
                    self.service.remove, container.id, force=True, volumes=bool(container.host_config.get("AutoRemove"))
                )
            except EngineError as exc:
                log.error("removing container %s at start-up failed: %s", container.short_id, exc.message)
        for container in to_start:
            self.background(self._start_at_boot, container)

    def _delete_orphan_state(self, container_id: str) -> None:
        try:
            self.runtime.delete(container_id)
        except Exception:
            log.exception("deleting the runtime state of %s failed", container_id[:12])

    async def _settle_not_running(self, container: Container, has_runtime_state: bool) -> None:
        """A container recorded as not running keeps no process, sandbox or runtime state."""
        if has_runtime_state:
            log.info("stopping container %s, which runs without having been recorded as started", container.short_id)
            await self._drain_spool(container)
            await asyncio.to_thread(self._delete_orphan_state, container.id)
        if self.service.networks.sandbox_of(container.id):
            await asyncio.to_thread(netadapter.teardown, self.service, container)

    def _start_at_boot(self, container: Container) -> None:
        try:
            self.start_container(container, reset=False)
        except EngineError as exc:
            log.error("failed to start container %s: %s", container.short_id, exc.message)

    async def _restore_one(self, container: Container, live_restore: bool) -> None:
        from engine.runtime.task import ExitStatus, Task

        try:
            found = await asyncio.to_thread(self.runtime.restore, container.id)
        except Exception:
            log.exception("restoring the task of %s failed", container.short_id)
            found = None
        if isinstance(found, Task):
            if live_restore:
                await asyncio.to_thread(self._reattach, container, found)
                return
            # no live-restore: dockerd stops what it finds running (and the policies restart it)
            log.info("stopping container %s left running (live-restore is off)", container.short_id)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(found.kill, signal_mod.SIGKILL)
            status = await asyncio.to_thread(found.wait_sync, KILL_WAIT) or ExitStatus(exit_code=137)
        elif isinstance(found, ExitStatus):
            status = found
        else:
            status = ExitStatus.lost("container state lost: the runtime does not know this container")
        await self._drain_spool(container)
        await asyncio.to_thread(self.handle_exit_at_boot, container, status)

    async def _drain_spool(self, container: Container) -> None:
        """Output written while the daemon was down (after the last ack) goes to the log first."""
        try:
            spool = await asyncio.to_thread(self.runtime.spool, container.id)
        except Exception:
            spool = None
        if spool is None:
            return
        try:
            from engine.logs import start_logging

            logger = start_logging(self.service.logging, container, spool.reader("acked", follow=False), ack=spool.ack)
            await logger.close(DRAIN_TIMEOUT)
        except Exception:
            log.exception("saving the last output of %s failed", container.short_id)

    def handle_exit_at_boot(self, container: Container, status: Any) -> None:
        """An exit that happened while the daemon was down: record it (and its die event) without
        restarting now; the start-up restart pass applies the policies."""
        with container.lock:
            container.task = None
            self._release_run_resources(container)
            container.state.set_stopped(
                status.exit_code,
                oom_killed=status.oom_killed,
                finished_at=max(status.finished_at_ns, container.state.started_at) if status.finished_at_ns else None,
            )
            if status.error:
                container.state.error = status.error
            with contextlib.suppress(OSError):
                self.service.store.save_state(container)
        self.publish(container, "die", exitCode=str(status.exit_code))

    def _reattach(self, container: Container, task: Any) -> None:
        """live-restore: the container ran on while the daemon was away; take it back."""
        with container.lock:
            container.task = task
            container.state.pid = task.pid or container.state.pid
            try:
                container.rootfs = str(self.service.images.layers.mount_rw(container.id))
            except Exception:
                log.exception("re-mounting the rootfs of %s failed", container.short_id)
            self.restart_manager(container)
        log.info("container %s restored (pid %s)", container.short_id, task.pid)
        self._supervise(container, task, resumed=True)

    async def shutdown(self) -> None:
        """Daemon stop: with live-restore, leave containers running; else stop them as dockerd does
        (stop signal, then SIGKILL after their stop timeout, at most ``shutdown-timeout``)."""
        self.shutting_down = True
        for container in self.service.store.all():
            timer = container.restart_timer
            if timer is not None:
                timer.cancel()
        if not self.service.config["live-restore"]:
            running = [c for c in self.service.store.all() if c.state.running and c.task is not None]
            limit = self.service.config.get("shutdown-timeout")
            await asyncio.gather(*(self._shutdown_one(c, limit) for c in running), return_exceptions=True)
        for sup in list(self._supervisors.values()):
            sup.cancel()
        if self._supervisors:
            await asyncio.gather(*self._supervisors.values(), return_exceptions=True)
        pending = [asyncio.wrap_future(f) for f in list(self._background)]
        if pending:
            await asyncio.wait(pending, timeout=30)

    async def _shutdown_one(self, container: Container, limit: Any) -> None:
        timeout = self.stop_timeout(container, None)
        if isinstance(limit, int) and limit >= 0:
            timeout = limit if timeout is None else min(timeout, limit)
        try:
            if container.state.paused and container.task is not None:
                await asyncio.to_thread(container.task.resume)
                container.state.paused = False
            await self._stop(container, timeout)
        except Exception:
            log.exception("stopping container %s at shutdown failed", container.short_id)

    # -- exec bookkeeping hook (rm) -------------------------------------------------------------------

    def forget_execs(self, container: Container) -> None:
        self.service.execs.forget_container(container)
        self._wake_start_waiters(container)
