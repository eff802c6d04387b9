"""``docker build`` (classic builder, DOCKER_BUILDKIT=0) and docker-py's images.build against engined."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import uuid
from pathlib import Path

import pytest

from engine.builder.dockerfile import parse
from engine.builder.ignore import Matcher
from engine.builder.shell import Lexer

NAME_PREFIX = "build-test-"


def _tag(what: str) -> str:
    return f"{NAME_PREFIX}{what}-{uuid.uuid4().hex[:8]}:latest"


@pytest.fixture
def images(docker):
    """Tags a test builds. Afterwards every container and image the test made (intermediate ones
    included) is removed; what existed before is left alone (the daemon is shared)."""
    containers_before = set(docker("ps", "-aq", "--no-trunc").lines())
    images_before = set(docker("images", "-aq", "--no-trunc").lines())
    tags: list[str] = []
    yield tags
    new_containers = set(docker.run("ps", "-aq", "--no-trunc").lines()) - containers_before
    if new_containers:
        docker.run("rm", "-f", "-v", *new_containers)
    if tags:
        docker.run("rmi", "-f", *tags)
    for _ in range(5):  # children first: a parent with children cannot go
        left = set(docker.run("images", "-aq", "--no-trunc").lines()) - images_before
        if not left:
            break
        docker.run("rmi", "-f", *left)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _steps(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Step ")]


# -- the parser, expansion and .dockerignore rules (no daemon) ------------------------------------------


def test_dockerfile_parsing_and_word_expansion() -> None:
    parsed = parse(
        "# escape=`\n# comment\nFROM busybox\nRUN echo a `\n  # inside\n    && echo b\nCOPY --chown=1:2 a b /c/\n"
    )
    assert parsed.escape == "`"
    run = parsed.instructions[1]
    assert run.original == "RUN echo a     && echo b"
    copy = parsed.instructions[2]
    assert copy.flags == {"chown": "1:2"} and copy.rest == "a b /c/"
    assert parse('CMD ["a", "b"]').instructions[0].json_args == ["a", "b"]
    lex = Lexer()
    env = {"A": "1", "EMPTY": ""}
    assert lex.word("${A}-$A-${B:-dflt}-${A:+alt}-${EMPTY:+x}", env) == "1-1-dflt-alt-"
    assert lex.word("'$A' \"$A\" \\$A", env) == "$A 1 $A"
    assert lex.words('x "y z" $A', env) == ["x", "y z", "1"]


def test_env_label_forms_and_escape_directive() -> None:
    from engine.builder.dockerfile import key_values

    parsed = parse("FROM busybox\nENV OLD form with spaces\nLABEL a=\"x y\" b='z' c=1\n")
    assert key_values(parsed.instructions[1], "\\") == [("OLD", "form with spaces")]
    pairs = key_values(parsed.instructions[2], "\\")
    assert [(k, Lexer().word(v, {})) for k, v in pairs] == [("a", "x y"), ("b", "z"), ("c", "1")]
    windows = parse("# escape=`\nFROM busybox\nRUN echo c:\\dir `\n  more\n")
    assert windows.instructions[1].original == "RUN echo c:\\dir   more"


def test_dockerignore_patterns() -> None:
    m = Matcher(["*.log", "!keep.log", "build/**", "docs", "**/tmp"])
    assert m.matches("a.log") and not m.matches("keep.log")
    assert m.matches("build/x/y") and m.matches("docs/readme") and m.matches("a/b/tmp")
    assert not m.matches("src/a.log") and not m.matches("src/main.c")


# -- end to end --------------------------------------------------------------------------------------------

DOCKERFILE = """\
FROM busybox
ARG GREETING=hello
ENV APP_DIR=/app \\
    MODE=test
