"""The registry client end to end: Debian's docker-registry (distribution 2.8) on a loopback port,
driven by the real docker CLI and docker-py through the session engined.

The registry runs per module with its own storage in a temp dir and is stopped by PID. Images are
named ``127.0.0.1:<port>/regtest/...`` and removed at the end; their layer is a busybox rootfs with
a nonce file, so no other test's layers are shared and a pull really downloads.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_testkit.cli import DockerCLI
from engine_testkit.network import free_port

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
pytestmark = pytest.mark.skipif(not Path(REGISTRY_BIN).exists(), reason="docker-registry is not installed")


class RegistryProcess:
    def __init__(self, root: Path, auth: tuple[str, str] | None = None, extra: str = "") -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        auth_yaml = ""
        if auth is not None:
            hashed = subprocess.run(
                ["htpasswd", "-Bbn", auth[0], auth[1]], capture_output=True, check=True, text=True
            ).stdout
            (root / "htpasswd").write_text(hashed)
            auth_yaml = f"auth:\n  htpasswd:\n    realm: regtest\n    path: {root / 'htpasswd'}\n"
        (root / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n" + auth_yaml + extra
        )
        self.log = open(root / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(root / "config.yml")], stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # 401: up, with auth
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(
                        "docker-registry did not start: " + (root / "registry.log").read_text()
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    proc = RegistryProcess(tmp_path_factory.mktemp("registry"))
    yield proc
    proc.stop()


def rootfs_with_nonce(busybox_tar: bytes, nonce: str) -> bytes:
    """busybox plus /nonce: a layer no other test has."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(busybox_tar)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo("nonce")
        info.size, info.mode, info.mtime = len(nonce) + 1, 0o644, 1700000000
        dst.addfile(info, io.BytesIO(nonce.encode() + b"\n"))
    return out.getvalue()


