"""Typed events that flow through the :class:`~hean.core.bus.EventBus`.

Events are immutable :class:`msgspec.Struct` objects: cheap to create (one allocation, no
``__dict__``) and safe to hand to many subscribers at once. Large state (a merged ticker, a book)
is *referenced*, never copied, so an event is the same size whatever it points at.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import msgspec

from hean.core.lifecycle import ConnectionState

if TYPE_CHECKING:  # annotations only: the exchange layer imports this module
    from hean.exchange.bybit.state.orderbook import OrderBook
    from hean.exchange.bybit.state.public import Kline, Liquidation, Trade

__all__ = [
    "ConnectionStateEvent",
    "EventType",
    "KlineEvent",
    "LiquidationEvent",
    "OrderBookEvent",
    "SubscriptionEvent",
    "SubscriptionStatus",
    "TickEvent",
    "TradeEvent",
]


class EventType(enum.StrEnum):
    """The kinds of event published on the bus."""

    TICK = "tick"
    """A ticker message was merged: :class:`TickEvent`."""
    CONNECTION_STATE = "connection_state"
    """A connection changed lifecycle state: :class:`ConnectionStateEvent`."""
    SUBSCRIPTION = "subscription"
    """A topic was confirmed, rejected, timed out or removed: :class:`SubscriptionEvent`."""
    ORDERBOOK = "orderbook"
    """An order book message was applied (or refused): :class:`OrderBookEvent`."""
    TRADE = "trade"
    """A public trade message (one or more trades): :class:`TradeEvent`."""
    KLINE = "kline"
    """A kline (candle) message: :class:`KlineEvent`."""
    LIQUIDATION = "liquidation"
    """A liquidation message: :class:`LiquidationEvent`."""


class TickEvent(msgspec.Struct, frozen=True, gc=False):
    """One ticker message (snapshot or delta), after merging into the cached ticker.

    Prices are floats for convenience; the exact strings Bybit sent are in ``ticker.fields``.
    A field is ``None`` until the exchange has sent it at least once.
    """

    symbol: str
    category: str
    last_price: float | None
    bid: float | None
    ask: float | None
    exchange_ts: int
    """Exchange time of the message (``ts``), Unix ms."""
    recv_time: float
    """Local monotonic time the frame was read (seconds)."""
    recv_wall_ms: int
    """Local wall time the frame was read (Unix ms); ``recv_wall_ms - exchange_ts`` is the lag."""
    is_snapshot: bool
    ticker: Any
    """The merged :class:`~hean.exchange.bybit.state.tickers.TickerState` (shared, not copied)."""


class ConnectionStateEvent(msgspec.Struct, frozen=True):
    """A connection moved from ``old`` to ``new``."""

    connection: str
    """Connection label, e.g. ``public/linear``."""
    url: str
    old: ConnectionState
    new: ConnectionState
    reason: str
    """Why (e.g. ``heartbeat_timeout``, ``server_close:1006``, ``stop``); empty if routine."""
    attempt: int
    """Reconnect attempt number (0 for the first connection)."""
    time: float
    """Monotonic time of the transition."""


class SubscriptionStatus(enum.StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    UNSUBSCRIBED = "unsubscribed"
    RESYNC = "resync"
    """The topic is being resubscribed to get a fresh snapshot (e.g. a delta before a snapshot)."""


class SubscriptionEvent(msgspec.Struct, frozen=True):
    """The exchange answered (or failed to answer) a subscription request for ``topic``."""

    connection: str
    topic: str
    status: SubscriptionStatus
    reason: str
    """Bybit's ``ret_msg`` for a rejection, or our own reason."""
    time: float


class OrderBookEvent(msgspec.Struct, frozen=True, gc=False):
    """One order book message (snapshot or delta), after applying it to the book.

    ``bids`` / ``asks`` are the levels *of this message* as received (``[price, size]`` strings;
    size ``"0"`` = level deleted), not copies of the book; the whole current book is ``book``.
    ``u`` / ``seq`` / ``exchange_ts`` / ``cts`` are those of the message too. When ``valid`` is
    ``False`` the book is not to be trusted (gap, crossed, no snapshot yet ...: see
    ``book.invalid_reason``) and the message may not have been applied.
    """

    symbol: str
    category: str
    topic: str
    """``orderbook.{depth}.{symbol}``."""
    depth: int
    is_snapshot: bool
    """A snapshot, or a ``u == 1`` reset (service restart): the book was replaced."""
    bids: list[Any]
    asks: list[Any]
    u: int
    """Update id (``data.u``): consecutive per topic; ``1`` after a service restart."""
    seq: int | None
    """Cross sequence (``data.seq``): orders messages across depths of one symbol."""
    exchange_ts: int
    """Exchange time of the message (``ts``), Unix ms."""
    cts: int | None
    """Matching-engine time (``cts``), Unix ms; correlates with trade ``T``."""
    recv_time: float
    """Local monotonic time the frame was read (seconds)."""
    recv_wall_ms: int
    """Local wall time the frame was read (Unix ms); ``recv_wall_ms - exchange_ts`` is the lag."""
    valid: bool
    """The book was valid after this message."""
    best_bid: tuple[str, str] | None
    """Top of book ``(price, size)`` right after this message (kept even if the book moves on)."""
    best_ask: tuple[str, str] | None
    book: OrderBook
    """The :class:`~hean.exchange.bybit.state.orderbook.OrderBook` (shared, not copied: it moves
    on with later messages; read it in the handler or copy what you need)."""


class TradeEvent(msgspec.Struct, frozen=True, gc=False):
    """One ``publicTrade`` message: one or more trades, oldest first."""

    symbol: str
    """From the topic (options: the base coin, e.g. ``BTC``; each trade has its own symbol)."""
    category: str
    trades: list[Trade]
    """:class:`~hean.exchange.bybit.state.public.Trade` items of this message."""
    exchange_ts: int
    """Exchange time of the message (``ts``), Unix ms; each trade has its own time ``time``."""
    recv_time: float
    """Local monotonic time the frame was read (seconds)."""
    recv_wall_ms: int
    """Local wall time the frame was read (Unix ms)."""


class KlineEvent(msgspec.Struct, frozen=True, gc=False):
    """One ``kline.{interval}.{symbol}`` message (usually one candle; ``confirm`` = closed)."""

    symbol: str
    category: str
    interval: str
    """From the topic: ``1 3 5 15 30 60 120 240 360 720`` (minutes), ``D``, ``W`` or ``M``."""
    klines: list[Kline]
    """:class:`~hean.exchange.bybit.state.public.Kline` items of this message."""
    exchange_ts: int
    """Exchange time of the message (``ts``), Unix ms."""
    recv_time: float
    """Local monotonic time the frame was read (seconds)."""
    recv_wall_ms: int
    """Local wall time the frame was read (Unix ms)."""


class LiquidationEvent(msgspec.Struct, frozen=True, gc=False):
    """One ``allLiquidation`` (or deprecated ``liquidation``) message."""

    symbol: str
    category: str
    liquidations: list[Liquidation]
    """:class:`~hean.exchange.bybit.state.public.Liquidation` items of this message."""
    exchange_ts: int
    """Exchange time of the message (``ts``), Unix ms."""
    recv_time: float
    """Local monotonic time the frame was read (seconds)."""
    recv_wall_ms: int
    """Local wall time the frame was read (Unix ms)."""
