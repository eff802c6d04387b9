"""``POST /containers/create``: merge the request with the image config, fill dockerd's defaults
and validate with dockerd's error texts. Pure functions over Docker's JSON dicts; the service
does the side effects (layers, volumes, files)."""

from __future__ import annotations

import copy
import os
import posixpath
import socket
from typing import Any

from engine.containers import signals
from engine.errors import InvalidParameter

MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144
MIN_DURATION_NS = 1_000_000  # 1ms, the healthcheck minimum

#: Config keys in Go's struct order; ``None`` marks ``omitempty`` fields.
CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""),
    ("Domainname", ""),
    ("User", ""),
    ("AttachStdin", False),
    ("AttachStdout", False),
    ("AttachStderr", False),
    ("ExposedPorts", None),
    ("Tty", False),
    ("OpenStdin", False),
    ("StdinOnce", False),
    ("Env", None),
    ("Cmd", None),
    ("Healthcheck", None),
    ("ArgsEscaped", None),
    ("Image", ""),
    ("Volumes", None),
    ("WorkingDir", ""),
    ("Entrypoint", None),
    ("NetworkDisabled", None),
    ("MacAddress", None),
    ("OnBuild", None),
    ("Labels", None),
    ("StopSignal", None),
    ("StopTimeout", None),
    ("Shell", None),
)
#: fields shown as null when unset (not omitted)
_NULLABLE = {"Env", "Cmd", "Volumes", "Entrypoint", "OnBuild", "Labels"}

#: HostConfig with Go's zero values, in the order dockerd's inspect shows it.
HOST_CONFIG_ZERO: dict[str, Any] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "", "Config": {}},
    "NetworkMode": "",
    "PortBindings": {},
    "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "",
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": None,
    "GroupAdd": None,
    "IpcMode": "",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 0,
    "Runtime": "",
    "ConsoleSize": [0, 0],
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": [],
    "BlkioDeviceWriteBps": [],
    "BlkioDeviceReadIOps": [],
    "BlkioDeviceWriteIOps": [],
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "DeviceCgroupRules": None,
    "DeviceRequests": None,
    "KernelMemory": 0,
    "KernelMemoryTCP": 0,
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "OomKillDisable": False,
    "PidsLimit": None,
    "Ulimits": [],
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    "MaskedPaths": None,
    "ReadonlyPaths": None,
}

#: every capability runc knows (moby's caps.GetAllCapabilities for this kernel)
ALL_CAPABILITIES = {
    "CAP_" + c
    for c in [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ]
}


def _entrypoint_empty(entrypoint: Any) -> bool:
    return not entrypoint