@pytest.fixture(scope="module")
def made(docker: DockerCLI) -> Iterator[list[str]]:
    """References this module created; removed at its end."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        docker.run("rmi", "-f", ref)


@pytest.fixture(scope="module")
def base(docker: DockerCLI, busybox_tar: bytes, registry: RegistryProcess, made: list[str]) -> tuple[str, str]:
    """``<registry>/regtest/base:1``, pushed; returns (reference, image id)."""
    nonce = uuid.uuid4().hex
    ref = f"{registry.host}/regtest/base:1"
    docker("import", "-c", 'CMD ["sh"]', "-", ref, input=rootfs_with_nonce(busybox_tar, nonce))
    made.append(ref)
    return ref, docker("image", "inspect", "-f", "{{.Id}}", ref).out


def inspect(docker: DockerCLI, ref: str) -> dict:
    return json.loads(docker("image", "inspect", ref).out)[0]


DIGEST_LINE = re.compile(r"^1: digest: (sha256:[0-9a-f]{64}) size: (\d+)$", re.M)


def test_push_then_pull_back_by_tag_and_digest(docker: DockerCLI, base: tuple[str, str], registry: RegistryProcess):
    ref, image_id = base
    started = int(time.time())
    first = docker("push", ref)
    assert f"The push refers to repository [{registry.host}/regtest/base]" in first.stdout
    assert "Pushed" in first.stdout
    digest, size = DIGEST_LINE.search(first.stdout).groups()  # type: ignore[union-attr]
    assert inspect(docker, ref)["RepoDigests"] == [f"{registry.host}/regtest/base@{digest}"]

    again = docker("push", ref)  # deterministic layer gzip: the same manifest
    assert "Layer already exists" in again.stdout and "Pushed" not in again.stdout
    assert DIGEST_LINE.search(again.stdout).groups() == (digest, size)  # type: ignore[union-attr]

    docker("rmi", ref)
    assert docker.run("image", "inspect", image_id).returncode != 0
    pulled = docker("pull", ref)
    for status in ("Pulling from regtest/base", "Pulling fs layer", "Download complete", "Pull complete"):
        assert status in pulled.stdout, pulled.stdout
    assert f"Digest: {digest}" in pulled.stdout
    assert f"Status: Downloaded newer image for {ref}" in pulled.stdout
    info = inspect(docker, ref)
    assert info["Id"] == image_id
    assert info["RepoDigests"] == [f"{registry.host}/regtest/base@{digest}"]

    assert f"Status: Image is up to date for {ref}" in docker("pull", ref).stdout
    events = docker("events", "--since", str(started), "--until", str(int(time.time()) + 1), "-f", "type=image")
    assert f"image push {ref} (name={ref})" in events.stdout and f"image pull {ref} (name={ref})" in events.stdout
    by_digest = docker("pull", f"{registry.host}/regtest/base@{digest}")
    assert f"Status: Image is up to date for {registry.host}/regtest/base@{digest}" in by_digest.stdout
    assert docker("image", "inspect", "-f", "{{.Id}}", f"{registry.host}/regtest/base@{digest}").out == image_id


def test_run_pulls_a_missing_image(docker: DockerCLI, base: tuple[str, str]):
    ref, image_id = base
    docker("push", ref)
    docker("rmi", ref)
    run = docker("run", "--rm", ref, "cat", "/nonce")
    assert f"Unable to find image '{ref}' locally" in run.stderr
    assert "Pull complete" in run.stderr
    assert re.fullmatch(r"[0-9a-f]{32}", run.out)
    assert docker("image", "inspect", "-f", "{{.Id}}", ref).out == image_id


def test_unknown_tag_repo_and_registry_errors(docker: DockerCLI, registry: RegistryProcess):
    tag = docker.fails("pull", f"{registry.host}/regtest/base:nope")
    assert (
        f"Error response from daemon: manifest for {registry.host}/regtest/base:nope not found: "
        "manifest unknown: manifest unknown" in tag.stderr
    )
    repo = docker.fails("pull", f"{registry.host}/regtest/nothing-here")
    assert f"manifest for {registry.host}/regtest/nothing-here:latest not found" in repo.stderr
    closed = free_port()
    refused = docker.fails("pull", f"127.0.0.1:{closed}/regtest/x")
    assert f'Get "http://127.0.0.1:{closed}/v2/": dial tcp 127.0.0.1:{closed}: connect: connection refused' in (
        refused.stderr
    )
    missing = docker.fails("push", f"{registry.host}/regtest/not-local:1")
    assert f"An image does not exist locally with the tag: {registry.host}/regtest/not-local" in missing.stderr


@pytest.fixture(scope="module")
def app(docker: DockerCLI, base: tuple[str, str], registry: RegistryProcess, made: list[str]) -> tuple[str, str]:
    """``<registry>/regtest/app:1``: base plus a committed layer (not pushed); (reference, image id)."""
    name = "regtest-" + uuid.uuid4().hex[:8]
    ref = f"{registry.host}/regtest/app:1"
    docker("run", "--name", name, base[0], "sh", "-c", "echo app > /app.txt")
    try:
        docker("commit", name, ref)
    finally:
        docker.run("rm", "-f", name)
    made.append(ref)
    return ref, docker("image", "inspect", "-f", "{{.Id}}", ref).out


def test_multi_layer_push_mounts_and_pull_reuses_layers(
    docker: DockerCLI, base: tuple[str, str], app: tuple[str, str], registry: RegistryProcess
):
    docker("push", base[0])
    app, app_id = app
    pushed = docker("push", app)
    assert "Mounted from regtest/base" in pushed.stdout, pushed.stdout  # the base layer, across repositories
    assert "Pushed" in pushed.stdout  # the committed layer
    digest = DIGEST_LINE.search(pushed.stdout).group(1)  # type: ignore[union-attr]

    docker("rmi", app)
    pulled = docker("pull", app)
    assert "Already exists" in pulled.stdout and "Pull complete" in pulled.stdout, pulled.stdout
    assert docker("image", "inspect", "-f", "{{.Id}}", app).out == app_id
    assert docker("run", "--rm", app, "cat", "/app.txt").out == "app"

    manifest = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(
                f"http://{registry.host}/v2/regtest/app/manifests/{digest}",
                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            ),
            timeout=10,
        ).read()
    )
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert len(manifest["layers"]) == 2
    assert manifest["config"]["digest"] == app_id


def test_docker_py_push_and_pull(api, docker: DockerCLI, base: tuple[str, str], registry: RegistryProcess, made):
    ref, image_id = base
    repo = f"{registry.host}/regtest/py"
    docker("tag", ref, f"{repo}:2")
    made.append(f"{repo}:2")
    events = list(api.images.push(repo, tag="2", stream=True, decode=True))
    aux = [e["aux"] for e in events if "aux" in e]
    assert aux and aux[0]["Tag"] == "2" and aux[0]["Digest"].startswith("sha256:")
    docker("rmi", f"{repo}:2")
    image = api.images.pull(repo, tag="2")
    assert image.id == image_id
    assert f"{repo}@{aux[0]['Digest']}" in image.attrs["RepoDigests"]


def test_login_push_and_pull_with_htpasswd(
    docker: DockerCLI, base: tuple[str, str], tmp_path: Path, made: list[str], engine
):
    if not shutil.which("htpasswd"):
        pytest.skip("htpasswd (apache2-utils) is not installed")
    private = RegistryProcess(tmp_path, auth=("regtest", "s3cret"))
    cli = DockerCLI(engine.host, config_dir=tmp_path / "docker-config")
    try:
        target = f"{private.host}/regtest/private:1"
        docker("tag", base[0], target)
        made.append(target)
        denied = cli.fails("push", target)
        assert "no basic auth credentials" in denied.stderr + denied.stdout
        wrong = cli.fails("login", "-u", "regtest", "--password-stdin", private.host, input="wrong")
        assert f"login attempt to http://{private.host}/v2/ failed with status: 401 Unauthorized" in wrong.stderr
        ok = cli("login", "-u", "regtest", "--password-stdin", private.host, input="s3cret")
        assert "Login Succeeded" in ok.stdout
        assert "Pushed" in cli("push", target).stdout
        cli("rmi", target)
        assert "Downloaded newer image" in cli("pull", target).stdout
        cli("logout", private.host)
        assert "no basic auth credentials" in cli.fails("pull", f"{private.host}/regtest/private:1").stderr
    finally:
        private.stop()


class LoopbackHTTPServer:
    """A threaded HTTP server of the test's own on 127.0.0.1 (a free port), stopped by stop()."""

    def serve(self, handler: type[http.server.BaseHTTPRequestHandler]) -> int:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class TokenServer(LoopbackHTTPServer):
    """A token server for distribution's token auth (RS256 JWTs whose x5c is a self-signed certificate
    the registry trusts): Basic credentials ``regtest:t0ken`` get the scopes they ask for, anyone else
    a token with no access."""

    def __init__(self, root: Path) -> None:
        import base64
        import datetime
        import urllib.parse

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regtest-token")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.bundle = root / "token.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        good = "Basic " + base64.b64encode(b"regtest:t0ken").decode()

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        def token(scopes: list[str]) -> str:
            access = []
            for scope in scopes:
                kind, _, rest = scope.partition(":")
                repo, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": repo, "actions": actions.split(",")})
            stamp = int(time.time())
            claims = {
                "iss": "regtest-issuer",
                "sub": "regtest",
                "aud": "regtest",
                "exp": stamp + 300,
                "nbf": stamp - 10,
                "iat": stamp,
                "jti": uuid.uuid4().hex,
                "access": access,
            }
            header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
            signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
            signature = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
            return f"{signing}.{b64(signature)}"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                authorized = self.headers.get("Authorization") == good
                if self.headers.get("Authorization") and not authorized:
                    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                    self.send_response(401)
                else:
                    body = json.dumps({"token": token(query.get("scope", []) if authorized else [])})
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.realm = f"http://127.0.0.1:{self.serve(Handler)}/token"


