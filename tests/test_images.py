"""Images end to end: the real docker CLI (and docker-py) against the session engined.

Names are prefixed ``imgtest-`` and every test removes what it made; prunes are scoped by label so
other tests' images on the shared daemon are never touched.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from engine_testkit.cli import DockerCLI

DATA = Path(__file__).parent / "data" / "dockerd"
TINY_ID = "sha256:ee14ad9a44bf4d6ea30f73a2940cd66b37e01cf66222cfd39b8767b430dbee0f"
BUSYBOX_ID = "sha256:b50036ef77067d87474fe337d5d61d5b07246607b64825fd8c79dcf1fdaf41e1"
TWOLAYER_ID = "sha256:66c2ccf4b5bbf3d97413de9094ac4ba34e0312b72706ad6fa86aa720c0575342"


def rootfs(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_id(docker: DockerCLI, ref: str) -> str:
    return docker("image", "inspect", "-f", "{{.Id}}", ref).out


def members(data: bytes) -> dict[str, bytes | str]:
    """An archive's members: file bytes, or ``-> target`` for symlinks."""
    out: dict[str, bytes | str] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            if m.issym():
                out[m.name] = "-> " + m.linkname
            elif m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                out[m.name] = f.read()
    return out


@pytest.fixture
def cleanup(docker: DockerCLI):
    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        docker.run("rmi", "-f", ref)


