"""Authorization plugins with dockerd's protocol: a real authz server (a small aiohttp app on a unix
socket in engine's plugins directory, written here) denies a path, and the docker CLI sees the denial.
Also: the request and response it is shown, discovery by spec file, "any deny wins", refusal at start-up
of a plugin that is not there, and the set reloaded on SIGHUP."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import registry
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

SOCKETS_DIR = Path("/run/engine/plugins")
SPEC_DIR = Path("/etc/engine/plugins")
LIGHT = {"storage-driver": "vfs", "log-driver": "none"}
if registry.DriverRegistry(registry.NETWORK).is_installed("bridge"):
    LIGHT["bridge"] = "none"  # a key of engine-plugin-bridge

#: the plugin: denies requests whose path ends with DENY_REQUEST and responses to DENY_RESPONSE;
#: records what it was sent, one JSON object a line, in LOG
SERVER = r"""
import json, sys
from aiohttp import web

sock, log, deny_request, deny_response = sys.argv[1:5]

def record(kind, body):
    with open(log, "a") as f:
        f.write(json.dumps({"kind": kind, "body": body}) + "\n")

async def activate(request):
    record("activate", {"accept": request.headers.get("Accept")})
    return web.json_response({"Implements": ["authz"]})

async def authz_req(request):
    body = await request.json()
    record("req", body)
    if body["RequestURI"].split("?")[0].endswith(deny_request):
        return web.json_response({"Allow": False, "Msg": "no " + deny_request + " for you"})
    if body["RequestURI"].split("?")[0].endswith("/networks"):
        return web.json_response({"Allow": False, "Err": "the plugin broke"})
    return web.json_response({"Allow": True})

async def authz_res(request):
    body = await request.json()
    record("res", body)
    if body["RequestURI"].split("?")[0].endswith(deny_response):
        return web.json_response({"Allow": False, "Msg": "this answer stays here"})
    return web.json_response({"Allow": True})

app = web.Application()
app.router.add_post("/Plugin.Activate", activate)
app.router.add_post("/AuthZPlugin.AuthZReq", authz_req)
app.router.add_post("/AuthZPlugin.AuthZRes", authz_res)
web.run_app(app, path=sock, print=None, handle_signals=True)
"""


class AuthzServer:
    def __init__(self, tmp: Path, sock: Path, deny_request: str, deny_response: str = "/never") -> None:
        self.sock, self.log = sock, tmp / f"{sock.stem}.log"
        script = tmp / "authz_server.py"
        script.write_text(SERVER)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(sock), str(self.log), deny_request, deny_response]
        )
        deadline = time.monotonic() + 30
        while not sock.is_socket():
            assert self.proc.poll() is None and time.monotonic() < deadline, "the authz server did not start"
            time.sleep(0.05)

    def records(self, kind: str) -> list[dict]:
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r["body"] for r in lines if r["kind"] == kind]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.sock.unlink(missing_ok=True)


@pytest.fixture(scope="module", autouse=True)
def plugin_dirs() -> Iterator[None]:
    """engine's plugin directories, made if missing and removed again (when empty) afterwards."""
    made = [d for d in (SOCKETS_DIR.parent, SOCKETS_DIR, SPEC_DIR.parent, SPEC_DIR) if not d.exists()]
    for d in made:
        d.mkdir(mode=0o755)
    yield
    for d in reversed(made):
        try:
            d.rmdir()
        except OSError:
            pass  # something else put a file there meanwhile: leave it


@pytest.fixture
def plugin_name() -> str:
    return f"engtest-authz-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def server(tmp_path: Path, plugin_name: str) -> Iterator[AuthzServer]:
    srv = AuthzServer(tmp_path, SOCKETS_DIR / f"{plugin_name}.sock", deny_request="/info", deny_response="/images/json")
    yield srv
    srv.stop()