def test_bearer_token_auth(docker: DockerCLI, base: tuple[str, str], tmp_path: Path, made: list[str], engine):
    pytest.importorskip("cryptography")
    tokens = TokenServer(tmp_path)
    private = None
    try:
        private = RegistryProcess(
            tmp_path,
            extra=(
                f"auth:\n  token:\n    realm: {tokens.realm}\n    service: regtest\n    issuer: regtest-issuer\n"
                f"    rootcertbundle: {tokens.bundle}\n"
            ),
        )
        cli = DockerCLI(engine.host, config_dir=tmp_path / "docker-config")
        target = f"{private.host}/regtest/tok:1"
        docker("tag", base[0], target)
        made.append(target)
        denied = cli.fails("push", target)
        assert "unauthorized: authentication required" in denied.stderr + denied.stdout
        assert (
            "401 Unauthorized"
            in cli.fails("login", "-u", "regtest", "--password-stdin", private.host, input="nope").stderr
        )
        assert (
            "Login Succeeded" in cli("login", "-u", "regtest", "--password-stdin", private.host, input="t0ken").stdout
        )
        assert "Pushed" in cli("push", target).stdout
        cli("rmi", target)
        assert "Downloaded newer image" in cli("pull", target).stdout
        assert cli("image", "inspect", "-f", "{{.Id}}", target).out == base[1]
    finally:
        if private is not None:
            private.stop()
        tokens.stop()


