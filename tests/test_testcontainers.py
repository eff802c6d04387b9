"""testcontainers-python (PyPI ``testcontainers``) against engined, as a user's test suite runs it:
a program with DOCKER_HOST at engined's socket and the reaper (Ryuk, an image from Docker Hub that
engine's tests never pull) disabled with TESTCONTAINERS_RYUK_DISABLED=true. Without Ryuk, the
container is removed by the context manager's exit, which this test checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

PROGRAM = r"""
import json, sys, urllib.request
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs

label = sys.argv[1]
serve = "mkdir /www && echo tc-ok > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www"
container = (
    DockerContainer("busybox:latest")
    .with_command(["sh", "-c", serve])
    .with_exposed_ports(8080)
    .with_env("GREETING", "hello")
    .with_kwargs(labels={"engine.test": label})
)
with container:
    wait_for_logs(container, "serving", timeout=60)
    host, port = container.get_container_host_ip(), container.get_exposed_port(8080)
    if host == "localhost":
        host = "127.0.0.1"  # engine publishes on IPv4 loopback; localhost may resolve to ::1 first
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    body = no_proxy.open(f"http://{host}:{port}/", timeout=10).read().decode()
    code, out = container.exec(["sh", "-c", "echo $GREETING"])
    logs = container.get_logs()[0].decode()
    print(json.dumps({"body": body, "exec": [code, out.decode()], "logs": logs, "id": container.get_wrapped_container().id}))
"""


def test_testcontainers_python_with_ryuk_disabled(engine, busybox, docker) -> None:
    label = uuid.uuid4().hex
    env = {**os.environ, "DOCKER_HOST": engine.host, "TESTCONTAINERS_RYUK_DISABLED": "true"}
    env.pop("DOCKER_CONTEXT", None)
    proc = subprocess.run([sys.executable, "-c", PROGRAM, label], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["body"] == "tc-ok\n"
    assert seen["exec"] == [0, "hello\n"]
    assert seen["logs"] == "serving\n"
    # no reaper was started, and the context manager removed the container
    assert docker("ps", "-aq", "--filter", f"label=engine.test={label}").out == ""
    assert "ryuk" not in docker("ps", "-a", "--format", "{{.Image}} {{.Names}}").out
    assert docker.run("inspect", seen["id"]).returncode != 0