def test_the_plugin_denies_and_the_cli_sees_it(server: AuthzServer, plugin_name: str) -> None:
    with EngineDaemon(config={**LIGHT, "authorization-plugins": [plugin_name]}) as daemon:
        docker = DockerCLI(daemon.host)
        assert server.records("activate") == [{"accept": "application/vnd.docker.plugins.v1.2+json"}]
        assert docker("version", "--format", "{{.Server.Version}}").out == "20.10.24"
        denied = docker.fails("info")
        assert f"Error response from daemon: authorization denied by plugin {plugin_name}: no /info for you" in (
            denied.stderr
        )
        # the plugin's own failure: a 500 naming it
        broken = docker.fails("network", "ls")
        assert f"Error response from daemon: plugin {plugin_name} failed with error: the plugin broke" in broken.stderr
        # the response check: the handler ran, its answer is withheld
        denied = docker.fails("images")
        assert f"authorization denied by plugin {plugin_name}: this answer stays here" in denied.stderr

        # what the plugin was told: dockerd's Request fields, the JSON body in base64, the answer
        docker("volume", "create", "--label", "a=b", "authz-v")
        docker("volume", "rm", "authz-v")
        req = next(r for r in server.records("req") if r["RequestURI"].endswith("/volumes/create"))
        assert req["RequestMethod"] == "POST" and req["RequestURI"].startswith("/v1.")
        assert req["User"] == "" and req["UserAuthNMethod"] == ""
        assert req["RequestHeaders"]["Content-Type"] == "application/json"
        assert json.loads(base64.b64decode(req["RequestBody"]))["Name"] == "authz-v"
        res = next(r for r in server.records("res") if r["RequestURI"].endswith("/volumes/create"))
        assert res["ResponseStatusCode"] == 201
        assert json.loads(base64.b64decode(res["ResponseBody"]))["Labels"] == {"a": "b"}
        removed = next(r for r in server.records("res") if "/volumes/authz-v" in r["RequestURI"])
        assert (removed["RequestMethod"], removed["ResponseStatusCode"]) == ("DELETE", 204)
        assert removed["RequestBody"] is None


def test_a_plugin_that_is_not_there_stops_start_up(plugin_name: str) -> None:
    daemon = EngineDaemon(config={**LIGHT, "authorization-plugins": [plugin_name]})
    try:
        with pytest.raises(RuntimeError, match="engined exited"):
            daemon.start()
        assert f"failed to validate authorization plugin: plugin {plugin_name} not found" in daemon.log()
        assert not daemon.socket.exists()  # the listeners opened first are closed again
    finally:
        daemon.cleanup()


def test_spec_files_any_deny_wins_and_sighup(tmp_path: Path, server: AuthzServer, plugin_name: str) -> None:
    """A second plugin found by its spec file denies /version; with both, each one's deny stands.
    SIGHUP drops the first: /info answers again, /version still denied; an unknown name on reload is
    logged and the running set stays."""
    second = f"{plugin_name}-spec"
    other = AuthzServer(tmp_path, tmp_path / "other.sock", deny_request="/version")
    spec = SPEC_DIR / f"{second}.spec"
    spec.write_text(f"unix://{other.sock}\n")
    try:
        with EngineDaemon(config={**LIGHT, "authorization-plugins": [plugin_name, second]}) as daemon:
            docker = DockerCLI(daemon.host)
            assert f"plugin {plugin_name}: no /info for you" in docker.fails("info").stderr
            assert f"plugin {second}: no /version for you" in docker.fails("version").stderr

            def reload(plugins: list[str], until: object) -> None:
                daemon.config_file.write_text(json.dumps({**daemon.config, "authorization-plugins": plugins}))
                daemon.signal(signal.SIGHUP)
                deadline = time.monotonic() + 30
                while not until() and time.monotonic() < deadline:  # type: ignore[operator]
                    time.sleep(0.1)

            reload([second], lambda: docker.run("info").returncode == 0)
            assert json.loads(docker("info", "--format", "{{json .Plugins.Authorization}}").out) == [second]
            assert docker("info", "--format", "{{.ServerVersion}}").out == "20.10.24"
            assert f"plugin {second}: no /version for you" in docker.fails("version").stderr

            reload(["engtest-authz-missing"], lambda: "Error validating authorization plugin" in daemon.log())
            assert "Error validating authorization plugin" in daemon.log()
            assert f"plugin {second}: no /version for you" in docker.fails("version").stderr
    finally:
        spec.unlink(missing_ok=True)
        other.stop()


def test_streams_and_hijacked_calls_pass_through_the_plugin(
    server: AuthzServer, plugin_name: str, busybox_tar: bytes
) -> None:
    """attach, exec (hijacked) and logs (streamed) work with a plugin in the chain; the plugin is asked
    about each before it runs."""
    with EngineDaemon(config={**LIGHT, "authorization-plugins": [plugin_name]}) as daemon:
        docker = DockerCLI(daemon.host)
        docker("import", "-", "authz-busybox:1", input=busybox_tar)
        run = ["run", "--network", "none", "--log-driver", "json-file", "--name", "authz-c"]
        assert docker(*run, "authz-busybox:1", "echo", "hi").out == "hi"
        assert docker("logs", "authz-c").out == "hi"
        docker("run", "-d", "--network", "none", "--name", "authz-d", "authz-busybox:1", "sleep", "60")
        assert docker("exec", "-i", "authz-d", "cat", input="piped").out == "piped"
        docker("rm", "-f", "authz-c", "authz-d")
        asked = [r["RequestURI"].split("?")[0] for r in server.records("req")]
        for end in ("/attach", "/logs", "/json", "/start"):
            assert any(uri.endswith(end) for uri in asked), (end, asked)
        assert any(uri.startswith("/v1.41/exec/") for uri in asked), asked
