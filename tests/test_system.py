"""System endpoints through the real docker CLI, docker-py and raw HTTP: ping, version negotiation,
version, info, events, Docker's error form, unknown routes, swarm and plugin endpoints."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
import uuid

import pytest

from engine import registry


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def request(engine, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = UnixHTTPConnection(str(engine.socket))
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# ---- ping and versions ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_ping(engine, method):
    status, headers, body = request(engine, method, "/_ping")
    assert status == 200
    assert body == (b"" if method == "HEAD" else b"OK")
    assert headers["Api-Version"] == "1.41"
    assert headers["Builder-Version"] == "1"
    assert headers["Ostype"] == "linux"
    assert headers["Server"] == "Docker/20.10.24 (linux)"
    assert headers["Docker-Experimental"] == "false"
    assert headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert headers["Pragma"] == "no-cache"
    if method == "HEAD":
        assert headers["Content-Length"] == "0"


@pytest.mark.parametrize("version", ["1.24", "1.30", "1.40", "1.41"])
def test_supported_api_versions(engine, version):
    status, _, body = request(engine, "GET", f"/v{version}/version")
    assert status == 200 and json.loads(body)["ApiVersion"] == "1.41"


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("1.42", "client version 1.42 is too new. Maximum supported API version is 1.41"),
        ("2.0", "client version 2.0 is too new. Maximum supported API version is 1.41"),
        (
            "1.23",
            "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version",
        ),
    ],
)
def test_unsupported_api_versions(engine, version, message):
    status, headers, body = request(engine, "GET", f"/v{version}/version")
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"message": message}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/v1.41/nope"), ("GET", "/v9.99/nope"), ("DELETE", "/version"), ("PUT", "/info")],
)
def test_unknown_routes_are_page_not_found(engine, method, path):
    status, _, body = request(engine, method, path)
    assert (status, json.loads(body)) == (404, {"message": "page not found"})


def test_cors_preflight(engine):
    assert request(engine, "OPTIONS", "/v1.41/containers/json")[0] == 200


@pytest.mark.parametrize(
    "path", ["/swarm", "/services", "/nodes", "/tasks", "/secrets", "/configs", "/swarm/unlockkey"]
)
def test_swarm_endpoints_say_not_a_manager(engine, path):
    status, _, body = request(engine, "GET", path)
    assert status == 503
    assert json.loads(body)["message"] == (
        'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node '
        "to swarm and try again."
    )


def test_plugins(engine, docker):
    status, _, body = request(engine, "GET", "/plugins")
    assert (status, json.loads(body)) == (200, [])
    status, _, body = request(engine, "GET", "/plugins/foo/json")
    assert (status, json.loads(body)) == (404, {"message": 'plugin "foo" not found'})
    assert docker("plugin", "ls", "-q").out == ""


def test_build_prune(engine):
    status, _, body = request(engine, "POST", "/build/prune")
    assert (status, json.loads(body)) == (200, {"CachesDeleted": None, "SpaceReclaimed": 0})


def test_docker_version(docker):
    out = docker("version", "--format", "{{json .}}").stdout
    server = json.loads(out)["Server"]
    assert server["Version"] == "20.10.24"
    assert server["ApiVersion"] == "1.41" and server["MinAPIVersion"] == "1.24"
    assert server["Os"] == "linux"
    assert "API version:       1.41" in docker("version").stdout


def test_docker_py_version(api):
    version = api.version()
    assert version["ApiVersion"] == "1.41" and version["MinAPIVersion"] == "1.24"
    assert version["Version"] == "20.10.24"
    assert {c["Name"] for c in version["Components"]} >= {"Engine"}


# ---- info ----------------------------------------------------------------------------------------


def test_docker_info_shows_drivers(docker, engine):
    info = json.loads(docker("info", "--format", "{{json .}}").stdout)
    assert info["Driver"] == engine.config["storage-driver"]
    assert info["Plugins"]["Volume"] == ["local"]
    assert info["Plugins"]["Network"] == registry.DriverRegistry(registry.NETWORK).names()
    assert info["Plugins"]["Log"] == registry.DriverRegistry(registry.LOG).names()
    assert info["DockerRootDir"] == str(engine.data_root)
    text = docker("info").stdout
    assert f"Storage Driver: {engine.config['storage-driver']}" in text
    for status_key, _ in info["DriverStatus"]:
        assert f"  {status_key}: " in text
    assert "Log: " + " ".join(info["Plugins"]["Log"]) in text
    assert "Network: " + " ".join(info["Plugins"]["Network"]) in text


def test_docker_py_info(api, engine):
    info = api.info()
    assert info["Driver"] == engine.config["storage-driver"]
    assert info["ServerVersion"] == "20.10.24"
    assert info["OSType"] == "linux" and info["Swarm"]["LocalNodeState"] == "inactive"


# ---- events ---------------------------------------------------------------------------------------


def make_events(docker) -> tuple[str, float, float]:
    """A volume created and removed: two events between the returned times."""
    name = f"sysev-{uuid.uuid4().hex[:12]}"
    since = time.time()
    docker("volume", "create", "--label", "origin=test_system", name)
    docker("volume", "rm", name)
    return name, since, time.time() + 0.2


def test_events_since_until_filters_with_the_cli(docker):
    name, since, until = make_events(docker)
    args = [
        "system",
        "events",
        "--since",
        f"{since:.9f}",
        "--until",
        f"{until:.9f}",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}}",
    ]
    assert docker(*args, "--filter", f"volume={name}").lines() == [f"volume create {name}", f"volume destroy {name}"]
    assert docker(*args, "--filter", f"volume={name}", "--filter", "event=destroy").lines() == [
        f"volume destroy {name}"
    ]
    assert docker(*args, "--filter", f"volume={name}", "--filter", "type=container").lines() == []
    assert docker(*args, "--filter", f"volume={name[:10]}").lines()[:1] == [f"volume create {name}"]  # prefix match
    # with only --until, every past event up to it is sent
    assert (
        f"volume destroy {name}"
        in docker(
            "system", "events", "--until", f"{until:.9f}", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}"
        ).stdout
    )


def test_events_with_since_after_until_is_an_error(docker):
    result = docker.fails("system", "events", "--since", "200", "--until", "100")
    assert "Error response from daemon: `since` time (200) cannot be after `until` time (100)" in result.stderr


def test_events_stream_live(docker, engine):
    name = f"live-{uuid.uuid4().hex[:12]}"
    proc = docker.popen("events", "--filter", f"volume={name}", "--format", "{{.Action}}", stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while json.loads(request(engine, "GET", "/info")[2])["NEventsListener"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        docker("volume", "create", name)
        docker("volume", "rm", name)
        assert proc.stdout.readline().strip() == b"create"
        assert proc.stdout.readline().strip() == b"destroy"
    finally:
        proc.terminate()
        proc.wait(10)


def test_docker_py_events(api, docker):
    name, since, until = make_events(docker)
    events = list(api.events(since=since, until=until, filters={"volume": name}, decode=True))
    assert [(e["Type"], e["Action"]) for e in events] == [("volume", "create"), ("volume", "destroy")]
    assert all(e["scope"] == "local" and e["timeNano"] // 1_000_000_000 == e["time"] for e in events)
    assert events[0]["Actor"]["Attributes"] == {"driver": "local"}
