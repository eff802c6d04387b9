"""The OCI runtime spec (config.json) of a container, from Docker's Config/HostConfig, as dockerd 20.10
builds it (moby daemon/oci_linux.go and oci/defaults.go are the reference for every default).

``build_spec`` blocks: it reads the rootfs's /etc/passwd and /etc/group, creates WorkingDir in the
rootfs and stats device nodes. Callers pass what the other subsystems resolved in ``SpecInputs``.
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.drivers.units import parse_size
from engine.errors import EngineError, InvalidParameter
from engine.runtime import caps as capsmod
from engine.runtime import devices as devmod
from engine.runtime import rootfs as rfs
from engine.runtime import seccomp as seccompmod
from engine.runtime.users import UserError, resolve_user

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 << 20
INIT_IN_CONTAINER = "/sbin/docker-init"

DEFAULT_MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

_PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}


class SpecError(EngineError):
    """The spec cannot be built (unknown user, missing device, bad mount ...): dockerd fails the start
    with a 500 and this text."""


@dataclass
class MountSpec:
    """A mount the containers subsystem resolved: binds and volumes are ``bind`` with a host ``source``; ``tmpfs`` takes
    ``options`` such as "size=65536k", "mode=1777", "exec"."""

    destination: str
    source: str = ""
    type: str = "bind"
    read_only: bool = False
    propagation: str = ""
    options: list[str] = field(default_factory=list)
    recursive: bool = True


@dataclass
class SpecInputs:
    """What the other subsystems resolved before a start.

    - ``netns_path``: None = host network (no namespace), "" = a new empty namespace, else the path of
      the sandbox's namespace (the network sandbox's ``netns_path``; for ``container:<id>`` that container's).
    - ``pid_ns_path`` / ``ipc_ns_path``: for ``PidMode``/``IpcMode`` ``container:<id>``
      (``/proc/<pid>/ns/pid``); ``shm_path``: the /dev/shm tmpfs of a "shareable" or joined IPC mode
      (None: a private tmpfs of ``ShmSize``).
    - ``hosts_path``/``resolv_conf_path``/``hostname_path``: files bind-mounted unless a user mount
      covers the same destination.
    - ``cgroups_path``: filled in by ``Runtime.build_spec`` when empty.
    """

    container_id: str
    rootfs: Path
    mounts: list[MountSpec] = field(default_factory=list)
    netns_path: str | None = ""
    hosts_path: Path | None = None
    resolv_conf_path: Path | None = None
    hostname_path: Path | None = None
    shm_path: Path | None = None
    pid_ns_path: str | None = None
    ipc_ns_path: str | None = None
    cgroups_path: str = ""
    init_path: str | None = None


# ---- helpers ------------------------------------------------------------------------------------


def replace_or_append_env(defaults: list[str], overrides: list[str]) -> list[str]:
    """dockerd's env merge: KEY=v replaces or appends; a bare KEY removes it."""
    env = list(defaults)
    index = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
    for value in overrides or []:
        key = value.split("=", 1)[0]
        if "=" not in value:
            if key in index:
                env[index[key]] = None  # type: ignore[call-overload]
            continue
        if key in index and env[index[key]] is not None:
            env[index[key]] = value
        else:
            index[key] = len(env)
            env.append(value)
    return [e for e in env if e is not None]


def container_env(config: dict[str, Any]) -> list[str]:
    """PATH, HOSTNAME, TERM (with a TTY), then Config.Env over them (moby CreateDaemonEnvironment)."""
    base = [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={config.get('Hostname') or ''}"]
    if config.get("Tty"):
        base.append("TERM=xterm")
    return replace_or_append_env(base, config.get("Env") or [])


def _cfg(daemon_config: Any, key: str, default: Any = None) -> Any:
    if daemon_config is None:
        return default
    try:
        value = daemon_config.get(key, default)
    except AttributeError:
        return default
    return default if value is None else value


def find_init(daemon_config: Any = None) -> str:
    """daemon.json ``init-path``, else docker-init, tini-static or tini on PATH (Debian's tini)."""
    configured = _cfg(daemon_config, "init-path", "")
    if configured:
        return configured
    for name in ("docker-init", "tini-static", "tini"):
        found = shutil.which(name)
        if found:
            return os.path.realpath(found)
    raise SpecError("no init binary found (install tini or set init-path)")


def _mode(value: str | None) -> tuple[str, str]:
    """ "container:<id>" -> ("container", id); "host" -> ("host", "")."""
    value = value or ""
    kind, _, rest = value.partition(":")
    return kind, rest


def _depth(destination: str) -> int:
    return len(os.path.normpath(destination).split("/"))


# ---- mounts -------------------------------------------------------------------------------------


def default_mounts(host_config: dict[str, Any], inputs: SpecInputs, shm_size: int) -> list[dict[str, Any]]:
    privileged = bool(host_config.get("Privileged"))
    ipc_kind, _ = _mode(host_config.get("IpcMode"))
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"]),
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime"] + ([] if privileged else ["ro"]),
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]
    if ipc_kind == "none":
        pass
    elif ipc_kind == "host":
        mounts.append(
            {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rprivate"]}
        )
    elif inputs.shm_path is not None:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": str(inputs.shm_path),
                "options": ["rbind", "rprivate"],
            }
        )
    else:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"],
            }
        )
    return mounts


