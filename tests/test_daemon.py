"""engined as a process: start-up refusals with dockerd's messages, --validate, the unix socket's mode
and group, tcp and TLS listeners with the docker CLI, and SIGHUP reload with its event."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engine import registry
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

ENGINED = Path(sys.executable).with_name("engined")
#: the lightest daemon that starts: vfs storage, no json-file logs, no default bridge
LIGHT = {"storage-driver": "vfs", "log-driver": "none"}
if registry.DriverRegistry(registry.NETWORK).is_installed("bridge"):
    LIGHT["bridge"] = "none"  # a key of engine-plugin-bridge


def engined(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    environ.update(env or {})
    return subprocess.run([str(ENGINED), *args], capture_output=True, text=True, env=environ, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def config_file(tmp_path):
    def write(data: dict | str) -> Path:
        path = tmp_path / "daemon.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return path

    return write


# ---- start-up refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "args", "message"),
    [
        ({"nope": 1, **LIGHT}, [], "the following directives don't match any configuration option: nope"),
        (
            {"hosts": ["unix:///tmp/x.sock"], **LIGHT},
            ["-H", "tcp://127.0.0.1:2375"],
            "the following directives are specified both as a flag and in the configuration file: "
            "hosts: (from flag: [tcp://127.0.0.1:2375], from file: [unix:///tmp/x.sock])",
        ),
        ({"debug": "yes", **LIGHT}, [], "json: cannot unmarshal string into Go struct field Config.debug of type bool"),
        ({"log-opts": {"max-file": 3}, **LIGHT}, [], "Config.log-opts of type string"),
        ({"max-concurrent-downloads": -1, **LIGHT}, [], "configuration validation from file failed: invalid max concurrent downloads: -1"),
        ({"log-level": "chatty", **LIGHT}, [], "unable to parse logging level: chatty"),
        ({"hosts": ["udp://127.0.0.1:1"], **LIGHT}, [], "failed to load listeners: error parsing -H udp://127.0.0.1:1: Invalid bind address format: udp://127.0.0.1:1"),
        ({"labels": ["a=1", "a=2"], **LIGHT}, [], "conflict labels for a=2 and a=1"),
        ({**LIGHT}, ["--debug", "false"], '"engined" accepts no argument(s).'),
        ({**LIGHT}, ["--bogus"], "unknown flag: --bogus\nSee 'engined --help'."),
    ],
)  # fmt: skip
def test_bad_configuration_stops_start_up(config_file, config, args, message):
    proc = engined("--config-file", str(config_file(config)), *args)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr


def test_a_named_config_file_must_exist(tmp_path):
    path = tmp_path / "absent.json"
    proc = engined("--config-file", str(path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"unable to configure the Docker daemon with file {path}: open {path}: no such file or directory"
    )


def test_missing_default_file_is_fine():
    if Path("/etc/engine/daemon.json").exists():
        pytest.skip("/etc/engine/daemon.json exists on this machine")
    proc = engined("--log-driver", "none", "--validate")
    assert (proc.returncode, proc.stderr.strip()) == (0, "configuration OK")


def test_validate(config_file):
    proc = engined("--config-file", str(config_file({**LIGHT, "debug": True, "labels": ["a=b"]})), "--validate")
    assert (proc.returncode, proc.stderr.strip(), proc.stdout) == (0, "configuration OK", "")
    proc = engined("--config-file", str(config_file({**LIGHT, "max-download-attempts": 0})), "--validate")
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("configuration validation from file failed: invalid max download attempts: 0")


def test_tls_files_are_checked_at_start_up(config_file, tmp_path):
    path = config_file({**LIGHT, "tlsverify": True, "tlscacert": str(tmp_path / "ca.pem"),
                        "tlscert": str(tmp_path / "cert.pem"), "tlskey": str(tmp_path / "key.pem")})  # fmt: skip
    proc = engined("--config-file", str(path), "--validate")
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f'failed to create API server: Could not load X509 key pair (cert: "{tmp_path / "cert.pem"}", '
        f'key: "{tmp_path / "key.pem"}"): open '
    )


def test_a_driver_nobody_installed_names_the_distribution(config_file):
    proc = engined("--config-file", str(config_file({"storage-driver": "zfs", "log-driver": "none"})))
    assert proc.returncode == 1
    assert "storage driver 'zfs' is not installed; install it with `pip install engine-plugin-zfs`" in proc.stderr


def test_a_bare_path_is_a_tcp_address_and_cannot_be_listened_on(tmp_path):
    daemon = EngineDaemon(config={**LIGHT, "hosts": [str(tmp_path / "x.sock")]})
    try:
        with pytest.raises(RuntimeError, match="engined exited with 1"):
            daemon.start(timeout=20)
        assert (
            f"failed to load listeners: listen tcp: address tcp/2375{tmp_path / 'x.sock'}: unknown port" in daemon.log()
        )
    finally:
        daemon.stop()
        daemon.cleanup()


# ---- the unix socket --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def group():
    name = f"engt{uuid.uuid4().hex[:8]}"
    subprocess.run(["groupadd", name], check=True)
    yield name
    subprocess.run(["groupdel", name], check=True)


@pytest.fixture(scope="module")
def tcp_daemon(group):
    """A daemon with its socket group, a unix and a tcp listener, and reloadable keys set."""
    port = free_port()
    daemon = EngineDaemon(config={**LIGHT, "group": group, "labels": ["a=1"], "max-concurrent-downloads": 7})
    daemon.config["hosts"] = [daemon.host, f"tcp://127.0.0.1:{port}"]
    daemon.start()
    yield daemon, port
    assert daemon.stop() == 0
    daemon.cleanup()
    assert not daemon.socket.exists()


def test_socket_mode_and_group(tcp_daemon, group):
    import grp

    daemon, _ = tcp_daemon
    st = daemon.socket.stat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (0, grp.getgrnam(group).gr_gid)
    assert DockerCLI(daemon.host)("version", "--format", "{{.Server.APIVersion}}").out == "1.41"


def test_absent_default_group_is_only_a_warning(engine):
    import grp

    try:
        grp.getgrnam("engine")
        pytest.skip("the group engine exists here")
    except KeyError:
        pass
    assert engine.socket.stat().st_gid == os.getgid()
    assert f"could not change group {engine.socket} to engine: group engine not found" in engine.log()


def test_a_group_that_does_not_exist_stops_start_up():
    daemon = EngineDaemon(config={**LIGHT, "group": "no-such-group-xyz"})
    try:
        with pytest.raises(RuntimeError):
            daemon.start(timeout=20)
        assert "failed to load listeners: group no-such-group-xyz not found" in daemon.log()
    finally:
        daemon.stop()
        daemon.cleanup()


def test_fd_listener_from_socket_activation(tmp_path):
    """``-H fd://``: the listening socket comes from the service manager (LISTEN_FDS/LISTEN_PID, fd 3),
    as systemd's docker.socket hands it to dockerd; engined serves on it and does not bind one itself."""
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()
    daemon = EngineDaemon(root=tmp_path / "d", config={**LIGHT, "hosts": ["fd://"]})
    daemon.config_file.write_text(json.dumps({**daemon.config, "data-root": str(daemon.data_root)}))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    # bash (dash takes one-digit fds only) moves the socket to fd 3 and sets LISTEN_PID to its own
    # PID, which engined keeps by exec
    fd = listener.fileno()
    command = (
        f'exec 3<&{fd} {fd}<&-; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" --config-file "$1" --exec-root "$2" --pidfile "$3"'
    )
    proc = subprocess.Popen(
        ["bash", "-c", command, str(ENGINED), str(daemon.config_file), str(daemon.exec_root), str(daemon.pidfile)],
        env=environ,
        pass_fds=(fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    listener.close()
    try:
        docker = DockerCLI(f"unix://{path}")
        deadline = time.monotonic() + 30
        while docker.run("version", check=False).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.1)
        assert docker("version", "--format", "{{.Server.APIVersion}}").out == "1.41"
        assert not (daemon.root / "engine.sock").exists()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        proc.stderr.close()
        daemon.cleanup()


def wait_for_listener(docker: DockerCLI, count: int = 1) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if json.loads(docker("info", "--format", "{{json .}}").stdout)["NEventsListener"] >= count:
            return
        time.sleep(0.05)
    raise AssertionError("no events listener")


def test_tcp_and_sighup(tcp_daemon):
    daemon, port = tcp_daemon
    tcp = DockerCLI(f"tcp://127.0.0.1:{port}")
    assert tcp("version", "--format", "{{.Server.Version}}").out == "20.10.24"
    assert "Binding to IP address without --tlsverify is insecure" in daemon.log()

    docker = DockerCLI(daemon.host)
    events = docker.popen("events", "--filter", "type=daemon", "--format", "{{json .}}", stdout=subprocess.PIPE)
    try:
        wait_for_listener(docker)
        changed = {**daemon.config, "labels": ["b=2"], "debug": True, "data-root": "/ignored", "shutdown-timeout": 3}
        del changed["max-concurrent-downloads"]
        daemon.config_file.write_text(json.dumps(changed))
        daemon.signal(signal.SIGHUP)
        event = json.loads(events.stdout.readline())
    finally:
        events.terminate()
        events.wait(10)
    assert (event["Type"], event["Action"], event["scope"]) == ("daemon", "reload", "local")
    attrs = event["Actor"]["Attributes"]
    assert attrs["labels"] == '["b=2"]' and attrs["debug"] == "true" and attrs["shutdown-timeout"] == "3"
    assert attrs["max-concurrent-downloads"] == "3"  # absent from the file: back to the default, as dockerd
    info = json.loads(docker("info", "--format", "{{json .}}").stdout)
    assert attrs["name"] == info["Name"] and event["Actor"]["ID"] == info["ID"]
    assert info["Labels"] == ["b=2"] and info["Debug"] is True
    assert info["DockerRootDir"] == str(daemon.data_root)  # not reloadable

    # a bad file changes nothing and the daemon keeps running
    daemon.config_file.write_text(json.dumps({**changed, "labels": ["c=3"], "bogus-key": 1}))
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "bogus-key" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "the following directives don't match any configuration option: bogus-key" in daemon.log()
    assert json.loads(docker("info", "--format", "{{json .}}").stdout)["Labels"] == ["b=2"]


# ---- TLS ---------------------------------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (CN=tester)."""
    d = tmp_path_factory.mktemp("certs")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=engine test CA", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who, cn in (("server", "127.0.0.1"), ("client", "tester")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}-key.pem", "-out", f"{who}.csr",
                "-subj", f"/CN={cn}", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                "-out", f"{who}-cert.pem", "-days", "1", "-extfile", f"{who}.ext", cwd=d)  # fmt: skip
    return d


