"""Per-consumer delivery: the policy per stream kind, the per-connection dispatcher, replays.

The hot path
------------
Each hub connection publishes into its own :class:`Dispatcher` (it is the connection's
``EventSink``). For every data event the dispatcher does **one dict lookup** keyed by what the
event carries (a ticker's symbol, a book's topic, a trade's symbol, ...) and gets a tuple of the
interested consumers' delivery functions; each is the pre-resolved ``publisher`` of that
consumer's own :class:`~hean.core.bus.EventBus`, which runs the consumer's inline callbacks and
appends to its bounded queues. Consumers that did not ask for the topic are never looked at, so
the cost does not grow with the number of consumers in the process, only with the number that
want the event.

Isolation: a consumer's handler runs in its own task (async handlers) behind its own bounded
queue, so a slow or failing consumer costs the others nothing; its drops, conflations, errors and
alarms are counted per subscription (``Consumer.stats()``). Inline callbacks run in the reader
and must be quick; their exceptions are caught and counted too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from operator import attrgetter
from typing import Any, Protocol

from hean.core.bus import OverflowPolicy
from hean.core.events import EventType, OrderBookEvent, TickEvent
from hean.exchange.bybit.state.orderbook import OrderBook
from hean.exchange.bybit.state.tickers import TickerState

__all__ = [
    "CONFLATE_KEYS",
    "STREAM_POLICIES",
    "Deliver",
    "Dispatcher",
    "Receiver",
    "book_replay_event",
    "policy_for",
    "route_key",
    "tick_replay_event",
]

log = logging.getLogger("hean.hub")

Deliver = Callable[[Any], None]

_DATA_TYPES = frozenset(
    {
        EventType.TICK,
        EventType.ORDERBOOK,
        EventType.TRADE,
        EventType.KLINE,
        EventType.LIQUIDATION,
    }
)

STREAM_POLICIES: dict[EventType, OverflowPolicy] = {
    EventType.TICK: OverflowPolicy.CONFLATE,
    EventType.ORDERBOOK: OverflowPolicy.CONFLATE,
    EventType.TRADE: OverflowPolicy.DROP_OLDEST,
    EventType.KLINE: OverflowPolicy.DROP_OLDEST,
    EventType.LIQUIDATION: OverflowPolicy.DROP_OLDEST,
    EventType.SUBSCRIPTION: OverflowPolicy.NEVER_DROP,
    EventType.CONNECTION_STATE: OverflowPolicy.NEVER_DROP,
}
"""Default queue policy of an async consumer, per stream kind. Kinds not listed (private
account streams: orders, executions, positions, wallet) get ``NEVER_DROP`` with an alarm."""

CONFLATE_KEYS: dict[EventType, Callable[[Any], Hashable]] = {
    # The merged TickerState / OrderBook object is unique per topic (per connection): keying on
    # it conflates per topic without building a key per event.
    EventType.TICK: attrgetter("ticker"),
    EventType.ORDERBOOK: attrgetter("book"),
    EventType.TRADE: attrgetter("symbol"),
    EventType.KLINE: attrgetter("interval", "symbol"),
    EventType.LIQUIDATION: attrgetter("symbol"),
    EventType.SUBSCRIPTION: attrgetter("topic"),
    EventType.CONNECTION_STATE: attrgetter("connection"),
}
"""Key of the latest-value queue (``CONFLATE``) per stream kind: one entry per topic."""


def policy_for(event_type: EventType) -> OverflowPolicy:
    """The default policy for ``event_type`` (``NEVER_DROP`` for kinds not in the table)."""
    return STREAM_POLICIES.get(event_type, OverflowPolicy.NEVER_DROP)


def route_key(topic: str) -> tuple[EventType, Hashable] | None:
    """Which data events a topic produces, and the key the dispatcher finds them by.

    ``tickers.X`` -> ``(TICK, "X")``; ``orderbook.50.X`` -> ``(ORDERBOOK, "orderbook.50.X")``;
    ``publicTrade.X`` -> ``(TRADE, "X")``; ``kline.5.X`` -> ``(KLINE, ("5", "X"))``;
    ``allLiquidation.X`` / ``liquidation.X`` -> ``(LIQUIDATION, "X")``. ``None`` for topics
    that produce no data event.
    """
    kind, _, rest = topic.partition(".")
    if not rest:
        return None
    if kind == "tickers":
        return EventType.TICK, rest
    if kind == "orderbook":
        depth, _, symbol = rest.partition(".")
        if depth.isdigit() and symbol:
            return EventType.ORDERBOOK, topic
        return None
    if kind == "publicTrade":
        return EventType.TRADE, rest
    if kind == "kline":
        interval, _, symbol = rest.partition(".")
        if interval and symbol:
            return EventType.KLINE, (interval, symbol)
        return None
    if kind in ("allLiquidation", "liquidation"):
        return EventType.LIQUIDATION, rest
    return None


class Receiver(Protocol):
    """A consumer as the dispatcher sees it."""

    name: str

    def deliverer(self, event_type: EventType) -> Deliver:
        """The function that hands an event of ``event_type`` to this consumer."""
        ...


class Dispatcher:
    """One hub connection's event sink: routes every event to the consumers holding its topic.

    Args:
        name: the connection's name (for logs).
        forward: optional sink that also receives every event (e.g. the application's bus).
        on_control: called with ``(event_type, event)`` for ``SUBSCRIPTION`` and
            ``CONNECTION_STATE`` events (the hub routes those itself).
    """

    __slots__ = (
        "_forward",
        "_key_topics",
        "books",
        "events",
        "failures",
        "forward",
        "klines",
        "liquidations",
        "name",
        "on_control",
        "ticks",
        "topic_holders",
        "trades",
    )

    def __init__(
        self,
        name: str,
        forward: Any | None,
        on_control: Callable[[EventType, Any], None],
    ) -> None:
        self.name = name
        self.forward = forward
        self.on_control = on_control
        self.ticks: dict[Hashable, tuple[Deliver, ...]] = {}
        self.books: dict[Hashable, tuple[Deliver, ...]] = {}
        self.trades: dict[Hashable, tuple[Deliver, ...]] = {}
        self.klines: dict[Hashable, tuple[Deliver, ...]] = {}
        self.liquidations: dict[Hashable, tuple[Deliver, ...]] = {}
        self.topic_holders: dict[str, tuple[Receiver, ...]] = {}
        """Topic -> consumers holding it (for subscription events and replays)."""
        self._key_topics: dict[tuple[EventType, Hashable], set[str]] = {}
        self._forward: dict[EventType, Deliver | None] = {}
        self.failures = 0
        """Deliveries that raised (should stay 0: consumer buses never raise)."""
        self.events = 0
        """Control events seen (data events are not counted, to keep the hot path lean)."""

    # -- routes -------------------------------------------------------------------------------

    def _table(self, event_type: EventType) -> dict[Hashable, tuple[Deliver, ...]]:
        if event_type is EventType.TICK:
            return self.ticks
        if event_type is EventType.ORDERBOOK:
            return self.books
        if event_type is EventType.TRADE:
            return self.trades
        if event_type is EventType.KLINE:
            return self.klines
        return self.liquidations

    def set_holders(self, topic: str, holders: tuple[Receiver, ...]) -> None:
        """``holders`` now hold ``topic`` on this connection (empty: nobody)."""
        if holders:
            self.topic_holders[topic] = holders
        else:
            self.topic_holders.pop(topic, None)
        rk = route_key(topic)
        if rk is None:
            return
        event_type, key = rk
        topics = self._key_topics.setdefault(rk, set())
        if holders:
            topics.add(topic)
        else:
            topics.discard(topic)
        receivers: dict[int, Receiver] = {}
        for t in sorted(topics):  # several topics can share a key (liquidation forms)
            for r in self.topic_holders.get(t, ()):
                receivers.setdefault(id(r), r)
        table = self._table(event_type)
        if receivers:
            table[key] = tuple(r.deliverer(event_type) for r in receivers.values())
        else:
            table.pop(key, None)
            self._key_topics.pop(rk, None)

    def holders_of(self, topic: str) -> tuple[Receiver, ...]:
        return self.topic_holders.get(topic, ())

    def all_holders(self) -> list[Receiver]:
        """Every consumer holding at least one topic on this connection."""
        seen: dict[int, Receiver] = {}
        for holders in self.topic_holders.values():
            for r in holders:
                seen.setdefault(id(r), r)
        return list(seen.values())

    # -- EventSink ----------------------------------------------------------------------------

    def publisher(self, event_type: EventType) -> Deliver:
        """The hot-path entry for ``event_type`` (resolved once by the connection)."""
        fwd = self._forwarder(event_type)
        if event_type is EventType.TICK:
            return self._make(self.ticks, attrgetter("symbol"), fwd, tick=True)
        if event_type is EventType.ORDERBOOK:
            return self._make(self.books, attrgetter("topic"), fwd)
        if event_type is EventType.TRADE:
            return self._make(self.trades, attrgetter("symbol"), fwd)
        if event_type is EventType.KLINE:
            return self._make(self.klines, attrgetter("interval", "symbol"), fwd)
        if event_type is EventType.LIQUIDATION:
            return self._make(self.liquidations, attrgetter("symbol"), fwd)

        def control(event: Any) -> None:
            self._control(event_type, event)

        return control

    def publish(self, event_type: EventType, event: Any) -> None:
        if event_type in _DATA_TYPES:
            self.publisher(event_type)(event)
        else:
            self._control(event_type, event)

    def _control(self, event_type: EventType, event: Any) -> None:
        # Subscription answers, connection states, and kinds without a data route: the hub
        # decides who gets them.
        self.events += 1
        self.on_control(event_type, event)
        fwd = self._forwarder(event_type)
        if fwd is not None:
            fwd(event)

    def _forwarder(self, event_type: EventType) -> Deliver | None:
        if event_type not in self._forward:
            forward = self.forward
            fwd: Deliver | None = None
            if forward is not None:
                publisher = getattr(forward, "publisher", None)
                if publisher is not None:
                    fwd = publisher(event_type)
                else:
                    publish = forward.publish

                    def fwd(event: Any, _t: EventType = event_type) -> None:
                        publish(_t, event)

            self._forward[event_type] = fwd
        return self._forward[event_type]

    def _make(
        self,
        table: dict[Hashable, tuple[Deliver, ...]],
        key: Callable[[Any], Hashable],
        fwd: Deliver | None,
        *,
        tick: bool = False,
    ) -> Deliver:
        get = table.get
        failed = self._failed
        if tick:
            # The busiest stream: read the attribute directly instead of through attrgetter.
            def dispatch_tick(event: Any) -> None:
                delivers = get(event.symbol)
                if delivers is not None:
                    for deliver in delivers:
                        try:
                            deliver(event)
                        except Exception as exc:
                            failed(deliver, exc)
                if fwd is not None:
                    fwd(event)

            return dispatch_tick

        def dispatch(event: Any) -> None:
            delivers = get(key(event))
            if delivers is not None:
                for deliver in delivers:
                    try:
                        deliver(event)
                    except Exception as exc:
                        failed(deliver, exc)
            if fwd is not None:
                fwd(event)

        return dispatch

    def _failed(self, deliver: Deliver, exc: Exception) -> None:
        self.failures += 1
        if self.failures <= 10 or self.failures % 1000 == 0:
            log.error(
                "%s: delivering to %r raised %s: %s (failures=%d)",
                self.name,
                deliver,
                type(exc).__name__,
                exc,
                self.failures,
            )


# -- replays for late joiners ---------------------------------------------------------------


def tick_replay_event(state: TickerState, wall_offset: float) -> TickEvent | None:
    """A ``TickEvent`` carrying the cached merged ticker, as a snapshot (``None`` if there is no
    complete state to give: no snapshot since the last (re)subscribe)."""
    if not state.has_snapshot or state.updated_at is None:
        return None
    return TickEvent(
        state.symbol,
        state.category,
        state.last_price,
        state.bid,
        state.ask,
        state.exchange_ts,
        state.updated_at,
        int((state.updated_at + wall_offset) * 1000.0),
        True,
        state,
    )


def book_replay_event(book: OrderBook, wall_offset: float) -> OrderBookEvent | None:
    """An ``OrderBookEvent`` carrying the whole cached book as a snapshot (``None`` unless the
    book is valid: an invalid book is being resynced and its snapshot will follow)."""
    if not book.valid or book.recv_time is None:
        return None
    return OrderBookEvent(
        book.symbol,
        book.category,
        book.topic,
        book.depth,
        True,
        [[p, s] for p, s in book.bids()],
        [[p, s] for p, s in book.asks()],
        book.u,
        book.seq,
        book.exchange_ts if book.exchange_ts is not None else 0,
        book.cts,
        book.recv_time,
        int((book.recv_time + wall_offset) * 1000.0),
        True,
        book.best_bid,
        book.best_ask,
        book,
    )
