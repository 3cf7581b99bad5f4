"""Waiting for an :class:`asyncio.Event` with a timeout, without losing a cancel.

On Python 3.11 ``asyncio.wait_for(event.wait(), timeout)`` can swallow a cancel that arrives in
the same loop iteration as the event being set: it returns normally and the caller's loop runs
on. A long-running loop built on it then ignores its cancel (``asyncio.run`` hung at shutdown on
a connection's driver loop). :func:`wait_set` uses :func:`asyncio.timeout`, which tells its own
cancel from anyone else's and always lets the outside cancel through.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_set"]


async def wait_set(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set (``True``) or ``timeout`` seconds pass (``False``);
    ``None`` waits for as long as it takes."""
    if timeout is None:
        await event.wait()
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