AUTHZ_PLUGIN = """
from engine.drivers import hookimpl


@hookimpl
def engine_authorize_request(user, uri):
    if uri.endswith("/info") and user != "tester":
        return f"user {user or 'anonymous'} may not read /info"
"""


def authz_plugin_site(root: Path) -> Path:
    """An installed hook plugin (dist-info with an engine.plugins entry point) in ``root``."""
    info = root / "engine_plugin_authz_test-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: engine-plugin-authz-test\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[engine.plugins]\nauthz-test = engine_authz_test_plugin\n")
    (root / "engine_authz_test_plugin.py").write_text(AUTHZ_PLUGIN)
    return root


def test_tlsverify_with_the_docker_cli_and_the_client_cn_for_authorization(certs, tmp_path):
    port = free_port()
    tls = {
        "tlsverify": True,
        "tlscacert": str(certs / "ca.pem"),
        "tlscert": str(certs / "server-cert.pem"),
        "tlskey": str(certs / "server-key.pem"),
    }
    site = authz_plugin_site(tmp_path / "site")
    daemon = EngineDaemon(config={**LIGHT, **tls}, env={"PYTHONPATH": str(site)})
    daemon.config["hosts"] = [daemon.host, f"tcp://127.0.0.1:{port}"]
    with daemon:
        docker = DockerCLI(f"tcp://127.0.0.1:{port}")
        client = ["--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "client-cert.pem"),
                  "--tlskey", str(certs / "client-key.pem")]  # fmt: skip
        assert docker(*client, "version", "--format", "{{.Server.APIVersion}}").out == "1.41"
        # the plugin sees the client certificate's CN: "tester" may read /info, nobody else
        assert docker(*client, "info", "--format", "{{.ServerVersion}}").out == "20.10.24"
        denied = DockerCLI(daemon.host).fails("info")
        assert "authorization denied by plugin authz-test: user anonymous may not read /info" in denied.stderr
        # no client certificate: the handshake is refused
        docker.fails("--tlsverify", "--tlscacert", str(certs / "ca.pem"), "version")
        # plain http to a TLS port
        assert docker.run("version", timeout=30).returncode != 0
        assert "Binding to IP address without --tlsverify" not in daemon.log()
