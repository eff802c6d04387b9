"""Rootless mode end to end: a real unprivileged user, made by this module (useradd) and removed
(userdel -r, with its subordinate id ranges), starts engined under RootlessKit with slirp4netns
(``engined-rootless``), and the docker CLI drives it through its socket in $XDG_RUNTIME_DIR.

/run/user/<uid> is made by hand (no logind here) and removed; /dev/net/tun and /dev/fuse are 0600 on
these machines (reference/BACKENDS.md), so the module opens them to the user and restores their modes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DockerCLI

pytestmark = pytest.mark.skipif(
    shutil.which("rootlesskit") is None or shutil.which("slirp4netns") is None,
    reason="rootlesskit and slirp4netns are needed (make system-packages)",
)

NAME_PREFIX = "rl-"
BIN = Path(sys.executable).parent
DEVICES = (Path("/dev/net/tun"), Path("/dev/fuse"))


@dataclass
class RootlessUser:
    name: str
    uid: int
    gid: int
    home: Path
    runtime_dir: Path

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        }

    def command(self, *argv: str) -> list[str]:
        """``argv`` as this user, with a login-like environment (setpriv execs: no extra process)."""
        env = [f"{k}={v}" for k, v in self.env().items()]
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "env", "-i", *env, *argv]


@pytest.fixture(scope="module")
def user() -> Iterator[RootlessUser]:
    name = "engrl" + uuid.uuid4().hex[:6]
    modes = {dev: dev.stat().st_mode & 0o7777 for dev in DEVICES if dev.exists()}
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    entry = pwd.getpwnam(name)
    runtime_dir = Path(f"/run/user/{entry.pw_uid}")
    try:
        if f"{name}:" not in Path("/etc/subuid").read_text():  # Debian's useradd adds them; else we do
            subprocess.run(
                ["usermod", "--add-subuids", "300000-365535", "--add-subgids", "300000-365535", name], check=True
            )
        runtime_dir.mkdir(parents=True, mode=0o700)
        os.chown(runtime_dir, entry.pw_uid, entry.pw_gid)
        for dev in modes:
            dev.chmod(0o666)
        yield RootlessUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), runtime_dir)
    finally:
        leftover = _wait_processes_gone(entry.pw_uid)
        for dev, mode in modes.items():
            dev.chmod(mode)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
        assert not leftover, f"processes of {name} outlived the test: {leftover}"


def _wait_processes_gone(uid: int, timeout: float = 15) -> list[str]:
    """The user's processes that do not end within ``timeout`` (RootlessKit's slirp4netns and the
    like wind down after the daemon), each killed by its PID."""
    deadline = time.monotonic() + timeout
    while True:
        pids = subprocess.run(["pgrep", "-u", str(uid)], capture_output=True, text=True).stdout.split()
        if not pids or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    described = []
    for pid in pids:
        described.append(
            subprocess.run(["ps", "-o", "pid=,args=", "-p", pid], capture_output=True, text=True).stdout.strip()
        )
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    return described


@pytest.fixture(scope="module")
def rootless_daemon(user: RootlessUser) -> Iterator[subprocess.Popen[bytes]]:
    log = open(user.home / "engined.log", "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        user.command("engined-rootless"), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    sock = user.runtime_dir / "engine.sock"
    deadline = time.monotonic() + 60
    try:
        while not _pings(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"rootless engined did not come up:\n{(user.home / 'engined.log').read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # RootlessKit passes it on to engined and waits for it
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _pings(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@pytest.fixture(scope="module")
def rl(rootless_daemon: subprocess.Popen[bytes], user: RootlessUser, tmp_path_factory) -> DockerCLI:
    cli = DockerCLI(f"unix://{user.runtime_dir}/engine.sock", config_dir=tmp_path_factory.mktemp("docker-config"))
    cli("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
    return cli


def test_setup_tool_checks_and_says_how_to_start(user: RootlessUser):
    check = subprocess.run(user.command("engined-rootless-setup", "check"), capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    install = subprocess.run(user.command("engined-rootless-setup", "install"), capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    # no systemd --user on this machine: it prints the command and the socket
    assert "engined-rootless" in install.stdout
    assert f"DOCKER_HOST=unix://{user.runtime_dir}/engine.sock" in install.stdout


def test_setup_tool_refuses_root():
    out = subprocess.run([str(BIN / "engined-rootless-setup"), "check"], capture_output=True, text=True)
    assert out.returncode == 1 and "non-root user" in out.stdout


def test_info_says_rootless(rl: DockerCLI, user: RootlessUser):
    assert "name=rootless" in rl("info", "--format", "{{json .SecurityOptions}}").out
    assert rl("info", "--format", "{{.DockerRootDir}}").out == str(user.home / ".local/share/engine")
    assert rl("info", "--format", "{{.CgroupDriver}}").out == "none"
    assert "Running in rootless-mode without cgroups" in rl("info", "--format", "{{json .Warnings}}").out
    assert (user.home / ".local/share/engine/overlay2").is_dir()  # kernel overlay in the user namespace


def test_run_is_root_inside_and_the_user_outside(rl: DockerCLI, user: RootlessUser):
    out = rl("run", "--rm", "busybox", "sh", "-c", "id -u; head -1 /proc/self/uid_map").lines()
    assert out[0] == "0"
    assert out[1].split() == ["0", str(user.uid), "1"]
    name = NAME_PREFIX + uuid.uuid4().hex[:8]
    try:
        rl("run", "-d", "--name", name, "busybox", "sleep", "300")
        pid = rl("inspect", "-f", "{{.State.Pid}}", name).out
        uid_line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(user.uid)] * 4
        assert rl("exec", name, "id", "-u").out == "0"
    finally:
        rl.run("rm", "-f", name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_published_port_reaches_the_container(rl: DockerCLI):
    name = NAME_PREFIX + uuid.uuid4().hex[:8]
    port = _free_port()
    try:
        rl(
            "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "busybox",
            "sh", "-c", "while true; do echo hello-rootless | nc -l -p 8080; done",
        )  # fmt: skip
        got = b""
        deadline = time.monotonic() + 30
        while b"hello-rootless" not in got and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    got = conn.recv(64)
            except OSError:
                time.sleep(0.2)
        assert got.strip() == b"hello-rootless"
    finally:
        rl.run("rm", "-f", name)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.recv(1)  # RootlessKit's forward went with the container


def test_volume_files_belong_to_the_user(rl: DockerCLI, user: RootlessUser):
    vol = NAME_PREFIX + uuid.uuid4().hex[:8]
    try:
        rl("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo x > /data/f")
        data = user.home / f".local/share/engine/volumes/{vol}/_data/f"
        assert data.stat().st_uid == user.uid
    finally:
        rl.run("volume", "rm", vol)


def test_build(rl: DockerCLI, tmp_path: Path):
    tmp_path.chmod(0o755)
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY f /f\nRUN cat /f > /r\n")
    (tmp_path / "f").write_text("built-rootless\n")
    image = NAME_PREFIX + uuid.uuid4().hex[:8]
    try:
        rl("build", "-q", "-t", image, str(tmp_path))
        assert rl("run", "--rm", image, "cat", "/r").out == "built-rootless"
    finally:
        rl.run("rmi", "-f", image)


def test_limits_without_cgroups_are_discarded_as_dockerd(rl: DockerCLI):
    # dockerd 20.10 rootless on cgroup v1: the container runs, without cgroup settings (info warns)
    out = rl("run", "--rm", "-m", "64m", "busybox", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").out
    assert int(out) > 64 * 1024 * 1024


def test_rootlesskit_child_must_be_rootless(tmp_path: Path):
    from engine_testkit.daemon import EngineDaemon

    daemon = EngineDaemon(config={"rootless": False}, env={"ROOTLESSKIT_STATE_DIR": str(tmp_path)})
    try:
        with pytest.raises(RuntimeError, match="rootless mode needs to be enabled for running with RootlessKit"):
            daemon.start()
    finally:
        daemon.stop()
        daemon.cleanup()


def test_a_port_rootlesskit_refuses_fails_the_start(rl: DockerCLI):
    # ports below net.ipv4.ip_unprivileged_port_start (1024 here) cannot be bound by the user
    name = NAME_PREFIX + uuid.uuid4().hex[:8]
    try:
        result = rl.fails("run", "-d", "--name", name, "-p", "127.0.0.1:81:80", "busybox", "sleep", "300")
        assert "Error starting userland proxy: error while calling PortManager.AddPort(): " in result.stderr
        assert "cannot expose privileged port 81" in result.stderr
    finally:
        rl.run("rm", "-f", name)
