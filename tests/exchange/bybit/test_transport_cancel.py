"""The connection's driver task ends when cancelled, even when a wake-up lands at the same time.

On Python 3.11 ``asyncio.wait_for`` loses a cancel that arrives as the awaited event completes;
the driver loop then ran on, and ``asyncio.run`` hung at shutdown (its final cancel of every
task never finished) when a program ended with a connection still reconnecting.
"""

from __future__ import annotations

import asyncio

from hean.core.bus import EventBus
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.ws_public import BybitPublicWebSocket


async def test_a_cancel_landing_with_a_wake_up_ends_the_driver() -> None:
    bus = EventBus()
    await bus.start()
    # nothing listens on port 1: the session sits in backoff with a deadline, the driver waits
    policy = BackoffPolicy(first=5.0, cap=5.0)
    ws = BybitPublicWebSocket(
        bus, "linear", url="ws://127.0.0.1:1/v5/public/linear", backoff=policy
    )
    ws.connection.start()
    driver = ws.connection._driver
    assert driver is not None
    for _ in range(50):  # until the refused attempt is in and the driver waits out the backoff
        await asyncio.sleep(0.01)
        if ws.session.next_deadline() is not None and ws.state.value == "backoff":
            break
    for _ in range(3):
        await asyncio.sleep(0)
    ws.connection._wake.set()  # something wakes the driver ...
    driver.cancel()  # ... in the same loop iteration as the cancel
    done, _ = await asyncio.wait({driver}, timeout=1.0)
    assert driver in done and driver.cancelled()
    await ws.disconnect()
    await bus.stop()