def test_docker_hub_names_pull_from_registry_mirrors(docker: DockerCLI, app: tuple[str, str], registry, made):
    """A daemon with ``registry-mirrors`` pulls Docker Hub names from the mirror, one download at a time
    with ``max-concurrent-downloads: 1``; without a mirror the name fails at once."""
    from engine_testkit.daemon import EngineDaemon

    mirrored = f"{registry.host}/library/regtest-mirrored:1"
    docker("tag", app[0], mirrored)
    made.append(mirrored)
    docker("push", mirrored)
    config = {"storage-driver": "vfs", "log-driver": "none", "max-concurrent-downloads": 1}
    config["registry-mirrors"] = [f"http://{registry.host}"]
    daemon = EngineDaemon(config=config)
    daemon.start()
    try:
        own = DockerCLI(daemon.host)
        pulled = own("pull", "regtest-mirrored:1")
        assert "Pulling from library/regtest-mirrored" in pulled.stdout
        assert "Waiting" in pulled.stdout and "Status: Downloaded newer image for regtest-mirrored:1" in pulled.stdout
        assert own("image", "inspect", "-f", "{{.Id}}", "regtest-mirrored:1").out == app[1]
        missing = own.fails("pull", "regtest-not-mirrored:1")
        assert "pull access denied for regtest-not-mirrored" in missing.stderr
    finally:
        daemon.stop()
        daemon.cleanup()


def _upload(host: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.urlopen(
        urllib.request.Request(f"http://{host}/v2/{repo}/blobs/uploads/", method="POST"), timeout=10
    )
    location = urllib.parse.urljoin(f"http://{host}/", start.headers["Location"])
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT")
    put.add_header("Content-Type", "application/octet-stream")
    urllib.request.urlopen(put, timeout=10).close()
    return digest


def _put_manifest(host: str, repo: str, tag: str, body: dict) -> str:
    data = json.dumps(body).encode()
    request = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}", data=data, method="PUT")
    request.add_header("Content-Type", body["mediaType"])
    urllib.request.urlopen(request, timeout=10).close()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_pull_oci_index_with_plain_and_zstd_layers(docker: DockerCLI, registry: RegistryProcess, made: list[str]):
    """An OCI index (linux/amd64 + linux/arm64) over OCI manifests whose layers are a plain tar and a
    zstd tar: the host's platform is chosen, ``--platform`` another, an absent one is dockerd's error."""
    host, repo = registry.host, "regtest/oci"
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    other = "arm64" if arch != "arm64" else "amd64"
    manifests = []
    ids = {}
    for platform_arch in (arch, other):
        nonce = uuid.uuid4().hex.encode()
        plain = _tar({"a.txt": b"plain " + nonce})
        second = _tar({"b.txt": b"zstd " + nonce})
        zstd = subprocess.run(["zstd", "-q", "-c"], input=second, capture_output=True, check=True).stdout
        config = json.dumps(
            {
                "architecture": platform_arch,
                "os": "linux",
                "config": {"Cmd": ["/a.txt"]},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in (plain, second)],
                },
                "history": [{"created_by": "regtest"}, {"created_by": "regtest"}],
            }
        ).encode()
        config_digest = _upload(host, repo, config)
        ids[platform_arch] = config_digest
        layers = [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "size": len(plain),
                "digest": _upload(host, repo, plain),
            },
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                "size": len(zstd),
                "digest": _upload(host, repo, zstd),
            },
        ]
        body = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": len(config),
                "digest": config_digest,
            },
            "layers": layers,
        }
        digest = _put_manifest(host, repo, f"{platform_arch}-only", body)
        manifests.append(
            {
                "mediaType": body["mediaType"],
                "size": len(json.dumps(body)),
                "digest": digest,
                "platform": {"architecture": platform_arch, "os": "linux"},
            }
        )
    _put_manifest(
        host,
        repo,
        "multi",
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests},
    )
    ref = f"{host}/{repo}:multi"
    made.append(ref)
    docker("pull", ref)
    assert docker("image", "inspect", "-f", "{{.Id}}", ref).out == ids[arch]
    docker("pull", "--platform", f"linux/{other}", ref)
    assert docker("image", "inspect", "-f", "{{.Id}} {{.Architecture}}", ref).out == f"{ids[other]} {other}"
    docker("rmi", ids[arch])
    absent = docker.fails("pull", "--platform", "linux/s390x", ref)
    assert "no matching manifest for linux/s390x in the manifest list entries" in absent.stderr