def merge_tmpfs_options(defaults: list[str], user: list[str]) -> list[str]:
    """User tmpfs options win over the defaults: "exec" cancels "noexec", "size=" replaces size ..."""
    opposites = {"exec": "noexec", "noexec": "exec", "suid": "nosuid", "nosuid": "suid", "dev": "nodev", "nodev": "dev"}
    out = list(defaults)
    for opt in user:
        key = opt.split("=", 1)[0]
        out = [o for o in out if o.split("=", 1)[0] != key and o != opposites.get(opt)]
        out.append(opt)
    return out


def _mount_entry(m: MountSpec) -> dict[str, Any]:
    if m.type == "tmpfs":
        opts = merge_tmpfs_options(["noexec", "nosuid", "nodev"], m.options)
        if m.read_only and "ro" not in opts:
            opts.append("ro")
        return {"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": opts}
    if m.propagation and m.propagation not in _PROPAGATIONS:
        raise InvalidParameter(f"invalid propagation mode: {m.propagation}")
    opts = ["rbind" if m.recursive else "bind"]
    if m.read_only:
        opts.append("ro")
    opts.append(m.propagation or "rprivate")
    opts.extend(o for o in m.options if o not in opts)
    return {"destination": m.destination, "type": "bind", "source": m.source, "options": opts}


def _mount_propagation(source: str) -> set[str]:
    """The propagation tags (shared:N, master:N) of the mount holding ``source``."""
    best, tags = "", set()
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return set()
    src = os.path.realpath(source)
    for line in lines:
        fields = line.split(" - ")[0].split()
        mount_point = fields[4].replace("\\040", " ")
        if (src == mount_point or src.startswith(mount_point.rstrip("/") + "/")) and len(mount_point) >= len(best):
            best, tags = mount_point, {f.split(":")[0] for f in fields[6:]}
    return tags


def _rootfs_propagation(mounts: list[MountSpec]) -> str:
    """dockerd: a shared bind needs a shared source and makes the rootfs shared; a slave one rslave."""
    result = ""
    for m in mounts:
        if m.type != "bind" or not m.propagation:
            continue
        if m.propagation in ("shared", "rshared"):
            if "shared" not in _mount_propagation(m.source):
                raise SpecError(f"path {m.source} is mounted on {_mount_point(m.source)} but it is not a shared mount")
            result = "shared"
        elif m.propagation in ("slave", "rslave"):
            tags = _mount_propagation(m.source)
            if not tags & {"shared", "master"}:
                raise SpecError(
                    f"path {m.source} is mounted on {_mount_point(m.source)} but it is not a shared or slave mount"
                )
            if result != "shared":
                result = "rslave"
    return result


