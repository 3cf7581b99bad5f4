"""``RemoteHub``: the hub's consumer API, fed from a gateway's Redis streams instead of sockets.

::

    hub = RemoteHub("redis://gw-host:6379/0", bus)     # was: StreamHub(bus, host=...)
    strategy = hub.consumer("strategy")                 # the same Consumer class as the hub's
    strategy.on(EventType.TICK, on_tick)
    await strategy.subscribe_tickers(["BTCUSDT"])
    feed = PriceFeed(hub)                               # unchanged (both are MarketDataHubs)
    health = HealthMonitor(bus, discover=hub.connections)
    ...
    await hub.close()

One Redis connection per process reads every stream its consumers want in one blocking
``XREAD`` (packed by hand, the keys once per set of streams, and parsed by hiredis with no
per-entry conversion: :mod:`hean.gateway.resp`). Each entry passes the
:class:`~hean.remote.core.StreamTracker` of its stream (sequence, holes, duplicates, gateway
restarts) and is then applied to the hub's own ticker and book caches (the exchange layer's
``TickerCache`` / ``OrderBookCache``, so merging and ``u`` checks are the same code) and
dispatched to the consumers holding the topic, and to ``bus``.

A joiner reads the stream's snapshot key (the latest snapshot entry and its id) and continues
from that id: the current ticker and a valid book at once. A hole (a trimmed history, a deleted
entry, a gateway restart, a ``u`` gap) makes the book invalid, is logged and announced to the
topic's holders as a ``SubscriptionEvent`` with status ``RESYNC``, and the state is rebuilt from
the latest snapshot (the reader rewinds to it).

The health layer sees one "connection" per category (:class:`RemoteLink`): LIVE while Redis
answers, the gateway's heartbeat is fresh and the gateway's own exchange connections of that
category are live; anything else makes every price on it stale at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import msgspec

from hean.core.bus import EventBus
from hean.core.clock import Clock, SystemClock, wall_offset
from hean.core.events import (
    ConnectionStateEvent,
    EventType,
    KlineEvent,
    LiquidationEvent,
    SubscriptionEvent,
    SubscriptionStatus,
    TradeEvent,
)
from hean.core.lifecycle import ConnectionState
from hean.exchange.bybit.endpoints import validate_category
from hean.exchange.bybit.protocol.backoff import BreakerState
from hean.exchange.bybit.protocol.codec import Frame
from hean.exchange.bybit.protocol.session import SessionStats
from hean.exchange.bybit.protocol.subscriptions import TopicStatus
from hean.exchange.bybit.state.orderbook import OrderBook, OrderBookCache, book_event
from hean.exchange.bybit.state.tickers import TickerCache, TickerState
from hean.gateway import resp
from hean.gateway.gateway import backoff_delay
from hean.gateway.redis_target import RedisTarget
from hean.gateway.wire import (
    BOOK_INVALID,
    BOOK_SNAPSHOT,
    BookEntry,
    CtlEntry,
    KlineEntry,
    Layout,
    LiqEntry,
    SnapRef,
    TickEntry,
    TradeEntry,
    parse_id,
)
from hean.hub.delivery import Dispatcher, book_replay_event, tick_replay_event
from hean.hub.hub import Consumer
from hean.hub.protocols import MarketDataHub
from hean.hub.refs import TopicRefs
from hean.remote.core import StreamTracker, Verdict

__all__ = ["RemoteHub", "RemoteHubStats", "RemoteLink"]

log = logging.getLogger("hean.remote")

_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    "tick": msgspec.msgpack.Decoder(TickEntry),
    "book": msgspec.msgpack.Decoder(BookEntry),
    "trade": msgspec.msgpack.Decoder(TradeEntry),
    "kline": msgspec.msgpack.Decoder(KlineEntry),
    "liq": msgspec.msgpack.Decoder(LiqEntry),
    "ctl": msgspec.msgpack.Decoder(CtlEntry),
}
_snapref = msgspec.msgpack.Decoder(SnapRef).decode


def _kind(topic: str) -> str | None:
    head = topic.partition(".")[0]
    return {
        "tickers": "tick",
        "orderbook": "book",
        "publicTrade": "trade",
        "kline": "kline",
        "allLiquidation": "liq",
    }.get(head)


class _Heartbeat:
    __slots__ = ("pongs_received", "rtt")

    def __init__(self) -> None:
        self.rtt: float | None = None
        self.pongs_received = 0


class _Breaker:
    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = BreakerState.CLOSED


class _Subscriptions:
    __slots__ = ("topics",)

    def __init__(self) -> None:
        self.topics: dict[str, TopicStatus] = {}

    def status(self, topic: str) -> TopicStatus | None:
        return self.topics.get(topic)


class _LinkSession:
    """What the health layer and ``PriceFeed`` read of a connection's session."""

    def __init__(self, link: RemoteLink) -> None:
        self._link = link
        self.state = ConnectionState.IDLE
        self.stats = SessionStats()
        self.subscriptions = _Subscriptions()
        self.heartbeat = _Heartbeat()
        self.breaker = _Breaker()

    def resync(self, topic: str, reason: str, now: float) -> list[Any]:
        """The health layer asks for a fresh snapshot of a stale topic: rebuild it from the
        gateway's latest snapshot (nothing is sent to any exchange)."""
        self._link.hub._request_resync(self._link.category, topic, f"health: {reason}")
        return []


