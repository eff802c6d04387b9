"""``GET /version`` and ``GET /info``: what the host and the daemon are, shaped as dockerd does."""

from __future__ import annotations

import ipaddress
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import API_VERSION, DOCKER_VERSION, MIN_API_VERSION, __version__
from engine.drivers.timefmt import rfc3339nano
from engine.plugins import plugin_names
from engine.system_info import GO_ARCH, cgroup_version, host_fields

if TYPE_CHECKING:
    from engine.daemon import Daemon


def version(daemon: Daemon) -> dict[str, Any]:
    uname = platform.uname()
    return {
        "Platform": {"Name": "engine"},
        "Components": [
            {
                "Name": "Engine",
                "Version": DOCKER_VERSION,
                "Details": {
                    "ApiVersion": API_VERSION,
                    "MinAPIVersion": MIN_API_VERSION,
                    "Os": "linux",
                    "Arch": GO_ARCH.get(uname.machine, uname.machine),
                    "KernelVersion": uname.release,
                    "Experimental": str(bool(daemon.config["experimental"])).lower(),
                    "EngineVersion": __version__,
                    "GitCommit": "engine",
                    "GoVersion": "python" + platform.python_version(),
                    "BuildTime": "",
                },
            },
        ],
        "Version": DOCKER_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "engine",
        "GoVersion": "python" + platform.python_version(),
        "Os": "linux",
        "Arch": GO_ARCH.get(uname.machine, uname.machine),
        "KernelVersion": uname.release,
        "Experimental": bool(daemon.config["experimental"]),
        "BuildTime": "",
    }


def info(daemon: Daemon) -> dict[str, Any]:
    config = daemon.config
    storage = daemon.storage
    runtimes = {"runc": {"path": "runc"}}
    runtimes.update(
        {
            name: {"path": spec["path"], **({"runtimeArgs": spec["runtimeArgs"]} if spec.get("runtimeArgs") else {})}
            for name, spec in config["runtimes"].items()
        }
    )
    # the daemon's seccomp-profile as dockerd shows it (a path, "unconfined", or "default")
    security = [f"name=seccomp,profile={config['seccomp-profile'] or 'default'}"]
    if not daemon.id_map.identity:  # only when a remapping is in effect (userns-remap=root is none)
        security.append("name=userns")
    warnings: list[str] = []
    cgroup_driver = "cgroupfs"
    if config["rootless"]:
        security.append("name=rootless")
        if not cgroups_writable():
            # dockerd's "none" cgroup driver: containers get no cgroups, and limits do nothing
            cgroup_driver = "none"
            warnings.append(
                "WARNING: Running in rootless-mode without cgroups. To enable cgroups in rootless-mode, "
                "you need to boot the system in cgroup v2 mode."
                if cgroup_version() == "1"
                else "WARNING: Running in rootless-mode without cgroups. Systemd is required to enable cgroups in rootless-mode."
            )
    data: dict[str, Any] = {
        "ID": daemon.id,
        "Containers": 0,
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": 0,
        "Images": 0,
        "Driver": storage.name if storage else "",
        "DriverStatus": [list(pair) for pair in storage.status()] if storage else [],
        "Plugins": {
            "Volume": ["local"],
            "Network": daemon.network_drivers.names(),
            "Authorization": list(config["authorization-plugins"]) or None,
            "Log": [n for n in daemon.log_drivers.names()],
        },
        "MemoryLimit": True,
        "SwapLimit": Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
        "KernelMemory": False,
        "KernelMemoryTCP": False,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1",
        "BridgeNfIptables": True,
        "BridgeNfIp6tables": True,
        "Debug": bool(config["debug"]),
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": True,
        "NGoroutines": 0,
        "SystemTime": rfc3339nano(time.time_ns(), local=True),
        "LoggingDriver": config["log-driver"],
        "CgroupDriver": cgroup_driver,
        "CgroupVersion": cgroup_version(),
        "NEventsListener": daemon.events.subscriber_count(),
        **host_fields(),  # KernelVersion, OperatingSystem, OSVersion, OSType, Architecture, NCPU, MemTotal
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(config),
        "GenericResources": None,
        "DockerRootDir": str(daemon.data_root),
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": daemon.name,
        "Labels": list(config["labels"]),
        "ExperimentalBuild": bool(config["experimental"]),
        "ServerVersion": DOCKER_VERSION,
        "Runtimes": runtimes,
        "DefaultRuntime": config["default-runtime"],
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": bool(config["live-restore"]),
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": security,
        "Warnings": warnings,
        "EnginePlugins": plugin_names(daemon.pm),
    }
    data.update(subsystem_fields(daemon))
    return data


def subsystem_fields(daemon: Daemon) -> dict[str, Any]:
    """What the subsystems add to ``GET /info`` (image and container counts, address pools, runc
    and docker-init versions); the metrics read their counts from here too."""
    fields: dict[str, Any] = {}
    for contribute in (
        daemon.images.info_fields,
        daemon.networks.info_fields,
        daemon.runtime.info_fields,
        daemon.containers.info_fields,
    ):
        fields.update(contribute())
    return fields


def cgroups_writable() -> bool:
    """Whether this daemon can make cgroups (a rootless one, without systemd delegation, cannot)."""
    root = Path("/sys/fs/cgroup")
    for candidate in (root / "memory", root):
        if (candidate / "cgroup.procs").exists():
            return os.access(candidate, os.W_OK)
    return False


def registry_config(config: Any) -> dict[str, Any]:
    """dockerd's registry ServiceConfig: ``insecure-registries`` entries that are CIDRs join
    127.0.0.0/8, any other (``host[:port]``) gets an insecure index of its own."""
    cidrs = ["127.0.0.0/8"]
    mirrors = list(config["registry-mirrors"])
    index = {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True, "Official": True}}
    for entry in config["insecure-registries"]:
        try:
            network = str(ipaddress.ip_network(entry, strict=False)) if "/" in entry else None
        except ValueError:
            network = None
        if network is not None:
            if network not in cidrs:
                cidrs.append(network)
        else:
            index[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
    return {
        "AllowNondistributableArtifactsCIDRs": [],
        "AllowNondistributableArtifactsHostnames": [],
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": index,
        "Mirrors": mirrors,
    }
