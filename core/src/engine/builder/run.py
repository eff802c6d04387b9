"""RUN: start a build container through the containers subsystem and stream its output.

Runs on the event loop (the builder's worker thread submits it): the spool reader is opened
before the start, as attach does, so no output is lost; the step ends when the container exits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from engine.streams.stdcopy import STDERR

if TYPE_CHECKING:
    from engine.containers.service import ContainerService

Emit = Callable[[int, bytes], Awaitable[None]]


async def run_container(
    service: ContainerService, container_id: str, emit: Emit, cancelled: asyncio.Event | None = None
) -> tuple[int, str]:
    """Start the container, pass its output to ``emit(stream, data)``; returns (exit code, error).
    ``cancelled`` (the client went away): the container is killed, as dockerd does."""
    container = await asyncio.to_thread(service.get, container_id)
    plan = service.prepare_attach(container, "")
    output = None
    try:
        await asyncio.to_thread(service.lifecycle.start_container, container)
        assert plan.started is not None
        task = await plan.started
        if task is not None:
            output = plan.take_output(task)
            pump = asyncio.ensure_future(_pump(output, emit))
            waits: set[asyncio.Future[Any]] = {pump}
            stop = asyncio.ensure_future(cancelled.wait()) if cancelled is not None else None
            if stop is not None:
                waits.add(stop)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if pump not in done:
                with contextlib.suppress(Exception):
                    await service.kill_container(container_id, "KILL")
                pump.cancel()
            if stop is not None and not stop.done():
                stop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
    finally:
        if output is not None:
            close = getattr(output, "aclose", None)
            with contextlib.suppress(Exception):
                if close is not None:
                    await close()
                else:
                    output.close()
        plan.close()
    future = await asyncio.to_thread(service.wait, container_id, "not-running")
    result = await asyncio.wrap_future(future)
    return result.exit_code, result.error or ""


async def _pump(output: Any, emit: Emit) -> None:
    async for chunk in output:
        await emit(STDERR if chunk.stream == 2 else 1, chunk.data)
