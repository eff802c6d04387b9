"""A hostile-input corpus: tar archives with path escapes, absolute names, symlink and hardlink tricks and
device nodes fed to ``docker load``, ``docker import``, ``docker cp`` (both directions) and build contexts;
bind mounts of /, /proc and the API socket; oversized headers and bodies.

Every case checks three things: nothing is written outside its place (a canary directory on the host,
named by the archives' escapes, stays as it was: same files, same contents, same link counts), the
daemon still answers ``/_ping`` afterwards, and the outcome is dockerd's kind: EXPECTED was recorded
against dockerd 20.10.24 (``scripts/reference-compare``; ``ENGINE_REFERENCE_DOCKER_HOST`` set), which
runs this same module against the reference instead of engine.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import socket
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine_testkit.cli import DockerCLI

NAME_PREFIX = "hostiletest-"
DEEP = "../" * 40  # enough to climb from any extraction directory to /


# ---- the canary ------------------------------------------------------------------------------------


@dataclass
class Canary:
    """A directory outside every daemon's data: the archives aim at it. ``snapshot()`` must not change."""

    path: Path

    @property
    def secret(self) -> Path:
        return self.path / "secret"

    def snapshot(self) -> dict[str, tuple[int, str]]:
        out = {}
        for p in sorted(self.path.rglob("*")):
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else ""
            out[str(p.relative_to(self.path))] = (st.st_nlink, digest)
        return out


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Canary:
    path = Path(tmp_path_factory.mktemp("canary")).resolve()
    (path / "secret").write_text("host secret\n")
    return Canary(path)


# ---- tar building ----------------------------------------------------------------------------------


def tar_of(*entries: tuple) -> bytes:
    """(name, kind, payload) entries: kind f (file, payload bytes), d, s (symlink -> payload),
    h (hardlink -> payload), c/b (device, payload (major, minor)), p (fifo)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            data = None
            if kind == "f":
                info.size = len(payload)
                data = io.BytesIO(payload)
            elif kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "s":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind in ("c", "b"):
                info.type = tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE
                info.devmajor, info.devminor = payload
            elif kind == "p":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, data)
    return buf.getvalue()


def corpus(canary: Canary) -> dict[str, bytes]:
    """The hostile archives, each aimed at the canary directory."""
    c = str(canary.path).lstrip("/")
    return {
        "dotdot": tar_of(("ok", "f", b"ok\n"), (f"{DEEP}{c}/pwned", "f", b"escaped\n")),
        "absolute": tar_of((f"/{c}/pwned", "f", b"absolute\n")),
        "symlink-abs-then-file": tar_of(("evil", "s", f"/{c}"), ("evil/pwned", "f", b"through a symlink\n")),
        "symlink-rel-then-file": tar_of(("evil", "s", f"{DEEP}{c}"), ("evil/pwned", "f", b"through a symlink\n")),
        "symlink-root-then-file": tar_of(("root", "s", "/"), (f"root/{c}/pwned", "f", b"through /\n")),
        "hardlink-abs": tar_of(("hard", "h", f"/{c}/secret")),
        "hardlink-rel": tar_of(("hard", "h", f"{DEEP}{c}/secret")),
        "symlink-then-hardlink": tar_of(("root", "s", "/"), ("hard", "h", f"root/{c}/secret")),
        "devices": tar_of(("null2", "c", (1, 3)), ("loop99", "b", (7, 99)), ("fifo", "p", None)),
    }


# ---- talking to a daemon ---------------------------------------------------------------------------


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 120) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


@dataclass
class Answer:
    status: int
    body: bytes

    @property
    def message(self) -> str:
        try:
            return str(json.loads(self.body).get("message", ""))
        except (ValueError, AttributeError):
            return self.body.decode(errors="replace")


class Daemon:
    """The daemon under test (engine, or the reference when ENGINE_REFERENCE_DOCKER_HOST is set)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.socket = host.removeprefix("unix://")
        self.docker = DockerCLI(host)

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
        conn = _UnixHTTP(self.socket)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Answer(resp.status, resp.read())
        finally:
            conn.close()

    def ping(self) -> bool:
        return self.call("GET", "/_ping").body == b"OK"


@pytest.fixture(scope="module")
def daemon(request: pytest.FixtureRequest) -> Daemon:
    ref = os.environ.get("ENGINE_REFERENCE_DOCKER_HOST")
    if ref:
        return Daemon(ref)
    return Daemon(request.getfixturevalue("engine").host)


