"""The runtime with real containers: runc, the C shim, cgroups, a busybox rootfs directory."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InvalidParameter
from engine.runtime import ExitStatus, Runtime, SpecInputs, StartFailed, Task, caps, cgroups, exec_process
from engine.runtime.task import read_pid, shim_running
from engine_testkit.busybox import busybox_rootfs_tar

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"),
]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bb") / "rootfs"
    root.mkdir()
    with tarfile.open(fileobj=io.BytesIO(busybox_rootfs_tar())) as tar:
        tar.extractall(root)  # our own tar (busybox and its links)
    return root


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    parent = f"/enginetest-{uuid.uuid4().hex[:8]}"
    rt = Runtime(tmp_path / "exec", config={"cgroup-parent": parent})
    rt.start()
    yield rt
    # cleanup through the API, then prove nothing is left: shims, runc state, cgroups
    shims = [read_pid(rt.state_dir(cid) / "shim.pid") for cid in rt.known_containers()]
    for cid in rt.known_containers():
        rt.delete(cid)
    for pid in shims:
        if pid > 0 and Path(f"/proc/{pid}").exists() and b"engine-shim" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"shim {pid} outlived its container")
    rt.stop()
    # every hierarchy, the cgroup2 one of this hybrid host included (runc makes directories there too)
    leftovers = [str(m / parent.lstrip("/")) for m in cgroups.all_mounts() if (m / parent.lstrip("/")).exists()]
    for d in leftovers:
        for child in Path(d).iterdir():
            if child.is_dir():
                child.rmdir()
        Path(d).rmdir()
    assert not leftovers, f"cgroups left behind: {leftovers}"
    assert not list((rt.exec_root / "containers").iterdir())


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def new_id() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


def start(
    rt: Runtime, rootfs: Path, cmd: list[str], config: dict[str, Any] | None = None, hc: dict[str, Any] | None = None
) -> tuple[Task, dict[str, Any]]:
    cid = new_id()
    cfg = {"Cmd": cmd, "Hostname": cid[:12], **(config or {})}
    spec = rt.build_spec(None, cfg, hc or {}, SpecInputs(container_id=cid, rootfs=rootfs))
    task = rt.start_task(cid, spec, open_stdin=bool(cfg.get("OpenStdin")))
    return task, spec


async def collect(proc: Any, offset: Any = "start") -> list[tuple[int, bytes]]:
    return [(c.stream, c.data) async for c in proc.output(offset)]


def joined(chunks: list[tuple[int, bytes]], stream: int | None = None) -> bytes:
    return b"".join(d for s, d in chunks if stream is None or s == stream)


# ---- exit codes, output ------------------------------------------------------------------------


def test_exit_code_and_separate_streams(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(runtime, rootfs, ["sh", "-c", "echo out; echo err >&2; echo out2; exit 3"])
    assert task.pid > 0
    status = run(task.wait())
    assert (status.exit_code, status.signal, status.oom_killed) == (3, 0, False)
    assert abs(status.finished_at_ns - time.time_ns()) < 60e9
    chunks = run(collect(task))
    assert joined(chunks, 1) == b"out\nout2\n"
    assert joined(chunks, 2) == b"err\n"
    task.delete()
    assert not runtime.state_dir(task.id).exists()


def test_kill_by_signal_is_128_plus_signal(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(runtime, rootfs, ["sleep", "1000"])
    assert task.kill(signal.SIGKILL)
    status = task.wait_sync(10)
    assert status is not None and (status.exit_code, status.signal) == (137, signal.SIGKILL)
    assert not task.kill(signal.SIGKILL)  # already gone: False, no error


def test_start_failure_reports_runc_message_and_leaves_nothing(runtime: Runtime, rootfs: Path) -> None:
    cid = new_id()
    spec = runtime.build_spec(None, {"Cmd": ["nonexist"]}, {}, SpecInputs(container_id=cid, rootfs=rootfs))
    with pytest.raises(StartFailed) as err:
        runtime.start_task(cid, spec)
    assert err.value.message == (
        'OCI runtime create failed: runc create failed: unable to start container process: exec: "nonexist": '
        "executable file not found in $PATH: unknown"
    )
    assert (err.value.exit_code, err.value.status) == (127, 400)
    assert not runtime.state_dir(cid).exists()
    assert runtime.resolve().state(cid) is None
    assert cgroups.cgroup_dir("memory", runtime.cgroups_path(cid)).exists() is False


def test_unknown_runtime(runtime: Runtime) -> None:
    with pytest.raises(InvalidParameter, match="Unknown runtime specified nope"):
        runtime.resolve("nope")


# ---- stdin, tty -----------------------------------------------------------------------------------


def test_stdin_half_close_reaches_cat(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(runtime, rootfs, ["cat"], {"OpenStdin": True})

    async def scenario() -> tuple[ExitStatus, bytes]:
        writer = await task.attach_stdin()
        await writer.write(b"hello\n")
        await writer.write(b"x" * 200_000)  # more than a pipe holds: backpressure, nothing lost
        await writer.close_stdin()
        status = await task.wait()
        await writer.close()
        return status, joined(await collect(task))

    status, out = run(scenario())
    assert status.exit_code == 0
    assert out == b"hello\n" + b"x" * 200_000


def test_stdin_backpressure_does_not_block_control(runtime: Runtime, rootfs: Path) -> None:
    """A container that never reads its stdin: a client's stdin stalls, kill and resize still work."""
    task, _ = start(runtime, rootfs, ["sleep", "1000"], {"OpenStdin": True})

    async def scenario() -> ExitStatus:
        writer = await task.attach_stdin()
        stuck = asyncio.ensure_future(writer.write(b"x" * (4 << 20)))
        await asyncio.sleep(0.3)
        assert not stuck.done()
        t0 = time.monotonic()
        assert await asyncio.to_thread(task.kill, signal.SIGKILL)
        assert time.monotonic() - t0 < 2
        status = await task.wait()
        stuck.cancel()
        await writer.close()
        return status

    assert run(scenario()).exit_code == 137


