"""A price-time priority limit order book and matching engine (sans-I/O, integer units).

Prices are integer **ticks** and quantities integer **lots**; converting to and from Bybit's
decimal strings is the job of :class:`~hean.emulator.instruments.InstrumentSpec`. The engine knows
nothing about accounts, margin or reduce-only: those belong to the layer that calls it. Every order
carries an ``owner`` (an account id, or ``"sim:…"`` for the simulated market participants), so that
layer can route fills back to whoever they belong to.

Usage::

    book = OrderBook(clock=lambda: now_ms)
    fills = book.submit(Order("o1", "acct-1", Side.BUY, qty=5, price=1000))
    order = book.order("o1")            # resting remainder, if any
    book.amend("o1", qty=3)             # smaller qty keeps time priority
    book.cancel("o1")

:meth:`OrderBook.submit` mutates the order it is given (``filled``, ``status``, ``reason``), so the
caller can read the outcome from it. Rules, per time in force:

* ``GTC``: match what crosses, rest the remainder at the limit price.
* ``IOC``: match what crosses, cancel the remainder.
* ``FOK``: fill completely at once or not at all (cancelled, no fills).
* ``PostOnly``: rest only if it would not trade at once; otherwise cancelled, no fills.
* market orders (``price=None`` or ``OrderType.MARKET``) are IOC; a price on a market order is a
  protection bound (the order does not trade through it).

Each state change bumps :attr:`OrderBook.seq` (the cross sequence published as ``seq``/``cs``),
:attr:`OrderBook.version` (so publishers know when to diff) and records
:attr:`OrderBook.last_change_ms` (published as ``cts``).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "BookError",
    "Fill",
    "Order",
    "OrderBook",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
]


class Side(StrEnum):
    BUY = "Buy"
    SELL = "Sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    LIMIT = "Limit"
    MARKET = "Market"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "PostOnly"


class OrderStatus(StrEnum):
    CREATED = "Created"  # not yet submitted
    NEW = "New"
    PARTIALLY_FILLED = "PartiallyFilled"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    PARTIALLY_FILLED_CANCELED = "PartiallyFilledCanceled"
    REJECTED = "Rejected"


#: reasons set on :attr:`Order.reason` (Bybit's reject/cancel wording where one exists)
REASON_POST_ONLY = "EC_PostOnlyWillTakeLiquidity"
REASON_FOK = "EC_NoImmediateQtyToFill"
REASON_IOC = "EC_CancelForNoFullFill"
REASON_NO_LIQUIDITY = "EC_NoLiquidity"
REASON_USER = "CancelByUser"


class BookError(ValueError):
    """An operation the book refuses (unknown order, bad quantity, …); nothing was changed."""


@dataclass(slots=True, eq=False)
class Order:
    """One order. ``qty``/``price`` in lots/ticks; ``price=None`` makes a market order."""

    order_id: str
    owner: str
    side: Side
    qty: int
    price: int | None = None
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    filled: int = 0
    status: OrderStatus = OrderStatus.CREATED
    reason: str = ""
    #: time priority: the book's ``seq`` when the order (last) joined its queue
    priority: int = 0
    created_ms: int = 0
    updated_ms: int = 0
    #: free slot for the caller (e.g. the account layer's own order record)
    tag: object = field(default=None, repr=False)

    @property
    def leaves(self) -> int:
        return self.qty - self.filled

    @property
    def is_market(self) -> bool:
        return self.order_type is OrderType.MARKET or self.price is None

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True)
class Fill:
    """One match between a resting maker order and an incoming taker order."""

    seq: int
    ts: int
    price: int
    qty: int
    taker_side: Side
    maker: Order
    taker: Order
    maker_leaves: int
    taker_leaves: int


class _Level:
    __slots__ = ("orders", "total")

    def __init__(self) -> None:
        self.orders: deque[Order] = deque()
        self.total = 0


class _Side:
    """One side of the book. ``keys`` holds ``sign * price`` ascending, so the best is last."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.levels: dict[int, _Level] = {}

    def best(self) -> int | None:
        return self.sign * self.keys[-1] if self.keys else None

    def level(self, price: int) -> _Level:
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = _Level()
            bisect.insort(self.keys, self.sign * price)
        return level

    def drop_level(self, price: int) -> None:
        del self.levels[price]
        key = self.sign * price
        keys = self.keys
        if keys and keys[-1] == key:
            keys.pop()
        else:
            i = bisect.bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                del keys[i]

    def top(self, n: int | None) -> list[tuple[int, int]]:
        keys = self.keys
        chosen = keys if n is None or n >= len(keys) else keys[len(keys) - n :]
        sign, levels = self.sign, self.levels
        return [(sign * k, levels[sign * k].total) for k in reversed(chosen)]

    def crosses(self, price: int | None, taker_side: Side) -> bool:
        """Would a taker at ``price`` trade with this side's best level?"""
        best = self.best()
        if best is None:
            return False
        if price is None:
            return True
        return best <= price if taker_side is Side.BUY else best >= price


