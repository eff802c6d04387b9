"""RUN: start a build container through the containers subsystem and stream its output.

Runs on the event loop (the builder's worker thread submits it): the spool reader is opened
before the start, as attach does, so no output is lost; the step ends when the container exits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from engine.api.streams import STDERR

Emit = Callable[[int, bytes], Awaitable[None]]


async def run_container(service: Any, container_id: str, emit: Emit) -> tuple[int, str]:
    """Start the container, pass its output to ``emit(stream, data)``; returns (exit code, error)."""
    container = await asyncio.to_thread(service.get, container_id)
    plan = service.prepare_attach(container, "")
    output = None
    try:
        await asyncio.to_thread(service.lifecycle.start_container, container)
        assert plan.started is not None
        task = await plan.started
        if task is not None:
            output = plan.take_output(task)
            async for chunk in output:
                await emit(STDERR if chunk.stream == 2 else 1, chunk.data)
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
