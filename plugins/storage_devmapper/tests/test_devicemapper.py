"""engine-plugin-devicemapper: options, refusal on a kernel without dm-thin (the host), and, in the
qemu guest of `make test-guest-devicemapper`, what the conformance suite does not look at: dockerd's
metadata layout, a restart, DriverStatus, dm.min_free_space, dm.thinpooldev."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from engine_plugin_devicemapper import dmsetup, host
from engine_plugin_devicemapper.driver import DeviceMapperStorageDriver

from engine.config import DaemonConfig
from engine.errors import (
    ConfigError,
    DriverNotSupported,
    DriverRemoved,
    InvalidParameter,
    PrerequisitesNotMet,
    SystemError,
)
from engine.registry import STORAGE, DriverRegistry
from engine.storage import driver_options, start_storage_driver

SMALL = {"basesize": "256M", "loopdatasize": "2G", "loopmetadatasize": "64M"}


def dm_thin_here() -> bool:
    try:
        return os.geteuid() == 0 and "thin-pool" in dmsetup.targets()
    except dmsetup.CommandError:
        return False


needs_dm = pytest.mark.skipif(not dm_thin_here(), reason="no dm-thin in this kernel: runs in the qemu guest")


# -- everywhere ----------------------------------------------------------------------------------------


def test_loads_only_when_named() -> None:
    registry = DriverRegistry(STORAGE)
    assert registry.load("devicemapper") is DeviceMapperStorageDriver
    with pytest.raises(DriverRemoved, match="deprecated"):
        registry.load("devicemapper", explicit=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nosuchkey": "1"}, "Unknown option nosuchkey"),
        ({"basesize": "ten"}, "dm.basesize"),
        ({"loopdatasize": "0"}, "dm.loopdatasize"),
        ({"loopmetadatasize": "-1"}, "dm.loopmetadatasize"),
        ({"fs": "btrfs"}, "dm.fs"),
        ({"min_free_space": "10"}, "dm.min_free_space"),
        ({"min_free_space": "100%"}, "dm.min_free_space"),
        ({"blocksize": "100K"}, "dm.blocksize"),
        ({"use_deferred_removal": "true"}, "dm.use_deferred_removal"),
        ({"thinpooldev": "pool", "loopdatasize": "1G"}, "dm.loopdatasize"),
        ({"thinpooldev": "pool", "directlvm_device": "/dev/vdb"}, "direct-lvm"),
    ],
)
def test_bad_options_stop_start_up_naming_the_key(tmp_path: Path, options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        DeviceMapperStorageDriver.init(tmp_path / "devicemapper", options)
    assert not (tmp_path / "devicemapper").exists()


def daemon_config(tmp_path: Path, *opts: str) -> DaemonConfig:
    values = {"storage-driver": "devicemapper", "data-root": str(tmp_path), "storage-opts": list(opts)}
    return DaemonConfig(values=values)


def test_storage_opts_use_the_dm_prefix(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, "dm.basesize=20G", "dm.min_free_space=5%")
    names = DriverRegistry(STORAGE).names()
    assert driver_options("devicemapper", config, names) == {"basesize": "20G", "min_free_space": "5%"}
    with pytest.raises(ConfigError, match=r"overlay2\.size"):
        driver_options("devicemapper", daemon_config(tmp_path, "overlay2.size=1G"), names)


@pytest.mark.skipif(dm_thin_here(), reason="this kernel has dm-thin")
def test_refuses_to_start_without_dm_thin_and_says_why(tmp_path: Path) -> None:
    """The host of `make test`: no device-mapper in its kernel (or no root)."""
    with pytest.raises(DriverNotSupported) as info:
        DeviceMapperStorageDriver.init(tmp_path / "devicemapper", {})
    if os.geteuid() != 0:
        assert isinstance(info.value, PrerequisitesNotMet) and "root" in info.value.message
    else:
        assert "device-mapper" in info.value.message or "thin-pool" in info.value.message
    assert not (tmp_path / "devicemapper").exists()


# -- in the guest ------------------------------------------------------------------------------------


@pytest.fixture
def make_driver(tmp_path: Path):
    made: list[DeviceMapperStorageDriver] = []

    def make(**options: str) -> DeviceMapperStorageDriver:
        driver = DeviceMapperStorageDriver.init(tmp_path / "devicemapper", {**SMALL, **options})
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.cleanup()


@needs_dm
def test_status_rows_as_dockerd(make_driver) -> None:
    driver = make_driver()
    rows = driver.status()
    names = [name for name, _ in rows]
    assert names[:5] == ["Pool Name", "Pool Blocksize", "Base Device Size", "Backing Filesystem", "Udev Sync Supported"]
    for name in (
        "Data file",
        "Metadata file",
        "Data Space Used",
        "Data Space Total",
        "Data Space Available",
        "Metadata Space Used",
        "Metadata Space Total",
        "Metadata Space Available",
        "Thin Pool Minimum Free Space",
        "Deferred Removal Enabled",
        "Data loop file",
        "Metadata loop file",
        "Library Version",
    ):
        assert name in names
    status = dict(rows)
    assert status["Pool Name"] == driver.pool.name and status["Pool Name"].endswith("-pool")
    assert status["Pool Blocksize"] == "65.54kB"
    assert status["Base Device Size"] == "268.4MB"
    assert status["Backing Filesystem"] == "ext4"
    assert status["Data Space Total"] == "2.147GB"
    assert status["Data file"].startswith("/dev/loop")
    assert status["Data loop file"] == str(driver.home / "devmapper" / "data")


@needs_dm
def test_metadata_layout_and_restart(make_driver, tmp_path: Path) -> None:
    driver = make_driver()
    driver.create("l1", None)
    root = driver.get("l1")
    (root / "f").write_text("kept")
    driver.put("l1")
    driver.create("l2", "l1")
    meta = tmp_path / "devicemapper" / "metadata"
    record = json.loads((meta / "l2").read_text())
    assert set(record) == {"device_id", "size", "transaction_id", "initialized", "deleted"}
    assert json.loads((meta / "base").read_text())["initialized"] is True
    deviceset = json.loads((meta / "deviceset-metadata").read_text())
    assert deviceset["next_device_id"] > record["device_id"]
    assert deviceset["BaseDeviceFilesystem"] == "ext4"
    assert not (meta / "transaction-metadata").exists()
    pool = driver.pool.name
    assert dmsetup.pool_status(pool).transaction_id == record["transaction_id"]
    driver.cleanup()
    assert not dmsetup.exists(pool)

    again = make_driver()
    assert again.exists("l1") and again.exists("l2")
    root = again.get("l2")
    try:
        assert (root / "f").read_text() == "kept"
    finally:
        again.put("l2")
    again.remove("l2")
    again.remove("l1")
    assert sorted(p.name for p in meta.iterdir()) == ["base", "deviceset-metadata"]


@needs_dm
def test_snapshot_of_a_mounted_parent(make_driver) -> None:
    driver = make_driver()
    driver.create("parent", None)
    root = driver.get("parent")
    try:
        (root / "f").write_text("before")
        os.sync()
        driver.create("child", "parent")  # the parent's device is suspended around create_snap
        (root / "f").write_text("after")
    finally:
        driver.put("parent")
    child = driver.get("child")
    try:
        assert (child / "f").read_text() == "before"
    finally:
        driver.put("child")
    driver.remove("child")
    driver.remove("parent")


@needs_dm
def test_min_free_space_refuses_new_devices(make_driver) -> None:
    driver = make_driver(loopdatasize="100M", min_free_space="30%")
    assert dict(driver.status())["Thin Pool Minimum Free Space"] == "31.46MB"
    driver.create("l1", None)
    root = driver.get("l1")
    try:
        (root / "big").write_bytes(b"x" * (60 << 20))  # with the base's filesystem: over 70% of the pool
    finally:
        driver.put("l1")
    with pytest.raises(SystemError, match=r"free data blocks.*dm\.min_free_space"):
        driver.create("l2", "l1")
    assert not driver.exists("l2")
    driver.remove("l1")


@needs_dm
def test_the_daemon_starts_it_with_dm_options(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, *(f"dm.{key}={value}" for key, value in SMALL.items()))
    driver = start_storage_driver(config, DriverRegistry(STORAGE))
    try:
        assert isinstance(driver, DeviceMapperStorageDriver)
        assert driver.home == tmp_path / "devicemapper"
        assert dict(driver.status())["Base Device Size"] == "268.4MB"
    finally:
        driver.cleanup()


@needs_dm
def test_directlvm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PrerequisitesNotMet, match=r"dm\.thinpooldev"):
        DeviceMapperStorageDriver.init(tmp_path / "devicemapper", {"directlvm_device": "/dev/vdb"})


@pytest.fixture
def own_pool(tmp_path: Path):
    """A thin pool made the administrator's way (dmsetup over two loop devices), for dm.thinpooldev."""
    files = []
    for name, size in (("meta", 64 << 20), ("data", 1 << 30)):
        path = tmp_path / name
        with open(path, "wb") as f:
            f.truncate(size)
        files.append(dmsetup.attach_loop(str(path)))
    meta, data = files
    name = f"testpool-{os.getpid()}"
    dmsetup.create(name, f"0 {dmsetup.sectors(data)} thin-pool {meta} {data} 128 32768 1 skip_block_zeroing")
    yield name
    dmsetup.remove(name)
    for loop in files:
        dmsetup.detach_loop(loop)


