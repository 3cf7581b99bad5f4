"""Redis killed and restarted under a running gateway and a remote consumer."""

from __future__ import annotations

import pytest

from hean.core.events import EventType
from hean.core.lifecycle import ConnectionState
from hean.emulator import Emulator
from tests.gateway.helpers import make_gateway, make_remote, settle, until
from tests.hub.conftest import emulator
from tests.redis_server import RedisServer, needs_redis

pytestmark = needs_redis
__all__ = ["emulator"]


@pytest.mark.timeout(60)
@pytest.mark.emulator(auto_tick=False)
async def test_redis_killed_and_restarted(emulator: Emulator, own_redis: RedisServer) -> None:
    hub, gw = make_gateway(emulator, own_redis.url, snapshot_every=20, max_pending=150)
    remote = make_remote(own_redis.url)
    local = hub.consumer("in-process")
    local_ticks: list[object] = []
    local.on_inline(EventType.TICK, local_ticks.append)
    states: list[tuple[ConnectionState, str]] = []

    def synced() -> bool:
        b, rb = hub.orderbook("BTCUSDT", 50), remote.orderbook("BTCUSDT", 50)
        t, rt = hub.ticker("BTCUSDT"), remote.ticker("BTCUSDT")
        return (
            b is not None and rb is not None and rb.valid and b.bids() == rb.bids()
            and b.asks() == rb.asks() and t is not None and rt is not None
            and t.fields == rt.fields and gw.out.depth == 0
        )  # fmt: skip

    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await gw.subscribe_orderbook(["BTCUSDT"], 50)
        await local.subscribe_tickers(["BTCUSDT"])
        c = remote.consumer("remote")
        c.on_inline(EventType.CONNECTION_STATE, lambda ev: states.append((ev.new, ev.reason)))
        await c.subscribe_tickers(["BTCUSDT"], wait=2)
        await c.subscribe_orderbook(["BTCUSDT"], 50, wait=2)
        await settle(emulator, 20)
        await until(synced)
        await until(lambda: remote.connections("linear")[0].state is ConnectionState.LIVE)

        own_redis.kill()
        before = len(local_ticks)
        max_depth = 0
        for _ in range(10):
            await settle(emulator, 40)
            await until(lambda: gw.link != "up", timeout=5)
            max_depth = max(max_depth, gw.out.depth)
        # the in-process consumer was served all along; the outbox stayed within its bound
        assert len(local_ticks) - before >= 100
        assert max_depth <= 150 and gw.out.overflows > 0
        # the remote consumer knows: its link is not live (prices stale, ws_ok false)
        await until(lambda: remote.connections("linear")[0].state is not ConnectionState.LIVE)
        assert any(s is not ConnectionState.LIVE and "redis" in r for s, r in states)

        own_redis.start()  # empty: no persistence
        await until(lambda: gw.link == "up" and gw.out.depth == 0, timeout=10)
        await settle(emulator, 10)
        await until(synced, timeout=10)
        await until(lambda: remote.connections("linear")[0].state is ConnectionState.LIVE)
        st = gw.stats()
        assert st.connects == 2 and st.disconnects >= 1 and st.lost == gw.out.overflows > 0
        rs = remote.stats()
        assert rs.gaps >= 1  # the entries lost while Redis was away were noticed, then repaired
    finally:
        await remote.close()
        await gw.close()
        await hub.close()
