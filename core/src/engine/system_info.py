"""``GET /version`` and ``GET /info``: what the host and the daemon are."""

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

if TYPE_CHECKING:
    from engine.daemon import Daemon

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def _os_release() -> dict[str, str]:
    out = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key] = value.strip().strip('"')
    except OSError:
        pass
    return out


def mem_total() -> int:
    """The machine's memory in bytes (/proc/meminfo MemTotal); 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cgroup_version() -> str:
    """ "2" only on a pure cgroup2 host; hybrid hosts (like these machines) are v1 to dockerd."""
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


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
    uname = platform.uname()
    osr = _os_release()
    config = daemon.config
    storage = daemon.storage
    runtimes = {"runc": {"path": "runc"}}
    runtimes.update(
        {
            name: {"path": spec["path"], **({"runtimeArgs": spec["runtimeArgs"]} if spec.get("runtimeArgs") else {})}
            for name, spec in config["runtimes"].items()
        }
    )
    security = ["name=seccomp,profile=default"]
    if config["userns-remap"]:
        security.append("name=userns")
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
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version(),
        "NEventsListener": daemon.events.subscriber_count(),
        "KernelVersion": uname.release,
        "OperatingSystem": osr.get("PRETTY_NAME", "Linux"),
        "OSVersion": osr.get("VERSION_ID", ""),
        "OSType": "linux",
        "Architecture": uname.machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(config),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": mem_total(),
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
        "Warnings": [],
        "EnginePlugins": plugin_names(daemon.pm),
    }
    for subsystem in daemon.subsystems:
        contribute = getattr(subsystem, "info_fields", None)
        if contribute is not None:
            data.update(contribute())
    return data


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
