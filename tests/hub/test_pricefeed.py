"""PriceFeed on the hub: prices, ages, the stale flag, wait_fresh."""

from __future__ import annotations

import asyncio

import pytest

from hean.core.clock import ManualClock
from hean.emulator import Emulator
from hean.hub import PriceFeed, StreamHub
from tests.conftest import ms
from tests.hub.conftest import FrameSpy, make_hub, until


async def test_price_has_last_bid_ask_exchange_time_and_age(
    emulator: Emulator, hub: StreamHub
) -> None:
    feed = PriceFeed(hub, stale_after=ms(500))
    assert feed.price("BTCUSDT") is None  # not tracked
    p = await feed.wait_fresh("BTCUSDT", timeout=2)
    assert p.symbol == "BTCUSDT" and p.category == "linear"
    assert p.last is not None and p.bid is not None and p.ask is not None
    assert p.bid < p.ask and p.mid is not None and p.spread is not None
    assert p.exchange_ts > 1_600_000_000_000
    assert 0 <= p.age < ms(500) and not p.stale and p.live
    await feed.close()


@pytest.mark.emulator(auto_tick=False)
async def test_the_price_matches_the_venue_and_goes_stale_without_updates(
    emulator: Emulator, hub: StreamHub
) -> None:
    feed = PriceFeed(hub, stale_after=ms(100))
    await feed.track(["BTCUSDT"], wait=2)
    p = await feed.wait_fresh("BTCUSDT", timeout=2)
    truth = emulator.ticker_truth("linear", "BTCUSDT")
    assert p.last == float(truth["lastPrice"])
    assert (p.bid, p.ask) == (float(truth["bid1Price"]), float(truth["ask1Price"]))
    await asyncio.sleep(ms(150))  # nothing moves: the price ages past the threshold
    stale = feed.price("BTCUSDT")
    assert stale is not None and stale.stale and stale.live and stale.age > ms(100)
    assert not feed.is_fresh("BTCUSDT")
    with pytest.raises(TimeoutError, match="no fresh price for BTCUSDT"):
        await feed.wait_fresh("BTCUSDT", timeout=ms(100))

    async def move_later() -> None:
        await asyncio.sleep(ms(50))
        emulator.tick("linear")

    mover = asyncio.get_running_loop().create_task(move_later())
    fresh = await feed.wait_fresh("BTCUSDT", timeout=2)
    await mover
    assert not fresh.stale and fresh.age < ms(100)
    assert fresh.received_at > stale.received_at


@pytest.mark.emulator(auto_tick=False)
async def test_a_dropped_connection_makes_its_prices_stale_at_once(
    emulator: Emulator, hub: StreamHub
) -> None:
    feed = PriceFeed(hub, stale_after=10.0)
    await feed.wait_fresh("ETHUSDT", timeout=2)
    emulator.drop_connections()
    await until(lambda: feed.price("ETHUSDT").stale, timeout=1)  # type: ignore[union-attr]
    p = feed.price("ETHUSDT")
    assert p is not None and not p.live and p.age < 10.0
    p = await feed.wait_fresh("ETHUSDT", timeout=3)  # reconnected, snapshot again
    assert p.live and not p.stale


async def test_spot_bid_and_ask_come_from_the_top_of_book(
    emulator: Emulator, hub: StreamHub
) -> None:
    feed = PriceFeed(hub, category="spot", stale_after=1.0)
    assert feed.use_book
    await feed.track(["BTCUSDT"], wait=2)
    p = await feed.wait_fresh("BTCUSDT", timeout=2)
    assert p.last is not None and p.bid is not None and p.ask is not None and p.bid < p.ask
    book = hub.orderbook("BTCUSDT", 1, category="spot")
    assert book is not None and book.best_bid is not None


async def test_a_feed_and_a_strategy_share_one_subscription(
    emulator: Emulator, hub: StreamHub, frames: FrameSpy
) -> None:
    strategy = hub.consumer("strategy")
    await strategy.subscribe_tickers(["BTCUSDT"], wait=2)
    feed = PriceFeed(hub)
    p = await feed.wait_fresh("BTCUSDT", timeout=2)  # at once: the state is replayed
    assert not p.stale
    assert frames.topics("subscribe") == ["tickers.BTCUSDT"]
    assert len(emulator.live_connections()) == 1
    await feed.close()
    await asyncio.sleep(ms(50))
    assert frames.ops("unsubscribe") == []  # the strategy still holds it


@pytest.mark.emulator(auto_tick=False)
async def test_price_age_is_measured_on_the_hubs_clock(emulator: Emulator) -> None:
    clock = ManualClock(start=50.0)
    hub = make_hub(emulator, clock=clock, options=None)  # default (20 s) heartbeat, manual time
    try:
        feed = PriceFeed(hub, stale_after=2.0)
        p = await feed.wait_fresh("BTCUSDT", timeout=2)
        assert p.received_at == 50.0 and p.age == 0.0
        clock.advance(1.5)
        assert feed.price("BTCUSDT").age == 1.5  # type: ignore[union-attr]
        clock.advance(0.6)
        p2 = feed.price("BTCUSDT")
        assert p2 is not None and p2.stale and p2.live and p2.age == pytest.approx(2.1)
        with pytest.raises(ValueError, match="stale_after"):
            PriceFeed(hub, stale_after=0, name="bad")
    finally:
        await hub.close()


async def test_bad_category_is_refused(emulator: Emulator) -> None:
    hub = make_hub(emulator)
    with pytest.raises(ValueError, match="unknown category"):
        PriceFeed(hub, category="futures")
    await hub.close()
