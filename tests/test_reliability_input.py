"""Hostile API bodies (issue 14, item 1): every body is checked against the Engine API 1.41 types and
ranges before anything is stored. Bad input is a 400 in dockerd's words (Go's json decoding errors),
never a 500 with Python's, and nothing stored can break a listing, an inspect or a restart."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest

NAME_PREFIX = "ri-"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("engine", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def call(engine, method: str, path: str, body: bytes | str | None = None) -> tuple[int, Any]:
    conn = UnixHTTPConnection(str(engine.socket))
    try:
        raw = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": "application/json"} if raw is not None else {}
        conn.request(method, path, body=raw, headers=headers)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data
    finally:
        conn.close()


@pytest.fixture
def log_mark(engine):
    """The daemon log's length before the test: what the test adds is checked for tracebacks."""
    start = len(engine.log())
    yield
    added = engine.log()[start:]
    assert "Traceback" not in added, added


def create_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Image": "busybox", "Cmd": ["true"]}
    host = over.pop("HostConfig", None)
    body.update(over)
    if host is not None:
        body["HostConfig"] = host
    return body


def count_containers(engine) -> int:
    status, items = call(engine, "GET", "/v1.41/containers/json?all=1")
    assert status == 200, items
    return len(items)


BAD_CREATES = [
    pytest.param(create_body(Cmd=[1, 2]), "cannot unmarshal number into Go struct field", id="cmd-ints"),
    pytest.param(create_body(Cmd={"a": 1}), "cannot unmarshal object into Go struct field", id="cmd-object"),
    pytest.param(create_body(Env={"A": "1"}), "ContainerConfig.Env of type []string", id="env-object"),
    pytest.param(create_body(Labels={"a": 1}), "ContainerConfig.Labels of type string", id="label-int"),
    pytest.param(create_body(StopTimeout=1e30), "StopTimeout of type int", id="stoptimeout-huge"),
    pytest.param(create_body(Tty="yes"), "cannot unmarshal string into Go struct field", id="tty-string"),
    pytest.param(create_body(HostConfig=[1]), "Go struct field ContainerConfig.HostConfig", id="hostconfig-list"),
    pytest.param(create_body(HostConfig={"Memory": 1e30}), "HostConfig.Memory of type int64", id="memory-1e30"),
    pytest.param(create_body(HostConfig={"Memory": 2**70}), "number 1180591620717411303424", id="memory-2**70"),
    pytest.param(create_body(HostConfig={"Memory": 1.5}), "number 1.5", id="memory-float"),
    pytest.param(create_body(HostConfig={"PidsLimit": 2**63}), "HostConfig.PidsLimit of type int64", id="pids"),
    pytest.param(create_body(HostConfig={"CpuShares": 1e30}), "HostConfig.CpuShares of type int64", id="cpushares"),
    pytest.param(create_body(HostConfig={"Devices": [1]}), "HostConfig.Devices of type", id="devices-int"),
    pytest.param(
        create_body(HostConfig={"PortBindings": {"80/tcp": [{"HostPort": 80}]}}),
        "Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string",
        id="hostport-int",
    ),
    pytest.param(
        create_body(HostConfig={"BlkioWeight": 70000}), "HostConfig.BlkioWeight of type uint16", id="blkio-range"
    ),
    pytest.param(
        create_body(NetworkingConfig={"EndpointsConfig": {"n": {"Aliases": "x"}}}),
        "EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases of type []string",
        id="aliases-string",
    ),
    pytest.param(["Image", "busybox"], "cannot unmarshal array into Go value of type", id="body-list"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_CREATES)
def test_bad_create_bodies_are_400_in_gos_words(engine, log_mark, body, expected):
    before = count_containers(engine)
    status, answer = call(engine, "POST", "/v1.41/containers/create", json.dumps(body))
    assert status == 400, answer
    assert answer["message"].startswith("json: cannot unmarshal"), answer
    assert expected in answer["message"], answer
    assert count_containers(engine) == before


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"Image":"busybox","Labels":{"a":NaN}}', id="nan"),
        pytest.param('{"Image":"busybox","StopTimeout":Infinity}', id="infinity"),
        pytest.param('{"Image":"busybox","HostConfig":{"Memory":-Infinity}}', id="minus-infinity"),
        pytest.param('{"Image":"busybox",', id="truncated"),
        pytest.param('{"Image":"busybox"} x', id="trailing"),
    ],
)
def test_json_syntax_errors_are_400(engine, log_mark, raw):
    before = count_containers(engine)
    status, answer = call(engine, "POST", "/v1.41/containers/create", raw)
    assert status == 400, answer
    assert "invalid character" in answer["message"] or "unexpected EOF" in answer["message"], answer
    assert count_containers(engine) == before


