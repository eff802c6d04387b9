"""Host device nodes for ``--device``, ``--device-cgroup-rule`` and ``--privileged``."""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from engine.errors import InvalidParameter

# dockerd's defaults: deny all, then the usual char devices (moby oci.DefaultLinuxSpec); runc adds
# its own allow list (pts, ptmx, tun, "m" on everything) after these
DEFAULT_CGROUP_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
]

_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
# /dev entries runc's HostDevices skips for --privileged
_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


class DeviceError(Exception):
    pass


def device_from_path(path: str, permissions: str) -> dict[str, Any] | None:
    """An OCI ``linux.devices`` entry for a device node, or None when ``path`` is not one."""
    st = os.stat(path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "p"
    else:
        return None
    return {
        "path": path,
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "_access": permissions,
    }


def _rule(dev: dict[str, Any]) -> dict[str, Any]:
    return {"allow": True, "type": dev["type"], "major": dev["major"], "minor": dev["minor"], "access": dev["_access"]}


def devices_from_path(host: str, container: str, permissions: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``--device host[:container[:perms]]``: the device, or every device under a directory, and their
    cgroup rules (dockerd's error text when nothing is found)."""
    resolved = host
    if os.path.islink(host):
        resolved = os.path.realpath(host)
    container = container or host
    permissions = permissions or "rwm"
    try:
        dev = device_from_path(resolved, permissions)
    except OSError as exc:
        raise DeviceError(
            f'error gathering device information while adding custom device "{host}": {exc.strerror.lower()}'
        ) from None
    if dev is not None:
        dev["path"] = container
        return [_public(dev)], [_rule(dev)]
    devs, rules = [], []
    if os.path.isdir(resolved):
        for dirpath, _dirs, files in os.walk(resolved):
            for name in files:
                full = os.path.join(dirpath, name)
                try:
                    child = device_from_path(full, permissions)
                except OSError:
                    continue
                if child is None:
                    continue
                child["path"] = full.replace(resolved, container, 1)
                devs.append(_public(child))
                rules.append(_rule(child))
    if not devs:
        raise DeviceError(f'error gathering device information while adding custom device "{host}": not a device node')
    return devs, rules


def _public(dev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dev.items() if not k.startswith("_")}


def parse_cgroup_rule(rule: str) -> dict[str, Any]:
    """``--device-cgroup-rule "c 1:3 mr"`` -> an OCI device cgroup entry."""
    m = _RULE.match(rule.strip())
    if not m:
        raise InvalidParameter(f"invalid device cgroup rule format: '{rule}'")
    kind, major, minor, access = m.groups()
    out: dict[str, Any] = {"allow": True, "type": kind, "access": access}
    if major != "*":
        out["major"] = int(major)
    if minor != "*":
        out["minor"] = int(minor)
    return out


def host_devices(dev_root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node under /dev (for --privileged), as OCI entries with their host paths."""
    out = []
    for dirpath, dirs, files in os.walk(dev_root):
        if dirpath == dev_root:
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for name in files:
            full = os.path.join(dirpath, name)
            if full == "/dev/console":
                continue
            try:
                dev = device_from_path(full, "rwm")
            except OSError:
                continue
            if dev is not None and dev["type"] != "p":
                out.append(_public(dev))
    return out


def device_numbers(path: str) -> tuple[int, int]:
    """Major/minor of a block device path (blkio throttling options)."""
    st = os.stat(path)
    if not stat.S_ISBLK(st.st_mode) and not stat.S_ISCHR(st.st_mode):
        raise InvalidParameter(f"{path} is not a device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)
