"""OCI runtimes from daemon.json (`runtimes`, `default-runtime`) and `docker run --runtime`."""

from __future__ import annotations

import json
from pathlib import Path

from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon


def test_info_lists_configured_runtimes(docker: DockerCLI) -> None:
    runtimes = json.loads(docker("info", "--format", "{{json .Runtimes}}").out)
    assert runtimes["runc"] == {"path": "runc"}
    assert runtimes["runc-debug"] == {"path": "runc", "runtimeArgs": ["--debug"]}
    assert docker("info", "--format", "{{.DefaultRuntime}}").out == "runc"


def test_run_with_a_named_runtime(docker: DockerCLI, busybox: str, engine: EngineDaemon) -> None:
    cid = docker("run", "-d", "--runtime", "runc-debug", "--network", "none", busybox, "sleep", "30").out
    try:
        assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", cid).out == "runc-debug"
        # --debug is a global runc argument: runc logs at debug level for this container only
        runc_log = Path(engine.exec_root, "containers", cid, "runc.log").read_text()
        assert '"level":"debug"' in runc_log
        assert docker("exec", cid, "echo", "in").out == "in"
    finally:
        docker("rm", "-f", cid)
    plain = docker("run", "-d", "--network", "none", busybox, "true").out
    docker("wait", plain)
    assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", plain).out == "runc"
    docker("rm", plain)


def test_unknown_runtime_is_refused(docker: DockerCLI, busybox: str) -> None:
    result = docker.fails("run", "--rm", "--runtime", "nope", busybox, "true")
    assert "Unknown runtime specified nope" in result.stderr


def test_default_runtime_from_daemon_json(busybox_tar: bytes) -> None:
    config = {
        "storage-driver": "vfs",
        "runtimes": {"runc-debug": {"path": "runc", "runtimeArgs": ["--debug"]}},
        "default-runtime": "runc-debug",
    }
    with EngineDaemon(config=config) as daemon:
        docker = DockerCLI(daemon.host)
        docker("import", "-", "bb:1", input=busybox_tar)
        cid = docker("create", "--network", "none", "bb:1", "sh", "-c", "exit 4").out
        assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", cid).out == "runc-debug"
        assert docker.run("start", "-a", cid).returncode == 4
        assert docker("info", "--format", "{{.DefaultRuntime}}").out == "runc-debug"
        docker("rm", cid)