def test_busy_shim_turns_clients_away_without_false_exits(runtime: Runtime, rootfs: Path) -> None:
    from engine.runtime import control

    task, _ = start(runtime, rootfs, ["sleep", "1000"])
    hogs = [control.connect(task.socket) for _ in range(70)]  # more than the shim's 64 slots
    try:
        time.sleep(0.1)
        assert task.wait_sync(0.5) is None  # still running: a timeout, not a made-up exit status
    finally:
        for sock in hogs:
            sock.close()
    assert task.kill(signal.SIGKILL)
    assert task.wait_sync(10).exit_code == 137


def test_stdin_dropped_when_not_open(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(runtime, rootfs, ["sh", "-c", "sleep 0.5; cat; echo done"])

    async def scenario() -> bytes:
        writer = await task.attach_stdin()
        await writer.write(b"ignored\n")
        await writer.close()
        await task.wait()
        return joined(await collect(task))

    assert run(scenario()) == b"done\n"  # stdin is /dev/null


def test_tty_resize_seen_by_stty(runtime: Runtime, rootfs: Path) -> None:
    task, spec = start(runtime, rootfs, ["sh", "-c", "read x; stty size; tty"], {"Tty": True, "OpenStdin": True})
    assert task.tty and spec["process"]["terminal"]
    task.resize(30, 100)

    async def scenario() -> bytes:
        writer = await task.attach_stdin()
        await writer.write(b"go\n")
        await task.wait()
        await writer.close()
        return joined(await collect(task))

    out = run(scenario())
    assert b"30 100\r\n" in out
    assert b"/dev/pts/0" in out
    assert all(s == 1 for s, _ in run(collect(task)))  # a pty has one stream


# ---- exec ------------------------------------------------------------------------------------------


def test_exec_exit_code_output_and_failure(runtime: Runtime, rootfs: Path) -> None:
    task, spec = start(runtime, rootfs, ["sleep", "1000"])
    proc = exec_process(spec, ["sh", "-c", "echo ex; echo $FOO >&2; exit 5"], env=["FOO=bar"])
    etask = runtime.exec(task.id, "e1", proc)
    status = run(etask.wait())
    assert status.exit_code == 5
    chunks = run(collect(etask))
    assert (joined(chunks, 1), joined(chunks, 2)) == (b"ex\n", b"bar\n")
    restored = runtime.restore_exec(task.id, "e1")
    assert isinstance(restored, ExitStatus) and restored.exit_code == 5
    etask.delete()
    assert runtime.restore_exec(task.id, "e1") is None

    with pytest.raises(StartFailed) as err:
        runtime.exec(task.id, "e2", exec_process(spec, ["nope"]))
    assert err.value.message.startswith(
        'OCI runtime exec failed: exec failed: unable to start container process: exec: "nope"'
    )
    assert err.value.exit_code == 127

    # an exec with a TTY and stdin, resized
    etask = runtime.exec(
        task.id, "e3", exec_process(spec, ["sh", "-c", "read x; stty size"], tty=True), open_stdin=True
    )
    etask.resize(12, 34)

    async def tty_exec() -> bytes:
        writer = await etask.attach_stdin()
        await writer.write(b"\n")
        await etask.wait()
        await writer.close()
        return joined(await collect(etask))

    assert b"12 34" in run(tty_exec())
    assert task.is_alive()  # the container itself is untouched
    task.delete()


# ---- kill, pause, update, ps, stats -------------------------------------------------------------------


def test_pause_resume_ps_update_stats(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(runtime, rootfs, ["sh", "-c", "sleep 1000 & wait"])
    deadline = time.monotonic() + 10
    while len(pids := task.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # sh forks sleep after the start returns: wait for it under load
    assert task.pid in pids and len(pids) == 2
    task.pause()
    assert task.state()["status"] == "paused"
    task.resume()
    assert task.state()["status"] == "running"
    task.update({"memory": {"limit": 64 << 20, "swap": 128 << 20}, "pids": {"limit": 50}})
    raw = task.stats()
    assert raw["memory"]["limit"] == 64 << 20
    assert raw["pids"] == {"current": 2, "limit": 50}
    assert raw["cpuacct"]["usage"] > 0 and raw["memory"]["usage"] > 0
    assert task.kill(signal.SIGKILL, all=True)
    assert task.wait_sync(10).exit_code == 137


def test_memory_limit_oom_kill(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(
        runtime,
        rootfs,
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"],
        hc={"Memory": 32 << 20, "MemorySwap": 32 << 20},
    )
    status = task.wait_sync(20)
    assert status is not None
    assert (status.exit_code, status.oom_killed) == (137, True)


def test_pids_limit(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(
        runtime, rootfs, ["sh", "-c", "i=0; while [ $i -lt 20 ]; do sleep 10 & i=$((i+1)); done"], hc={"PidsLimit": 8}
    )
    assert task.stats()["pids"]["limit"] == 8
    status = run(task.wait())
    assert status.exit_code == 2  # busybox sh gives up when fork fails
    assert joined(run(collect(task)), 2) == b"sh: can't fork: Resource temporarily unavailable\n"


# ---- daemon restart: the shim lives on, nothing is lost -----------------------------------------------


def test_restore_after_daemon_restart_loses_no_output(runtime: Runtime, rootfs: Path) -> None:
    script = "i=0; while [ $i -lt 40 ]; do echo line$i; i=$((i+1)); sleep 0.02; done; read x; echo bye; exit 7"
    task, _ = start(runtime, rootfs, ["sh", "-c", script], {"OpenStdin": True})
    cid = task.id

    async def first_daemon(task: Task) -> int:
        n, offset = 0, 0
        async for chunk in task.output("acked"):
            n += chunk.data.count(b"\n")
            offset = chunk.offset
            if n >= 5:
                break
        task.ack(offset)
        return n

    seen = run(first_daemon(task))
    shim_pid = task.shim_pid()
    del task  # the "daemon" goes away; output keeps being spooled meanwhile
    time.sleep(1.0)
    assert Path(f"/proc/{shim_pid}").exists()
    assert os.getppid() != shim_pid and Path(f"/proc/{shim_pid}/stat").read_text().split()[3] != str(os.getpid())

    restored = runtime.restore(cid)
    assert isinstance(restored, Task) and restored.pid > 0

    async def second_daemon() -> tuple[bytes, ExitStatus]:
        writer = await restored.attach_stdin()
        await writer.write(b"\n")
        data = b"".join([c.data async for c in restored.output("acked")])
        status = await restored.wait()
        await writer.close()
        return data, status

    rest, status = run(second_daemon())
    lines = rest.decode().split()
    assert lines == [f"line{i}" for i in range(seen, 40)] + ["bye"]
    assert status.exit_code == 7
    # after the exit only the status remains
    again = runtime.restore(cid)
    assert isinstance(again, ExitStatus) and again.exit_code == 7
    runtime.delete(cid)
    assert runtime.restore(cid) is None


def test_exit_while_daemon_down_keeps_unread_output(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(runtime, rootfs, ["sh", "-c", "echo a; echo b; sleep 0.3; echo c >&2; exit 4"])

    async def first_daemon(task: Task) -> None:
        async for chunk in task.output("acked"):
            task.ack(chunk.offset)
            return

    run(first_daemon(task))
    cid = task.id
    del task
    deadline = time.monotonic() + 10
    while not isinstance(status := runtime.restore(cid), ExitStatus) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert isinstance(status, ExitStatus) and status.exit_code == 4
    chunks, ended = runtime.spool(cid).read_available("acked")
    assert ended
    assert b"".join(c.data for c in chunks) in (b"b\nc\n", b"c\n")  # "a" (and "b" if read together) was acked
    assert chunks[-1].stream == 2


def test_spool_segments_rotate_and_ack_deletes(runtime: Runtime, rootfs: Path) -> None:
    runtime.segment_bytes = 4096
    task, _ = start(
        runtime, rootfs, ["sh", "-c", "i=0; while [ $i -lt 5000 ]; do echo 0123456789abcdef$i; i=$((i+1)); done"]
    )
    run(task.wait())
    assert len(task.spool.segments()) >= 2  # records are whole reads of the pipe (up to 64 KiB)

    async def consume() -> bytes:
        out = b""
        async for chunk in task.output("acked"):
            out += chunk.data
            task.ack(chunk.offset)
        return out

    data = run(consume())
    assert data.decode().split() == [f"0123456789abcdef{i}" for i in range(5000)]
    assert len(task.spool.segments()) == 1  # everything before the last one was deleted
    assert run(collect(task, "acked")) == []


def test_delete_running_container_cleans_everything(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(runtime, rootfs, ["sleep", "1000"], hc={"Memory": 64 << 20})
    shim_pid, init_pid = task.shim_pid(), task.pid
    memcg = cgroups.cgroup_dir("memory", task.cgroups_path)
    assert memcg.is_dir()
    runtime.delete(task.id)
    assert not Path(f"/proc/{init_pid}").exists()
    assert not shim_running(shim_pid, runtime.state_dir(task.id))
    assert not memcg.exists()
    assert not runtime.state_dir(task.id).exists()
    assert runtime.resolve().state(task.id) is None
    with open("/proc/self/mountinfo") as f:
        assert task.id not in f.read()


def test_init_runs_as_pid1(runtime: Runtime, rootfs: Path) -> None:
    task, spec = start(
        runtime, rootfs, ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$"], hc={"Init": True}
    )
    assert spec["process"]["args"][:2] == ["/sbin/docker-init", "--"]
    run(task.wait())
    out = joined(run(collect(task)), 1).decode().splitlines()
    assert out[0].startswith("/sbin/docker-init -- sh")
    assert out[1] != "1"


def test_container_sees_its_config(runtime: Runtime, rootfs: Path) -> None:
    script = "id -u; id -G; pwd; hostname; ulimit -n; cat /proc/self/status | grep CapEff; echo $FOO; touch /ro 2>&1 || echo rofs; "
    script += "grep SigIgn /proc/self/status"
    task, _ = start(
        runtime,
        rootfs,
        ["sh", "-c", script],
        {"User": "1:1", "WorkingDir": "/work/dir", "Env": ["FOO=bar"]},
        {"GroupAdd": ["65534"], "Ulimits": [{"Name": "nofile", "Soft": 512, "Hard": 1024}], "ReadonlyRootfs": True},
    )
    run(task.wait())
    out = joined(run(collect(task))).decode().splitlines()
    assert out[:5] == ["1", "1 65534", "/work/dir", task.id[:12], "512"]
    assert out[5].split()[1] == "0000000000000000"  # non-root: no effective capabilities
    assert out[6:9] == ["bar", "touch: /ro: Read-only file system", "rofs"]
    # the shim ignores SIGHUP/SIGINT/SIGPIPE/SIGTERM; none of that leaks in (busybox sh ignores SIGQUIT itself)
    assert int(out[9].split()[1], 16) & (1 << 0 | 1 << 1 | 1 << 12 | 1 << 14) == 0
    assert (rootfs / "work" / "dir").is_dir()


def test_seccomp_default_profile_and_unconfined(runtime: Runtime, rootfs: Path) -> None:
    script = "grep Seccomp: /proc/self/status; unshare -U true && echo unshared"
    confined, spec = start(runtime, rootfs, ["sh", "-c", script])
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    free, spec2 = start(runtime, rootfs, ["sh", "-c", script], hc={"SecurityOpt": ["seccomp=unconfined"]})
    assert "seccomp" not in spec2["linux"]
    run(confined.wait())
    run(free.wait())
    out = joined(run(collect(confined))).decode()
    assert "Seccomp:\t2" in out and "unshared" not in out and "Operation not permitted" in out
    assert joined(run(collect(free))).decode().split() == ["Seccomp:", "0", "unshared"]


def test_privileged_tty_with_initial_console_size(runtime: Runtime, rootfs: Path) -> None:
    task, _ = start(
        runtime,
        rootfs,
        ["sh", "-c", "stty size; grep -E 'Seccomp:|CapEff' /proc/self/status; ls /dev/null /dev/zero"],
        {"Tty": True},
        {"Privileged": True, "ConsoleSize": [20, 70]},
    )
    run(task.wait())
    out = joined(run(collect(task))).decode().split("\r\n")
    assert out[0] == "20 70"
    assert out[1].split() == [
        "CapEff:",
        f"{sum(1 << caps.CAPABILITIES.index(c) for c in caps.all_capabilities()):016x}",
    ]
    assert out[2].split() == ["Seccomp:", "0"]


# ---- measurements ---------------------------------------------------------------------------------


def _rss_pss(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


def test_measure_shim_memory_and_start_latency(runtime: Runtime, rootfs: Path, tmp_path: Path) -> None:
    """Prints the shim's RSS/PSS and the start latency of a `true` container (median of 20) next to a
    plain `runc run`; asserts only generous bounds (the machine is shared)."""
    tasks = [start(runtime, rootfs, ["sleep", "1000"])[0] for _ in range(3)]
    mem = [_rss_pss(t.shim_pid()) for t in tasks]
    for t in tasks:
        runtime.delete(t.id)

    ours = []
    for _ in range(20):
        cid = new_id()
        spec = runtime.build_spec(None, {"Cmd": ["true"]}, {}, SpecInputs(container_id=cid, rootfs=rootfs))
        t0 = time.perf_counter()
        task = runtime.start_task(cid, spec)
        ours.append(time.perf_counter() - t0)
        task.wait_sync(10)
        runtime.delete(cid)

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec["linux"]["cgroupsPath"] = f"{runtime.cgroup_parent()}/plainrunc"
    (bundle / "config.json").write_text(json.dumps(spec))
    plain = []
    import subprocess

    for i in range(20):
        t0 = time.perf_counter()
        subprocess.run(
            ["runc", "--root", str(tmp_path / "runc"), "run", "--bundle", str(bundle), f"plain{i}"], check=True
        )
        plain.append(time.perf_counter() - t0)

    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(
        f"\nshim RSS/PSS kB with 3 shims: {mem}; start of `true` median ours {med(ours) * 1000:.1f} ms "
        f"(until running) vs plain `runc run` {med(plain) * 1000:.1f} ms (until exited)"
    )
    assert all(rss < 13_000 and pss < 2_900 for rss, pss in mem)
    assert med(ours) < med(plain) * 3 + 0.1