@needs_dm
def test_thinpooldev_uses_the_given_pool_and_leaves_it(own_pool: str, tmp_path: Path) -> None:
    driver = DeviceMapperStorageDriver.init(tmp_path / "devicemapper", {"thinpooldev": f"/dev/mapper/{own_pool}"})
    try:
        status = dict(driver.status())
        assert status["Pool Name"] == own_pool
        assert "Data file" not in status and "Data loop file" not in status
        driver.create("l1", None)
        root = driver.get("l1")
        (root / "f").write_text("x")
        driver.put("l1")
        driver.remove("l1")
    finally:
        driver.cleanup()
    assert dmsetup.exists(own_pool)
    assert not (tmp_path / "devicemapper" / "devmapper").exists()
    assert driver.prefix not in dmsetup.dmsetup("ls")  # no thin device left active


def test_host_check_names_the_control_node() -> None:
    assert str(host.CONTROL) == "/dev/mapper/control"


def test_defaults_are_dockerds() -> None:
    from engine_plugin_devicemapper.options import parse

    opts = parse({})
    assert (opts.base_size, opts.loop_data_size, opts.loop_metadata_size) == (10 << 30, 100 << 30, 2 << 30)
    assert (opts.fs, opts.min_free_space, opts.block_size) == ("ext4", 10, 128)
    opts = parse({"dm.thinpooldev": "/dev/mapper/pool", "mkfsarg": "-m0", "blocksize": "512K"})
    assert (opts.thin_pool_dev, opts.mkfs_args, opts.block_size) == ("pool", ("-m0",), 1024)


def test_metadata_records_are_written_atomically_in_dockerds_layout(tmp_path: Path) -> None:
    from engine_plugin_devicemapper.metadata import DeviceInfo, MetadataStore, Transaction

    store = MetadataStore(tmp_path / "metadata")
    store.save_device("base", DeviceInfo(device_id=1, size=10, transaction_id=1, initialized=True))
    store.save_device("abc", DeviceInfo(device_id=2, size=10, transaction_id=2))
    store.save_set({"next_device_id": 3, "BaseDeviceUUID": "", "BaseDeviceFilesystem": "ext4"})
    store.begin(Transaction(3, "def", 3))
    assert json.loads((tmp_path / "metadata" / "abc").read_text()) == {
        "device_id": 2,
        "size": 10,
        "transaction_id": 2,
        "initialized": False,
        "deleted": False,
    }
    assert store.open_transaction() == Transaction(3, "def", 3)
    assert sorted(store.load_devices()) == ["abc", "base"]  # not the set nor the transaction
    store.end()
    assert store.open_transaction() is None
    assert not [p for p in (tmp_path / "metadata").iterdir() if p.name.startswith(".")]
