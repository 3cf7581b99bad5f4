"""wait_set: set, timed out, and a cancel that lands with the event is never lost."""

from __future__ import annotations

import asyncio

import pytest

from hean.core.waits import wait_set


async def test_set_and_timeout() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 0.01) is True
    assert await wait_set(event, None) is True


async def test_a_cancel_arriving_as_the_event_is_set_is_kept() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(wait_set(event, 10.0))
    await asyncio.sleep(0)  # the task is waiting
    event.set()  # same iteration: the event completes ...
    task.cancel()  # ... and the cancel arrives
    with pytest.raises(asyncio.CancelledError):
        await task
