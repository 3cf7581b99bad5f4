"""Typed events that flow through the :class:`~hean.core.bus.EventBus`.

Events are immutable :class:`msgspec.Struct` objects: cheap to create (one allocation, no
``__dict__``) and safe to hand to many subscribers at once. Large state (a merged ticker, a book)
is *referenced*, never copied, so an event is the same size whatever it points at.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from hean.core.lifecycle import ConnectionState

__all__ = [
    "ConnectionStateEvent",
    "EventType",
    "SubscriptionEvent",
    "SubscriptionStatus",
    "TickEvent",
]


class EventType(enum.StrEnum):
    """The kinds of event published on the bus."""

    TICK = "tick"
    """A ticker message was merged: :class:`TickEvent`."""
    CONNECTION_STATE = "connection_state"
    """A connection changed lifecycle state: :class:`ConnectionStateEvent`."""
    SUBSCRIPTION = "subscription"
    """A topic was confirmed, rejected, timed out or removed: :class:`SubscriptionEvent`."""


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
