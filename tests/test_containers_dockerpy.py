"""docker-py's high-level container API against engined (what SDK users and compose rely on)."""

from __future__ import annotations

import io
import tarfile
import uuid

import pytest


@pytest.fixture
def name(api) -> str:
    name = "cp-" + uuid.uuid4().hex[:10]
    yield name
    for container in api.containers.list(all=True, filters={"name": name}):
        container.remove(force=True, v=True)


def test_high_level_container_api(api, busybox, name):
    assert api.containers.run(busybox, ["sh", "-c", "echo hello"], remove=True) == b"hello\n"
    container = api.containers.run(
        busybox, ["sleep", "60"], name=name, detach=True, labels={"k": "v"}, environment={"E": "1"}, network_mode="none"
    )
    container.reload()
    assert container.status == "running" and container.labels == {"k": "v"} and container.name == name
    assert api.containers.get(name).id == container.id
    assert [c.id for c in api.containers.list(filters={"label": "k=v"})] == [container.id]
    result = container.exec_run("sh -c 'echo $E'")
    assert result == (0, b"1\n")
    assert container.top()["Processes"][0][-1] == "sleep 60"
    assert container.stats(stream=False)["pids_stats"]["current"] >= 1
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("put.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"data"))
    assert container.put_archive("/tmp", data.getvalue())
    stream, stat = container.get_archive("/tmp/put.txt")
    assert stat["size"] == 4
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        assert tar.extractfile("put.txt").read() == b"data"
    container.update(mem_limit="64m", memswap_limit="128m")
    container.rename(name + "-2")
    container.reload()
    assert container.name == name + "-2"
    container.rename(name)
    container.pause()
    container.reload()
    assert container.status == "paused"
    container.unpause()
    container.restart(timeout=0)
    container.kill(signal="SIGKILL")
    assert container.wait(timeout=20)["StatusCode"] == 137
    image = container.commit(repository="dockerpy-" + name, tag="1", message="m", author="a")
    try:
        assert image.attrs["Comment"] == "m" and image.attrs["Author"] == "a"
    finally:
        api.images.remove(image.id)
    assert container.logs() == b""
    pruned = api.containers.prune(filters={"label": "k=v"})
    assert pruned["ContainersDeleted"] == [container.id]


def test_attach_with_logs_replays_the_log(api, busybox, name):
    container = api.containers.run(busybox, ["sh", "-c", "echo a; echo b >&2"], name=name, detach=True)
    assert container.wait(timeout=20)["StatusCode"] == 0
    assert container.attach(logs=True, stream=False) == b"a\nb\n"
    assert container.attach(logs=True, stream=False, stderr=False) == b"a\n"
