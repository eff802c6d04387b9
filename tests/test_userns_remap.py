"""userns-remap end to end: an engined started with ``"userns-remap": "default"`` (dockerd's
``dockremap`` user, created by the daemon) driven by the docker CLI.

The module saves /etc/subuid and /etc/subgid first and restores them afterwards, and removes the
``dockremap`` user and group if the daemon created them.
"""

from __future__ import annotations

import io
import pwd
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DOCKER, DockerCLI
from engine_testkit.daemon import EngineDaemon

NAME_PREFIX = "ur-"
SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def remap_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineDaemon]:
    saved = {path: path.read_bytes() if path.exists() else None for path in SUBID_FILES}
    had_user = _user_exists("dockremap")
    daemon = EngineDaemon(config={"storage-driver": "overlay2", "userns-remap": "default"})
    daemon.root.chmod(0o711)  # the remapped root must traverse to its layers (mkdtemp made it 0700)
    try:
        daemon.start()
        yield daemon
        code = daemon.stop()
        assert code == 0, daemon.log()
    finally:
        daemon.stop()
        daemon.cleanup()
        if not had_user and _user_exists("dockremap"):
            subprocess.run(["userdel", "dockremap"], check=False)
            subprocess.run(["groupdel", "dockremap"], check=False, capture_output=True)
        for path, content in saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)


@pytest.fixture(scope="module")
def rdocker(remap_daemon: EngineDaemon, tmp_path_factory: pytest.TempPathFactory) -> DockerCLI:
    cli = DockerCLI(remap_daemon.host, config_dir=tmp_path_factory.mktemp("docker-config"))
    cli("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
    return cli


@pytest.fixture(scope="module")
def base() -> int:
    """The host uid of container root: dockremap's first subordinate uid."""
    for line in Path("/etc/subuid").read_text().splitlines():
        name, start, _ = line.split(":")
        if name == "dockremap":
            return int(start)
    raise AssertionError("the daemon made no subuid range for dockremap")


@pytest.fixture
def cname(rdocker: DockerCLI) -> Iterator[str]:
    name = NAME_PREFIX + uuid.uuid4().hex[:10]
    yield name
    rdocker.run("rm", "-f", "-v", name)


def test_default_makes_dockremap_and_a_data_root_per_mapping(remap_daemon: EngineDaemon, base: int, rdocker):
    gid_base = next(
        int(s) for n, s, _ in (ln.split(":") for ln in Path("/etc/subgid").read_text().splitlines()) if n == "dockremap"
    )
    sub = remap_daemon.data_root / f"{base}.{gid_base}"
    assert sub.is_dir()
    assert (sub / "containers").is_dir() and (sub / "overlay2").is_dir()
    assert sub.stat().st_gid == gid_base and sub.stat().st_mode & 0o777 == 0o710
    assert rdocker("info", "--format", "{{.DockerRootDir}}").out == str(sub)
    assert "name=userns" in rdocker("info", "--format", "{{json .SecurityOptions}}").out


def test_root_inside_is_the_subuid_outside(rdocker: DockerCLI, base: int, cname: str):
    out = rdocker("run", "--rm", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map").lines()
    assert out[0] == "0"
    assert out[1].split() == ["0", str(base), "65536"]
    rdocker("run", "-d", "--name", cname, "busybox", "sleep", "300")
    pid = rdocker("inspect", "-f", "{{.State.Pid}}", cname).out
    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(base)] * 4
    # image files are shifted: busybox's /bin/busybox (root-owned in the tar) is owned by the base
    assert rdocker("exec", cname, "stat", "-c", "%u:%g", "/bin/busybox").out == "0:0"


def test_userns_host_runs_as_real_root(rdocker: DockerCLI, base: int):
    out = rdocker(
        "run", "--rm", "--userns=host", "busybox", "sh", "-c", "cat /proc/self/uid_map; stat -c %u /bin"
    ).lines()
    assert out[0].split() == ["0", "0", "4294967295"]
    assert out[1] == str(base)  # the layers stay shifted, as dockerd's


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            "--privileged",
            "privileged mode is incompatible with user namespaces.  You must run the container in the host "
            "namespace when running privileged mode",
        ),
        ("--pid=host", "cannot share the host PID namespace when user namespaces are enabled"),
        ("--network=host", "cannot share the host's network namespace when user namespaces are enabled"),
    ],
)
def test_host_namespaces_need_userns_host(rdocker: DockerCLI, flag: str, message: str):
    result = rdocker.fails("run", "--rm", flag, "busybox", "true")
    assert f"Error response from daemon: {message}" in result.stderr


