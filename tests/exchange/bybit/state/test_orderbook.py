from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hean.core.events import OrderBookEvent
from hean.exchange.bybit.protocol.codec import Frame, decode
from hean.exchange.bybit.state.orderbook import (
    PRICE_DECIMALS,
    OrderBook,
    OrderBookCache,
    book_event,
    parse_orderbook_topic,
    price_key,
)
from tests.conftest import example, example_bytes

TOPIC = "orderbook.50.BTCUSDT"
Levels = list[list[str]]


def msg(
    kind: str,
    u: int,
    b: Levels | None = None,
    a: Levels | None = None,
    *,
    topic: str = TOPIC,
    seq: int | None = None,
    ts: int = 1000,
    cts: int | None = 999,
) -> Frame:
    data: dict[str, Any] = {"s": topic.rsplit(".", 1)[1], "b": b or [], "a": a or [], "u": u}
    if seq is not None:
        data["seq"] = seq
    frame = {"topic": topic, "type": kind, "ts": ts, "data": data}
    if cts is not None:
        frame["cts"] = cts
    return decode(json.dumps(frame))


SNAP_B = [["100.0", "1"], ["99.5", "2"], ["99.0", "3"]]
SNAP_A = [["100.5", "4"], ["101.0", "5"], ["101.5", "6"]]


def fresh(u: int = 10) -> tuple[OrderBookCache, OrderBook]:
    cache = OrderBookCache("linear")
    book = cache.apply(msg("snapshot", u, SNAP_B, SNAP_A), 1.0)
    assert book.valid
    return cache, book


# --------------------------------------------------------------------------- fixtures


def test_example_snapshot() -> None:
    cache = OrderBookCache("linear")
    snap = example("orderbook_snapshot")
    book = cache.apply(decode(example_bytes("orderbook_snapshot")), 7.5)
    assert book.valid and book.invalid_reason is None and not book.needs_resync
    assert book.topic == TOPIC and book.symbol == "BTCUSDT" and book.depth == 50
    assert book.bids() == [tuple(level) for level in snap["data"]["b"]]
    assert book.asks() == [tuple(level) for level in snap["data"]["a"]]
    assert book.best_bid == ("16493.50", "0.006") and book.best_ask == ("16611.00", "0.029")
    assert book.best_bid_price == 16493.5 and book.best_ask_price == 16611.0
    assert book.spread == pytest.approx(117.5) and book.mid == pytest.approx(16552.25)
    assert book.u == snap["data"]["u"] and book.seq == snap["data"]["seq"]
    assert book.exchange_ts == snap["ts"] and book.cts == snap["cts"] and book.recv_time == 7.5
    assert (book.snapshots, book.deltas, book.resyncs, book.ignored) == (1, 0, 0, 0)
    assert cache.get("BTCUSDT") is book and cache.get("BTCUSDT", 50) is book
    assert cache.get("BTCUSDT", 200) is None and cache.get("ETHUSDT") is None


def test_example_delta_on_a_matching_snapshot() -> None:
    delta = example("orderbook_delta")
    u = delta["data"]["u"]
    cache = OrderBookCache("linear")
    snap_b = [["30247.20", "1"], ["30240.00", "9"], ["30230.00", "2"]]
    snap_a = [["30248.70", "3"], ["30249.60", "4"], ["30260.00", "5"]]
    cache.apply(msg("snapshot", u - 1, snap_b, snap_a), 1.0)
    book = cache.apply(decode(example_bytes("orderbook_delta")), 2.0)
    assert book.valid, book.invalid_reason
    assert book.bids() == [
        ("30247.20", "30.028"),
        ("30245.40", "0.224"),
        ("30242.10", "1.593"),
        ("30240.30", "1.305"),
        ("30230.00", "2"),
    ]
    assert book.asks() == [
        ("30249.30", "0.892"),
        ("30249.50", "1.778"),
        ("30251.90", "2.947"),
        ("30252.20", "0.659"),
        ("30252.50", "4.591"),
        ("30260.00", "5"),
    ]
    assert book.u == u and book.seq == delta["data"]["seq"] and book.deltas == 1
    assert book.best_bid == ("30247.20", "30.028") and book.best_ask == ("30249.30", "0.892")
    event = book_event(book, decode(example_bytes("orderbook_delta")), 123)
    assert isinstance(event, OrderBookEvent)
    assert not event.is_snapshot and event.valid and event.book is book
    assert event.bids == delta["data"]["b"] and event.asks == delta["data"]["a"]
    assert (event.u, event.seq, event.exchange_ts, event.cts) == (
        u,
        delta["data"]["seq"],
        delta["ts"],
        delta["cts"],
    )
    assert event.recv_time == 2.0 and event.recv_wall_ms == 123 and event.depth == 50
    assert event.best_bid == book.best_bid and event.symbol == "BTCUSDT"