def test_import_stdin_file_changes_and_message(docker: DockerCLI, tmp_path: Path, cleanup: list[str]) -> None:
    data = rootfs({"hello": b"hi\n"})
    out = docker(
        "import",
        "-c",
        'CMD ["/hello"]',
        "-c",
        "ENV A=1",
        "-c",
        "LABEL imgtest=yes",
        "-m",
        "my msg",
        "-",
        "imgtest-import:stdin",
        input=data,
    ).out
    cleanup.append("imgtest-import:stdin")
    assert out.startswith("sha256:") and len(out) == 71
    info = json.loads(docker("image", "inspect", "imgtest-import:stdin").stdout)[0]
    assert info["Id"] == out
    assert info["Config"]["Cmd"] == ["/hello"]
    assert info["Config"]["Env"] == ["A=1"]
    assert info["Config"]["Labels"] == {"imgtest": "yes"}
    assert info["Comment"] == "my msg"
    assert info["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(data).hexdigest()]
    assert info["Size"] == 3
    # from a (gzipped) file, no message: dockerd's default comment
    path = tmp_path / "rootfs.tar.gz"
    path.write_bytes(gzip.compress(data))
    docker("import", str(path), "imgtest-import:file")
    cleanup.append("imgtest-import:file")
    info = json.loads(docker("image", "inspect", "imgtest-import:file").stdout)[0]
    assert info["Comment"] == "Imported from -"
    assert info["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(data).hexdigest()]
    bad = docker.fails("import", "-c", "RUN true", "-", "imgtest-import:bad", input=data)
    assert "run is not a valid change command" in bad.stderr


def test_import_from_url(docker: DockerCLI, tmp_path: Path, cleanup: list[str]) -> None:
    import functools
    import http.server
    import threading

    (tmp_path / "rootfs.tar").write_bytes(rootfs({"u": b"url"}))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        out = docker("import", f"{url}/rootfs.tar", "imgtest-import:url").lines()
        cleanup.append("imgtest-import:url")
        assert out[0] == f"Downloading from {url}/rootfs.tar" and out[-1].startswith("sha256:")
        comment = docker("image", "inspect", "-f", "{{.Comment}}", "imgtest-import:url").out
        assert comment == f"Imported from {url}/rootfs.tar"
        missing = docker.fails("import", f"{url}/nope.tar")
        assert f"failed to GET {url}/nope.tar with status 404" in missing.stderr
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_inspect_and_history_shapes(docker: DockerCLI, busybox: str) -> None:
    want = json.loads((DATA / "image-inspect.json").read_text())
    info = json.loads(docker("image", "inspect", busybox).stdout)[0]
    assert list(info) == [k for k in want if k in info]
    assert set(want) - set(info) == set()
    assert info["GraphDriver"]["Name"] == docker("info", "-f", "{{.Driver}}").out
    assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    history = json.loads(docker("history", "--no-trunc", "--format", "{{json .}}", busybox).lines()[0])
    assert history["ID"] == info["Id"]
    missing = docker.fails("image", "inspect", "imgtest-nope")
    assert "No such image: imgtest-nope" in missing.stderr


def test_api_errors(api) -> None:
    import docker

    with pytest.raises(docker.errors.ImageNotFound) as info:
        api.api.inspect_image("imgtest-nope")
    assert info.value.explanation == "no such image: imgtest-nope: No such image: imgtest-nope:latest"
    with pytest.raises(docker.errors.APIError) as bad:
        api.api.tag("imgtest-nope", "Bad")
    assert bad.value.status_code == 404
    with pytest.raises(docker.errors.NotFound) as pull:
        api.api.pull("imgtest-not-on-any-registry", tag="latest")
    assert "pull access denied for imgtest-not-on-any-registry" in str(pull.value)


def test_images_list_filters_and_formats(docker: DockerCLI, cleanup: list[str]) -> None:
    first = docker("import", "-c", "LABEL imgtest.list=a", "-", "imgtest-list/a:1", input=rootfs({"a": b"a"})).out
    cleanup.append("imgtest-list/a:1")
    second = docker("import", "-c", "LABEL imgtest.list=b", "-", "imgtest-list/b:1", input=rootfs({"b": b"b"})).out
    cleanup.append("imgtest-list/b:1")
    docker("tag", "imgtest-list/a:1", "imgtest-list/a:2")
    cleanup.append("imgtest-list/a:2")
    rows = docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "imgtest-list/a").lines()
    assert sorted(rows) == [f"imgtest-list/a:1 {first[7:19]}", f"imgtest-list/a:2 {first[7:19]}"]
    assert docker("images", "-q", "--filter", "label=imgtest.list=b").lines() == [second[7:19]]
    assert docker("images", "-q", "--no-trunc", "--filter", "reference=imgtest-list/*:1").lines() == [second, first]
    since = docker("images", "-q", "--filter", f"since={first}", "--filter", "label=imgtest.list").lines()
    assert since == [second[7:19]]
    before = docker("images", "-q", "--filter", f"before={second}", "--filter", "label=imgtest.list").lines()
    assert set(before) == {first[7:19]}  # one row per tag
    header = docker("images", "--digests", "imgtest-list/b").lines()[0].split()
    assert header[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    bad = docker.fails("images", "--filter", "nope=1")
    assert "Invalid filter 'nope'" in bad.stderr
    # moving both tags away leaves the first image dangling
    cleanup.append(first)
    docker("tag", "imgtest-list/b:1", "imgtest-list/a:1")
    docker("tag", "imgtest-list/b:1", "imgtest-list/a:2")
    dangling = docker(
        "images", "-q", "--no-trunc", "--filter", "dangling=true", "--filter", "label=imgtest.list"
    ).lines()
    assert dangling == [first]
    assert "<none>" in docker("images", "-a", "--filter", "dangling=true", "--filter", "label=imgtest.list").out


def test_tag_and_rmi(docker: DockerCLI, cleanup: list[str]) -> None:
    new = docker("import", "-", "imgtest-rmi:1", input=rootfs({"r": b"r"})).out
    cleanup.append(new)
    docker("tag", "imgtest-rmi:1", "imgtest-rmi:2")
    docker("tag", new[7:19], "localhost:5000/imgtest-rmi")
    conflict = docker.fails("rmi", new[7:19])
    assert (
        f"conflict: unable to delete {new[7:19]} (must be forced) - image is referenced in multiple repositories"
        in conflict.stderr
    )
    assert docker("rmi", "imgtest-rmi:2").lines() == ["Untagged: imgtest-rmi:2"]
    assert docker("rmi", "localhost:5000/imgtest-rmi").lines() == ["Untagged: localhost:5000/imgtest-rmi:latest"]
    removed = docker("rmi", "imgtest-rmi:1").lines()
    assert removed[:2] == ["Untagged: imgtest-rmi:1", f"Deleted: {new}"]
    assert removed[2].startswith("Deleted: sha256:")  # its layer
    assert "No such image" in docker.fails("rmi", "imgtest-rmi:1").stderr
    # -f with several tags removes the image and every tag
    again = docker("import", "-", "imgtest-rmi:3", input=rootfs({"r": b"r"})).out
    docker("tag", again, "imgtest-rmi:4")
    lines = docker("rmi", "-f", again[7:19]).lines()
    assert {"Untagged: imgtest-rmi:3", "Untagged: imgtest-rmi:4", f"Deleted: {again}"} <= set(lines)


def test_dockerd_archives_load_with_dockerd_ids_and_save_back_identically(
    docker: DockerCLI, tmp_path: Path, cleanup: list[str]
) -> None:
    tiny = (DATA / "tiny-dockerd.tar").read_bytes()
    two = gzip.decompress((DATA / "two-dockerd.tar.gz").read_bytes())
    cleanup += [TINY_ID, TWOLAYER_ID, BUSYBOX_ID]
    # the session's busybox fixture may hold busybox:latest: keep a tag on it and restore it afterwards
    previous = docker.run("image", "inspect", "-f", "{{.Id}}", "busybox:latest").out
    if previous:
        docker("tag", previous, "imgtest-keep/busybox:latest")
    try:
        assert docker("load", input=tiny).out == "Loaded image: tiny:1"
        assert "Loaded image: twolayer:1" in docker("load", input=two).out
        assert image_id(docker, "tiny:1") == TINY_ID
        assert image_id(docker, "twolayer:1") == TWOLAYER_ID
        assert image_id(docker, "busybox:latest") == BUSYBOX_ID
        history = json.loads(docker("history", "--format", "{{json .}}", "--no-trunc", "twolayer:1").lines()[3])
        assert history["CreatedBy"] == "/bin/sh -c echo hello > /hello && mkdir -p /data && rm -f /bin/vi"
        out = tmp_path / "two.tar"
        docker("save", "-o", str(out), "busybox:latest", "twolayer:1")
        ours, theirs = members(out.read_bytes()), members(two)
        assert ours == theirs  # layer tars (diff IDs), configs, v1 json, manifest.json, repositories
        assert out.read_bytes() == two  # and even the archive itself
        tiny_out = tmp_path / "tiny.tar"
        docker("save", "-o", str(tiny_out), TINY_ID[7:19], "tiny:1")
        assert members(tiny_out.read_bytes()) == members(tiny)
    finally:
        docker.run("rmi", "tiny:1", "twolayer:1", "busybox:latest")
        if previous:
            docker("tag", "imgtest-keep/busybox:latest", "busybox:latest")
            docker("rmi", "imgtest-keep/busybox:latest")


def oci_layout_from(docker_archive: bytes) -> bytes:
    """What newer tools write: an OCI image layout (gzipped layers, annotated index), no manifest.json."""
    src = members(docker_archive)
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    index = []
    for item in json.loads(src["manifest.json"]):
        layers = []
        for path in item["Layers"]:
            data = src[path]
            while isinstance(data, str):  # a symlink to a shared layer
                data = src[data[3:].replace("../", "")]
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(gzip.compress(data))})
        config = {"mediaType": "application/vnd.oci.image.config.v1+json", **put(src[item["Config"]])}
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": layers,
            }
        ).encode()
        for tag in item["RepoTags"] or [None]:
            desc: dict[str, object] = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest)}
            if tag:
                repo, _, t = tag.rpartition(":")
                desc["annotations"] = {
                    "io.containerd.image.name": f"docker.io/library/{repo}:{t}",
                    "org.opencontainers.image.ref.name": t,
                }
            index.append(desc)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps({"schemaVersion": 2, "manifests": index}).encode())
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest[7:], data)
    return buf.getvalue()