def test_push_and_pull_all_tags(docker: DockerCLI, base: tuple[str, str], registry: RegistryProcess, made):
    repo = f"{registry.host}/regtest/every"
    for tag in ("a", "b"):
        docker("tag", base[0], f"{repo}:{tag}")
        made.append(f"{repo}:{tag}")
    pushed = docker("push", "--all-tags", repo)
    assert re.search(r"^a: digest: sha256:[0-9a-f]{64} size: \d+$", pushed.stdout, re.M), pushed.stdout
    assert re.search(r"^b: digest: sha256:[0-9a-f]{64} size: \d+$", pushed.stdout, re.M), pushed.stdout
    docker("rmi", f"{repo}:a", f"{repo}:b")
    pulled = docker("pull", "--all-tags", repo)
    assert f"Status: Downloaded newer image for {repo}" in pulled.stdout
    assert {f"{repo}:a", f"{repo}:b"} <= set(inspect(docker, base[1])["RepoTags"])


class FlakyProxy(LoopbackHTTPServer):
    """An HTTP proxy to the registry that answers the first GET of each blob, and the first blob upload's
    PUT, with a 503."""

    def __init__(self, upstream: str) -> None:
        import http.client

        failed: set[str] = set()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self, method: str) -> None:
                payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upload = method == "PUT" and "/blobs/uploads/" in self.path
                once = "upload" if upload else self.path
                if (upload or (method == "GET" and "/blobs/sha256:" in self.path)) and once not in failed:
                    failed.add(once)
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(upstream, timeout=10)
                keep = ("accept", "authorization", "host", "content-type", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() in keep}
                conn.request(method, self.path, body=payload or None, headers=headers)
                answer = conn.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(body)
                conn.close()

            def do_GET(self) -> None:
                self._forward("GET")

            def do_HEAD(self) -> None:
                self._forward("HEAD")

            def do_POST(self) -> None:
                self._forward("POST")

            def do_PUT(self) -> None:
                self._forward("PUT")

            def log_message(self, *args: object) -> None:
                pass

        self.host = f"127.0.0.1:{self.serve(Handler)}"


def test_failed_uploads_and_downloads_are_retried(
    docker: DockerCLI, busybox_tar: bytes, registry: RegistryProcess, made
):
    proxy = FlakyProxy(registry.host)
    try:
        ref = f"{proxy.host}/regtest/flaky:1"
        made.append(ref)
        docker("import", "-", ref, input=rootfs_with_nonce(busybox_tar, uuid.uuid4().hex))
        image_id = docker("image", "inspect", "-f", "{{.Id}}", ref).out
        pushed = docker("push", ref)
        assert "Retrying in 1 second" in pushed.stdout and "Pushed" in pushed.stdout, pushed.stdout
        docker("rmi", ref)
        pulled = docker("pull", ref)
        assert "Retrying in 1 second" in pulled.stdout and "Pull complete" in pulled.stdout, pulled.stdout
        assert docker("image", "inspect", "-f", "{{.Id}}", ref).out == image_id
    finally:
        proxy.stop()


def test_build_pulls_its_base_image(docker: DockerCLI, busybox_tar: bytes, registry: RegistryProcess, made, tmp_path):
    ref = f"{registry.host}/regtest/buildbase:1"
    nonce = uuid.uuid4().hex
    docker("import", "-", ref, input=rootfs_with_nonce(busybox_tar, nonce))
    docker("push", ref)
    docker("rmi", ref)
    (tmp_path / "Dockerfile").write_text(f"FROM {ref}\nRUN cat /nonce > /copy\n")
    built = f"regtest-built-{nonce[:8]}"
    made.extend([ref, built])
    docker("build", "-q", "-t", built, str(tmp_path))
    assert docker("run", "--rm", built, "cat", "/copy").out == nonce


def test_docker_hub_fails_at_once_without_network(docker: DockerCLI, busybox: str, tmp_path: Path, engine):
    started = time.monotonic()
    pushed = docker.fails("push", busybox)
    assert "The push refers to repository [docker.io/library/busybox]" in pushed.stdout
    assert "lookup registry-1.docker.io: no such host" in pushed.stderr + pushed.stdout
    cli = DockerCLI(engine.host, config_dir=tmp_path / "docker-config")
    login = cli.fails("login", "-u", "someone", "--password-stdin", input="secret")
    assert "lookup registry-1.docker.io: no such host" in login.stderr
    assert time.monotonic() - started < 10