# --------------------------------------------------------------------------- rules


def test_snapshot_replaces_the_book() -> None:
    cache, book = fresh()
    cache.apply(msg("delta", 11, [["98.0", "7"]]), 2.0)
    book = cache.apply(msg("snapshot", 500, [["90", "1"]], [["91", "2"]]), 3.0)
    assert book.bids() == [("90", "1")] and book.asks() == [("91", "2")]
    assert book.u == 500 and book.snapshots == 2 and book.valid


def test_u_1_snapshot_resets_but_u_1_delta_invalidates() -> None:
    cache, book = fresh(u=50)
    book = cache.apply(msg("snapshot", 1, [["10", "1"]], [["11", "1"]]), 2.0)
    assert book.valid and book.u == 1 and book.restarts == 1 and book.snapshots == 2
    assert book.bids() == [("10", "1")]
    # a delta with u=1 carries only some levels: it must not pass for a rebuilt book
    cache, book = fresh(u=50)
    book = cache.apply(msg("delta", 1, [["10", "1"]], [["11", "1"]]), 2.0)
    assert not book.valid and book.needs_resync
    assert book.invalid_reason == "delta with u=1 (restart without a snapshot)"
    assert book.u == 50  # not applied


def test_delete_unknown_price_is_harmless_and_zero_spellings_delete() -> None:
    cache, book = fresh()
    book = cache.apply(msg("delta", 11, [["42", "0"], ["99.5", "0.000"]], [["200", "0"]]), 2.0)
    assert book.valid
    assert book.bids() == [("100.0", "1"), ("99.0", "3")]
    assert book.asks() == [tuple(x) for x in SNAP_A]


def test_insert_update_and_best_tracking() -> None:
    cache, book = fresh()
    book = cache.apply(msg("delta", 11, [["100.25", "9"]], [["100.5", "0"]]), 2.0)
    assert book.best_bid == ("100.25", "9") and book.best_ask == ("101.0", "5")
    book = cache.apply(msg("delta", 12, [["100.25", "0"], ["100.0", "0"]]), 3.0)
    assert book.best_bid == ("99.5", "2")
    book = cache.apply(msg("delta", 13, [["99.5", "0"], ["99.0", "0"]]), 4.0)
    assert book.best_bid is None and book.bids() == [] and book.spread is None
    assert book.valid and book.deltas == 3 and book.bid_count == 0 and book.ask_count == 2


def test_level1_same_u_repush_is_accepted() -> None:
    cache = OrderBookCache("spot")
    topic = "orderbook.1.BTCUSDT"
    for t in (1.0, 4.0, 7.0):
        book = cache.apply(msg("snapshot", 77, [["5", "1"]], [["6", "1"]], topic=topic), t)
        assert book.valid and not book.needs_resync
    assert book.snapshots == 3 and book.repeats == 2 and book.resyncs == 0 and book.depth == 1
    book = cache.apply(msg("snapshot", 78, [["5", "2"]], [["6", "1"]], topic=topic), 8.0)
    assert book.valid and book.best_bid == ("5", "2")


