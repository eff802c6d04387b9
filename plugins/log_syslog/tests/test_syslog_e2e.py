"""``docker run --log-driver syslog`` end to end: the docker CLI, an engined of this module's own,
busybox containers, and the lines a real rsyslogd received."""

from __future__ import annotations

import re
import socket
import threading
import time
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


def closed_port() -> int:
    """A tcp port on 127.0.0.1 this test opened and closed: a connect to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        return sock.getsockname()[1]


def test_unreachable_server_fails_the_start(docker: DockerCLI, engined: EngineDaemon) -> None:
    """As dockerd: the driver dials before the container runs, and a refused connection fails
    ``docker run`` and ``docker start`` with "failed to initialize logging driver"; the container
    is left created (exit code 128, the error in its state), nothing of it runs."""
    address = f"127.0.0.1:{closed_port()}"
    expected = f"failed to initialize logging driver: dial tcp {address}: connect: connection refused"
    name = tag()
    log_opts = ("--log-driver", "syslog", "--log-opt", f"syslog-address=tcp://{address}")
    try:
        result = docker.fails("run", "--name", name, *log_opts, "busybox", "echo", "x")
        assert f"Error response from daemon: {expected}" in result.stderr
        state = docker("inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}", name).out
        assert state == "created false 128"
        assert docker("inspect", "-f", "{{.State.Error}}", name).out == expected
        result = docker.fails("start", name)
        assert f"Error response from daemon: {expected}" in result.stderr
        assert docker("ps", "-q", "--filter", f"name={name}").out == ""
    finally:
        docker.run("rm", "-f", name)
    # --rm: the container that could not start is removed, as dockerd does
    rm_name = tag()
    result = docker.fails("run", "--rm", "--name", rm_name, *log_opts, "busybox", "echo", "x")
    assert expected in result.stderr
    for _ in range(50):
        if docker.run("inspect", rm_name).returncode != 0:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"{rm_name} was not removed")


@pytest.fixture
def deaf_server() -> Iterator[str]:
    """A tcp server on 127.0.0.1 that accepts and never reads: a syslog server that stopped
    reading (small receive buffer, so the driver's writes block soon)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_non_blocking_mode_with_a_syslog_server_that_stops_reading(
    docker: DockerCLI, engined: EngineDaemon, deaf_server: str
) -> None:
    """mode=non-blocking: the server takes nothing, the container writes 300k lines and exits as
    with any driver, ``docker logs`` (the dual-logging cache, in front of the ring) has every line,
    and the daemon reports the lines the ring dropped."""
    name = tag()
    script = "yes hello | head -n 300000; echo done"
    try:
        docker(
            "run", "-d", "--name", name, "--log-driver", "syslog", "--log-opt", f"syslog-address=tcp://{deaf_server}",
            "--log-opt", "mode=non-blocking", "--log-opt", "max-buffer-size=64k", "busybox", "sh", "-c", script,
        )  # fmt: skip
        # the timeout only turns a hang into a failure
        assert docker("wait", name, timeout=120).out == "0"
        assert docker("logs", "--tail", "1", name).stdout == "done\n"
        assert len(docker("logs", name, timeout=60).stdout.splitlines()) == 300001
        cid = docker("inspect", "-f", "{{.Id}}", name).out
        for _ in range(100):  # the ring reports its drops once the driver is closed, after the exit
            if f"log driver syslog of container {cid[:12]}: " in engined.log():
                break
            time.sleep(0.1)
        assert re.search(rf"log driver syslog of container {cid[:12]}: \d+ messages dropped", engined.log())
    finally:
        docker.run("rm", "-f", name)
