"""The container object and its on-disk form (dockerd's ``config.v2.json`` and ``hostconfig.json``).

A :class:`Container` holds what dockerd persists (config, host config, state, mount points,
network settings) plus runtime-only parts (its lock, the runtime task, the log copier, attach
streams). Everything that changes a container happens under ``container.lock``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.containers.state import State
from engine.containers.timefmt import parse_rfc3339, rfc3339nano

BIND, VOLUME, TMPFS = "bind", "volume", "tmpfs"


@dataclass
class MountPoint:
    """One mount of a container (moby's volume/mounts.MountPoint)."""

    destination: str
    type: str
    source: str = ""  # host path for binds; "" for volumes (the volume knows its path)
    rw: bool = True
    name: str = ""  # volume name
    driver: str = ""  # volume driver
    mode: str = ""  # the -v mode string ("ro", "z", "nocopy"...), "" for --mount
    propagation: str = ""
    spec: dict[str, Any] = field(default_factory=dict)  # the --mount form (HostConfig.Mounts item), if any
    copy_data: bool = True  # copy image content into an empty new volume
    anonymous: bool = False  # created for this container (removed by rm -v / --rm)
    tmpfs_options: str = ""  # for tmpfs: the mount options ("size=64m,mode=1777")

    def inspect(self, volume_path: str = "") -> dict[str, Any]:
        data: dict[str, Any] = {"Type": self.type}
        if self.type == VOLUME:
            data["Name"] = self.name
        data["Source"] = volume_path if self.type == VOLUME else self.source
        data["Destination"] = self.destination
        if self.type == VOLUME:
            data["Driver"] = self.driver
        data.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return data

    def to_json(self) -> dict[str, Any]:
        return {
            "Source": self.source,
            "Destination": self.destination,
            "RW": self.rw,
            "Name": self.name,
            "Driver": self.driver,
            "Type": self.type,
            "Relabel": self.mode if self.mode in ("z", "Z") else "",
            "Propagation": self.propagation,
            "Spec": self.spec,
            "SkipMountpointCreation": False,
            "Mode": self.mode,
            "CopyData": self.copy_data,
            "Anonymous": self.anonymous,
            "TmpfsOptions": self.tmpfs_options,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MountPoint:
        return cls(
            destination=data["Destination"],
            type=data.get("Type") or VOLUME,
            source=data.get("Source", ""),
            rw=bool(data.get("RW", True)),
            name=data.get("Name", ""),
            driver=data.get("Driver", ""),
            mode=data.get("Mode", ""),
            propagation=data.get("Propagation", ""),
            spec=dict(data.get("Spec") or {}),
            copy_data=bool(data.get("CopyData", True)),
            anonymous=bool(data.get("Anonymous", False)),
            tmpfs_options=data.get("TmpfsOptions", ""),
        )


@dataclass(eq=False)
class Container:
    id: str
    name: str  # with the leading "/"
    created: int  # ns since the epoch
    path: str
    args: list[str]
    config: dict[str, Any]  # Docker's Config (merged with the image's)
    host_config: dict[str, Any]
    image_id: str
    driver: str
    root: Path  # <data-root>/containers/<id>
    state: State = field(default_factory=State)
    network_settings: dict[str, Any] = field(default_factory=dict)
    mount_points: dict[str, MountPoint] = field(default_factory=dict)
    restart_count: int = 0
    has_been_started_before: bool = False
    has_been_manually_stopped: bool = False
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    shm_path: str = ""
    log_path: str = ""
    networking_config: dict[str, Any] = field(default_factory=dict)  # as given at create, for the sandbox

    # runtime only (never persisted)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    task: Any = field(default=None, repr=False)  # the runtime Task while running
    log_driver: Any = field(default=None, repr=False)  # the open LogDriver while running (E reads it)
    log_copier: Any = field(default=None, repr=False)
    exec_ids: list[str] = field(default_factory=list, repr=False)
    streams: Any = field(default=None, repr=False)  # attach.StreamHub
    health_monitor: Any = field(default=None, repr=False)
    sandbox: Any = field(default=None, repr=False)  # the network sandbox while running
    rootfs: str = field(default="", repr=False)  # mounted rw layer while mounted
    stopping: bool = field(default=False, repr=False)  # stop/kill in progress: no restart
    restart_timer: Any = field(default=None, repr=False)
    readers: set[Any] = field(default_factory=set, repr=False)  # attach output pumps still reading

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def bare_name(self) -> str:
        return self.name.lstrip("/")

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def restart_policy(self) -> dict[str, Any]:
        return dict(self.host_config.get("RestartPolicy") or {"Name": "no", "MaximumRetryCount": 0})

    @property
    def config_path(self) -> Path:
        return self.root / "config.v2.json"

    @property
    def host_config_path(self) -> Path:
        return self.root / "hostconfig.json"

    def event_attributes(self, **extra: str) -> dict[str, str]:
        """dockerd's container event attributes: the labels, then image and name."""
        attrs = self.labels
        attrs["image"] = self.config.get("Image", "")
        attrs["name"] = self.bare_name
        attrs.update(extra)
        return attrs

    # -- config.v2.json ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "StreamConfig": {},
            "State": self.state.to_json(),
            "ID": self.id,
            "Created": rfc3339nano(self.created),
            "Managed": False,
            "Path": self.path,
            "Args": self.args,
            "Config": self.config,
            "Image": self.image_id,
            "NetworkSettings": self.network_settings,
            "LogPath": self.log_path,
            "Name": self.name,
            "Driver": self.driver,
            "OS": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "RestartCount": self.restart_count,
            "HasBeenStartedBefore": self.has_been_started_before,
            "HasBeenManuallyStopped": self.has_been_manually_stopped,
            "MountPoints": {dest: mp.to_json() for dest, mp in self.mount_points.items()},
            "SecretReferences": None,
            "ConfigReferences": None,
            "AppArmorProfile": "",
            "HostnamePath": self.hostname_path,
            "HostsPath": self.hosts_path,
            "ShmPath": self.shm_path,
            "ResolvConfPath": self.resolv_conf_path,
            "SeccompProfile": "",
            "NoNewPrivileges": False,
            "LocalLogCacheMeta": {"HaveNotifyEnabled": False},
            "NetworkingConfig": self.networking_config,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], host_config: dict[str, Any], root: Path) -> Container:
        return cls(
            id=data["ID"],
            name=data["Name"],
            created=parse_rfc3339(data.get("Created", "")),
            path=data.get("Path", ""),
            args=list(data.get("Args") or []),
            config=data.get("Config") or {},
            host_config=host_config,
            image_id=data.get("Image", ""),
            driver=data.get("Driver", ""),
            root=root,
            state=State.from_json(data.get("State") or {}),
            network_settings=data.get("NetworkSettings") or {},
            mount_points={dest: MountPoint.from_json(mp) for dest, mp in (data.get("MountPoints") or {}).items()},
            restart_count=int(data.get("RestartCount") or 0),
            has_been_started_before=bool(data.get("HasBeenStartedBefore")),
            has_been_manually_stopped=bool(data.get("HasBeenManuallyStopped")),
            hostname_path=data.get("HostnamePath", ""),
            hosts_path=data.get("HostsPath", ""),
            resolv_conf_path=data.get("ResolvConfPath", ""),
            shm_path=data.get("ShmPath", ""),
            log_path=data.get("LogPath", ""),
            networking_config=data.get("NetworkingConfig") or {},
        )
