"""docker logs end to end for the local driver, dual logging, mode=non-blocking and mode=blocking
across a live-restore restart: the real docker CLI against engined.

Drivers that cannot read back are stood in for by two drivers written for these tests only and
installed into the test daemons (a throwaway distribution on their PYTHONPATH, found through its
entry points like any plugin): ``test-tcp`` sends each line over TCP to ``test-tcp-address`` (the
shape of a syslog or gelf driver), ``test-discard`` drops every line.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.drivers.logcodec_local import LENGTH_FRAMING, decode_entry
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

pytest.importorskip("engine.containers.service", reason="containers subsystem not available")
pytest.importorskip("engine_plugin_local", reason="engine-plugin-local is not installed")

NAME_PREFIX = "logdrv-"
LIGHT = {"storage-driver": os.environ.get("ENGINE_TEST_STORAGE_DRIVER", "overlay2"), "bridge": "none"}

TEST_DRIVERS = '''
"""Log drivers for engine's end-to-end tests only."""

import socket

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.log import LogDriver
from engine.errors import InvalidParameter


class TcpDriver(LogDriver):
    """Each line over TCP to test-tcp-address; blocks when the peer stops reading."""

    name = "test-tcp"
    API_VERSION = DRIVER_API_VERSION

    @classmethod
    def check_options(cls, options):
        for key in options:
            if key != "test-tcp-address":
                raise InvalidParameter(f"unknown log opt '{key}' for test-tcp log driver")

    def __init__(self, info):
        super().__init__(info)
        self.sock = None  # connected at the first line: a driver made only to read must not connect

    def log(self, message):
        self.log_many([message])

    def log_many(self, messages):
        if self.sock is None:
            host, port = self.info.config["test-tcp-address"].rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        for message in messages:
            self.sock.sendall(message.line + b"\\n")

    def close(self):
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


class DiscardDriver(LogDriver):
    name = "test-discard"
    API_VERSION = DRIVER_API_VERSION

    def log(self, message):
        pass
