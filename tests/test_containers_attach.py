"""Attach end to end: multiplexed streams without a TTY, raw with one, an interactive shell through a
real pty (docker run -it), stdin, detach keys handled by the daemon, resize, several clients at once."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import struct
import time

import pytest

from engine_testkit.cli import DOCKER

NAME_PREFIX = "ca-"  # of the container names the conftest fixture `name` makes


def hijack(engine, path: str, body: bytes = b"") -> socket.socket:
    """A raw attach/exec connection as the docker CLI opens it; returns the socket after the 101."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(15)
    sock.connect(str(engine.socket))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: engine\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
    assert b"Content-Type: application/vnd.docker.raw-stream" in head
    return sock


def read_all(sock: socket.socket, timeout: float = 15) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            got = sock.recv(65536)
        except TimeoutError:
            break
        if not got:
            break
        data += got
    return data


def demux(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {1: b"", 2: b""}
    while data:
        stream, size = struct.unpack(">BxxxL", data[:8])
        out[stream] = out.get(stream, b"") + data[8 : 8 + size]
        data = data[8 + size :]
    return out


def test_attach_before_start_gets_all_output_framed(docker, engine, busybox, cleanup, name):
    cleanup.append(name)
    cid = docker("create", "--name", name, busybox, "sh", "-c", "echo out; echo err >&2; echo out2").out
    sock = hijack(engine, f"/v1.41/containers/{cid}/attach?stream=1&stdout=1&stderr=1")
    docker("start", name)
    streams = demux(read_all(sock))
    sock.close()
    assert streams[1] == b"out\nout2\n" and streams[2] == b"err\n"


def test_attach_stdin_once_and_two_clients(docker, api, engine, busybox, cleanup, name):
    cleanup.append(name)
    body = {"Image": busybox, "Cmd": ["sh", "-c", "cat; echo done"], "OpenStdin": True, "StdinOnce": True}
    response = api.api._post_json(api.api._url("/containers/create"), data=body, params={"name": name})
    cid = response.json()["Id"]
    watcher = hijack(engine, f"/v1.41/containers/{cid}/attach?stream=1&stdout=1")
    # StdinOnce (what `run -i` sets): the client's EOF closes the container's stdin
    result = docker.run("start", "-a", "-i", name, input="hello\n", timeout=30)
    assert result.stdout == "hello\ndone\n"
    assert demux(read_all(watcher))[1] == b"hello\ndone\n"  # a second client saw the same output
    watcher.close()
    assert docker("run", "-i", "--rm", busybox, "sh", "-c", "cat; echo bye", input="piped\n").stdout == "piped\nbye\n"


def test_tty_attach_is_raw_and_detach_keys_work_server_side(docker, engine, busybox, cleanup, name):
    cleanup.append(name)
    cid = docker("run", "-d", "-t", "-i", "--name", name, busybox, "sh").out
    sock = hijack(engine, f"/v1.41/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x,y")
    sock.sendall(b"echo $((40+2))\n")
    deadline = time.monotonic() + 10
    seen = b""
    while b"42" not in seen and time.monotonic() < deadline:
        seen += sock.recv(4096)
    assert b"42\r\n" in seen and b"\x00\x00\x00" not in seen[:8]  # raw, no stdcopy header
    engine_resize = docker("container", "inspect", "-f", "{{.State.Running}}", name).out
    assert engine_resize == "true"
    sock.sendall(b"\x18y")  # ctrl-x then y: detach
    rest = read_all(sock, timeout=10)
    sock.close()
    assert b"y" not in rest[-3:]  # the keys never reached the container
    assert docker("inspect", "-f", "{{.State.Running}}", name).out == "true"
    since = str(int(time.time()) - 20)
    actions = docker(
        "events",
        "--since",
        since,
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        f"container={name}",
        "--format",
        "{{.Action}}",
    ).lines()
    assert "attach" in actions and "detach" in actions


def _wait_or_kill(pid: int, timeout: float) -> int:
    """waitpid with a deadline: a CLI stuck after a failed assertion must not stall the suite."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def test_interactive_shell_through_a_pty(docker, busybox, name):
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real docker CLI on a terminal
        os.environ.update(docker.env)
        os.execv(DOCKER, [DOCKER, "run", "-it", "--rm", "--name", name, busybox, "sh"])

    def read_until(marker: bytes, timeout: float = 60) -> bytes:  # generous: the suite may run under load
        buf = b""
        deadline = time.monotonic() + timeout
        while marker not in buf and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
        return buf

    try:
        assert b"# " in read_until(b"# ")
        import fcntl
        import termios

        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))  # SIGWINCH -> resize
        os.write(fd, b"echo $((6*7)); tty\r")
        out = read_until(b"/dev/pts/")
        assert b"42\r\n" in out
        # the resize travels CLI -> API -> shim on another connection than the typed keys: ask
        # until it has arrived (the pty starts at 0x0, which busybox's stty size reports as an error)
        deadline = time.monotonic() + 60
        size = b""
        while b"33 101" not in size and time.monotonic() < deadline:
            os.write(fd, b"stty size; echo size-done\r")
            size = read_until(b"size-done\r\n", timeout=10)
        assert b"33 101" in size
        os.write(fd, b"exit 4\r")
        read_until(b"never", timeout=3)
    finally:
        status = _wait_or_kill(pid, timeout=60)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 4
    assert docker.run("inspect", name).returncode != 0  # --rm


def test_attach_refusals(api, busybox, cleanup, name):
    import docker as docker_py

    cleanup.append(name)
    container = api.containers.run(busybox, ["sleep", "30"], name=name, detach=True)
    container.pause()
    with pytest.raises(docker_py.errors.APIError) as err:
        api.api.attach(container.id, stream=False, logs=False)
    assert "is paused, unpause the container before attach" in str(err.value)
    container.unpause()
    response = api.api._post(
        api.api._url("/containers/{0}/attach", container.id), params={"stream": 1, "detachKeys": "ctrl-toolong"}
    )
    assert response.status_code == 400 and "Invalid escape keys (ctrl-toolong) provided" in response.json()["message"]


def test_websocket_attach(docker, engine, busybox, cleanup, name):
    import asyncio

    import aiohttp

    cleanup.append(name)
    cid = docker("create", "-i", "--name", name, busybox, "sh", "-c", "read x; echo got $x; echo err >&2").out

    async def session() -> bytes:
        connector = aiohttp.UnixConnector(path=str(engine.socket))
        async with aiohttp.ClientSession(connector=connector) as client:
            url = f"http://engine/v1.41/containers/{cid}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1"
            async with client.ws_connect(url) as ws:
                await asyncio.to_thread(docker, "start", name)
                await ws.send_bytes(b"hello\n")
                out = b""
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        break
                    out += msg.data
                return out

    assert asyncio.run(asyncio.wait_for(session(), 30)) == b"got hello\nerr\n"  # raw: no stdcopy headers
