"""Typed events that flow through the :class:`~hean.core.bus.EventBus`.

Events are immutable :class:`msgspec.Struct` objects: cheap to create (one allocation, no
``__dict__``) and safe to hand to many subscribers at once. Large state (a merged ticker, a book)
is *referenced*, never copied, so an event is the same size whatever it points at.

Value types, one rule: **every value from the exchange is kept as the exact string Bybit sent**
(prices, sizes, quantities, balances: ticker ``fields``, book levels, trades, klines, orders,
executions, positions, wallets), so nothing is rounded behind your back (``Decimal(text)`` for
exact arithmetic). **Floats exist only as named conveniences for prices**: ``TickEvent``'s
``last_price`` / ``bid`` / ``ask``; ``best_bid_price`` / ``best_ask_price`` / ``spread`` on
``OrderBookEvent`` and on the book (which adds ``mid``, ``bids_float()`` and ``asks_float()``).
Times are ints in Unix ms (exchange and wall) or floats in monotonic seconds (``recv_time``).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import msgspec

from hean.core.lifecycle import ConnectionState

if TYPE_CHECKING:  # annotations only: the exchange layer imports this module
    from hean.exchange.bybit.state.orderbook import OrderBook
    from hean.exchange.bybit.state.private import (
        Execution,
        FastExecution,
        Order,
        Position,
        Wallet,
    )
    from hean.exchange.bybit.state.public import Kline, Liquidation, Trade

__all__ = [
    "PRIVATE_EVENT_TYPES",
    "AccountSyncEvent",
    "AuthEvent",
    "BackfillEvent",
    "ConnectionStateEvent",
    "EventType",
    "ExecutionEvent",
    "ExecutionQualityEvent",
    "GapEvent",
    "KlineEvent",
    "LiquidationEvent",
    "OrderBookEvent",
    "OrderUpdateEvent",
    "PositionUpdateEvent",
    "ReconciledEvent",
    "StaleStatus",
    "StalenessEvent",
    "SubscriptionEvent",
    "SubscriptionStatus",
    "TickEvent",
    "TradeEvent",
    "WalletUpdateEvent",
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
    ORDER_UPDATE = "order_update"
    """A private ``order`` message (one or more orders): :class:`OrderUpdateEvent`."""
    EXECUTION = "execution"
    """A private ``execution`` / ``execution.fast`` message: :class:`ExecutionEvent`."""
    POSITION_UPDATE = "position_update"
    """A private ``position`` message: :class:`PositionUpdateEvent`."""
    WALLET_UPDATE = "wallet_update"
    """A private ``wallet`` message: :class:`WalletUpdateEvent`."""
    AUTH = "auth"
    """An authentication attempt was accepted or rejected: :class:`AuthEvent`."""
    GAP = "gap"
    """A stream was down and is back; updates may have been missed: :class:`GapEvent`."""
    STALENESS = "staleness"
    """A topic went stale, was escalated (resubscribed, connection recycled, feed down) or
    recovered: :class:`StalenessEvent` (published by :mod:`hean.health`)."""
    EXECUTION_QUALITY = "execution_quality"
    """Whether it is safe to trade changed: :class:`ExecutionQualityEvent` (:mod:`hean.health`)."""
    RECONCILED = "reconciled"
    """An account reconciliation run ended: :class:`ReconciledEvent` (:mod:`hean.account`)."""
    ACCOUNT_SYNC = "account_sync"
    """The account view went out of sync (a gap) or back in sync: :class:`AccountSyncEvent`."""
    BACKFILL = "backfill"
    """Public data missed during an outage was fetched over REST (or could not all be):
    :class:`BackfillEvent`."""


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

    @property
    def best_bid_price(self) -> float | None:
        """``best_bid``'s price as a float (the convenience; the string is exact)."""
        return None if self.best_bid is None else float(self.best_bid[0])

    @property
    def best_ask_price(self) -> float | None:
        """``best_ask``'s price as a float."""
        return None if self.best_ask is None else float(self.best_ask[0])

    @property
    def spread(self) -> float | None:
        """Best ask minus best bid, as a float (``None`` unless both sides exist)."""
        bid, ask = self.best_bid_price, self.best_ask_price
        return None if bid is None or ask is None else ask - bid


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
    backfilled: bool = False
    """Fetched over REST after a reconnect (missed during the outage), not received live."""


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
    backfilled: bool = False
    """Fetched over REST after a reconnect (missed during the outage), not received live."""


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