def _mount_point(source: str) -> str:
    best = "/"
    src = os.path.realpath(source)
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mp = line.split()[4]
            if (src == mp or src.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                best = mp
    except OSError:
        pass
    return best


def build_mounts(
    host_config: dict[str, Any], inputs: SpecInputs, shm_size: int, init: str | None
) -> list[dict[str, Any]]:
    user_mounts = list(inputs.mounts)
    user_dests = {os.path.normpath(m.destination) for m in user_mounts}
    writable_files = not host_config.get("ReadonlyRootfs")
    for dest, path in (
        ("/etc/resolv.conf", inputs.resolv_conf_path),
        ("/etc/hostname", inputs.hostname_path),
        ("/etc/hosts", inputs.hosts_path),
    ):
        if path is not None and dest not in user_dests:
            user_mounts.append(MountSpec(dest, str(path), read_only=not writable_files))
    entries = [_mount_entry(m) for m in user_mounts]
    if init:
        entries.append({"destination": INIT_IN_CONTAINER, "type": "bind", "source": init, "options": ["bind", "ro"]})
    entries.sort(key=lambda e: _depth(e["destination"]))  # parents before children (stable)
    dests = {os.path.normpath(e["destination"]) for e in entries}
    mount_dev = "/dev" in dests
    defaults = []
    for m in default_mounts(host_config, inputs, shm_size):
        if m["destination"] in dests or (mount_dev and m["destination"].startswith("/dev/")):
            continue
        defaults.append(m)
    if host_config.get("ReadonlyRootfs"):
        for m in defaults:
            if (
                m["destination"] not in ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev")
                and "ro" not in m["options"]
            ):
                m["options"].append("ro")
    return defaults + entries


# ---- resources ----------------------------------------------------------------------------------


def _throttle(entries: list[dict[str, Any]] | None, key: str) -> list[dict[str, Any]]:
    out = []
    for e in entries or []:
        major, minor = devmod.device_numbers(e["Path"])
        out.append({"major": major, "minor": minor, "rate": int(e[key])})
    return out


def linux_resources(host_config: dict[str, Any]) -> dict[str, Any]:
    """OCI ``linux.resources`` (without device rules) from HostConfig's resource fields; also what
    ``Task.update`` takes for ``docker update``."""
    hc = host_config
    res: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if hc.get("Memory"):
        memory["limit"] = int(hc["Memory"])
    if hc.get("MemoryReservation"):
        memory["reservation"] = int(hc["MemoryReservation"])
    swap = hc.get("MemorySwap") or 0
    if swap == 0 and hc.get("Memory"):
        swap = 2 * int(hc["Memory"])  # dockerd's default: as much swap as memory
    if swap:
        memory["swap"] = int(swap)
    if hc.get("MemorySwappiness") is not None and int(hc["MemorySwappiness"]) >= 0:
        memory["swappiness"] = int(hc["MemorySwappiness"])
    if hc.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if hc.get("CpuShares"):
        cpu["shares"] = int(hc["CpuShares"])
    if hc.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = int(hc["NanoCpus"]) * 100000 // 1_000_000_000
    else:
        if hc.get("CpuPeriod"):
            cpu["period"] = int(hc["CpuPeriod"])
        if hc.get("CpuQuota"):
            cpu["quota"] = int(hc["CpuQuota"])
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if hc.get("CpuRealtimePeriod"):
        cpu["realtimePeriod"] = int(hc["CpuRealtimePeriod"])
    if hc.get("CpuRealtimeRuntime"):
        cpu["realtimeRuntime"] = int(hc["CpuRealtimeRuntime"])
    if cpu:
        res["cpu"] = cpu
    pids = hc.get("PidsLimit")
    if pids:
        res["pids"] = {"limit": int(pids) if int(pids) > 0 else -1}
    blkio: dict[str, Any] = {}
    if hc.get("BlkioWeight") and Path("/sys/fs/cgroup/blkio/blkio.weight").exists():
        blkio["weight"] = int(hc["BlkioWeight"])
    weights = []
    for e in hc.get("BlkioWeightDevice") or []:
        major, minor = devmod.device_numbers(e["Path"])
        weights.append({"major": major, "minor": minor, "weight": int(e["Weight"])})
    if weights and Path("/sys/fs/cgroup/blkio/blkio.weight_device").exists():
        blkio["weightDevice"] = weights
    for oci_key, docker_key, field_name in (
        ("throttleReadBpsDevice", "BlkioDeviceReadBps", "Rate"),
        ("throttleWriteBpsDevice", "BlkioDeviceWriteBps", "Rate"),
        ("throttleReadIOPSDevice", "BlkioDeviceReadIOps", "Rate"),
        ("throttleWriteIOPSDevice", "BlkioDeviceWriteIOps", "Rate"),
    ):
        entries = _throttle(hc.get(docker_key), field_name)
        if entries:
            blkio[oci_key] = entries
    if blkio:
        res["blockIO"] = blkio
    return res


def _rlimits(host_config: dict[str, Any], daemon_config: Any) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for name, ul in (_cfg(daemon_config, "default-ulimits", {}) or {}).items():
        merged[ul.get("Name", name)] = ul
    for ul in host_config.get("Ulimits") or []:
        merged[ul["Name"]] = ul
    return [
        {"type": "RLIMIT_" + name.upper(), "soft": int(ul["Soft"]), "hard": int(ul["Hard"])}
        for name, ul in merged.items()
    ]


def _no_new_privileges(host_config: dict[str, Any], daemon_config: Any) -> bool:
    nnp = bool(_cfg(daemon_config, "no-new-privileges", False))
    for opt in host_config.get("SecurityOpt") or []:
        key, sep, value = opt.replace("=", ":", 1).partition(":")
        if key == "no-new-privileges":
            if not sep or value.lower() in ("true", "1", ""):
                nnp = True
            elif value.lower() in ("false", "0"):
                nnp = False
            else:
                raise InvalidParameter('invalid --security-opt 2: "' + opt + '"')
    return nnp


# ---- the spec -----------------------------------------------------------------------------------


def process_args(config: dict[str, Any]) -> list[str]:
    entrypoint = list(config.get("Entrypoint") or [])
    if entrypoint == [""]:  # `--entrypoint ""` clears the image's entrypoint (as the container's Path shows)
        entrypoint = []
    args = entrypoint + list(config.get("Cmd") or [])
    if not args:
        raise InvalidParameter("No command specified")
    return args


def build_spec(
    config: dict[str, Any], host_config: dict[str, Any], inputs: SpecInputs, daemon_config: Any = None
) -> dict[str, Any]:
    """The complete OCI spec; blocking (reads the rootfs, creates WorkingDir, stats devices)."""
    hc = host_config
    rootfs = Path(inputs.rootfs)
    privileged = bool(hc.get("Privileged"))

    # user, groups, working directory (in the rootfs, before any mount: as dockerd)
    try:
        user = resolve_user(rootfs, config.get("User") or "", hc.get("GroupAdd") or [])
    except UserError as exc:
        raise SpecError(str(exc)) from None
    cwd = config.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise InvalidParameter(f"the working directory '{cwd}' is invalid, it needs to be an absolute path")
    if cwd != "/":
        try:
            rfs.mkdir_all(rootfs, cwd)
        except NotADirectoryError:
            raise SpecError(f"Cannot mkdir: {cwd} is not a directory") from None

    args = process_args(config)
    init_enabled = hc.get("Init")
    if init_enabled is None:
        init_enabled = bool(_cfg(daemon_config, "init", False))
    if _mode(hc.get("PidMode"))[0] in ("host", "container"):
        init_enabled = False  # dockerd adds the init only to a container with its own pid namespace
    init = (inputs.init_path or find_init(daemon_config)) if init_enabled else None
    if init:
        args = [INIT_IN_CONTAINER, "--", *args]

    capabilities = capsmod.tweak(hc.get("CapAdd"), hc.get("CapDrop"), privileged)
    env = container_env(config)  # runc adds HOME from the user's passwd entry, as with dockerd

    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")),
        "user": {
            "uid": user.uid,
            "gid": user.gid,
            **({"additionalGids": user.additional_gids} if user.additional_gids else {}),
        },
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": capabilities, "effective": capabilities, "permitted": capabilities},
        "oomScoreAdj": int(hc.get("OomScoreAdj") or 0),
        "noNewPrivileges": _no_new_privileges(hc, daemon_config),
    }
    console = hc.get("ConsoleSize") or [0, 0]
    if process["terminal"] and len(console) == 2 and console[0] and console[1]:
        # API 1.42's initial size (newer clients send it): no race between the first output and
        # the client's first resize
        process["consoleSize"] = {"height": int(console[0]), "width": int(console[1])}
    rlimits = _rlimits(hc, daemon_config)
    if rlimits:
        process["rlimits"] = rlimits

    # namespaces
    namespaces: list[dict[str, Any]] = [{"type": "mount"}]
    if inputs.netns_path is not None:
        namespaces.append({"type": "network", **({"path": inputs.netns_path} if inputs.netns_path else {})})
    uts_kind, _ = _mode(hc.get("UTSMode"))
    if uts_kind != "host":
        namespaces.append({"type": "uts"})
    for ns, mode_key, joined in (("pid", "PidMode", inputs.pid_ns_path), ("ipc", "IpcMode", inputs.ipc_ns_path)):
        kind, _ = _mode(hc.get(mode_key))
        if kind == "container":
            if not joined:
                raise SpecError(f"cannot join {ns.upper()} of a non running container")
            namespaces.append({"type": ns, "path": joined})
        elif kind != "host":
            namespaces.append({"type": ns})
    if (hc.get("CgroupnsMode") or _cfg(daemon_config, "default-cgroupns-mode", "host")) == "private":
        namespaces.append({"type": "cgroup"})

    # devices and their cgroup rules
    linux_devices: list[dict[str, Any]] = []
    if privileged:
        linux_devices = devmod.host_devices()
        device_rules: list[dict[str, Any]] = [{"allow": True, "access": "rwm"}]
    else:
        device_rules = copy.deepcopy(devmod.DEFAULT_CGROUP_RULES)
        for mapping in hc.get("Devices") or []:
            try:
                devs, rules = devmod.devices_from_path(
                    mapping.get("PathOnHost", ""),
                    mapping.get("PathInContainer", ""),
                    mapping.get("CgroupPermissions", ""),
                )
            except devmod.DeviceError as exc:
                raise SpecError(str(exc)) from None
            linux_devices += devs
            device_rules += rules
        for rule in hc.get("DeviceCgroupRules") or []:
            device_rules.append(devmod.parse_cgroup_rule(rule))

    resources = linux_resources(hc)
    resources["devices"] = device_rules

    default_shm = _cfg(daemon_config, "default-shm-size", "")  # validated when the config was loaded
    shm_size = int(hc.get("ShmSize") or (parse_size(default_shm) if default_shm else DEFAULT_SHM_SIZE))
    mounts = build_mounts(hc, inputs, shm_size, init)
    linux: dict[str, Any] = {
        "resources": resources,
        "cgroupsPath": inputs.cgroups_path or f"/engine/{inputs.container_id}",
        "namespaces": namespaces,
        "devices": linux_devices,
    }
    if not privileged:
        masked = hc.get("MaskedPaths")
        readonly = hc.get("ReadonlyPaths")
        linux["maskedPaths"] = list(DEFAULT_MASKED_PATHS if masked is None else masked)
        linux["readonlyPaths"] = list(DEFAULT_READONLY_PATHS if readonly is None else readonly)
    if hc.get("Sysctls"):
        linux["sysctl"] = dict(hc["Sysctls"])
    seccomp = seccompmod.for_container(hc, capabilities, _cfg(daemon_config, "seccomp-profile", ""))
    if seccomp is not None:
        linux["seccomp"] = seccomp
    propagation = _rootfs_propagation(inputs.mounts)
    if propagation:
        linux["rootfsPropagation"] = propagation

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(rootfs), "readonly": bool(hc.get("ReadonlyRootfs"))},
        "mounts": mounts,
        "linux": linux,
    }
    if uts_kind != "host":
        spec["hostname"] = config.get("Hostname") or ""
        if config.get("Domainname"):
            spec["domainname"] = config["Domainname"]
    return spec


