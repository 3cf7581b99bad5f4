"""Matching engine: price-time priority, partial fills, time in force, cancel and amend."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hean.emulator.matching import (
    BookError,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

B, S = Side.BUY, Side.SELL


def limit(oid: str, side: Side, qty: int, price: int, tif: TimeInForce = TimeInForce.GTC) -> Order:
    return Order(oid, f"acct-{oid}", side, qty, price, tif=tif)


def market(oid: str, side: Side, qty: int, protect: int | None = None) -> Order:
    return Order(oid, f"acct-{oid}", side, qty, protect, OrderType.MARKET)


@pytest.fixture
def book() -> OrderBook:
    now = [1000]
    b = OrderBook(clock=lambda: now[0])
    # asks: 101 x 5 (a1, then a2), 102 x 7 ; bids: 99 x 4, 98 x 6
    for order in (
        limit("a1", S, 2, 101),
        limit("a2", S, 3, 101),
        limit("a3", S, 7, 102),
        limit("b1", B, 4, 99),
        limit("b2", B, 6, 98),
    ):
        assert b.submit(order) == []
        assert order.status is OrderStatus.NEW
    return b


def test_depth_and_best(book: OrderBook) -> None:
    assert book.best_bid() == 99 and book.best_ask() == 101
    assert book.depth() == ([(99, 4), (98, 6)], [(101, 5), (102, 7)])
    assert book.depth(1) == ([(99, 4)], [(101, 5)])
    assert [o.order_id for o in book.queue(S, 101)] == ["a1", "a2"]
    assert len(book) == 5 and "a1" in book and book.level_count(S) == 2


def test_price_time_priority_and_partial_fills(book: OrderBook) -> None:
    taker = limit("t", B, 4, 101)
    fills = book.submit(taker)
    assert [(f.maker.order_id, f.price, f.qty) for f in fills] == [("a1", 101, 2), ("a2", 101, 2)]
    assert [f.taker_leaves for f in fills] == [2, 0]
    assert fills[0].maker_leaves == 0 and fills[1].maker_leaves == 1
    assert fills[0].seq < fills[1].seq and fills[0].taker_side is B
    assert taker.status is OrderStatus.FILLED and taker.filled == 4
    assert book.order("a1") is None and fills[0].maker.status is OrderStatus.FILLED
    a2 = book.order("a2")
    assert a2 is not None and a2.status is OrderStatus.PARTIALLY_FILLED and a2.leaves == 1
    assert book.depth(1)[1] == [(101, 1)]


def test_sweep_several_levels_then_rest(book: OrderBook) -> None:
    taker = limit("t", B, 20, 102)
    fills = book.submit(taker)
    assert [(f.price, f.qty) for f in fills] == [(101, 2), (101, 3), (102, 7)]
    assert taker.status is OrderStatus.PARTIALLY_FILLED and taker.leaves == 8
    assert book.best_bid() == 102 and book.best_ask() is None
    assert book.order("t") is taker


def test_limit_price_respected(book: OrderBook) -> None:
    taker = limit("t", S, 20, 99, TimeInForce.IOC)
    fills = book.submit(taker)
    assert [(f.price, f.qty) for f in fills] == [(99, 4)]
    assert taker.status is OrderStatus.PARTIALLY_FILLED_CANCELED and taker.leaves == 16
    assert book.order("t") is None and book.best_bid() == 98


def test_market_orders(book: OrderBook) -> None:
    m = market("m", S, 5)
    fills = book.submit(m)
    assert [(f.price, f.qty) for f in fills] == [(99, 4), (98, 1)]
    assert m.status is OrderStatus.FILLED
    # price protection bounds a market order
    m2 = market("m2", B, 100, protect=101)
    assert sum(f.qty for f in book.submit(m2)) == 5
    assert m2.status is OrderStatus.PARTIALLY_FILLED_CANCELED and book.best_ask() == 102
    empty = OrderBook()
    m3 = market("m3", B, 1)
    assert empty.submit(m3) == [] and m3.status is OrderStatus.CANCELLED


def test_ioc_without_liquidity(book: OrderBook) -> None:
    ioc = limit("i", B, 3, 100, TimeInForce.IOC)
    assert book.submit(ioc) == []
    assert ioc.status is OrderStatus.CANCELLED and book.order("i") is None


def test_fok(book: OrderBook) -> None:
    too_big = limit("f1", B, 13, 102, TimeInForce.FOK)
    assert book.submit(too_big) == [] and too_big.status is OrderStatus.CANCELLED
    assert book.depth(1)[1] == [(101, 5)]  # untouched
    price_bound = limit("f2", B, 6, 101, TimeInForce.FOK)
    assert book.submit(price_bound) == [] and price_bound.status is OrderStatus.CANCELLED
    exact = limit("f3", B, 12, 102, TimeInForce.FOK)
    assert sum(f.qty for f in book.submit(exact)) == 12
    assert exact.status is OrderStatus.FILLED and book.best_ask() is None


def test_post_only(book: OrderBook) -> None:
    crossing = limit("p1", B, 1, 101, TimeInForce.POST_ONLY)
    assert book.submit(crossing) == []
    assert crossing.status is OrderStatus.CANCELLED and crossing.reason
    resting = limit("p2", B, 1, 100, TimeInForce.POST_ONLY)
    assert book.submit(resting) == [] and resting.status is OrderStatus.NEW
    assert book.best_bid() == 100
    bad = Order("p3", "x", B, 1, None, OrderType.MARKET, TimeInForce.POST_ONLY)
    assert book.submit(bad) == [] and bad.status is OrderStatus.REJECTED


def test_cancel(book: OrderBook) -> None:
    seq = book.seq
    cancelled = book.cancel("a1")
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELLED
    assert book.seq == seq + 1 and book.depth(1)[1] == [(101, 3)]
    assert book.cancel("a1") is None and book.cancel("nope") is None
    book.cancel("a2")
    assert book.best_ask() == 102 and book.level_count(S) == 1


def test_amend_qty_down_keeps_priority(book: OrderBook) -> None:
    assert book.amend("a1", qty=1) == []
    assert [o.order_id for o in book.queue(S, 101)] == ["a1", "a2"]
    assert book.depth(1)[1] == [(101, 4)]
    fills = book.submit(limit("t", B, 1, 101))
    assert fills[0].maker.order_id == "a1"


def test_amend_qty_up_or_price_loses_priority(book: OrderBook) -> None:
    book.amend("a1", qty=3)
    assert [o.order_id for o in book.queue(S, 101)] == ["a2", "a1"]
    book.amend("a2", price=102)
    assert [o.order_id for o in book.queue(S, 102)] == ["a3", "a2"]
    assert book.depth() == ([(99, 4), (98, 6)], [(101, 3), (102, 10)])


def test_amend_crossing_trades_and_postonly_refuses(book: OrderBook) -> None:
    fills = book.amend("b1", price=101)
    assert [(f.maker.order_id, f.qty) for f in fills] == [("a1", 2), ("a2", 2)]
    assert fills[0].taker.order_id == "b1" and book.order("b1") is None
    book.submit(limit("po", B, 1, 100, TimeInForce.POST_ONLY))
    with pytest.raises(BookError, match="PostOnly"):
        book.amend("po", price=102)
    order = book.order("po")
    assert order is not None and order.price == 100  # unchanged


def test_amend_errors(book: OrderBook) -> None:
    book.submit(limit("t", B, 1, 101))  # a1 now has filled 1
    with pytest.raises(BookError):
        book.amend("a1", qty=1)  # not above filled
    with pytest.raises(BookError):
        book.amend("zz", qty=5)
    with pytest.raises(BookError):
        book.amend("a2", price=0)
    with pytest.raises(BookError):
        book.submit(limit("a2", S, 1, 105))  # duplicate id
    with pytest.raises(BookError):
        book.submit(limit("q0", S, 0, 105))
    o = limit("again", S, 1, 105)
    book.submit(o)
    with pytest.raises(BookError):
        book.submit(o)


def test_owner_filter_and_clear(book: OrderBook) -> None:
    assert [o.order_id for o in book.orders("acct-a3")] == ["a3"]
    cleared = book.clear()
    assert len(cleared) == 5 and len(book) == 0 and book.depth() == ([], [])


def test_timestamps_from_clock() -> None:
    now = [5]
    b = OrderBook(clock=lambda: now[0])
    b.submit(limit("a", S, 1, 10))
    now[0] = 9
    fills = b.submit(limit("b", B, 1, 10))
    assert fills[0].ts == 9 and b.last_change_ms == 9


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(50, 300))
def test_random_flow_invariants(seed: int, n: int) -> None:
    """Random orders: never crossed, levels = sum of resting leaves, quantity conserved."""
    rng = random.Random(seed)
    b = OrderBook()
    submitted = filled_twice = 0
    for i in range(n):
        side = B if rng.random() < 0.5 else S
        qty = rng.randint(1, 10)
        r = rng.random()
        if r < 0.15 and len(b):
            b.cancel(rng.choice([o.order_id for o in b.orders()]))
            continue
        if r < 0.25 and len(b):
            target = rng.choice(list(b.orders()))
            try:
                fills = b.amend(
                    target.order_id,
                    qty=target.filled + rng.randint(1, 10),
                    price=rng.randint(90, 110),
                )
            except BookError:
                continue
            filled_twice += 2 * sum(f.qty for f in fills)
            continue
        tif = rng.choice(list(TimeInForce))
        order = Order(str(i), "o", side, qty, rng.randint(90, 110), tif=tif)
        if rng.random() < 0.1:
            order = Order(str(i), "o", side, qty, None, OrderType.MARKET)
        fills = b.submit(order)
        submitted += 1
        filled_twice += 2 * sum(f.qty for f in fills)
        assert sum(f.qty for f in fills) == order.filled
        bid, ask = b.best_bid(), b.best_ask()
        assert bid is None or ask is None or bid < ask
    bids, asks = b.depth()
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    for side, levels in ((B, bids), (S, asks)):
        for price, total in levels:
            queue = b.queue(side, price)
            assert total == sum(o.leaves for o in queue) > 0
            assert [o.priority for o in queue] == sorted(o.priority for o in queue)
    assert filled_twice % 2 == 0 and submitted > 0
