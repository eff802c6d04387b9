"""The userns-remap hooks: resolve the daemon's id map, refuse what dockerd refuses with it, and put
the user namespace with its mappings into each container's OCI spec (unless ``--userns=host``)."""

from __future__ import annotations

import re
from typing import Any

from engine.drivers import hookimpl, netns
from engine.drivers.storage import IdMap
from engine_plugin_userns_remap import subids

#: the map resolved at start-up (one daemon per process)
_active: list[IdMap] = []


def active() -> IdMap | None:
    return _active[0] if _active else None


@hookimpl
def engine_security_resolve_id_map(config: Any) -> IdMap | None:
    _active.clear()
    value = config["userns-remap"]
    if not value:
        return None
    id_map = subids.resolve(value)
    if id_map is not None:
        _active.append(id_map)
    return id_map


def _private(host_config: dict[str, Any]) -> bool:
    return active() is not None and host_config.get("UsernsMode") != "host"


@hookimpl
def engine_security_container_create(container: Any) -> str | None:
    """dockerd 20.10's verifyPlatformContainerSettings, word for word."""
    hc = container.host_config
    if not _private(hc):
        return None
    if hc.get("Privileged"):
        return (
            "privileged mode is incompatible with user namespaces.  "
            "You must run the container in the host namespace when running privileged mode"
        )
    if hc.get("NetworkMode") == "host":
        return "cannot share the host's network namespace when user namespaces are enabled"
    if hc.get("PidMode") == "host":
        return "cannot share the host PID namespace when user namespaces are enabled"
    return None


def _spec_mappings(ranges: Any) -> list[dict[str, int]]:
    return [{"containerID": r.container_id, "hostID": r.host_id, "size": r.size} for r in ranges]


_PROC_NS = re.compile(r"^/proc/(\d+)/ns/(net|ipc|pid)$")


@hookimpl
def engine_security_container_spec(container: Any, spec: dict[str, Any]) -> None:
    id_map = active()
    if id_map is None or not _private(container.host_config):
        return
    linux = spec.setdefault("linux", {})
    namespaces = linux.setdefault("namespaces", [])
    user_ns: dict[str, Any] = {"type": "user"}
    for ns in namespaces:
        path = ns.get("path", "")
        match = _PROC_NS.match(path)
        if match:
            # joining another container's namespace (--network/--ipc/--pid container:X) means joining
            # its user namespace too: a namespace belongs to the user namespace that made it
            user_ns["path"] = f"/proc/{match.group(1)}/ns/user"
            break
        if ns.get("type") == "network" and path and netns.user_ns_of(path).exists():
            # the sandbox's network namespace was made in a user namespace of its own: join it
            user_ns["path"] = str(netns.user_ns_of(path))
            break
    namespaces[:] = [ns for ns in namespaces if ns.get("type") != "user"] + [user_ns]
    linux["uidMappings"] = _spec_mappings(id_map.uids)
    linux["gidMappings"] = _spec_mappings(id_map.gids)
    if "path" not in user_ns and any(ns.get("type") == "network" and ns.get("path") for ns in namespaces):
        _bind_sysfs(spec)


def _bind_sysfs(spec: dict[str, Any]) -> None:
    """The kernel lets a user namespace mount sysfs only over a network namespace it owns: a network
    namespace made outside the container's user namespace gets the host's /sys read-only instead,
    as rootless runtimes do."""
    for mount in spec.get("mounts", []):
        if mount.get("type") == "sysfs":
            mount.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
