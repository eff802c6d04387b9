"""docker-compose (v1, Debian's package: its own docker-py) against engined: a three-service project
with two networks (one internal), a named volume, a published port, a health check that a
`depends_on: condition: service_healthy` waits for, service-name DNS, exec, run, scale, and
`down -v` leaving nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from engine_testkit.network import free_port

COMPOSE = shutil.which("docker-compose") or "docker-compose"  # Debian's package, from make install

PROJECT = """
version: "3.8"
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 8080 -h /www"]
    ports: ["127.0.0.1:{port}:8080"]
    networks: [front, back]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 5
  worker:
    image: busybox:latest
    # started only once web is healthy, so its first fetch succeeds
    command: ["sh", "-c", "wget -q -O /data/fetched http://web:8080/ && exec sleep 600"]
    depends_on:
      web: {{condition: service_healthy}}
    networks: [back]
    volumes: ["data:/data"]
  client:
    image: busybox:latest
    command: ["sh", "-c", "echo from-client > /data/note 2>/dev/null; sleep 600"]
    depends_on: [web, worker]
    networks: [back]
    environment: {{FOO: bar}}
    volumes: ["data:/data:ro"]
networks:
  front: {{}}
  back:
    internal: true
volumes:
  data: {{}}
"""


def test_compose_project_lifecycle(engine, busybox, docker, tmp_path: Path) -> None:
    port = free_port()
    project = "cp" + uuid.uuid4().hex[:8]
    (tmp_path / "docker-compose.yml").write_text(PROJECT.format(port=port))
    env = {**os.environ, "DOCKER_HOST": engine.host, "COMPOSE_PROJECT_NAME": project}

    def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([COMPOSE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert not check or result.returncode == 0, result.stderr
        return result

    try:
        compose("up", "-d")
        web, client = f"{project}_web_1", f"{project}_client_1"
        # `up` returned after worker started, which waited for web's health check
        assert docker("inspect", "-f", "{{.State.Health.Status}}", web).out == "healthy"
        deadline = time.monotonic() + 30
        while docker("inspect", "-f", "{{.State.Health.Status}}", web).out != "healthy":
            assert time.monotonic() < deadline, "web never became healthy"
            time.sleep(0.2)
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
        with no_proxy.open(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            assert answer.read() == b"hello-from-web\n"
        # the service name resolves on the shared (internal) network; the env and read-only volume hold
        out = compose(
            "exec", "-T", "client", "sh", "-c", "wget -q -O - http://web:8080/; echo $FOO; touch /data/x 2>&1 || true"
        ).stdout
        assert out.startswith("hello-from-web\nbar\n") and "Read-only file system" in out
        # worker fetched from web (healthy before it started) into the shared named volume
        deadline = time.monotonic() + 30
        while (fetched := compose("exec", "-T", "client", "cat", "/data/fetched", check=False)).returncode != 0:
            assert time.monotonic() < deadline, fetched.stderr
            time.sleep(0.2)
        assert fetched.stdout == "hello-from-web\n"
        assert compose("run", "--rm", "-T", "client", "echo", "run-ok").stdout.strip().endswith("run-ok")
        labels = json.loads(docker("inspect", "-f", "{{json .Config.Labels}}", client).out)
        assert labels["com.docker.compose.project"] == project and labels["com.docker.compose.service"] == "client"
        internal = docker("network", "inspect", "-f", "{{.Internal}}", f"{project}_back").out
        assert internal == "true"
        compose("up", "-d", "--scale", "client=2")
        assert len(docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project}").lines()) == 4
        compose("restart", "-t", "1", "web")
        assert docker("inspect", "-f", "{{.State.Running}}", web).out == "true"
    finally:
        compose("down", "-v", "-t", "1", check=False)
    assert docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").out == ""
    assert project not in docker("network", "ls", "--format", "{{.Name}}").out
    assert project not in docker("volume", "ls", "--format", "{{.Name}}").out