def test_invalid_utf8_is_400(engine, log_mark):
    status, answer = call(engine, "POST", "/v1.41/containers/create", b'{"Image":"busybox","Labels":{"a":"\xff\xfe"}}')
    assert status == 400, answer
    assert "UTF-8" in answer["message"], answer


def test_null_fields_are_accepted_as_dockerd_does(engine, busybox, log_mark, cleanup, name):
    cleanup.append(name)
    body = create_body(Env=None, HostConfig={"Memory": None, "Binds": None}, Labels=None)
    status, answer = call(engine, "POST", f"/v1.41/containers/create?name={name}", json.dumps(body))
    assert status == 201, answer
    status, data = call(engine, "GET", f"/v1.41/containers/{name}/json")
    assert status == 200, data


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("POST", "/v1.41/networks/create", {"Name": "x", "Labels": ["a"]}, "Labels of type map[string]string"),
        ("POST", "/v1.41/networks/create", {"Name": 5}, "Name of type string"),
        ("POST", "/v1.41/volumes/create", {"Name": "v", "DriverOpts": {"a": 1}}, "DriverOpts of type string"),
        ("POST", "/v1.41/networks/none/connect", {"Container": ["x"]}, "Container of type string"),
        ("POST", "/v1.41/networks/none/disconnect", {"Force": "yes"}, "Force of type bool"),
    ],
)
def test_other_bodies_are_validated(engine, log_mark, method, path, body, expected):
    status, answer = call(engine, method, path, json.dumps(body))
    assert status == 400, answer
    assert expected in answer["message"], answer


def test_update_and_exec_bodies_are_validated(engine, busybox, log_mark, cleanup, name):
    cleanup.append(name)
    status, answer = call(engine, "POST", f"/v1.41/containers/create?name={name}", json.dumps(create_body()))
    assert status == 201, answer
    status, answer = call(engine, "POST", f"/v1.41/containers/{name}/update", json.dumps({"Memory": 2**70}))
    assert status == 400, answer
    assert "Memory of type int64" in answer["message"]
    status, answer = call(engine, "POST", f"/v1.41/containers/{name}/exec", json.dumps({"Cmd": [1]}))
    assert status == 400, answer
    assert "ExecConfig.Cmd of type string" in answer["message"]
    status, data = call(engine, "GET", f"/v1.41/containers/{name}/json")
    assert status == 200
    assert data["HostConfig"]["Memory"] == 0


def test_500s_do_not_carry_python_words(engine, log_mark):
    """The route bodies that once raised TypeError: now all client errors."""
    for body in ({"Image": "busybox", "Volumes": ["x"]}, {"Image": "busybox", "ExposedPorts": ["80"]}):
        status, answer = call(engine, "POST", "/v1.41/containers/create", json.dumps(body))
        assert status == 400, answer
        assert "object is not" not in answer["message"]


def test_nul_bytes_and_bad_signals_are_client_errors(engine, busybox, log_mark, cleanup, name):
    cleanup.append(name)
    status, answer = call(
        engine, "POST", f"/v1.41/containers/create?name={name}", json.dumps(create_body(Cmd=["sleep", "100"]))
    )
    assert status == 201, answer
    assert call(engine, "POST", f"/v1.41/containers/{name}/start")[0] == 204
    status, answer = call(engine, "GET", f"/v1.41/containers/{name}/top?ps_args=%00")
    assert status == 400, answer
    status, answer = call(engine, "HEAD", f"/v1.41/containers/{name}/archive?path=/%00")
    assert status == 400, answer
    status, answer = call(engine, "POST", f"/v1.41/containers/{name}/kill?signal=999")
    assert status == 400, answer
    assert answer["message"] == "The linux daemon does not support signal 999"