@pytest.mark.parametrize(
    ("u", "reason"),
    [
        (13, "gap u=13 expected 12"),
        (11, "duplicate u=11"),
        (10, "out-of-order u=10 expected 12"),
        (3, "out-of-order u=3 expected 12"),
    ],
)
def test_sequence_errors_invalidate_once_and_ignore_until_snapshot(u: int, reason: str) -> None:
    cache, book = fresh(u=10)
    cache.apply(msg("delta", 11, [["99.75", "1"]]), 2.0)
    before = (book.bids(), book.asks())
    book = cache.apply(msg("delta", u, [["99.8", "1"]]), 3.0)
    assert not book.valid and book.invalid_reason == reason
    assert book.needs_resync and book.resyncs == 1 and book.sequence_errors == 1
    assert (book.bids(), book.asks()) == before  # the offending delta was not applied
    book.needs_resync = False  # the caller resubscribes
    for nu in (u + 1, u + 2, 12):
        book = cache.apply(msg("delta", nu, [["99.9", "1"]]), 4.0)
        assert not book.valid and not book.needs_resync and book.resyncs == 1
    assert book.ignored == 4 and (book.bids(), book.asks()) == before
    assert book.invalid_reason == reason and book.u == 11
    # the best levels still answer, the caller sees validity
    assert book.best_bid == ("100.0", "1")
    event = book_event(book, msg("delta", 99, [["99.9", "1"]]), 0)
    assert not event.valid and event.u == 99
    book = cache.apply(msg("snapshot", 1000, [["1", "1"]], [["2", "1"]]), 5.0)
    assert book.valid and book.invalid_reason is None and book.u == 1000
    book = cache.apply(msg("delta", 1001, [["1.5", "1"]]), 6.0)
    assert book.valid and book.best_bid == ("1.5", "1")
    book = cache.apply(msg("delta", 1003), 7.0)  # a new failure asks for a new resync
    assert book.needs_resync and book.resyncs == 2
    assert book.invalid_reason == "gap u=1003 expected 1002"


def test_delta_before_snapshot() -> None:
    cache = OrderBookCache("linear")
    book = cache.apply(msg("delta", 5, [["1", "1"]]), 1.0)
    assert not book.valid and book.invalid_reason == "delta before snapshot"
    assert book.needs_resync and book.resyncs == 1 and book.bids() == []
    book.needs_resync = False
    book = cache.apply(msg("delta", 6, [["1", "1"]]), 2.0)
    assert not book.needs_resync and book.ignored == 2 and book.bids() == []
    book = cache.apply(msg("snapshot", 7, [["1", "1"]], [["2", "1"]]), 3.0)
    assert book.valid


def test_a_snapshot_clears_a_pending_resync_request() -> None:
    cache, book = fresh(u=10)
    book = cache.apply(msg("delta", 12), 2.0)
    assert book.needs_resync
    book = cache.apply(msg("snapshot", 20, SNAP_B, SNAP_A), 3.0)  # Bybit re-sent one itself
    assert book.valid and not book.needs_resync and book.resyncs == 1


def test_fresh_book_is_not_valid() -> None:
    book = OrderBook(TOPIC)
    assert not book.valid and book.invalid_reason == "no snapshot yet" and not book.needs_resync
    assert book.best_bid is None and book.bids() == [] and book.asks(5) == []


def test_crossed_book_by_delta_and_by_snapshot() -> None:
    cache, book = fresh()
    book = cache.apply(msg("delta", 11, [["100.5", "1"]]), 2.0)
    assert not book.valid and book.invalid_reason == "crossed book bid=100.5 ask=100.5"
    assert book.needs_resync and book.crossings == 1
    book = cache.apply(msg("delta", 12, [["100.5", "0"]]), 3.0)  # ignored, still invalid
    assert not book.valid and book.ignored == 1
    book = cache.apply(msg("snapshot", 20, [["5", "1"]], [["4", "1"]]), 4.0)
    assert not book.valid and book.invalid_reason == "crossed book bid=5 ask=4"
    assert book.resyncs == 2


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"topic": TOPIC, "type": "delta", "data": [1, 2]}, "not an object"),
        ({"topic": TOPIC, "type": "delta", "data": {"b": []}}, "KeyError"),
        ({"topic": TOPIC, "type": "delta", "data": {"u": "x"}}, "ValueError"),
        ({"topic": TOPIC, "type": "delta", "data": {"u": 11, "b": [["abc", "1"]]}}, "bad price"),
        ({"topic": TOPIC, "type": "delta", "data": {"u": 11, "b": [["1e3", "1"]]}}, "bad price"),
        ({"topic": TOPIC, "type": "delta", "data": {"u": 11, "b": [["1", "1", "2"]]}}, "unpack"),
        ({"topic": TOPIC, "type": "delta", "data": {"u": 11, "a": [["101", ""]]}}, "IndexError"),
        ({"topic": TOPIC, "type": "delta", "data": {"u": 11, "a": [[101, "1"]]}}, "TypeError"),
        ({"topic": TOPIC, "type": "snapshot", "data": {"u": 11, "a": [["1", 5]]}}, "TypeError"),
        ({"topic": TOPIC, "type": "weird", "data": {"u": 11}}, "unknown message type"),
        ({"topic": TOPIC, "data": {"u": 11}}, "unknown message type"),
    ],
)
def test_malformed_frames_invalidate(payload: dict[str, Any], fragment: str) -> None:
    cache, book = fresh()
    book = cache.apply(decode(json.dumps(payload)), 2.0)
    assert not book.valid and book.needs_resync and book.malformed == 1
    assert book.invalid_reason is not None
    assert book.invalid_reason.startswith("malformed frame: ") and fragment in book.invalid_reason
    event = book_event(book, decode(json.dumps(payload)), 0)
    assert not event.valid


