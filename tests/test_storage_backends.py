"""btrfs and zfs end to end: an engined whose data-root is on the real backend (a loop-mounted
btrfs; a zfs-fuse pool), driven with the docker CLI through import, run, commit, save and load,
plus what `docker info` shows, a per-container size limit, and a bad storage-opt refusing start-up.

Each backend is built for the module and taken down after it (unmount, losetup -d; zpool destroy,
zfs-fuse stopped by its PID), and the daemon must leave nothing mounted on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from engine_testkit.backends import BackendUnavailable, btrfs_loop, zfs_dataset, zfs_pool
from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon, mounts_under

pytestmark = [pytest.mark.privileged, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

NAME_PREFIX = "storagebk-"


@pytest.fixture(scope="module", params=["btrfs", "zfs"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """(driver name, a directory on that backend for the daemon's data-root)."""
    driver = request.param
    with ExitStack() as stack:
        try:
            if driver == "btrfs":
                place = stack.enter_context(btrfs_loop())
            else:
                pool = stack.enter_context(zfs_pool())
                place = stack.enter_context(zfs_dataset(pool, "engine"))
        except BackendUnavailable as exc:
            pytest.skip(f"no {driver} here: {exc}")
        yield driver, place


@pytest.fixture(scope="module")
def daemon(backend: tuple[str, Path]) -> Iterator[EngineDaemon]:
    driver, place = backend
    data_root = place / "data"
    engined = EngineDaemon(config={"storage-driver": driver, "data-root": str(data_root)})
    engined.start(timeout=60)
    try:
        yield engined
    finally:
        code = engined.stop()
        try:
            assert code == 0, engined.log()
            assert not mounts_under(data_root), "engined left mounts on the backend"
        finally:
            engined.cleanup()


@pytest.fixture(scope="module")
def docker(daemon: EngineDaemon, tmp_path_factory: pytest.TempPathFactory) -> DockerCLI:
    return DockerCLI(daemon.host, config_dir=tmp_path_factory.mktemp("docker-config"))


def test_docker_info_shows_the_driver(docker: DockerCLI, backend: tuple[str, Path]) -> None:
    driver, _ = backend
    info = json.loads(docker("info", "--format", "{{json .}}").out)
    assert info["Driver"] == driver
    rows = dict(info["DriverStatus"])
    if driver == "btrfs":
        assert list(rows) == ["Build Version", "Library Version"]
        assert rows["Build Version"].startswith("Btrfs v")
    else:
        assert rows["Zpool Health"] == "ONLINE" and rows["Parent Dataset"].endswith("/engine")
        assert rows["Backend"].startswith("zfs command (")  # zfs-fuse: no libzfs_core


def test_import_run_commit_save_load(docker: DockerCLI, tmp_path: Path) -> None:
    image, committed = f"{NAME_PREFIX}busybox:1", f"{NAME_PREFIX}committed:1"
    container = f"{NAME_PREFIX}c1"
    docker("import", "-c", 'CMD ["sh"]', "-", image, input=busybox_rootfs_tar())
    try:
        assert docker("run", "--rm", image, "sh", "-c", "echo hello > /tmp/f && cat /tmp/f").out == "hello"
        docker("run", "--name", container, image, "sh", "-c", "echo kept > /kept && rm /etc/group")
        assert {line.split()[1] for line in docker("diff", container).lines()} >= {"/kept", "/etc/group"}
        docker("commit", container, committed)
        docker("rm", container)
        out = docker("run", "--rm", committed, "sh", "-c", "cat /kept; test -e /etc/group || echo gone").out
        assert out.split() == ["kept", "gone"]
        archive = tmp_path / "saved.tar"
        docker("save", "-o", str(archive), committed)
        docker("rmi", committed)
        assert f"Loaded image: {committed}" in docker("load", "-i", str(archive)).out
        out = docker("run", "--rm", committed, "sh", "-c", "cat /kept; test -e /etc/group || echo gone").out
        assert out.split() == ["kept", "gone"]
    finally:
        docker.run("rm", "-f", container)
        docker.run("rmi", "-f", committed, image)


def test_storage_opt_size_limits_a_container(docker: DockerCLI) -> None:
    image = f"{NAME_PREFIX}busybox:size"
    docker("import", "-c", 'CMD ["sh"]', "-", image, input=busybox_rootfs_tar())
    try:
        result = docker.run(
            "run", "--rm", "--storage-opt", "size=8M", image, "sh", "-c", "dd if=/dev/zero of=/big bs=1M count=32"
        )
        assert result.returncode != 0
        assert "quota exceeded" in result.stderr.lower() or "no space" in result.stderr.lower(), result.stderr
        small = docker(
            "run", "--rm", "--storage-opt", "size=64M", image, "sh", "-c", "dd if=/dev/zero of=/f bs=1M count=4"
        )
        assert small.returncode == 0
    finally:
        docker.run("rmi", "-f", image)


def test_a_bad_storage_opt_stops_start_up(backend: tuple[str, Path], tmp_path: Path) -> None:
    driver, place = backend
    engined = EngineDaemon(
        config={"storage-driver": driver, "data-root": str(place / "other"), "storage-opts": [f"{driver}.bogus=1"]}
    )
    try:
        with pytest.raises(RuntimeError, match=rf"unknown option {driver}\.bogus"):
            engined.start(timeout=30)
    finally:
        engined.stop()
        engined.cleanup()


@pytest.mark.skipif("aufs" in Path("/proc/filesystems").read_text().split(), reason="this kernel has aufs")
def test_aufs_refuses_to_start_and_says_why() -> None:
    engined = EngineDaemon(config={"storage-driver": "aufs"})
    try:
        with pytest.raises(RuntimeError) as info:
            engined.start(timeout=30)
        assert "driver not supported: aufs: AUFS was not found in /proc/filesystems" in str(info.value)
    finally:
        engined.stop()
        engined.cleanup()
