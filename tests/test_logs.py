"""docker logs end to end: the real docker CLI and docker-py against engined, json-file and none drivers."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

pytest.importorskip("engine.containers.service", reason="containers subsystem not available")

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


NAME_PREFIX = "logs-"  # of the container names the conftest fixture `name` makes


def run(docker, cleanup, name: str, *args: str, script: str) -> str:
    cleanup.append(name)
    docker("run", "--name", name, *args, "busybox", "sh", "-c", script)
    return name


def test_streams_tail_timestamps(docker, busybox, cleanup, name):
    run(docker, cleanup, name, script="echo out1; echo err1 >&2; sleep 0.2; echo out2; printf 'no newline'")
    logs = docker("logs", name)
    assert logs.stdout == "out1\nout2\nno newline" and logs.stderr == "err1\n"
    tail = docker("logs", "--tail", "2", name)  # lines of both streams count
    assert tail.stdout == "out2\nno newline" and tail.stderr == ""
    assert docker("logs", "--tail", "0", name).stdout == ""
    stamped = docker("logs", "-t", name)
    lines = stamped.stdout.split("\n")
    assert all(STAMP.match(line) for line in lines) and [line[31:] for line in lines] == ["out1", "out2", "no newline"]
    assert STAMP.match(stamped.stderr)


def test_since_and_until(docker, busybox, cleanup, name):
    run(docker, cleanup, name, script="echo early; sleep 1.2; echo late")
    stamps = [line.split(" ", 1) for line in docker("logs", "-t", name).stdout.splitlines()]
    early, late = stamps[0][0], stamps[1][0]
    assert docker("logs", "--since", late, name).stdout == "late\n"
    assert docker("logs", "--until", early, name).stdout == "early\n"
    assert docker("logs", "--since", early, "--until", early, name).stdout == "early\n"
    assert docker("logs", "--since", "1m", name).stdout == "early\nlate\n"  # relative, resolved by the CLI


def test_follow_ends_when_the_container_stops(docker, busybox, cleanup, name):
    cleanup.append(name)
    docker("run", "-d", "--name", name, "busybox", "sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.4; done")
    started = time.monotonic()
    followed = docker.run("logs", "-f", name, timeout=30)
    assert followed.returncode == 0
    assert followed.stdout == "tick 1\ntick 2\ntick 3\n"
    assert time.monotonic() - started < 20
    assert docker("logs", "-f", name, timeout=10).stdout == "tick 1\ntick 2\ntick 3\n"  # stopped: returns at once


def test_rotation_keeps_the_newest_files_readable(docker, busybox, cleanup, name, engine):
    script = "i=0; while [ $i -lt 400 ]; do echo line $i; i=$((i+1)); done"
    run(
        docker,
        cleanup,
        name,
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        script=script,
    )
    info = json.loads(docker("inspect", name).stdout)[0]
    assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "1k"}}
    log_path = info["LogPath"]
    assert log_path == str(engine.data_root / "containers" / info["Id"] / f"{info['Id']}-json.log")
    base = os.path.basename(log_path)
    assert {f for f in os.listdir(os.path.dirname(log_path)) if f.startswith(base)} == {base, base + ".1", base + ".2"}
    lines = docker("logs", name).stdout.splitlines()
    first = int(lines[0].split()[1])
    assert first > 0 and lines == [f"line {i}" for i in range(first, 400)]
    assert docker("logs", "--tail", "3", name).stdout.splitlines() == ["line 397", "line 398", "line 399"]
    with open(log_path) as f:
        entry = json.loads(f.readline())
    assert list(entry) == ["log", "stream", "time"] and entry["stream"] == "stdout"


def test_details_show_attributes(docker, busybox, cleanup, name):
    run(
        docker,
        cleanup,
        name,
        "--label",
        "team=a b",
        "--log-opt",
        "labels=team",
        "--log-opt",
        "tag={{.Name}}",
        script="echo hi",
    )
    assert docker("logs", "--details", name).stdout == f"tag={name},team=a+b hi\n"


def test_none_driver_cannot_be_read(docker, busybox, cleanup, name):
    run(docker, cleanup, name, "--log-driver", "none", script="echo hi")
    failed = docker.fails("logs", name)
    assert "configured logging driver does not support reading" in failed.stderr


def test_bad_log_options_are_refused_at_create(docker, busybox, name):
    failed = docker.fails("create", "--name", name, "--log-opt", "foo=bar", "busybox")
    assert "unknown log opt 'foo' for json-file log driver" in failed.stderr
    failed = docker.fails("create", "--name", name, "--log-opt", "max-file=0", "--log-opt", "max-size=1m", "busybox")
    assert "max-file cannot be less than 1" in failed.stderr
    failed = docker.fails("create", "--name", name, "--log-driver", "splunk", "busybox")
    assert "logger: no log driver named 'splunk' is registered" in failed.stderr


def test_tty_logs_are_raw(docker, busybox, cleanup, name):
    run(docker, cleanup, name, "-t", script="echo hi")
    assert docker("logs", name).stdout == "hi\r\n"


def test_docker_py_logs(api, busybox, cleanup, name):
    cleanup.append(name)
    container = api.containers.run(
        "busybox", ["sh", "-c", "echo a; sleep 0.3; echo b >&2; sleep 0.3; echo c"], name=name, detach=True
    )
    assert list(container.logs(stream=True, follow=True)) == [b"a\n", b"b\n", b"c\n"]
    assert container.logs(stdout=True, stderr=False) == b"a\nc\n"
    assert container.logs(tail=1) == b"c\n"
    assert re.match(rb"^\d{4}-.*Z a\n", container.logs(timestamps=True))


def test_daemon_wide_log_options(busybox_tar, tmp_path_factory):
    daemon = EngineDaemon(
        config={
            "storage-driver": os.environ.get("ENGINE_TEST_STORAGE_DRIVER", "overlay2"),
            "log-driver": "json-file",
            "log-opts": {"max-size": "2k", "max-file": "2", "mode": "non-blocking", "labels": "team"},
        }
    )
    daemon.start()
    try:
        docker = DockerCLI(daemon.host, config_dir=tmp_path_factory.mktemp("docker-config"))
        docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_tar)
        assert docker("info", "--format", "{{.LoggingDriver}}").out == "json-file"
        docker("run", "--name", "d1", "--label", "team=x", "busybox", "sh", "-c", "seq 1 300")
        config = json.loads(docker("inspect", "--format", "{{json .HostConfig.LogConfig}}", "d1").stdout)
        assert config == {
            "Type": "json-file",
            "Config": {"labels": "team", "max-file": "2", "max-size": "2k", "mode": "non-blocking"},
        }
        lines = docker("logs", "d1").stdout.splitlines()
        assert lines[-1] == "300" and 0 < len(lines) < 300
        assert docker("logs", "--details", "--tail", "1", "d1").stdout == "team=x 300\n"
        docker("rm", "d1")
    finally:
        assert daemon.stop() == 0, daemon.log()
        daemon.cleanup()


def test_daemon_refuses_bad_log_options(tmp_path):
    daemon = EngineDaemon(root=tmp_path / "bad", config={"log-opts": {"max-size": "huge"}})
    with pytest.raises(RuntimeError) as err:
        daemon.start(timeout=30)
    assert "invalid size: 'huge'" in str(err.value)
    daemon.cleanup()