LABEL org.example.name="demo app" version=1
RUN echo "$GREETING from run" && mkdir -p /data && echo built > /data/marker
COPY files/ $APP_DIR/
COPY top.txt ${APP_DIR}/top.txt
WORKDIR $APP_DIR
USER nobody
EXPOSE 8080 9000/udp
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat top.txt"]
"""


def test_build_run_history_and_cache(docker, busybox, images, tmp_path: Path) -> None:
    ctx = _write(
        tmp_path,
        {
            "Dockerfile": DOCKERFILE,
            "files/a.txt": "a\n",
            "files/secret.txt": "no\n",
            "top.txt": "top\n",
            ".dockerignore": "files/secret.txt\n",
        },
    )
    tag = _tag("multi")
    images.append(tag)
    first = docker("build", "-t", tag, str(ctx))
    out = first.stdout
    assert _steps(out)[0] == "Step 1/12 : FROM busybox"
    assert "Step 3/12 : ENV APP_DIR=/app     MODE=test" in out
    assert "hello from run" in out
    assert " ---> Running in " in out and "Removing intermediate container " in out
    image_id = docker("inspect", "-f", "{{.Id}}", tag).out
    assert f"Successfully built {image_id[7:19]}" in out and f"Successfully tagged {tag}" in out

    shown = docker("run", "--rm", tag).out
    assert shown == "top"
    probe = docker("run", "--rm", "--entrypoint", "sh", tag, "-c", "id -u; pwd; ls /app; cat /data/marker; env").out
    lines = probe.splitlines()
    assert lines[:2] == ["65534", "/app"]
    assert "a.txt" in lines and "top.txt" in lines and "secret.txt" not in lines
    assert "built" in lines and "APP_DIR=/app" in lines and "MODE=test" in lines

    inspect = json.loads(docker("inspect", tag).stdout)[0]
    config = inspect["Config"]
    assert config["Labels"] == {"org.example.name": "demo app", "version": "1"}
    assert config["ExposedPorts"] == {"8080/tcp": {}, "9000/udp": {}}
    assert config["Entrypoint"] == ["/bin/sh", "-c"] and config["Cmd"] == ["cat top.txt"]
    assert config["WorkingDir"] == "/app" and config["User"] == "nobody"
    assert config["Image"] == inspect["Parent"]
    assert inspect["ContainerConfig"]["Cmd"] == ["/bin/sh", "-c", "#(nop) ", 'CMD ["cat top.txt"]']
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).lines()
    assert history[0] == '/bin/sh -c #(nop)  CMD ["cat top.txt"]'
    assert '/bin/sh -c #(nop)  ENTRYPOINT ["/bin/sh" "-c"]' in history
    assert "/bin/sh -c #(nop) WORKDIR /app" in history
    assert any(h.startswith("/bin/sh -c #(nop) COPY dir:") and h.endswith(" in /app/ ") for h in history)
    assert any(h.startswith("|1 GREETING=hello /bin/sh -c echo") for h in history)
    raw = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", tag).out)
    assert len(raw) == 4  # busybox + RUN + two COPYs; metadata steps add no layer

    again = docker("build", "-t", tag, str(ctx)).stdout
    assert again.count(" ---> Using cache") == 11
    assert " ---> Running in" not in again
    assert docker("inspect", "-f", "{{.Id}}", tag).out == image_id

    (ctx / "top.txt").write_text("changed\n")
    changed = docker("build", "-t", tag, str(ctx)).stdout
    assert changed.count(" ---> Using cache") == 5  # steps 2-6 reused, COPY top.txt (7) onwards rebuilt
    assert docker("run", "--rm", tag).out == "changed"
    nocache = docker("build", "--no-cache", "-q", str(ctx)).out
    assert nocache.startswith("sha256:") and len(nocache) == 71


def test_failing_run_reports_dockerds_error(docker, busybox, images, tmp_path: Path) -> None:
    ctx = _write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo before\nRUN exit 3\n"})
    before = set(docker("ps", "-aq").lines())
    result = docker.fails("build", "--force-rm", str(ctx))
    assert result.returncode == 3  # the CLI exits with the JSON error's code, as with dockerd
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in result.stderr + result.stdout
    assert set(docker("ps", "-aq").lines()) == before  # --force-rm: nothing left

    # default rm: successful steps' containers go, the failed one stays (dockerd's classic builder)
    docker.fails("build", str(ctx))
    left = set(docker("ps", "-aq").lines()) - before
    assert len(left) == 1
    status = docker("inspect", "-f", "{{.State.ExitCode}}", left.pop()).out
    assert status == "3"

    # --rm=false keeps the intermediate containers of successful steps too
    ok = _write(tmp_path / "ok", {"Dockerfile": "FROM busybox\nRUN true\nENV X=1\n"})
    docker("build", "--rm=false", "--no-cache", str(ok))
    assert len(set(docker("ps", "-aq").lines()) - before) == 3


def test_multistage_scratch_and_target(docker, busybox, images, tmp_path: Path) -> None:
    ctx = _write(
        tmp_path,
        {
            "Dockerfile": (
                "FROM busybox AS builder\n"
                "RUN mkdir /out && echo artifact > /out/result.txt\n"
                "FROM scratch AS final\n"
                "COPY busybox /bin/busybox\n"
                "COPY --from=builder /out/result.txt /result.txt\n"
                'CMD ["/bin/busybox", "cat", "/result.txt"]\n'
                "FROM busybox AS later\n"
                "RUN echo never-run\n"
            )
        },
    )
    shutil.copy("/bin/busybox", ctx / "busybox")
    tag = _tag("stages")
    images.append(tag)
    out = docker("build", "--target", "final", "-t", tag, str(ctx)).stdout
    assert "Step 3/6 : FROM scratch AS final\n ---> \n" in out
    assert "never-run" not in out
    assert docker("run", "--rm", tag).out == "artifact"
    assert len(json.loads(docker("inspect", "-f", "{{json .RootFS.Layers}}", tag).out)) == 2
    bad = docker.fails("build", "--target", "nosuch", str(ctx))
    assert "failed to reach build target nosuch in Dockerfile" in bad.stderr


def test_context_paths_never_escape(docker, busybox, images, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret\n")
    ctx = _write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY link /copied/\n", "x": "x"})
    os.symlink(str(outside), ctx / "link")
    tag = _tag("links")
    images.append(tag)
    docker("build", "-t", tag, str(ctx))
    shown = docker("run", "--rm", tag, "sh", "-c", "readlink /copied/link; cat /copied/link || echo dangling").out
    assert shown.splitlines() == [str(outside), "dangling"]

    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY ../outside.txt /x\n")
    refused = docker.fails("build", str(ctx))
    assert "COPY failed: forbidden path outside the build context: ../outside.txt ()" in refused.stderr

    # a hostile context tar on stdin: a ../ entry and a symlink to / followed by a file below it
    victim = tmp_path / "victim"
    victim.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"FROM busybox\nCOPY . /ctx/\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("escape")
        link.type = tarfile.SYMTYPE
        link.linkname = str(victim)
        tf.addfile(link)
        evil = tarfile.TarInfo("escape/pwned")
        evil.size = 3
        tf.addfile(evil, io.BytesIO(b"bad"))
    docker.run("build", "-", input=buf.getvalue())
    assert not (victim / "pwned").exists()
    buf2 = io.BytesIO()
    with tarfile.open(fileobj=buf2, mode="w") as tf:
        evil = tarfile.TarInfo("../../pwned-too")
        evil.size = 3
        tf.addfile(evil, io.BytesIO(b"bad"))
    result = docker.run("build", "-", input=buf2.getvalue())
    assert result.returncode != 0
    assert not Path("/pwned-too").exists() and not (tmp_path / "pwned-too").exists()


def test_dockerignore_applied_by_the_daemon(docker, busybox, images) -> None:
    """A context tar on stdin reaches the daemon unfiltered: the daemon applies .dockerignore."""
    tag = _tag("ignore")
    images.append(tag)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in {
            "Dockerfile": b"FROM busybox\nCOPY . /ctx/\n",
            ".dockerignore": b"*.log\n!keep.log\nsecret/\n",
            "a.log": b"a",
            "keep.log": b"k",
            "secret/key": b"s",
            "main.c": b"c",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    docker("build", "-t", tag, "-", input=buf.getvalue())
    listing = docker("run", "--rm", tag, "ls", "-a", "/ctx").lines()
    assert sorted(listing) == [".", "..", ".dockerignore", "Dockerfile", "keep.log", "main.c"]


def test_stdin_quiet_and_errors(docker, busybox, images) -> None:
    tag = _tag("stdin")
    images.append(tag)
    out = docker("build", "-t", tag, "-", input="FROM busybox\nRUN echo from-stdin\n").stdout
    assert "from-stdin" in out and f"Successfully tagged {tag}" in out
    quiet = docker("build", "-q", "-", input="FROM busybox\nLABEL q=1\n").out
    assert quiet.startswith("sha256:") and "\n" not in quiet
    missing = docker.fails("build", "-", input="FROM nosuch-image-xyz\n")
    assert "pull access denied for nosuch-image-xyz" in missing.stderr
    # malformed instructions fail the whole file before any step, as an HTTP error
    bad = docker.fails("build", "-", input="FROM busybox\nRUN true\nSHELL /bin/sh -c\n")
    assert (
        "Error response from daemon: Dockerfile parse error line 3: SHELL requires the arguments to be in JSON form"
        in (bad.stderr)
    )
    assert "Step 1/" not in bad.stdout
    unknown = docker.fails("build", "-", input="FROM busybox\nFOO bar\n")
    assert "Dockerfile parse error line 2: unknown instruction: FOO" in unknown.stderr


def test_docker_py_build(api, busybox, images) -> None:
    import docker as docker_py

    tag = _tag("py")
    images.append(tag)
    dockerfile = b'FROM busybox\nARG NAME=x\nRUN echo "name=$NAME" > /name\nCMD ["cat", "/name"]\n'
    image, logs = api.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, buildargs={"NAME": "py"}, rm=True)
    assert tag in image.tags
    assert any("aux" in entry and entry["aux"]["ID"] == image.id for entry in logs)
    assert api.containers.run(tag, remove=True) == b"name=py\n"
    with pytest.raises(docker_py.errors.BuildError) as failed:
        api.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 7\n"), forcerm=True)
    assert "returned a non-zero code: 7" in failed.value.msg
    with pytest.raises(docker_py.errors.APIError) as missing:
        # the error comes before the stream starts: an HTTP error, not an in-band message
        list(api.api.build(fileobj=io.BytesIO(b"FROM busybox\n"), dockerfile="nope", decode=True))
    assert "Cannot locate specified Dockerfile: nope" in str(missing.value)


def test_add_wildcards_chown_and_metadata_instructions(docker, busybox, images, tmp_path: Path) -> None:
    ctx = _write(tmp_path, {"sub/1.txt": "one\n", "sub/2.txt": "two\n", "sub/skip.md": "no\n", "x.md": "md\n"})
    with tarfile.open(ctx / "arch.tar.gz", "w:gz") as tf:
        tf.add(ctx / "x.md", arcname="in-archive.txt")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "MAINTAINER someone <a@b.c>\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "COPY sub/*.txt /wild/\n"
        "COPY --chown=nobody:nogroup x.md /owned.md\n"
        "ADD arch.tar.gz /extracted/\n"
        "VOLUME /vol /other\n"
        "STOPSIGNAL SIGUSR1\n"
        "HEALTHCHECK --interval=30s --retries=3 CMD true\n"
        "ONBUILD RUN echo triggered > /trig\n"
        "RUN ls /wild /extracted && stat -c '%U:%G' /owned.md\n"
    )
    tag = _tag("feat")
    images.append(tag)
    out = docker("build", "-t", tag, str(ctx)).stdout
    assert "1.txt\n2.txt\n" in out and "in-archive.txt" in out and "nobody:nogroup" in out
    assert "skip.md" not in out
    inspect = json.loads(docker("inspect", tag).stdout)[0]
    config = inspect["Config"]
    assert inspect["Author"] == "someone <a@b.c>"
    assert config["Shell"] == ["/bin/sh", "-ec"] and config["StopSignal"] == "SIGUSR1"
    assert config["Volumes"] == {"/vol": {}, "/other": {}}
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000, "Retries": 3}
    assert config["OnBuild"] == ["RUN echo triggered > /trig"]
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).lines()
    assert '/bin/sh -ec #(nop)  HEALTHCHECK &{["CMD-SHELL" "true"] "30s" "0s" "0s" \'\\x03\'}' in history
    assert "/bin/sh -ec #(nop)  VOLUME [/vol /other]" in history

    child = _tag("onbuild")
    images.append(child)
    out = docker("build", "-t", child, "-", input=f"FROM {tag}\nRUN cat /trig\n").stdout
    assert "# Executing 1 build trigger\n" in out and "triggered" in out
    assert json.loads(docker("inspect", "-f", "{{json .Config.OnBuild}}", child).out) is None

    (ctx / "Dockerfile").write_text("FROM busybox\nADD http://example.com/x /x\n")
    refused = docker.fails("build", str(ctx))
    assert "remote URL sources are not supported" in refused.stderr


def test_docker_compose_build(docker, busybox, images, tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed")
    import subprocess

    tag = _tag("compose")
    images.append(tag)
    _write(
        tmp_path,
        {
            "Dockerfile": 'FROM busybox\nARG V=1\nRUN echo "v=$V" > /v\nCMD ["cat", "/v"]\n',
            "docker-compose.yml": (
                f'version: "3"\nservices:\n  app:\n    build:\n      context: .\n      args:\n'
                f'        V: "42"\n    image: {tag}\n'
            ),
        },
    )
    env = {**docker.env, "COMPOSE_DOCKER_CLI_BUILD": "0"}
    proc = subprocess.run([compose, "build"], cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert docker("run", "--rm", tag).out == "v=42"


def test_interrupted_build_kills_and_removes_its_container(docker, busybox, images, tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    ctx = _write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    before = set(docker("ps", "-aq").lines())
    proc = docker.popen("build", "--no-cache", str(ctx), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b"started"):
                break
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while set(docker("ps", "-aq").lines()) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(docker("ps", "-aq").lines()) == before


def test_run_options_reach_the_build_containers(docker, busybox, images) -> None:
    out = docker(
        "build",
        "--no-cache",
        "--add-host",
        "myhost:10.1.2.3",
        "--shm-size",
        "128m",
        "--network",
        "none",
        "-",
        input="FROM busybox\nRUN grep myhost /etc/hosts; df -k /dev/shm | tail -1; ls /sys/class/net\n",
    ).stdout
    assert "10.1.2.3\tmyhost" in out
    assert " 131072 " in out  # 128 MiB of /dev/shm, in KiB
    assert "lo\n" in out and "eth0" not in out  # --network none: loopback only


def test_cache_from_a_loaded_image(docker, busybox, images, tmp_path: Path) -> None:
    """``--cache-from``: an image from ``docker load`` (no parent links) serves as cache by its history."""
    ctx = _write(
        tmp_path / "ctx",
        {"Dockerfile": 'FROM busybox\nENV A=1\nRUN echo data > /d\nCOPY f /f\nCMD ["cat", "/d"]\n', "f": "f\n"},
    )
    tag, second = _tag("cachefrom"), _tag("cachefrom2")
    images.extend([tag, second])
    docker("build", "-t", tag, str(ctx))
    original = docker("inspect", "-f", "{{.Id}}", tag).out
    saved = tmp_path / "saved.tar"
    docker("save", "-o", str(saved), tag)
    docker("rmi", tag)  # the intermediate images go with it: no local cache left
    docker("load", "-i", str(saved))
    # without --cache-from the loaded image is no cache (no parent links); this build's own images
    # then exist locally, but --cache-from only takes local hits inside the source's chain
    assert " ---> Using cache" not in docker("build", str(ctx)).stdout
    out = docker("build", "--cache-from", tag, "-t", second, str(ctx)).stdout
    assert out.count(" ---> Using cache") == 4 and " ---> Running in" not in out
    assert docker("inspect", "-f", "{{.Id}}", second).out == original