class OrderBook:
    """Limit order book of one instrument. Not thread-safe; call from one thread."""

    def __init__(self, *, clock: Callable[[], int] = lambda: 0, seq: int = 0) -> None:
        self._clock = clock
        self._bids = _Side(1)
        self._asks = _Side(-1)
        self._orders: dict[str, Order] = {}
        #: cross sequence: +1 per change (callers may add jumps of their own)
        self.seq = seq
        #: +1 per change of a price level (publishers diff only when it moved)
        self.version = 0
        #: time of the last change (published as ``cts``)
        self.last_change_ms = 0

    # -- queries ------------------------------------------------------------------------------

    def _side(self, side: Side) -> _Side:
        return self._bids if side is Side.BUY else self._asks

    def best_bid(self) -> int | None:
        return self._bids.best()

    def best_ask(self) -> int | None:
        return self._asks.best()

    def depth(self, n: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """``(bids, asks)`` as ``(price, total qty)`` per level, best first, at most ``n`` each."""
        return self._bids.top(n), self._asks.top(n)

    def side_depth(self, side: Side, n: int | None = None) -> list[tuple[int, int]]:
        return self._side(side).top(n)

    def level_qty(self, side: Side, price: int) -> int:
        level = self._side(side).levels.get(price)
        return level.total if level is not None else 0

    def level_count(self, side: Side) -> int:
        return len(self._side(side).keys)

    def order(self, order_id: str) -> Order | None:
        """A resting order, or ``None``."""
        return self._orders.get(order_id)

    def orders(self, owner: str | None = None) -> Iterator[Order]:
        """Resting orders (of one owner if given), in no particular order."""
        for order in self._orders.values():
            if owner is None or order.owner == owner:
                yield order

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def queue(self, side: Side, price: int) -> list[Order]:
        """Orders resting at one level, in time priority."""
        level = self._side(side).levels.get(price)
        return list(level.orders) if level is not None else []

    def available(self, side: Side, limit: int | None) -> int:
        """Quantity a taker on ``side`` could fill at once up to ``limit`` (None = any price)."""
        book = self._asks if side is Side.BUY else self._bids
        total = 0
        for price, qty in book.top(None):
            if limit is not None and (price > limit if side is Side.BUY else price < limit):
                break
            total += qty
        return total

    # -- changes ------------------------------------------------------------------------------

    def _touch(self) -> int:
        self.seq += 1
        self.version += 1
        now = self._clock()
        self.last_change_ms = now
        return now

    def submit(self, order: Order) -> list[Fill]:
        """Match ``order``, rest any GTC/PostOnly remainder; return the fills in match order."""
        if order.status is not OrderStatus.CREATED:
            raise BookError(f"order {order.order_id!r} was already submitted")
        if order.order_id in self._orders:
            raise BookError(f"duplicate order id {order.order_id!r}")
        if isinstance(order.qty, bool) or not isinstance(order.qty, int) or order.qty <= 0:
            raise BookError(f"qty must be a positive number of lots, got {order.qty!r}")
        market = order.is_market
        if not market and (order.price is None or order.price <= 0):
            raise BookError(f"limit price must be a positive number of ticks, got {order.price!r}")
        if market and order.tif is TimeInForce.POST_ONLY:
            order.status = OrderStatus.REJECTED
            order.reason = "PostOnly is for limit orders"
            return []
        now = self._clock()
        order.created_ms = order.updated_ms = now
        opposite = self._asks if order.side is Side.BUY else self._bids
        crosses = opposite.crosses(order.price, order.side)
        if order.tif is TimeInForce.POST_ONLY and crosses:
            order.status = OrderStatus.CANCELLED
            order.reason = REASON_POST_ONLY
            return []
        if order.tif is TimeInForce.FOK and self.available(order.side, order.price) < order.qty:
            order.status = OrderStatus.CANCELLED
            order.reason = REASON_FOK
            return []
        order.status = OrderStatus.NEW
        fills = self._match(order) if crosses else []
        if order.leaves == 0:
            order.status = OrderStatus.FILLED
        elif market or order.tif in (TimeInForce.IOC, TimeInForce.FOK):
            if order.filled:
                order.status = OrderStatus.PARTIALLY_FILLED_CANCELED
                order.reason = REASON_IOC
            else:
                order.status = OrderStatus.CANCELLED
                order.reason = REASON_NO_LIQUIDITY if market else REASON_IOC
        else:
            if order.filled:
                order.status = OrderStatus.PARTIALLY_FILLED
            self._rest(order)
        return fills

    def add_passive(self, order: Order) -> None:
        """Rest a new limit order that does not cross (a PostOnly fast path for simulated
        liquidity). Raises :class:`BookError` if it would cross or its id is taken."""
        price = order.price
        if price is None or price <= 0 or order.qty <= 0 or order.order_id in self._orders:
            raise BookError(f"not a valid new passive order: {order!r}")
        if order.side is Side.BUY:
            best = self._asks.best()
            if best is not None and price >= best:
                raise BookError("a passive buy must be below the best ask")
        else:
            best = self._bids.best()
            if best is not None and price <= best:
                raise BookError("a passive sell must be above the best bid")
        order.status = OrderStatus.NEW
        order.created_ms = self._clock()
        self._rest(order)

    def _rest(self, order: Order) -> None:
        assert order.price is not None
        order.updated_ms = self._touch()
        order.priority = self.seq
        level = self._side(order.side).level(order.price)
        level.orders.append(order)
        level.total += order.leaves
        self._orders[order.order_id] = order

    def _match(self, taker: Order) -> list[Fill]:
        book = self._asks if taker.side is Side.BUY else self._bids
        buy = taker.side is Side.BUY
        limit = taker.price
        fills: list[Fill] = []
        keys = book.keys
        sign = book.sign
        while taker.leaves > 0 and keys:
            price = sign * keys[-1]
            if limit is not None and (price > limit if buy else price < limit):
                break
            level = book.levels[price]
            queue = level.orders
            while queue and taker.leaves > 0:
                maker = queue[0]
                qty = min(taker.leaves, maker.leaves)
                now = self._touch()
                maker.filled += qty
                taker.filled += qty
                level.total -= qty
                maker.updated_ms = taker.updated_ms = now
                if maker.leaves == 0:
                    queue.popleft()
                    del self._orders[maker.order_id]
                    maker.status = OrderStatus.FILLED
                else:
                    maker.status = OrderStatus.PARTIALLY_FILLED
                fills.append(
                    Fill(
                        self.seq,
                        now,
                        price,
                        qty,
                        taker.side,
                        maker,
                        taker,
                        maker.leaves,
                        taker.leaves,
                    )
                )
            if not queue:
                book.drop_level(price)
        return fills

    def _unlink(self, order: Order) -> None:
        assert order.price is not None
        side = self._side(order.side)
        level = side.levels[order.price]
        level.orders.remove(order)
        level.total -= order.leaves
        if not level.orders:
            side.drop_level(order.price)
        del self._orders[order.order_id]

    def cancel(self, order_id: str, reason: str = REASON_USER) -> Order | None:
        """Remove a resting order; returns it (status ``Cancelled``), or ``None`` if unknown."""
        order = self._orders.get(order_id)
        if order is None:
            return None
        self._unlink(order)
        order.updated_ms = self._touch()
        order.status = (
            OrderStatus.PARTIALLY_FILLED_CANCELED if order.filled else OrderStatus.CANCELLED
        )
        order.reason = reason
        return order

    def amend(
        self, order_id: str, *, qty: int | None = None, price: int | None = None
    ) -> list[Fill]:
        """Change a resting order's total ``qty`` and/or ``price``.

        A smaller quantity at the same price keeps time priority; a new price or a larger quantity
        sends the order to the back of its level's queue. A new price that crosses makes the order
        trade like an incoming one (a PostOnly order refuses such an amend with
        :class:`BookError`). Returns the fills. Raises :class:`BookError` (nothing changed) for an
        unknown order, a quantity not above what is already filled, or a bad price.
        """
        order = self._orders.get(order_id)
        if order is None:
            raise BookError(f"no resting order {order_id!r}")
        assert order.price is not None
        new_qty = order.qty if qty is None else qty
        new_price = order.price if price is None else price
        if isinstance(new_qty, bool) or not isinstance(new_qty, int) or new_qty <= order.filled:
            raise BookError(
                f"qty must be an int above the filled quantity {order.filled}, got {qty!r}"
            )
        if isinstance(new_price, bool) or not isinstance(new_price, int) or new_price <= 0:
            raise BookError(f"price must be a positive number of ticks, got {price!r}")
        if new_qty == order.qty and new_price == order.price:
            return []
        if new_price == order.price and new_qty < order.qty:
            level = self._side(order.side).levels[order.price]
            level.total -= order.qty - new_qty
            order.qty = new_qty
            order.updated_ms = self._touch()
            return []
        opposite = self._asks if order.side is Side.BUY else self._bids
        crosses = opposite.crosses(new_price, order.side)
        if crosses and order.tif is TimeInForce.POST_ONLY:
            raise BookError("amend would make a PostOnly order take liquidity")
        self._unlink(order)
        order.qty, order.price = new_qty, new_price
        fills = self._match(order) if crosses else []
        if order.leaves == 0:
            order.status = OrderStatus.FILLED
            if not fills:  # pragma: no cover - cannot happen (qty > filled)
                order.updated_ms = self._touch()
        else:
            if order.filled:
                order.status = OrderStatus.PARTIALLY_FILLED
            self._rest(order)
        return fills

    def hit(self, order_id: str, taker: Order) -> list[Fill]:
        """A taker that trades against one named resting order only, at that order's price,
        whatever its queue position (a scenario tool: the price touched it and came back).

        ``taker.qty`` lots are taken (at most the order's leaves). The taker is never rested.
        Raises :class:`BookError` for an unknown order or a bad quantity.
        """
        maker = self._orders.get(order_id)
        if maker is None:
            raise BookError(f"no resting order {order_id!r}")
        if taker.status is not OrderStatus.CREATED or taker.order_id in self._orders:
            raise BookError(f"taker {taker.order_id!r} was already submitted")
        if isinstance(taker.qty, bool) or not isinstance(taker.qty, int) or taker.qty <= 0:
            raise BookError(f"qty must be a positive number of lots, got {taker.qty!r}")
        assert maker.price is not None
        qty = min(taker.qty, maker.leaves)
        taker.side = maker.side.opposite
        taker.price = maker.price
        taker.tif = TimeInForce.IOC
        level = self._side(maker.side).levels[maker.price]
        now = self._touch()
        taker.created_ms = taker.updated_ms = maker.updated_ms = now
        maker.filled += qty
        taker.filled += qty
        level.total -= qty
        if maker.leaves == 0:
            level.orders.remove(maker)
            del self._orders[maker.order_id]
            if not level.orders:
                self._side(maker.side).drop_level(maker.price)
            maker.status = OrderStatus.FILLED
        else:
            maker.status = OrderStatus.PARTIALLY_FILLED
        taker.status = OrderStatus.FILLED if taker.leaves == 0 else OrderStatus.CANCELLED
        fill = Fill(
            self.seq, now, maker.price, qty, taker.side, maker, taker, maker.leaves, taker.leaves
        )
        return [fill]

    def clear(self) -> list[Order]:
        """Remove every resting order (e.g. a delisting); returns them, cancelled."""
        out = list(self._orders.values())
        for order in out:
            self.cancel(order.order_id, "EC_CancelAll")
        return out
