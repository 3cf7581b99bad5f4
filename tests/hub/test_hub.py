"""StreamHub against the emulator: sharing, reference counts, replays, limits, rejections."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any

import pytest

from hean.core.events import EventType, SubscriptionStatus
from hean.core.lifecycle import ConnectionState
from hean.emulator import Emulator
from hean.emulator.market import MarketParams
from hean.hub import StreamHub
from tests.conftest import ms
from tests.hub.conftest import FAST, FrameSpy, make_hub, until

LINEAR = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")


def accepts(emu: Emulator) -> Counter[str]:
    return Counter(detail for _, ev, _, detail in emu.connection_log if ev == "accept")


async def wait_subs(emu: Emulator, category: str, expected: set[str]) -> None:
    """Until the emulator's one live connection of ``category`` holds exactly ``expected``."""

    def ok() -> bool:
        conns = emu.live_connections(category)
        if not expected:
            return not conns
        return len(conns) == 1 and conns[0].subscriptions == expected

    await until(ok, timeout=3)


async def test_ten_consumers_share_one_connection_per_endpoint(
    emulator: Emulator, hub: StreamHub
) -> None:
    consumers = [hub.consumer(f"c{i}") for i in range(10)]
    seen: dict[str, set[str]] = {c.name: set() for c in consumers}
    wanted: dict[str, set[str]] = {}
    for i, c in enumerate(consumers):

        def record(ev: Any, name: str = c.name) -> None:
            seen[name].add(f"{ev.category}:{ev.symbol}")

        c.on_inline(EventType.TICK, record)
        linear = [LINEAR[i % 5], LINEAR[(i + 1) % 5]]  # overlapping pairs
        spot = [LINEAR[i % 3]]
        wanted[c.name] = {f"linear:{s}" for s in linear} | {f"spot:{s}" for s in spot}
        await c.subscribe_tickers(linear, category="linear")
        await c.subscribe_tickers(spot, category="spot")
    await wait_subs(emulator, "linear", {f"tickers.{s}" for s in LINEAR})
    await wait_subs(emulator, "spot", {f"tickers.{s}" for s in LINEAR[:3]})
    await until(lambda: all(seen[n] == wanted[n] for n in seen))
    await asyncio.sleep(0.1)
    # exactly one connection per endpoint, ever
    assert accepts(emulator) == {"/v5/public/linear": 1, "/v5/public/spot": 1}
    assert len(hub.connections()) == 2
    # each consumer saw its own topics and nothing else
    assert all(seen[n] == wanted[n] for n in seen)
    assert hub.holders("tickers.BTCUSDT") == ["c0", "c4", "c5", "c9"]
    for c in consumers:
        await c.close()
    assert hub.connections() == []

    def closes() -> list[str]:
        return [d for _, ev, _, d in emulator.connection_log if ev == "close"]

    await until(lambda: len(closes()) == 2)  # both connections, each closed once
    assert not emulator.live_connections()


