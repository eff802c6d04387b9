"""Can this host run the driver? Root, the tools, a kernel with device-mapper and its thin-pool target."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import DriverNotSupported, PrerequisitesNotMet
from engine_plugin_devicemapper import dmsetup
from engine_plugin_devicemapper.options import Options

CONTROL = Path("/dev/mapper/control")


def check(opts: Options) -> None:
    """Raise DriverNotSupported / PrerequisitesNotMet saying what is missing."""
    if os.geteuid() != 0:
        raise PrerequisitesNotMet("devmapper: the devicemapper driver needs root (device-mapper ioctls, mounts)")
    tools = ["dmsetup", "blockdev", "mkfs.ext4" if opts.fs == "ext4" else "mkfs.xfs"]
    if not opts.thin_pool_dev:
        tools.append("losetup")
    missing = [tool for tool in tools if not dmsetup.have(tool)]
    if missing:
        raise PrerequisitesNotMet(
            f"devmapper: missing tools: {', '.join(missing)} (Debian: dmsetup, util-linux, e2fsprogs or xfsprogs)"
        )
    if not CONTROL.exists():
        raise DriverNotSupported(
            f"devmapper: the kernel has no device-mapper: {CONTROL} does not exist (no dm_mod module loaded)"
        )
    try:
        found = dmsetup.targets()
    except dmsetup.CommandError as exc:
        first = exc.stderr.splitlines()[0] if exc.stderr else str(exc)
        raise DriverNotSupported(f"devmapper: the kernel has no device-mapper: {first} (dm_mod not loaded)") from None
    if "thin-pool" not in found or "thin" not in found:
        raise DriverNotSupported(
            "devmapper: the kernel's device-mapper has no thin-pool target (load dm_thin_pool); "
            f"dmsetup targets lists: {', '.join(sorted(found))}"
        )
