"""RemoteHub against a real gateway, a real redis-server and the emulator (one process)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hean.core.events import EventType
from hean.emulator import Emulator, MarketParams
from hean.gateway.wire import parse_id
from hean.hub import MarketDataHub
from tests.gateway.helpers import make_gateway, make_remote, settle, until
from tests.hub.conftest import emulator, make_hub
from tests.redis_server import RedisServer, needs_redis

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


def _book_is_truth(remote: Any, emulator: Emulator) -> bool:
    b = remote.orderbook("BTCUSDT", 50)
    bids, asks = emulator.book_truth("linear", "BTCUSDT", 50)
    return b is not None and b.valid and b.bids() == bids and b.asks() == asks


@pytest.mark.emulator(auto_tick=False)
async def test_a_late_consumer_gets_the_current_state_at_once(
    emulator: Emulator, redis_url: str
) -> None:
    hub, gw = make_gateway(emulator, redis_url, snapshot_every=50)
    remote = make_remote(redis_url)
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await gw.subscribe_orderbook(["BTCUSDT"], 50)
        await until(lambda: hub.orderbook("BTCUSDT", 50) is not None and hub.ticker("BTCUSDT"))
        await settle(emulator, 30)  # deltas after the first snapshot: the state is a merge
        await until(lambda: _book_is_truth(hub, emulator) and gw.out.depth == 0)
        late = remote.consumer("late")
        got: list[Any] = []
        late.on_inline(EventType.TICK, got.append)
        late.on_inline(EventType.ORDERBOOK, got.append)
        # no new market data from here on: the state must come from Redis alone
        await late.subscribe_tickers(["BTCUSDT"], wait=2)
        await late.subscribe_orderbook(["BTCUSDT"], 50, wait=2)
        await until(lambda: len(got) >= 2)
        # the snapshots, then the entries after them (already in Redis) are read
        truth = emulator.ticker_truth("linear", "BTCUSDT")
        await until(lambda: (t := remote.ticker("BTCUSDT")) is not None and t.fields == truth)
        await until(lambda: _book_is_truth(remote, emulator))
        # a second consumer of the same process gets the state replayed, like the hub's
        other = remote.consumer("other")
        seen: list[Any] = []
        other.on_inline(EventType.ORDERBOOK, seen.append)
        await other.subscribe_orderbook(["BTCUSDT"], 50)
        assert seen and seen[0].is_snapshot and other.replays == 1
    finally:
        await remote.close()
        await gw.close()
        await hub.close()


@pytest.mark.emulator(auto_tick=False)
async def test_a_consumer_paused_past_the_trimmed_history_rebuilds_and_says_so(
    emulator: Emulator, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    hub, gw = make_gateway(emulator, redis_url, snapshot_every=20, maxlen=40)
    remote = make_remote(redis_url)
    r = aioredis.Redis.from_url(redis_url)
    try:
        await gw.start()
        await gw.subscribe_orderbook(["BTCUSDT"], 50)
        await until(lambda: hub.orderbook("BTCUSDT", 50) is not None)
        c = remote.consumer("slow")
        notes: list[Any] = []
        c.on_inline(EventType.SUBSCRIPTION, notes.append)
        await c.subscribe_orderbook(["BTCUSDT"], 50, wait=2)
        await until(lambda: _book_is_truth(remote, emulator))
        remote.pause()
        await settle(emulator, 500)  # ~250 book messages; Redis keeps ~40-140
        await until(lambda: gw.out.depth == 0)
        key = "hean:md:linear:orderbook.50.BTCUSDT"
        first = (await r.xrange(key, count=1))[0][0].decode()
        tracker = remote.tracker("orderbook.50.BTCUSDT")
        assert tracker is not None and (tracker.epoch, tracker.g + 1) < parse_id(first)
        remote.resume()
        await until(lambda: _book_is_truth(remote, emulator) and remote.stats().behind_trim)
        s = remote.stats()
        assert s.behind_trim == 1 and s.gaps == 1, (s, notes)
        assert [(n.status, n.reason) for n in notes if n.status == "resync"] == [
            ("resync", "fell behind the trimmed history")
        ]
        assert "fell behind the trimmed history" in caplog.text
    finally:
        await r.aclose()
        await remote.close()
        await gw.close()
        await hub.close()


@pytest.mark.emulator(auto_tick=False)
async def test_an_entry_deleted_from_the_stream_is_caught(
    emulator: Emulator, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    hub, gw = make_gateway(emulator, redis_url, snapshot_every=40)
    r = aioredis.Redis.from_url(redis_url)
    remote = make_remote(redis_url)
    key = "hean:md:linear:orderbook.50.BTCUSDT"
    try:
        await gw.start()
        await gw.subscribe_orderbook(["BTCUSDT"], 50)
        await until(lambda: hub.orderbook("BTCUSDT", 50) is not None)
        await settle(emulator, 30)
        await until(lambda: gw.out.depth == 0)
        # delete a delta after the latest snapshot: a joiner starts at the snapshot and must
        # notice the hole instead of applying the next delta across it
        entries = await r.xrange(key)
        assert len(entries) > 5
        victim = entries[3][0]
        assert await r.xdel(key, victim) == 1
        c = remote.consumer("joiner")
        books: list[tuple[bool, bool]] = []

        def on_book(ev: Any) -> None:
            t = remote.tracker("orderbook.50.BTCUSDT")
            books.append((ev.valid, t is not None and t.synced))

        c.on_inline(EventType.ORDERBOOK, on_book)
        await c.subscribe_orderbook(["BTCUSDT"], 50, wait=2)
        await until(lambda: remote.stats().gaps == 1)
        t = remote.tracker("orderbook.50.BTCUSDT")
        assert t is not None and t.last_gap is not None
        assert "-".join(map(str, t.last_gap[0])) == victim.decode()
        # no event claimed a valid book while the stream was out of sync
        assert books and not any(valid and not synced for valid, synced in books)
        await settle(emulator, 100)  # the next periodic snapshot repairs it
        await until(lambda: _book_is_truth(remote, emulator))
    finally:
        await r.aclose()
        await remote.close()
        await gw.close()
        await hub.close()


@pytest.mark.emulator(auto_tick=False)
async def test_pricefeed_and_health_work_unchanged_on_a_remote_hub(
    emulator: Emulator, redis_url: str
) -> None:
    from hean.core.bus import EventBus
    from hean.health import HealthMonitor
    from hean.hub import PriceFeed

    hub, gw = make_gateway(emulator, redis_url)
    bus = EventBus()
    await bus.start()
    remote = make_remote(redis_url, bus=bus)
    health = HealthMonitor(bus, discover=remote.connections, check_interval=0.05)
    feed = PriceFeed(remote, stale_after=5.0)
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await health.start()
        await feed.track(["BTCUSDT"])
        await settle(emulator, 5)
        p = await feed.wait_fresh("BTCUSDT", timeout=5)
        truth = emulator.ticker_truth("linear", "BTCUSDT")
        assert p.live and p.last == float(truth["lastPrice"])
        await until(lambda: health.quality.ws_ok, timeout=5)
        # the gateway goes away: its heartbeat stops, the price is stale at once, ws_ok false
        await gw.close()
        await until(lambda: not health.quality.ws_ok, timeout=5)
        p2 = feed.price("BTCUSDT")
        assert p2 is not None and p2.stale and not p2.live
        ok, doc = health.health()
        assert not ok and any("remote/linear" in r for r in doc["reasons"])
    finally:
        await feed.close()
        await health.stop()
        await remote.close()
        await gw.close()
        await hub.close()
        await bus.stop()


@pytest.mark.emulator(auto_tick=False)
async def test_a_topic_the_gateway_does_not_publish_is_rejected_and_health_sees_it(
    emulator: Emulator, redis_url: str
) -> None:
    from hean.core.bus import EventBus
    from hean.health import HealthMonitor

    hub, gw = make_gateway(emulator, redis_url)
    bus = EventBus()
    await bus.start()
    remote = make_remote(redis_url, bus=bus)
    health = HealthMonitor(bus, discover=remote.connections, check_interval=0.05)
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await until(lambda: gw.link == "up" and hub.ticker("BTCUSDT") is not None)
        await health.start()
        c = remote.consumer("strategy")
        notes: list[Any] = []
        c.on_inline(EventType.SUBSCRIPTION, notes.append)
        statuses = await c.subscribe_tickers(["BTCUSDT", "ETHUSDT"], wait=2)
        assert statuses == {"tickers.BTCUSDT": "confirmed", "tickers.ETHUSDT": "rejected"}
        assert "not published by the gateway" in c.failed["tickers.ETHUSDT"]
        assert [n.topic for n in notes if n.status == "rejected"] == ["tickers.ETHUSDT"]

        def reasons() -> list[str]:
            return list(health.health()[1]["reasons"])

        await until(lambda: any("subscription tickers.ETHUSDT rejected" in r for r in reasons()))
        # the gateway starts publishing it: the consumer is told and gets the data
        await gw.subscribe_tickers(["ETHUSDT"])
        await until(lambda: c.status("tickers.ETHUSDT") == "confirmed", timeout=5)
        await until(lambda: remote.ticker("ETHUSDT") is not None)
        assert "tickers.ETHUSDT" not in c.failed
        await until(lambda: not any("subscription tickers.ETHUSDT" in r for r in reasons()))
    finally:
        await health.stop()
        await remote.close()
        await gw.close()
        await hub.close()
        await bus.stop()


async def _strategy(hub: MarketDataHub, emulator: Emulator) -> dict[str, Any]:
    """Application code typed against the protocol: nothing in it knows which hub it has."""
    from hean.core.bus import EventBus
    from hean.health import HealthMonitor
    from hean.hub import PriceFeed

    seen: list[Any] = []
    strategy = hub.consumer("strategy")
    strategy.on_inline(EventType.TICK, seen.append)
    statuses = await strategy.subscribe_tickers(["BTCUSDT"], wait=2)
    feed = PriceFeed(hub, stale_after=5.0)
    await feed.track(["BTCUSDT"], wait=2)
    await settle(emulator, 3)
    price = await feed.wait_fresh("BTCUSDT", timeout=2)
    bus = EventBus()
    await bus.start()
    health = HealthMonitor(bus, discover=hub.connections, check_interval=0.05)
    health.step()
    truth = emulator.ticker_truth("linear", "BTCUSDT")
    await until(lambda: (t := hub.ticker("BTCUSDT")) is not None and t.fields == truth)
    out = {
        "statuses": statuses,
        "live": price.live and hub.topic_live("tickers.BTCUSDT"),
        "last": feed.price("BTCUSDT").last,  # type: ignore[union-attr]
        "got_ticks": bool(seen),
        "watched": sorted(health.feeds),
        "held": {c: sorted(t) for c, t in strategy.topics().items()},
    }
    await feed.close()
    await strategy.close()
    await bus.stop()
    return out


@pytest.mark.emulator(auto_tick=False)
async def test_the_same_code_runs_on_a_stream_hub_and_on_a_remote_hub(
    emulator: Emulator, redis_url: str
) -> None:
    hub, gw = make_gateway(emulator, redis_url)
    local = make_hub(emulator)  # in process: its own connection to the venue
    remote = make_remote(redis_url)  # the one constructor that differs
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await until(lambda: gw.link == "up" and hub.ticker("BTCUSDT") is not None)
        results = [await _strategy(h, emulator) for h in (local, remote)]
        truth = float(emulator.ticker_truth("linear", "BTCUSDT")["lastPrice"])
        for r in results:
            assert r["statuses"] == {"tickers.BTCUSDT": "confirmed"}
            assert r["live"] and r["last"] == truth and r["got_ticks"]
            assert r["held"] == {"linear": ["tickers.BTCUSDT"]}
        assert results[0]["watched"] == ["public/linear"]
        assert results[1]["watched"] == ["remote/linear"]
    finally:
        await remote.close()
        await local.close()
        await gw.close()
        await hub.close()


@pytest.mark.emulator(
    auto_tick=False,
    market=MarketParams(takers_per_s=50.0, liquidations_per_s=20.0, kline_time_scale=1 / 600),
)
async def test_trades_klines_and_liquidations_reach_a_remote_consumer_as_sent(
    emulator: Emulator, redis_url: str
) -> None:
    hub, gw = make_gateway(emulator, redis_url)
    remote = make_remote(redis_url)
    kinds = (EventType.TRADE, EventType.KLINE, EventType.LIQUIDATION)
    local: dict[EventType, list[Any]] = {k: [] for k in kinds}
    far: dict[EventType, list[Any]] = {k: [] for k in kinds}
    try:
        await gw.start()
        await gw.subscribe_trades(["BTCUSDT"])
        await gw.subscribe_klines(["BTCUSDT"], 1)
        await gw.subscribe_liquidations(["BTCUSDT"])
        in_process = hub.consumer("in-process")
        c = remote.consumer("remote")
        for k in kinds:
            in_process.on_inline(k, local[k].append)
            c.on_inline(k, far[k].append)
        await in_process.subscribe_trades(["BTCUSDT"], wait=2)
        await in_process.subscribe_klines(["BTCUSDT"], 1, wait=2)
        await in_process.subscribe_liquidations(["BTCUSDT"], wait=2)
        statuses = {
            **await c.subscribe_trades(["BTCUSDT"], wait=2),
            **await c.subscribe_klines(["BTCUSDT"], 1, wait=2),
            **await c.subscribe_liquidations(["BTCUSDT"], wait=2),
        }
        assert set(statuses.values()) == {"confirmed"}, statuses
        for _ in range(60):
            emulator.step("linear", quanta=10)
            emulator.flush("linear")
            await asyncio.sleep(0)
        await until(lambda: all(local[k] for k in kinds) and gw.out.depth == 0)
        await until(lambda: all(len(far[k]) == len(local[k]) for k in kinds))

        def items(ev: Any) -> list[Any]:
            return list(getattr(ev, "trades", None) or getattr(ev, "klines", None)
                        or ev.liquidations)  # fmt: skip

        for k in kinds:
            # the same typed items (every field), in the same order, with the same envelope
            assert [items(e) for e in far[k]] == [items(e) for e in local[k]], k
            assert [(e.symbol, e.category, e.exchange_ts) for e in far[k]] == [
                (e.symbol, e.category, e.exchange_ts) for e in local[k]
            ]
        assert {e.interval for e in far[EventType.KLINE]} == {"1"}
        assert any(k.confirm for e in far[EventType.KLINE] for k in e.klines)
        assert [e.backfilled for e in far[EventType.TRADE]] == [
            e.backfilled for e in local[EventType.TRADE]
        ]
        assert remote.stats().decode_errors == 0 and remote.stats().gaps == 0
    finally:
        await remote.close()
        await gw.close()
        await hub.close()


async def test_a_redis_that_stops_answering_is_left_and_joined_again() -> None:
    import socket

    server = RedisServer(None, "--enable-debug-command", "yes")
    server.start()
    remote = make_remote(server.url, reply_timeout=0.2, gateway_timeout=0.4)
    try:
        c = remote.consumer("c")
        await c.subscribe_tickers(["BTCUSDT"], wait=2)
        await until(lambda: remote.stats().link == "up")
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"DEBUG SLEEP 0.8\r\n")  # the server hangs: no reply to anyone
            await until(lambda: remote.stats().link == "down", timeout=2)
        await until(lambda: remote.stats().link == "up", timeout=5)
        assert c.status("tickers.BTCUSDT") == "pending"  # joined again (no gateway yet)
    finally:
        await remote.close()
        server.kill()
        server.stop()


@pytest.mark.emulator(auto_tick=False)
async def test_gateway_and_remote_hub_over_a_unix_socket(emulator: Emulator, tmp_path: Any) -> None:
    sock = str(tmp_path / "redis.sock")
    server = RedisServer(None, "--unixsocket", sock, "--unixsocketperm", "700")
    server.start()
    url = f"unix://{sock}?db=2"
    hub, gw = make_gateway(emulator, url, snapshot_every=10)
    remote = make_remote(url)
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await gw.subscribe_orderbook(["BTCUSDT"], 50)
        await until(lambda: hub.orderbook("BTCUSDT", 50) is not None and gw.out.written > 1)
        c = remote.consumer("strategy")
        ticks: list[Any] = []
        c.on_inline(EventType.TICK, ticks.append)
        assert await c.subscribe_tickers(["BTCUSDT"], wait=2) == {"tickers.BTCUSDT": "confirmed"}
        await c.subscribe_orderbook(["BTCUSDT"], 50, wait=2)
        await settle(emulator, 30)
        await until(lambda: gw.out.depth == 0)
        await until(
            lambda: (
                _book_is_truth(remote, emulator)
                and (t := remote.ticker("BTCUSDT")) is not None
                and t.fields == emulator.ticker_truth("linear", "BTCUSDT")
            )
        )
        assert len(ticks) > 1 and remote.stats().gaps == 0
        assert str(remote.target) == url and remote.stats().redis == url
        # the data went through the socket, in database 2 (nothing over TCP, nothing in db 0)
        import redis.asyncio as aioredis

        r = aioredis.Redis.from_url(server.url)
        try:
            assert await r.dbsize() == 0
            await r.execute_command("SELECT", 2)
            assert await r.exists("hean:md:linear:tickers.BTCUSDT") == 1
            clients = await r.client_list()
            assert sum(1 for c in clients if c["laddr"].startswith(sock)) >= 2
        finally:
            await r.aclose()
    finally:
        await remote.close()
        await gw.close()
        await hub.close()
        server.kill()
        server.stop()
