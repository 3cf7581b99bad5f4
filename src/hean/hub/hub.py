"""``StreamHub``: one shared connection per endpoint for every consumer of a process.

::

    hub = StreamHub(bus)                       # bus optional: it also sees every event
    strategy = hub.consumer("strategy")
    strategy.on(EventType.TICK, on_tick)       # async handler: own task, latest value per topic
    await strategy.subscribe_tickers(["BTCUSDT", "ETHUSDT"], category="linear")
    router = hub.consumer("router")
    await router.subscribe_tickers(["BTCUSDT"])  # same connection; no new subscribe frame
    ...
    await strategy.close()                     # releases its topics (ETHUSDT is unsubscribed)
    await hub.close()

What the hub guarantees:

* **One connection per endpoint** (public URL; the key has room for credentials so private and
  trade connections slot in), opened when the first topic is wanted and closed when its last
  topic is released. Beyond Bybit's 21,000-character ``args`` budget per public connection (and
  option's 2,000 topics) a second connection to the same endpoint is opened and new topics go
  there (:class:`~hean.hub.refs.ShardPlanner`).
* **Reference-counted topics**: the first consumer's request subscribes, the last one's release
  unsubscribes (optionally after ``linger`` seconds) (:class:`~hean.hub.refs.TopicRefs`). Spot's
  10 args per request is the session's job (it chunks every request).
* **A late joiner gets the state at once**: the cached merged ticker / valid book is replayed to
  that consumer only, as a snapshot event, and a synthetic ``SubscriptionEvent`` tells it the
  topic's current status.
* **Failed topics are reported** to the consumers that asked for them (``SubscriptionEvent``
  ``REJECTED`` / ``TIMEOUT``; ``Consumer.failed``).
* **Isolation**: each consumer has its own bus with bounded queues (policy per stream kind,
  :data:`~hean.hub.delivery.STREAM_POLICIES`); see :mod:`hean.hub.delivery`.
* **Connection-rate limiting**: every connection attempt of every hub connection (first connect
  and each reconnect) waits for a slot of a :class:`~hean.hub.ratelimit.ConnectionRateLimiter`
  shared per host across the process, on top of the session's full-jitter backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from hean.core.bus import EventBus, EventStream, OverflowPolicy, SubscriberStats, Subscription
from hean.core.clock import Clock, SystemClock
from hean.core.events import (
    ConnectionStateEvent,
    EventType,
    SubscriptionEvent,
    SubscriptionStatus,
)
from hean.core.lifecycle import ConnectionState
from hean.core.waits import wait_set
from hean.exchange.bybit.endpoints import MAINNET, TESTNET, validate_category
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.state.orderbook import OrderBook
from hean.exchange.bybit.state.tickers import TickerState
from hean.exchange.bybit.transport import DEFAULT_MAX_MESSAGE
from hean.exchange.bybit.ws_public import (
    BOOK_DEPTHS,
    BOOK_REPAIR_MAX,
    BOOK_REPAIR_TIMEOUT,
    BOOK_RESYNC_INTERVAL,
    KLINE_INTERVALS,
    BybitPublicWebSocket,
    EventSink,
)
from hean.hub.delivery import (
    CONFLATE_KEYS,
    Deliver,
    Dispatcher,
    book_replay_event,
    policy_for,
    route_key,
    tick_replay_event,
)
from hean.hub.gated import RateGate
from hean.hub.protocols import ConsumerHost, MarketDataHub
from hean.hub.ratelimit import ConnectionRateLimiter, shared_limiter
from hean.hub.refs import ShardPlanner, TopicRefs

__all__ = [
    "ARGS_BUDGET",
    "ConnectionOptions",
    "Consumer",
    "ConsumerStats",
    "EndpointKey",
    "HubConnectionStats",
    "HubStats",
    "StreamHub",
]

log = logging.getLogger("hean.hub")

ARGS_BUDGET = 21_000
"""Bybit: total characters of all ``args`` on one public connection (protocol.md §3.4)."""
OPTION_MAX_TOPICS = 2_000
"""Bybit: topics per option connection (protocol.md §3.4)."""

EndpointKind = Literal["public", "private", "trade"]


class EndpointKey(NamedTuple):
    """What makes two connections shareable: the same kind, URL and account.

    ``account`` is ``None`` for public data; private and trade connections use an identifier
    of the credentials (the API key, never the secret), so two accounts never share one.
    """

    kind: EndpointKind
    url: str
    account: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """Settings of every connection the hub opens (see :class:`BybitPublicWebSocket`)."""

    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    backoff: BackoffPolicy | None = None
    connect_timeout: float = 10.0
    ack_timeout: float = 10.0
    max_message_size: int = DEFAULT_MAX_MESSAGE
    ssl_context: ssl.SSLContext | None = None
    field_times: bool | tuple[str, ...] = True
    """Which ticker fields keep change times: all, none, or these (per-field staleness needs
    the ones its policy watches)."""
    rest: Any = None
    """A :class:`~hean.exchange.bybit.rest.BybitRestClient`: after a reconnect, trades and
    closed candles missed while down are backfilled over REST (``backfilled=True``, then a
    ``BACKFILL`` event); see :mod:`hean.exchange.bybit.backfill`."""
    book_resync_interval: float = BOOK_RESYNC_INTERVAL
    """Minimum seconds between two resubscribes of one order book."""
    book_repair_timeout: float = BOOK_REPAIR_TIMEOUT
    """Seconds an invalid book's resubscribe may take to bring a snapshot before it is sent
    again (doubling up to ``book_repair_max``)."""
    book_repair_max: float = BOOK_REPAIR_MAX
    recorder: Any = None
    """A :class:`hean.record.Recorder` (anything with ``attach(ws)``): every connection the hub
    opens is recorded (``Recorder.attach(hub)`` sets this)."""


@dataclass(frozen=True, slots=True)
class HubConnectionStats:
    """One hub connection."""

    endpoint: EndpointKey
    shard: int
    """0 for the first connection to the endpoint, then 1, 2 ... (beyond the args budget)."""
    name: str
    state: ConnectionState
    topics: int
    args_chars: int
    connects: int
    reconnects: int
    messages: int


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    """One consumer: its topics and the sum of its subscriptions' counters."""

    name: str
    topics: int
    delivered: int
    dropped: int
    conflated: int
    errors: int
    alarms: int
    depth: int
    max_depth: int
    failed: dict[str, str]
    """Topics the exchange refused (or never answered), with the reason."""
    subscriptions: list[SubscriberStats] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HubStats:
    connections: list[HubConnectionStats]
    consumers: list[ConsumerStats]
    connect_slots: int
    """Connection attempts granted by the rate limiter (all hubs sharing it)."""
    connect_slots_delayed: int
    connect_max_delay: float