def test_string_u_is_accepted() -> None:
    cache, book = fresh(u=10)
    payload = {"topic": TOPIC, "type": "delta", "data": {"u": "11"}}
    book = cache.apply(decode(json.dumps(payload)), 2.0)
    assert book.valid and book.u == 11


def test_price_normalisation() -> None:
    cache = OrderBookCache("linear")
    book = cache.apply(msg("snapshot", 1, [["16493.50", "0.006"]], [["16500", "1"]]), 1.0)
    book = cache.apply(msg("delta", 2, [["16493.5", "0.5"]]), 2.0)
    assert book.bids() == [("16493.5", "0.5")] and book.bid_count == 1
    assert book.bid_size("16493.500") == "0.5" and book.ask_size("16500.0") == "1"
    assert book.bid_size("16493.4") is None and book.ask_size("1") is None
    book = cache.apply(msg("delta", 3, [["16493.500000", "0"]], [["16500.00", "2"]]), 3.0)
    assert book.bids() == [] and book.asks() == [("16500.00", "2")] and book.valid


def test_price_key() -> None:
    assert price_key("16493.5") == price_key("16493.50") == price_key("16493.500000")
    assert price_key("16493.5") == 164935 * 10 ** (PRICE_DECIMALS - 1)
    assert price_key("7") == price_key("7.") == price_key("7.0") == 7 * 10**PRICE_DECIMALS
    assert price_key("0.5") == price_key(".5") == price_key("0.50")
    assert price_key("-12.5") == -price_key("12.5") and price_key("-0.5") < 0
    assert price_key("0." + "0" * 17 + "1") == 1
    assert price_key("1." + "0" * 30) == 10**PRICE_DECIMALS  # extra trailing zeros are fine
    assert price_key("0.1") + price_key("0.2") == price_key("0.3")  # exact, unlike floats
    for bad in ("", ".", "-", "abc", "1e5", " 1", "1 ", "1_000", "1.2.3", "0x10", "١٢"):
        with pytest.raises(ValueError):
            price_key(bad)
    with pytest.raises(ValueError, match="decimals"):
        price_key("0." + "0" * 18 + "1")


def test_topic_parsing() -> None:
    assert parse_orderbook_topic("orderbook.200.ETH-27DEC24-3000-C") == (200, "ETH-27DEC24-3000-C")
    for bad in ("orderbook.rpi.BTCUSDT", "orderbook.full.BTCUSDT", "orderbook.50", "tickers.X"):
        with pytest.raises(ValueError):
            parse_orderbook_topic(bad)
    with pytest.raises(ValueError):
        parse_orderbook_topic("orderbook.0.BTCUSDT")
    cache = OrderBookCache("linear")
    with pytest.raises(ValueError):
        cache.apply(msg("snapshot", 1, topic="orderbook.rpi.BTCUSDT"), 1.0)
    with pytest.raises(ValueError):
        OrderBookCache("futures")


def test_overflow_is_counted_not_trimmed() -> None:
    cache = OrderBookCache("linear")
    topic = "orderbook.1.BTCUSDT"
    book = cache.apply(msg("snapshot", 1, [["5", "1"]], [["6", "1"]], topic=topic), 1.0)
    assert book.overflows == 0
    book = cache.apply(msg("delta", 2, [["4", "1"]], topic=topic), 2.0)
    assert book.overflows == 1 and book.bid_count == 2 and book.valid


