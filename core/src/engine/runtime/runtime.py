"""The Runtime: from an OCI spec to a running, shim-owned process, and back after a daemon restart."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.drivers.locks import KeyedLocks
from engine.errors import Conflict, InvalidParameter, NotFound, SystemError, os_error_message
from engine.runtime import cgroups, control, shimbin
from engine.runtime.oci import OCIRuntime, log_error, resolve_runtime
from engine.runtime.spool import Spool
from engine.runtime.task import (
    EXIT_FILE,
    META_FILE,
    PID_FILE,
    RUNC_LOG,
    SHIM_LOG,
    SHIM_PID_FILE,
    SOCKET,
    ExecTask,
    ExitStatus,
    StartFailed,
    Task,
    delete_container,
    read_meta,
    read_pid,
    shim_running,
)

if TYPE_CHECKING:
    from engine.hooks import ContainerContext, Hooks

log = logging.getLogger(__name__)

DEFAULT_CGROUP_PARENT = "/engine"
SEGMENT_BYTES = 1 << 20
START_TIMEOUT = 120.0


class Runtime:
    """Runs containers through one shim each. Thread-safe; every method except the async ones on
    tasks blocks (call it with ``asyncio.to_thread``)."""

    def __init__(
        self,
        exec_root: Path,
        config: Any = None,
        hooks: Hooks | None = None,
        *,
        shim: Path | None = None,
        use_run: bool = True,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.exec_root = Path(exec_root)
        # daemon.json is reloadable (runtimes, default-runtime): read it through a callable
        self._config: Callable[[], Any] = config if callable(config) else (lambda: config)
        self.hooks = hooks
        self._shim = shim
        self.use_run = use_run
        self.segment_bytes = segment_bytes
        self._locks = KeyedLocks()  # one per container
        self._info: dict[str, Any] | None = None
        self._info_lock = threading.Lock()

    @property
    def config(self) -> Any:
        return self._config()

    # -- subsystem lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the exec-root and make sure the shim binary exists (builds it if needed)."""
        (self.exec_root / "containers").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.shim_path()
        # runc/docker-init --version run once, in the background: not during a request, and not on
        # the way to the daemon's first answer either (two process spawns, ~50 ms on a loaded machine)
        threading.Thread(target=self.info_fields, name="runtime-info", daemon=True).start()

    def stop(self) -> None:
        """Containers outlive the daemon (their shims are not our children); only drop an empty
        cgroup parent."""
        cgroups.remove_parent(self.cgroup_parent())

    def info_fields(self) -> dict[str, Any]:
        """GET /info: the commits of runc and of the init binary (engine.api.info has the rest)."""
        with self._info_lock:  # a request that comes first waits for the start-up thread
            if self._info is None:
                self._info = {
                    "RuncCommit": _commit(["runc", "--version"]),
                    "InitCommit": _commit(["docker-init", "--version"]),
                }
            return dict(self._info)

    # -- configuration ----------------------------------------------------------------------------

    def shim_path(self) -> Path:
        if self._shim is None:
            self._shim = shimbin.find_shim(self.exec_root / "bin")
        return self._shim

    def resolve(self, name: str | None = None) -> OCIRuntime:
        """The runtime for ``HostConfig.Runtime`` (None: the default); InvalidParameter
        "Unknown runtime specified <name>" when it is not configured."""
        return resolve_runtime(name, self.config, self.exec_root)

    def cgroup_parent(self, container_parent: str = "") -> str:
        """``HostConfig.CgroupParent``, else daemon.json's ``cgroup-parent``, else "/engine"."""
        parent = container_parent or (self.config.get("cgroup-parent") if self.config is not None else "") or ""
        return "/" + (parent or DEFAULT_CGROUP_PARENT).strip("/")

    def cgroups_path(self, container_id: str, container_parent: str = "") -> str:
        return f"{self.cgroup_parent(container_parent)}/{container_id}"

    def state_dir(self, container_id: str) -> Path:
        return self.exec_root / "containers" / container_id

    def exec_dir(self, container_id: str, exec_id: str) -> Path:
        return self.state_dir(container_id) / "exec" / exec_id

    # -- spec -------------------------------------------------------------------------------------

    def check_container(self, container: ContainerContext) -> None:
        """Before a create: the ``engine_security_container_create`` hook; a refusal is a 400."""
        if self.hooks is None:
            return
        refusal = self.hooks.security_container_create(container)
        if refusal:
            raise InvalidParameter(refusal)

    def build_spec(
        self, container: ContainerContext, config: dict[str, Any], host_config: dict[str, Any], inputs: Any
    ) -> dict[str, Any]:
        """The OCI spec for a container (see ``engine.runtime.spec.build_spec``), shaped at the end by
        the ``engine_security_container_spec`` hook. ``container`` is passed to the hook."""
        from engine.runtime import spec as specmod

        if not inputs.cgroups_path:
            inputs.cgroups_path = self.cgroups_path(inputs.container_id, host_config.get("CgroupParent") or "")
        result = specmod.build_spec(config, host_config, inputs, self.config)
        if self.hooks is not None:
            self.hooks.security_container_spec(container, result)
        return result

    # -- containers -------------------------------------------------------------------------------

    def start_task(
        self,
        container_id: str,
        spec: dict[str, Any],
        *,
        runtime: str | None = None,
        tty: bool | None = None,
        open_stdin: bool = False,
        spool_dir: Path | None = None,
        timeout: float = START_TIMEOUT,
    ) -> Task:
        """Write the bundle, start the shim, wait until the container runs. Raises StartFailed with
        the runtime's message, Conflict if a shim already runs for this container."""
        rt = self.resolve(runtime)
        with self._locks(container_id):
            state_dir = self.state_dir(container_id)
            if state_dir.exists():
                if control.alive(state_dir / SOCKET):
                    raise Conflict(f"container {container_id} is already running")
                delete_container(state_dir, container_id)
            spool = Path(spool_dir) if spool_dir else state_dir / "spool"
            state_dir.mkdir(parents=True, mode=0o700)
            spool.mkdir(parents=True, exist_ok=True, mode=0o700)
            Path(rt.root).mkdir(parents=True, exist_ok=True, mode=0o700)
            if tty is None:
                tty = bool(spec.get("process", {}).get("terminal"))
            cgroups_path = spec.get("linux", {}).get("cgroupsPath", "")
            meta = {
                "runtime": rt.to_json(),
                "tty": tty,
                "stdin": open_stdin,
                "spool_dir": str(spool),
                "cgroups_path": cgroups_path,
                "created_ns": time.time_ns(),
            }
            try:
                _write_state(state_dir / "config.json", spec)
                _write_state(state_dir / META_FILE, meta)
            except OSError as exc:  # a full exec-root: nothing of this start stays behind
                shutil.rmtree(state_dir, ignore_errors=True)
                if spool_dir:
                    shutil.rmtree(spool, ignore_errors=True)
                raise SystemError(f"failed to write the runtime state: {os_error_message(exc)}") from None
            args = ["-i", container_id, "-b", str(state_dir)]
            oom = cgroups.oom_control_file(cgroups_path) if cgroups_path else None
            if oom is not None:
                args += ["-O", str(oom)]
            if self.use_run:
                args.append("-u")
            try:
                pid = self._spawn(rt, args, state_dir, spool, tty, open_stdin, timeout, "create")
            except StartFailed:
                _stop_stray_shim(state_dir)
                with contextlib.suppress(Exception):
                    rt.delete(container_id, force=True)
                if cgroups_path:
                    cgroups.remove(cgroups_path)
                shutil.rmtree(state_dir, ignore_errors=True)
                if spool_dir:
                    shutil.rmtree(spool, ignore_errors=True)
                raise
            return Task(container_id, state_dir, meta, pid)

    def _spawn(
        self,
        rt: OCIRuntime,
        args: list[str],
        state_dir: Path,
        spool: Path,
        tty: bool,
        open_stdin: bool,
        timeout: float,
        action: str,
    ) -> int:
        shim = self.shim_path()
        argv = [str(shim), *args, "-d", str(state_dir), "-o", str(spool), "-r", rt.path, "-L", str(self.segment_bytes)]
        for arg in [*rt.global_args(), "--log", str(state_dir / RUNC_LOG), "--log-format", "json"]:
            argv += ["-R", arg]
        if tty:
            argv.append("-t")
        if open_stdin:
            argv.append("-s")
        r, w = os.pipe()
        try:
            with open(state_dir / SHIM_LOG, "ab") as shim_log:
                proc = subprocess.Popen(
                    [*argv, "-y", str(w)],
                    stdin=subprocess.DEVNULL,
                    stdout=shim_log,
                    stderr=shim_log,
                    pass_fds=(w,),
                    cwd=state_dir,
                )
            os.close(w)
            w = -1
            proc.wait()  # the shim forks and its first process returns at once
            answer = _read_line(r, timeout)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        if answer.startswith("ok "):
            return int(answer.split()[1])
        runtime_message = log_error(state_dir / RUNC_LOG)
        if not runtime_message:
            detail = answer or "the shim exited without reporting"
            shim_text = (
                (state_dir / SHIM_LOG).read_text(errors="replace").strip() if (state_dir / SHIM_LOG).exists() else ""
            )
            runtime_message = f"{detail} {shim_text}".strip()
        if action == "create" and self.use_run:
            runtime_message = runtime_message.replace("runc run failed", "runc create failed")
        if answer.startswith("err") and answer.endswith(" start"):
            action = "start"
        command = ""
        with contextlib.suppress(Exception):
            proc_json = json.loads((state_dir / ("process.json" if action == "exec" else "config.json")).read_text())
            command = (proc_json.get("process", proc_json).get("args") or [""])[0]
        raise StartFailed.from_runtime(action, runtime_message, command)

    def restore(self, container_id: str) -> Task | ExitStatus | None:
        """After a daemon restart: the Task if its shim still runs, the ExitStatus if the container
        exited meanwhile (its shim wrote it and left), None if nothing is known (lost with a reboot).
        The state stays until ``delete``."""
        state_dir = self.state_dir(container_id)
        meta = read_meta(state_dir)
        if meta is None:
            return None
        if control.alive(state_dir / SOCKET):
            return Task(container_id, state_dir, meta, read_pid(state_dir / PID_FILE))
        return ExitStatus.load(state_dir / EXIT_FILE)

    def spool(self, container_id: str, exec_id: str | None = None) -> Spool | None:
        """The output spool of a container (or exec) that has runtime state, running or exited. After
        ``restore`` returned an ExitStatus, the output written while the daemon was down is still
        here: drain ``spool.reader("acked", follow=False)`` into the log (and ``ack``) before ``delete``."""
        state_dir = self.exec_dir(container_id, exec_id) if exec_id else self.state_dir(container_id)
        meta = read_meta(state_dir)
        if meta is None:
            return None
        return Spool(
            Path(meta.get("spool_dir") or state_dir / "spool"), alive=lambda: control.alive(state_dir / SOCKET)
        )

    def delete(self, container_id: str, timeout: float = 10.0) -> None:
        """Kill whatever still runs, ``runc delete``, remove the cgroups and the state directory.
        Idempotent."""
        with self._locks(container_id):
            delete_container(self.state_dir(container_id), container_id, timeout)

    def state_dirs(self) -> list[str]:
        """Every container directory under the exec-root, with runtime state or not (a start or a
        delete a crash cut short leaves a directory without its meta file)."""
        try:
            return sorted(p.name for p in (self.exec_root / "containers").iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def known_containers(self) -> list[str]:
        """Container IDs with runtime state (for the containers subsystem's restore at start-up)."""
        base = self.exec_root / "containers"
        try:
            return sorted(p.name for p in base.iterdir() if (p / META_FILE).exists())
        except FileNotFoundError:
            return []

    # -- exec -------------------------------------------------------------------------------------

    def exec(
        self,
        container_id: str,
        exec_id: str,
        process: dict[str, Any],
        *,
        open_stdin: bool = False,
        timeout: float = START_TIMEOUT,
    ) -> ExecTask:
        """Start ``process`` (an OCI process dict, see ``spec.exec_process``) in the running container.
        Raises NotFound when the container has no runtime state, StartFailed with the runtime's
        message ("OCI runtime exec failed: ...")."""
        meta = read_meta(self.state_dir(container_id))
        if meta is None:
            raise NotFound(f"No such container: {container_id}")
        rt = OCIRuntime.from_json(meta["runtime"])
        exec_dir = self.exec_dir(container_id, exec_id)
        if exec_dir.exists():
            if control.alive(exec_dir / SOCKET):
                raise Conflict(f"exec {exec_id} is already running")
            shutil.rmtree(exec_dir)
        spool = exec_dir / "spool"
        tty = bool(process.get("terminal"))
        exec_meta = {"runtime": rt.to_json(), "tty": tty, "stdin": open_stdin, "spool_dir": str(spool)}
        try:
            spool.mkdir(parents=True, mode=0o700)
            _write_state(exec_dir / "process.json", process)
            _write_state(exec_dir / META_FILE, exec_meta)
        except OSError as exc:  # a full exec-root: nothing of this exec stays behind
            shutil.rmtree(exec_dir, ignore_errors=True)
            raise SystemError(f"failed to write the runtime state: {os_error_message(exc)}") from None
        args = ["-x", "-i", container_id, "-p", str(exec_dir / "process.json")]
        try:
            pid = self._spawn(rt, args, exec_dir, spool, tty, open_stdin, timeout, "exec")
        except StartFailed:
            _stop_stray_shim(exec_dir)
            shutil.rmtree(exec_dir, ignore_errors=True)
            raise
        return ExecTask(container_id, exec_id, exec_dir, exec_meta, pid)

    def restore_exec(self, container_id: str, exec_id: str) -> ExecTask | ExitStatus | None:
        exec_dir = self.exec_dir(container_id, exec_id)
        meta = read_meta(exec_dir)
        if meta is None:
            return None
        if control.alive(exec_dir / SOCKET):
            return ExecTask(container_id, exec_id, exec_dir, meta, read_pid(exec_dir / PID_FILE))
        return ExitStatus.load(exec_dir / EXIT_FILE)


def _write_state(path: Path, data: Any) -> None:
    """Atomic (temp file + rename) but not fsynced: exec-root state lives as long as the host's boot
    (containers die with the host), and a daemon crash cannot tear a renamed file. Saves two journal
    flushes per start."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _stop_stray_shim(state_dir: Path) -> None:
    """After a failed start the shim normally exits by itself; one stuck on a hung runtime (start
    timeout) is killed so it cannot recreate state we are about to remove."""
    pid = read_pid(state_dir / SHIM_PID_FILE)
    if shim_running(pid, state_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _read_line(fd: int, timeout: float) -> str:
    """The shim's report on the sync pipe: one line, or "" if it closed the pipe without one."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return "err -1 timed out waiting for the shim"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _commit(cmd: list[str]) -> dict[str, str]:
    """{"ID", "Expected"} from ``runc --version`` ("commit: X") or ``tini --version`` ("... - git.X")."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout
    except OSError:
        return {"ID": "N/A", "Expected": "N/A"}
    for line in out.splitlines():
        if line.startswith("commit:"):
            commit = line.split(":", 1)[1].strip()
            return {"ID": commit, "Expected": commit}
        if "git." in line:
            commit = line.rsplit("git.", 1)[1].strip()
            return {"ID": commit, "Expected": commit}
    return {"ID": "N/A", "Expected": "N/A"}