_ANSWERED = frozenset({"confirmed", "rejected"})


class _Shard:
    """One connection of an endpoint."""

    __slots__ = ("dispatcher", "id", "name", "task", "ws")

    def __init__(self, shard_id: int, name: str, ws: BybitPublicWebSocket, dispatcher: Dispatcher):
        self.id = shard_id
        self.name = name
        self.ws = ws
        self.dispatcher = dispatcher
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(
                self.ws.connect(), name=f"hean-hub-connect-{self.name}"
            )

    async def close(self) -> None:
        try:
            await self.ws.disconnect()
        finally:
            task, self.task = self.task, None
            if task is not None:
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


class _Endpoint:
    """Every connection to one public endpoint (one category)."""

    __slots__ = ("category", "key", "planner", "refs", "shards", "waiters")

    def __init__(self, key: EndpointKey, category: str, budget: int, linger: float) -> None:
        self.key = key
        self.category = category
        self.refs: TopicRefs[Consumer] = TopicRefs(linger)
        self.planner = ShardPlanner(budget, OPTION_MAX_TOPICS if category == "option" else None)
        self.shards: dict[int, _Shard] = {}
        self.waiters: dict[str, list[asyncio.Future[None]]] = {}

    def shard_for(self, topic: str) -> _Shard | None:
        sid = self.planner.shard_of(topic)
        return None if sid is None else self.shards.get(sid)

    def status(self, topic: str) -> str:
        shard = self.shard_for(topic)
        if shard is None:
            return "unsubscribed"
        status = shard.ws.session.subscriptions.status(topic)
        return "pending" if status is None else str(status)