def test_reset_and_reset_all() -> None:
    cache, book = fresh()
    other = cache.apply(msg("snapshot", 3, SNAP_B, SNAP_A, topic="orderbook.200.BTCUSDT"), 1.0)
    assert cache.get("BTCUSDT") is other  # the deepest book by default
    cache.reset_all()
    assert not book.valid and not other.valid and not book.needs_resync
    assert book.invalid_reason == "awaiting snapshot (reconnect)"
    assert cache.invalid() == [book, other]
    assert book.best_bid == ("100.0", "1")  # last levels kept, flagged invalid
    book = cache.apply(msg("delta", 11), 2.0)
    assert book.needs_resync and book.invalid_reason == "delta before snapshot"
    cache.reset(TOPIC, "resubscribed")
    assert book.invalid_reason == "resubscribed"
    assert not cache.by_topic[TOPIC].needs_resync  # (a fresh lookup: mypy narrowed `book`)
    book = cache.apply(msg("snapshot", 20, SNAP_B, SNAP_A), 3.0)
    assert book.valid and cache.invalid() == [other]
    cache.remove("orderbook.200.BTCUSDT")
    assert cache.get("BTCUSDT") is book


def test_float_accessors_and_repr() -> None:
    _, book = fresh()
    assert book.bids_float(2) == [(100.0, 1.0), (99.5, 2.0)]
    assert book.asks_float() == [(100.5, 4.0), (101.0, 5.0), (101.5, 6.0)]
    assert book.spread == 0.5 and book.mid == 100.25
    assert "valid" in repr(book) and "orderbook.50.BTCUSDT" in repr(book)


def test_many_distinct_prices_survive_the_key_cache_clearing() -> None:
    cache = OrderBookCache("linear")
    book = cache.apply(msg("snapshot", 1, [["1", "1"]], [["100000", "1"]]), 1.0)
    u = 1
    for i in range(3000):  # more distinct prices than the per-book key cache holds
        u += 1
        price = f"{2 + i * 0.25:.2f}"
        book = cache.apply(msg("delta", u, [[price, "1"]]), 1.0)
        u += 1
        book = cache.apply(msg("delta", u, [[price.rstrip("0"), "0"]]), 1.0)
    assert book.valid and book.bids() == [("1", "1")]


def test_seq_and_ts_follow_applied_messages_only() -> None:
    cache, book = fresh()
    cache.apply(msg("delta", 11, seq=5, ts=2000, cts=1999), 2.0)
    assert (book.seq, book.exchange_ts, book.cts, book.recv_time) == (5, 2000, 1999, 2.0)
    cache.apply(msg("delta", 13, seq=7, ts=3000, cts=2999), 3.0)  # a gap: not applied
    assert (book.u, book.seq, book.exchange_ts, book.cts) == (11, 5, 2000, 1999)
    assert book.recv_time == 3.0  # but it was received


# --------------------------------------------------------------------------- properties

# Prices are ticks of 0.5, spelled in several equivalent ways.


def spell(tick: int, style: int) -> str:
    whole, half = divmod(tick, 2)
    if style == 0:
        return f"{whole}.5" if half else str(whole)
    if style == 1:
        return f"{whole}.{5 if half else 0}0"
    return f"{whole}.{5 if half else 0}000"


SIZES = ["0", "0.000", "1", "0.5", "2.25", "10", "0.001"]


def levels(lo: int, hi: int, max_size: int) -> st.SearchStrategy[list[list[str]]]:
    level = st.builds(
        lambda t, style, size: [spell(t, style), size],
        st.integers(lo, hi),
        st.integers(0, 2),
        st.sampled_from(SIZES),
    )
    return st.lists(level, max_size=max_size)


def message(lo_bid: int, hi_bid: int, lo_ask: int, hi_ask: int) -> st.SearchStrategy[Any]:
    return st.tuples(
        st.sampled_from(["snapshot", "delta", "delta", "delta", "delta"]),
        levels(lo_bid, hi_bid, 8),
        levels(lo_ask, hi_ask, 8),
    )


def is_zero(size: str) -> bool:
    return Decimal(size) == 0


