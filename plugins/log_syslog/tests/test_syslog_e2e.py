"""``docker run --log-driver syslog`` end to end: the docker CLI, an engined of this module's own,
busybox containers, and the lines a real rsyslogd received."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from rsyslog_server import Rsyslog

from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

pytest.importorskip("engine.containers.service", reason="containers subsystem not available")
pytestmark = pytest.mark.e2e

STAMP = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"


@pytest.fixture(scope="module")
def engined() -> Iterator[EngineDaemon]:
    daemon = EngineDaemon(config={"storage-driver": "overlay2"})
    daemon.start()
    yield daemon
    code = daemon.stop()
    daemon.cleanup()
    assert code == 0, daemon.log()


@pytest.fixture(scope="module")
def docker(engined: EngineDaemon) -> DockerCLI:
    cli = DockerCLI(engined.host, config_dir=engined.root / "docker-config")
    cli("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
    return cli


def tag() -> str:
    return "e2e" + uuid.uuid4().hex[:10]


def test_run_with_syslog_over_tcp(docker: DockerCLI, engined: EngineDaemon, rsyslog: Rsyslog) -> None:
    t, name = tag(), tag()
    address = f"tcp://127.0.0.1:{rsyslog.port}"
    try:
        out = docker(
            "run", "--name", name, "--log-driver", "syslog", "--log-opt", f"syslog-address={address}",
            "--log-opt", f"tag={t}", "busybox", "sh", "-c", "echo hi; echo oops >&2",
        )  # fmt: skip
        assert (out.stdout, out.stderr) == ("hi\n", "oops\n")  # attached output is not the driver's business
        pid = engined.proc.pid  # type: ignore[union-attr]
        got = rsyslog.wait_for(t, 2)
        assert {re.sub(STAMP, "STAMP", line) for line in got} == {
            f"imtcp <30>STAMP {t}[{pid}]: hi",
            f"imtcp <27>STAMP {t}[{pid}]: oops",
        }
        # docker logs still works: dual logging keeps a local cache for drivers that cannot read
        logs = docker("logs", name)
        assert (logs.stdout, logs.stderr) == ("hi\n", "oops\n")
        inspect = docker(
            "inspect",
            "-f",
            '{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config "syslog-address"}}',
            name,
        )
        assert inspect.out == f"syslog {address}"
    finally:
        docker.run("rm", "-f", name)


def test_run_with_syslog_over_unixgram_rfc5424(docker: DockerCLI, engined: EngineDaemon, rsyslog: Rsyslog) -> None:
    t = tag()
    docker(
        "run", "--rm", "--log-driver", "syslog", "--log-opt", f"syslog-address=unixgram://{rsyslog.dgram}",
        "--log-opt", "syslog-format=rfc5424micro", "--log-opt", "syslog-facility=local0",
        "--log-opt", f"tag={t}-{{{{.Name}}}}", "busybox", "echo", "hello rfc5424",
    )  # fmt: skip
    pid = engined.proc.pid  # type: ignore[union-attr]
    [line] = rsyslog.wait_for(t, 1)
    pattern = rf"imuxsock <134>1 \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{6}}(Z|[+-]\d\d:\d\d) \S+ ({t}-\S+) {pid} \2 - hello rfc5424"
    assert re.fullmatch(pattern, line), line


def test_listed_by_docker_info(docker: DockerCLI) -> None:
    assert "syslog" in docker("info", "--format", "{{json .Plugins.Log}}").out


def test_bad_options_refused_at_create(docker: DockerCLI) -> None:
    for opt, message in (
        ("syslog-facility=nope", "invalid syslog facility"),
        ("syslog-format=json", "Invalid syslog format"),
        ("syslog-address=localhost", "syslog-address should be in form proto://address, got localhost"),
        ("max-size=1m", "unknown log opt 'max-size' for syslog log driver"),
    ):
        result = docker.fails("create", "--log-driver", "syslog", "--log-opt", opt, "busybox")
        assert message in result.stderr


def test_unreachable_server_is_reported(docker: DockerCLI, engined: EngineDaemon) -> None:
    """dockerd refuses to start the container ("failed to initialize logging driver"); engine dials
    on the first message, so the container runs and the daemon logs why its output went nowhere."""
    from rsyslog_server import free_port

    address = f"127.0.0.1:{free_port()}"
    docker(
        "run", "--rm", "--log-driver", "syslog", "--log-opt", f"syslog-address=tcp://{address}", "busybox", "echo", "x"
    )
    assert f"for logger syslog: dial tcp {address}: connect: Connection refused" in engined.log()
