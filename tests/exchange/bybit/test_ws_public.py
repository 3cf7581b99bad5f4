"""BybitPublicWebSocket routing and validation, driven through its session (no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.exchange.bybit.protocol.session import Action, Emit, Send
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from tests.conftest import example

URL = "ws://127.0.0.1:1/v5/public/linear"


class Harness:
    def __init__(self, category: str = "linear") -> None:
        self.bus = EventBus()
        self.events: dict[EventType, list[Any]] = {t: [] for t in EventType}
        for kind in EventType:
            self.bus.subscribe(kind, self.events[kind].append)
        self.ws = BybitPublicWebSocket(self.bus, category, url=URL)
        self.sent: list[dict[str, Any]] = []
        self.ws.connection.run_actions = self._record  # type: ignore[method-assign]

    def _record(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Send):
                self.sent.append(json.loads(a.payload))

    def live(self) -> None:
        self.ws.session.start(0.0)
        self._record(self.ws.session.connected(0.0))
        self.sent.clear()

    def tick(self, now: float) -> None:
        self._record(self.ws.session.tick(now))

    def feed(self, message: dict[str, Any], now: float = 1.0) -> None:
        actions = self.ws.session.receive(json.dumps(message).encode(), now)
        if actions:
            self._record(actions)


@pytest.fixture
def h() -> Harness:
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)  # the bus is not started in these tests
    harness = Harness()
    harness.live()
    return harness


def book_msg(u: int, kind: str = "delta", b: Any = None, a: Any = None) -> dict[str, Any]:
    return {
        "topic": "orderbook.50.BTCUSDT",
        "type": kind,
        "ts": 1,
        "cts": 1,
        "data": {"s": "BTCUSDT", "b": b or [], "a": a or [], "u": u, "seq": u},
    }


async def test_orderbook_events_accessor_and_validity(h: Harness) -> None:
    await h.ws.subscribe_orderbook(["BTCUSDT"], depth=50)
    assert h.sent[-1]["args"] == ["orderbook.50.BTCUSDT"]
    h.feed(example("orderbook_snapshot"))
    [event] = h.events[EventType.ORDERBOOK]
    assert event.valid and event.is_snapshot and event.symbol == "BTCUSDT"
    book = h.ws.orderbook("BTCUSDT")
    assert book is event.book and book.best_bid == ("16493.50", "0.006")
    u = example("orderbook_snapshot")["data"]["u"]
    h.feed(book_msg(u + 1, b=[["16493.50", "0"]]))
    assert book.valid and book.best_bid == ("16493.00", "0.100")


async def test_gap_invalidates_and_resubscribes_only_that_topic(h: Harness) -> None:
    await h.ws.subscribe_orderbook(["BTCUSDT", "ETHUSDT"], depth=50)
    h.feed(book_msg(10, "snapshot", [["100", "1"]], [["101", "1"]]))
    h.sent.clear()
    h.feed(book_msg(12, b=[["99", "1"]]))  # u 11 missing
    event = h.events[EventType.ORDERBOOK][-1]
    assert not event.valid and "gap" in (event.book.invalid_reason or "")
    assert [(m["op"], m["args"]) for m in h.sent] == [
        ("unsubscribe", ["orderbook.50.BTCUSDT"]),
        ("subscribe", ["orderbook.50.BTCUSDT"]),
    ]
    assert h.ws.book_resyncs == 1 and h.ws.stats.reconnects == 0
    h.feed(book_msg(13, b=[["98", "1"]]))  # while invalid: no second resync
    assert len(h.sent) == 2
    h.feed(book_msg(1, "snapshot", [["100", "2"]], [["101", "1"]]))
    assert h.ws.orderbook("BTCUSDT").valid  # type: ignore[union-attr]


async def test_book_resyncs_are_rate_limited_and_deferred_not_lost(h: Harness) -> None:
    await h.ws.subscribe_orderbook(["BTCUSDT"], depth=50)
    h.feed(book_msg(10, "snapshot", [["100", "1"]], [["101", "1"]]), now=1.0)
    h.sent.clear()
    h.feed(book_msg(12), now=1.1)  # gap -> resync 1
    h.feed(book_msg(5, "snapshot", [["100", "1"]], [["101", "1"]]), now=1.2)
    h.feed(book_msg(9), now=1.3)  # gap again within a second -> deferred
    assert sum(m["op"] == "subscribe" for m in h.sent) == 1
    h.feed(book_msg(10), now=1.6)  # still within the second: nothing
    assert sum(m["op"] == "subscribe" for m in h.sent) == 1
    assert h.ws.session.next_deadline() == pytest.approx(2.1)  # the deferred one is timed
    h.tick(2.0)
    assert sum(m["op"] == "subscribe" for m in h.sent) == 1
    h.tick(2.1)  # due now: the deferred resync goes out, even with no frame arriving
    assert sum(m["op"] == "subscribe" for m in h.sent) == 2
    assert h.ws.book_resyncs == 2


async def test_invalid_book_is_resubscribed_again_until_a_snapshot_comes(h: Harness) -> None:
    """Issue 12: the resubscribe's snapshot is lost while deltas keep coming; the book is
    asked for again after book_repair_timeout, then with doubling waits, until valid."""
    await h.ws.subscribe_orderbook(["BTCUSDT"], depth=50)
    h.feed(book_msg(10, "snapshot", [["100", "1"]], [["101", "1"]]), now=1.0)
    h.sent.clear()
    h.feed(book_msg(12), now=1.1)  # gap -> resync 1
    for i, now in enumerate((2.0, 4.0, 6.0)):  # deltas keep flowing, no snapshot
        h.feed(book_msg(13 + i), now=now)
        h.tick(now)
    assert sum(m["op"] == "subscribe" for m in h.sent) == 1
    h.tick(6.1)  # 1.1 + 5 s: asked again
    assert sum(m["op"] == "subscribe" for m in h.sent) == 2
    assert h.ws.repairs.next_deadline() == pytest.approx(16.1)  # then 10 s
    h.feed(book_msg(20, "snapshot", [["100", "1"]], [["101", "1"]]), now=7.0)
    assert h.ws.orderbook("BTCUSDT", 50).valid  # type: ignore[union-attr]
    assert not h.ws.repairs.repairs


def ticker_msg(kind: str, **fields: str) -> dict[str, Any]:
    return {
        "topic": "tickers.BTCUSDT",
        "type": kind,
        "ts": 1,
        "cs": 1,
        "data": {"symbol": "BTCUSDT", **fields},
    }


def subscribes(h: Harness, topic: str) -> int:
    return sum(m["op"] == "subscribe" and topic in m["args"] for m in h.sent)


async def test_ticker_without_snapshot_is_resubscribed_again_until_one_comes(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12, defect 1 for tickers: the snapshot is lost, deltas flow, the resubscribe's
    snapshot is lost too; the topic is asked for again (timer-driven, doubling waits, rate
    limited), never left without a snapshot while its deltas keep coming."""
    caplog.set_level("WARNING", "hean.public")
    await h.ws.subscribe_tickers(["BTCUSDT"])
    h.sent.clear()
    h.feed(ticker_msg("delta", lastPrice="100"), now=1.1)  # no snapshot: resync 1
    assert subscribes(h, "tickers.BTCUSDT") == 1
    for i, now in enumerate((2.0, 4.0, 6.0)):  # deltas keep flowing, no snapshot
        h.feed(ticker_msg("delta", lastPrice=str(101 + i)), now=now)
        h.tick(now)
    assert subscribes(h, "tickers.BTCUSDT") == 1  # not once per delta
    assert h.ws.session.next_deadline() == pytest.approx(6.1)
    h.tick(6.1)  # 1.1 + 5 s: asked again, with no frame needed
    assert subscribes(h, "tickers.BTCUSDT") == 2
    assert h.ws.repairs.next_deadline() == pytest.approx(16.1)  # then 10 s
    assert "still without a snapshot after 5.00s" in caplog.text
    h.feed(ticker_msg("snapshot", lastPrice="104", markPrice="104"), now=7.0)
    ticker = h.ws.ticker("BTCUSDT")
    assert ticker is not None and ticker.has_snapshot
    h.tick(16.1)
    assert subscribes(h, "tickers.BTCUSDT") == 2  # repaired: nothing more
    assert h.ws.ticker_resyncs == 2


