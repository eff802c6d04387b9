"""The local volume driver and the volume service on a real directory tree, with real mounts."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidParameter, NotFound, SystemError
from engine.events import EventBus
from engine.volumes import VolumeService
from engine.volumes.mounts import is_mountpoint, parse_options

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")


@pytest.fixture
def events():
    return EventBus()


@pytest.fixture
def service(tmp_path, events):
    svc = VolumeService(tmp_path / "volumes", events)
    svc.start()
    yield svc
    svc.stop()
    leftovers = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(tmp_path) in line]
    assert not leftovers, leftovers


def restarted(service: VolumeService) -> VolumeService:
    service.stop()
    again = VolumeService(service.driver.root, service.events)
    again.start()
    return again


def actions(events: EventBus) -> list[tuple[str, str, str, dict[str, str]]]:
    return [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in events.history()]


# ---- create, get, remove ------------------------------------------------------------------------------


def test_create_lays_out_dockerds_tree(service, tmp_path, events):
    volume = service.create("data", labels={"a": "1"}, driver_opts={})
    assert volume.mountpoint == tmp_path / "volumes" / "data" / "_data"
    assert volume.mountpoint.is_dir()
    assert oct((tmp_path / "volumes").stat().st_mode & 0o777) == "0o701"
    assert oct((tmp_path / "volumes" / "data").stat().st_mode & 0o777) == "0o701"
    assert oct(volume.mountpoint.stat().st_mode & 0o777) == "0o755"
    assert volume.to_api() == {
        "CreatedAt": volume.created_at,
        "Driver": "local",
        "Labels": {"a": "1"},
        "Mountpoint": str(volume.mountpoint),
        "Name": "data",
        "Options": {},
        "Scope": "local",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", volume.created_at)
    assert actions(events) == [("volume", "create", "data", {"driver": "local"})]
    metadata = json.loads((tmp_path / "volumes" / "data" / "volume.json").read_text())
    assert metadata["Labels"] == {"a": "1"} and metadata["References"] == []


def test_create_twice_returns_the_first_volume(service, events):
    first = service.create("data", labels={"a": "1"})
    again = service.create("data", labels={"b": "2"})
    assert again.labels == first.labels == {"a": "1"}
    assert [a for _, a, _, _ in actions(events)] == ["create", "create"]  # dockerd logs both


def test_anonymous_volume(service):
    volume = service.create()
    assert re.fullmatch(r"[0-9a-f]{64}", volume.name)
    assert volume.anonymous and volume.labels is None and volume.options is None
    assert service.get(volume.name).anonymous


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a", "create a: volume name is too short, names should be at least two alphanumeric characters"),
        (
            "../x",
            'create ../x: "../x" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
        ),
        ("-x", 'create -x: "-x" includes invalid characters'),
    ],
)
def test_bad_names(service, name, message):
    with pytest.raises(InvalidParameter) as info:
        service.create(name)
    assert info.value.message.startswith(message)


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"foo": "bar"}, 'create v1: invalid option: "foo"'),
        ({"type": "tmpfs"}, 'create v1: missing required option: "device"'),
        ({"device": "tmpfs"}, 'create v1: missing required option: "type"'),
        ({"o": "size=1m", "type": "tmpfs"}, 'create v1: missing required option: "device"'),
        ({"size": "10m"}, "create v1: quota size requested but no quota support"),
    ],
)
def test_bad_driver_options(service, tmp_path, opts, message):
    with pytest.raises(InvalidParameter) as info:
        service.create("v1", driver_opts=opts)
    assert info.value.message == message
    assert not (tmp_path / "volumes" / "v1").exists()


def test_unknown_driver(service):
    with pytest.raises(NotFound) as info:
        service.create("v1", driver="nfs-plugin")
    assert info.value.message == 'create v1: error looking up volume plugin nfs-plugin: plugin "nfs-plugin" not found'


def test_get_and_remove(service, tmp_path, events):
    service.create("data")
    (service.get("data").mountpoint / "file").write_text("x")
    service.remove("data")
    assert not (tmp_path / "volumes" / "data").exists()
    with pytest.raises(NotFound) as info:
        service.get("data")
    assert info.value.message == "get data: no such volume"
    with pytest.raises(NotFound, match="get data: no such volume"):
        service.remove("data")
    service.remove("data", force=True)  # rm -f of a missing volume is fine
    assert actions(events)[-1] == ("volume", "destroy", "data", {"driver": "local"})


# ---- references ---------------------------------------------------------------------------------------


def test_references_block_removal_and_survive_a_restart(service):
    service.create("data")
    assert service.acquire("data", "c1") == service.get("data").mountpoint
    service.acquire("data", "c2")
    service.acquire("data", "c2")  # idempotent
    with pytest.raises(Conflict) as info:
        service.remove("data")
    assert info.value.message == "remove data: volume is in use - [c1, c2]"
    with pytest.raises(Conflict):
        service.remove("data", force=True)  # force does not override "in use", as in dockerd
    service = restarted(service)
    assert service.references("data") == ["c1", "c2"]
    service.release("data", "c1")
    service.release("data", "c2")
    service.release("data", "c9")  # never referenced: ignored
    service.release("gone", "c1")  # unknown volume: ignored
    service.remove("data")


def test_acquire_a_missing_volume(service):
    with pytest.raises(NotFound, match="get nope: no such volume"):
        service.acquire("nope", "c1")


def test_create_with_a_reference(service):
    volume = service.create(reference="c1")
    assert service.references(volume.name) == ["c1"]
    assert service.prune()["VolumesDeleted"] == []


def test_directory_without_metadata_is_a_volume(tmp_path, events):
    (tmp_path / "volumes" / "old" / "_data").mkdir(parents=True)
    service = VolumeService(tmp_path / "volumes", events)
    service.start()
    assert service.get("old").labels is None
    service.remove("old")


# ---- list filters and prune ---------------------------------------------------------------------------


@pytest.fixture
def populated(service):
    service.create("web-data", labels={"app": "web", "tier": "front"})
    service.create("db-data", labels={"app": "db"})
    service.create("scratch")
    service.acquire("db-data", "c1")
    return service


def names(volumes) -> list[str]:
    return [v.name for v in volumes]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["db-data", "scratch", "web-data"]),
        ({"dangling": ["true"]}, ["scratch", "web-data"]),
        ({"dangling": ["0"]}, ["db-data"]),
        ({"name": ["data"]}, ["db-data", "web-data"]),
        ({"name": ["^s"]}, ["scratch"]),
        ({"label": ["app"]}, ["db-data", "web-data"]),
        ({"label": ["app=web"]}, ["web-data"]),
        ({"label": ["app", "tier=front"]}, ["web-data"]),
        ({"driver": ["local"]}, ["db-data", "scratch", "web-data"]),
        ({"driver": ["other"]}, []),
        ({"name": {"data": True}, "dangling": {"true": True}}, ["web-data"]),
    ],
)
def test_list_filters(populated, filters, expected):
    assert names(populated.list(json.dumps(filters))) == expected


def test_list_filter_errors(populated):
    with pytest.raises(InvalidParameter, match=r"^Invalid filter 'until'$"):
        populated.list('{"until": ["1h"]}')
    with pytest.raises(InvalidParameter, match=r"^Invalid filter 'dangling=\[maybe\]'$"):
        populated.list('{"dangling": ["maybe"]}')


def test_prune_removes_unreferenced_volumes_without_options(populated, events):
    populated.create("tmp", driver_opts={"type": "tmpfs", "device": "tmpfs"})
    (populated.get("scratch").mountpoint / "blob").write_bytes(b"x" * 5000)
    os.link(populated.get("scratch").mountpoint / "blob", populated.get("scratch").mountpoint / "hardlink")
    report = populated.prune()
    assert report == {"VolumesDeleted": ["scratch", "web-data"], "SpaceReclaimed": 5000}
    assert names(populated.list()) == ["db-data", "tmp"]
    assert actions(events)[-1] == ("volume", "prune", "", {"reclaimed": "5000"})


@pytest.mark.parametrize(
    ("filters", "deleted"),
    [
        ({"label": ["app=web"]}, ["web-data"]),
        ({"label!": ["app"]}, ["scratch"]),
        ({"label!": ["app=web"]}, ["scratch"]),
    ],
)
def test_prune_label_filters(populated, filters, deleted):
    assert populated.prune(json.dumps(filters))["VolumesDeleted"] == deleted


def test_prune_filter_errors(populated):
    with pytest.raises(InvalidParameter, match=r"^Invalid filter 'dangling'$"):
        populated.prune('{"dangling": ["true"]}')


def test_disk_usage(populated):
    (populated.get("web-data").mountpoint / "f").write_bytes(b"12345")
    usage = {v["Name"]: v["UsageData"] for v in populated.disk_usage()["Volumes"]}
    assert usage == {
        "db-data": {"Size": 0, "RefCount": 1},
        "scratch": {"Size": 0, "RefCount": 0},
        "web-data": {"Size": 5, "RefCount": 0},
    }


def test_mount_option_parsing():
    assert parse_options("size=64m,uid=1000,ro,nosuid") == (0x1 | 0x2, "size=64m,uid=1000")
    assert parse_options("bind,rw") == (0x1000, "")
    assert parse_options("rbind,rprivate") == (0x1000 | 0x4000 | 0x40000 | 0x4000, "")


@requires_root
def test_tmpfs_volume_is_mounted_at_first_use_and_unmounted_at_last(service):
    volume = service.create("fast", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0750"})
    assert not is_mountpoint(volume.mountpoint)
    service.acquire("fast", "c1")
    assert service.mount("fast", "c1") == volume.mountpoint
    assert is_mountpoint(volume.mountpoint)
    fstype = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE,OPTIONS", str(volume.mountpoint)], capture_output=True, text=True
    ).stdout
    assert fstype.startswith("tmpfs") and "size=1024k" in fstype and "mode=750" in fstype
    service.mount("fast", "c2")
    (volume.mountpoint / "f").write_text("shared")
    service.unmount("fast", "c1")
    assert is_mountpoint(volume.mountpoint) and (volume.mountpoint / "f").read_text() == "shared"
    service.unmount("fast", "c2")
    assert not is_mountpoint(volume.mountpoint)
    assert not (volume.mountpoint / "f").exists()  # the data lived in the tmpfs
    # release drops a mount a reference still holds
    service.mount("fast", "c1")
    service.release("fast", "c1")
    assert not is_mountpoint(volume.mountpoint)
    service.remove("fast")


@requires_root
def test_read_only_bind_volume(service, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "hello").write_text("hi")
    service.create("bound", driver_opts={"type": "none", "device": str(source), "o": "bind,ro"})
    path = service.mount("bound", "c1")
    assert (path / "hello").read_text() == "hi"
    with pytest.raises(OSError, match="Read-only file system"):
        (path / "new").write_text("x")
    service.unmount("bound", "c1")
    assert not (path / "hello").exists()
    service.remove("bound")
    assert (source / "hello").exists()  # removing the volume never touches the bound directory


@requires_root
def test_failed_mount_has_mobys_message(service, tmp_path):
    service.create("broken", driver_opts={"type": "none", "device": str(tmp_path / "missing"), "o": "bind"})
    with pytest.raises(SystemError) as info:
        service.mount("broken", "c1")
    mountpoint = service.get("broken").mountpoint
    assert info.value.message == (
        f"failed to mount local volume: mount {tmp_path / 'missing'}:{mountpoint}, flags: 0x1000: no such file or directory"
    )


@requires_root
def test_stop_unmounts_and_start_cleans_a_crash(service, tmp_path):
    service.create("fast", driver_opts={"type": "tmpfs", "device": "tmpfs"})
    path = service.mount("fast", "c1")
    service.stop()
    assert not is_mountpoint(path)
    # a crash leaves the mount behind: the next start undoes it
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path)], check=True)
    again = VolumeService(tmp_path / "volumes")
    again.start()
    assert not is_mountpoint(path)
