"""``BybitPublicWebSocket``: one public Bybit V5 connection with merged tickers.

Usage::

    bus = EventBus()
    await bus.start()
    ws = BybitPublicWebSocket(bus, category="linear", testnet=True)
    bus.subscribe(EventType.TICK, on_tick)
    await ws.connect()
    await ws.subscribe_tickers(["BTCUSDT", "ETHUSDT"])
    ...
    ws.ticker("BTCUSDT")      # the merged state
    ws.stats                  # state, reconnects, messages, last-message age, ping RTT
    await ws.disconnect()

The connection pings every ``ping_interval`` seconds and declares the link dead when a pong is
``pong_timeout`` late; it then reconnects with jittered backoff (and a circuit breaker) and
resubscribes every topic. ``disconnect()`` always wins over a pending reconnect.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hean.core.clock import Clock, SystemClock, wall_offset
from hean.core.events import EventType
from hean.core.lifecycle import ConnectionState
from hean.exchange.bybit.backfill import PublicBackfill
from hean.exchange.bybit.endpoints import max_args_per_request, public_url, validate_category
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.protocol.codec import Frame
from hean.exchange.bybit.protocol.heartbeat import HeartbeatPolicy
from hean.exchange.bybit.protocol.session import Session, SessionConfig
from hean.exchange.bybit.state.orderbook import OrderBook, OrderBookCache, book_event
from hean.exchange.bybit.state.public import kline_event, liquidation_event, trade_event
from hean.exchange.bybit.state.repair import RepairSchedule
from hean.exchange.bybit.state.tickers import TickerCache, TickerState
from hean.exchange.bybit.transport import DEFAULT_MAX_MESSAGE, WsConnection

log = logging.getLogger("hean.public")

__all__ = [
    "BOOK_DEPTHS",
    "KLINE_INTERVALS",
    "BybitPublicWebSocket",
    "ConnectError",
    "ConnectionStats",
    "EventSink",
    "connection_stats",
]

BOOK_DEPTHS: dict[str, tuple[int, ...]] = {
    "linear": (1, 50, 200, 1000),
    "inverse": (1, 50, 200, 1000),
    "spot": (1, 50, 200, 1000),
    "option": (25, 100),
}
"""Order book depths Bybit offers per category (protocol.md §5.2)."""

KLINE_INTERVALS: tuple[str, ...] = (
    "1",
    "3",
    "5",
    "15",
    "30",
    "60",
    "120",
    "240",
    "360",
    "720",
    "D",
    "W",
    "M",
)
"""Kline intervals (minutes, then day / week / month)."""

BOOK_RESYNC_INTERVAL = 1.0
"""Minimum seconds between two resubscribes of the same topic under repair (an invalid order
book, a ticker without its snapshot)."""

BOOK_REPAIR_TIMEOUT = 5.0
"""Seconds a resubscribe of a topic under repair may take to bring its snapshot before it is
sent again (the snapshot can be lost while the ack and the deltas arrive); doubles per attempt."""

BOOK_REPAIR_MAX = 30.0
"""Upper bound of the (doubling) wait between two resubscribes of a topic still unrepaired."""


class EventSink(Protocol):
    """Anything with ``publish(event_type, event)``, e.g. :class:`hean.EventBus`."""

    def publish(self, event_type: EventType, event: Any) -> None: ...


class ConnectError(ConnectionError):
    """The connection could not be made live within the time allowed."""


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """A snapshot of one connection's health."""

    name: str
    url: str
    state: ConnectionState
    connects: int
    reconnects: int
    messages: int
    data_messages: int
    decode_errors: int
    data_errors: int
    unexpected_topics: int
    last_message_age: float | None
    """Seconds since the last frame of any kind (``None`` before the first)."""
    ping_rtt: float | None
    """Last JSON ping round-trip time in seconds."""
    pings_sent: int
    pongs_received: int
    uptime: float | None
    """Seconds the current connection has been live."""
    last_disconnect_reason: str
    disconnect_reasons: dict[str, int] = field(default_factory=dict)
    breaker_state: str = "closed"
    topics: dict[str, str] = field(default_factory=dict)
    """Every wanted topic and its status (pending / confirmed / rejected)."""