class Reference:
    """The obviously-right model: dicts keyed by Decimal price, sorted when read."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}

    def snapshot(self, b: Levels, a: Levels) -> None:
        self.bids, self.asks = {}, {}
        self.delta(b, a)

    def delta(self, b: Levels, a: Levels) -> None:
        for side, items in ((self.bids, b), (self.asks, a)):
            for p, s in items:
                if is_zero(s):
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = (p, s)

    def sorted_bids(self) -> list[tuple[str, str]]:
        return [self.bids[k] for k in sorted(self.bids, reverse=True)]

    def sorted_asks(self) -> list[tuple[str, str]]:
        return [self.asks[k] for k in sorted(self.asks)]

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


def check_ordering(book: OrderBook) -> None:
    bids = [Decimal(p) for p, _ in book.bids()]
    asks = [Decimal(p) for p, _ in book.asks()]
    assert all(x > y for x, y in itertools.pairwise(bids))
    assert all(x < y for x, y in itertools.pairwise(asks))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(message(0, 60, 40, 100), min_size=1, max_size=30))
def test_book_equals_reference_model(messages: list[tuple[str, Levels, Levels]]) -> None:
    cache = OrderBookCache("linear")
    ref = Reference()
    ref_valid = False
    u = 100
    for i, (kind, b, a) in enumerate(messages):
        u += 1
        book = cache.apply(msg(kind, u, b, a, topic="orderbook.1000.X"), float(i))
        if kind == "snapshot":
            ref.snapshot(b, a)
            ref_valid = not ref.crossed()
        elif ref_valid:
            ref.delta(b, a)
            ref_valid = not ref.crossed()
        assert book.valid == ref_valid, (book.invalid_reason, i)
        assert book.bids() == ref.sorted_bids()
        assert book.asks() == ref.sorted_asks()
        check_ordering(book)
        ref_bids, ref_asks = ref.sorted_bids(), ref.sorted_asks()
        assert book.best_bid == (ref_bids[0] if ref_bids else None)
        assert book.best_ask == (ref_asks[0] if ref_asks else None)
        if book.valid:
            assert not ref.crossed()
            if book.best_bid and book.best_ask:
                assert Decimal(book.best_bid[0]) < Decimal(book.best_ask[0])
                spread = Decimal(book.best_ask[0]) - Decimal(book.best_bid[0])
                assert book.spread == pytest.approx(float(spread))
        elif ref.crossed():
            assert book.invalid_reason is not None


def consistent_stream() -> st.SearchStrategy[list[tuple[str, int, Levels, Levels]]]:
    """A snapshot then deltas with consecutive u; bids never reach the asks (never crossed)."""

    def build(
        start: int, first: tuple[Levels, Levels], deltas: list[tuple[Levels, Levels]]
    ) -> list[tuple[str, int, Levels, Levels]]:
        out = [("snapshot", start, *first)]
        out += [("delta", start + 1 + i, b, a) for i, (b, a) in enumerate(deltas)]
        return out

    side_pair = st.tuples(levels(0, 49, 6), levels(50, 100, 6))
    return st.builds(
        build, st.integers(2, 10**9), side_pair, st.lists(side_pair, min_size=1, max_size=25)
    )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(consistent_stream(), st.data())
def test_injected_gaps_are_detected_on_the_first_offending_message(
    stream: list[tuple[str, int, Levels, Levels]], data: st.DataObject
) -> None:
    mutation = data.draw(st.sampled_from(["none", "drop", "duplicate", "swap", "shift"]))
    stream = list(stream)
    n = len(stream)
    if mutation != "none":
        i = data.draw(st.integers(1, n - 1))
        if mutation == "drop":
            del stream[i]
        elif mutation == "duplicate":
            stream.insert(i, stream[i])
        elif mutation == "swap" and i + 1 < n:
            stream[i], stream[i + 1] = stream[i + 1], stream[i]
        elif mutation == "shift":
            kind, u, b, a = stream[i]
            offset = data.draw(st.integers(-5, 5).filter(lambda x: x != 0))
            if u + offset != 1:
                stream[i] = (kind, u + offset, b, a)
    # Where must the book fail? At the first delta whose u is not the previous u + 1.
    expected_fail = None
    last = stream[0][1]
    for j, (_, u, _, _) in enumerate(stream[1:], start=1):
        if u != last + 1:
            expected_fail = j
            break
        last = u
    cache = OrderBookCache("linear")
    for j, (kind, u, b, a) in enumerate(stream):
        book = cache.apply(msg(kind, u, b, a), float(j))
        if expected_fail is None or j < expected_fail:
            assert book.valid, (j, book.invalid_reason)
        else:
            assert not book.valid
            if j == expected_fail:
                assert book.needs_resync and book.resyncs == 1 and book.sequence_errors == 1
                reason = book.invalid_reason or ""
                assert reason.split()[0] in ("gap", "duplicate", "out-of-order"), reason
            book.needs_resync = False
    assert book.resyncs == (0 if expected_fail is None else 1)
