"""docker exec end to end: -i, -t, -d, -u, -w, -e, exit codes through GET /exec/{id}/json, refusals,
events, and docker-py's exec_run."""

from __future__ import annotations

import time
import uuid

import pytest


@pytest.fixture
def name(docker, busybox):
    name = "ce-" + uuid.uuid4().hex[:10]
    docker("run", "-d", "--name", name, "-e", "BASE=1", "-w", "/tmp", busybox, "sleep", "60")
    yield name
    docker.run("rm", "-f", name)


def test_exec_options_and_exit_codes(docker, name):
    out = docker(
        "exec",
        "-u",
        "99:98",
        "-w",
        "/etc",
        "-e",
        "EXTRA=2",
        name,
        "sh",
        "-c",
        'echo "$BASE $EXTRA $(pwd) $(id -u):$(id -g)"',
    ).out
    assert out == "1 2 /etc 99:98"
    assert docker("exec", name, "pwd").out == "/tmp"  # the container's working dir by default
    assert docker.run("exec", name, "sh", "-c", "echo err >&2; exit 3").returncode == 3
    assert docker("exec", "-i", name, "cat", input="through stdin\n").stdout == "through stdin\n"
    tty = docker("exec", "-t", name, "sh", "-c", "tty; echo $TERM").stdout
    assert "/dev/pts/" in tty and "xterm" in tty and "\r\n" in tty
    # a detached exec runs on after the CLI returns: it waits for /tmp/go, which the test makes later
    docker("exec", "-d", name, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; touch /tmp/detached")
    assert docker.run("exec", name, "test", "-e", "/tmp/detached").returncode != 0
    docker("exec", name, "touch", "/tmp/go")
    deadline = time.monotonic() + 15
    while docker.run("exec", name, "test", "-e", "/tmp/detached").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert docker("exec", name, "ls", "/tmp/detached").out == "/tmp/detached"
    missing = docker.run("exec", name, "nope-cmd")
    assert missing.returncode in (126, 127) and "executable file not found" in (missing.stdout + missing.stderr)


def test_exec_inspect_and_refusals(api, docker, name):
    import docker as docker_py

    exec_id = api.api.exec_create(name, ["sh", "-c", "exit 5"])["Id"]
    before = api.api.exec_inspect(exec_id)
    assert (
        before["Running"] is False
        and before["ExitCode"] is None
        and before["ContainerID"] == (docker("inspect", "-f", "{{.Id}}", name).out)
    )
    assert before["ProcessConfig"] == {
        "tty": False,
        "entrypoint": "sh",
        "arguments": ["-c", "exit 5"],
        "privileged": False,
    }
    api.api.exec_start(exec_id)
    after = api.api.exec_inspect(exec_id)
    assert after["ExitCode"] == 5 and after["Running"] is False and after["Pid"] == 0
    with pytest.raises(docker_py.errors.APIError) as err:
        api.api.exec_start(exec_id)
    assert err.value.status_code == 409 and "has already run" in str(err.value)
    with pytest.raises(docker_py.errors.NotFound) as err:
        api.api.exec_inspect("nope")
    assert "No such exec instance: nope" in str(err.value)
    assert docker("inspect", "-f", "{{len .ExecIDs}}", name).out == "1"
    result = api.containers.get(name).exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert result.exit_code == 0 and result.output == (b"out\n", b"err\n")
    docker("pause", name)
    assert "is paused, unpause the container before exec" in docker.fails("exec", name, "true").stderr
    docker("unpause", name)
    docker("stop", "-t", "0", name)
    assert "is not running" in docker.fails("exec", name, "true").stderr


def test_exec_events(docker, name):
    since = str(time.time() - 0.2)
    assert docker.run("exec", name, "sh", "-c", "exit 2").returncode == 2
    actions = docker(
        "events",
        "--since",
        since,
        "--until",
        str(time.time() + 0.5),
        "--filter",
        f"container={name}",
        "--format",
        "{{.Action}} {{.Actor.Attributes.exitCode}}",
    ).lines()
    actions = [a for a in actions if a.startswith("exec_")]
    assert actions[0].startswith("exec_create: sh -c exit 2")
    assert actions[1].startswith("exec_start: sh -c exit 2")
    assert actions[2] == "exec_die 2"