def connection_stats(
    session: Session, name: str, url: str, now: float, unexpected_topics: int
) -> ConnectionStats:
    """A :class:`ConnectionStats` snapshot of ``session`` at monotonic time ``now``."""
    s = session.stats
    hb = session.heartbeat
    return ConnectionStats(
        name=name,
        url=url,
        state=session.state,
        connects=s.connects,
        reconnects=s.reconnects,
        messages=s.messages,
        data_messages=s.messages - s.control_messages,
        decode_errors=s.decode_errors,
        data_errors=s.data_errors,
        unexpected_topics=unexpected_topics,
        last_message_age=None if s.last_message_at is None else now - s.last_message_at,
        ping_rtt=hb.rtt,
        pings_sent=hb.pings_sent,
        pongs_received=hb.pongs_received,
        uptime=None if s.live_since is None else now - s.live_since,
        last_disconnect_reason=s.last_disconnect_reason,
        disconnect_reasons=dict(s.disconnect_reasons),
        breaker_state=session.breaker.state.value,
        topics={t: st.value for t, st in session.subscriptions.topics.items()},
    )


class BybitPublicWebSocket:
    """A public market-data connection (spot, linear, inverse or option).

    Args:
        bus: where events go (``TICK``, ``CONNECTION_STATE``, ``SUBSCRIPTION``).
        category: ``spot``, ``linear``, ``inverse`` or ``option``.
        testnet: use the testnet host (ignored when ``url`` is given).
        url: any endpoint URL (mainnet, regional hosts, the emulator).
        clock: time source (inject a fake in tests).
        ping_interval: seconds between JSON pings (Bybit recommends 20).
        pong_timeout: seconds a pong may be late before the link is declared dead.
        backoff: reconnect timing and circuit breaker settings.
        connect_timeout: seconds for the whole opening handshake.
        ack_timeout: seconds a subscribe may wait for its ack before a TIMEOUT event.
        max_message_size: largest accepted message in bytes.
        ssl_context: TLS settings for ``wss://`` (always verifying; pass one with your own CA).
        name: label for logs/events/metrics (default ``public/<category>``).
        rng: random source for jitter.
        book_resync_interval: minimum seconds between two resubscribes of one topic under
            repair (an invalid order book, a linear/inverse ticker whose deltas arrive without
            a snapshot).
        book_repair_timeout: seconds such a resubscribe may take to bring a snapshot before it
            is sent again (doubling per attempt up to ``book_repair_max``): a book or ticker is
            always either valid or being repaired (see :mod:`~hean.exchange.bybit.state.repair`).
        book_repair_max: upper bound of that wait.
        connect_gate: awaited before every connection attempt (e.g. the hub's process-wide
            connection rate limit); see :class:`~hean.exchange.bybit.transport.WsConnection`.
        field_times: keep the time each ticker field last changed: ``True`` (every field, the
            default), ``False`` (none), or the names of the fields to track (what a per-field
            staleness policy watches). Each tracked field a delta carries costs a dict store.
        rest: a :class:`~hean.exchange.bybit.rest.BybitRestClient`: after every reconnect the
            trades and closed candles missed while down are fetched over REST and published
            with ``backfilled=True``, then a :class:`~hean.core.events.BackfillEvent` says what
            was recovered (see :mod:`hean.exchange.bybit.backfill`). With it, the connection
            also publishes a :class:`~hean.core.events.GapEvent` per topic after a reconnect.
    """

    def __init__(
        self,
        bus: EventSink,
        category: str = "linear",
        *,
        testnet: bool = True,
        url: str | None = None,
        clock: Clock | None = None,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        backoff: BackoffPolicy | None = None,
        connect_timeout: float = 10.0,
        ack_timeout: float = 10.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE,
        ssl_context: ssl.SSLContext | None = None,
        name: str | None = None,
        rng: random.Random | None = None,
        book_resync_interval: float = BOOK_RESYNC_INTERVAL,
        book_repair_timeout: float = BOOK_REPAIR_TIMEOUT,
        book_repair_max: float = BOOK_REPAIR_MAX,
        connect_gate: Callable[[], Awaitable[None]] | None = None,
        field_times: bool | Iterable[str] = True,
        rest: Any | None = None,
    ) -> None:
        self.category = validate_category(category)
        self.url = url if url is not None else public_url(category, testnet=testnet)
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must start with ws:// or wss://, got {self.url!r}")
        self.bus = bus
        self.clock: Clock = clock if clock is not None else SystemClock()
        config = SessionConfig(
            name=name or f"public/{category}",
            url=self.url,
            heartbeat=HeartbeatPolicy(ping_interval, pong_timeout),
            backoff=backoff if backoff is not None else BackoffPolicy(),
            ack_timeout=ack_timeout,
            max_args_per_request=max_args_per_request(category),
            report_gaps=rest is not None,
        )
        self.session = Session(config, self._on_data, rng=rng, wall_ms=self._wall_ms)
        self.connection = WsConnection(
            self.session,
            self._publish_control,
            self.clock,
            connect_timeout=connect_timeout,
            max_message_size=max_message_size,
            ssl_context=ssl_context,
            connect_gate=connect_gate,
        )
        self.unexpected_topics = 0
        self._publish = bus.publish
        self._publish_tick = self._publisher(EventType.TICK)
        track: Iterable[str] | None = (
            None if field_times is True else () if field_times is False else field_times
        )
        self.tickers = TickerCache(
            category, self._publish_tick, self._ticker_incomplete, track, self._ticker_repaired
        )
        self.books = OrderBookCache(category)
        self._publish_book = self._publisher(EventType.ORDERBOOK)
        self._publish_trade = self._publisher(EventType.TRADE)
        self._publish_kline = self._publisher(EventType.KLINE)
        self._publish_liquidation = self._publisher(EventType.LIQUIDATION)
        self.backfill: PublicBackfill | None = None
        """Trade/kline backfill after reconnects (when ``rest`` was given)."""
        if rest is not None:
            self.backfill = PublicBackfill(rest, self.category, bus.publish, self.clock, self.name)
        self.repairs = RepairSchedule(
            book_resync_interval, book_repair_timeout, max(book_repair_max, book_repair_timeout)
        )
        """Topics being resubscribed until valid (bounded, rate-limited retries): invalid books
        and tickers whose deltas arrive without a snapshot. One schedule for both."""
        self.book_resyncs = 0
        """Resubscribes of invalid order books."""
        self.ticker_resyncs = 0
        """Resubscribes of tickers without a snapshot."""
        self.session.timers.append(_RepairTimer(self))
        self._live = asyncio.Event()

    @property
    def name(self) -> str:
        return self.session.config.name

    @property
    def state(self) -> ConnectionState:
        return self.session.state

    # -- lifecycle --------------------------------------------------------------------------

    async def connect(self, timeout: float | None = None) -> None:
        """Connect and wait until live.

        Args:
            timeout: give up after this many seconds: the connection is stopped and
                :class:`ConnectError` raised with the last failure reason. ``None`` waits (and
                keeps retrying with backoff) for as long as it takes.
        """
        self._sync_wall_clock()
        self.connection.start()
        try:
            await asyncio.wait_for(self._live.wait(), timeout)
        except TimeoutError:
            reason = self.session.stats.last_disconnect_reason or "no answer"
            attempts = self.session.stats.reconnects + 1
            await self.disconnect()
            raise ConnectError(
                f"could not connect to {self.url} within {timeout:g}s "
                f"({attempts} attempt(s), last failure: {reason})"
            ) from None

    async def disconnect(self) -> None:
        """Close the connection for good (wins over any pending reconnect)."""
        await self.connection.stop()
        self._live.clear()
        if self.backfill is not None:
            await self.backfill.close()

    async def __aenter__(self) -> BybitPublicWebSocket:
        """``async with client:`` connects (waiting until live, retrying with backoff; bound
        it with ``asyncio.timeout`` if needed) and disconnects on the way out, whatever
        happened inside."""
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    def recycle(self, reason: str = "recycled") -> None:
        """Drop the live connection now and reconnect through the normal backoff.

        Every topic is resubscribed on the new connection (books and tickers get fresh
        snapshots). ``reason`` becomes the disconnect reason in events, stats and metrics. Does
        nothing unless the connection is live.
        """
        self.connection.run_actions(self.session.drop(reason, self.clock.monotonic()))

    async def wait_live(self, timeout: float | None = None) -> None:
        """Wait until the connection is live (raises ``TimeoutError``)."""
        await asyncio.wait_for(self._live.wait(), timeout)

    # -- subscriptions ----------------------------------------------------------------------

    async def subscribe_tickers(self, symbols: Iterable[str]) -> None:
        """Subscribe ``tickers.<symbol>`` for each symbol (resubscribed after every reconnect)."""
        self.subscribe([f"tickers.{s}" for s in _symbols(symbols)])

    async def unsubscribe_tickers(self, symbols: Iterable[str]) -> None:
        self.unsubscribe([f"tickers.{s}" for s in _symbols(symbols)])

    async def subscribe_orderbook(self, symbols: Iterable[str], depth: int = 50) -> None:
        """Subscribe ``orderbook.<depth>.<symbol>``; read books with :meth:`orderbook`.

        Raises:
            ValueError: Bybit offers no such depth for this category.
        """
        allowed = BOOK_DEPTHS[self.category]
        if depth not in allowed:
            raise ValueError(
                f"order book depth {depth!r} is not offered for {self.category}: "
                f"choose one of {', '.join(map(str, allowed))}"
            )
        self.subscribe([f"orderbook.{depth}.{s}" for s in _symbols(symbols)])

    async def unsubscribe_orderbook(self, symbols: Iterable[str], depth: int = 50) -> None:
        self.unsubscribe([f"orderbook.{depth}.{s}" for s in _symbols(symbols)])

    async def subscribe_trades(self, symbols: Iterable[str]) -> None:
        """Subscribe ``publicTrade.<symbol>`` (options: the base coin, e.g. ``BTC``)."""
        self.subscribe([f"publicTrade.{s}" for s in _symbols(symbols)])

    async def subscribe_klines(self, symbols: Iterable[str], interval: str | int = "1") -> None:
        """Subscribe ``kline.<interval>.<symbol>``; events carry ``confirm`` (candle closed)."""
        interval = str(interval)
        if interval not in KLINE_INTERVALS:
            raise ValueError(
                f"kline interval {interval!r} is not offered: choose one of "
                f"{', '.join(KLINE_INTERVALS)}"
            )
        if self.category == "option":
            raise ValueError("Bybit offers no kline stream on the option endpoint")
        self.subscribe([f"kline.{interval}.{s}" for s in _symbols(symbols)])

    async def subscribe_liquidations(self, symbols: Iterable[str]) -> None:
        """Subscribe ``allLiquidation.<symbol>`` (linear and inverse contracts only)."""
        if self.category not in ("linear", "inverse"):
            raise ValueError(
                f"Bybit publishes liquidations for linear and inverse contracts, "
                f"not {self.category}"
            )
        self.subscribe([f"allLiquidation.{s}" for s in _symbols(symbols)])

    def subscribe(self, topics: Iterable[str]) -> None:
        """Subscribe raw topics (sent now if live, otherwise on connect)."""
        self.connection.run_actions(self.session.subscribe(list(topics), self.clock.monotonic()))

    def unsubscribe(self, topics: Iterable[str]) -> None:
        """Stop wanting raw topics. A dropped book is forgotten; a dropped ticker keeps its
        fields but is marked incomplete until the next snapshot (no stale replay)."""
        wanted = list(topics)
        self.connection.run_actions(self.session.unsubscribe(wanted, self.clock.monotonic()))
        for topic in wanted:
            if topic.startswith("orderbook."):
                self.books.remove(topic)
                self.repairs.forget(topic)
            elif topic.startswith("tickers."):
                self.tickers.reset(topic)
                self.repairs.forget(topic)

    async def wait_subscribed(self, topics: Iterable[str], timeout: float = 10.0) -> dict[str, str]:
        """Wait until each topic is confirmed or rejected; returns topic -> status."""
        wanted = list(topics)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            statuses = {t: str(self.session.subscriptions.status(t)) for t in wanted}
            if all(s in ("confirmed", "rejected") for s in statuses.values()):
                return statuses
            if loop.time() >= deadline:
                raise TimeoutError(f"subscriptions not answered within {timeout:g}s: {statuses}")
            await asyncio.sleep(0.01)

    # -- state ------------------------------------------------------------------------------

    def ticker(self, symbol: str) -> TickerState | None:
        """The merged ticker of ``symbol`` (``None`` before its first message)."""
        return self.tickers.get(symbol)

    def orderbook(self, symbol: str, depth: int | None = None) -> OrderBook | None:
        """The order book of ``symbol`` (the deepest subscribed when ``depth`` is ``None``).

        Check ``book.valid``: an invalid book (gap, crossed, awaiting snapshot) is being resynced
        and must not be trusted.
        """
        return self.books.get(symbol, depth)

    @property
    def stats(self) -> ConnectionStats:
        return connection_stats(
            self.session, self.name, self.url, self.clock.monotonic(), self.unexpected_topics
        )

    # -- internals --------------------------------------------------------------------------

    def _sync_wall_clock(self) -> None:
        # Wall time is derived from the monotonic reading of each socket read plus this offset,
        # so the hot path makes no extra clock call. Refreshed on every state change.
        self.tickers.wall_offset = wall_offset(self.clock)  # to the clock's precision

    def _publish_control(self, event_type: EventType, event: Any) -> None:
        if event_type is EventType.CONNECTION_STATE:
            self._sync_wall_clock()
            if event.new is ConnectionState.LIVE:
                self.tickers.reset_all()
                self.books.reset_all()
                self.repairs.clear()
                self._live.set()
            else:
                self._live.clear()
        self._publish(event_type, event)
        if event_type is EventType.GAP and self.backfill is not None:
            self.backfill.on_gap(event)

    def _publisher(self, event_type: EventType) -> Callable[[Any], None]:
        publisher = getattr(self.bus, "publisher", None)
        if publisher is not None:
            return publisher(event_type)  # type: ignore[no-any-return]
        return functools.partial(self.bus.publish, event_type)

    def _wall_ms(self, now: float) -> int:
        return int((now + self.tickers.wall_offset) * 1000.0)

    def _on_data(self, frame: Frame, now: float) -> None:
        """Frames for topics without a registered route: route them, or count and drop."""
        topic: str = frame.topic  # type: ignore[assignment]  # data frames have a topic
        handler = self._handler_for(topic)
        if handler is None:
            self.unexpected_topics += 1
            return
        self.session.routes[topic] = handler
        handler(frame, now)

    def _handler_for(self, topic: str) -> Callable[[Frame, float], object] | None:
        if topic not in self.session.subscriptions.topics:
            return None
        kind = topic.split(".", 1)[0]
        if kind == "tickers":
            return self.tickers.apply
        if kind == "orderbook" and topic.split(".")[1].isdigit():
            return self._on_book
        seen = self.backfill is not None
        return {
            "publicTrade": self._on_trade_seen if seen else self._on_trade,
            "kline": self._on_kline_seen if seen else self._on_kline,
            "allLiquidation": self._on_liquidation,
            "liquidation": self._on_liquidation,
        }.get(kind)

    def _ticker_incomplete(self, topic: str, now: float) -> None:
        """A ticker delta before any snapshot (the snapshot was lost, or never sent): repair
        the topic like an invalid book, resubscribing until a snapshot comes."""
        self._repair(topic, "ticker delta before snapshot", now)

    def _ticker_repaired(self, topic: str, now: float) -> None:
        self._repaired(topic, "ticker", now)

    def _repair(self, topic: str, reason: str, now: float) -> None:
        """Put ``topic`` under repair: resubscribe it (only it) now, or when the schedule
        allows (at most once per ``book_resync_interval``), and again while it stays invalid
        (the timer sends those even when no frame arrives)."""
        if self.repairs.invalid(topic, reason, now):
            self._send_resync(topic, reason, now)
        else:
            self.connection.run_actions([])  # wake the driver: a deadline was added

    def _repaired(self, topic: str, what: str, now: float) -> None:
        repair = self.repairs.valid(topic)
        if repair is not None and repair.attempts > 1:
            log.info(
                "%s: %s %s valid again after %.2fs (%d resubscribes)",
                self.name,
                what,
                topic,
                now - repair.since,
                repair.attempts,
            )

    def _on_book(self, frame: Frame, now: float) -> None:
        book = self.books.apply(frame, now)
        if not book.valid:
            self._book_invalid(book, now)
        elif self.repairs.repairs and book.topic in self.repairs.repairs:
            self._repaired(book.topic, "order book", now)
        self._publish_book(book_event(book, frame, self._wall_ms(now)))

    def _book_invalid(self, book: OrderBook, now: float) -> None:
        """Repair an invalid book (once per invalid run; the schedule does the rest)."""
        if not book.needs_resync:
            return
        book.needs_resync = False
        self._repair(book.topic, book.invalid_reason or "invalid book", now)

    def _send_resync(self, topic: str, reason: str, now: float) -> None:
        if topic.startswith("tickers."):
            self.ticker_resyncs += 1
            log.warning("%s: ticker %s incomplete (%s): resubscribing", self.name, topic, reason)
        else:
            self.book_resyncs += 1
            log.warning("%s: order book %s invalid (%s): resubscribing", self.name, topic, reason)
        self.connection.run_actions(self.session.resync(topic, reason, now))

    def _repair_due(self, now: float) -> None:
        for topic, repair in self.repairs.due(now):
            if topic.startswith("tickers."):
                ticker = self.tickers.by_topic.get(topic)
                if ticker is None or ticker.has_snapshot:
                    self.repairs.valid(topic)
                    continue
                reason = repair.reason
                still = "still without a snapshot"
            else:
                book = self.books.by_topic.get(topic)
                if book is None or book.valid:
                    self.repairs.valid(topic)
                    continue
                reason = book.invalid_reason or repair.reason
                still = "still invalid"
            if repair.attempts > 1:
                reason = f"{reason}; {still} after {now - repair.since:.2f}s"
            self._send_resync(topic, reason, now)

    def _on_trade(self, frame: Frame, now: float) -> None:
        self._publish_trade(trade_event(frame, self.category, now, self._wall_ms(now)))

    def _on_kline(self, frame: Frame, now: float) -> None:
        self._publish_kline(kline_event(frame, self.category, now, self._wall_ms(now)))

    # with backfill (``rest=``): the same, and the backfill remembers what arrived live

    def _on_trade_seen(self, frame: Frame, now: float) -> None:
        event = trade_event(frame, self.category, now, self._wall_ms(now))
        self.backfill.trades.observe(frame.topic, event.trades)  # type: ignore[union-attr, arg-type]
        self._publish_trade(event)

    def _on_kline_seen(self, frame: Frame, now: float) -> None:
        event = kline_event(frame, self.category, now, self._wall_ms(now))
        self.backfill.klines.observe(frame.topic, event.klines)  # type: ignore[union-attr, arg-type]
        self._publish_kline(event)

    def _on_liquidation(self, frame: Frame, now: float) -> None:
        self._publish_liquidation(liquidation_event(frame, self.category, now, self._wall_ms(now)))


class _RepairTimer:
    """The repair schedule's deadlines, honoured by the connection's driver."""

    __slots__ = ("_ws",)

    def __init__(self, ws: BybitPublicWebSocket) -> None:
        self._ws = ws

    def next_deadline(self) -> float | None:
        return self._ws.repairs.next_deadline()

    def tick(self, now: float) -> None:
        deadline = self._ws.repairs.next_deadline()
        if deadline is not None and now >= deadline:
            self._ws._repair_due(now)


def _symbols(symbols: Iterable[str]) -> list[str]:
    if isinstance(symbols, str):
        symbols = [symbols]
    out = []
    for symbol in symbols:
        symbol = symbol.strip()
        if not symbol:
            raise ValueError("empty symbol")
        out.append(symbol)
    return out
