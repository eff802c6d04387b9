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


def test_attach_body_waits_until_the_client_read_the_headers(engine, api, busybox, name):
    """docker-py reads the 101 answer through a buffered file, then the raw socket (docker-py #425):
    output sent together with the headers would be lost. Over the unix socket the replay starts only
    once the client has read the headers, so a client that reads late gets the headers alone."""
    import socket
    import time

    container = api.containers.run(busybox, ["sh", "-c", "echo replayed"], name=name, detach=True)
    assert container.wait(timeout=20)["StatusCode"] == 0
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(engine.socket))
        sock.sendall(
            f"POST /v1.41/containers/{name}/attach?logs=1&stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
        )
        time.sleep(0.3)  # a slow client: without the wait the replay would be queued behind the headers
        sock.settimeout(10)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 101") and first.endswith(b"\r\n\r\n")
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert rest == b"\x01\x00\x00\x00\x00\x00\x00\x09replayed\n"
