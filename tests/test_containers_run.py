"""Containers end to end, the running side: docker run options and their effect inside the container,
stop/kill/restart/pause and their events, restart policies, health checks, resources and OOM, top,
stats, update."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

NAME_PREFIX = "cr-"  # of the container names the conftest fixture `name` makes


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def inspect(docker, ref: str) -> dict:
    return json.loads(docker("inspect", "--type", "container", ref).stdout)[0]


def events(docker, since: float, name: str) -> list[str]:
    out = docker(
        "events",
        "--since",
        f"{since:.3f}",
        "--until",
        f"{time.time() + 0.5:.3f}",
        "--filter",
        f"container={name}",
        "--format",
        "{{.Action}}|{{json .Actor.Attributes}}",
    ).lines()
    return out


def test_run_rm_exit_code_and_process_options(docker, busybox, tmp_path, name):
    assert docker.run("run", "--rm", busybox, "sh", "-c", "exit 3").returncode == 3
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=yes\n# comment\n")
    out = docker(
        "run",
        "--rm",
        "--name",
        name,
        "-e",
        "A=1",
        "--env-file",
        str(env_file),
        "-w",
        "/tmp/work",
        "-u",
        "1234:5",
        "--hostname",
        "myhost",
        "--label",
        "l=v",
        "--entrypoint",
        "sh",
        busybox,
        "-c",
        'echo "$A $FROM_FILE $(pwd) $(id -u):$(id -g) $(hostname)"',
    ).out
    assert out == "1 yes /tmp/work 1234:5 myhost"
    assert docker.run("inspect", name).returncode != 0  # --rm removed it
    missing = docker.run("run", "--rm", busybox, "nope-cmd")
    assert missing.returncode == 127 and "executable file not found" in missing.stderr


def test_empty_entrypoint_clears_the_images(docker, busybox_tar, name):
    image = f"ep-{name}:1"
    docker("import", "-c", 'ENTRYPOINT ["false"]', "-", image, input=busybox_tar)
    try:
        assert docker.run("run", "--rm", image).returncode == 1  # the image's entrypoint runs
        assert docker("run", "--rm", "--entrypoint", "", image, "echo", "cleared").out == "cleared"
    finally:
        docker("rmi", image)


def test_stop_kill_restart_pause_and_their_events(docker, busybox, cleanup, name):
    cleanup.append(name)
    since = time.time()
    # a shell that exits on TERM (PID 1 ignores signals without a handler)
    script = "trap 'exit 0' TERM; trap 'echo usr1' USR1; echo trapped; while true; do sleep 0.1; done"
    docker("run", "-d", "--name", name, "--stop-signal", "SIGTERM", busybox, "sh", "-c", script)
    # a signal before the traps are set is ignored by PID 1: wait for them
    assert wait_for(lambda: "trapped" in docker("logs", name).stdout)
    docker("kill", "-s", "USR1", name)
    assert wait_for(lambda: "usr1" in docker("logs", name).stdout)
    assert inspect(docker, name)["State"]["Running"]
    docker("pause", name)
    state = inspect(docker, name)["State"]
    assert state["Status"] == "paused" and state["Paused"]
    assert "(Paused)" in docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").out
    assert "is already paused" in docker.fails("pause", name).stderr
    docker("unpause", name)
    assert "is not paused" in docker.fails("unpause", name).stderr
    started = time.monotonic()
    docker("stop", "-t", "20", name)
    assert time.monotonic() - started < 10  # the trap made it exit on TERM, no SIGKILL needed
    assert inspect(docker, name)["State"]["ExitCode"] == 0
    docker("restart", "-t", "1", name)
    assert inspect(docker, name)["State"]["Running"]
    docker("kill", name)
    state = inspect(docker, name)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    assert "is not running" in docker.fails("kill", name).stderr
    got = [(line.split("|")[0], json.loads(line.split("|", 1)[1])) for line in events(docker, since, name)]
    actions = [a for a, _ in got]
    assert actions[:3] == ["create", "start", "kill"]
    assert next(attrs for action, attrs in got if action == "kill")["signal"] == "10"  # USR1
    for expected in ("pause", "unpause", "stop", "restart", "die"):
        assert expected in actions
    dies = [attrs["exitCode"] for action, attrs in got if action == "die"]
    assert dies == ["0", "137"]
    stop_at = actions.index("stop")
    assert actions[stop_at - 1] == "die" and actions[stop_at - 2] == "kill"


def test_stop_timeout_kills_after_the_grace_period(docker, busybox, cleanup, name):
    cleanup.append(name)
    docker("run", "-d", "--name", name, "--stop-timeout", "1", busybox, "sleep", "60")
    started = time.monotonic()
    docker("stop", name)
    assert 0.8 < time.monotonic() - started < 8
    assert inspect(docker, name)["State"]["ExitCode"] == 137


def test_restart_policies(docker, busybox, cleanup, name):
    fail, always, unless = name + "-fail", name + "-always", name + "-unless"
    cleanup.extend([fail, always, unless])
    docker("run", "-d", "--name", fail, "--restart", "on-failure:2", busybox, "sh", "-c", "exit 5")
    docker("run", "-d", "--name", always, "--restart", "always", busybox, "sh", "-c", "sleep 0.2")
    docker("run", "-d", "--name", unless, "--restart", "unless-stopped", busybox, "sleep", "60")
    state = wait_for(
        lambda: (s := inspect(docker, fail))["RestartCount"] == 2 and s["State"]["Status"] == "exited" and s, 20
    )
    assert state and state["State"]["ExitCode"] == 5
    assert wait_for(lambda: inspect(docker, always)["RestartCount"] >= 2, 20)
    docker("stop", "-t", "0", unless)
    keeper = name + "-keeper"
    cleanup.append(keeper)
    docker("run", "-d", "--name", keeper, "--restart", "always", busybox, "sleep", "60")
    docker("stop", "-t", "0", keeper)
    time.sleep(0.5)
    assert inspect(docker, unless)["State"]["Status"] == "exited"  # stopped by hand: not restarted
    assert inspect(docker, keeper)["State"]["Status"] == "exited"  # even with "always"
    docker("update", "--restart", "no", always)
    assert inspect(docker, always)["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert wait_for(lambda: inspect(docker, always)["State"]["Status"] == "exited", 20)


def test_health_checks(docker, busybox, cleanup, name):
    good, bad = name + "-good", name + "-bad"
    cleanup.extend([good, bad])
    since = time.time()
    docker(
        "run",
        "-d",
        "--name",
        good,
        "--health-cmd",
        "test -e /tmp/ready",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "--health-start-period",
        "60s",
        busybox,
        "sleep",
        "60",
    )
    docker(
        "run",
        "-d",
        "--name",
        bad,
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        busybox,
        "sleep",
        "60",
    )
    assert "(health: starting)" in docker("ps", "--filter", f"name={good}", "--format", "{{.Status}}").out
    # failed probes inside the start period do not count: still starting, until the check passes
    assert wait_for(lambda: len(inspect(docker, good)["State"]["Health"]["Log"]) >= 2)
    assert inspect(docker, good)["State"]["Health"]["Status"] == "starting"
    docker("exec", good, "touch", "/tmp/ready")
    assert wait_for(lambda: inspect(docker, good)["State"]["Health"]["Status"] == "healthy")
    assert "(healthy)" in docker("ps", "--filter", f"name={good}", "--format", "{{.Status}}").out
    health = inspect(docker, good)["State"]["Health"]
    assert health["FailingStreak"] == 0 and health["Log"][-1]["ExitCode"] == 0
    assert set(health["Log"][-1]) == {"Start", "End", "ExitCode", "Output"}
    assert wait_for(lambda: inspect(docker, bad)["State"]["Health"]["Status"] == "unhealthy")
    assert inspect(docker, bad)["State"]["Health"]["FailingStreak"] >= 2
    assert (
        docker("ps", "-q", "--filter", f"name={name}", "--filter", "health=unhealthy").out
        == (inspect(docker, bad)["Id"][:12])
    )
    actions = [line.split("|")[0] for line in events(docker, since, good)]
    assert "health_status: healthy" in actions and any(a.startswith("exec_create: ") for a in actions)


def test_resources_limits_and_oom(docker, busybox, cleanup, name):
    cleanup.append(name)
    script = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/pids/pids.max; ulimit -n; "
        "grep CapEff /proc/self/status; wc -c < /dev/null >/dev/null; df -k /dev/shm | tail -1; "
        "id -G; touch /ro 2>&1 | head -c 40; echo; touch /tmp/t/x && echo tmpfs-ok; ls -l /dev/mynull"
    )
    out = docker(
        "run",
        "--rm",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "50",
        "--ulimit",
        "nofile=1024:2048",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "--shm-size",
        "16m",
        "--group-add",
        "1234",
        "--read-only",
        "--tmpfs",
        "/tmp/t",
        "--device",
        "/dev/null:/dev/mynull",
        busybox,
        "sh",
        "-c",
        script,
    ).lines()
    assert out[:5] == [str(64 << 20), "50000", "512", "50", "1024"]
    assert out[5].split()[1] == "0000000000000001"  # CAP_CHOWN only
    assert out[6].split()[1] == str(16 * 1024)  # /dev/shm size in KiB
    assert "1234" in out[7].split()
    assert "Read-only file system" in out[8]
    assert out[9] == "tmpfs-ok" and out[10].startswith("crw")
    privileged = docker(
        "run", "--rm", "--privileged", busybox, "sh", "-c", "grep CapEff /proc/self/status; ls /dev | wc -l"
    )
    status = Path("/proc/self/status").read_text().splitlines()
    bounding = next(line for line in status if line.startswith("CapBnd")).split()[1]
    assert privileged.lines()[0].split()[1] == bounding  # every capability the daemon may pass on
    assert int(privileged.lines()[1]) > 10  # and the host's devices
    pid1 = docker("run", "--rm", "--init", busybox, "cat", "/proc/1/cmdline").stdout
    assert "docker-init" in pid1 or "init" in pid1.split("\0")[0]

    result = docker.run(
        "run", "--name", name, "-m", "32m", busybox, "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"
    )
    assert result.returncode == 137
    state = inspect(docker, name)["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    actions = [line.split("|")[0] for line in events(docker, time.time() - 30, name)]
    assert actions.index("oom") < actions.index("die")


def test_top_stats_port_and_update(docker, api, busybox, cleanup, name):
    cleanup.append(name)
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::80", busybox, "sleep", "60")
    top = docker("top", name, "-o", "pid,comm").lines()
    assert top[0].split() == ["PID", "COMMAND"] and top[1].split()[1] == "sleep"
    raw = api.api.top(name)
    assert raw["Titles"][1] == "PID" and raw["Processes"][0][-1] == "sleep 60"
    stats = api.api.stats(name, stream=False)
    assert stats["name"] == "/" + name and stats["memory_stats"]["usage"] > 0
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0 and stats["precpu_stats"]["system_cpu_usage"] > 0
    assert stats["pids_stats"]["current"] == 1
    one_shot = api.api.stats(name, stream=False, one_shot=True)
    assert one_shot["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    line = docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name).out
    assert line == f"{name} 1"
    port = docker("port", name, "80").out
    assert port.startswith("127.0.0.1:")
    docker("update", "--memory", "48m", "--memory-swap", "96m", "--cpus", "1", name)
    hc = inspect(docker, name)["HostConfig"]
    assert hc["Memory"] == 48 << 20 and hc["NanoCpus"] == 1_000_000_000
    limit = docker("exec", name, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").out
    assert limit == str(48 << 20)


def test_network_modes(docker, busybox, cleanup, name):
    cleanup.append(name)
    docker("run", "-d", "--name", name, "--network", "none", busybox, "sleep", "60")
    netns = "readlink /proc/self/ns/net"
    base = docker("exec", name, "sh", "-c", netns).out
    joined = docker("run", "--rm", "--network", f"container:{name}", busybox, "sh", "-c", netns).out
    assert joined == base
    assert docker("run", "--rm", "--network", "none", busybox, "sh", "-c", "ls /sys/class/net").out == "lo"
    host_ns = os.readlink("/proc/self/ns/net")
    assert docker("run", "--rm", "--network", "host", busybox, "sh", "-c", netns).out == host_ns
    assert docker("run", "--rm", "--network", "host", busybox, "hostname").out == socket.gethostname()
    missing = docker.run("run", "--rm", "--network", "container:nope-" + name, busybox, "true")
    assert missing.returncode != 0 and "No such container: nope-" + name in missing.stderr
    assert "Unable to find image" not in missing.stderr  # create succeeded: the CLI did not try to pull
    bad = docker.fails("create", "--network", f"container:{name}", "--hostname", "x", busybox, "true")
    assert "conflicting options: hostname and the network mode" in bad.stderr