async def test_subscribe_and_unsubscribe_frames_follow_the_reference_counts(
    emulator: Emulator, hub: StreamHub, frames: FrameSpy
) -> None:
    a, b, c = hub.consumer("a"), hub.consumer("b"), hub.consumer("c")
    await a.subscribe_tickers(["BTCUSDT", "ETHUSDT"], wait=2)
    await b.subscribe_tickers(["ETHUSDT", "SOLUSDT"], wait=2)
    await c.subscribe_tickers(["BTCUSDT", "ETHUSDT", "SOLUSDT"], wait=2)
    await wait_subs(emulator, "linear", {"tickers.BTCUSDT", "tickers.ETHUSDT", "tickers.SOLUSDT"})
    # one subscribe per topic, sent by the first holder only
    assert sorted(frames.topics("subscribe")) == [
        "tickers.BTCUSDT",
        "tickers.ETHUSDT",
        "tickers.SOLUSDT",
    ]
    await a.unsubscribe_tickers(["BTCUSDT", "ETHUSDT"])  # both still held by others
    await asyncio.sleep(0.05)
    assert frames.ops("unsubscribe") == []
    await c.unsubscribe_tickers(["BTCUSDT"])  # last holder of BTCUSDT
    await wait_subs(emulator, "linear", {"tickers.ETHUSDT", "tickers.SOLUSDT"})
    assert frames.ops("unsubscribe") == [["tickers.BTCUSDT"]]
    await c.close()  # ETHUSDT and SOLUSDT are still b's
    await asyncio.sleep(0.05)
    assert frames.ops("unsubscribe") == [["tickers.BTCUSDT"]]
    await a.subscribe_tickers(["BTCUSDT"], wait=2)  # wanted again: subscribed again
    await wait_subs(emulator, "linear", {f"tickers.{s}" for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")})
    assert frames.topics("subscribe").count("tickers.BTCUSDT") == 2
    await b.close()
    await wait_subs(emulator, "linear", {"tickers.BTCUSDT"})
    assert sorted(frames.topics("unsubscribe")) == [
        "tickers.BTCUSDT",
        "tickers.ETHUSDT",
        "tickers.SOLUSDT",
    ]
    # the last consumer leaves: the connection is closed (no unsubscribe needed)
    await a.close()
    await until(lambda: not emulator.live_connections())
    assert frames.topics("unsubscribe").count("tickers.BTCUSDT") == 1
    assert accepts(emulator) == {"/v5/public/linear": 1}


@pytest.mark.emulator(auto_tick=False)
async def test_a_late_joiner_gets_the_current_state_at_once(
    emulator: Emulator, hub: StreamHub
) -> None:
    first = hub.consumer("first")
    await first.subscribe_tickers(["BTCUSDT"], wait=2)
    await first.subscribe_orderbook(["BTCUSDT"], depth=50, wait=2)
    await until(lambda: hub.ticker("BTCUSDT") is not None and hub.orderbook("BTCUSDT", 50))
    for _ in range(5):  # some deltas, so the state is a merge, not just the first snapshot
        emulator.tick("linear")
        emulator.flush("linear")
    [conn] = emulator.live_connections("linear")
    await until(lambda: hub.ticker("BTCUSDT").deltas == 5)  # type: ignore[union-attr]
    sent_before = emulator.sent_by_topic(conn.conn_id)

    late = hub.consumer("late")
    got: list[Any] = []
    late.on_inline(EventType.TICK, got.append)
    late.on_inline(EventType.ORDERBOOK, got.append)
    late.on_inline(EventType.SUBSCRIPTION, got.append)
    statuses = await late.subscribe_tickers(["BTCUSDT"])
    assert statuses == {"tickers.BTCUSDT": "confirmed"}
    await late.subscribe_orderbook(["BTCUSDT"], depth=50)
    # delivered during subscribe: nothing new came from the exchange
    assert emulator.sent_by_topic(conn.conn_id) == sent_before
    sub_events = [e for e in got if hasattr(e, "status")]
    assert [(e.topic, e.status, e.reason) for e in sub_events] == [
        ("tickers.BTCUSDT", SubscriptionStatus.CONFIRMED, "shared"),
        ("orderbook.50.BTCUSDT", SubscriptionStatus.CONFIRMED, "shared"),
    ]
    [tick] = [e for e in got if hasattr(e, "ticker")]
    assert tick.is_snapshot and tick.ticker.fields == emulator.ticker_truth("linear", "BTCUSDT")
    [book] = [e for e in got if hasattr(e, "book")]
    bids, asks = emulator.book_truth("linear", "BTCUSDT", 50)
    assert book.is_snapshot and book.valid
    assert [tuple(x) for x in book.bids] == [tuple(x) for x in bids]
    assert [tuple(x) for x in book.asks] == [tuple(x) for x in asks]
    assert late.replays == 2 and first.replays == 0
    # and from now on the late joiner gets the live deltas like everyone else
    emulator.tick("linear")
    await until(lambda: len([e for e in got if hasattr(e, "ticker")]) == 2)
    assert accepts(emulator) == {"/v5/public/linear": 1}


THIN = MarketParams(orders_per_side=10)  # hundreds of symbols: keep the venue's books small
SPOT_300 = tuple(f"S{i:03d}USDT" for i in range(300))


@pytest.mark.emulator(symbols={"spot": SPOT_300}, auto_tick=False, market=THIN)
async def test_300_spot_symbols_go_out_in_requests_of_at_most_10_args(
    emulator: Emulator, hub: StreamHub, frames: FrameSpy
) -> None:
    c = hub.consumer("scanner")
    statuses = await c.subscribe_tickers(SPOT_300, category="spot", wait=5)
    assert set(statuses.values()) == {"confirmed"}  # the emulator refuses > 10 args on spot
    requests = frames.ops("subscribe")
    assert len(requests) == 30 and max(len(r) for r in requests) == 10
    assert sorted(t for r in requests for t in r) == sorted(f"tickers.{s}" for s in SPOT_300)
    [conn] = emulator.live_connections("spot")
    assert len(conn.subscriptions) == 300
    assert len(hub.connections("spot")) == 1
    await c.unsubscribe_tickers(SPOT_300[:25], category="spot")
    await until(lambda: len(conn.subscriptions) == 275)
    assert [len(r) for r in frames.ops("unsubscribe")] == [10, 10, 5]


LONG = tuple(f"L{i:04d}" + "X" * 25 for i in range(600))  # 30 characters each


@pytest.mark.emulator(symbols={"linear": LONG}, auto_tick=False, market=THIN)
async def test_a_topic_set_over_the_args_budget_uses_two_connections(
    emulator: Emulator, hub: StreamHub
) -> None:
    c = hub.consumer("wide")
    topics = [f"tickers.{s}" for s in LONG]  # 600 x 38 = 22,800 characters > 21,000
    statuses = await c.subscribe(topics, wait=5)
    assert set(statuses.values()) == {"confirmed"}
    conns = emulator.live_connections("linear")
    assert len(conns) == 2 and accepts(emulator) == {"/v5/public/linear": 2}
    per_conn = sorted((sum(len(t) for t in ci.subscriptions) for ci in conns), reverse=True)
    assert per_conn[0] <= 21_000 and sum(per_conn) == 600 * 38
    assert set().union(*(ci.subscriptions for ci in conns)) == set(topics)
    stats = hub.stats().connections
    assert [(s.name, s.topics) for s in stats] == [("public/linear", 552), ("public/linear#2", 48)]
    # data arrives through both connections to the one consumer
    await until(lambda: all(hub.ticker(s) is not None for s in LONG))
    ticks: list[Any] = []
    c.on_inline(EventType.TICK, ticks.append)
    emulator.tick("linear")
    await until(lambda: len(ticks) == 600)
    # releasing the topics of the second connection closes it
    await c.unsubscribe(topics[552:])
    await until(lambda: len(emulator.live_connections("linear")) == 1)
    assert [s.name for s in hub.stats().connections] == ["public/linear"]
    # new topics fit on the first connection again
    await c.unsubscribe(topics[:10])
    await c.subscribe(topics[552:560], wait=2)
    assert len(emulator.live_connections("linear")) == 1


async def test_rejected_topics_are_reported_to_the_consumers_that_asked(
    emulator: Emulator, hub: StreamHub
) -> None:
    good, bad = hub.consumer("good"), hub.consumer("bad")
    events: dict[str, list[Any]] = {"good": [], "bad": []}
    good.on_inline(EventType.SUBSCRIPTION, events["good"].append)
    bad.on_inline(EventType.SUBSCRIPTION, events["bad"].append)
    await good.subscribe_tickers(["BTCUSDT"], wait=2)
    statuses = await bad.subscribe_tickers(["BTCUSDT", "NOPEUSDT", "ETHUSDT"], wait=2)
    assert statuses == {
        "tickers.BTCUSDT": "confirmed",
        "tickers.NOPEUSDT": "rejected",
        "tickers.ETHUSDT": "confirmed",
    }
    assert list(bad.failed) == ["tickers.NOPEUSDT"]
    assert "handler not found" in bad.failed["tickers.NOPEUSDT"]
    assert good.failed == {}
    rejected = [e for e in events["bad"] if e.status is SubscriptionStatus.REJECTED]
    assert [e.topic for e in rejected] == ["tickers.NOPEUSDT"]
    assert all(e.status is not SubscriptionStatus.REJECTED for e in events["good"])
    assert bad.stats().failed == bad.failed
    # a second consumer asking for the refused topic hears about it at once
    late = hub.consumer("late")
    late_events: list[Any] = []
    late.on_inline(EventType.SUBSCRIPTION, late_events.append)
    assert await late.subscribe_tickers(["NOPEUSDT"]) == {"tickers.NOPEUSDT": "rejected"}
    assert [e.status for e in late_events] == [SubscriptionStatus.REJECTED]
    assert "tickers.NOPEUSDT" in late.failed


async def test_connection_events_reach_the_consumers_of_that_connection(
    emulator: Emulator, hub: StreamHub
) -> None:
    lin, spot = hub.consumer("lin"), hub.consumer("spot")
    states: dict[str, list[Any]] = {"lin": [], "spot": []}
    lin.on_inline(EventType.CONNECTION_STATE, states["lin"].append)
    spot.on_inline(EventType.CONNECTION_STATE, states["spot"].append)
    await lin.subscribe_tickers(["BTCUSDT"], wait=2)
    await spot.subscribe_tickers(["BTCUSDT"], category="spot", wait=2)
    n_spot = len(states["spot"])
    [conn] = emulator.live_connections("linear")
    emulator.drop_connections(conn.conn_id)
    await until(lambda: any(e.new is ConnectionState.BACKOFF for e in states["lin"]))
    await until(lambda: hub.connections("linear")[0].state is ConnectionState.LIVE)
    assert len(states["spot"]) == n_spot  # the other endpoint's consumers heard nothing
    await until(lambda: emulator.live_connections("linear")[0].subscriptions == {"tickers.BTCUSDT"})


async def test_a_linger_avoids_churn_and_then_unsubscribes(
    emulator: Emulator, frames: FrameSpy
) -> None:
    from tests.conftest import ms

    hub = make_hub(emulator, linger=ms(200))
    try:
        a = hub.consumer("a")
        await a.subscribe_tickers(["BTCUSDT"], wait=2)
        await a.unsubscribe_tickers(["BTCUSDT"])
        await asyncio.sleep(ms(50))
        b = hub.consumer("b")
        got: list[Any] = []
        b.on_inline(EventType.TICK, got.append)
        await b.subscribe_tickers(["BTCUSDT"])
        assert len(got) == 1 and got[0].is_snapshot  # replayed: it was still on the wire
        await b.close()
        await asyncio.sleep(ms(100))
        assert frames.ops("unsubscribe") == [] and len(emulator.live_connections()) == 1
        await until(lambda: not emulator.live_connections(), timeout=2)
        assert frames.topics("subscribe") == ["tickers.BTCUSDT"]
    finally:
        await hub.close()


async def test_consumer_misuse_is_refused_plainly(emulator: Emulator, hub: StreamHub) -> None:
    c = hub.consumer("x")
    with pytest.raises(ValueError, match="already open"):
        hub.consumer("x")
    with pytest.raises(ValueError, match="unknown category"):
        await c.subscribe_tickers(["BTCUSDT"], category="futures")
    with pytest.raises(ValueError, match="depth"):
        await c.subscribe_orderbook(["BTCUSDT"], depth=30)
    with pytest.raises(ValueError, match="bad topic"):
        await c.subscribe(["tickers.BTCUSDT", ""])
    with pytest.raises(ValueError, match="budget"):
        await c.subscribe(["tickers." + "X" * 21_000])
    assert c.topics() == {}
    await c.close()
    with pytest.raises(RuntimeError, match="closed"):
        await c.subscribe_tickers(["BTCUSDT"])
    assert hub.consumer("x") is not c  # the name is free again
    assert not emulator.connection_log


async def test_the_application_bus_sees_every_event_of_every_hub_connection(
    emulator: Emulator,
) -> None:
    from hean.core.bus import EventBus

    bus = EventBus()
    await bus.start()
    seen: Counter[EventType] = Counter()
    for kind in (EventType.TICK, EventType.CONNECTION_STATE, EventType.SUBSCRIPTION):
        bus.subscribe(kind, lambda ev, k=kind: seen.update([k]))
    hub = make_hub(emulator, bus=bus)
    try:
        c = hub.consumer("c")
        await c.subscribe_tickers(["BTCUSDT"], wait=2)
        await c.subscribe_tickers(["BTCUSDT"], category="spot", wait=2)
        await until(lambda: seen[EventType.TICK] >= 10)
        assert seen[EventType.SUBSCRIPTION] == 2
        assert seen[EventType.CONNECTION_STATE] == 4  # idle->connecting->live, per endpoint
    finally:
        await hub.close()
        await bus.stop()


async def test_connection_options_choose_which_ticker_field_times_are_kept(
    emulator: Emulator,
) -> None:
    hub = make_hub(emulator, options=dataclasses.replace(FAST, field_times=("lastPrice",)))
    consumer = hub.consumer("strategy")
    tickers: list[Any] = []
    consumer.on_inline(EventType.TICK, lambda ev: tickers.append(ev.ticker))
    await consumer.subscribe_tickers(["BTCUSDT"], category="linear")
    await until(lambda: len(tickers) >= 5)
    ticker = tickers[-1]
    assert ticker.tracked == frozenset({"lastPrice"})
    assert set(ticker.field_times) == {"lastPrice"}
    assert "markPrice" in ticker.fields  # merging is not affected
    await hub.close()


@pytest.mark.emulator(
    auto_tick=False,
    market=MarketParams(takers_per_s=50.0, liquidations_per_s=0.0),
)
async def test_connection_options_rest_backfills_trades_missed_while_down(
    emulator: Emulator,
) -> None:
    from hean.exchange.bybit.rest import BybitRestClient

    async with BybitRestClient(url=emulator.rest_url()) as rest:
        hub = make_hub(emulator, options=dataclasses.replace(FAST, rest=rest))
        consumer = hub.consumer("strategy")
        trades: list[Any] = []
        consumer.on_inline(EventType.TRADE, trades.append)
        await consumer.subscribe_trades(["BTCUSDT"], category="linear", wait=2.0)

        def market(rounds: int) -> None:
            for _ in range(rounds):
                emulator.step("linear", quanta=10)
                emulator.flush("linear")

        market(10)
        await until(lambda: len(trades) > 0)
        first = trades[0].trades[0].trade_id
        emulator.set_handshake_status(503)
        emulator.drop_connections()
        await asyncio.sleep(ms(50))
        market(20)  # missed by the consumer's connection
        emulator.set_handshake_status(None)
        await until(lambda: any(e.backfilled for e in trades), timeout=5)
        truth = [str(t["i"]) for t in emulator.trades_truth("linear", "BTCUSDT")]
        got = [t.trade_id for e in trades for t in e.trades]
        assert len(got) == len(set(got)) and set(got) == set(truth[truth.index(first) :])
        await hub.close()
