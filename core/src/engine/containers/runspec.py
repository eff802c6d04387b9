"""What a start hands the runtime (the runtime's ``SpecInputs``): the mounted rootfs, the container's mounts
resolved to host paths, the namespaces to join and the generated /etc files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from engine.containers.model import BIND, TMPFS, VOLUME
from engine.errors import Conflict, InvalidParameter

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.containers.netadapter import NetworkSetup
    from engine.containers.service import ContainerService
    from engine.runtime.spec import MountSpec, SpecInputs


def _joined_ns(service: ContainerService, mode: str, kind: str) -> str | None:
    """``/proc/<pid>/ns/<kind>`` of the container named in ``container:<ref>`` (it must run)."""
    if not mode.startswith("container:"):
        return None
    other = service.get(mode.partition(":")[2])
    if not other.state.running or not other.state.pid:
        raise Conflict(f"cannot join {kind.upper()} of a non running container: {other.id}")
    return f"/proc/{other.state.pid}/ns/{kind}"


def _make_bind_source(source: str, owner: tuple[int, int]) -> None:
    """mkdir -p; the directories it makes belong to container root (userns-remap), as dockerd's
    MkdirAllAndChownNew (existing ones keep their owner)."""
    missing = []
    path = Path(source)
    while not path.exists():
        missing.append(path)
        path = path.parent
    os.makedirs(source, mode=0o755, exist_ok=True)
    if owner != (0, 0):
        for made in missing:
            os.chown(made, *owner)


def mount_specs(service: ContainerService, container: Container) -> list[MountSpec]:
    from engine.runtime.spec import MountSpec

    out: list[MountSpec] = []
    for mp in sorted(container.mount_points.values(), key=lambda m: m.destination):
        if mp.type == BIND:
            source = mp.source
            if not os.path.exists(source):
                if mp.spec:  # --mount never creates its source
                    raise InvalidParameter(
                        f'invalid mount config for type "bind": bind source path does not exist: {source}'
                    )
                _make_bind_source(source, service.id_map.root())  # -v creates it, as dockerd does
            out.append(MountSpec(mp.destination, source, read_only=not mp.rw, propagation=mp.propagation))
        elif mp.type == VOLUME:
            source = str(service.volumes.mount(mp.name, container.id))
            out.append(MountSpec(mp.destination, source, read_only=not mp.rw, propagation=mp.propagation))
        elif mp.type == TMPFS:
            options = [o for o in mp.tmpfs_options.split(",") if o and o != "ro"]
            out.append(MountSpec(mp.destination, type="tmpfs", read_only=not mp.rw, options=options))
    for dest, raw in (container.host_config.get("Tmpfs") or {}).items():
        options = [o for o in (raw or "").split(",") if o]
        read_only = "ro" in options
        options = [o for o in options if o not in ("ro", "rw")]
        out.append(MountSpec(os.path.normpath(dest), type="tmpfs", read_only=read_only, options=options))
    return out


def spec_inputs(service: ContainerService, container: Container, net: NetworkSetup) -> SpecInputs:
    from engine.runtime.spec import SpecInputs

    hc = container.host_config
    netns: str | None
    if net.netns_path:
        netns = net.netns_path
    elif net.new_netns:
        netns = ""
    else:
        netns = None  # the host's network namespace
    ipc_ns = _joined_ns(service, hc.get("IpcMode") or "", "ipc")
    return SpecInputs(
        container_id=container.id,
        rootfs=Path(container.rootfs),
        mounts=mount_specs(service, container),
        netns_path=netns,
        hosts_path=Path(container.hosts_path) if container.hosts_path else None,
        resolv_conf_path=Path(container.resolv_conf_path) if container.resolv_conf_path else None,
        hostname_path=Path(container.hostname_path) if container.hostname_path else None,
        pid_ns_path=_joined_ns(service, hc.get("PidMode") or "", "pid"),
        ipc_ns_path=ipc_ns,
    )
