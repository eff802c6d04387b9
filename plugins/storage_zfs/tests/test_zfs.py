"""zfs driver specifics on a real zfs-fuse pool: datasets and clones as dockerd names them, the
dataset holding data-root as the default zfs.fsname, quotas, mounts, a killed daemon's mounts,
option checks, the refusal off zfs, and DriverStatus (which says the zfs command ran)."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from pathlib import Path

import pytest
from engine_plugin_zfs import host
from engine_plugin_zfs.driver import ZfsStorageDriver

from engine.drivers.storage import CreateOpts
from engine.errors import InvalidParameter, PrerequisitesNotMet
from engine_testkit.backends import ZfsPool, zfs_dataset

pytestmark = pytest.mark.privileged


def zfs(*args: str) -> str:
    return subprocess.run(["zfs", *args], check=True, capture_output=True, text=True).stdout


def test_datasets_clones_and_mounts(pool: ZfsPool, data_root: Path) -> None:
    parent = f"{pool.name}/{data_root.name}"  # the dataset mounted at data-root
    home = data_root / "zfs"
    driver = ZfsStorageDriver.init(home, {})
    assert driver.fsname == parent
    driver.create("base", None)
    (driver.get("base") / "f").write_text("base")
    driver.put("base")
    driver.create_read_write("rw", "base", CreateOpts(storage_opt={"size": "32M"}))
    assert zfs("get", "-H", "-o", "value", "origin", f"{parent}/rw").strip() == f"{parent}/base@rw"
    assert zfs("get", "-Hp", "-o", "value", "quota", f"{parent}/rw").strip() == str(32 << 20)
    assert driver.zfs is not None
    driver.zfs.settle()  # the snapshot's deferred destroy runs beside the create
    snapshots = zfs("list", "-H", "-t", "snapshot", "-o", "name,defer_destroy").split("\n")
    assert f"{parent}/base@rw\ton" in snapshots  # goes with its clone
    root = home / "graph" / "rw"
    assert host.is_mounted(root)  # a container's layer is created mounted (idle until the first get)
    assert driver.get("rw") == root
    assert (root / "f").read_text() == "base"
    assert driver.metadata("rw") == {"Dataset": f"{parent}/rw", "Mountpoint": str(home / "graph" / "rw")}
    driver.put("rw")
    assert not host.is_mounted(root)
    assert zfs("get", "-H", "-o", "value", "mountpoint", f"{parent}/rw").strip() == "none"
    driver.remove("rw")
    driver.remove("base")
    assert zfs("list", "-H", "-r", "-t", "all", "-o", "name", parent).split() == [parent]


def test_explicit_fsname(pool: ZfsPool, data_root: Path) -> None:
    with zfs_dataset(pool, "elsewhere"):
        driver = ZfsStorageDriver.init(data_root / "zfs", {"fsname": f"{pool.name}/elsewhere"})
        driver.create("base", None)
        assert zfs("list", "-H", "-o", "name", f"{pool.name}/elsewhere/base").strip()
        driver.remove("base")
    with pytest.raises(InvalidParameter, match=r"cannot open \S+/missing"):
        ZfsStorageDriver.init(data_root / "zfs", {"fsname": f"{pool.name}/missing"})


def test_quota_is_enforced(data_root: Path) -> None:
    driver = ZfsStorageDriver.init(data_root / "zfs", {})
    driver.create("base", None)
    driver.create_read_write("rw", "base", CreateOpts(storage_opt={"size": "4M"}))
    root = driver.get("rw")
    try:
        with pytest.raises(OSError) as info:
            (root / "big").write_bytes(os.urandom(16 << 20))
        assert info.value.errno in (errno.EDQUOT, errno.ENOSPC)
    finally:
        driver.put("rw")
    driver.remove("rw")
    driver.remove("base")


def test_a_busy_layer_stays_mounted_until_removed(data_root: Path) -> None:
    """A bound socket keeps the mount busy: put() leaves it mounted, remove() detaches and destroys."""
    driver = ZfsStorageDriver.init(data_root / "zfs", {})
    driver.create("base", None)
    root = driver.get("base")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.fspath(root / "sock"))
        driver.put("base")
        assert host.is_mounted(root)
        assert driver.get("base") == root  # the idle mount is reused
        driver.put("base")
    finally:
        sock.close()
    driver.remove("base")
    assert not host.is_mounted(root) and not driver.exists("base")


def test_mounts_of_a_killed_daemon_are_adopted(data_root: Path) -> None:
    first = ZfsStorageDriver.init(data_root / "zfs", {})
    first.create("base", None)
    root = first.get("base")
    (root / "kept").write_text("kept")
    # the daemon dies here: no put(), no cleanup(); zfs-fuse keeps the mount
    second = ZfsStorageDriver.init(data_root / "zfs", {})
    assert second.exists("base") and host.is_mounted(root)
    assert second.get("base") == root and (root / "kept").read_text() == "kept"
    second.put("base")
    assert not host.is_mounted(root)
    second.remove("base")


def test_a_mountpoint_left_without_its_mount_is_cleared(pool: ZfsPool, data_root: Path) -> None:
    first = ZfsStorageDriver.init(data_root / "zfs", {})
    first.create("base", None)
    dataset = f"{pool.name}/{data_root.name}/base"
    zfs("set", f"mountpoint={data_root}/zfs/graph/base", dataset)  # as a crash between set and mount
    zfs("umount", dataset)
    second = ZfsStorageDriver.init(data_root / "zfs", {})
    assert zfs("get", "-H", "-o", "value", "mountpoint", dataset).strip() == "none"
    assert (second.get("base") / ".").is_dir()  # mounts again where it should
    second.put("base")
    second.remove("base")


def test_options_are_checked(data_root: Path) -> None:
    with pytest.raises(InvalidParameter, match=r"zfs: unknown option zfs\.nope"):
        ZfsStorageDriver.init(data_root / "zfs", {"nope": "1"})
    with pytest.raises(InvalidParameter, match="is not a dataset name"):
        ZfsStorageDriver.init(data_root / "zfs", {"fsname": "/tmp/x"})
    driver = ZfsStorageDriver.init(data_root / "zfs", {})
    driver.create("base", None)
    with pytest.raises(InvalidParameter, match="Unknown option foo"):
        driver.create_read_write("rw", "base", CreateOpts(storage_opt={"foo": "1"}))
    with pytest.raises(InvalidParameter, match="invalid size"):
        driver.create_read_write("rw", "base", CreateOpts(storage_opt={"size": "big"}))
    assert not driver.exists("rw")
    driver.remove("base")


def test_refuses_a_data_root_not_on_zfs(tmp_path: Path) -> None:
    with pytest.raises(PrerequisitesNotMet, match=r"wrong filesystem\?.* is not on zfs"):
        ZfsStorageDriver.init(tmp_path / "data" / "zfs", {})
    assert not (tmp_path / "data").exists()


def test_status_as_dockerd_shows_it_and_names_the_path(pool: ZfsPool, data_root: Path) -> None:
    driver = ZfsStorageDriver.init(data_root / "zfs", {})
    status = dict(driver.status())
    assert list(status) == [
        "Zpool",
        "Zpool Health",
        "Parent Dataset",
        "Space Used By Parent",
        "Space Available",
        "Parent Quota",
        "Compression",
        "Backend",
    ]
    assert status["Zpool"] == pool.name and status["Zpool Health"] == "ONLINE"
    assert status["Parent Dataset"] == f"{pool.name}/{data_root.name}"
    assert int(status["Space Used By Parent"]) > 0 and int(status["Space Available"]) > 0
    assert status["Parent Quota"] == "no" and status["Compression"] == "off"
    # zfs-fuse has no libzfs_core: the command path ran, and docker info says why
    assert status["Backend"].startswith("zfs command (")