def merge_image_config(config: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """dockerd's merge(userConf, imageConf): the request wins, the image fills what is unset."""
    out = dict(config)
    img = image_config or {}
    if not out.get("User"):
        out["User"] = img.get("User") or ""
    if not out.get("Env"):
        out["Env"] = list(img.get("Env") or []) or out.get("Env")
    else:
        keys = {e.split("=", 1)[0] for e in out["Env"]}
        out["Env"] = list(out["Env"]) + [e for e in img.get("Env") or [] if e.split("=", 1)[0] not in keys]
    labels = dict(out.get("Labels") or {})
    for key, value in (img.get("Labels") or {}).items():
        labels.setdefault(key, value)
    out["Labels"] = labels
    if img.get("ExposedPorts"):
        ports = dict(out.get("ExposedPorts") or {})
        for port in img["ExposedPorts"]:
            ports.setdefault(port, {})
        out["ExposedPorts"] = ports
    if _entrypoint_empty(out.get("Entrypoint")):
        if not out.get("Cmd"):
            out["Cmd"] = img.get("Cmd")
            if img.get("ArgsEscaped"):
                out["ArgsEscaped"] = True
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = img.get("Entrypoint")
    if img.get("Volumes"):
        volumes = dict(out.get("Volumes") or {})
        for dest in img["Volumes"]:
            volumes.setdefault(dest, {})
        out["Volumes"] = volumes
    if not out.get("WorkingDir"):
        out["WorkingDir"] = img.get("WorkingDir") or ""
    if not out.get("StopSignal") and img.get("StopSignal"):
        out["StopSignal"] = img["StopSignal"]
    if img.get("Healthcheck"):
        if not out.get("Healthcheck"):
            out["Healthcheck"] = dict(img["Healthcheck"])
        else:
            health = dict(out["Healthcheck"])
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
                if not health.get(key) and img["Healthcheck"].get(key):
                    health[key] = img["Healthcheck"][key]
            out["Healthcheck"] = health
    if not out.get("Shell") and img.get("Shell"):
        out["Shell"] = img["Shell"]
    if not out.get("OnBuild") and img.get("OnBuild"):
        out["OnBuild"] = img["OnBuild"]
    return out


def normalize_config(config: dict[str, Any]) -> dict[str, Any]:
    """The Config as dockerd stores it: Go's field order, zero values, omitempty fields dropped."""
    out: dict[str, Any] = {}
    for key, zero in CONFIG_FIELDS:
        value = config.get(key)
        if zero is None:
            if key in _NULLABLE:
                out[key] = value if value else None
                if key == "Entrypoint" and value == [""]:
                    out[key] = value
            elif value not in (None, "", [], {}, False):
                out[key] = value
        else:
            out[key] = value if value is not None else zero
    if out.get("Labels") is None:
        out["Labels"] = {}
    return out


def command_of(config: dict[str, Any]) -> tuple[str, list[str]]:
    """Path and Args: the entrypoint (if any) followed by the command."""
    entrypoint = [e for e in (config.get("Entrypoint") or [])]
    if entrypoint == [""]:
        entrypoint = []
    argv = entrypoint + list(config.get("Cmd") or [])
    if not argv:
        raise InvalidParameter("No command specified")
    return argv[0], argv[1:]


def validate_config(config: dict[str, Any]) -> None:
    workdir = config.get("WorkingDir") or ""
    if workdir and not posixpath.isabs(workdir):
        raise InvalidParameter(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    if config.get("StopSignal"):
        signals.parse(str(config["StopSignal"]))
    for env in config.get("Env") or []:
        if not isinstance(env, str) or env.split("=", 1)[0] == "":
            raise InvalidParameter(f"invalid environment variable: {env}")
    health = config.get("Healthcheck") or {}
    for key in ("Interval", "Timeout", "StartPeriod"):
        value = int(health.get(key) or 0)
        if value != 0 and value < MIN_DURATION_NS:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    if int(health.get("Retries") or 0) < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


def _port_number_ok(spec: str) -> bool:
    if not spec:
        return True
    start, _, end = spec.partition("-")
    try:
        lo = int(start)
        hi = int(end) if end else lo
    except ValueError:
        return False
    return 0 <= lo <= 65535 and 0 <= hi <= 65535 and lo <= hi


def normalize_capabilities(caps: list[str] | None) -> list[str] | None:
    """CAP_-prefixed upper-case names; "ALL" stays; unknown ones are dockerd's 400."""
    if not caps:
        return caps
    out = []
    for cap in caps:
        upper = cap.upper()
        if upper == "ALL":
            out.append("ALL")
            continue
        if not upper.startswith("CAP_"):
            upper = "CAP_" + upper
        if upper not in ALL_CAPABILITIES:
            raise InvalidParameter(f'unknown capability: "{upper}"')
        out.append(upper)
    return out


def normalize_host_config(
    host_config: dict[str, Any],
    *,
    default_shm_size: int,
    default_ipc_mode: str,
    default_cgroupns_mode: str,
    default_runtime: str,
    log_driver: str,
) -> dict[str, Any]:
    """Fill Go's zero values and dockerd's create-time adaptations (adaptContainerSettings)."""
    from engine.runtime.spec import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS  # the OCI spec's defaults

    hc = copy.deepcopy(HOST_CONFIG_ZERO)
    for key, value in host_config.items():
        if value is None and key in hc and hc[key] is not None:
            continue  # null where Go has a non-nil zero value: keep the zero value
        hc[key] = value
    hc["RestartPolicy"] = {
        "Name": (hc.get("RestartPolicy") or {}).get("Name") or "",
        "MaximumRetryCount": int((hc.get("RestartPolicy") or {}).get("MaximumRetryCount") or 0),
    }
    log_config = hc.get("LogConfig") or {}
    hc["LogConfig"] = {"Type": log_config.get("Type") or log_driver, "Config": dict(log_config.get("Config") or {})}
    if not hc["NetworkMode"]:
        hc["NetworkMode"] = "default"
    if not hc["ShmSize"]:
        hc["ShmSize"] = default_shm_size
    if not hc["IpcMode"]:
        hc["IpcMode"] = default_ipc_mode
    if not hc["CgroupnsMode"]:
        hc["CgroupnsMode"] = default_cgroupns_mode
    if not hc["Runtime"]:
        hc["Runtime"] = default_runtime
    if hc["Memory"] and not hc["MemorySwap"]:
        hc["MemorySwap"] = hc["Memory"] * 2  # dockerd's default: swap equal to the memory limit
    if hc["CpuShares"] and hc["CpuShares"] < MIN_CPU_SHARES:
        hc["CpuShares"] = MIN_CPU_SHARES
    elif hc["CpuShares"] > MAX_CPU_SHARES:
        hc["CpuShares"] = MAX_CPU_SHARES
    if hc.get("MemorySwappiness") == -1:
        hc["MemorySwappiness"] = None  # the CLI's "unset"
    if hc.get("PidsLimit") is not None and hc["PidsLimit"] <= 0:
        hc["PidsLimit"] = None  # 0 and -1 both mean unlimited
    hc["CapAdd"] = normalize_capabilities(hc.get("CapAdd"))
    hc["CapDrop"] = normalize_capabilities(hc.get("CapDrop"))
    if hc["MaskedPaths"] is None and not hc["Privileged"]:
        hc["MaskedPaths"] = list(DEFAULT_MASKED_PATHS)
    if hc["ReadonlyPaths"] is None and not hc["Privileged"]:
        hc["ReadonlyPaths"] = list(DEFAULT_READONLY_PATHS)
    for key in ("Dns", "DnsOptions", "DnsSearch", "Devices", "Ulimits"):
        if hc[key] is None:
            hc[key] = []
    return hc


def validate_host_config(hc: dict[str, Any], *, runtimes: set[str]) -> list[str]:
    """dockerd's verifyContainerSettings for the host config; returns warnings."""
    warnings: list[str] = []
    policy = hc["RestartPolicy"]
    name, retries = policy["Name"], policy["MaximumRetryCount"]
    if name in ("always", "unless-stopped", "no"):
        if retries != 0:
            raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{name}'")
    elif name == "on-failure":
        if retries < 0:
            raise InvalidParameter("maximum retry count cannot be negative")
    elif name != "":
        raise InvalidParameter(f"invalid restart policy '{name}'")
    if hc.get("AutoRemove") and name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    for host in hc.get("ExtraHosts") or []:
        hostname, sep, addr = host.partition(":")
        if not sep or not hostname or not addr:
            raise InvalidParameter(f"bad format for add-host: {host!r}")
    for port, bindings in (hc.get("PortBindings") or {}).items():
        number = port.split("/", 1)[0]
        if not number or not _port_number_ok(number):
            raise InvalidParameter(f'invalid port specification: "{number}"')
        for binding in bindings or []:
            host_port = (binding or {}).get("HostPort") or ""
            if not _port_number_ok(host_port.split("/", 1)[0]):
                raise InvalidParameter(f'invalid port specification: "{host_port}"')
    memory, swap = int(hc.get("Memory") or 0), int(hc.get("MemorySwap") or 0)
    if memory and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    reservation = int(hc.get("MemoryReservation") or 0)
    if reservation and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    nano = int(hc.get("NanoCpus") or 0)
    if nano > 0 and hc.get("CpuPeriod"):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and hc.get("CpuQuota"):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = os.cpu_count() or 1
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    period = int(hc.get("CpuPeriod") or 0)
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    quota = int(hc.get("CpuQuota") or 0)
    if 0 < quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    weight = int(hc.get("BlkioWeight") or 0)
    if weight and not 10 <= weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if int(hc.get("ShmSize") or 0) < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    oom = int(hc.get("OomScoreAdj") or 0)
    if not -1000 <= oom <= 1000:
        raise InvalidParameter(f"Invalid value {oom}, range for oom score adj is [-1000, 1000]")
    if hc.get("OomKillDisable") and not memory:
        warnings.append(
            "OOM killer is disabled for the container, but no memory limit is set, this can result in the "
            "system running out of resources."
        )
    if hc["Runtime"] not in runtimes:
        raise InvalidParameter(f"Unknown runtime specified {hc['Runtime']}")
    for dest in hc.get("Tmpfs") or {}:
        if not dest.startswith("/"):
            raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
    if hc["CgroupnsMode"] not in ("host", "private"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {hc['CgroupnsMode']}")
    ipc = hc["IpcMode"]
    if ipc not in ("", "none", "private", "shareable", "host") and not ipc.startswith("container:"):
        raise InvalidParameter(f"invalid IPC mode: {ipc}")
    for ulimit in hc.get("Ulimits") or []:
        if int(ulimit.get("Soft", 0)) > int(ulimit.get("Hard", 0)):
            raise InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {ulimit.get('Soft')} > "
                f"{ulimit.get('Hard')}"
            )
    return warnings


def validate_network_mode(config: dict[str, Any], hc: dict[str, Any]) -> None:
    """runconfig's validateNetMode: options that make no sense with the chosen network mode."""
    mode = hc.get("NetworkMode") or "default"
    if mode.startswith("container:"):
        if not mode.partition(":")[2]:
            raise InvalidParameter("Invalid network mode: invalid container format container:<name|id>")
        if config.get("Hostname"):
            raise InvalidParameter("conflicting options: hostname and the network mode")
        if hc.get("Links"):
            raise InvalidParameter("conflicting options: container type network can't be used with links")
        if hc.get("Dns"):
            raise InvalidParameter("conflicting options: dns and the network mode")
        if hc.get("ExtraHosts"):
            raise InvalidParameter("conflicting options: custom host-to-IP mapping and the network mode")
        if hc.get("PortBindings") or hc.get("PublishAllPorts"):
            raise InvalidParameter("conflicting options: port publishing and the container type network mode")
        if config.get("ExposedPorts"):
            raise InvalidParameter("conflicting options: port exposing and the container type network mode")
    if mode == "host" and hc.get("Links"):
        raise InvalidParameter("conflicting options: host type networking can't be used with links")
    if hc.get("UTSMode") == "host" and config.get("Hostname"):
        raise InvalidParameter("conflicting options: hostname and the UTS mode")


def default_hostname(container_id: str, config: dict[str, Any], hc: dict[str, Any]) -> str:
    if config.get("Hostname"):
        return config["Hostname"]
    if hc.get("NetworkMode") == "host" or hc.get("UTSMode") == "host":
        return socket.gethostname()
    return container_id[:12]


def network_name(mode: str) -> str:
    """The network a mode attaches to by name ("default" is the bridge)."""
    return "bridge" if mode in ("default", "") else mode