def test_pid_host_with_userns_host(rdocker: DockerCLI):
    assert rdocker("run", "--rm", "--userns=host", "--pid=host", "busybox", "id", "-u").out == "0"


def test_volume_and_bind_files_have_the_mapped_owner(rdocker: DockerCLI, base: int, cname: str, tmp_path: Path):
    bind = tmp_path / "made-by-run"  # -v creates it, owned by container root
    vol = cname + "-vol"
    try:
        rdocker(
            "run", "--name", cname, "-v", f"{vol}:/vol", "-v", f"{bind}:/bind", "busybox",
            "sh", "-c", "touch /vol/f /bind/f && stat -c %u /vol/f",
        )  # fmt: skip
        mountpoint = Path(rdocker("volume", "inspect", "-f", "{{.Mountpoint}}", vol).out)
        assert (mountpoint / "f").stat().st_uid == base
        assert mountpoint.stat().st_uid == base
        assert bind.stat().st_uid == base and (bind / "f").stat().st_uid == base
    finally:
        rdocker.run("rm", "-f", cname)
        rdocker.run("volume", "rm", vol)


def test_cp_in_and_out_as_dockerd(rdocker: DockerCLI, base: int, cname: str):
    rdocker("run", "-d", "--name", cname, "busybox", "sh", "-c", "touch /tmp/x && chown 5:6 /tmp/x && sleep 300")
    rdocker("exec", cname, "true")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("g")
        info.size, info.uid, info.gid = 3, 7, 8
        tar.addfile(info, io.BytesIO(b"hi\n"))
    rdocker("cp", "-", f"{cname}:/tmp", input=buf.getvalue())
    # in: the tar's ids are the container's
    assert rdocker("exec", cname, "stat", "-c", "%u:%g", "/tmp/g").out == "7:8"
    # out: dockerd 20.10 writes the host's ids (it does not map back)
    out = subprocess.run([DOCKER, "cp", f"{cname}:/tmp/x", "-"], env=rdocker.env, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        member = tar.getmember("x")
    assert (member.uid, member.gid) == (base + 5, base + 6)


def test_commit_and_save_keep_container_ids(rdocker: DockerCLI, cname: str, tmp_path: Path):
    image = cname + "-img"
    try:
        rdocker("run", "--name", cname, "busybox", "sh", "-c", "echo hi > /made && chown 9:9 /made")
        rdocker("commit", cname, image)
        # the committed layer holds container ids, as any image
        assert rdocker("run", "--rm", image, "stat", "-c", "%u:%g", "/made").out == "9:9"
        saved = tmp_path / "img.tar"
        rdocker("save", "-o", str(saved), image)
        with tarfile.open(saved) as outer:
            layers = [m for m in outer.getmembers() if m.name.endswith("layer.tar")]
            owners = {}
            for layer in layers:
                with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                    owners.update({m.name: (m.uid, m.gid) for m in inner.getmembers()})
        assert owners["made"] == (9, 9)
        assert owners["bin/busybox"] == (0, 0)
    finally:
        rdocker.run("rmi", "-f", image)


def test_build_copy_is_owned_by_container_root(rdocker: DockerCLI, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY f /f\nCOPY --chown=3:4 f /g\nRUN touch /r\n")
    (tmp_path / "f").write_text("x")
    image = NAME_PREFIX + uuid.uuid4().hex[:8]
    try:
        rdocker("build", "-q", "-t", image, str(tmp_path))
        out = rdocker("run", "--rm", image, "stat", "-c", "%u:%g", "/f", "/g", "/r").lines()
        assert out == ["0:0", "3:4", "0:0"]
    finally:
        rdocker.run("rmi", "-f", image)


def test_info_without_remap_has_no_userns(docker: DockerCLI):
    assert "userns" not in docker("info", "--format", "{{json .SecurityOptions}}").out


def test_root_remap_is_off(tmp_path: Path):
    with EngineDaemon(config={"storage-driver": "vfs", "userns-remap": "root"}) as daemon:
        cli = DockerCLI(daemon.host, config_dir=tmp_path)
        assert "userns" not in cli("info", "--format", "{{json .SecurityOptions}}").out
        assert cli("info", "--format", "{{.DockerRootDir}}").out == str(daemon.data_root)


def test_joining_another_containers_network_joins_its_user_namespace(rdocker: DockerCLI, cname: str):
    rdocker("run", "-d", "--name", cname, "busybox", "sleep", "300")
    first = rdocker("exec", cname, "readlink", "/proc/self/ns/user").out
    out = rdocker(
        "run", "--rm", "--network", f"container:{cname}", "busybox", "sh", "-c", "readlink /proc/self/ns/user; id -u"
    )
    assert out.lines() == [first, "0"]


def test_exec_and_restart(rdocker: DockerCLI, cname: str):
    rdocker("run", "-d", "--name", cname, "busybox", "sleep", "300")
    rdocker("restart", "-t", "0", cname)
    assert rdocker("exec", cname, "id", "-u").out == "0"
    assert rdocker("exec", cname, "sh", "-c", "head -1 /proc/self/uid_map").out.split()[0] == "0"


def test_remap_without_its_plugin_stops_start_up():
    daemon = EngineDaemon(
        config={"storage-driver": "vfs", "userns-remap": "default"}, env={"ENGINE_BLOCKED_PLUGINS": "userns-remap"}
    )
    existed = _user_exists("dockremap")
    try:
        with pytest.raises(RuntimeError, match="userns-remap is set but no plugin resolves it"):
            daemon.start()
    finally:
        daemon.stop()
        daemon.cleanup()
    assert _user_exists("dockremap") == existed  # nothing resolved the map: nobody made the user


def test_live_restore_keeps_a_remapped_container(remap_daemon: EngineDaemon, base: int, tmp_path: Path):
    """A daemon restart with live-restore: the container, its network namespace and the user
    namespace that owns it (pinned beside it) are adopted, and exec still joins both."""
    daemon = EngineDaemon(config={"storage-driver": "overlay2", "userns-remap": "default", "live-restore": True})
    daemon.root.chmod(0o711)
    cli = DockerCLI(daemon.host, config_dir=tmp_path)
    try:
        daemon.start()
        cli("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
        cli("run", "-d", "--name", "lr", "busybox", "sleep", "300")
        netns_files = sorted(p.name for p in (daemon.exec_root / "netns").iterdir())
        assert any(name.endswith(".userns") for name in netns_files)
        assert daemon.stop() == 0
        daemon.start()
        assert sorted(p.name for p in (daemon.exec_root / "netns").iterdir()) == netns_files
        assert cli("exec", "lr", "sh", "-c", "id -u; head -1 /proc/self/uid_map").lines()[1].split()[:2] == [
            "0",
            str(base),
        ]
        cli("rm", "-f", "lr")
        assert list((daemon.exec_root / "netns").iterdir()) == []
    finally:
        cli.run("rm", "-f", "lr")
        daemon.stop()
        daemon.cleanup()


def test_sharing_a_pid_namespace_shares_the_user_namespace(rdocker: DockerCLI, cname: str):
    rdocker("run", "-d", "--name", cname, "busybox", "sleep", "300")
    first = rdocker("exec", cname, "readlink", "/proc/self/ns/user").out
    out = rdocker(
        "run", "--rm", "--pid", f"container:{cname}", "busybox", "sh", "-c",
        "readlink /proc/self/ns/user; id -u; ps -o args | grep -c '^sleep 300'; ls /sys/class/net",
    ).lines()  # fmt: skip
    assert out[:3] == [first, "0", "1"]
    assert "eth0" in out[3:]  # its own network namespace (sysfs mounted for it)