# -- private streams (orders, executions, positions, wallet), auth and gaps -----------------------
#
# Private events describe the account: a consumer that misses one has a wrong view of its orders
# or balances. Subscribe to them with ``OverflowPolicy.NEVER_DROP`` (or a sync callback), never
# with a dropping or conflating queue; ``BybitPrivateWebSocket.subscribe_events`` does that.


class OrderUpdateEvent(msgspec.Struct, frozen=True, gc=False):
    """One private ``order`` (or ``order.<category>``) message: one or more order updates."""

    connection: str
    topic: str
    orders: list[Order]
    """:class:`~hean.exchange.bybit.state.private.Order` items, in the order Bybit sent them."""
    msg_id: str | None
    """The message ``id``."""
    creation_time: int
    """Exchange time the message was created (``creationTime``), Unix ms."""
    recv_time: float
    """Local monotonic time the frame was read (seconds)."""
    recv_wall_ms: int
    """Local wall time the frame was read (Unix ms)."""
    reconciled: bool = False
    """Learned from REST by :class:`~hean.account.Account` while reconciling (not from the
    stream): what changed while the private link was down, or at start-up."""


class ExecutionEvent(msgspec.Struct, frozen=True, gc=False):
    """One private ``execution`` or ``execution.fast`` message (one or more fills).

    ``fast`` tells which: fast executions are
    :class:`~hean.exchange.bybit.state.private.FastExecution` (fewer fields, trades only), the
    others :class:`~hean.exchange.bybit.state.private.Execution`.
    """

    connection: str
    topic: str
    fast: bool
    executions: list[Execution] | list[FastExecution]
    msg_id: str | None
    creation_time: int
    """``creationTime``, Unix ms."""
    recv_time: float
    recv_wall_ms: int
    reconciled: bool = False
    """Learned from REST by :class:`~hean.account.Account` while reconciling (not from the
    stream): what changed while the private link was down, or at start-up."""


class PositionUpdateEvent(msgspec.Struct, frozen=True, gc=False):
    """One private ``position`` message (sent on every order create/amend/cancel, even with no
    change)."""

    connection: str
    topic: str
    positions: list[Position]
    msg_id: str | None
    creation_time: int
    recv_time: float
    recv_wall_ms: int
    reconciled: bool = False
    """Learned from REST by :class:`~hean.account.Account` while reconciling (not from the
    stream): what changed while the private link was down, or at start-up."""


class WalletUpdateEvent(msgspec.Struct, frozen=True, gc=False):
    """One private ``wallet`` message (no snapshot on subscribe; UPL changes are not pushed)."""

    connection: str
    topic: str
    wallets: list[Wallet]
    msg_id: str | None
    creation_time: int
    recv_time: float
    recv_wall_ms: int
    reconciled: bool = False
    """Learned from REST by :class:`~hean.account.Account` while reconciling (not from the
    stream): what changed while the private link was down, or at start-up."""


class AuthEvent(msgspec.Struct, frozen=True):
    """An auth attempt on a private or trade connection was answered."""

    connection: str
    ok: bool
    reason: str
    """``ok``, or the failure reason: ``bad_key``, ``bad_signature``, ``expired``,
    ``clock_skew``, ``too_many_sessions``, ``unknown``."""
    message: str
    """What is wrong, for humans (never a secret or signature)."""
    ret_code: int | None
    ret_msg: str | None
    """What the server said."""
    clock_offset_ms: float | None
    """Measured ``server - local`` clock offset at the time, if known."""
    retry_in: float | None
    """Seconds until the automatic retry; ``None`` when there is none (success, or a bad key or
    signature: call ``connect()`` again after fixing the credentials)."""
    attempt: int
    """Auth attempts so far on this session (1 for the first)."""
    time: float
    """Monotonic time of the answer."""


class GapEvent(msgspec.Struct, frozen=True):
    """``topic`` was down from ``down_since`` to ``up_at``: updates in between may be lost.

    Published once per topic when a subscription that was live before a disconnect is confirmed
    again. Reconcile through REST (open orders, executions since ``down_since_wall_ms``,
    positions, wallet).
    """

    connection: str
    topic: str
    down_since: float
    """Monotonic time the connection was lost."""
    up_at: float
    """Monotonic time the topic was confirmed again."""
    duration: float
    """``up_at - down_since``, seconds."""
    reason: str
    """Why the connection was lost (e.g. ``heartbeat_timeout``, ``server_close:1006``)."""
    last_seen: float | None
    """Monotonic time of the last frame received before the loss."""
    down_since_wall_ms: int | None
    """``down_since`` as Unix ms (when the shell gave the session a wall clock)."""
    up_at_wall_ms: int | None