class RemoteLink:
    """One category's data as the health layer sees it: a "connection" that is LIVE while Redis
    answers, the gateway's heartbeat is fresh and its exchange connections of the category are
    live."""

    def __init__(self, hub: RemoteHub, category: str) -> None:
        self.hub = hub
        self.category = category
        self.name = f"remote/{category}"
        self.url = str(hub.target)
        self.session = _LinkSession(self)
        self.book_resyncs = 0

    @property
    def state(self) -> ConnectionState:
        return self.session.state

    @property
    def connection(self) -> RemoteLink:
        return self

    def run_actions(self, actions: list[Any]) -> None:
        """Nothing to run: there is no socket to the exchange here."""

    def recycle(self, reason: str = "recycle") -> None:
        """Drop the Redis connection; every stream rejoins from its snapshot."""
        self.hub._recycle(reason)

    def __repr__(self) -> str:
        return f"<RemoteLink {self.name} {self.state.value}>"


class _Endpoint:
    """Everything of one category: topic holders, caches, the link."""

    def __init__(self, hub: RemoteHub, category: str) -> None:
        self.category = category
        self.refs: TopicRefs[Consumer] = TopicRefs(0.0)
        self.link = RemoteLink(hub, category)

        def on_control(event_type: EventType, event: Any) -> None:
            hub._on_control(self, event_type, event)

        self.dispatcher = Dispatcher(self.link.name, hub.bus, on_control)
        self.tickers = TickerCache(category, publish=self.dispatcher.publisher(EventType.TICK))
        self.tickers.wall_offset = hub._wall_offset
        self.tickers.on_resync = lambda topic, now: None  # holes are handled by the tracker
        self.books = OrderBookCache(category)
        self.publish_book = self.dispatcher.publisher(EventType.ORDERBOOK)
        self.publish_trade = self.dispatcher.publisher(EventType.TRADE)
        self.publish_kline = self.dispatcher.publisher(EventType.KLINE)
        self.publish_liq = self.dispatcher.publisher(EventType.LIQUIDATION)
        self.upstream: dict[str, str] = {}
        """The gateway's connections of this category and their states."""


PENDING, CONFIRMED, REJECTED = "pending", "confirmed", "rejected"

RECHECK = 1.0
"""Seconds between checks whether the gateway publishes a topic it did not (or had not yet)."""


@dataclass(slots=True, eq=False)
class _Stream:
    key: str
    kind: str
    category: str
    topic: str
    tracker: StreamTracker
    snap_key: str | None
    last_rt: float = 0.0
    symbol: str = ""
    interval: str = ""
    resync_reason: str = ""
    behind: int = 0
    """Times the reader fell behind the trimmed history."""
    status: str = PENDING
    """``pending`` (not joined yet), ``confirmed`` (joined) or ``rejected`` (the gateway does
    not publish the topic, or its own subscription was refused; ``reason`` says which)."""
    reason: str = ""
    retry_at: float = 0.0
    """Not before this (monotonic) time is a rejected or unannounced topic checked again."""
    pkey: bytes = b""
    """The key as packed into the ``XREAD`` command."""
    pcursor: bytes = b""
    """The cursor as packed into the ``XREAD`` command (``b""`` until joined)."""
    slot: int = 0
    """Where ``pcursor`` sits in the reader's list of packed cursors."""
    _cursor: bytes | None = None

    def __post_init__(self) -> None:
        self.pkey = resp.bulk(self.key)

    @property
    def cursor(self) -> str | None:
        """Read after this id; ``None`` until joined."""
        return None if self._cursor is None else self._cursor.decode()

    @cursor.setter
    def cursor(self, value: str | None) -> None:
        """A cursor set outside the reader's hot path (a join, a rewind, a rejection):
        the reader repacks its command."""
        _READ_SET[0] += 1
        self.read_after(None if value is None else value.encode())

    def read_after(self, entry_id: bytes | None) -> None:
        self._cursor = entry_id
        self.pcursor = b"" if entry_id is None else resp.bulk(entry_id)


_READ_SET = [0]
"""Bumped whenever a stream's cursor is set outside the reader's hot path or the set of streams
changes: the readers then rebuild their packed ``XREAD`` parts."""


@dataclass(frozen=True, slots=True)
class RemoteHubStats:
    redis: str
    link: str
    entries: int
    gaps: int
    resyncs: int
    behind_trim: int
    duplicates: int
    decode_errors: int
    lag_last: float | None
    """Seconds from the gateway's receipt of the newest entry to its dispatch here (same-host
    monotonic clock; across hosts see ``wall_lag_last_ms``)."""
    lag_max: float
    wall_lag_last_ms: int | None
    gateway_age: float | None
    """Seconds since the gateway's last control entry (heartbeat)."""
    streams: dict[str, dict[str, int]] = field(default_factory=dict)