def test_save_load_several_images_and_oci_layout(docker: DockerCLI, tmp_path: Path, cleanup: list[str]) -> None:
    a = docker("import", "-", "imgtest-save-a:1", input=rootfs({"a": b"a" * 1000})).out
    b = docker("import", "-", "imgtest-save-b:1", input=rootfs({"b": b"b"})).out
    cleanup += [a, b]
    docker("tag", a, "imgtest-save-a:2")
    archive = tmp_path / "both.tar"
    docker("save", "-o", str(archive), "imgtest-save-a", "imgtest-save-b:1")  # a name alone: all its tags
    saved = members(archive.read_bytes())
    manifest = json.loads(saved["manifest.json"])
    assert sorted(tag for item in manifest for tag in item["RepoTags"]) == [
        "imgtest-save-a:1",
        "imgtest-save-a:2",
        "imgtest-save-b:1",
    ]
    docker("rmi", "-f", a, b)
    out = docker("load", "-i", str(archive)).lines()
    assert sorted(out) == [
        "Loaded image: imgtest-save-a:1",
        "Loaded image: imgtest-save-a:2",
        "Loaded image: imgtest-save-b:1",
    ]
    assert image_id(docker, "imgtest-save-a:2") == a
    layout = oci_layout_from(archive.read_bytes())
    docker("rmi", "-f", a, b)
    out = docker("load", input=layout).lines()
    assert sorted(out) == sorted(
        ["Loaded image: imgtest-save-a:1", "Loaded image: imgtest-save-a:2", "Loaded image: imgtest-save-b:1"]
    )
    assert image_id(docker, "imgtest-save-b:1") == b
    # saved by ID, an image has no tags: it loads by ID, from either format
    by_id = tmp_path / "by-id.tar"
    docker("save", "-o", str(by_id), b)
    assert json.loads(members(by_id.read_bytes())["manifest.json"])[0]["RepoTags"] is None
    docker("rmi", "imgtest-save-b:1")
    assert docker("load", "-i", str(by_id)).lines() == [f"Loaded image ID: {b}"]
    docker("rmi", b)
    assert docker("load", input=oci_layout_from(by_id.read_bytes())).lines() == [f"Loaded image ID: {b}"]
    bad = docker.fails("load", input=b"not a tar at all" * 100)
    assert "Error" in bad.stderr


