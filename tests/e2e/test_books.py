"""Order books, trades, klines and liquidations against the emulator's ground truth."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.core.events import EventType, SubscriptionStatus
from hean.emulator import Emulator, MarketParams
from tests.conftest import ms
from tests.e2e.conftest import Recorder, make_ws


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


def book_events(recorder: Recorder, topic: str) -> list[Any]:
    return [e for e in recorder.events[EventType.ORDERBOOK] if e.topic == topic]


def resyncs(recorder: Recorder) -> list[str]:
    return [
        e.topic
        for e in recorder.events[EventType.SUBSCRIPTION]
        if e.status is SubscriptionStatus.RESYNC
    ]


async def settle(emulator: Emulator, ws: Any, symbol: str, depth: int) -> None:
    """Publish everything pending and wait until the client has applied what was sent."""
    emulator.flush("linear")
    topic = f"orderbook.{depth}.{symbol}"
    [conn] = emulator.live_connections("linear")

    def caught_up() -> bool:
        sent = emulator.book_sent(conn.conn_id, topic)  # re-read: a resync may have moved it
        book = ws.orderbook(symbol, depth)
        return sent is not None and book is not None and book.valid and book.u == sent[0]

    await until(caught_up)


def assert_matches_truth(emulator: Emulator, ws: Any, symbol: str, depth: int) -> None:
    book = ws.orderbook(symbol, depth)
    bids, asks = emulator.book_truth("linear", symbol, depth)
    assert book.valid, book.invalid_reason
    assert book.bids() == bids and book.asks() == asks
    assert book.bid_count <= depth and book.ask_count <= depth


@pytest.mark.emulator(auto_tick=False)
@pytest.mark.parametrize("depth", [50, 200])
async def test_local_book_equals_truth_at_every_checkpoint(
    bus: EventBus, recorder: Recorder, emulator: Emulator, depth: int
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_orderbook(["BTCUSDT"], depth)
    topic = f"orderbook.{depth}.BTCUSDT"
    await ws.wait_subscribed([topic], timeout=2)
    await settle(emulator, ws, "BTCUSDT", depth)
    rng = random.Random(depth)
    for _ in range(100):
        emulator.step("linear", quanta=rng.randint(5, 30))
        await settle(emulator, ws, "BTCUSDT", depth)
        assert_matches_truth(emulator, ws, "BTCUSDT", depth)
    events = book_events(recorder, topic)
    deltas = [e for e in events if not e.is_snapshot]
    assert len(deltas) >= 100 and all(e.valid for e in events)
    levels = sum(len(e.bids) + len(e.asks) for e in deltas)
    assert levels >= 2000  # thousands of level changes applied
    assert resyncs(recorder) == [] and ws.stats.reconnects == 0
    await ws.disconnect()


def first_invalid(events: list[Any]) -> int:
    return next(i for i, e in enumerate(events) if not e.valid)


@pytest.mark.emulator(auto_tick=False)
@pytest.mark.parametrize("kind", ["u_gap", "duplicate_delta", "swap_deltas"])
async def test_sequence_faults_are_caught_on_the_first_offending_message(
    bus: EventBus, recorder: Recorder, emulator: Emulator, kind: str
) -> None:
    ws = make_ws(bus, emulator, book_resync_interval=0.01)
    await ws.connect(timeout=2)
    await ws.subscribe_orderbook(["BTCUSDT", "ETHUSDT"], 50)
    await ws.wait_subscribed(["orderbook.50.BTCUSDT", "orderbook.50.ETHUSDT"], timeout=2)
    await settle(emulator, ws, "BTCUSDT", 50)
    [conn] = emulator.live_connections("linear")
    fault = emulator.inject(kind, conn_id=conn.conn_id, topic="orderbook.50.BTCUSDT")
    while not fault.fired:
        emulator.step("linear", quanta=3)
        emulator.flush("linear")
    await until(lambda: "orderbook.50.BTCUSDT" in resyncs(recorder))
    events = book_events(recorder, "orderbook.50.BTCUSDT")
    i = first_invalid(events)
    before, bad = events[i - 1], events[i]
    assert before.valid and not bad.is_snapshot
    assert bad.u != before.u + 1  # detected on the very message that broke the sequence
    assert all(b.u == a.u + 1 for a, b in itertools.pairwise(events[:i]) if not b.is_snapshot)
    # only that topic was resubscribed; the connection and the other book were not touched
    assert resyncs(recorder) == ["orderbook.50.BTCUSDT"]
    assert ws.stats.reconnects == 0
    assert all(e.valid for e in book_events(recorder, "orderbook.50.ETHUSDT"))
    # and the book is right again after the fresh snapshot
    for _ in range(5):
        emulator.step("linear", quanta=10)
        await settle(emulator, ws, "BTCUSDT", 50)
    assert_matches_truth(emulator, ws, "BTCUSDT", 50)
    assert_matches_truth(emulator, ws, "ETHUSDT", 50)
    await ws.disconnect()


@pytest.mark.emulator(auto_tick=False)
async def test_restart_snapshot_resets_without_resync(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_orderbook(["BTCUSDT"], 50)
    await ws.wait_subscribed(["orderbook.50.BTCUSDT"], timeout=2)
    await settle(emulator, ws, "BTCUSDT", 50)
    [conn] = emulator.live_connections("linear")
    fault = emulator.inject("restart_snapshot", conn_id=conn.conn_id, topic="orderbook.50.BTCUSDT")
    while not fault.fired:
        emulator.step("linear", quanta=3)
        emulator.flush("linear")
    for _ in range(5):
        emulator.step("linear", quanta=10)
        await settle(emulator, ws, "BTCUSDT", 50)
    assert any(e.u == 1 and e.is_snapshot for e in book_events(recorder, "orderbook.50.BTCUSDT"))
    assert resyncs(recorder) == []
    assert_matches_truth(emulator, ws, "BTCUSDT", 50)
    await ws.disconnect()


@pytest.mark.emulator(auto_tick=False)
async def test_delta_before_snapshot_is_caught_and_resynced(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    emulator.inject("delta_before_snapshot", topic="orderbook.50.BTCUSDT")
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_orderbook(["BTCUSDT"], 50)
    await ws.wait_subscribed(["orderbook.50.BTCUSDT"], timeout=2)
    emulator.flush("linear")
    await until(lambda: "orderbook.50.BTCUSDT" in resyncs(recorder))
    first = book_events(recorder, "orderbook.50.BTCUSDT")[0]
    assert not first.valid and not first.is_snapshot
    await until(lambda: (b := ws.orderbook("BTCUSDT", 50)) is not None and b.valid)
    emulator.step("linear", quanta=10)
    await settle(emulator, ws, "BTCUSDT", 50)
    assert_matches_truth(emulator, ws, "BTCUSDT", 50)
    await ws.disconnect()


@pytest.mark.emulator(auto_tick=False)
async def test_lost_resubscribe_snapshot_is_asked_for_again_while_deltas_flow(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    """Issue 12, defect 1: a u gap resubscribes the topic; the ack comes but its snapshot is
    lost and the deltas keep coming. The book must not stay invalid: it is asked for again."""
    topic = "orderbook.50.BTCUSDT"
    ws = make_ws(bus, emulator, book_resync_interval=ms(20), book_repair_timeout=ms(200))
    await ws.connect(timeout=2)
    await ws.subscribe_orderbook(["BTCUSDT"], 50)
    await ws.wait_subscribed([topic], timeout=2)
    await settle(emulator, ws, "BTCUSDT", 50)
    [conn] = emulator.live_connections("linear")
    lost = emulator.inject("lose_snapshot", conn_id=conn.conn_id, topic=topic)
    gap = emulator.inject("u_gap", conn_id=conn.conn_id, topic=topic)
    while not gap.fired:
        emulator.step("linear", quanta=3)
        emulator.flush("linear")
    await until(lambda: topic in resyncs(recorder))
    book = ws.orderbook("BTCUSDT", 50)
    assert book is not None
    deadline = time.monotonic() + 3.0
    while not book.valid and time.monotonic() < deadline:
        emulator.step("linear", quanta=1)  # data keeps flowing all along
        emulator.flush("linear")
        await asyncio.sleep(0.01)
    assert lost.fired == 1
    assert book.valid, f"book still invalid ({book.invalid_reason}) with deltas flowing"
    assert resyncs(recorder).count(topic) == 2  # asked once more, not in a loop
    emulator.step("linear", quanta=5)
    await settle(emulator, ws, "BTCUSDT", 50)
    assert_matches_truth(emulator, ws, "BTCUSDT", 50)
    assert ws.stats.reconnects == 0
    await ws.disconnect()


@pytest.mark.emulator(auto_tick=False)
async def test_zero_undetected_gaps_over_many_random_injections(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator, book_resync_interval=0.0)
    await ws.connect(timeout=2)
    await ws.subscribe_orderbook(["BTCUSDT"], 50)
    await ws.wait_subscribed(["orderbook.50.BTCUSDT"], timeout=2)
    await settle(emulator, ws, "BTCUSDT", 50)
    [conn] = emulator.live_connections("linear")
    rng = random.Random(7)
    injected = 0
    for _ in range(30):
        kind = rng.choice(["u_gap", "duplicate_delta", "swap_deltas"])
        fault = emulator.inject(kind, conn_id=conn.conn_id, topic="orderbook.50.BTCUSDT")
        while not fault.fired:
            emulator.step("linear", quanta=rng.randint(1, 5))
            emulator.flush("linear")
        injected += 1
        # a swap holds one delta back until the next message: keep the market moving
        deadline = time.monotonic() + 5
        while len(resyncs(recorder)) < injected and time.monotonic() < deadline:
            emulator.step("linear", quanta=1)
            emulator.flush("linear")
            await asyncio.sleep(0.002)
        assert len(resyncs(recorder)) == injected, f"fault {injected} ({kind}) not detected"
        await until(lambda: ws.orderbook("BTCUSDT", 50).valid)  # type: ignore[union-attr]
        emulator.step("linear", quanta=5)
        await settle(emulator, ws, "BTCUSDT", 50)
        assert_matches_truth(emulator, ws, "BTCUSDT", 50)
    assert len(resyncs(recorder)) == injected == 30  # every fault detected, none twice
    assert ws.stats.reconnects == 0
    await ws.disconnect()


@pytest.mark.emulator(
    auto_tick=False,
    market=MarketParams(takers_per_s=50.0, liquidations_per_s=20.0, kline_time_scale=1 / 600),
)
async def test_trades_klines_liquidations_from_the_emulator(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_trades(["BTCUSDT"])
    await ws.subscribe_klines(["BTCUSDT"], 1)
    await ws.subscribe_liquidations(["BTCUSDT"])
    topics = ["publicTrade.BTCUSDT", "kline.1.BTCUSDT", "allLiquidation.BTCUSDT"]
    await ws.wait_subscribed(topics, timeout=2)
    for _ in range(60):
        emulator.step("linear", quanta=10)
        emulator.flush("linear")
        await asyncio.sleep(0)
    await until(lambda: any(k.confirm for e in recorder.events[EventType.KLINE] for k in e.klines))
    await until(lambda: len(recorder.events[EventType.LIQUIDATION]) > 0)
    truth = emulator.trades_truth("linear", "BTCUSDT")

    def received_ids() -> list[str | None]:
        return [t.trade_id for e in recorder.events[EventType.TRADE] for t in e.trades]

    await until(lambda: received_ids()[-1:] == [truth[-1]["i"]])
    received = [t for e in recorder.events[EventType.TRADE] for t in e.trades]
    assert received and [t.trade_id for t in received] == [t["i"] for t in truth[-len(received) :]]
    assert all(t.symbol == "BTCUSDT" and t.side in ("Buy", "Sell") for t in received)
    for event in recorder.events[EventType.KLINE]:
        for k in event.klines:
            o, h, lo, c, v = k.ohlcv()
            assert lo <= min(o, c) <= max(o, c) <= h and v >= 0
    liq = recorder.events[EventType.LIQUIDATION][0].liquidations[0]
    assert liq.symbol == "BTCUSDT" and liq.side in ("Buy", "Sell") and liq.price_float > 0
    await ws.disconnect()