class StreamHub:
    """Owns the market-data connections of a process and shares them among consumers.

    Args:
        bus: optional application bus; every event of every hub connection is also published
            there (connection states, subscription answers, data).
        testnet: use Bybit's testnet hosts (ignored with ``host`` / ``urls``).
        host: base URL such as ``wss://stream.bybit.com`` or the emulator's ``ws://127.0.0.1:9090``;
            public endpoints are ``{host}/v5/public/{category}``.
        urls: explicit URL per category (wins over ``host``).
        clock: time source (for connections, the limiter and linger timers).
        limiter: connection-rate limiter; default: the process-wide one of the host
            (:func:`~hean.hub.ratelimit.shared_limiter`).
        options: settings of every connection (heartbeat, backoff, timeouts, TLS).
        args_budget: characters of ``args`` per public connection before a second connection
            to the same endpoint is opened.
        linger: seconds a topic stays subscribed after its last consumer released it.
        reconnect_jitter: extra random delay, ``U(0, reconnect_jitter)`` seconds, before a
            *reconnect* takes its rate-limit slot (the session's backoff is already jittered).
        consumer_maxsize: default queue bound of consumers' async handlers and streams.
        rng: random source (jitter), seeded in tests.
    """

    def __init__(
        self,
        bus: EventSink | None = None,
        *,
        testnet: bool = True,
        host: str | None = None,
        urls: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        limiter: ConnectionRateLimiter | None = None,
        options: ConnectionOptions | None = None,
        args_budget: int = ARGS_BUDGET,
        linger: float = 0.0,
        reconnect_jitter: float = 0.0,
        consumer_maxsize: int = 1024,
        rng: random.Random | None = None,
    ) -> None:
        if args_budget < 1:
            raise ValueError(f"args_budget must be >= 1, got {args_budget!r}")
        if not linger >= 0:
            raise ValueError(f"linger must be >= 0, got {linger!r}")
        if not reconnect_jitter >= 0:
            raise ValueError(f"reconnect_jitter must be >= 0, got {reconnect_jitter!r}")
        if consumer_maxsize < 1:
            raise ValueError(f"consumer_maxsize must be >= 1, got {consumer_maxsize!r}")
        self.bus = bus
        self.testnet = testnet
        self.host = (host if host is not None else (TESTNET if testnet else MAINNET)).rstrip("/")
        if not self.host.startswith(("ws://", "wss://")):
            raise ValueError(f"host must start with ws:// or wss://, got {self.host!r}")
        self.urls = dict(urls or {})
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._limiter = limiter
        self.options = options if options is not None else ConnectionOptions()
        self.args_budget = int(args_budget)
        self.linger = float(linger)
        self.reconnect_jitter = float(reconnect_jitter)
        self.consumer_maxsize = int(consumer_maxsize)
        self.rng = rng if rng is not None else random.Random()
        self._endpoints: dict[EndpointKey, _Endpoint] = {}
        self._consumers: dict[str, Consumer] = {}
        self._seq = 0
        self._closed = False
        self._timer: asyncio.Task[None] | None = None
        self._timer_wake: asyncio.Event | None = None
        self._gates: dict[int, RateGate] = {}

    # -- consumers ----------------------------------------------------------------------------

    def consumer(self, name: str, *, maxsize: int | None = None) -> Consumer:
        """A new consumer (a strategy, a router, a risk check ...) named ``name``.

        Raises:
            ValueError: a consumer of that name is open.
        """
        if self._closed:
            raise RuntimeError("StreamHub is closed")
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

    # -- endpoints ----------------------------------------------------------------------------

    def public_url(self, category: str) -> str:
        """The URL the hub uses for ``category``'s public stream."""
        validate_category(category)
        url = self.urls.get(category)
        return url if url is not None else f"{self.host}/v5/public/{category}"

    def endpoint_key(self, category: str) -> EndpointKey:
        return EndpointKey("public", self.public_url(category))

    def public_streams(self) -> list[BybitPublicWebSocket]:
        """Every connection the hub has open (one per endpoint shard)."""
        return [shard.ws for ep in self._endpoints.values() for shard in ep.shards.values()]

    def limiter_for(self, url: str) -> ConnectionRateLimiter:
        return self._limiter if self._limiter is not None else shared_limiter(url)

    def _endpoint(self, category: str, create: bool = True) -> _Endpoint | None:
        key = self.endpoint_key(category)
        ep = self._endpoints.get(key)
        if ep is None and create:
            ep = self._endpoints[key] = _Endpoint(key, category, self.args_budget, self.linger)
        return ep

    def _new_shard(self, ep: _Endpoint, shard_id: int) -> _Shard:
        name = f"{ep.key.kind}/{ep.category}" + (f"#{shard_id + 1}" if shard_id else "")
        opts = self.options
        holder: list[_Shard] = []

        def on_control(event_type: EventType, event: Any) -> None:
            self._on_control(ep, holder[0], event_type, event)

        dispatcher = Dispatcher(name, self.bus, on_control)
        ws = BybitPublicWebSocket(
            dispatcher,
            ep.category,
            url=ep.key.url,
            clock=self.clock,
            ping_interval=opts.ping_interval,
            pong_timeout=opts.pong_timeout,
            backoff=opts.backoff,
            connect_timeout=opts.connect_timeout,
            ack_timeout=opts.ack_timeout,
            max_message_size=opts.max_message_size,
            ssl_context=opts.ssl_context,
            name=name,
            rng=random.Random(self.rng.random()),
            field_times=opts.field_times,
            rest=opts.rest,
            book_resync_interval=opts.book_resync_interval,
            book_repair_timeout=opts.book_repair_timeout,
            book_repair_max=opts.book_repair_max,
            connect_gate=self._gate_for(ep.key.url, lambda: holder[0]),
        )
        if opts.recorder is not None:
            opts.recorder.attach(ws)
        shard = _Shard(shard_id, name, ws, dispatcher)
        holder.append(shard)
        ep.shards[shard_id] = shard
        log.info("hub: opening %s to %s", name, ep.key.url)
        return shard

    def _gate_for(self, url: str, shard: Callable[[], _Shard]) -> Callable[[], Awaitable[None]]:
        limiter = self.limiter_for(url)
        rate_gate = self._gates.get(id(limiter))
        if rate_gate is None:
            rate_gate = self._gates[id(limiter)] = RateGate(limiter, self.clock)
        clock = self.clock

        async def gate() -> None:
            if self.reconnect_jitter > 0 and shard().ws.session.stats.reconnects > 0:
                await clock.sleep(self.rng.uniform(0.0, self.reconnect_jitter))
            delay = await rate_gate.wait()
            if delay > 0:
                log.debug("hub: %s waited %.3fs for a connection slot", shard().name, delay)

        return gate

    # -- topics (the ConsumerHost side, called by consumers) -----------------------------------

    def hold(self, consumer: Consumer, category: str, topics: list[str]) -> None:
        """See :meth:`ConsumerHost.hold <hean.hub.protocols.ConsumerHost.hold>`."""
        budget = self.args_budget
        for topic in topics:
            if ShardPlanner.cost(topic) > budget:
                raise ValueError(
                    f"topic {topic[:60]!r} is longer than a connection's args budget ({budget})"
                )
        ep = self._endpoint(category)
        assert ep is not None
        acq = ep.refs.acquire(consumer, topics, self.clock.monotonic())
        by_shard: dict[int, list[str]] = {}
        created: list[_Shard] = []
        for topic in acq.subscribe:
            sid, new = ep.planner.place(topic)
            if new:
                created.append(self._new_shard(ep, sid))
            by_shard.setdefault(sid, []).append(topic)
        for sid, group in by_shard.items():
            ep.shards[sid].ws.subscribe(group)
        for topic in acq.held:
            self._reroute(ep, topic)
        for shard in created:
            shard.start()
        for topic in acq.shared:
            self._replay(ep, consumer, topic)

    async def release(self, consumer: Consumer, category: str, topics: list[str]) -> None:
        ep = self._endpoint(category, create=False)
        if ep is None:
            return
        rel = ep.refs.release(consumer, topics, self.clock.monotonic())
        await self._after_release(ep, rel.dropped, rel.unsubscribe)

    async def detach(self, consumer: Consumer) -> None:
        try:
            for ep in list(self._endpoints.values()):
                rel = ep.refs.release_all(consumer, self.clock.monotonic())
                await self._after_release(ep, rel.dropped, rel.unsubscribe)
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

    async def _after_release(self, ep: _Endpoint, dropped: list[str], gone: list[str]) -> None:
        for topic in dropped:
            self._reroute(ep, topic)
        if gone:
            await self._unsubscribe(ep, gone)
        if ep.refs.lingering():
            self._wake_timer()

    async def _unsubscribe(self, ep: _Endpoint, topics: list[str]) -> None:
        """Take topics off the wire; close connections left with none."""
        by_shard: dict[int, list[str]] = {}
        emptied: list[_Shard] = []
        for topic in topics:
            shard = ep.shard_for(topic)
            sid, empty = ep.planner.remove(topic)
            if shard is None or sid is None:
                continue
            shard.dispatcher.set_holders(topic, ())
            by_shard.setdefault(sid, []).append(topic)
            if empty:
                emptied.append(shard)
                del ep.shards[sid]
        closing = {s.id for s in emptied}
        for sid, group in by_shard.items():
            shard = ep.shards.get(sid)
            if shard is None or sid in closing:
                continue
            shard.ws.unsubscribe(group)  # also forgets books / marks tickers incomplete
        for shard in emptied:
            log.info("hub: closing %s (no topics left)", shard.name)
            await shard.close()
        if not ep.shards and not ep.refs.wanted():
            self._endpoints.pop(ep.key, None)

    def _reroute(self, ep: _Endpoint, topic: str) -> None:
        shard = ep.shard_for(topic)
        if shard is None:
            return
        holders = sorted(ep.refs.holders(topic), key=lambda c: c.seq)
        shard.dispatcher.set_holders(topic, tuple(holders))

    def _replay(self, ep: _Endpoint, consumer: Consumer, topic: str) -> None:
        """Give a late joiner the topic's status and current state, to it alone."""
        shard = ep.shard_for(topic)
        if shard is None:
            return
        ws = shard.ws
        status = ws.session.subscriptions.status(topic)
        if status is not None and str(status) in _ANSWERED:
            consumer.subscription_answered(
                SubscriptionEvent(
                    shard.name,
                    topic,
                    SubscriptionStatus(str(status)),
                    "shared",
                    self.clock.monotonic(),
                )
            )
        rk = route_key(topic)
        if rk is None:
            return
        event_type = rk[0]
        event: Any = None
        wall_offset = ws.tickers.wall_offset
        if event_type is EventType.TICK:
            state = ws.tickers.by_topic.get(topic)
            if state is not None:
                event = tick_replay_event(state, wall_offset)
        elif event_type is EventType.ORDERBOOK:
            book = ws.books.by_topic.get(topic)
            if book is not None:
                event = book_replay_event(book, wall_offset)
        if event is not None:
            consumer.replays += 1
            consumer.deliverer(event_type)(event)

    # -- control events -----------------------------------------------------------------------

    def _on_control(self, ep: _Endpoint, shard: _Shard, event_type: EventType, event: Any) -> None:
        if event_type is EventType.SUBSCRIPTION:
            assert isinstance(event, SubscriptionEvent)
            for consumer in shard.dispatcher.holders_of(event.topic):
                assert isinstance(consumer, Consumer)
                consumer.subscription_answered(event)
            if event.status in (SubscriptionStatus.CONFIRMED, SubscriptionStatus.REJECTED):
                for fut in ep.waiters.pop(event.topic, ()):
                    if not fut.done():
                        fut.set_result(None)
        elif event_type is EventType.CONNECTION_STATE:
            assert isinstance(event, ConnectionStateEvent)
            for consumer in shard.dispatcher.all_holders():
                consumer.deliverer(event_type)(event)

    async def wait_answered(self, category: str, topics: list[str], timeout: float) -> None:
        ep = self._endpoint(category, create=False)
        if ep is None:
            return
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for topic in topics:
            if ep.status(topic) in _ANSWERED or not ep.refs.is_wanted(topic):
                continue
            fut: asyncio.Future[None] = loop.create_future()
            ep.waiters.setdefault(topic, []).append(fut)
            futures.append(fut)
        if not futures:
            return
        try:
            await asyncio.wait(futures, timeout=timeout)
        finally:
            for topic in topics:
                waiting = ep.waiters.get(topic)
                if waiting:
                    waiting[:] = [f for f in waiting if f not in futures]
                    if not waiting:
                        del ep.waiters[topic]

    def topic_statuses(self, category: str, topics: list[str]) -> dict[str, str]:
        ep = self._endpoint(category, create=False)
        if ep is None:
            return dict.fromkeys(topics, "unsubscribed")
        return {t: ep.status(t) for t in topics}

    # -- linger timer -------------------------------------------------------------------------

    def _wake_timer(self) -> None:
        if self._closed:
            return
        if self._timer is None or self._timer.done():
            self._timer_wake = asyncio.Event()
            self._timer = asyncio.get_running_loop().create_task(
                self._run_timer(), name="hean-hub-linger"
            )
        elif self._timer_wake is not None:
            self._timer_wake.set()

    async def _run_timer(self) -> None:
        wake = self._timer_wake
        assert wake is not None
        while not self._closed:
            deadlines = [
                d for ep in self._endpoints.values() if (d := ep.refs.next_deadline()) is not None
            ]
            if not deadlines:
                return
            wake.clear()
            delay = min(deadlines) - self.clock.monotonic()
            if delay > 0:
                await wait_set(wake, delay)
            now = self.clock.monotonic()
            for ep in list(self._endpoints.values()):
                due = ep.refs.expire(now)
                if due:
                    await self._unsubscribe(ep, due)

    # -- state ----------------------------------------------------------------------------------

    def ticker(self, symbol: str, *, category: str = "linear") -> TickerState | None:
        """The merged ticker of ``symbol`` (``None`` unless some consumer holds its topic)."""
        ep = self._endpoint(category, create=False)
        if ep is None:
            return None
        shard = ep.shard_for(f"tickers.{symbol}")
        return None if shard is None else shard.ws.ticker(symbol)

    def orderbook(
        self, symbol: str, depth: int | None = None, *, category: str = "linear"
    ) -> OrderBook | None:
        """The order book of ``symbol`` (the deepest held when ``depth`` is ``None``)."""
        ep = self._endpoint(category, create=False)
        if ep is None:
            return None
        if depth is not None:
            shard = ep.shard_for(f"orderbook.{depth}.{symbol}")
            return None if shard is None else shard.ws.orderbook(symbol, depth)
        books = [b for s in ep.shards.values() if (b := s.ws.orderbook(symbol)) is not None]
        return max(books, key=lambda b: b.depth) if books else None

    def topic_live(self, topic: str, *, category: str = "linear") -> bool:
        """Whether the connection carrying ``topic`` is live."""
        ep = self._endpoint(category, create=False)
        shard = None if ep is None else ep.shard_for(topic)
        return shard is not None and shard.ws.state is ConnectionState.LIVE

    def connections(self, category: str | None = None) -> list[BybitPublicWebSocket]:
        """The open connections (of one category, or all), in endpoint and shard order."""
        out: list[BybitPublicWebSocket] = []
        for ep in self._endpoints.values():
            if category is None or ep.category == category:
                out.extend(ep.shards[sid].ws for sid in sorted(ep.shards))
        return out

    def holders(self, topic: str, *, category: str = "linear") -> list[str]:
        """Names of the consumers holding ``topic``."""
        ep = self._endpoint(category, create=False)
        if ep is None:
            return []
        return sorted(c.name for c in ep.refs.holders(topic))

    def wanted(self, category: str = "linear") -> set[str]:
        """Topics on the wire for ``category`` (held, or lingering)."""
        ep = self._endpoint(category, create=False)
        return set() if ep is None else ep.refs.wanted()

    def stats(self) -> HubStats:
        conns = []
        for ep in self._endpoints.values():
            for sid in sorted(ep.shards):
                shard = ep.shards[sid]
                s = shard.ws.session.stats
                conns.append(
                    HubConnectionStats(
                        endpoint=ep.key,
                        shard=sid,
                        name=shard.name,
                        state=shard.ws.state,
                        topics=len(ep.planner.topics(sid)),
                        args_chars=ep.planner.chars(sid),
                        connects=s.connects,
                        reconnects=s.reconnects,
                        messages=s.messages,
                    )
                )
        limiters = {id(lim): lim for lim in (self.limiter_for(k.url) for k in self._endpoints)}
        if self._limiter is not None:
            limiters[id(self._limiter)] = self._limiter
        return HubStats(
            connections=conns,
            consumers=[c.stats() for c in self._consumers.values()],
            connect_slots=sum(lim.granted for lim in limiters.values()),
            connect_slots_delayed=sum(lim.delayed for lim in limiters.values()),
            connect_max_delay=max((lim.max_delay for lim in limiters.values()), default=0.0),
        )

    # -- shutdown -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every consumer and connection. Idempotent."""
        if self._closed:
            return
        for consumer in list(self._consumers.values()):
            await consumer.close()
        self._closed = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        for ep in list(self._endpoints.values()):
            shards = list(ep.shards.values())
            ep.shards.clear()
            for shard in shards:
                await shard.close()
        self._endpoints.clear()

    async def __aenter__(self) -> StreamHub:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        n = sum(len(ep.shards) for ep in self._endpoints.values())
        return f"<StreamHub connections={n} consumers={len(self._consumers)}>"