async def test_trades_klines_liquidations_are_routed(h: Harness) -> None:
    await h.ws.subscribe_trades(["BTCUSDT"])
    await h.ws.subscribe_klines(["BTCUSDT"], 5)
    await h.ws.subscribe_liquidations(["ROSEUSDT"])
    h.feed(example("public_trade"))
    h.feed(example("kline"))
    h.feed(example("liquidation"))
    [trade] = h.events[EventType.TRADE]
    [kline] = h.events[EventType.KLINE]
    [liq] = h.events[EventType.LIQUIDATION]
    assert trade.symbol == "BTCUSDT" and trade.trades[0].price == "16578.50"
    assert kline.interval == "5" and kline.klines[0].confirm is False
    assert liq.symbol == "ROSEUSDT" and liq.liquidations[0].side == "Sell"


async def test_unsubscribed_topics_are_counted_and_dropped(h: Harness) -> None:
    h.feed(example("public_trade"))
    h.feed(example("orderbook_snapshot"))
    assert h.ws.unexpected_topics == 2
    assert h.events[EventType.TRADE] == [] and h.events[EventType.ORDERBOOK] == []


async def test_bad_data_is_counted_not_fatal(h: Harness) -> None:
    await h.ws.subscribe_trades(["BTCUSDT"])
    h.feed({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1, "data": [{"x": 1}]})
    assert h.ws.stats.data_errors == 1
    h.feed(example("public_trade"))
    assert len(h.events[EventType.TRADE]) == 1


