"""Containers across daemon restarts (each test runs its own engined): live-restore through a clean
restart and a kill -9, dockerd's shutdown without it and the restart policies at start-up, and a
daemon killed in the middle of creates leaving no half-made container."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

LIGHT = {"storage-driver": "overlay2", "bridge": "none"}


@pytest.fixture
def daemon_factory(tmp_path_factory):
    made: list[EngineDaemon] = []

    def make(**config) -> tuple[EngineDaemon, DockerCLI]:
        daemon = EngineDaemon(config={**LIGHT, **config})
        daemon.start()
        made.append(daemon)
        cli = DockerCLI(daemon.host, config_dir=tmp_path_factory.mktemp("docker-config"))
        cli("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
        return daemon, cli

    yield make
    for daemon in made:
        if daemon.proc is not None and daemon.proc.poll() is None:
            cli = DockerCLI(daemon.host)
            ids = cli.run("ps", "-aq").lines()
            if ids:
                cli.run("rm", "-f", "-v", *ids)
        daemon.stop()
        left = processes_under(daemon.root)
        daemon.cleanup()
        assert not left, f"processes left behind: {left}"


def processes_under(root: Path) -> list[str]:
    """Shims (or anything) whose command line names the daemon's directories."""
    found = []
    marker = str(root).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                text = cmdline.replace(b"\0", b" ")[:120].decode(errors="replace")
                found.append(f"{proc.name}: {text}")
    return found


def restart(daemon: EngineDaemon, *, kill: bool = False) -> None:
    if kill:
        daemon.kill()
    else:
        assert daemon.stop() == 0, daemon.log()
    daemon.start()


def pid_alive(pid: int) -> bool:
    return pid > 0 and Path(f"/proc/{pid}").exists()


def inspect(cli: DockerCLI, ref: str) -> dict:
    return json.loads(cli("inspect", ref).stdout)[0]


def test_live_restore_keeps_containers_through_restart_and_kill9(daemon_factory):
    daemon, cli = daemon_factory(**{"live-restore": True})
    loop = "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done"
    cli("run", "-d", "--name", "looper", "busybox", "sh", "-c", loop)
    cli("run", "-d", "--name", "quitter", "busybox", "sh", "-c", "sleep 1.5; echo bye; exit 7")
    pid = inspect(cli, "looper")["State"]["Pid"]
    restart(daemon)
    assert pid_alive(pid)
    state = inspect(cli, "looper")["State"]
    assert state["Running"] and state["Pid"] == pid
    time.sleep(2)  # quitter exits while we look; looper keeps logging
    restart(daemon, kill=True)
    assert pid_alive(pid) and inspect(cli, "looper")["State"]["Running"]
    quitter = inspect(cli, "quitter")["State"]
    assert quitter["Status"] == "exited" and quitter["ExitCode"] == 7
    assert cli("logs", "quitter").stdout == "bye\n"
    lines = cli("logs", "looper").lines()
    assert lines[:3] == ["line0", "line1", "line2"]
    numbers = [int(line[4:]) for line in lines]
    assert numbers == list(range(len(numbers)))  # nothing lost or repeated across two restarts
    assert cli("exec", "looper", "echo", "exec-ok").out == "exec-ok"
    attach = cli.popen("attach", "--no-stdin", "looper", stdout=subprocess.PIPE)
    assert attach.stdout.readline().startswith(b"line")  # attach works on a restored container
    attach.kill()
    attach.wait()
    follow = cli.popen("logs", "-f", "--tail", "0", "looper", stdout=subprocess.PIPE)
    time.sleep(0.5)
    cli("stop", "-t", "1", "looper")
    out, _ = follow.communicate(timeout=20)
    assert out.startswith(b"line") and follow.returncode == 0  # logs -f ended with the container
    assert inspect(cli, "looper")["State"]["ExitCode"] == 137
    assert cli("wait", "looper").out == "137" and cli("wait", "quitter").out == "7"
    assert not pid_alive(pid)


def test_shutdown_stops_containers_and_policies_restart_them(daemon_factory):
    daemon, cli = daemon_factory()
    for name, policy in (("always", "always"), ("never", "no"), ("stopped", "unless-stopped")):
        cli("run", "-d", "--name", name, "--restart", policy, "--stop-timeout", "1", "busybox", "sleep", "1000")
    cli("stop", "stopped")
    pids = {name: inspect(cli, name)["State"]["Pid"] for name in ("always", "never")}
    started = time.monotonic()
    restart(daemon)
    assert time.monotonic() - started < 15
    assert not any(pid_alive(pid) for pid in pids.values())  # shutdown stopped them (no live-restore)
    deadline = time.monotonic() + 15
    while not inspect(cli, "always")["State"]["Running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inspect(cli, "always")["State"]["Running"]
    assert inspect(cli, "never")["State"]["Status"] == "exited"
    assert inspect(cli, "stopped")["State"]["Status"] == "exited"


def test_kill9_during_creates_leaves_no_half_made_container(daemon_factory):
    daemon, cli = daemon_factory()
    import docker as docker_py

    for round_ in range(3):
        stop = threading.Event()

        def create_many(
            worker: int, host: str = daemon.host, stop: threading.Event = stop, round_: int = round_
        ) -> None:
            client = docker_py.APIClient(base_url=host, version="1.41", timeout=10)
            i = 0
            while not stop.is_set():
                try:
                    cid = client.create_container(
                        "busybox", ["sleep", "100"], name=f"r{round_}-{worker}-{i}", volumes=["/v"]
                    )["Id"]
                    if worker == 1:  # the other one also starts them: kills land in starts too
                        client.start(cid)
                except Exception:
                    return
                i += 1

        workers = [threading.Thread(target=create_many, args=(n,)) for n in range(2)]
        for w in workers:
            w.start()
        time.sleep(0.4 + 0.3 * round_)
        daemon.kill()
        stop.set()
        for w in workers:
            w.join(10)
        daemon.start()
        listed = set(cli("ps", "-aq", "--no-trunc").lines())
        root = daemon.data_root / "containers"
        on_disk = {p.name for p in root.iterdir() if p.is_dir()}
        assert listed == on_disk
        for cid in on_disk:
            assert not (root / cid / ".creating").exists()
            assert (root / cid / "config.v2.json").exists() and (root / cid / "hostconfig.json").exists()
        names = cli("ps", "-a", "--format", "{{.Names}}").lines()
        assert len(names) == len(set(names))
        assert cli("ps", "-q").lines() == []  # no live-restore: what ran was stopped
        shims = [p for p in processes_under(daemon.root) if not p.startswith(f"{daemon.proc.pid}:")]
        assert shims == []
        mounts = set(os.listdir(daemon.data_root / "image" / "overlay2" / "layerdb" / "mounts"))
        assert mounts == listed  # every RW layer belongs to a container, and every container has one
    ids = cli("ps", "-aq").lines()
    cli("rm", "-v", *ids)
    assert cli("volume", "ls", "-q").lines() == []  # anonymous volumes of rolled-back creates are gone too
