"""The core stories with two docker CLIs against the same engined: Docker's CLI 28 (/usr/local/bin)
and Debian's CLI 20.10 (package docker.io; only its client, put in .venv/bin by `make install`, see
scripts/docker-cli-20.10): run, ps, logs, exec, images, build (classic builder, DOCKER_BUILDKIT=0),
network and volume."""

from __future__ import annotations

import ipaddress
import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_testkit.cli import DOCKER, DockerCLI

DOCKER_2010 = str(Path(sys.executable).with_name("docker-20.10"))
CLIS = {"28": DOCKER, "20.10": DOCKER_2010}


@pytest.fixture(params=sorted(CLIS), ids=lambda v: f"cli-{v}")
def cli(request: pytest.FixtureRequest, engine, busybox, tmp_path: Path) -> Iterator[tuple[str, DockerCLI]]:
    binary = CLIS[request.param]
    if shutil.which(binary) is None:
        pytest.fail(f"{binary} is missing: `make install` puts Debian's docker CLI 20.10 there")
    yield request.param, DockerCLI(engine.host, config_dir=tmp_path / "config", binary=binary)


def test_client_version_is_the_one_named(cli) -> None:
    version, docker = cli
    assert docker("version", "--format", "{{.Client.Version}}").out.startswith(version + ".")
    assert docker("version", "--format", "{{.Server.Version}}").out == "20.10.24"


def test_run_ps_logs_exec(cli) -> None:
    _, docker = cli
    name = "cl" + uuid.uuid4().hex[:10]
    try:
        assert docker("run", "--rm", "busybox", "echo", "hi there").out == "hi there"
        docker("run", "-d", "--name", name, "busybox", "sh", "-c", "echo started; exec sleep 300")
        assert name in docker("ps", "--format", "{{.Names}}").lines()
        assert docker("ps", "-q", "--filter", f"name={name}").out != ""
        assert docker("logs", name).out == "started"
        assert docker("exec", name, "sh", "-c", "echo $((6*7))").out == "42"
        assert docker("exec", "-e", "X=1", "-w", "/tmp", name, "sh", "-c", "echo $X $PWD").out == "1 /tmp"
        docker("stop", "-t", "1", name)
        assert name in docker("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").lines()
    finally:
        docker.run("rm", "-f", name)


def test_images_and_classic_build(cli, tmp_path: Path) -> None:
    _, docker = cli
    assert "busybox" in docker("images", "--format", "{{.Repository}}:{{.Tag}}").out
    tag = "clbuild" + uuid.uuid4().hex[:8] + ":v1"
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "greeting").write_text("built\n")
    (context / "Dockerfile").write_text(
        'FROM busybox:latest\nCOPY greeting /greeting\nRUN cat /greeting > /copied\nCMD ["cat", "/copied"]\n'
    )
    try:
        built = docker("build", "-t", tag, str(context))  # DOCKER_BUILDKIT=0: the classic builder
        assert "Successfully tagged " + (tag if ":" in tag else tag + ":latest") in built.stdout
        assert docker("run", "--rm", tag).out == "built"
        history = docker("history", "--format", "{{.CreatedBy}}", tag).out
        assert "COPY" in history or "greeting" in history
    finally:
        docker.run("rmi", "-f", tag)


def test_network_and_volume(cli) -> None:
    _, docker = cli
    suffix = uuid.uuid4().hex[:8]
    net, vol, server = f"clnet{suffix}", f"clvol{suffix}", f"clsrv{suffix}"
    try:
        docker("network", "create", net)  # IPAM picks the subnet (a fixed one could clash with another daemon's)
        assert docker("network", "inspect", "-f", "{{.Driver}}", net).out == "bridge"
        docker("volume", "create", vol)
        assert vol in docker("volume", "ls", "-q").lines()
        docker("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
        assert docker("run", "--rm", "-v", f"{vol}:/data:ro", "busybox", "cat", "/data/f").out == "kept"
        docker("run", "-d", "--name", server, "--network", net, "busybox", "sleep", "300")
        ip = docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}', server).out
        subnet = docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", net).out
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet)
        assert docker("run", "--rm", "--network", net, "busybox", "ping", "-c", "1", "-W", "5", server).returncode == 0
        containers = json.loads(docker("network", "inspect", "-f", "{{json .Containers}}", net).out)
        assert [c["Name"] for c in containers.values()] == [server]
    finally:
        docker.run("rm", "-f", server)
        docker.run("network", "rm", net)
        docker.run("volume", "rm", vol)
    assert vol not in docker("volume", "ls", "-q").lines()
    assert net not in docker("network", "ls", "--format", "{{.Name}}").lines()