class RemoteHub:
    """A hub whose data comes from a gateway through Redis (see the module docstring).

    Args:
        redis: ``redis://host:port/db`` (``rediss://`` for TLS) or a :class:`RedisTarget`.
        bus: optional application bus; every event is also published there.
        prefix: the gateway's key prefix.
        gateway_timeout: seconds without a gateway heartbeat before its data counts as stale.
        block_ms: longest blocking read (new subscriptions are picked up within it).
        count: most entries per stream per read.
        reply_timeout: seconds past ``block_ms`` without a reply before Redis counts as lost.
    """

    def __init__(
        self,
        redis: RedisTarget | str,
        bus: EventBus | None = None,
        *,
        prefix: str = "hean",
        clock: Clock | None = None,
        consumer_maxsize: int = 1024,
        gateway_timeout: float = 3.0,
        block_ms: int = 50,
        count: int = 1000,
        backoff_first: float = 0.05,
        backoff_cap: float = 5.0,
        rng: random.Random | None = None,
        reply_timeout: float = 5.0,
    ) -> None:
        self.target = redis if isinstance(redis, RedisTarget) else RedisTarget.parse(redis)
        self.bus = bus
        self.reply_timeout = reply_timeout
        self.layout = Layout(prefix)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.consumer_maxsize = consumer_maxsize
        self.gateway_timeout = gateway_timeout
        self.block_ms = block_ms
        self.count = count
        self.backoff_first = backoff_first
        self.backoff_cap = backoff_cap
        self.rng = rng if rng is not None else random.Random()
        self._endpoints: dict[str, _Endpoint] = {}
        self._consumers: dict[str, Consumer] = {}
        self._streams: dict[str, _Stream] = {}
        self._seq = 0
        self._closed = False
        self._paused = False
        self._conn: resp.RespConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._redis_ok = False
        self._redis_error = ""
        self._gateway_seen: float | None = None
        self._ctl_cursor: str | None = None
        self._ctl_packed = b""
        self._resync: dict[str, str] = {}
        self._recycle_reason: str | None = None
        self._wall_offset = wall_offset(self.clock)
        self._xread = resp.XRead(count, block_ms)
        self._unjoined = False
        """Some stream has no cursor yet (joins before the next read)."""
        self._ctl_key = self.layout.ctl.encode()
        self._ctl_pkey = resp.bulk(self._ctl_key)
        self._by_key: dict[bytes, _Stream] = {}
        """The streams by key as Redis names them in replies."""
        self._read_set = -1
        self._read_keys = b""
        self._read_ids: list[bytes] = []
        """The packed cursors of the XREAD command, in key order (``_Stream.slot``); the reader
        updates the ones that moved, so a wake-up's command costs one join."""
        self.entries = 0
        self.decode_errors = 0
        self.last_rt: float = 0.0
        """Gateway receipt time (monotonic) of the entry being dispatched: an inline callback
        can compute the added latency as ``clock.monotonic() - hub.last_rt`` (same host)."""
        self.lag_last: float | None = None
        self.lag_max = 0.0
        self.wall_lag_last_ms: int | None = None

    # -- the consumer API (the hub's Consumer class works on this object) ------------------------

    def consumer(self, name: str, *, maxsize: int | None = None) -> Consumer:
        """A new consumer named ``name``: the same class, methods and policies as
        :meth:`StreamHub.consumer`."""
        if self._closed:
            raise RuntimeError("RemoteHub is closed")
        if not name:
            raise ValueError("a consumer needs a name")
        if name in self._consumers:
            raise ValueError(f"a consumer named {name!r} is already open")
        self._seq += 1
        consumer = Consumer(self, name, self._seq, maxsize or self.consumer_maxsize)
        self._consumers[name] = consumer
        return consumer

    @property
    def consumers(self) -> list[Consumer]:
        return list(self._consumers.values())

    def _endpoint(self, category: str, create: bool = True) -> _Endpoint | None:
        ep = self._endpoints.get(category)
        if ep is None and create:
            validate_category(category)
            ep = self._endpoints[category] = _Endpoint(self, category)
        return ep

    # -- the ConsumerHost side (called by consumers) --------------------------------------------

    def hold(self, consumer: Consumer, category: str, topics: list[str]) -> None:
        """See :meth:`ConsumerHost.hold <hean.hub.protocols.ConsumerHost.hold>`: the first
        holder's topic is joined (its snapshot read) by the reader."""
        for topic in topics:
            if _kind(topic) is None:
                raise ValueError(f"the gateway does not publish topic {topic!r}")
        ep = self._endpoint(category)
        assert ep is not None
        acq = ep.refs.acquire(consumer, topics, self.clock.monotonic())
        for topic in acq.subscribe:
            self._add_stream(ep, topic)
        for topic in acq.held:
            self._reroute(ep, topic)
        for topic in acq.shared:
            self._replay(ep, consumer, topic)
        self._ensure_running()

    async def release(self, consumer: Consumer, category: str, topics: list[str]) -> None:
        ep = self._endpoint(category, create=False)
        if ep is None:
            return
        rel = ep.refs.release(consumer, topics, self.clock.monotonic())
        self._after_release(ep, rel.dropped, rel.unsubscribe)

    async def detach(self, consumer: Consumer) -> None:
        try:
            for ep in list(self._endpoints.values()):
                rel = ep.refs.release_all(consumer, self.clock.monotonic())
                self._after_release(ep, rel.dropped, rel.unsubscribe)
        finally:
            if self._consumers.get(consumer.name) is consumer:
                del self._consumers[consumer.name]

    def held_by(self, consumer: Consumer) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        for ep in self._endpoints.values():
            held = ep.refs.topics_of(consumer)
            if held:
                out[ep.category] = held
        return out

    def _after_release(self, ep: _Endpoint, dropped: list[str], gone: list[str]) -> None:
        for topic in dropped:
            self._reroute(ep, topic)
        for topic in gone:
            ep.dispatcher.set_holders(topic, ())
            ep.link.session.subscriptions.topics.pop(topic, None)
            gone_stream = self._streams.pop(self.layout.md(ep.category, topic), None)
            if gone_stream is not None:
                self._by_key.pop(gone_stream.key.encode(), None)
                _READ_SET[0] += 1
            if topic.startswith("orderbook."):
                ep.books.remove(topic)
            elif topic.startswith("tickers."):
                ep.tickers.reset(topic)

    async def wait_answered(self, category: str, topics: list[str], timeout: float) -> None:
        """Until every topic is joined (its snapshot applied) or rejected (the gateway does not
        publish it), at most ``timeout`` seconds. A topic joined before any gateway has said
        what it publishes is ``pending`` (its stream is read all the same)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        keys = [self.layout.md(category, t) for t in topics]
        while loop.time() < deadline:
            if all(
                (s := self._streams.get(k)) is None or s.cursor is not None or s.status == REJECTED
                for k in keys
            ):
                return
            await asyncio.sleep(0.005)

    def topic_statuses(self, category: str, topics: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for t in topics:
            s = self._streams.get(self.layout.md(category, t))
            out[t] = "unsubscribed" if s is None else s.status
        return out

    def topic_live(self, topic: str, *, category: str = "linear") -> bool:
        """Whether ``topic`` is carried by a live link (Redis answers, the gateway's heartbeat is
        fresh and its exchange connections of ``category`` are live)."""
        ep = self._endpoints.get(category)
        return (
            ep is not None
            and topic in ep.link.session.subscriptions.topics
            and ep.link.state is ConnectionState.LIVE
        )

    def _add_stream(self, ep: _Endpoint, topic: str) -> None:
        kind = _kind(topic)
        assert kind is not None
        key = self.layout.md(ep.category, topic)
        snap = self.layout.snap(ep.category, topic) if kind in ("tick", "book") else None
        s = _Stream(key, kind, ep.category, topic, StreamTracker(snap is not None), snap)
        parts = topic.split(".")
        s.symbol = parts[-1]
        if kind == "kline":
            s.interval = parts[1]
        self._streams[key] = s
        self._by_key[key.encode()] = s
        _READ_SET[0] += 1
        self._unjoined = True
        ep.link.session.subscriptions.topics[topic] = TopicStatus.PENDING
        self._reroute(ep, topic)

    def _reroute(self, ep: _Endpoint, topic: str) -> None:
        holders = sorted(ep.refs.holders(topic), key=lambda c: c.seq)
        ep.dispatcher.set_holders(topic, tuple(holders))

    def _replay(self, ep: _Endpoint, consumer: Consumer, topic: str) -> None:
        s = self._streams.get(self.layout.md(ep.category, topic))
        if s is not None and s.status == REJECTED:
            consumer.subscription_answered(
                SubscriptionEvent(
                    ep.link.name, topic, SubscriptionStatus.REJECTED, s.reason,
                    self.clock.monotonic(),
                )
            )  # fmt: skip
            return
        if s is None or s.cursor is None:
            return
        consumer.subscription_answered(
            SubscriptionEvent(
                ep.link.name, topic, SubscriptionStatus.CONFIRMED, "shared", self.clock.monotonic()
            )
        )
        event: Any = None
        if s.kind == "tick":
            state = ep.tickers.by_topic.get(topic)
            if state is not None and s.tracker.synced:
                event = tick_replay_event(state, self._wall_offset)
                etype = EventType.TICK
        elif s.kind == "book":
            book = ep.books.by_topic.get(topic)
            if book is not None:
                event = book_replay_event(book, self._wall_offset)
                etype = EventType.ORDERBOOK
        if event is not None:
            consumer.replays += 1
            consumer.deliverer(etype)(event)

    def _on_control(self, ep: _Endpoint, event_type: EventType, event: Any) -> None:
        if event_type is EventType.SUBSCRIPTION:
            for c in ep.dispatcher.holders_of(event.topic):
                cast(Consumer, c).subscription_answered(event)
        elif event_type is EventType.CONNECTION_STATE:
            for c in ep.dispatcher.all_holders():
                c.deliverer(event_type)(event)

    # -- state ----------------------------------------------------------------------------------

    def ticker(self, symbol: str, *, category: str = "linear") -> TickerState | None:
        ep = self._endpoints.get(category)
        return None if ep is None else ep.tickers.by_symbol.get(symbol)

    def orderbook(
        self, symbol: str, depth: int | None = None, *, category: str = "linear"
    ) -> OrderBook | None:
        ep = self._endpoints.get(category)
        return None if ep is None else ep.books.get(symbol, depth)

    def connections(self, category: str | None = None) -> list[Any]:
        """One :class:`RemoteLink` per category (the health layer's and PriceFeed's view)."""
        return [
            ep.link
            for ep in self._endpoints.values()
            if category is None or ep.category == category
        ]

    def tracker(self, topic: str, *, category: str = "linear") -> StreamTracker | None:
        s = self._streams.get(self.layout.md(category, topic))
        return None if s is None else s.tracker

    # -- the reader -----------------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._task is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="hean-remote-reader")
            self._watch = loop.create_task(self._watchdog(), name="hean-remote-watchdog")

    async def start(self) -> None:
        """Connect now (it also happens on the first subscribe)."""
        self._ensure_running()

    def pause(self) -> None:
        """Stop reading (the gateway goes on writing; Redis trims): for maintenance and tests."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def _request_resync(self, category: str, topic: str, reason: str) -> None:
        s = self._streams.get(self.layout.md(category, topic))
        if s is not None and s.snap_key is not None:
            s.tracker.invalidate(*s.tracker.position())
            self._resync[s.key] = reason

    def _recycle(self, reason: str) -> None:
        self._recycle_reason = reason

    async def _connect(self) -> bool:
        conn: resp.RespConnection | None = None
        try:
            conn = await resp.RespConnection.open(
                self.target, timeout=self.block_ms / 1000.0 + self.reply_timeout
            )
            t0 = self.clock.monotonic()
            await conn.call("PING")
            rtt = self.clock.monotonic() - t0
        except Exception as exc:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.aclose()
            err = f"{type(exc).__name__}: {exc}"
            if err != self._redis_error:
                log.warning("remote: Redis %s unreachable (%s); retrying", self.target, err)
            self._redis_error = err
            return False
        self._conn = conn
        self._redis_ok = True
        self._redis_error = ""
        for ep in self._endpoints.values():
            ep.link.session.stats.connects += 1
            ep.link.session.heartbeat.rtt = rtt
            ep.link.session.heartbeat.pongs_received += 1
        log.info("remote: Redis %s up", self.target)
        return True

    async def _disconnect(self, reason: str) -> None:
        self._redis_ok = False
        self._redis_error = reason
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.aclose()
        for ep in self._endpoints.values():
            st = ep.link.session.stats
            st.reconnects += 1
            st.last_disconnect_reason = reason
            st.disconnect_reasons[reason.split(":")[0]] = (
                st.disconnect_reasons.get(reason.split(":")[0], 0) + 1
            )
        self._update_links()

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            if self._conn is None:
                if not await self._connect():
                    await asyncio.sleep(
                        backoff_delay(attempt, self.backoff_first, self.backoff_cap, self.rng)
                    )
                    attempt += 1
                    continue
                attempt = 0
                self._update_links()
            if self._recycle_reason is not None:
                reason, self._recycle_reason = self._recycle_reason, None
                self._unjoined = True
                for s in self._streams.values():
                    s.cursor = None
                    s.retry_at = 0.0
                    s.tracker = StreamTracker(s.snap_key is not None)
                await self._disconnect(f"recycle: {reason}")
                continue
            if self._paused:
                await asyncio.sleep(0.01)
                continue
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = f"{type(exc).__name__}: {exc}"
                log.warning("remote: Redis %s lost (%s); reconnecting", self.target, err)
                await self._disconnect(err)

    async def _step(self) -> None:
        conn = self._conn
        assert conn is not None
        if self._ctl_cursor is None:
            last = await conn.call("XREVRANGE", self.layout.ctl, "+", "-", "COUNT", 1)
            self._ctl_cursor = "0-0"
            if last:
                self._ctl_cursor = last[0][0].decode()
                self._on_ctl(_payload(last[0][1]), self.clock.monotonic())
        if self._unjoined:  # streams to join, or topics the gateway has not confirmed yet
            now = self.clock.monotonic()
            self._unjoined = False
            for s in list(self._streams.values()):
                if s.cursor is not None and s.status == CONFIRMED:
                    continue
                if s.retry_at <= now:
                    if s.cursor is None:
                        await self._join(s)
                    else:
                        await self._recheck(s)
                if s.cursor is None or s.status != CONFIRMED:
                    self._unjoined = True
        if self._resync:
            for key, reason in list(self._resync.items()):
                rs = self._streams.get(key)
                del self._resync[key]
                if rs is not None:
                    await self._rebuild(rs, reason)
        if not self._ctl_packed:
            self._ctl_packed = resp.bulk(self._ctl_cursor)
        ids = self._read_ids
        if self._read_set != _READ_SET[0]:  # joins, rewinds, streams added or dropped
            self._read_set = _READ_SET[0]
            keys = [self._ctl_pkey]
            ids = self._read_ids = [b""]
            for s in self._streams.values():
                if s.pcursor:  # joined
                    s.slot = len(ids)
                    keys.append(s.pkey)
                    ids.append(s.pcursor)
            self._read_keys = b"".join(keys)
        ids[0] = self._ctl_packed
        conn.send(self._xread.packed_joined(len(ids), self._read_keys, b"".join(ids)))
        (reply,) = await conn.read(1, timer=False)  # the watchdog ends a read that hangs
        if not reply:
            return
        if resp.is_error(reply):
            raise reply
        now = self.clock.monotonic()
        wall = int((now + self._wall_offset) * 1000.0)
        ctl = self._ctl_key
        by_key = self._by_key
        entry = self._entry
        for key, entries in reply:
            if key == ctl:
                for entry_id, fields in entries:
                    self._ctl_cursor = entry_id.decode()
                    self._ctl_packed = resp.bulk(entry_id)
                    self._on_ctl(_payload(fields), now)
                continue
            st = by_key.get(key)
            if st is None or not st.pcursor:
                continue
            for entry_id, fields in entries:
                entry(st, entry_id, fields, now, wall)
            if st.pcursor:  # not rejected or recycled meanwhile
                st.read_after(entries[-1][0])
                self._read_ids[st.slot] = st.pcursor

    async def _announced(self, s: _Stream) -> tuple[str, str]:
        """What the gateway says of ``s``'s topic (its ``topics`` hash): ``confirmed``,
        ``rejected`` (with the reason) or ``pending`` (no gateway has said what it publishes)."""
        conn = self._conn
        assert conn is not None
        announced, known = await conn.pipeline(
            [
                resp.pack("HGET", self.layout.topics, f"{s.category}:{s.topic}"),
                resp.pack("EXISTS", self.layout.topics),
            ]
        )
        if isinstance(announced, bytes):
            if announced.startswith(b"rejected"):
                why = announced.partition(b":")[2].decode(errors="replace") or "rejected"
                return REJECTED, f"the gateway's subscription was refused: {why}"
            return CONFIRMED, ""
        if known == 1:
            return REJECTED, f"not published by the gateway (prefix {self.layout.prefix!r})"
        return PENDING, ""

    async def _join(self, s: _Stream) -> None:
        """Start reading ``s``: at its latest snapshot (tickers, books) or its newest entry; or
        say the topic is not available. Before any gateway has said what it publishes, the
        stream is read from its start and the topic stays ``pending`` until one does."""
        conn = self._conn
        assert conn is not None
        status, reason = await self._announced(s)
        if status == REJECTED:
            s.retry_at = self.clock.monotonic() + RECHECK
            self._reject(s, reason)
            return
        if s.snap_key is not None:
            raw = await conn.call("GET", s.snap_key)
            s.cursor = "0-0"
            if raw is not None:
                ref = _snapref(raw)
                now = self.clock.monotonic()
                self._entry(s, ref.id.encode(), [b"d", ref.d], now, self._wall(now))
                s.cursor = ref.id
        else:
            last = await conn.call("XREVRANGE", s.key, "+", "-", "COUNT", 1)
            if last:
                epoch, g = parse_id(last[0][0])
                s.tracker.start_at(epoch, g)
                s.cursor = last[0][0].decode()
            else:
                s.cursor = "0-0"
        if status == PENDING:
            s.retry_at = self.clock.monotonic() + RECHECK
            self._unjoined = True  # ask again
            return
        self._confirm(s, "joined" if s.tracker.synced else "joined, awaiting snapshot")

    async def _recheck(self, s: _Stream) -> None:
        """A joined topic no gateway had announced: ask again."""
        status, reason = await self._announced(s)
        if status == CONFIRMED:
            self._confirm(s, "published by the gateway")
        elif status == REJECTED:
            self._reject(s, reason)
            s.cursor = None
        if s.status != CONFIRMED:
            s.retry_at = self.clock.monotonic() + RECHECK
            self._unjoined = True

    def _confirm(self, s: _Stream, reason: str) -> None:
        s.status, s.reason = CONFIRMED, ""
        ep = self._endpoints.get(s.category)
        if ep is not None and s.topic in ep.link.session.subscriptions.topics:
            ep.link.session.subscriptions.topics[s.topic] = TopicStatus.CONFIRMED
            ep.dispatcher.publish(
                EventType.SUBSCRIPTION,
                SubscriptionEvent(
                    ep.link.name,
                    s.topic,
                    SubscriptionStatus.CONFIRMED,
                    reason,
                    self.clock.monotonic(),
                ),
            )

    def _reject(self, s: _Stream, reason: str) -> None:
        """The topic is not available from the gateway: its holders and the health layer are told
        once (and again if the reason changes); it is checked again every ``RECHECK`` seconds."""
        if s.status == REJECTED and s.reason == reason:
            return
        s.status, s.reason = REJECTED, reason
        log.warning("remote: %s %s not available: %s", s.category, s.topic, reason)
        ep = self._endpoints.get(s.category)
        if ep is None or s.topic not in ep.link.session.subscriptions.topics:
            return
        ep.link.session.subscriptions.topics[s.topic] = TopicStatus.REJECTED
        ep.dispatcher.publish(
            EventType.SUBSCRIPTION,
            SubscriptionEvent(
                ep.link.name, s.topic, SubscriptionStatus.REJECTED, reason, self.clock.monotonic()
            ),
        )

    async def _rebuild(self, s: _Stream, reason: str) -> None:
        """After a hole: classify it, say so, and rewind to the latest snapshot if it repairs."""
        conn = self._conn
        assert conn is not None
        gap = s.tracker.last_gap
        if gap is not None and s.cursor is not None:
            first = await conn.call("XRANGE", s.key, "-", "+", "COUNT", 1)
            if first and parse_id(first[0][0]) > gap[0]:
                reason = "fell behind the trimmed history"
                s.behind += 1
        ep = self._endpoints.get(s.category)
        log.warning(
            "remote: %s %s: %s (expected %s, got %s); state invalid, rebuilding from snapshot",
            s.category,
            s.topic,
            reason,
            "-".join(map(str, gap[0])) if gap else "?",
            "-".join(map(str, gap[1])) if gap else "?",
        )
        if ep is not None:
            if s.kind == "book":
                ep.link.book_resyncs += 1
            ep.dispatcher.publish(
                EventType.SUBSCRIPTION,
                SubscriptionEvent(
                    ep.link.name, s.topic, SubscriptionStatus.RESYNC, reason, self.clock.monotonic()
                ),
            )
        if s.tracker.synced or s.snap_key is None:
            return  # repaired already (the entry after the hole was a snapshot)
        raw = await conn.call("GET", s.snap_key)
        if raw is None:
            return
        ref = _snapref(raw)
        epoch, g = parse_id(ref.id)
        if (epoch, g) < s.tracker.floor:
            return  # older than the hole: the next snapshot in the stream will repair it
        now = self.clock.monotonic()
        self._entry(s, ref.id.encode(), [b"d", ref.d], now, self._wall(now))
        if _synced(s):
            s.cursor = ref.id

    def _wall(self, now: float) -> int:
        return int((now + self._wall_offset) * 1000.0)

    def _entry(self, s: _Stream, entry_id: bytes, fields: Any, now: float, wall: int) -> None:
        """Apply one entry (``fields``: the entry's field list as read, ``[b"d", payload]``)."""
        self.entries += 1
        kind = s.kind
        try:
            a, _, b = entry_id.partition(b"-")
            epoch, g = int(a), int(b)
            if fields[0] != b"d":
                raise ValueError("no field d")
            e = _DECODERS[kind].decode(fields[1])
        except Exception as exc:
            self.decode_errors += 1
            if self.decode_errors <= 5 or self.decode_errors % 1000 == 0:
                log.warning("remote: undecodable entry in %s: %s", s.key, exc)
            return
        snapshot = (kind == "tick" and e.snap) or (kind == "book" and e.k == BOOK_SNAPSHOT)
        tracker = s.tracker
        verdict = tracker.on_entry(epoch, g, snapshot)
        if verdict is Verdict.DUPLICATE or verdict is Verdict.WAIT:
            return
        if verdict is Verdict.GAP and s.snap_key is not None:
            self._resync.setdefault(s.key, "entries missing")
            self._invalidate(s, "gap in the gateway sequence")
            return
        gap = tracker.last_gap
        if verdict is Verdict.RESYNC and gap is not None and gap[1] == (epoch, g):
            self._resync.setdefault(s.key, "entries missing")  # a snapshot over a hole: say so
        if verdict is Verdict.GAP:
            log.warning(
                "remote: %s: %d entries missing before %s (lost)", s.key, tracker.lost, entry_id
            )
        ep = self._endpoints.get(s.category)
        if ep is None:
            return
        rt = self.last_rt = s.last_rt = e.rt
        lag = self.lag_last = now - rt
        if lag > self.lag_max:
            self.lag_max = lag
        self.wall_lag_last_ms = wall - e.w
        st = ep.link.session.stats
        st.messages += 1
        st.last_message_at = now
        if kind == "tick":
            frame = Frame(
                topic=s.topic, type="snapshot" if e.snap else "delta", ts=e.ts, cs=e.cs, data=e.f
            )
            ep.tickers.apply(frame, now)
        elif kind == "book":
            if e.k == BOOK_INVALID:
                book = ep.books.by_topic.get(s.topic)
                tracker.invalidate(epoch, g)
                if book is not None:
                    book.invalidate(f"gateway: {e.why}")
                    book.needs_resync = False
                return
            frame = Frame(
                topic=s.topic,
                type="snapshot" if e.k == BOOK_SNAPSHOT else "delta",
                ts=e.ts,
                cts=e.cts,
                data={"s": s.symbol, "b": e.b, "a": e.a, "u": e.u, "seq": e.seq},
            )
            book = ep.books.apply(frame, now)
            ep.publish_book(book_event(book, frame, wall))
            if not book.valid:
                book.needs_resync = False
                tracker.invalidate(epoch, g)
                self._resync.setdefault(s.key, f"book invalid: {book.invalid_reason}")
        elif kind == "trade":
            ep.publish_trade(
                TradeEvent(s.symbol, s.category, e.items, e.ts, now, wall, e.backfilled)
            )
        elif kind == "kline":
            ep.publish_kline(
                KlineEvent(s.symbol, s.category, s.interval, e.items, e.ts, now, wall, e.backfilled)
            )
        elif kind == "liq":
            ep.publish_liq(LiquidationEvent(s.symbol, s.category, e.items, e.ts, now, wall))

    def _invalidate(self, s: _Stream, reason: str) -> None:
        ep = self._endpoints.get(s.category)
        if ep is None:
            return
        if s.kind == "book":
            book = ep.books.by_topic.get(s.topic)
            if book is not None:
                book.invalidate(reason)
                book.needs_resync = False
        elif s.kind == "tick":
            ep.tickers.reset(s.topic)

    # -- the gateway's control stream and the links' states ---------------------------------------

    def _on_ctl(self, payload: bytes | None, now: float) -> None:
        try:
            if payload is None:
                raise ValueError("no field d")
            e = _DECODERS["ctl"].decode(payload)
        except Exception:
            self.decode_errors += 1
            return
        self._gateway_seen = now
        if e.kind == "hb":
            conns = e.data.get("conns") or {}
            for ep in self._endpoints.values():
                ep.upstream = {
                    n: str(v) for n, v in conns.items() if _conn_category(n) == ep.category
                }
        elif e.kind == "state":
            name = str(e.data.get("connection", ""))
            cat = _conn_category(name)
            cep = self._endpoints.get(cat)
            if cep is not None:
                new = str(e.data.get("new", ""))
                was_live = cep.upstream.get(name) == "live"
                cep.upstream[name] = new
                if was_live and new != "live":
                    # the gateway's books of this category are reset: so are ours, until the
                    # snapshot that follows its reconnect
                    for s in self._streams.values():
                        if s.category == cat and s.snap_key is not None and s.last_rt < e.rt:
                            s.tracker.invalidate(*s.tracker.position())
                            self._invalidate(s, f"gateway connection {name} {new}")
        elif e.kind == "sub":
            topic = str(e.data.get("topic", ""))
            cat = _conn_category(str(e.data.get("connection", "")))
            st = self._streams.get(self.layout.md(cat, topic)) if cat else None
            status = str(e.data.get("status", ""))
            if st is not None and status == "confirmed" and st.cursor is None:
                st.retry_at = 0.0  # the gateway publishes it now: join at the next read
                self._unjoined = True
            elif st is not None and status in ("rejected", "timeout"):
                why = str(e.data.get("reason", "")) or status
                self._reject(st, f"the gateway's subscription was refused: {why}")
                st.cursor = None
                st.retry_at = now + RECHECK
                self._unjoined = True
        elif e.kind == "lost":
            log.warning("remote: the gateway could not publish some entries: %s", e.data)
        self._update_links()

    def _update_links(self) -> None:
        now = self.clock.monotonic()
        seen = self._gateway_seen
        fresh = seen is not None and now - seen <= self.gateway_timeout
        for ep in self._endpoints.values():
            session = ep.link.session
            if not self._redis_ok:
                new, reason = ConnectionState.BACKOFF, f"redis: {self._redis_error or 'down'}"
            elif not fresh:
                new, reason = ConnectionState.CONNECTING, "gateway silent"
            elif ep.upstream and all(v == "live" for v in ep.upstream.values()):
                new, reason = ConnectionState.LIVE, ""
            elif not ep.upstream:
                new, reason = ConnectionState.CONNECTING, "gateway has no connection here"
            else:
                bad = sorted(f"{n} {v}" for n, v in ep.upstream.items() if v != "live")
                new, reason = ConnectionState.BACKOFF, "gateway: " + ", ".join(bad)
            old = session.state
            if new is old:
                continue
            session.state = new
            if new is ConnectionState.LIVE:
                session.stats.live_since = now
            else:
                session.stats.live_since = None
                session.stats.last_disconnect_reason = reason
            ev = ConnectionStateEvent(ep.link.name, ep.link.url, old, new, reason, 0, now)
            log.info("= %s %s -> %s (%s)", ep.link.name, old.value, new.value, reason)
            ep.dispatcher.publish(EventType.CONNECTION_STATE, ev)

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(max(0.01, self.gateway_timeout / 4))
            conn = self._conn
            since = None if conn is None else conn.waiting_since
            if (
                conn is not None
                and since is not None
                and loop.time() - since > self.block_ms / 1000.0 + self.reply_timeout
            ):
                log.warning("remote: Redis %s did not answer a read in time", self.target)
                conn.close()  # the read ends with ConnectionError: reconnect
            self._update_links()

    # -- introspection and shutdown ---------------------------------------------------------------

    def stats(self) -> RemoteHubStats:
        now = self.clock.monotonic()
        streams = {
            s.key: {
                "gaps": s.tracker.gaps,
                "lost": s.tracker.lost,
                "resyncs": s.tracker.resyncs,
                "behind_trim": s.behind,
                "duplicates": s.tracker.duplicates,
                "synced": int(s.tracker.synced),
            }
            for s in self._streams.values()
        }
        return RemoteHubStats(
            redis=str(self.target),
            link="up" if self._redis_ok else "down",
            entries=self.entries,
            gaps=sum(s.tracker.gaps for s in self._streams.values()),
            resyncs=sum(s.tracker.resyncs for s in self._streams.values()),
            behind_trim=sum(s.behind for s in self._streams.values()),
            duplicates=sum(s.tracker.duplicates for s in self._streams.values()),
            decode_errors=self.decode_errors,
            lag_last=self.lag_last,
            lag_max=self.lag_max,
            wall_lag_last_ms=self.wall_lag_last_ms,
            gateway_age=None if self._gateway_seen is None else now - self._gateway_seen,
            streams=streams,
        )

    async def close(self) -> None:
        if self._closed:
            return
        for consumer in list(self._consumers.values()):
            await consumer.close()
        self._closed = True
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._watch = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.aclose()

    async def __aenter__(self) -> RemoteHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<RemoteHub {self.target} prefix={self.layout.prefix!r}>"


def _payload(fields: Any) -> bytes | None:
    """The ``d`` field of an entry read raw (``[b"d", payload]``)."""
    if isinstance(fields, list) and len(fields) >= 2 and fields[0] == b"d":
        return cast(bytes, fields[1])
    return None


def _synced(s: _Stream) -> bool:
    return s.tracker.synced


def _conn_category(name: str) -> str:
    """``public/linear#2`` -> ``linear``."""
    return name.partition("/")[2].partition("#")[0]


if TYPE_CHECKING:

    def _is_a_market_data_hub(hub: RemoteHub) -> MarketDataHub:
        return hub  # mypy --strict src checks that RemoteHub implements the protocol
