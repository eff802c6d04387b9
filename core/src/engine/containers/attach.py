"""Attach sessions: a hijacked client connection wired to a container's (or an exec's) stdio.

Output comes from the process's spool: every session is its own reader, so any number of
clients see the same output (fan-out) and none of them can block the container or the log copier.
Stdin goes through a control connection to the shim. Detach keys are recognised here, on the
server, in the stdin stream (dockerd's term.EscapeProxy): the session ends, the process keeps
running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import Conflict, InvalidParameter
from engine.streams.conn import Conn
from engine.streams.stdcopy import STDERR, STDOUT, frame

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.containers.service import ContainerService

log = logging.getLogger(__name__)

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(spec: str) -> bytes:
    """dockerd's term.ToBytes: ``ctrl-<x>`` items and single characters, comma-separated."""
    out = bytearray()
    for key in spec.split(","):
        low = key.lower()
        if len(key) > 1 and low.startswith("ctrl-"):
            rest = low[5:]
            if len(rest) != 1:
                raise InvalidParameter(f"Invalid escape keys ({spec}) provided")
            ch = rest
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch == "@":
                out.append(0)
            elif ch in "[\\]^_":
                out.append(ord(ch) - ord("[") + 27)
            else:
                raise InvalidParameter(f"Invalid escape keys ({spec}) provided")
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise InvalidParameter(f"Invalid escape keys ({spec}) provided")
    return bytes(out)


class DetachMatcher:
    """Finds the detach sequence in a byte stream; bytes of a partial match are held back and
    released if the sequence breaks."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Returns the bytes to forward and whether the sequence completed."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
            if self.keys.startswith(bytes([byte])):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


class Session:
    """One attached client. ``run`` returns when the output ended (the process exited), the client
    detached or went away; returns "detached", "exited" or "disconnected"."""

    def __init__(
        self,
        conn: Conn,
        *,
        tty: bool,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        stdin_once: bool,
        detach_keys: bytes,
    ) -> None:
        self.conn = conn
        self.tty = tty
        self.want_stdin = stdin
        self.want_stdout = stdout
        self.want_stderr = stderr
        self.stdin_once = stdin_once
        self.detach_keys = detach_keys
        self._detached = asyncio.Event()
        self._stdin_done = asyncio.Event()

    def write_output(self, stream: int, data: bytes) -> None:
        if stream == STDOUT and not self.want_stdout:
            return
        if stream == STDERR and not self.want_stderr:
            return
        if self.tty or self.conn.raw:  # websocket attach: never multiplexed
            self.conn.write(data)
        else:
            self.conn.write(frame(stream, data))

    async def pump_output(self, chunks: AsyncIterator[Any]) -> None:
        try:
            async for chunk in chunks:
                self.write_output(chunk.stream, chunk.data)
                await self.conn.drain()
                if self.conn.is_closed:
                    return
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def pump_stdin(self, process: Any) -> None:
        """Client bytes to the process's stdin until EOF or the detach keys."""
        matcher = DetachMatcher(self.detach_keys)
        writer = None
        try:
            writer = await process.attach_stdin()
            while True:
                data = await self.conn.read()
                if not data:
                    break
                forward, detached = matcher.feed(data)
                if forward:
                    await writer.write(forward)
                if detached:
                    self._detached.set()
                    return
            if matcher.held:
                await writer.write(matcher.held)
            if self.stdin_once and not self.tty:
                await writer.close_stdin()
        except (ConnectionError, OSError) as exc:
            log.debug("attach stdin ended: %s", exc)
        finally:
            if writer is not None:
                await writer.close()
            self._stdin_done.set()

    async def run(self, process: Any, chunks: AsyncIterator[Any]) -> str:
        output = asyncio.ensure_future(self.pump_output(chunks))
        stdin = asyncio.ensure_future(self.pump_stdin(process)) if self.want_stdin else None
        detached = asyncio.ensure_future(self._detached.wait())
        disconnected = self.conn.disconnected
        waits: set[asyncio.Future[Any]] = {output, detached, disconnected}  # type: ignore[arg-type]
        stdin_ended = None
        if stdin is not None:
            stdin_ended = asyncio.ensure_future(self._stdin_done.wait())
            if not (self.stdin_once and not self.tty):
                # dockerd: when the client's stdin ends, its output streams end too (unless the
                # container reads stdin once: then the session lasts until the process exits)
                waits.add(stdin_ended)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if detached in done:
                return "detached"
            if output in done:
                output.result()
                return "exited"
            if stdin_ended is not None and stdin_ended in done and not self._detached.is_set():
                return "stdin-closed"
            return "disconnected"
        finally:
            for fut in (output, stdin, detached, stdin_ended):
                if fut is not None and not fut.done():
                    fut.cancel()
            for fut in (output, stdin):
                if fut is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await fut


