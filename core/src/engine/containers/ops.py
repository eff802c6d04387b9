"""Smaller container operations: top, diff (changes), update, commit, resize."""

from __future__ import annotations

import contextlib
import subprocess
from typing import TYPE_CHECKING, Any

from engine.containers import create as createmod
from engine.errors import Conflict, EngineError, InvalidParameter

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.containers.service import ContainerService

#: HostConfig resource keys ``docker update`` may change
UPDATABLE = (
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "NanoCpus",
    "CpusetCpus",
    "CpusetMems",
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "KernelMemory",
    "BlkioWeight",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
)


def _running(container: Container) -> Any:
    state = container.state
    if not state.running or container.task is None:
        if state.restarting:
            raise Conflict(f"Container {container.id} is restarting, wait until the container is running")
        raise Conflict(f"Container {container.id} is not running")
    return container.task


def top(service: ContainerService, ref: str, ps_args: str) -> dict[str, Any]:
    container = service.get(ref)
    with container.lock:
        task = _running(container)
    pids = set(task.pids())
    args = ps_args.split() if ps_args else ["-ef"]
    try:
        proc = subprocess.run(["ps", *args], capture_output=True, timeout=30, check=False)
    except OSError as exc:
        raise EngineError(f"Error running ps: {exc}") from None
    if proc.returncode != 0:
        raise EngineError(f"ps: {proc.stderr.decode(errors='replace').strip() or proc.returncode}")
    lines = proc.stdout.decode(errors="replace").split("\n")
    titles = lines[0].split()
    pid_index = next((i for i, t in enumerate(titles) if t == "PID"), -1)
    if pid_index < 0:
        raise EngineError("Couldn't find PID field in ps output")
    processes = []
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        try:
            pid = int(fields[pid_index])
        except (ValueError, IndexError):
            raise EngineError(f"Unexpected pid '{fields[pid_index] if pid_index < len(fields) else ''}'") from None
        if pid in pids:
            processes.append([*fields[: len(titles) - 1], " ".join(fields[len(titles) - 1 :])])
    service.publish(container, "top")
    return {"Titles": titles, "Processes": processes}


def changes(service: ContainerService, ref: str) -> list[dict[str, Any]]:
    container = service.get(ref)
    # the storage driver contract: a list of engine.drivers.storage.Change (kind is Docker's number)
    return [
        {"Path": change.path, "Kind": int(change.kind)} for change in service.images.layers.rw_changes(container.id)
    ]


def update(service: ContainerService, ref: str, body: dict[str, Any]) -> list[str]:
    container = service.get(ref)
    with container.lock:
        if container.state.removal_in_progress or container.state.dead:
            raise Conflict(
                f'Cannot update container {container.id}: container is marked for removal and cannot be "update"'
            )
        current = container.host_config
        new = dict(current)
        for key in UPDATABLE:
            if body.get(key):
                new[key] = body[key]
        if "PidsLimit" in body and body["PidsLimit"] is not None:
            new["PidsLimit"] = body["PidsLimit"] if body["PidsLimit"] > 0 else None
        _check_update(current, body)
        if body.get("Memory") and not body.get("MemorySwap"):
            if body["Memory"] > (current.get("MemorySwap") or 0) and (current.get("MemorySwap") or 0) > 0:
                raise InvalidParameter(
                    f"Cannot update container {container.id}: Memory limit should be smaller than already set "
                    "memoryswap limit, update the memoryswap at the same time"
                )
            if not current.get("MemorySwap"):
                new["MemorySwap"] = body["Memory"] * 2
        policy = body.get("RestartPolicy") or {}
        if policy.get("Name"):
            if current.get("AutoRemove") and policy["Name"] != "no":
                raise InvalidParameter(
                    f"Cannot update container {container.id}: Restart policy cannot be updated because "
                    "AutoRemove is enabled for the container"
                )
            new["RestartPolicy"] = {
                "Name": policy["Name"],
                "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0),
            }
        probe = dict(new)
        probe["RestartPolicy"] = new.get("RestartPolicy") or current.get("RestartPolicy")
        warnings = createmod.validate_host_config(probe, runtimes={probe.get("Runtime") or "runc"})
        task = container.task if container.state.running and not container.state.restarting else None
        if task is not None:
            from engine.runtime.spec import linux_resources

            try:
                task.update(linux_resources(new))
            except EngineError as exc:
                raise EngineError(f"Cannot update container {container.id}: {exc.message}") from None
        container.host_config = new
        if policy.get("Name"):
            service.lifecycle.restart_manager(container).set_policy(new["RestartPolicy"])
        service.store.save(container)
    service.publish(container, "update")
    return warnings


def _check_update(current: dict[str, Any], body: dict[str, Any]) -> None:
    prefix = "Conflicting options: "
    if body.get("NanoCpus") and current.get("CpuPeriod"):
        raise InvalidParameter(prefix + "Nano CPUs cannot be updated as CPU Period has already been set")
    if body.get("NanoCpus") and current.get("CpuQuota"):
        raise InvalidParameter(prefix + "Nano CPUs cannot be updated as CPU Quota has already been set")
    if body.get("CpuPeriod") and current.get("NanoCpus"):
        raise InvalidParameter(prefix + "CPU Period cannot be updated as NanoCPUs has already been set")
    if body.get("CpuQuota") and current.get("NanoCpus"):
        raise InvalidParameter(prefix + "CPU Quota cannot be updated as NanoCPUs has already been set")


def commit(
    service: ContainerService,
    ref: str,
    *,
    repo: str,
    tag: str,
    comment: str,
    author: str,
    pause: bool,
    changes: list[str],
    config: dict[str, Any] | None,
) -> str:
    container = service.get(ref)
    state = container.state
    if state.dead:
        raise Conflict(f"You cannot commit container {container.id} which is Dead")
    if state.removal_in_progress:
        raise Conflict(f"You cannot commit container {container.id} which is being removed")
    paused_here = False
    if pause and state.running and not state.paused and not state.restarting:
        service.lifecycle.pause(container.id)
        paused_here = True
    try:
        image_id = service.images.commit(
            container.id,
            container.image_id,
            container.config,
            repo=repo,
            tag=tag,
            comment=comment,
            author=author,
            changes=[c for change in changes for c in change.split("\n") if c],
            config=config,
        )
        image_ref = ""
        if repo:
            image_ref = f"{repo}:{tag or 'latest'}" if ":" not in repo.rsplit("/", 1)[-1] else repo
        # dockerd logs the commit before its deferred unpause
        service.publish(container, "commit", comment=comment, imageID=image_id, imageRef=image_ref)
    finally:
        if paused_here:
            with contextlib.suppress(Conflict):
                service.lifecycle.unpause(container.id)
    return image_id


def resize(service: ContainerService, ref: str, height: int, width: int) -> None:
    container = service.get(ref)
    with container.lock:
        task = _running(container)
    task.resize(height, width)
    service.publish(container, "resize", height=str(height), width=str(width))
