"""Full disks (issue 14, item 4): data-root, exec-root and a volume on small tmpfs mounts (size=...).

When a state change cannot be written the answer says so in Go's words (``...: no space left on
device``), disk and reality agree (a start that could not be recorded leaves no running container),
temp files of the atomic writes are removed (and swept at start-up), and everything works again once
space returns."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

NAME_PREFIX = "rd-"


def tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711", "tmpfs", str(path)], check=True)


class Filler:
    """Fills a filesystem to the last byte, and gives the space back."""

    def __init__(self, mount: Path) -> None:
        self.file = mount / "filler"

    def fill(self) -> None:
        fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 16, 512, 1):  # big blocks, then the last bytes
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self.file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def small_disks(busybox_tar: bytes) -> Iterator[tuple[EngineDaemon, DockerCLI, Path, Path]]:
    root = Path(tempfile.mkdtemp(prefix="engine-disk-", dir="/tmp"))
    data, exec_root = root / "data", root / "exec"
    mounted: list[Path] = []
    daemon = None
    try:
        tmpfs(data, "96m")
        mounted.append(data)
        tmpfs(exec_root, "8m")
        mounted.append(exec_root)
        daemon = EngineDaemon(
            root=root,
            config={"storage-driver": "overlay2", "data-root": str(data), "exec-root": str(exec_root)},
        )
        daemon.start()
        docker = DockerCLI(daemon.host, config_dir=root / "docker-config")
        docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_tar)
        yield daemon, docker, data, exec_root
    finally:
        code = daemon.stop() if daemon is not None else 0
        log = daemon.log() if daemon is not None else ""
        if daemon is not None:
            for mountpoint in reversed(sorted(m for m in _mounts_under(root) if Path(m) not in mounted)):
                subprocess.run(["umount", "-l", mountpoint], check=False)
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)
        if daemon is not None:
            daemon.cleanup()
        subprocess.run(["rm", "-rf", str(root)], check=False)
        assert code == 0, log


def _mounts_under(root: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4]
        if mountpoint.startswith(str(root) + "/"):
            found.append(mountpoint)
    return found


def temp_files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*.tmp*") if "/overlay2/" not in str(p)]


def running(docker: DockerCLI, name: str) -> bool:
    return json.loads(docker("inspect", name).stdout)[0]["State"]["Running"]


def runc_containers(exec_root: Path) -> list[str]:
    """What runc itself knows of (the truth, whatever the daemon's state files say)."""
    roots = [p for p in exec_root.rglob("state.json")]
    return [str(p.parent.name) for p in roots]


def test_start_on_full_data_root_says_so_and_leaves_nothing_running(small_disks, name):
    daemon, docker, data, exec_root = small_disks
    docker("create", "--name", name, "--network", "none", "busybox", "sleep", "1000")
    filler = Filler(data)
    try:
        filler.fill()
        result = docker.run("start", name)
        assert result.returncode != 0
        assert "no space left on device" in result.stderr, result.stderr
        assert "Errno" not in result.stderr, result.stderr
        assert not running(docker, name)
        assert runc_containers(exec_root) == []
        assert temp_files(data) == []
        assert "Traceback" not in daemon.log()
    finally:
        filler.free()
    docker("start", name)  # space is back: it works
    assert running(docker, name)
    docker("rm", "-f", name)


def test_create_on_full_data_root_leaves_no_half_container(small_disks, name):
    _, docker, data, _ = small_disks
    before = docker("ps", "-aq").lines()
    filler = Filler(data)
    try:
        filler.fill()
        result = docker.run("create", "--name", name, "--network", "none", "busybox", "true")
        assert result.returncode != 0
        assert "no space left on device" in result.stderr, result.stderr
        assert docker("ps", "-aq").lines() == before
        assert temp_files(data) == []
    finally:
        filler.free()
    docker("create", "--name", name, "--network", "none", "busybox", "true")
    docker("rm", name)


def test_start_on_full_exec_root_says_so(small_disks, name):
    _, docker, _, exec_root = small_disks
    docker("create", "--name", name, "--network", "none", "busybox", "sleep", "1000")
    filler = Filler(exec_root)
    try:
        filler.fill()
        result = docker.run("start", name)
        assert result.returncode != 0
        assert "no space left on device" in result.stderr, result.stderr
        assert "Errno" not in result.stderr, result.stderr
        assert not running(docker, name)
        assert temp_files(exec_root) == []
        assert not (exec_root / "containers").exists() or not any(
            p.name.startswith(docker("inspect", "-f", "{{.Id}}", name).out)
            for p in (exec_root / "containers").iterdir()
        )
    finally:
        filler.free()
    docker("start", name)
    assert running(docker, name)
    docker("rm", "-f", name)


def test_volume_create_on_full_data_root(small_disks):
    _, docker, data, _ = small_disks
    filler = Filler(data)
    try:
        filler.fill()
        result = docker.run("volume", "create", "rd-full")
        assert result.returncode != 0
        assert "no space left on device" in result.stderr, result.stderr
        assert temp_files(data) == []
    finally:
        filler.free()
    docker.run("volume", "rm", "rd-full")


def test_temp_files_are_swept_at_start_up(small_disks, name):
    """A kill -9 mid-write leaves ``.*.tmp-*`` files: the next start-up removes them."""
    daemon, docker, data, _ = small_disks
    docker("create", "--name", name, "--network", "none", "busybox", "true")
    container_id = docker("inspect", "-f", "{{.Id}}", name).out
    stray = [
        data / "containers" / container_id / ".config.v2.json.tmp-1-2",
        data / "volumes" / ".stray.tmp-3",
    ]
    for path in stray:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    assert daemon.stop() == 0
    daemon.start()
    assert [p for p in stray if p.exists()] == []
    docker("rm", name)


def test_os_filler_helper_really_fills(tmp_path):
    """The helper the tests rely on: after fill() the filesystem has no byte left."""
    mount = tmp_path / "m"
    tmpfs(mount, "1m")
    try:
        Filler(mount).fill()
        assert os.statvfs(mount).f_bavail == 0
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_start_that_cannot_be_recorded_stops_the_container_again(small_disks, name):
    """Space for everything a start writes before the runtime starts, but not for the final state: the
    daemon stops the container again and says so. The free space is stepped page by page until the
    start fails at that last write."""
    daemon, docker, data, exec_root = small_disks
    docker("create", "--name", name, "--network", "none", "busybox", "sleep", "1000")
    filler = Filler(data)
    outcomes = []
    try:
        for pages in range(0, 24):
            filler.fill()
            os.truncate(filler.file, max(0, filler.file.stat().st_size - pages * 4096))
            result = docker.run("start", name)
            if result.returncode == 0:
                outcomes.append("started")
                break
            outcomes.append(result.stderr.strip().splitlines()[0])
            assert "no space left on device" in result.stderr, result.stderr
            assert not running(docker, name)
            assert runc_containers(exec_root) == []
            assert temp_files(data) == []
            filler.free()
    finally:
        filler.free()
    assert any("failed to record its state" in o and "stopped again" in o for o in outcomes), outcomes
    assert "Traceback" not in daemon.log()
    docker("rm", "-f", name)


def test_exec_on_full_exec_root_says_so(small_disks, name):
    _, docker, _, exec_root = small_disks
    docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1000")
    container_id = docker("inspect", "-f", "{{.Id}}", name).out
    filler = Filler(exec_root)
    try:
        filler.fill()
        result = docker.run("exec", name, "true")
        assert result.returncode != 0
        said = result.stdout + result.stderr  # the CLI prints an exec start's error from the stream
        assert "no space left on device" in said, said
        exec_dirs = exec_root / "containers" / container_id / "exec"
        assert not exec_dirs.exists() or list(exec_dirs.iterdir()) == []
        assert temp_files(exec_root) == []
    finally:
        filler.free()
    assert docker("exec", name, "echo", "back").out == "back"
    docker("rm", "-f", name)
