"""``docker exec``: exec instances (create, start attached or detached, resize, inspect).

An exec runs as its own shim-owned process in the running container (``Runtime.exec``); its
output is spooled like the container's, so attached clients read it the same way. Finished execs
stay inspectable (for their exit code) until the container is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.containers.attach import DEFAULT_DETACH_KEYS, Session, parse_detach_keys
from engine.errors import Conflict, InvalidParameter, NotFound
from engine.streams.stdcopy import STDOUT, frame

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.containers.service import ContainerService
    from engine.streams.conn import Conn

log = logging.getLogger(__name__)

MAX_FINISHED_PER_CONTAINER = 100  # finished execs kept for inspect per container (health probes churn)


@dataclass(eq=False)
class ExecInstance:
    id: str
    container_id: str
    entrypoint: str
    args: list[str]
    tty: bool
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    user: str
    privileged: bool
    working_dir: str
    env: list[str]
    detach_keys: str
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    task: Any = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    done: asyncio.Event | None = field(default=None, repr=False)
    pending_size: tuple[int, int] | None = field(default=None, repr=False)  # a resize before the launch

    @property
    def command(self) -> str:
        return " ".join([self.entrypoint, *self.args])

    def inspect(self) -> dict[str, Any]:
        process: dict[str, Any] = {
            "tty": self.tty,
            "entrypoint": self.entrypoint,
            "arguments": list(self.args),
            "privileged": self.privileged,
        }
        if self.user:
            process["user"] = self.user
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": process,
            "OpenStdin": self.open_stdin,
            "OpenStderr": self.open_stderr,
            "OpenStdout": self.open_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.detach_keys,
            "Pid": self.pid,
        }


class ExecManager:
    def __init__(self, service: ContainerService) -> None:
        self.service = service
        self._execs: dict[str, ExecInstance] = {}
        self._lock = threading.Lock()

    # -- lookups --------------------------------------------------------------------------------------

    def get(self, exec_id: str) -> ExecInstance:
        with self._lock:
            found = self._execs.get(exec_id)
        if found is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return found

    def inspect(self, exec_id: str) -> dict[str, Any]:
        return self.get(exec_id).inspect()

    def forget_container(self, container: Container) -> None:
        with self._lock:
            for exec_id in list(container.exec_ids):
                self._execs.pop(exec_id, None)
        container.exec_ids.clear()

    @staticmethod
    def _check_running(container: Container) -> None:
        state = container.state
        if not state.running:
            raise Conflict(f"Container {container.id} is not running")
        if state.paused:
            raise Conflict(f"Container {container.id} is paused, unpause the container before exec")
        if state.restarting:
            raise Conflict(f"Container {container.id} is restarting, wait until the container is running")

    # -- create ---------------------------------------------------------------------------------------

    def create(self, ref: str, body: dict[str, Any]) -> str:
        container = self.service.get(ref)
        cmd = body.get("Cmd") or []
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidParameter("No exec command specified")
        detach_keys = body.get("DetachKeys") or ""
        if detach_keys:
            parse_detach_keys(detach_keys)
        for env in body.get("Env") or []:
            if not isinstance(env, str) or env.split("=", 1)[0] == "":
                raise InvalidParameter(f"invalid environment variable: {env}")
        with container.lock:
            self._check_running(container)
            instance = ExecInstance(
                id=secrets.token_hex(32),
                container_id=container.id,
                entrypoint=cmd[0],
                args=list(cmd[1:]),
                tty=bool(body.get("Tty")),
                open_stdin=bool(body.get("AttachStdin")),
                open_stdout=bool(body.get("AttachStdout")),
                open_stderr=bool(body.get("AttachStderr")),
                user=body.get("User") or "",
                privileged=bool(body.get("Privileged")),
                working_dir=body.get("WorkingDir") or "",
                env=list(body.get("Env") or []),
                detach_keys=detach_keys,
            )
            with self._lock:
                self._execs[instance.id] = instance
            container.exec_ids.append(instance.id)
            self._trim(container)
        self.service.publish(container, f"exec_create: {instance.command}", execID=instance.id)
        return instance.id

    def _trim(self, container: Container) -> None:
        """Keep the newest finished execs only (health checks create one every interval)."""
        if len(container.exec_ids) <= MAX_FINISHED_PER_CONTAINER:
            return
        with self._lock:
            for exec_id in list(container.exec_ids):
                if len(container.exec_ids) <= MAX_FINISHED_PER_CONTAINER:
                    break
                inst = self._execs.get(exec_id)
                if inst is None or (inst.started and not inst.running):
                    self._execs.pop(exec_id, None)
                    container.exec_ids.remove(exec_id)

    # -- start ----------------------------------------------------------------------------------------

    def _launch(self, instance: ExecInstance, container: Container) -> Any:
        """Blocking: the OCI process and the shim for one exec."""
        from engine.runtime import spec as specmod

        with container.lock:
            self._check_running(container)
            task = container.task
            rootfs = container.rootfs
            config = container.config
        env = list(instance.env)
        if instance.tty and not any(e.startswith("TERM=") for e in env):
            env.append("TERM=xterm")
        base_spec = json.loads((Path(task.state_dir) / "config.json").read_text())
        process = specmod.exec_process(
            base_spec,
            [instance.entrypoint, *instance.args],
            env=env,
            user=instance.user or config.get("User") or "",
            workdir=instance.working_dir or config.get("WorkingDir") or "",
            tty=instance.tty,
            privileged=instance.privileged,
            rootfs=Path(rootfs) if rootfs else None,
        )
        return self.service.runtime.exec(container.id, instance.id, process, open_stdin=instance.open_stdin)

    def begin(self, exec_id: str) -> tuple[ExecInstance, Container]:
        """Checks before the (possibly hijacked) start: 404/409 as dockerd."""
        instance = self.get(exec_id)
        container = self.service.get(instance.container_id)
        with instance.lock:
            if instance.running:
                raise Conflict(f"Error: Exec command {exec_id} is already running")
            if instance.started:
                raise Conflict(f"Error: Exec command {exec_id} has already run")
            with container.lock:
                self._check_running(container)
            instance.started = True
            instance.done = asyncio.Event()
        return instance, container

    async def start(
        self, instance: ExecInstance, container: Container, conn: Conn | None, console_size: Any = None
    ) -> None:
        """Run the exec; with ``conn`` wire the client to it until the process ends or detaches."""
        self.service.publish(container, f"exec_start: {instance.command}", execID=instance.id)
        try:
            task = await asyncio.to_thread(self._launch, instance, container)
        except Exception as exc:
            instance.exit_code = 126  # dockerd's exit code for an exec that could not start
            if instance.done is not None:
                instance.done.set()
            if conn is not None:
                # after the upgrade the error can only go into the stream (on stdout, framed without a TTY)
                message = getattr(exc, "message", str(exc)).encode() + b"\r\n"
                with contextlib.suppress(Exception):
                    conn.write(message if instance.tty else frame(STDOUT, message))
                conn.close()
                return
            raise
        instance.task = task
        instance.pid = task.pid
        instance.running = True
        size = instance.pending_size or (tuple(console_size) if console_size else None)
        if size and instance.tty:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(task.resize, int(size[0]), int(size[1]))
        waiter = asyncio.ensure_future(self._wait(instance, container, task))
        if conn is None:
            return
        session = Session(
            conn,
            tty=instance.tty,
            stdin=instance.open_stdin,
            stdout=instance.open_stdout,
            stderr=instance.open_stderr,
            stdin_once=True,
            detach_keys=parse_detach_keys(instance.detach_keys or DEFAULT_DETACH_KEYS),
        )
        try:
            result = await session.run(task, task.output("start", follow=True))
            if result == "exited":
                # until the exit code is known and exec_die published (the CLI inspects the exec next);
                # removing the exec's state directory goes on after the stream closes
                await asyncio.shield(instance.done.wait() if instance.done is not None else waiter)
        finally:
            conn.close()

    async def _wait(self, instance: ExecInstance, container: Container, task: Any) -> None:
        try:
            status = await task.wait()
            instance.exit_code = status.exit_code
        except Exception:
            log.exception("waiting for exec %s failed", instance.id[:12])
            instance.exit_code = 126 if instance.exit_code is None else instance.exit_code
        finally:
            instance.running = False
            instance.pid = 0
            if instance.done is not None:
                instance.done.set()
        self.service.publish(container, "exec_die", execID=instance.id, exitCode=str(instance.exit_code))
        await asyncio.to_thread(_delete_quietly, task)

    async def run_probe(self, container: Container, cmd: list[str], timeout: float) -> tuple[int, bytes]:
        """A health-check probe: run ``cmd`` as an exec, collect up to 4 KiB of output; -1 on timeout."""
        exec_id = self.create(container.id, {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True})
        instance, container = self.begin(exec_id)
        self.service.publish(container, f"exec_start: {instance.command}", execID=instance.id)
        task = await asyncio.to_thread(self._launch, instance, container)
        instance.task, instance.pid, instance.running = task, task.pid, True
        output = bytearray()

        async def collect() -> int:
            async for chunk in task.output("start", follow=True):
                if len(output) < 4096:
                    output.extend(chunk.data[: 4096 - len(output)])
            status = await task.wait()
            return status.exit_code

        try:
            code = await asyncio.wait_for(collect(), timeout)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(task.kill)
            code = -1
        instance.exit_code = code
        instance.running = False
        self.service.publish(container, "exec_die", execID=instance.id, exitCode=str(code))
        await asyncio.to_thread(_delete_quietly, task)
        self._forget(container, instance.id)  # dockerd unregisters probe execs at once
        return code, bytes(output)

    def _forget(self, container: Container, exec_id: str) -> None:
        with self._lock:
            self._execs.pop(exec_id, None)
        with container.lock:
            if exec_id in container.exec_ids:
                container.exec_ids.remove(exec_id)

    def resize(self, exec_id: str, height: int, width: int) -> None:
        instance = self.get(exec_id)
        task = instance.task
        if task is None and instance.started and instance.exit_code is None:
            instance.pending_size = (height, width)  # the CLI resizes right after the upgrade
            return
        if task is None or not instance.running:
            raise Conflict(f"Exec {exec_id} is not running")
        task.resize(height, width)


def _delete_quietly(task: Any) -> None:
    try:
        task.delete()
    except Exception as exc:
        log.debug("deleting exec %s: %s", getattr(task, "exec_id", "?"), exc)