def exec_process(
    container_spec: dict[str, Any],
    cmd: list[str],
    *,
    env: list[str] | None = None,
    user: str = "",
    workdir: str = "",
    tty: bool = False,
    privileged: bool = False,
    rootfs: Path | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The OCI process for ``docker exec``: the container's process with the exec's command, env
    (merged over the container's), user (resolved in ``rootfs``), working dir, TTY; privileged gets
    every capability. Blocking when ``user`` is set. With the container's ``config`` the base env is
    dockerd's exactly (PATH, HOSTNAME, TERM only for a TTY exec, then Config.Env) instead of the
    container process's env."""
    if not cmd:
        raise InvalidParameter("No exec command specified")
    base = copy.deepcopy(container_spec["process"])
    base["args"] = list(cmd)
    base["terminal"] = bool(tty)
    start_env = container_env({**config, "Tty": tty}) if config is not None else base.get("env", [])
    base["env"] = replace_or_append_env(start_env, env or [])
    if tty and not any(e.startswith("TERM=") for e in base["env"]):
        base["env"].append("TERM=xterm")
    if user:
        root = Path(rootfs or container_spec["root"]["path"])
        try:
            u = resolve_user(root, user)
        except UserError as exc:
            raise SpecError(str(exc)) from None
        base["user"] = {
            "uid": u.uid,
            "gid": u.gid,
            **({"additionalGids": u.additional_gids} if u.additional_gids else {}),
        }
    if workdir:
        base["cwd"] = workdir
    if privileged:
        every = list(capsmod.all_capabilities())
        base["capabilities"] = {"bounding": every, "effective": every, "permitted": every}
    base.pop("consoleSize", None)
    base.pop("oomScoreAdj", None)  # runc exec inherits the container's
    return base
