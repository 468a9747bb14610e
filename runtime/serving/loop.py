"""Crossing from a worker thread onto the server's event loop (sync model calls in sync APIs)."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.errors import NbentoError


def call_on_loop(loop: asyncio.AbstractEventLoop, coro: Any, what: str) -> Any:
    """Run `coro` on the server's event loop and block this (worker) thread for its result."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        coro.close()
        raise NbentoError(
            f"{what}(...) was called synchronously on the event loop, which would block the "
            f"server; in an `async def` API use `await handle.{what.split('.')[-1]}"
            f".async_run(...)`, or make the API a plain `def` (it then runs in a worker thread)"
        )
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
