"""The per-connection dispatcher, policies and replays (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from hean.core.bus import OverflowPolicy
from hean.core.events import EventType, SubscriptionEvent, SubscriptionStatus, TradeEvent
from hean.exchange.bybit.protocol.codec import decode
from hean.exchange.bybit.state.orderbook import OrderBookCache
from hean.exchange.bybit.state.tickers import TickerCache
from hean.hub.delivery import (
    CONFLATE_KEYS,
    Dispatcher,
    book_replay_event,
    policy_for,
    route_key,
    tick_replay_event,
)
from tests.conftest import example_bytes


class FakeConsumer:
    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[tuple[EventType, Any]] = []

    def deliverer(self, event_type: EventType) -> Any:
        return lambda ev: self.got.append((event_type, ev))


def test_route_keys() -> None:
    assert route_key("tickers.BTCUSDT") == (EventType.TICK, "BTCUSDT")
    assert route_key("orderbook.50.BTCUSDT") == (EventType.ORDERBOOK, "orderbook.50.BTCUSDT")
    assert route_key("publicTrade.BTC") == (EventType.TRADE, "BTC")
    assert route_key("kline.5.BTCUSDT") == (EventType.KLINE, ("5", "BTCUSDT"))
    assert route_key("allLiquidation.X") == (EventType.LIQUIDATION, "X")
    assert route_key("liquidation.X") == (EventType.LIQUIDATION, "X")
    assert route_key("orderbook.rpi.X") is None
    assert route_key("greeks") is None and route_key("nonsense.X") is None


def test_policies_per_stream_kind() -> None:
    assert policy_for(EventType.TICK) is OverflowPolicy.CONFLATE
    assert policy_for(EventType.ORDERBOOK) is OverflowPolicy.CONFLATE
    assert policy_for(EventType.TRADE) is OverflowPolicy.DROP_OLDEST
    assert policy_for(EventType.LIQUIDATION) is OverflowPolicy.DROP_OLDEST
    assert policy_for(EventType.SUBSCRIPTION) is OverflowPolicy.NEVER_DROP
    # anything not listed (private account streams) is never dropped
    assert policy_for("order") is OverflowPolicy.NEVER_DROP  # type: ignore[arg-type]
    assert set(CONFLATE_KEYS) >= {EventType.TICK, EventType.ORDERBOOK}


def test_dispatcher_routes_each_event_to_its_topic_holders_only() -> None:
    control: list[tuple[EventType, Any]] = []
    forwarded: list[Any] = []

    class Forward:
        def publish(self, event_type: EventType, event: Any) -> None:
            forwarded.append(event)

    d = Dispatcher("public/linear", Forward(), lambda t, e: control.append((t, e)))
    a, b, c = FakeConsumer("a"), FakeConsumer("b"), FakeConsumer("c")
    d.set_holders("tickers.BTCUSDT", (a, b))
    d.set_holders("tickers.ETHUSDT", (c,))
    d.set_holders("publicTrade.BTCUSDT", (c,))
    tickers = TickerCache("linear", d.publisher(EventType.TICK))
    tickers.apply(decode(example_bytes("tickers_linear_snapshot")), 1.0)
    assert [n for n, x in ((c.name, c.got) for c in (a, b, c)) if x] == ["a", "b"]
    assert len(forwarded) == 1
    trade = TradeEvent("BTCUSDT", "linear", [], 0, 1.0, 0)
    d.publisher(EventType.TRADE)(trade)
    assert c.got == [(EventType.TRADE, trade)]
    # a consumer leaves: routes are rebuilt, nobody else is touched
    d.set_holders("tickers.BTCUSDT", (b,))
    tickers.apply(decode(example_bytes("tickers_linear_snapshot")), 2.0)
    assert len(a.got) == 1 and len(b.got) == 2
    d.set_holders("tickers.BTCUSDT", ())
    assert list(d.ticks) == ["ETHUSDT"] and d.all_holders() == [c]
    # control events go to the hub's handler and are forwarded
    sub = SubscriptionEvent("public/linear", "tickers.X", SubscriptionStatus.CONFIRMED, "", 0.0)
    d.publish(EventType.SUBSCRIPTION, sub)
    assert control == [(EventType.SUBSCRIPTION, sub)] and forwarded[-1] is sub


def test_both_liquidation_topics_share_the_symbol_route() -> None:
    d = Dispatcher("x", None, lambda t, e: None)
    a, b = FakeConsumer("a"), FakeConsumer("b")
    d.set_holders("allLiquidation.BTCUSDT", (a,))
    d.set_holders("liquidation.BTCUSDT", (b,))
    assert len(d.liquidations["BTCUSDT"]) == 2
    d.set_holders("allLiquidation.BTCUSDT", ())
    assert len(d.liquidations["BTCUSDT"]) == 1


def test_a_delivery_that_raises_does_not_stop_the_others() -> None:
    d = Dispatcher("x", None, lambda t, e: None)
    b = FakeConsumer("b")

    class Broken:
        name = "broken"

        def deliverer(self, event_type: EventType) -> Any:
            def boom(ev: Any) -> None:
                raise RuntimeError("boom")

            return boom

    d.set_holders("publicTrade.X", (Broken(), b))
    d.publisher(EventType.TRADE)(TradeEvent("X", "linear", [], 0, 1.0, 0))
    assert d.failures == 1 and len(b.got) == 1


def test_replay_events_carry_the_cached_state_as_a_snapshot() -> None:
    tickers = TickerCache("linear")
    state = tickers.apply(decode(example_bytes("tickers_linear_snapshot")), 5.0)
    ev = tick_replay_event(state, wall_offset=1000.0)
    assert ev is not None and ev.is_snapshot and ev.ticker is state
    assert ev.last_price == state.last_price and ev.recv_time == 5.0
    assert ev.recv_wall_ms == 1_005_000
    state.has_snapshot = False  # after a reconnect, until the new snapshot
    assert tick_replay_event(state, 0.0) is None

    books = OrderBookCache("linear")
    book = books.apply(decode(example_bytes("orderbook_snapshot")), 7.0)
    bev = book_replay_event(book, 0.0)
    assert bev is not None and bev.is_snapshot and bev.valid and bev.book is book
    assert bev.bids == [["16493.50", "0.006"], ["16493.00", "0.100"]]
    assert bev.asks == [["16611.00", "0.029"], ["16612.00", "0.213"]]
    assert bev.u == book.u and bev.best_bid == book.best_bid
    book.invalidate("gap")
    assert book_replay_event(book, 0.0) is None


@pytest.mark.parametrize("kind", [EventType.TICK, EventType.ORDERBOOK])
def test_conflation_key_is_the_shared_state_object(kind: EventType) -> None:
    class Ev:
        ticker = object()
        book = object()

    ev = Ev()
    assert CONFLATE_KEYS[kind](ev) is (ev.ticker if kind is EventType.TICK else ev.book)


def test_kinds_without_a_data_route_go_to_the_hub() -> None:
    control: list[Any] = []
    d = Dispatcher("private", None, lambda t, e: control.append((t, e)))
    d.publish("order", {"orderId": "1"})  # type: ignore[arg-type]  # a future private kind
    d.publisher("order")({"orderId": "2"})  # type: ignore[arg-type]
    assert [e["orderId"] for _, e in control] == ["1", "2"]
