"""Container filesystems end to end: docker cp both ways (paths and symlinks resolved inside the
container, also when stopped), diff, export, commit, and volumes: named, anonymous, binds, --mount,
tmpfs, image content copied into new volumes, removal with rm -v / --rm."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import tarfile
import time

import pytest

from engine_testkit.cli import DOCKER

NAME_PREFIX = "cf-"  # of the container names the conftest fixture `name` makes


@pytest.fixture
def volumes(docker):
    names: list[str] = []
    yield names
    if names:
        docker.run("volume", "rm", "-f", *names)


def test_cp_both_ways_stays_inside_the_container(docker, api, busybox, cleanup, name, tmp_path):
    cleanup.append(name)
    docker(
        "run",
        "-d",
        "--name",
        name,
        busybox,
        "sh",
        "-c",
        "mkdir -p /data/sub && echo inner > /data/sub/f && ln -s /etc /data/etc-link "
        "&& ln -s ../../../../../../etc/passwd /data/escape && sleep 60",
    )
    time.sleep(0.3)
    # container -> host, through an absolute symlink that must resolve in the container's root
    docker("cp", f"{name}:/data/etc-link/hostname", str(tmp_path / "hn"))
    assert (tmp_path / "hn").read_text().strip() == docker("inspect", "-f", "{{.Config.Hostname}}", name).out
    raw = subprocess.run([DOCKER, "cp", f"{name}:/data/escape", "-"], capture_output=True, env=docker.env).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        link = tar.getmember("escape")
    assert link.issym() and link.linkname == "../../../../../../etc/passwd"  # copied as a link, never followed
    docker("cp", f"{name}:/data/sub", str(tmp_path / "sub"))
    assert (tmp_path / "sub" / "f").read_text() == "inner\n"
    # host -> container, onto a path through a symlink
    (tmp_path / "up.txt").write_text("uploaded\n")
    docker("cp", str(tmp_path / "up.txt"), f"{name}:/data/etc-link/")
    assert docker("exec", name, "cat", "/etc/up.txt").out == "uploaded"
    missing = docker.fails("cp", f"{name}:/nope", str(tmp_path / "x"))
    assert "Could not find the file /nope in container" in missing.stderr or "No such container:path" in missing.stderr
    # the stat header and the archive as the API serves them
    response = api.api.head(api.api._url("/containers/{0}/archive", name), params={"path": "/data/sub/f"})
    stat = json.loads(base64.b64decode(response.headers["X-Docker-Container-Path-Stat"]))
    assert stat["name"] == "f" and stat["size"] == 6 and stat["linkTarget"] == ""
    stream, stat = api.api.get_archive(name, "/data/sub")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        members = tar.getnames()
    assert members == ["sub", "sub/f"] and stat["name"] == "sub"
    docker("stop", "-t", "0", name)
    # a stopped container: the RW layer is mounted for the copy
    docker("cp", str(tmp_path / "up.txt"), f"{name}:/stopped.txt")
    docker("cp", f"{name}:/stopped.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "uploaded\n"


def test_diff_export_and_commit(docker, busybox, cleanup, name):
    cleanup.append(name)
    docker("run", "--name", name, busybox, "sh", "-c", "echo x > /new && rm /bin/vi && echo y >> /etc/passwd")
    diff = docker("diff", name).lines()
    assert "A /new" in diff and "D /bin/vi" in diff and "C /etc/passwd" in diff
    raw = subprocess.run([DOCKER, "export", name], capture_output=True, env=docker.env, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = tar.getnames()
    assert "new" in names and "bin/vi" not in names and "bin/sh" in names and ".dockerenv" in names
    image = "committed-" + name
    docker(
        "commit", "-m", "my message", "-a", "me", "-c", "ENV FOO=bar", "-c", 'CMD ["cat", "/new"]', name, image + ":1"
    )
    try:
        assert docker("run", "--rm", image + ":1").out == "x"
        info = json.loads(docker("image", "inspect", image + ":1").stdout)[0]
        assert info["Comment"] == "my message" and info["Author"] == "me" and "FOO=bar" in info["Config"]["Env"]
        history = docker("history", "--no-trunc", "--format", "{{.Comment}}", image + ":1").lines()
        assert history[0] == "my message"
    finally:
        docker.run("rmi", image + ":1")


def test_commit_pauses_a_running_container(docker, busybox, cleanup, name):
    cleanup.append(name)
    since = str(time.time() - 0.5)
    docker("run", "-d", "--name", name, busybox, "sleep", "60")
    image = "paused-" + name
    docker("commit", name, image)
    docker("commit", "--pause=false", name, image + ":nopause")
    try:
        actions = docker(
            "events",
            "--since",
            since,
            "--until",
            str(time.time() + 0.5),
            "--filter",
            f"container={name}",
            "--format",
            "{{.Action}}",
        ).lines()
        assert actions.count("commit") == 2
        first = actions.index("commit")
        assert actions[first - 1] == "pause" and actions[first + 1] == "unpause"
        assert docker("inspect", "-f", "{{.State.Status}}", name).out == "running"
    finally:
        docker.run("rmi", image, image + ":nopause")


def test_volumes_named_anonymous_bind_mount_tmpfs(docker, busybox, cleanup, volumes, name, tmp_path):
    vol = "vol-" + name
    volumes.append(vol)
    cleanup.append(name)
    (tmp_path / "bind").mkdir()
    (tmp_path / "bind" / "from-host").write_text("host\n")
    since = str(time.time() - 0.5)
    script = (
        "echo named > /named/f; echo anon > /anon/f; cat /bind/from-host; echo back > /bind/from-container; "
        "ls /usr-copy; mount | grep -c ' /tmpfs type tmpfs'; "
        "touch /ro/x 2>&1 | grep -c Read-only"
    )
    out = docker(
        "run",
        "--name",
        name,
        "-v",
        f"{vol}:/named",
        "-v",
        "/anon",
        "-v",
        f"{tmp_path / 'bind'}:/bind",
        "--mount",
        "type=volume,target=/usr-copy,source=" + vol + "-usr",
        "--mount",
        "type=tmpfs,target=/tmpfs,tmpfs-size=1m",
        "-v",
        f"{vol}:/ro:ro",
        busybox,
        "sh",
        "-c",
        script,
    ).lines()
    volumes.append(vol + "-usr")
    assert out == ["host", "1", "1"]  # /usr-copy: not in the image, so an empty new volume
    assert (tmp_path / "bind" / "from-container").read_text() == "back\n"
    mounts = {m["Destination"]: m for m in json.loads(docker("inspect", name).stdout)[0]["Mounts"]}
    assert mounts["/named"]["Name"] == vol and mounts["/named"]["Type"] == "volume"
    assert mounts["/bind"]["Type"] == "bind" and mounts["/bind"]["Propagation"] == "rprivate"
    assert mounts["/tmpfs"]["Type"] == "tmpfs" and mounts["/ro"]["RW"] is False
    anon = mounts["/anon"]["Name"]
    assert len(anon) == 64
    # a second container sees the named volume's data
    assert docker("run", "--rm", "-v", f"{vol}:/v", busybox, "cat", "/v/f").out == "named"
    assert "volume is in use" in docker.fails("volume", "rm", vol).stderr
    actions = docker(
        "events",
        "--since",
        since,
        "--until",
        str(time.time() + 0.5),
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ).lines()
    assert f"mount {vol}" in actions and f"unmount {vol}" in actions
    docker("rm", "-v", name)
    cleanup.remove(name)
    assert docker.run("volume", "inspect", anon).returncode != 0  # anonymous: removed with rm -v
    assert docker.run("volume", "inspect", vol).returncode == 0  # named: kept


def test_image_volume_content_is_copied_into_new_volumes(docker, busybox, cleanup, name):
    base = "withvol-" + name
    cleanup.append(name)
    docker("run", "--name", name + "-b", busybox, "sh", "-c", "mkdir /seed && echo seeded > /seed/f && chown 7:7 /seed")
    docker("commit", "-c", "VOLUME /seed", name + "-b", base)
    docker("rm", name + "-b")
    try:
        out = docker("run", "--name", name, base, "sh", "-c", "cat /seed/f; stat -c %u /seed").lines()
        assert out == ["seeded", "7"]
        anon = json.loads(docker("inspect", name).stdout)[0]["Mounts"][0]["Name"]
        assert docker("run", "--rm", "-v", f"{anon}:/x", busybox, "cat", "/x/f").out == "seeded"
        docker("rm", "-v", name)
        cleanup.remove(name)
        assert docker.run("volume", "inspect", anon).returncode != 0
        assert docker("run", "--rm", base, "cat", "/seed/f").out == "seeded"  # --rm removes its anonymous volume
    finally:
        docker.run("rmi", base)


def test_volumes_from(docker, busybox, cleanup, name):
    cleanup.extend([name, name + "-b"])
    docker("run", "--name", name, "-v", "/shared", busybox, "sh", "-c", "echo shared > /shared/f")
    out = docker(
        "run",
        "--name",
        name + "-b",
        "--volumes-from",
        f"{name}:ro",
        busybox,
        "sh",
        "-c",
        "cat /shared/f; touch /shared/x 2>&1 | grep -c Read-only",
    ).lines()
    assert out == ["shared", "1"]
    src = json.loads(docker("inspect", name).stdout)[0]["Mounts"][0]
    dst = json.loads(docker("inspect", name + "-b").stdout)[0]["Mounts"][0]
    assert dst["Name"] == src["Name"] and dst["RW"] is False
    docker("rm", "-v", name + "-b")  # the volume is still the first container's
    cleanup.remove(name + "-b")
    assert docker.run("volume", "inspect", src["Name"]).returncode == 0