async def test_validation_of_depths_intervals_and_categories() -> None:
    bus = EventBus()
    linear = BybitPublicWebSocket(bus, "linear", url=URL)
    with pytest.raises(ValueError, match="depth 30 is not offered for linear"):
        await linear.subscribe_orderbook(["BTCUSDT"], depth=30)
    with pytest.raises(ValueError, match="interval '2' is not offered"):
        await linear.subscribe_klines(["BTCUSDT"], 2)
    spot = BybitPublicWebSocket(bus, "spot", url=URL)
    with pytest.raises(ValueError, match="not spot"):
        await spot.subscribe_liquidations(["BTCUSDT"])
    option = BybitPublicWebSocket(bus, "option", url=URL)
    await option.subscribe_orderbook(["BTC-6JAN23-17500-C"], depth=25)
    with pytest.raises(ValueError, match="choose one of 25, 100"):
        await option.subscribe_orderbook(["BTC-6JAN23-17500-C"], depth=50)
    with pytest.raises(ValueError, match="empty symbol"):
        await linear.subscribe_trades([" "])


async def test_unsubscribe_forgets_books_and_marks_tickers_incomplete(h: Harness) -> None:
    await h.ws.subscribe_orderbook(["BTCUSDT"], depth=50)
    await h.ws.subscribe_tickers(["BTCUSDT"])
    h.feed(example("orderbook_snapshot"))
    h.feed(example("tickers_linear_snapshot"))
    assert h.ws.orderbook("BTCUSDT") is not None
    assert h.ws.ticker("BTCUSDT").has_snapshot  # type: ignore[union-attr]
    h.ws.unsubscribe(["orderbook.50.BTCUSDT", "tickers.BTCUSDT"])
    assert h.sent[-1]["op"] == "unsubscribe"
    assert h.ws.orderbook("BTCUSDT") is None
    ticker = h.ws.ticker("BTCUSDT")
    assert ticker is not None and not ticker.has_snapshot  # kept, but not to be replayed


async def test_receive_wall_time_is_not_made_early_by_the_clock_reading() -> None:
    """Issue 13: the dashboard's lag read -1.0 ms against a venue on the same machine. The
    receive wall time is the monotonic time plus an offset, and the offset came from
    ``wall_ms()``, a reading rounded down to the ms: up to 1 ms early, so a message stamped (to
    the ms, rounded down) just before it arrived seemed to arrive before it was sent. The
    offset now has the clock's own precision (``wall_time()``)."""
    import warnings

    from hean.core.clock import ManualClock

    warnings.simplefilter("ignore", RuntimeWarning)  # the bus is not started here
    clock = ManualClock(start=1000.0009)  # the wall time is ...000.9 ms: wall_ms() says ...000
    bus = EventBus()
    ticks: list[Any] = []
    bus.subscribe(EventType.TICK, ticks.append)
    ws = BybitPublicWebSocket(bus, "linear", url=URL, clock=clock)
    run = ws.connection.run_actions  # state events only: no socket here
    ws.connection.run_actions = lambda acts: run([a for a in acts if isinstance(a, Emit)])  # type: ignore[method-assign]
    ws.connection.run_actions(ws.session.start(clock.monotonic()))
    ws.connection.run_actions(ws.session.connected(clock.monotonic()))
    await ws.subscribe_tickers(["BTCUSDT"])
    sent_ms = clock.epoch_ms + 1_000_001  # stamped by the venue at ...001.0 ms
    clock.advance(0.0003)  # arrives 0.2 ms after it was stamped, at ...001.2 ms
    frame = {"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": sent_ms, "cs": 1,
             "data": {"symbol": "BTCUSDT", "lastPrice": "100.0"}}  # fmt: skip
    ws.session.receive(json.dumps(frame).encode(), clock.monotonic())
    [tick] = ticks
    assert tick.recv_wall_ms - tick.exchange_ts == 0  # was -1