@pytest.fixture(scope="module")
def image(daemon: Daemon, busybox_tar: bytes) -> Iterator[str]:
    name = f"{NAME_PREFIX}busybox:latest"
    daemon.docker("import", "-c", 'CMD ["sh"]', "-", name, input=busybox_tar)
    yield name
    daemon.docker.run("rmi", name)


@pytest.fixture
def untouched(canary: Canary, daemon: Daemon) -> Iterator[None]:
    """The canary is as it was and the daemon answers, after the test."""
    before = canary.snapshot()
    yield
    assert canary.snapshot() == before, "something was written outside its place"
    assert daemon.ping(), "the daemon no longer answers /_ping"


def outcome(answer: Answer | None) -> str:
    """``ok``, or ``error`` (a 4xx/5xx status, or a 200 progress stream that carries an error, as
    dockerd reports import/load/build failures), or ``refused`` (the daemon closed the connection
    while the request was still being sent: its answer to an oversized request)."""
    if answer is None:
        return "refused"
    if answer.status >= 400:
        return "error"
    for line in answer.body.decode(errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and (item.get("error") or item.get("errorDetail")):
            return "error"
    return "ok"


def send(daemon: Daemon, method: str, path: str, body: bytes | None = None, **headers: str) -> Answer | None:
    try:
        return daemon.call(method, path, body, {"Content-Type": "application/x-tar", **headers} if body else headers)
    except (BrokenPipeError, ConnectionResetError):
        return None


def error_text(answer: Answer | None) -> str:
    if answer is None:
        return ""
    return answer.message if answer.status >= 400 else answer.body.decode(errors="replace")


TAR_CASES = ["dotdot", "absolute", "symlink-abs-then-file", "symlink-rel-then-file", "symlink-root-then-file",
             "hardlink-abs", "hardlink-rel", "symlink-then-hardlink", "devices"]  # fmt: skip

#: what dockerd 20.10.24 does with each archive as a layer (import, load) or a build context: at the
#: root ``..`` and absolute names fold inside; links are resolved inside, where their targets are missing
AS_ROOT = {"dotdot": "ok", "absolute": "ok", "symlink-abs-then-file": "error", "symlink-rel-then-file": "error",
           "symlink-root-then-file": "ok", "hardlink-abs": "error", "hardlink-rel": "error",
           "symlink-then-hardlink": "error", "devices": "ok"}  # fmt: skip
#: ... and extracted into a container directory (docker cp): climbing out of it is a breakout error
INTO_DIR = {**AS_ROOT, "dotdot": "error"}


def image_archive(layer: bytes, tag: str, config_name: str = "", layer_name: str = "l/layer.tar",
                  extra: tuple = ()) -> bytes:  # fmt: skip
    """A docker-archive (``docker save`` format) of one image with ``layer``."""
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()  # fmt: skip
    name = config_name or hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": name, "RepoTags": [tag], "Layers": [layer_name]}]).encode()
    entries = [("manifest.json", "f", manifest), ("l", "d", None), ("l/layer.tar", "f", layer)]
    if not config_name:
        entries.append((name, "f", config))
    return tar_of(*entries, *extra)


def files_in(daemon: Daemon, image: str) -> set[str]:
    """Every path in ``image``'s filesystem (listed with the host's busybox, mounted in)."""
    out = daemon.docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/busybox",
                        "-v", "/bin/busybox:/bin/busybox:ro", image, "find", "/", "-xdev").stdout  # fmt: skip
    return set(out.split())


# ---- import and load: the archive as a layer --------------------------------------------------------


@pytest.mark.parametrize("case", TAR_CASES)
def test_import(daemon: Daemon, canary: Canary, untouched: None, case: str) -> None:
    repo = f"{NAME_PREFIX}import-{case}"
    answer = send(daemon, "POST", f"/v1.41/images/create?fromSrc=-&repo={repo}&tag=1", corpus(canary)[case])
    try:
        assert outcome(answer) == AS_ROOT[case], error_text(answer)
        if case in ("dotdot", "absolute", "symlink-root-then-file"):
            assert f"{canary.path}/pwned" in files_in(daemon, f"{repo}:1")  # inside the image
    finally:
        daemon.docker.run("rmi", f"{repo}:1")


