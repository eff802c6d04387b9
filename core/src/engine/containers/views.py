"""The JSON shapes of a container: ``GET /containers/{id}/json`` and one ``GET /containers/json`` item,
field for field as dockerd 20.10 shows them (see tests/data/dockerd)."""

from __future__ import annotations

from typing import Any

from engine.containers.model import VOLUME, Container
from engine.containers.timefmt import rfc3339nano

ENDPOINT_ZERO: dict[str, Any] = {
    "IPAMConfig": None,
    "Links": None,
    "Aliases": None,
    "NetworkID": "",
    "EndpointID": "",
    "Gateway": "",
    "IPAddress": "",
    "IPPrefixLen": 0,
    "IPv6Gateway": "",
    "GlobalIPv6Address": "",
    "GlobalIPv6PrefixLen": 0,
    "MacAddress": "",
    "DriverOpts": None,
}


def network_settings_zero(networks: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": {},
        "SandboxKey": "",
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": networks if networks is not None else {},
    }


def endpoint_zero(**overrides: Any) -> dict[str, Any]:
    data = dict(ENDPOINT_ZERO)
    data.update(overrides)
    return data


def mounts_json(container: Container, volume_path: Any, *, for_list: bool = False) -> list[dict[str, Any]]:
    """Inspect's ``Mounts`` (volume Source is the volume's path) or ps's (Source "" for volumes)."""
    out = []
    for mp in sorted(container.mount_points.values(), key=lambda m: m.destination):
        path = ""
        if mp.type == VOLUME and not for_list:
            path = volume_path(mp) or ""
        out.append(mp.inspect(path))
    return out


def inspect(
    container: Container,
    *,
    graph_driver: dict[str, Any],
    volume_path: Any,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Id": container.id,
        "Created": rfc3339nano(container.created),
        "Path": container.path,
        "Args": list(container.args),
        "State": container.state.to_inspect(),
        "Image": container.image_id,
        "ResolvConfPath": container.resolv_conf_path,
        "HostnamePath": container.hostname_path,
        "HostsPath": container.hosts_path,
        "LogPath": container.log_path,
        "Name": container.name,
        "RestartCount": container.restart_count,
        "Driver": container.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": list(container.exec_ids) or None,
        "HostConfig": container.host_config,
        "GraphDriver": graph_driver,
    }
    if size is not None:
        data["SizeRw"], data["SizeRootFs"] = size
    data["Mounts"] = mounts_json(container, volume_path)
    data["Config"] = container.config
    data["NetworkSettings"] = container.network_settings or network_settings_zero()
    return data


def command_string(container: Container) -> str:
    if not container.args:
        return container.path
    args = [f"'{a}'" if " " in a else a for a in container.args]
    return f"{container.path} {' '.join(args)}"


def ports_list(network_settings: dict[str, Any], exposed: dict[str, Any] | None) -> list[dict[str, Any]]:
    """ps's ``Ports``: published bindings, and exposed ports without one."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for port, bindings in (network_settings.get("Ports") or {}).items():
        number, _, proto = port.partition("/")
        seen.add(port)
        if not bindings:
            out.append({"PrivatePort": int(number), "Type": proto or "tcp"})
            continue
        for binding in bindings:
            item: dict[str, Any] = {"IP": binding.get("HostIp", ""), "PrivatePort": int(number)}
            if binding.get("HostPort"):
                item["PublicPort"] = int(binding["HostPort"])
            item["Type"] = proto or "tcp"
            out.append(item)
    for port in exposed or {}:
        if port not in seen:
            number, _, proto = port.partition("/")
            out.append({"PrivatePort": int(number), "Type": proto or "tcp"})
    return out


def list_item(
    container: Container,
    *,
    names: list[str],
    image: str,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    settings = container.network_settings or network_settings_zero()
    data: dict[str, Any] = {
        "Id": container.id,
        "Names": names,
        "Image": image,
        "ImageID": container.image_id,
        "Command": command_string(container),
        "Created": container.created // 1_000_000_000,
        "Ports": ports_list(settings, container.config.get("ExposedPorts")),
    }
    if size is not None:
        size_rw, size_root = size
        if size_rw:
            data["SizeRw"] = size_rw
        if size_root:
            data["SizeRootFs"] = size_root
    data.update(
        {
            "Labels": container.labels,
            "State": container.state.status(),
            "Status": container.state.human(),
            "HostConfig": {"NetworkMode": container.host_config.get("NetworkMode", "default")},
            "NetworkSettings": {"Networks": settings.get("Networks") or {}},
            "Mounts": mounts_json(container, None, for_list=True),
        }
    )
    return data
