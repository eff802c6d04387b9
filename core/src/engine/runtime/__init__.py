"""The container runtime: OCI spec generation, the OCI runtime (runc) client and one C shim per process.

Layout: ``<exec-root>/containers/<id>/`` holds the bundle (``config.json``), ``runtime.json`` (which
runtime, tty, spool dir, cgroups path), the shim's ``shim.sock``/``shim.pid``/``shim.log``,
``init.pid``, ``runc.log``, ``exit.json`` once the process has exited, ``spool/`` (output) and
``exec/<exec-id>/`` (the same per exec). runc's state is under ``<exec-root>/runtime-<name>``.
Containers run in the cgroup ``<HostConfig.CgroupParent | daemon cgroup-parent | /engine>/<id>``.

The shim (``shim/engine-shim.c``, built by ``make install`` into ``.venv/bin/engine-shim``, or on demand
into ``<exec-root>/bin``) is not a child of the daemon. It starts the container with ``runc run -d``
(one runtime process instead of create + start; lossless, as the shim owns stdio from the first byte),
owns the container's stdio, spools output to disk, serves ``shim.sock`` and writes ``exit.json``; a
daemon restart loses nothing (``Runtime.restore``).
Protocols, files and measurements: README.md next to this file.

API (everything blocking is marked; call it with ``asyncio.to_thread``)::

    runtime = Runtime(exec_root, config=lambda: daemon.config, hooks=daemon.hooks)
    runtime.start() / runtime.stop()           # subsystem lifecycle: exec-root dirs + shim binary / empty cgroup parent
    runtime.info_fields() -> {"RuncCommit", "InitCommit"}
    runtime.resolve(name | None) -> OCIRuntime  # InvalidParameter "Unknown runtime specified <name>"
    runtime.cgroups_path(container_id, host_config.get("CgroupParent", "")) -> "/engine/<id>"

    # blocking: the OCI spec; inputs are what the containers subsystem resolved (rootfs, mounts, netns, files...)
    spec = runtime.build_spec(container, config, host_config, SpecInputs(container_id=..., rootfs=...))
        # raises SpecError (500) for bad users/groups/devices/workdir, InvalidParameter for bad caps,
        # device rules, seccomp profiles, "No command specified", with dockerd's messages; seccomp:
        # default profile unless privileged / seccomp=unconfined / seccomp=<json> / daemon seccomp-profile;
        # applies the engine_security_container_spec(container, spec) hook at the end

    # blocking: write bundle, spawn shim, wait until running. StartFailed(.message as dockerd,
    # .exit_code 127/126/128, .status 400/500); Conflict if a shim already runs for the id.
    task = runtime.start_task(container_id, spec, runtime=host_config.get("Runtime"),
                              open_stdin=config["OpenStdin"], spool_dir=None)   # tty from spec

    runtime.restore(container_id) -> Task | ExitStatus | None   # blocking; after a daemon restart
    runtime.delete(container_id)                 # blocking; kill leftovers, runc delete, cgroups, state dir
    runtime.known_containers() -> [ids]          # ids with runtime state, for restore at start-up
    runtime.spool(container_id, exec_id=None) -> Spool | None   # also after an exit seen at restore:
        # drain spool.read_available("acked") into the log before delete (output written while down)

    process = spec.exec_process(container_spec, cmd, env=[...], user="", workdir="", tty=False,
                                privileged=False, rootfs=Path)   # blocking (reads /etc/passwd)
    etask = runtime.exec(container_id, exec_id, process, open_stdin=False) -> ExecTask   # blocking
    runtime.restore_exec(container_id, exec_id) -> ExecTask | ExitStatus | None

    Task / ExecTask (shared):
        .pid  .tty  .open_stdin  .state_dir  .spool (engine.runtime.spool.Spool)
        .output(offset="acked"|"end"|"start"|int, follow=True) -> async iterator of
            Chunk(stream 1|2, timestamp_ns, data, offset)   # stops after the process's last output
        .ack(offset)                   # blocking, cheap: the log copier consumed up to offset
        await .attach_stdin() -> StdinWriter: await .write(b), await .close_stdin() (EOF), await .resize(h, w),
                                             await .close() (detach only)
        .close_stdin()  .resize(h, w)  # blocking, fast (no-op resize without TTY)
        .signal(sig) -> bool           # False if already exited
        await .wait() -> ExitStatus    # returns once exited AND all output is in the spool
        .wait_sync(timeout) -> ExitStatus | None
        .exit_status() -> ExitStatus | None   .is_alive() -> bool (shim still running)
    Task only (blocking): .kill(sig=SIGTERM, all=False) -> bool, .pause(), .resume(),
        .update(spec.linux_resources(host_config)), .pids() -> [host pids], .stats() -> raw cgroup dict,
        .state() -> runc state dict | None, .delete()
    ExecTask only: .exec_id, .kill(sig=SIGKILL), .delete() (blocking)

    ExitStatus(exit_code, oom_killed, finished_at_ns, signal, pid, error) .finished_at -> datetime (UTC)

Output ownership: exactly one consumer per container should ``ack`` (the log copier); readers that
do not ack (attach, exec clients) start at "end" (new output only) or "start". Nobody acking means
the spool keeps everything until ``delete``.
"""

from engine.runtime.control import StdinWriter
from engine.runtime.oci import OCIRuntime, RuntimeCommandError
from engine.runtime.runtime import Runtime
from engine.runtime.spec import MountSpec, SpecInputs, exec_process, linux_resources
from engine.runtime.spool import STDERR, STDOUT, Chunk, Spool
from engine.runtime.task import ExecTask, ExitStatus, StartFailed, Task

__all__ = [
    "STDERR",
    "STDOUT",
    "Chunk",
    "ExecTask",
    "ExitStatus",
    "MountSpec",
    "OCIRuntime",
    "Runtime",
    "RuntimeCommandError",
    "SpecInputs",
    "Spool",
    "StartFailed",
    "StdinWriter",
    "Task",
    "exec_process",
    "linux_resources",
]