class Consumer:
    """One independent user of the hub's connections (create with :meth:`StreamHub.consumer`).

    It asks for topics (``subscribe*``), and receives the events of *its* topics only, through
    its own :class:`EventBus`: register async handlers with :meth:`on` (own task, bounded queue,
    default policy per stream kind), quick inline callbacks with :meth:`on_inline`, or iterate
    :meth:`stream`. Register handlers before subscribing so that the replayed state of shared
    topics reaches them.
    """

    def __init__(self, hub: ConsumerHost, name: str, seq: int, maxsize: int) -> None:
        self.hub = hub
        """The hub that made this consumer (a :class:`StreamHub` or a ``RemoteHub``)."""
        self.name = name
        self.seq = seq
        self.bus = EventBus(default_maxsize=maxsize)
        """This consumer's private bus (its subscriptions are its handlers)."""
        self.failed: dict[str, str] = {}
        """Topics refused by the exchange (or unanswered), with the reason."""
        self.replays = 0
        """Cached states replayed to this consumer when it joined a shared topic."""
        self._deliverers: dict[EventType, Deliver] = {}
        self._streams: list[EventStream] = []
        self._closed = False

    # -- delivery -------------------------------------------------------------------------------

    def deliverer(self, event_type: EventType) -> Deliver:
        d = self._deliverers.get(event_type)
        if d is None:
            d = self._deliverers[event_type] = self.bus.publisher(event_type)
        return d

    def subscription_answered(self, event: SubscriptionEvent) -> None:
        """The hub passes on an answer about one of this consumer's topics (confirmed, rejected
        with the reason in ``failed``, resync ...); it reaches the consumer's handlers."""
        status = event.status
        if status is SubscriptionStatus.REJECTED or status is SubscriptionStatus.TIMEOUT:
            self.failed[event.topic] = event.reason or status.value
            log.warning(
                "hub: consumer %r: subscription %s %s (%s)",
                self.name,
                event.topic,
                status.value,
                event.reason,
            )
        elif status is SubscriptionStatus.CONFIRMED:
            self.failed.pop(event.topic, None)
        self.deliverer(EventType.SUBSCRIPTION)(event)

    # -- handlers -------------------------------------------------------------------------------

    def on(
        self,
        event_type: EventType,
        handler: Callable[[Any], Awaitable[None]] | Callable[[list[Any]], Awaitable[None]],
        *,
        policy: OverflowPolicy | None = None,
        maxsize: int | None = None,
        batch: bool = False,
        name: str | None = None,
    ) -> Subscription:
        """Await ``handler`` (in this consumer's own task) for events of ``event_type``.

        Args:
            policy: default by stream kind: latest value per topic for tickers and books,
                drop-oldest for trades, klines and liquidations, never-drop (with an alarm
                past ``maxsize``) for subscription/connection events and private streams.
            maxsize: queue bound (default: the consumer's).
            batch: ``async def handler(events: list)`` gets everything queued per wake-up, i.e.
                one call per socket read.
        """
        policy, key = self._policy(event_type, policy)
        return self.bus.subscribe_async(
            event_type,
            handler,
            policy=policy,
            key=key,
            maxsize=maxsize,
            batch=batch,
            name=name or f"{self.name}:{event_type.value}",
        )

    def on_inline(
        self, event_type: EventType, callback: Callable[[Any], None], *, name: str | None = None
    ) -> Subscription:
        """Call ``callback(event)`` inline in the socket reader: for quick work only (it is not
        isolated from stalls; its exceptions are caught and counted)."""
        return self.bus.subscribe(
            event_type, callback, name=name or f"{self.name}:{event_type.value}:inline"
        )

    def stream(
        self,
        event_type: EventType,
        *,
        policy: OverflowPolicy | None = None,
        maxsize: int | None = None,
        name: str | None = None,
    ) -> EventStream:
        """``async for event in consumer.stream(EventType.TICK)``; same policies as :meth:`on`."""
        policy, key = self._policy(event_type, policy)
        stream = self.bus.stream(
            event_type,
            policy=policy,
            key=key,
            maxsize=maxsize,
            name=name or f"{self.name}:{event_type.value}:stream",
        )
        self._streams.append(stream)
        return stream

    @staticmethod
    def _policy(
        event_type: EventType, policy: OverflowPolicy | None
    ) -> tuple[OverflowPolicy, Callable[[Any], Any] | None]:
        chosen = policy_for(event_type) if policy is None else OverflowPolicy(policy)
        if chosen is not OverflowPolicy.CONFLATE:
            return chosen, None
        key = CONFLATE_KEYS.get(event_type)
        if key is None:
            raise ValueError(f"no conflation key is defined for {event_type}")
        return chosen, key

    # -- topics ---------------------------------------------------------------------------------

    async def subscribe(
        self, topics: Iterable[str], *, category: str = "linear", wait: float | None = None
    ) -> dict[str, str]:
        """Hold raw ``topics`` of ``category``'s public stream.

        Returns at once (``wait=None``) or once every topic is confirmed or rejected (at most
        ``wait`` seconds); the result maps each topic to ``pending``, ``confirmed`` or
        ``rejected``.

        Raises:
            ValueError: a bad topic or category, or a topic longer than a connection's budget.
        """
        wanted = _topics(topics)
        validate_category(category)
        self._check_open()
        await self.bus.start()
        self.hub.hold(self, category, wanted)
        if wait is not None:
            await self.hub.wait_answered(category, wanted, wait)
        return self.hub.topic_statuses(category, wanted)

    async def unsubscribe(self, topics: Iterable[str], *, category: str = "linear") -> None:
        """Release ``topics``; the last holder's release unsubscribes them."""
        wanted = _topics(topics)
        for topic in wanted:
            self.failed.pop(topic, None)
        await self.hub.release(self, category, wanted)

    async def subscribe_tickers(
        self, symbols: Iterable[str], *, category: str = "linear", wait: float | None = None
    ) -> dict[str, str]:
        return await self.subscribe(
            [f"tickers.{s}" for s in _symbols(symbols)], category=category, wait=wait
        )

    async def unsubscribe_tickers(
        self, symbols: Iterable[str], *, category: str = "linear"
    ) -> None:
        await self.unsubscribe([f"tickers.{s}" for s in _symbols(symbols)], category=category)

    async def subscribe_orderbook(
        self,
        symbols: Iterable[str],
        depth: int = 50,
        *,
        category: str = "linear",
        wait: float | None = None,
    ) -> dict[str, str]:
        allowed = BOOK_DEPTHS[validate_category(category)]
        if depth not in allowed:
            raise ValueError(
                f"order book depth {depth!r} is not offered for {category}: "
                f"choose one of {', '.join(map(str, allowed))}"
            )
        return await self.subscribe(
            [f"orderbook.{depth}.{s}" for s in _symbols(symbols)], category=category, wait=wait
        )

    async def unsubscribe_orderbook(
        self, symbols: Iterable[str], depth: int = 50, *, category: str = "linear"
    ) -> None:
        await self.unsubscribe(
            [f"orderbook.{depth}.{s}" for s in _symbols(symbols)], category=category
        )

    async def subscribe_trades(
        self, symbols: Iterable[str], *, category: str = "linear", wait: float | None = None
    ) -> dict[str, str]:
        return await self.subscribe(
            [f"publicTrade.{s}" for s in _symbols(symbols)], category=category, wait=wait
        )

    async def subscribe_klines(
        self,
        symbols: Iterable[str],
        interval: str | int = "1",
        *,
        category: str = "linear",
        wait: float | None = None,
    ) -> dict[str, str]:
        interval = str(interval)
        if interval not in KLINE_INTERVALS:
            raise ValueError(
                f"kline interval {interval!r} is not offered: choose one of "
                f"{', '.join(KLINE_INTERVALS)}"
            )
        if category == "option":
            raise ValueError("Bybit offers no kline stream on the option endpoint")
        return await self.subscribe(
            [f"kline.{interval}.{s}" for s in _symbols(symbols)], category=category, wait=wait
        )

    async def subscribe_liquidations(
        self, symbols: Iterable[str], *, category: str = "linear", wait: float | None = None
    ) -> dict[str, str]:
        if category not in ("linear", "inverse"):
            raise ValueError(
                f"Bybit publishes liquidations for linear and inverse contracts, not {category}"
            )
        return await self.subscribe(
            [f"allLiquidation.{s}" for s in _symbols(symbols)], category=category, wait=wait
        )

    def topics(self) -> dict[str, frozenset[str]]:
        """The topics this consumer holds, per category."""
        return self.hub.held_by(self)

    def status(self, topic: str, *, category: str = "linear") -> str:
        """``pending``, ``confirmed``, ``rejected`` or ``unsubscribed``."""
        return self.hub.topic_statuses(category, [topic])[topic]

    # -- state ----------------------------------------------------------------------------------

    def ticker(self, symbol: str, *, category: str = "linear") -> TickerState | None:
        return self.hub.ticker(symbol, category=category)

    def orderbook(
        self, symbol: str, depth: int | None = None, *, category: str = "linear"
    ) -> OrderBook | None:
        return self.hub.orderbook(symbol, depth, category=category)

    def stats(self) -> ConsumerStats:
        subs = self.bus.stats()
        return ConsumerStats(
            name=self.name,
            topics=sum(len(t) for t in self.topics().values()),
            delivered=sum(s.delivered for s in subs),
            dropped=sum(s.dropped for s in subs),
            conflated=sum(s.conflated for s in subs),
            errors=sum(s.errors for s in subs),
            alarms=sum(s.alarms for s in subs),
            depth=sum(s.depth for s in subs),
            max_depth=max((s.max_depth for s in subs), default=0),
            failed=dict(self.failed),
            subscriptions=subs,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"consumer {self.name!r} is closed")

    async def close(self, *, drain_timeout: float = 0.5) -> None:
        """Release every topic, stop this consumer's handlers and end its streams."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.hub.detach(self)
        finally:
            await self.bus.stop(drain_timeout=drain_timeout)
            for stream in self._streams:
                stream.close()
            self._streams.clear()

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        n = sum(len(t) for t in self.topics().values())
        return f"<Consumer {self.name!r} topics={n}{' closed' if self._closed else ''}>"


def _topics(topics: Iterable[str]) -> list[str]:
    if isinstance(topics, str):
        topics = [topics]
    out: list[str] = []
    seen: set[str] = set()
    for topic in topics:
        if not isinstance(topic, str) or not topic or topic != topic.strip() or " " in topic:
            raise ValueError(f"bad topic {topic!r}")
        if topic not in seen:
            seen.add(topic)
            out.append(topic)
    return out


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


if TYPE_CHECKING:

    def _is_a_market_data_hub(hub: StreamHub) -> MarketDataHub:
        return hub  # mypy --strict src checks that StreamHub implements the protocol