PRIVATE_EVENT_TYPES: tuple[EventType, ...] = (
    EventType.ORDER_UPDATE,
    EventType.EXECUTION,
    EventType.POSITION_UPDATE,
    EventType.WALLET_UPDATE,
    EventType.GAP,
)
"""The event types a private-stream consumer must never lose (subscribe with ``NEVER_DROP``)."""


class StaleStatus(enum.StrEnum):
    """The steps of one staleness episode of a topic (or of one ticker field)."""

    STALE = "stale"
    """No update for longer than the threshold: logged once, and the topic resubscribed."""
    RECYCLED = "recycled"
    """Still stale a while after the resubscribe: the connection was dropped and reopened."""
    DOWN = "down"
    """Still stale after the reconnect too: the feed is marked down (no further action)."""
    RECOVERED = "recovered"
    """Updates resumed: the episode is over."""


class StalenessEvent(msgspec.Struct, frozen=True):
    """A step of a staleness episode of ``topic`` (or of one of its ticker fields)."""

    connection: str
    topic: str
    symbol: str
    status: StaleStatus
    field: str | None
    """The ticker field judged stale (e.g. ``markPrice``), or ``None`` for the whole topic."""
    age: float
    """Seconds without an update (for a field: since it last changed) when this was decided;
    for ``RECOVERED``, how long the episode lasted."""
    threshold: float
    """The threshold in force, seconds."""
    time: float
    """Monotonic time of the step."""


class ExecutionQualityEvent(msgspec.Struct, frozen=True):
    """Whether market data is good enough to trade on; published whenever ``ws_ok`` or
    ``reasons`` change (see :class:`hean.health.ExecutionQuality`)."""

    ws_ok: bool
    """Every required connection is LIVE and every required topic is fresh."""
    reasons: tuple[str, ...]
    """Why not (empty when ``ws_ok``); stable texts, one per problem."""
    ping_rtt: float | None
    """Worst last ping round-trip time over the connections, seconds."""
    lag: float | None
    """Worst last exchange-to-local lag over the required topics, seconds."""
    since: float
    """Monotonic time of this change."""


class ReconciledEvent(msgspec.Struct, frozen=True):
    """One account reconciliation run ended (see ``docs/account.md``).

    Every change it learned was published before this event as the normal typed event with
    ``reconciled=True``; the counts here say how many.
    """

    account: str
    """Label of the account (e.g. ``account``)."""
    trigger: str
    """What started the run: ``start``, ``gap``, ``manual``, ``timer``, ``retry`` (after a failed
    run) or ``recheck`` (orders the lagging order history did not show yet)."""
    ok: bool
    """The run completed; when ``False`` the account stays out of sync and ``error`` says why
    (another run is scheduled)."""
    error: str | None
    started: float
    """Monotonic time the run started."""
    duration: float
    """Seconds from start to end."""
    rest_calls: int
    """REST requests the run made (pages included)."""
    orders_changed: int
    """Orders whose state REST changed (new, filled, cancelled, amended while unseen)."""
    orders_closed: int
    """Of those, orders held as open that were found closed."""
    external_orders: int
    """Orders found that no local code placed."""
    executions_new: int
    """Executions learned from REST that the stream had not delivered."""
    positions_changed: int
    wallet_changed: bool
    buffered: int
    """Stream events held during the run and released after it (de-duplicated)."""
    gap_since_wall_ms: int | None
    """Start of the window the run covered (Unix ms), when it followed a gap."""


class AccountSyncEvent(msgspec.Struct, frozen=True):
    """The account view's trust changed: ``in_sync`` is ``False`` from a private gap (or before
    the first snapshot) until the reconciliation that follows completes."""

    account: str
    in_sync: bool
    reason: str
    """``gap``, ``start``, ``reconciled``, ``reconcile_failed``, ``stopped`` ..."""
    time: float


class BackfillEvent(msgspec.Struct, frozen=True):
    """What a public backfill after a reconnect recovered for ``topic``.

    ``complete`` is ``False`` when more was missed than the REST endpoint keeps (e.g. more than
    1,000 trades): ``missing_from_ms``..``missing_to_ms`` then bounds what is lost for good.
    """

    connection: str
    topic: str
    recovered: int
    """Trades (or confirmed klines) published with ``backfilled=True``."""
    duplicates: int
    """Fetched items already received live (dropped)."""
    complete: bool
    reason: str
    """``ok``, ``truncated`` (the endpoint's limit was reached), ``error: ...``."""
    gap_from_ms: int | None
    gap_to_ms: int | None
    missing_from_ms: int | None
    missing_to_ms: int | None
    rest_calls: int
    time: float