'''


def install_test_drivers(site: Path) -> None:
    """A distribution ``engine-test-logdrivers`` in ``site`` (put on the daemon's PYTHONPATH)."""
    info = site / "engine_test_logdrivers-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: engine-test-logdrivers\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[engine.log_drivers]\n"
        "test-tcp = engine_test_logdrivers:TcpDriver\n"
        "test-discard = engine_test_logdrivers:DiscardDriver\n"
    )
    (site / "engine_test_logdrivers.py").write_text(TEST_DRIVERS)


def local_records(path: Path) -> list[bytes]:
    records, used = LENGTH_FRAMING.split(path.read_bytes())
    assert used == path.stat().st_size
    return [decode_entry(r).line for r in records]


def inspect(docker: DockerCLI, name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


# -- the local driver, on the session's daemon -------------------------------------------------------


def test_local_driver_writes_dockerds_files_and_reads_back(docker, busybox, cleanup, name, engine):
    cleanup.append(name)
    script = "i=0; while [ $i -lt 400 ]; do echo line $i; i=$((i+1)); done; echo oops >&2"
    docker("run", "--name", name, "--log-driver", "local", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
           "busybox", "sh", "-c", script)  # fmt: skip
    info = inspect(docker, name)
    assert info["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {"max-file": "3", "max-size": "1k"}}
    assert info["LogPath"] == ""  # as dockerd: the local format is not an API
    log_dir = engine.data_root / "containers" / info["Id"] / "local-logs"
    assert sorted(os.listdir(log_dir)) == ["container.log", "container.log.1.gz", "container.log.2.gz"]
    assert local_records(log_dir / "container.log")[-1] == b"oops"
    logs = docker("logs", name)
    lines = logs.stdout.splitlines()
    first = int(lines[0].split()[1])
    assert first > 0 and lines == [f"line {i}" for i in range(first, 400)] and logs.stderr == "oops\n"
    assert docker("logs", "--tail", "2", name).stdout == "line 399\n"
    assert docker("logs", "-f", name, timeout=20).stdout == logs.stdout  # stopped: returns at once


def test_local_driver_options_are_checked_at_create(docker, busybox, name):
    failed = docker.fails("create", "--name", name, "--log-driver", "local", "--log-opt", "labels=a", "busybox")
    assert "unknown log opt 'labels' for log driver local" in failed.stderr
    failed = docker.fails("create", "--name", name, "--log-driver", "local", "--log-opt", "max-file=1", "busybox")
    assert "compression cannot be enabled when max file count is 1" in failed.stderr


# -- drivers that cannot read back, on a daemon of their own ----------------------------------------


@pytest.fixture(scope="module")
def test_daemon(tmp_path_factory) -> Iterator[tuple[EngineDaemon, DockerCLI]]:
    site = tmp_path_factory.mktemp("site")
    install_test_drivers(site)
    daemon = EngineDaemon(config=dict(LIGHT), env={"PYTHONPATH": str(site)})
    daemon.start()
    try:
        docker = DockerCLI(daemon.host, config_dir=tmp_path_factory.mktemp("docker-config"))
        from engine_testkit.busybox import busybox_rootfs_tar

        docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
        yield daemon, docker
        ids = docker.run("ps", "-aq").lines()
        if ids:
            docker.run("rm", "-f", "-v", *ids)
    finally:
        code = daemon.stop()
        daemon.cleanup()
    assert code == 0, daemon.log()


@pytest.fixture
def deaf_server() -> Iterator[str]:
    """A loopback TCP server that accepts connections and never reads from them: a dead log target."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    host, port = server.getsockname()[:2]
    yield f"{host}:{port}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_dual_logging_cache_in_the_local_format(test_daemon, name):
    daemon, docker = test_daemon
    docker("run", "--name", name, "--log-driver", "test-discard", "busybox", "sh", "-c", "echo one; echo two >&2")
    assert docker("logs", name).stdout == "one\n"
    assert docker("logs", "--tail", "1", name).stderr == "two\n"
    container_dir = daemon.data_root / "containers" / inspect(docker, name)["Id"]
    assert local_records(container_dir / "container-cached.log") == [b"one", b"two"]  # where dockerd keeps it
    docker("rm", name)
    docker("run", "--name", name, "--log-driver", "test-discard", "--log-opt", "cache-disabled=true",
           "busybox", "echo", "hi")  # fmt: skip
    assert "configured logging driver does not support reading" in docker.fails("logs", name).stderr
    docker("rm", name)
    failed = docker.fails("create", "--log-driver", "test-discard", "--log-opt", "cache-disabled=maybe", "busybox")
    assert "invalid value for option cache-disabled: maybe" in failed.stderr


def test_non_blocking_mode_with_a_dead_log_target(test_daemon, name, deaf_server):
    """The target stops reading at once; the container writes 300k lines and exits as it would
    with any driver, and ``docker logs`` (the cache) has every line."""
    _, docker = test_daemon
    script = "yes hello | head -n 300000; echo done"
    docker("run", "-d", "--name", name, "--log-driver", "test-tcp", "--log-opt", f"test-tcp-address={deaf_server}",
           "--log-opt", "mode=non-blocking", "--log-opt", "max-buffer-size=64k", "busybox", "sh", "-c", script)  # fmt: skip
    # the timeout only turns a hang into a failure
    assert docker("wait", name, timeout=90).out == "0"
    assert docker("logs", "--tail", "1", name).stdout == "done\n"
    assert len(docker("logs", name, timeout=60).stdout.splitlines()) == 300001
    docker("rm", name)


# -- mode=blocking across a live-restore restart ------------------------------------------------------


def test_blocking_mode_loses_no_line_across_live_restore_restarts(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    install_test_drivers(site)
    daemon = EngineDaemon(config={**LIGHT, "live-restore": True}, env={"PYTHONPATH": str(site)})
    daemon.start()
    docker = DockerCLI(daemon.host, config_dir=tmp_path_factory.mktemp("docker-config"))
    try:
        from engine_testkit.busybox import busybox_rootfs_tar

        docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
        # as fast as a shell loop goes (tens of thousands of lines per second), pausing briefly
        # every 1000 lines so the run spans both restarts
        loop = "i=0; while true; do echo $i; i=$((i+1)); [ $((i % 1000)) = 0 ] && sleep 0.1; done"
        for driver in ("local", "json-file", "test-discard"):  # test-discard: read back from the cache
            docker("run", "-d", "--name", f"fast-{driver}", "--log-driver", driver, "--log-opt", "mode=blocking",
                   "busybox", "sh", "-c", loop)  # fmt: skip
        time.sleep(1)
        assert daemon.stop() == 0, daemon.log()
        time.sleep(0.5)  # output written while no daemon runs waits in the spool
        daemon.start()
        time.sleep(1)
        daemon.kill()
        time.sleep(0.5)
        daemon.start()
        time.sleep(1)
        for driver in ("local", "json-file", "test-discard"):
            docker("stop", "-t", "1", f"fast-{driver}")
            numbers = [int(line) for line in docker("logs", f"fast-{driver}", timeout=60).stdout.splitlines()]
            assert numbers == list(range(len(numbers))), driver  # nothing lost or repeated
            assert len(numbers) > 5000, driver
    finally:
        ids = docker.run("ps", "-aq").lines()
        if ids:
            docker.run("rm", "-f", "-v", *ids)
        daemon.stop()
        left = _processes_naming(daemon.root)
        daemon.cleanup()
        assert not left, f"processes left behind: {left}"


def _processes_naming(root: Path) -> list[str]:
    marker = str(root).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes():
                    found.append(proc.name)
            except OSError:
                continue
    return found