def test_image_prune_scoped_by_label(docker: DockerCLI, cleanup: list[str]) -> None:
    kept = docker("import", "-c", "LABEL imgtest.prune=1", "-", "imgtest-prune:kept", input=rootfs({"k": b"k"})).out
    cleanup.append(kept)
    dangling = docker("import", "-c", "LABEL imgtest.prune=1", "-", input=rootfs({"d": b"d"})).out
    cleanup.append(dangling)
    out = docker("image", "prune", "-f", "--filter", "label=imgtest.prune=1").out
    assert f"deleted: {dangling}" in out
    assert "Total reclaimed space: 1B" in out
    assert image_id(docker, "imgtest-prune:kept") == kept
    out = docker("image", "prune", "-a", "-f", "--filter", "label=imgtest.prune=1").out
    assert "untagged: imgtest-prune:kept" in out and f"deleted: {kept}" in out
    assert docker.run("image", "inspect", kept).returncode != 0


def test_commit_and_rmi_of_an_image_in_use(docker: DockerCLI, busybox: str, cleanup: list[str]) -> None:
    name = "imgtest-commit-src"
    docker("run", "--name", name, "--network", "none", busybox, "sh", "-c", "echo hi > /hi && rm /bin/vi")
    try:
        new = docker(
            "commit",
            "-c",
            "ENV COMMITTED=1",
            "-c",
            'CMD ["cat", "/hi"]',
            "-m",
            "why",
            "-a",
            "me",
            name,
            "imgtest-commit:1",
        ).out
        cleanup.append(new)
        info = json.loads(docker("image", "inspect", "imgtest-commit:1").stdout)[0]
        assert info["Author"] == "me" and info["Parent"] == image_id(docker, busybox)
        assert "COMMITTED=1" in info["Config"]["Env"] and info["Config"]["Cmd"] == ["cat", "/hi"]
        assert len(info["RootFS"]["Layers"]) == 2
        top = json.loads(docker("history", "--format", "{{json .}}", "--no-trunc", "imgtest-commit:1").lines()[0])
        assert top["CreatedBy"] == "sh -c echo hi > /hi && rm /bin/vi" and top["Comment"] == "why"
        assert docker("run", "--rm", "--network", "none", "imgtest-commit:1").out == "hi"
        gone = docker.run("run", "--rm", "--network", "none", "imgtest-commit:1", "ls", "/bin/vi")
        assert gone.returncode != 0  # the whiteout made it into the layer
        user = docker("create", "--network", "none", "imgtest-commit:1").out
        try:
            conflict = docker.fails("rmi", "imgtest-commit:1")
            assert (
                f'conflict: unable to remove repository reference "imgtest-commit:1" (must force) - container '
                f"{user[:12]} is using its referenced image {new[7:19]}" in conflict.stderr
            )
            stopped = docker.fails("rmi", new[7:19])
            assert f"image is being used by stopped container {user[:12]}" in stopped.stderr
        finally:
            docker("rm", user)
        conflict = docker.fails("rmi", image_id(docker, busybox)[7:19])
        assert "(cannot be forced) - image has dependent child images" in conflict.stderr
    finally:
        docker("rm", "-f", name)
