"""RemoteHub against a real gateway, a real redis-server and the emulator (one process)."""

from __future__ import annotations

from typing import Any

import pytest

from hean.core.events import EventType
from hean.emulator import Emulator
from tests.gateway.helpers import make_gateway, make_remote, settle, until
from tests.hub.conftest import emulator
from tests.redis_server import needs_redis

pytestmark = needs_redis
__all__ = ["emulator"]


@pytest.mark.emulator(auto_tick=False)
async def test_remote_state_equals_the_emulator(emulator: Emulator, redis_url: str) -> None:
    hub, gw = make_gateway(emulator, redis_url, snapshot_every=10)
    remote = make_remote(redis_url)
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT", "ETHUSDT"])
        await gw.subscribe_orderbook(["BTCUSDT"], 50)
        await until(lambda: hub.orderbook("BTCUSDT", 50) is not None and gw.out.written > 2)
        c = remote.consumer("strategy")
        ticks: list[Any] = []
        c.on_inline(EventType.TICK, ticks.append)
        await c.subscribe_tickers(["BTCUSDT", "ETHUSDT"], wait=2)
        await c.subscribe_orderbook(["BTCUSDT"], 50, wait=2)
        await settle(emulator, 30)
        await until(lambda: gw.out.depth == 0)

        def same() -> bool:
            b = remote.orderbook("BTCUSDT", 50)
            t = remote.ticker("BTCUSDT")
            bids, asks = emulator.book_truth("linear", "BTCUSDT", 50)
            return (
                b is not None
                and b.valid
                and b.bids() == bids
                and b.asks() == asks
                and t is not None
                and t.fields == emulator.ticker_truth("linear", "BTCUSDT")
            )

        await until(same)
        assert ticks and ticks[0].is_snapshot
        assert remote.stats().gaps == 0
    finally:
        await remote.close()
        await gw.close()
        await hub.close()