@pytest.mark.parametrize("case", TAR_CASES)
def test_load_hostile_layers(daemon: Daemon, canary: Canary, untouched: None, case: str) -> None:
    tag = f"{NAME_PREFIX}load-{case}:1"
    answer = send(daemon, "POST", "/v1.41/images/load?quiet=1", image_archive(corpus(canary)[case], tag))
    try:
        assert outcome(answer) == AS_ROOT[case], error_text(answer)
    finally:
        daemon.docker.run("rmi", tag)


def test_load_hostile_archives(daemon: Daemon, canary: Canary, untouched: None) -> None:
    """The archive itself: manifest paths that climb out or go through a symlink to the host, entries
    with ``..`` and absolute names (these stay in the unpack directory: the load works)."""
    c = str(canary.path).lstrip("/")
    layer = tar_of(("a", "f", b"a"))
    cases = {
        "config-escape": (image_archive(layer, f"{NAME_PREFIX}x:1", config_name=f"{DEEP}{c}/secret"), "error"),
        "layer-escape": (image_archive(layer, f"{NAME_PREFIX}y:1", layer_name=f"{DEEP}{c}/secret"), "error"),
        "layer-through-symlink": (
            image_archive(layer, f"{NAME_PREFIX}z:1", layer_name="evil/secret", extra=(("evil", "s", f"/{c}"),)),
            "error",
        ),
        "dotdot-entry": (image_archive(layer, f"{NAME_PREFIX}w:1", extra=((f"{DEEP}{c}/pwned", "f", b"x"),)), "ok"),
        "absolute-entry": (image_archive(layer, f"{NAME_PREFIX}v:1", extra=((f"/{c}/pwned", "f", b"x"),)), "ok"),
    }
    try:
        for case, (archive, expected) in cases.items():
            answer = send(daemon, "POST", "/v1.41/images/load?quiet=1", archive)
            assert outcome(answer) == expected, (case, error_text(answer))
            assert canary.snapshot() == {"secret": (1, hashlib.sha256(b"host secret\n").hexdigest())}, case
    finally:
        for t in "xyzwv":
            daemon.docker.run("rmi", f"{NAME_PREFIX}{t}:1")


# ---- docker cp, both directions ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def box(daemon: Daemon, image: str) -> Iterator[str]:
    name = f"{NAME_PREFIX}cp-{uuid.uuid4().hex[:8]}"
    daemon.docker("run", "-d", "--name", name, "--network", "none", image, "sleep", "600")
    yield name
    daemon.docker.run("rm", "-f", name)


@pytest.mark.parametrize("case", TAR_CASES)
def test_cp_into_a_container(daemon: Daemon, canary: Canary, box: str, untouched: None, case: str) -> None:
    daemon.docker("exec", box, "sh", "-c", "rm -rf /dst /tmp/* && mkdir /dst")
    answer = send(daemon, "PUT", f"/v1.41/containers/{box}/archive?path=/dst", corpus(canary)[case])
    assert outcome(answer) == INTO_DIR[case], error_text(answer)
    if case == "dotdot":
        assert "is outside of" in error_text(answer)
    if case == "devices":  # created inside the container, where they belong
        listing = daemon.docker("exec", box, "ls", "-l", "/dst").stdout
        assert "null2" in listing and "loop99" in listing and "fifo" in listing


def test_cp_into_a_container_through_a_symlink_lands_inside(
    daemon: Daemon, canary: Canary, box: str, untouched: None
) -> None:
    """The symlink's target exists in the container: the file goes there, in the container."""
    daemon.docker("exec", box, "sh", "-c", f"rm -rf /dst && mkdir -p /dst {canary.path}")
    answer = send(daemon, "PUT", f"/v1.41/containers/{box}/archive?path=/dst", corpus(canary)["symlink-abs-then-file"])
    assert outcome(answer) == "ok", error_text(answer)
    assert daemon.docker("exec", box, "cat", f"{canary.path}/pwned").stdout == "through a symlink\n"
    daemon.docker("exec", box, "rm", "-rf", f"/{str(canary.path).split('/')[1]}")


