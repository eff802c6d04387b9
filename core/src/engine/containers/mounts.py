"""Parse a container's mounts as dockerd does: ``-v`` binds (HostConfig.Binds), ``--mount``
(HostConfig.Mounts), anonymous volumes (Config.Volumes and the image's VOLUMEs) and ``--mount
type=tmpfs``. ``--tmpfs`` (HostConfig.Tmpfs) stays in the host config and is not a mount point.

Parsing is pure; creating volumes and checking bind sources happens in :mod:`engine.containers.create`.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from engine.containers.model import BIND, TMPFS, VOLUME, MountPoint
from engine.errors import InvalidParameter

RW_MODES = {"rw", "ro"}
LABEL_MODES = {"z", "Z"}
PROPAGATION_MODES = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
COPY_MODES = {"nocopy"}
CONSISTENCY_MODES = {"consistent", "cached", "delegated"}
DEFAULT_PROPAGATION = "rprivate"

VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def valid_mode(mode: str) -> bool:
    """dockerd's linuxValidMountMode: at most one of each kind, comma-separated."""
    if mode == "":
        return True
    counts = {"rw": 0, "label": 0, "prop": 0, "copy": 0, "consistency": 0}
    for item in mode.split(","):
        if item in RW_MODES:
            counts["rw"] += 1
        elif item in LABEL_MODES:
            counts["label"] += 1
        elif item in PROPAGATION_MODES:
            counts["prop"] += 1
        elif item in COPY_MODES:
            counts["copy"] += 1
        elif item in CONSISTENCY_MODES:
            counts["consistency"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _check_destination(dest: str, spec: str, kind: str) -> str:
    if not dest.startswith("/"):
        raise InvalidParameter(
            f"invalid volume specification: '{spec}': invalid mount config for type \"{kind}\": "
            f"invalid mount path: '{dest}' mount path must be absolute"
        )
    clean = posixpath.normpath(dest)
    if _is_root(dest):
        raise InvalidParameter(
            f"invalid volume specification: '{spec}': invalid mount config for type \"{kind}\": {TARGET_IS_ROOT}"
        )
    return clean


def parse_bind(spec: str) -> MountPoint:
    """One ``HostConfig.Binds`` entry: ``src:dst[:mode]`` (src a host path or a volume name)."""
    parts = spec.split(":")
    mode = ""
    if len(parts) == 1 or (len(parts) == 2 and valid_mode(parts[1]) and not parts[1].startswith("/")):
        # "/dst" or "/dst:mode": an anonymous volume (dockerd's linux parser accepts both in Binds)
        mode = parts[1] if len(parts) == 2 else ""
        dest = _check_destination(parts[0], spec, VOLUME)
        modes = set(mode.split(",")) if mode else set()
        return MountPoint(
            destination=dest,
            type=VOLUME,
            driver="local",
            rw="ro" not in modes,
            mode=mode,
            copy_data="nocopy" not in modes,
            anonymous=True,
        )
    if len(parts) == 2:
        source, dest = parts
    elif len(parts) == 3:
        source, dest, mode = parts
    else:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    if not valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    if source == "":
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    modes = set(mode.split(",")) if mode else set()
    rw = "ro" not in modes
    propagation = next((m for m in modes if m in PROPAGATION_MODES), "")
    if source.startswith("/"):
        dest = _check_destination(dest, spec, BIND)
        return MountPoint(
            destination=dest,
            type=BIND,
            source=posixpath.normpath(source),
            rw=rw,
            mode=mode,
            propagation=propagation or DEFAULT_PROPAGATION,
        )
    dest = _check_destination(dest, spec, VOLUME)
    if not VOLUME_NAME.match(source):
        raise InvalidParameter(
            f'create {source}: "{source}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
        )
    if propagation:
        raise InvalidParameter(f"invalid mode: {mode}")
    return MountPoint(
        destination=dest,
        type=VOLUME,
        name=source,
        driver="local",
        rw=rw,
        mode=mode,
        copy_data="nocopy" not in modes,
    )


TARGET_IS_ROOT = "invalid specification: destination can't be '/'"


def _is_root(path: str) -> bool:
    """``path`` cleans to ``/`` (as Go's path.Clean: ``//`` and ``/..`` too, unlike posixpath)."""
    return path.startswith("/") and posixpath.normpath(path).strip("/") == ""


def _mount_error(kind: str, message: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{kind}": {message}')


def tmpfs_options(size: int = 0, mode: int = 0, readonly: bool = False) -> str:
    opts = []
    if readonly:
        opts.append("ro")
    if size:
        opts.append(f"size={size}")
    if mode:
        opts.append(f"mode={mode:o}")
    return ",".join(opts)


def parse_mount(spec: dict[str, Any]) -> MountPoint:
    """One ``HostConfig.Mounts`` entry (``--mount``)."""
    kind = spec.get("Type") or ""
    target = spec.get("Target") or ""
    source = spec.get("Source") or ""
    readonly = bool(spec.get("ReadOnly"))
    if kind not in (BIND, VOLUME, TMPFS):
        raise _mount_error(kind, "mount type unknown")
    if not target:
        raise _mount_error(kind, "field Target must not be empty")
    if _is_root(target):
        # before the absolute check, as moby's linuxValidateNotRoot: nothing is mounted over the container's /
        raise _mount_error(kind, TARGET_IS_ROOT)
    if not target.startswith("/"):
        raise _mount_error(kind, f"invalid mount path: '{target}' mount path must be absolute")
    target = posixpath.normpath(target)
    if kind == BIND:
        if spec.get("VolumeOptions"):
            raise _mount_error(kind, "field VolumeOptions must not be specified")
        if spec.get("TmpfsOptions"):
            raise _mount_error(kind, "field TmpfsOptions must not be specified")
        if not source:
            raise _mount_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise _mount_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        propagation = (spec.get("BindOptions") or {}).get("Propagation") or DEFAULT_PROPAGATION
        if propagation not in PROPAGATION_MODES:
            raise _mount_error(kind, f"invalid propagation mode: {propagation}")
        return MountPoint(
            destination=target,
            type=BIND,
            source=posixpath.normpath(source),
            rw=not readonly,
            propagation=propagation,
            spec=dict(spec),
        )
    if kind == VOLUME:
        if spec.get("BindOptions"):
            raise _mount_error(kind, "field BindOptions must not be specified")
        if spec.get("TmpfsOptions"):
            raise _mount_error(kind, "field TmpfsOptions must not be specified")
        options = spec.get("VolumeOptions") or {}
        driver = ((options.get("DriverConfig") or {}).get("Name")) or "local"
        if source and not VOLUME_NAME.match(source):
            raise _mount_error(kind, f"invalid volume name {source!r}")
        return MountPoint(
            destination=target,
            type=VOLUME,
            name=source,
            driver=driver,
            rw=not readonly,
            spec=dict(spec),
            copy_data=not options.get("NoCopy"),
            anonymous=not source,
        )
    if source:
        raise _mount_error(kind, "field Source must not be specified")
    if spec.get("BindOptions"):
        raise _mount_error(kind, "field BindOptions must not be specified")
    if spec.get("VolumeOptions"):
        raise _mount_error(kind, "field VolumeOptions must not be specified")
    options = spec.get("TmpfsOptions") or {}
    size = int(options.get("SizeBytes") or 0)
    if size < 0:
        raise _mount_error(kind, "invalid tmpfs size")
    return MountPoint(
        destination=target,
        type=TMPFS,
        rw=not readonly,
        spec=dict(spec),
        tmpfs_options=tmpfs_options(size, int(options.get("Mode") or 0), readonly),
    )


def parse_all(config: dict[str, Any], host_config: dict[str, Any], image_volumes: dict[str, Any]) -> list[MountPoint]:
    """Every mount point, in dockerd's precedence: binds and --mount first, then anonymous volumes
    (Config.Volumes, the image's VOLUMEs) for destinations nothing else covers."""
    mounts: dict[str, MountPoint] = {}
    for spec in host_config.get("Binds") or []:
        mp = parse_bind(spec)
        if mp.destination in mounts:
            raise InvalidParameter(f"Duplicate mount point: {mp.destination}")
        mounts[mp.destination] = mp
    for spec in host_config.get("Mounts") or []:
        mp = parse_mount(spec)
        if mp.destination in mounts:
            raise InvalidParameter(f"Duplicate mount point: {mp.destination}")
        mounts[mp.destination] = mp
    tmpfs = {posixpath.normpath(d) for d in (host_config.get("Tmpfs") or {})}
    for dest in list(config.get("Volumes") or {}) + list(image_volumes or {}):
        clean = posixpath.normpath(dest)
        if not clean.startswith("/"):
            raise InvalidParameter(
                f"invalid volume specification: '{dest}': invalid mount config for type \"volume\": "
                f"invalid mount path: '{dest}' mount path must be absolute"
            )
        if clean == "/":
            raise InvalidParameter("invalid specification: destination can't be '/'")
        if clean in mounts or clean in tmpfs:
            continue
        mounts[clean] = MountPoint(destination=clean, type=VOLUME, driver="local", anonymous=True)
    return list(mounts.values())