@dataclass
class AttachPlan:
    """Where a new attach session reads: the running task from ``offset``, or the next start's task
    from its first byte (``started``).

    ``output`` is the session's spool reader, opened as early as possible: here for a running task,
    or in a done-callback of ``started`` (the lifecycle wakes start waiters before the log copier
    reads). An open reader keeps the spool segments it has not read yet from the copier's acks."""

    task: Any
    offset: int | str
    started: asyncio.Future[Any] | None
    detach_keys: bytes
    output: Any = None
    closed: bool = False

    def open_at_start(self, started: asyncio.Future[Any]) -> None:
        if self.closed or started.cancelled() or started.exception() is not None:
            return
        task = started.result()
        if task is not None and self.output is None:
            self.output = task.output(self.offset, follow=True)

    def take_output(self, task: Any) -> Any:
        output, self.output = self.output, None
        return output if output is not None else task.output(self.offset, follow=True)

    def close(self) -> None:
        self.closed = True
        if self.started is not None and not self.started.done():
            self.started.cancel()
        if self.output is not None:
            self.output.close()
            self.output = None


def prepare(service: ContainerService, container: Container, detach_keys: str) -> AttachPlan:
    """On the loop, before the 101 answer (see ContainerService.prepare_attach)."""
    keys = parse_detach_keys(detach_keys or DEFAULT_DETACH_KEYS)
    with container.lock:
        state = container.state
        if state.paused:
            raise Conflict(f"container {container.bare_name} is paused, unpause the container before attach")
        if state.restarting:
            raise Conflict(f"container {container.bare_name} is restarting, wait until the container is running")
        task = container.task if state.running else None
        if task is not None:
            offset = task.spool.end_offset()
            return AttachPlan(task, offset, None, keys, output=task.output(offset, follow=True))
        plan = AttachPlan(None, "start", service.lifecycle.wait_started(container), keys)
        assert plan.started is not None
        plan.started.add_done_callback(plan.open_at_start)
        return plan


async def run(
    service: ContainerService,
    container: Container,
    conn: Conn,
    plan: AttachPlan,
    *,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    stream: bool,
    logs: bool,
    detach_keys: str = "",
) -> None:
    service.publish(container, "attach")
    try:
        if logs:
            await _replay_logs(service, container, conn, stdout=stdout, stderr=stderr)
        if not stream:
            return
        task = plan.task
        if task is None:
            assert plan.started is not None
            done, _ = await asyncio.wait({plan.started, conn.disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if plan.started not in done:
                plan.started.cancel()
                return
            task = plan.started.result()
            if task is None:  # removed before it ever started
                return
        session = Session(
            conn,
            tty=container.tty,
            stdin=stdin and bool(container.config.get("OpenStdin")),
            stdout=stdout,
            stderr=stderr,
            stdin_once=bool(container.config.get("StdinOnce")),
            detach_keys=plan.detach_keys,
        )
        pump = asyncio.ensure_future(session.run(task, plan.take_output(task)))
        container.readers.add(pump)
        try:
            result = await pump
        finally:
            container.readers.discard(pump)
        if result == "detached":
            service.publish(container, "detach")
    finally:
        plan.close()
        conn.close()


async def _replay_logs(
    service: ContainerService, container: Container, conn: Conn, *, stdout: bool, stderr: bool
) -> None:
    """``logs=1``: what the log driver has, before the live stream (docker-py's attach(logs=True))."""
    from engine.drivers.log import ReadConfig

    try:
        source = await asyncio.to_thread(service.log_reader, container)
    except Exception as exc:
        log.debug("attach logs of %s: %s", container.short_id, exc)
        return
    try:
        async for batch in source.batches(ReadConfig()):
            for message in batch:
                stream = STDOUT if message.source == "stdout" else STDERR
                if (stream == STDOUT and not stdout) or (stream == STDERR and not stderr):
                    continue
                data = message.with_newline()
                conn.write(data if container.tty else frame(stream, data))
            await conn.drain()
    finally:
        source.close()
