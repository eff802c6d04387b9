"""``docker run --log-driver journald`` and ``docker logs`` end to end: an engined started inside the
test journald's mount namespace (so /run/systemd/journal/socket and /run/log/journal are that
journald's), the docker CLI outside it (the API socket is under /tmp, shared)."""

from __future__ import annotations

import calendar
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journald_server import Journald

from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

pytest.importorskip("engine.containers.service", reason="containers subsystem not available")
pytestmark = pytest.mark.e2e


class NamespacedDaemon(EngineDaemon):
    """An engined run through ``nsenter --mount=`` into another mount namespace."""

    def __init__(self, prefix: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix

    def command(self) -> list[str]:
        return [*self.prefix, *super().command()]  # nsenter execs engined: the PID stays engined's


@pytest.fixture(scope="module")
def engined(journald: Journald) -> Iterator[EngineDaemon]:
    daemon = NamespacedDaemon(journald.nsenter(), config={"storage-driver": "overlay2"})
    daemon.start()
    yield daemon
    code = daemon.stop()
    daemon.cleanup()
    assert code == 0, daemon.log()


@pytest.fixture(scope="module")
def docker(engined: EngineDaemon) -> DockerCLI:
    cli = DockerCLI(engined.host, config_dir=Path(engined.root) / "docker-config")
    cli("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
    return cli


@pytest.fixture
def name(docker: DockerCLI) -> Iterator[str]:
    name = "jd-" + uuid.uuid4().hex[:10]
    yield name
    docker.run("rm", "-f", name)


def journal(journald: Journald, *match: str) -> list[dict[str, Any]]:
    out = journald.journalctl("--all", "-o", "json", *match)
    return [json.loads(line) for line in out.splitlines()]


def test_run_and_logs(docker: DockerCLI, journald: Journald, name: str) -> None:
    docker(
        "run", "--name", name, "--log-driver", "journald", "--label", "team=core", "--log-opt", "labels=team",
        "-e", "STAGE=test", "--log-opt", "env=STAGE", "busybox", "sh", "-c", "echo hi; echo oops >&2; printf 'tail'",
    )  # fmt: skip
    logs = docker("logs", name)
    assert (logs.stdout, logs.stderr) == ("hi\ntail", "oops\n")
    cid = docker("inspect", "-f", "{{.Id}}", name).out
    entries = journal(journald, f"CONTAINER_ID_FULL={cid}")
    assert [(e["MESSAGE"], e["PRIORITY"]) for e in entries] == [("hi", "6"), ("oops", "3"), ("tail", "6")]
    first = entries[0]
    assert {
        k: first[k] for k in ("CONTAINER_ID", "CONTAINER_NAME", "CONTAINER_TAG", "SYSLOG_IDENTIFIER", "IMAGE_NAME")
    } == {
        "CONTAINER_ID": cid[:12],
        "CONTAINER_NAME": name,
        "CONTAINER_TAG": cid[:12],
        "SYSLOG_IDENTIFIER": cid[:12],
        "IMAGE_NAME": "busybox",
    }
    assert (first["TEAM"], first["STAGE"]) == ("core", "test")
    # the last line had no newline: a partial piece, as dockerd marks it
    assert entries[2]["CONTAINER_PARTIAL_MESSAGE"] == "true"
    details = docker("logs", "--details", name)
    assert details.stdout.splitlines()[0] == "IMAGE_NAME=busybox,STAGE=test,TEAM=core hi"


def test_tail_since_until(docker: DockerCLI, name: str) -> None:
    docker(
        "run", "--name", name, "--log-driver", "journald", "busybox", "sh", "-c", "echo early; sleep 1.2; echo late",
    )  # fmt: skip
    stamped = [line.split(" ", 1) for line in docker("logs", "-t", name).stdout.splitlines()]
    assert [text for _, text in stamped] == ["early", "late"]
    early, late = stamped[0][0], stamped[1][0]
    assert docker("logs", "--tail", "1", name).stdout == "late\n"
    assert docker("logs", "--tail", "0", name).stdout == ""
    assert docker("logs", "--since", late, name).stdout == "late\n"
    assert docker("logs", "--until", early, name).stdout == "early\n"
    assert docker("logs", "--since", early, "--until", early, name).stdout == "early\n"


def test_follow(docker: DockerCLI, name: str) -> None:
    docker(
        "run", "-d", "--name", name, "--log-driver", "journald", "busybox", "sh", "-c",
        "echo one; sleep 1; echo two; sleep 0.5; echo three",
    )  # fmt: skip
    follower = docker.popen("logs", "-f", name, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = follower.communicate(timeout=60)  # ends when the container stops
    assert (out, err, follower.returncode) == (b"one\ntwo\nthree\n", b"", 0)


def test_long_line_split_and_joined(docker: DockerCLI, journald: Journald, name: str) -> None:
    docker(
        "run", "--name", name, "--log-driver", "journald", "busybox", "sh", "-c",
        "head -c 40000 /dev/zero | tr '\\0' a; echo; echo short",
    )  # fmt: skip
    assert docker("logs", name).stdout == "a" * 40000 + "\nshort\n"
    cid = docker("inspect", "-f", "{{.Id}}", name).out
    entries = journal(journald, f"CONTAINER_ID_FULL={cid}")
    pieces = [(len(e["MESSAGE"]), e.get("CONTAINER_PARTIAL_ORDINAL"), e.get("CONTAINER_PARTIAL_LAST")) for e in entries]
    assert pieces == [(16384, "1", "false"), (16384, "2", "false"), (40000 - 32768, "3", "true"), (5, None, None)]
    assert len({e["CONTAINER_PARTIAL_ID"] for e in entries[:3]}) == 1


def test_daemon_default_log_driver_option_errors(docker: DockerCLI) -> None:
    result = docker.fails("create", "--log-driver", "journald", "--log-opt", "max-size=1m", "busybox")
    assert "unknown log opt 'max-size' for journald log driver" in result.stderr


def test_timestamps_are_the_containers(docker: DockerCLI, journald: Journald, name: str) -> None:
    """``docker logs -t`` shows when the container wrote the line, to the nanosecond (the entry's
    SYSLOG_TIMESTAMP), as json-file does."""
    before = time.time_ns()
    docker("run", "--name", name, "--log-driver", "journald", "busybox", "echo", "x")
    [line] = docker("logs", "-t", name).stdout.splitlines()
    stamp, text = line.split(" ", 1)
    assert text == "x"
    cid = docker("inspect", "-f", "{{.Id}}", name).out
    [entry] = journal(journald, f"CONTAINER_ID_FULL={cid}")
    sent = entry["SYSLOG_TIMESTAMP"]
    assert stamp[:19] == sent[:19] and stamp.rstrip("Z").rstrip("0") == sent.rstrip("Z").rstrip("0")
    assert calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) >= before // 10**9
    assert int(entry["__REALTIME_TIMESTAMP"]) * 1000 >= before  # the journal's own time is separate