def test_cp_out_of_a_container_stays_in_it(daemon: Daemon, canary: Canary, box: str, untouched: None) -> None:
    """Symlinks in the container that name host paths resolve in the container (404 there)."""
    daemon.docker("exec", box, "sh", "-c", f"ln -sfn {canary.path} /link && ln -sfn / /rootlink")
    for path in ("/link/secret", f"/rootlink{canary.path}/secret"):
        answer = send(daemon, "GET", f"/v1.41/containers/{box}/archive?path={path}")
        assert answer is not None and answer.status == 404
        assert f"Could not find the file {path} in container {box}" in answer.message
    # the link itself comes out as a link
    answer = send(daemon, "GET", f"/v1.41/containers/{box}/archive?path=/link")
    assert answer is not None and answer.status == 200
    with tarfile.open(fileobj=io.BytesIO(answer.body)) as tar:
        members = tar.getmembers()
    assert [(m.name, m.issym(), m.linkname) for m in members] == [("link", True, str(canary.path))]
    failed = daemon.docker.fails("cp", f"{box}:/link/secret", str(canary.path / "copied"))
    assert "Could not find the file /link/secret" in failed.stderr


# ---- build contexts ----------------------------------------------------------------------------------------


def context_with(dockerfile: str | None, archive: bytes = b"", extra: tuple = ()) -> bytes:
    """A build context: the Dockerfile, ``extra`` entries, then every entry of ``archive``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        if dockerfile is not None:
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile.encode())
            out.addfile(info, io.BytesIO(dockerfile.encode()))
        for part in (tar_of(*extra) if extra else b"", archive):
            if part:
                with tarfile.open(fileobj=io.BytesIO(part)) as src:
                    for m in src:
                        out.addfile(m, src.extractfile(m) if m.isfile() else None)
    return buf.getvalue()


@pytest.mark.parametrize("case", TAR_CASES)
def test_build_context(daemon: Daemon, canary: Canary, image: str, untouched: None, case: str) -> None:
    tag = f"{NAME_PREFIX}build-{case}:1"
    context = context_with(f"FROM {image}\nCOPY . /ctx/\n", corpus(canary)[case])
    answer = send(daemon, "POST", f"/v1.41/build?t={tag}&rm=1&forcerm=1", context)
    try:
        assert outcome(answer) == AS_ROOT[case], error_text(answer)
    finally:
        daemon.docker.run("rmi", tag)


@pytest.mark.parametrize(
    ("case", "dockerfile", "extra", "message"),
    [
        ("copy-through-symlink", "COPY evil/secret /x", (("evil", "s", "CANARY"),),
         "COPY failed: file not found in build context or excluded by .dockerignore: stat evil/secret: file does not exist"),
        ("copy-dotdot", "COPY ../../../../../../../..CANARY/secret /x", (),
         "COPY failed: forbidden path outside the build context: ../../../../../../../..CANARY/secret"),
        ("dockerfile-symlink", None, (("Dockerfile", "s", "CANARY/secret"),),
         "Cannot locate specified Dockerfile: Dockerfile"),
    ],
)  # fmt: skip
def test_build_cannot_read_the_host(daemon: Daemon, canary: Canary, image: str, untouched: None, case: str,
                                    dockerfile: str | None, extra: tuple, message: str) -> None:  # fmt: skip
    c = str(canary.path)
    extra = tuple((n, k, p.replace("CANARY", c)) for n, k, p in extra)
    text = f"FROM {image}\n{dockerfile.replace('CANARY', c)}\n" if dockerfile else None
    answer = send(daemon, "POST", f"/v1.41/build?t={NAME_PREFIX}{case}:1&rm=1", context_with(text, extra=extra))
    assert outcome(answer) == "error"
    assert message.replace("CANARY", c) in error_text(answer)


# ---- bind mounts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["/:/host:ro", "/proc:/proc", "/proc:/hostproc", "/sys:/sys", "/dev:/dev", "SOCKET:/var/run/docker.sock"]
)
def test_bind_mounts_dockerd_allows(daemon: Daemon, image: str, untouched: None, spec: str) -> None:
    spec = spec.replace("SOCKET", daemon.socket)
    out = daemon.docker("run", "--rm", "--network", "none", "-v", spec, image, "ls", "-d", spec.split(":")[1])
    assert out.out == spec.split(":")[1]


def test_bind_mounts_over_the_root_are_refused(daemon: Daemon, image: str, untouched: None) -> None:
    refused = daemon.docker.fails("run", "--rm", "-v", "/:/", image, "true")
    assert ("invalid volume specification: '/:/': invalid mount config for type \"bind\": "
            "invalid specification: destination can't be '/'") in refused.stderr  # fmt: skip
    for target in ("/", "//", "/tmp/.."):
        refused = daemon.docker.fails("run", "--rm", "--mount", f"type=bind,source=/,target={target}", image, "true")
        assert (
            "invalid mount config for type \"bind\": invalid specification: destination can't be '/'" in refused.stderr
        )


def test_the_api_socket_in_a_container_is_the_api(daemon: Daemon, image: str, untouched: None) -> None:
    """dockerd lets a container have its socket (docker-in-docker style): bound in as a socket."""
    out = daemon.docker("run", "--rm", "--network", "none", "-v", f"{daemon.socket}:/api.sock", image,
                        "sh", "-c", "test -S /api.sock && echo socket")  # fmt: skip
    assert out.out == "socket"


# ---- oversized headers and bodies ------------------------------------------------------------------------


def test_oversized_headers(daemon: Daemon, untouched: None) -> None:
    """Go's net/http takes up to 1 MiB of headers (X-Registry-Config grows large); beyond, a 431 or a
    closed connection, never a hung daemon."""
    for size in (8 << 10, 64 << 10, 1 << 20):
        answer = send(daemon, "GET", "/_ping", **{"X-Big": "a" * size})
        assert answer is not None and answer.status == 200 and answer.body == b"OK", size
    for size in (2 << 20, 8 << 20):
        answer = send(daemon, "GET", "/_ping", **{"X-Big": "a" * size})
        assert answer is None or 400 <= answer.status < 500, size
    answer = send(daemon, "GET", "/" + "a" * (2 << 20))
    assert answer is None or 400 <= answer.status < 500


@pytest.mark.parametrize(
    ("case", "body"),
    [("nested", b"[" * (1 << 20)), ("not-utf8", b"\xff" * (16 << 20)), ("huge-string", b'{"Image": "' + b"a" * (16 << 20) + b'"}')],
)  # fmt: skip
def test_oversized_bodies(daemon: Daemon, untouched: None, case: str, body: bytes) -> None:
    answer = send(daemon, "POST", "/v1.41/containers/create", body, **{"Content-Type": "application/json"})
    assert answer is None or answer.status == 400, (case, answer)
    if case == "huge-string":
        assert answer is not None and answer.message == "repository name must not be more than 255 characters"


def test_oversized_tar_headers(daemon: Daemon, canary: Canary, box: str, untouched: None) -> None:
    """A PAX header claiming 64 MiB (Go refuses any over 1 MiB: archive/tar's header field too long)."""
    info = tarfile.TarInfo("x")
    info.pax_headers = {"comment": "z" * (4 << 20)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    for method, path in (("PUT", f"/v1.41/containers/{box}/archive?path=/tmp"),
                         ("POST", f"/v1.41/images/create?fromSrc=-&repo={NAME_PREFIX}bigpax&tag=1")):  # fmt: skip
        answer = send(daemon, method, path, buf.getvalue())
        assert outcome(answer) in ("error", "refused"), (path, error_text(answer))


def test_the_docker_cli_reports_the_refusals(daemon: Daemon, canary: Canary, box: str, untouched: None) -> None:
    """The same archives through the docker CLI (load -i, import, cp -): it exits non-zero with the
    daemon's error; the daemon stays up."""
    c = str(canary.path).lstrip("/")
    docker = daemon.docker
    docker("exec", box, "sh", "-c", "rm -rf /dst && mkdir /dst")
    failed = docker.fails("cp", "-", f"{box}:/dst", input=corpus(canary)["dotdot"])
    assert "is outside of" in failed.stderr
    archive = image_archive(tar_of(("a", "f", b"a")), f"{NAME_PREFIX}cli:1", layer_name=f"{DEEP}{c}/secret")
    failed = docker.fails("load", input=archive)
    assert failed.stderr.strip()
    failed = docker.fails("import", "-", f"{NAME_PREFIX}cli-import:1", input=corpus(canary)["hardlink-rel"])
    assert "Error" in failed.stderr or "error" in failed.stderr


def test_cp_into_a_symlink_that_names_a_host_path(daemon: Daemon, canary: Canary, box: str, untouched: None) -> None:
    """``docker cp`` to a container path that is a link to a host directory: resolved in the container,
    where that directory does not exist (dockerd: 404)."""
    daemon.docker("exec", box, "sh", "-c", f"ln -sfn {canary.path} /hostlink")
    answer = send(daemon, "PUT", f"/v1.41/containers/{box}/archive?path=/hostlink", tar_of(("pwned", "f", b"x")))
    assert answer is not None and answer.status == 404, error_text(answer)
