"""Bad input from Redis (an entry another writer or another HEAN version put there) is counted,
logged briefly and dropped: it never stops a remote consumer or an account reader."""

from __future__ import annotations

from typing import Any

import pytest

from hean.core.events import EventType
from hean.emulator import Emulator
from hean.gateway import Gateway
from hean.gateway.wire import format_id
from tests.gateway.helpers import make_gateway, make_remote, settle, until
from tests.hub.conftest import emulator
from tests.redis_server import needs_redis
from tests.remote.test_account import execution, setup

pytestmark = needs_redis
__all__ = ["emulator"]

KEY = "hean:md:linear:tickers.BTCUSDT"


@pytest.mark.emulator(auto_tick=False)
async def test_undecodable_market_entries_are_counted_and_the_consumer_goes_on(
    emulator: Emulator, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    hub, gw = make_gateway(emulator, redis_url, snapshot_every=10)
    remote = make_remote(redis_url)
    r = aioredis.Redis.from_url(redis_url)
    gw2: Gateway | None = None
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await until(lambda: hub.ticker("BTCUSDT") is not None)
        c = remote.consumer("strategy")
        ticks: list[Any] = []
        c.on_inline(EventType.TICK, ticks.append)
        await c.subscribe_tickers(["BTCUSDT"], wait=2)
        await settle(emulator, 10)
        await until(lambda: gw.out.depth == 0 and len(ticks) >= 5)
        await gw.close()  # this gateway run writes no more: the next ids are free
        last = (await r.xrevrange(KEY, count=1))[0][0].decode()
        epoch, g = map(int, last.split("-"))
        await r.xadd(KEY, {"d": b"\xc1 not msgpack"}, id=format_id(epoch, g + 1))
        await r.xadd(KEY, {"x": b"no d field"}, id=format_id(epoch, g + 2))
        await until(lambda: remote.stats().decode_errors == 2)
        assert "undecodable entry" in caplog.text
        # the consumer is alive: a new gateway run is followed, and the state is the venue's
        gw2 = Gateway(hub, redis_url, heartbeat=0.1, stats_interval=0.2, backoff_cap=0.2)
        await gw2.start()
        await gw2.subscribe_tickers(["BTCUSDT"])
        before = len(ticks)
        await settle(emulator, 10)
        await until(
            lambda: len(ticks) > before
            and remote.ticker("BTCUSDT").fields == emulator.ticker_truth("linear", "BTCUSDT")  # type: ignore[union-attr]
        )
        assert remote.stats().decode_errors == 2
    finally:
        await r.aclose()
        await remote.close()
        if gw2 is not None:
            await gw2.close()
        await gw.close()
        await hub.close()


@pytest.mark.timeout(60)
async def test_an_undecodable_account_entry_is_acknowledged_counted_and_skipped(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    from hean.remote.account import AccountEvents

    hub, gw, bus, acct = await setup(redis_url)
    gw2: Gateway | None = None
    r = aioredis.Redis.from_url(redis_url)
    got: list[str] = []
    ev = AccountEvents(redis_url, service="risk", consumer="c1", block_ms=20)
    ev.on(EventType.EXECUTION, lambda e: got.extend(x.exec_id for x in e.executions))
    try:
        await ev.start()
        execution(bus, "x1")
        await until(lambda: got == ["x1"])
        await gw.close()  # this gateway run writes no more: the next ids are free
        key = "hean:acct:account"
        last = (await r.xrevrange(key, count=1))[0][0].decode()
        epoch, g = map(int, last.split("-"))
        await r.xadd(key, {"d": b"\xc1 garbage"}, id=format_id(epoch, g + 1))
        await until(lambda: ev.decode_errors == 1)
        gw2 = Gateway(hub, redis_url, heartbeat=0.1)  # the next run: the reader goes on
        gw2.add_account(acct, bus)
        await gw2.start()
        await until(lambda: gw2.link == "up")
        execution(bus, "x2")
        await until(lambda: got == ["x1", "x2"] and ev.acked == 2)
        assert (await r.xpending(key, "risk"))["pending"] == 0  # acknowledged, not redelivered
        assert caplog.text.count("undecodable entry") == 1
    finally:
        await r.aclose()
        await ev.close()
        if gw2 is not None:
            await gw2.close()
        await gw.close()
        await hub.close()
        await bus.stop()
