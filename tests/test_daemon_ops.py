"""Operating engined: one daemon per data-root and exec-root, systemd readiness, daemon logs."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engine import registry
from engine_testkit.daemon import EngineDaemon

ENGINED = Path(sys.executable).with_name("engined")

#: the lightest daemon that starts: vfs storage, no json-file logs, no default bridge
LIGHT = {"storage-driver": "vfs", "log-driver": "none"}
if registry.DriverRegistry(registry.NETWORK).is_installed("bridge"):
    LIGHT["bridge"] = "none"  # a key of engine-plugin-bridge


# ---- one daemon per root -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first():
    daemon = EngineDaemon(config=LIGHT)
    daemon.start()
    yield daemon
    assert daemon.stop() == 0
    daemon.cleanup()


@pytest.mark.parametrize("root", ["data-root", "exec-root"])
def test_a_second_daemon_on_the_same_root_refuses(first, root):
    shared = first.data_root if root == "data-root" else first.exec_root
    second = EngineDaemon(config={**LIGHT, root: str(shared)})
    try:
        with pytest.raises(RuntimeError, match="engined exited with 1"):
            second.start(timeout=20)
        assert (
            f"failed to start daemon: {root} {shared} is in use by another engined "
            f"(process with PID {first.proc.pid} is still running)"
        ) in second.log()
        assert not second.socket.exists()
    finally:
        second.stop()
        second.cleanup()
    # the first one is untouched and its lock file still names it
    assert first._ping()
    assert (shared / "engine.lock").read_text().strip() == str(first.proc.pid)


def test_the_lock_goes_with_the_daemon(tmp_path):
    """A killed daemon leaves no lock behind: the next one on the same roots starts."""
    config = {**LIGHT, "data-root": str(tmp_path / "data"), "exec-root": str(tmp_path / "exec")}
    daemon = EngineDaemon(config=config)
    try:
        daemon.start()
        daemon.kill()
        daemon.proc = None
        daemon.start()
        assert (tmp_path / "data" / "engine.lock").read_text().strip() == str(daemon.proc.pid)
    finally:
        daemon.stop()
        daemon.cleanup()


# ---- systemd: socket activation and sd_notify ------------------------------------------------------

ACTIVATE = Path("/usr/bin/systemd-socket-activate")


class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket this test binds (a path, or a
    name in the abstract namespace)."""

    def __init__(self, tmp_path: Path, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"engine-test-notify-{uuid.uuid4().hex}"
            self.sock.bind(b"\0" + name.encode())
            self.env = f"@{name}"
        else:
            self.sock.bind(str(tmp_path / "notify.sock"))
            self.env = str(tmp_path / "notify.sock")
        self.sock.settimeout(60)  # a bound on waiting, not a timed assertion

    def next(self, skip_watchdog: bool = True) -> dict[str, str]:
        """The next notification, as its KEY=value fields."""
        while True:
            fields = dict(line.split("=", 1) for line in self.sock.recv(4096).decode().splitlines())
            if not (skip_watchdog and fields.keys() == {"WATCHDOG"}):
                return fields

    def close(self) -> None:
        self.sock.close()


def api_get(path: Path, url: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(path))
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


@pytest.mark.skipif(not ACTIVATE.exists(), reason="needs systemd-socket-activate (Debian's systemd package)")
@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_socket_activation_and_readiness_notifications(tmp_path, abstract):
    """engined under systemd-socket-activate (systemd's own tool for what engine.socket does): it serves on
    the activated socket (-H fd://) and tells NOTIFY_SOCKET READY=1, RELOADING=1 then READY=1 on SIGHUP,
    and STOPPING=1 on SIGTERM; with WATCHDOG_USEC it sends WATCHDOG=1."""
    notify = NotifySocket(tmp_path, abstract)
    api = tmp_path / "api.sock"
    daemon = EngineDaemon(root=tmp_path / "d", config={**LIGHT, "hosts": ["fd://"]})
    daemon.command()  # fills in data-root, exec-root, pidfile
    daemon.config["hosts"] = ["fd://"]
    daemon.config_file.write_text(json.dumps(daemon.config))
    env = ["-E", f"NOTIFY_SOCKET={notify.env}", "-E", "PATH", "-E", f"ENGINE_RESOLV_CONF={daemon.resolv_conf}"]
    if abstract:
        env += ["-E", "WATCHDOG_USEC=200000"]
    proc = subprocess.Popen(
        [str(ACTIVATE), "-l", str(api), *env, str(ENGINED), "--config-file", str(daemon.config_file)],
        stdout=subprocess.DEVNULL,
        stderr=open(daemon.log_file, "wb"),  # noqa: SIM115 - owned by the process
        start_new_session=True,
    )
    try:
        while not api.exists():  # systemd-socket-activate listens, then starts engined on the first connection
            assert proc.poll() is None, daemon.log()
            time.sleep(0.05)
        assert api_get(api, "/_ping").startswith(b"HTTP/1.1 200"), daemon.log()
        ready = notify.next()
        assert ready["READY"] == "1" and ready["MAINPID"] == str(proc.pid)
        assert json.loads(api_get(api, "/v1.41/info").split(b"\r\n\r\n", 1)[1])["Driver"] == "vfs"
        assert not (daemon.root / "engine.sock").exists()  # it bound nothing itself

        proc.send_signal(signal.SIGHUP)
        assert notify.next()["RELOADING"] == "1"
        assert notify.next()["READY"] == "1"
        if abstract:
            assert notify.next(skip_watchdog=False) == {"WATCHDOG": "1"}

        proc.send_signal(signal.SIGTERM)
        assert notify.next()["STOPPING"] == "1"
        assert proc.wait(timeout=60) == 0, daemon.log()
        assert "Daemon shutdown complete" in daemon.log()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
        daemon.cleanup()


def test_make_install_systemd_stages_the_units(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    # -o: the venv is there already (this test runs in it); never reinstall it from a test
    command = ["make", "-C", str(repo), "-o", ".venv/.installed", "install-systemd", f"DESTDIR={tmp_path}"]
    subprocess.run(command, check=True, capture_output=True)
    units = tmp_path / "etc/systemd/system"
    service = (units / "engine.service").read_text()
    assert f"ExecStart={ENGINED} -H fd://\n" in service
    assert "Type=notify" in service and "Requires=engine.socket" in service
    assert "ListenStream=/run/engine.sock" in (units / "engine.socket").read_text()
    if Path("/usr/bin/systemd-analyze").exists():
        proc = subprocess.run(
            ["systemd-analyze", "verify", str(units / "engine.socket"), str(units / "engine.service")],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and not proc.stderr, proc.stderr


# ---- the daemon's own log -----------------------------------------------------------------------------

RFC3339_FIXED = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d)"


def log_of(config: dict, args: list[str] = (), urls: list[str] = ("/_ping",)) -> str:
    """Start a daemon, GET ``urls``, stop it: its whole log (stderr)."""
    daemon = EngineDaemon(config=config, args=list(args))
    try:
        daemon.start()
        for url in urls:
            api_get(daemon.socket, url)
        assert daemon.stop() == 0
        return daemon.log()
    finally:
        daemon.stop()
        daemon.cleanup()


def test_json_log_lines_with_a_debug_line_per_request():
    log = log_of({**LIGHT, "log-format": "json", "log-level": "debug"}, urls=["/v1.41/containers/nothing/json"])
    entries = [json.loads(line) for line in log.splitlines()]  # every line is JSON
    assert all(re.fullmatch(RFC3339_FIXED, e["time"]) for e in entries)
    assert any(e["level"] == "info" and e["msg"].startswith("API listen on ") for e in entries)
    requests = [e for e in entries if e.get("path") == "/v1.41/containers/nothing/json"]
    assert len(requests) == 1
    request = requests[0]
    assert (request["level"], request["method"], request["status"]) == ("debug", "GET", 404)
    assert re.fullmatch(r"\d+(\.\d+)?(µs|ms|s)", request["duration"])


def test_raw_text_logs_at_info_have_no_request_lines():
    lines = log_of(LIGHT, ["--raw-logs"]).splitlines()
    assert lines and all(re.match(rf'time="{RFC3339_FIXED}" level=\w+ msg="', line) for line in lines), lines
    assert not any("\x1b[" in line or "path=/_ping" in line for line in lines)


def test_debug_text_request_line():
    log = log_of(LIGHT, ["-D"])
    assert re.search(r'level=debug msg="GET /_ping 200" duration=\S+ method=GET path=/_ping status=200\n', log), log


def test_an_unknown_log_format_stops_start_up():
    daemon = EngineDaemon(config={**LIGHT, "log-format": "xml"})
    try:
        with pytest.raises(RuntimeError, match="engined exited with 1"):
            daemon.start(timeout=20)
        assert "unknown log format: xml" in daemon.log()
    finally:
        daemon.stop()
        daemon.cleanup()
