"""btrfs driver specifics on a real loop-mounted btrfs: dockerd's layout, snapshots, nested
subvolumes, qgroup limits, btrfs.min_space, option checks, the refusal off btrfs, DriverStatus."""

from __future__ import annotations

import errno
import os
import re
import subprocess
from pathlib import Path

import btrfsutil
import pytest
from engine_plugin_btrfs.driver import BtrfsStorageDriver

from engine.drivers.storage import CreateOpts
from engine.errors import InvalidParameter, PrerequisitesNotMet

pytestmark = pytest.mark.privileged


def test_layout_is_dockerds(data_root: Path) -> None:
    home = data_root / "btrfs"
    driver = BtrfsStorageDriver.init(home, {})
    driver.create("base", None)
    (driver.get("base") / "f").write_text("base")
    driver.create("child", "base")
    driver.create_read_write("rw", "child", CreateOpts(storage_opt={"size": "64M"}))
    assert sorted(os.listdir(home)) == ["quotas", "subvolumes"]
    assert sorted(os.listdir(home / "subvolumes")) == ["base", "child", "rw"]
    for layer in ("base", "child", "rw"):
        assert btrfsutil.is_subvolume(os.fspath(home / "subvolumes" / layer))
    info = btrfsutil.subvolume_info(os.fspath(home / "subvolumes" / "child"))
    assert info.parent_uuid == btrfsutil.subvolume_info(os.fspath(home / "subvolumes" / "base")).uuid  # a snapshot
    assert (home / "quotas" / "rw").read_text() == str(64 << 20)
    assert driver.get("rw") == home / "subvolumes" / "rw"  # nothing is mounted
    assert (driver.get("rw") / "f").read_text() == "base"
    assert driver.metadata("rw") == {}
    for layer in ("rw", "child", "base"):
        driver.remove(layer)
    assert os.listdir(home / "subvolumes") == [] and os.listdir(home / "quotas") == []


def test_removes_subvolumes_a_container_made(data_root: Path) -> None:
    driver = BtrfsStorageDriver.init(data_root / "btrfs", {})
    driver.create("base", None)
    driver.create_read_write("rw", "base")
    root = driver.get("rw")
    btrfsutil.create_subvolume(os.fspath(root / "inner"))
    btrfsutil.create_snapshot(os.fspath(root / "inner"), os.fspath(root / "inner-ro"), read_only=True)
    driver.remove("rw")
    driver.remove("base")
    assert not driver.exists("rw")
    top = os.fspath(data_root.parent)  # the filesystem's top subvolume
    assert [path for path, _ in btrfsutil.SubvolumeIterator(top) if path.startswith(data_root.name)] == []


def test_min_space_and_size_limits(data_root: Path) -> None:
    driver = BtrfsStorageDriver.init(data_root / "btrfs", {"min_space": "10M"})
    assert driver.quota_enabled  # btrfs.min_space turns qgroups on at start, as dockerd
    driver.create("base", None)
    with pytest.raises(InvalidParameter, match=r"storage size cannot be less than 10\.49MB"):
        driver.create_read_write("small", "base", CreateOpts(storage_opt={"size": "5M"}))
    assert not driver.exists("small")
    driver.create_read_write("big", "base", CreateOpts(storage_opt={"size": "12M"}))
    root = driver.get("big")
    (root / "fits").write_bytes(os.urandom(6 << 20))
    with pytest.raises(OSError) as info:
        (root / "too-much").write_bytes(os.urandom(8 << 20))
    assert info.value.errno == errno.EDQUOT
    qgroups = subprocess.run(["btrfs", "qgroup", "show", "-r", os.fspath(data_root)], capture_output=True, text=True)
    subvolume_id = btrfsutil.subvolume_id(os.fspath(root))
    assert re.search(rf"0/{subvolume_id}\s.*12\.00MiB", qgroups.stdout)
    driver.remove("big")
    driver.remove("base")
    driver.cleanup()
    qgroups = subprocess.run(["btrfs", "qgroup", "show", os.fspath(data_root)], capture_output=True, text=True)
    # gone, or (while the kernel still frees the blocks) stale: it limits nothing either way
    line = next((line for line in qgroups.stdout.splitlines() if line.startswith(f"0/{subvolume_id} ")), "")
    assert not line or "<stale>" in line


def test_options_are_checked(data_root: Path) -> None:
    with pytest.raises(InvalidParameter, match=r"btrfs: unknown option btrfs\.nope"):
        BtrfsStorageDriver.init(data_root / "btrfs", {"nope": "1"})
    with pytest.raises(InvalidParameter, match=r"btrfs: invalid value for btrfs\.min_space: invalid size: 'lots'"):
        BtrfsStorageDriver.init(data_root / "btrfs", {"min_space": "lots"})
    driver = BtrfsStorageDriver.init(data_root / "btrfs", {})
    driver.create("base", None)
    with pytest.raises(InvalidParameter, match="Unknown option foo"):
        driver.create_read_write("rw", "base", CreateOpts(storage_opt={"foo": "1"}))
    with pytest.raises(InvalidParameter, match="invalid size"):
        driver.create_read_write("rw", "base", CreateOpts(storage_opt={"size": "big"}))
    assert not driver.exists("rw")
    driver.remove("base")


def test_refuses_a_data_root_not_on_btrfs(tmp_path: Path) -> None:
    with pytest.raises(PrerequisitesNotMet, match=r"wrong filesystem\?.* is not on btrfs"):
        BtrfsStorageDriver.init(tmp_path / "data" / "btrfs", {})
    assert not (tmp_path / "data").exists()


def test_status_as_dockerd_shows_it(data_root: Path) -> None:
    driver = BtrfsStorageDriver.init(data_root / "btrfs", {})
    version = subprocess.run(["btrfs", "--version"], capture_output=True, text=True).stdout.split()[-1]
    status = dict(driver.status())
    assert list(status) == ["Build Version", "Library Version"]
    assert status["Build Version"] == f"Btrfs {version}"
    library = os.path.realpath("/usr/lib/x86_64-linux-gnu/libbtrfsutil.so.1")
    major, minor, patch = (int(x) for x in library.rsplit(".so.", 1)[1].split("."))
    assert status["Library Version"] == str(major * 10000 + minor * 100 + patch)
