"""``HealthMonitor``: the asyncio driver tying staleness, execution quality and metrics together.

It subscribes to the bus (data events count and feed the :class:`StalenessMonitor`; state,
subscription and auth events keep the connection views current), and runs one task that calls
:meth:`HealthMonitor.step` every ``check_interval`` seconds: judge staleness, carry out what it
asks for (resubscribe a topic, recycle a connection, publish a ``STALENESS`` event), sample ping
round-trip times and per-topic rates, and update :class:`ExecutionQuality` (which publishes
``EXECUTION_QUALITY`` on every change).

Usage::

    health = HealthMonitor(bus, [ws])
    await health.start()
    ...
    health.quality.ws_ok            # safe to trade?
    health.health()                 # (ok, the /health document)
    await HealthServer(health, port=9180).start()   # /health, /metrics, dashboard

Which topics are watched comes from each connection's own subscriptions (so metric labels are
bounded by configuration): every subscribed, not rejected topic, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from hean.core.bus import EventBus, Subscription
from hean.core.clock import Clock, SystemClock, wall_offset
from hean.core.events import (
    AuthEvent,
    ConnectionStateEvent,
    EventType,
    KlineEvent,
    LiquidationEvent,
    OrderBookEvent,
    SubscriptionEvent,
    SubscriptionStatus,
    TickEvent,
    TradeEvent,
)
from hean.core.lifecycle import ConnectionState
from hean.exchange.bybit.protocol.backoff import BreakerState
from hean.exchange.bybit.protocol.session import Session
from hean.exchange.bybit.protocol.subscriptions import TopicStatus
from hean.exchange.bybit.transport import WsConnection
from hean.health.metrics import LAG_BUCKETS, RTT_BUCKETS, Histogram
from hean.health.quality import ConnectionView, ExecutionQuality, assess
from hean.health.staleness import (
    Recycle,
    Report,
    Resubscribe,
    Stage,
    StaleAction,
    StalenessMonitor,
    StalenessPolicy,
    TopicWatch,
    topic_kind,
)

__all__ = [
    "AccountFeed",
    "AccountStatus",
    "Feed",
    "FeedStatus",
    "HealthMonitor",
    "public_url",
    "recycle_connection",
]

log = logging.getLogger("hean.health")

HISTORY = 50
"""Connection state changes kept for the dashboard."""
RATE_WINDOW = 60
"""Per-topic rate samples kept (one per ``sample_interval``) for the dashboard sparklines."""


WATCHED_KINDS = frozenset(
    ("tickers", "orderbook", "publicTrade", "kline", "allLiquidation", "liquidation")
)
"""Topic kinds whose messages the monitor counts and judges (market data). Other topics of a
connection (private streams) are not watched; the connection itself is."""


class Feed(Protocol):
    """A connection the monitor can watch, e.g. a ``BybitPublicWebSocket`` (market data is
    matched to it by its ``category`` attribute, when it has one) or a private stream."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def session(self) -> Session: ...
    @property
    def connection(self) -> WsConnection: ...
    def recycle(self, reason: str = ...) -> None: ...


class AccountFeed(Protocol):
    """An account view the monitor can watch, e.g. :class:`hean.account.Account`: its private
    connection is watched like any other, and ``ws_ok`` is false while it is not in sync."""

    @property
    def name(self) -> str: ...
    @property
    def in_sync(self) -> bool: ...
    @property
    def sync_state(self) -> str: ...
    @property
    def private(self) -> Any: ...
    @property
    def stats(self) -> Any: ...


@dataclass(slots=True)
class AccountStatus:
    """What the monitor keeps about one account (read-only for users)."""

    account: AccountFeed
    required: bool = True

    @property
    def name(self) -> str:
        return self.account.name

    def sync_state(self) -> str:
        """``in_sync``, ``reconciling`` or ``failing`` (the last run failed; retrying)."""
        return self.account.sync_state


@dataclass(slots=True)
class FeedStatus:
    """What the monitor keeps about one connection (read-only for users)."""

    feed: Feed
    required: bool = True
    reason: str = ""
    """Reason of the last state change seen."""
    auth_seen: bool = False
    auth_ok: bool = False
    auth_reason: str = ""
    auth_failures: dict[str, int] = field(default_factory=dict)
    pongs_seen: int = 0
    rtt: Histogram = field(default_factory=lambda: Histogram(RTT_BUCKETS))
    lag: dict[str, Histogram] = field(default_factory=dict)
    """Exchange-to-local lag per topic kind."""
    recycles: int = 0
    rejected: dict[str, str] = field(default_factory=dict)
    """Rejected topics and the server's reason."""

    @property
    def name(self) -> str:
        return self.feed.name

    @property
    def auth_state(self) -> str:
        """``not_required``, ``pending``, ``ok`` or ``failed``."""
        session = self.feed.session
        state = session.state
        if state is ConnectionState.AUTHENTICATING:
            return "pending"
        if state.value == "auth_failed":
            return "failed"
        if getattr(session, "auth", None) is not None:
            # an authenticated stream (private, trade): judged by its session, whether or not
            # its AUTH event came before this monitor was watching
            if state is ConnectionState.LIVE:
                return "ok"
            return "failed" if getattr(session, "last_auth_failure", None) else "pending"
        if not self.auth_seen:
            return "not_required"
        return "ok" if self.auth_ok else "failed"


@dataclass(slots=True)
class _Route:
    watch: TopicWatch
    lag: Histogram
    status: FeedStatus


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment (safe to show on a page)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class HealthMonitor:
    """Watches connections and topics; see the module docstring.

    Args:
        bus: the bus the connections publish on.
        feeds: connections to watch (more with :meth:`add`).
        clock: time source; must be the connections' clock (monotonic times are compared).
        policy: staleness thresholds and escalation.
        check_interval: seconds between checks.
        sample_interval: seconds between rate samples (dashboard sparklines).
        optional_topics: topics whose staleness does not make ``ws_ok`` false.
        discover: called at every check for the current connections (e.g. a ``StreamHub``'s
            ``hub.connections``, which opens them as topics are wanted): new ones are watched,
            ones no longer listed are dropped.
    """

    def __init__(
        self,
        bus: EventBus,
        feeds: Iterable[Feed] = (),
        *,
        clock: Clock | None = None,
        policy: StalenessPolicy | None = None,
        check_interval: float = 0.25,
        sample_interval: float = 1.0,
        optional_topics: Iterable[str] = (),
        discover: Callable[[], Iterable[Feed]] | None = None,
    ) -> None:
        if not check_interval > 0:
            raise ValueError(f"check_interval must be > 0, got {check_interval!r}")
        if not sample_interval > 0:
            raise ValueError(f"sample_interval must be > 0, got {sample_interval!r}")
        self.bus = bus
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.check_interval = check_interval
        self.sample_interval = sample_interval
        self.optional_topics = frozenset(optional_topics)
        self.discover = discover
        self._discovered: set[str] = set()
        now = self.clock.monotonic()
        self.started_at = now
        self.staleness = StalenessMonitor(policy)
        self.quality = ExecutionQuality(bus.publish, now=now)
        self.feeds: dict[str, FeedStatus] = {}
        self.accounts: dict[str, AccountStatus] = {}
        """Watched account views (see :meth:`add_account`)."""
        self._buses: list[Any] = []
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        """Recent connection state changes (newest last)."""
        self.rates: dict[tuple[str, str], deque[float]] = {}
        """Messages per second per (connection, topic), one sample per ``sample_interval``."""
        self.prices: dict[tuple[str, str], deque[float]] = {}
        """Last price per (category, symbol), one sample per ``sample_interval`` (sparklines)."""
        self.checks = 0
        self._routes: dict[str, dict[str, _Route]] = {}
        self._misses: set[tuple[str, str]] = set()
        self._sample_counts: dict[tuple[str, str], int] = {}
        self._sampled_at: float | None = None
        self._subs: list[Subscription] = []
        self._observe_watch = self.staleness.observe
        self._task: asyncio.Task[None] | None = None
        self._wall_offset = wall_offset(self.clock)
        from hean.health.metrics import build_registry  # metrics reads this object

        self.registry = build_registry(self)
        """The Prometheus :class:`~prometheus_client.CollectorRegistry` of this monitor."""
        for feed in feeds:
            self.add(feed)
        self._discover()

    # -- set-up -------------------------------------------------------------------------------

    def add(self, feed: Feed, *, required: bool = True) -> FeedStatus:
        """Watch another connection (its name must be unique)."""
        if feed.name in self.feeds:
            raise ValueError(f"a connection named {feed.name!r} is already watched")
        status = FeedStatus(feed, required=required)
        self.feeds[feed.name] = status
        self._routes.setdefault(_category(feed), {})
        self._sync(self.clock.monotonic())
        return status

    def add_account(self, account: AccountFeed, *, required: bool = True) -> AccountStatus:
        """Watch an account view (e.g. :class:`hean.account.Account`): ``ws_ok`` is false and
        ``/health`` says ``account <name> reconciling`` from a private gap until the
        reconciliation that follows completes; its private connection is watched too (state,
        auth, ping), from the account's own bus when it has one."""
        if account.name in self.accounts:
            raise ValueError(f"an account named {account.name!r} is already watched")
        status = AccountStatus(account, required=required)
        self.accounts[account.name] = status
        private = account.private
        if private is not None and private.name not in self.feeds:
            self.add(private, required=required)
        bus = getattr(private, "bus", None)
        if bus is not None and bus is not self.bus and all(b is not bus for b in self._buses):
            self._buses.append(bus)
            if self._subs:
                self._subs.extend(self._subscribe_control(bus))
        return status

    def remove(self, name: str) -> FeedStatus | None:
        """Stop watching the connection called ``name`` (and its topics)."""
        status = self.feeds.pop(name, None)
        if status is None:
            return None
        self._discovered.discard(name)
        for w in [w for w in self.staleness if w.connection == name]:
            self._unwatch(status.feed, w)
        return status

    def _discover(self) -> None:
        if self.discover is None:
            return
        current = {feed.name: feed for feed in self.discover()}
        for name in [n for n in self._discovered if n not in current]:
            self.remove(name)
        for name, feed in current.items():
            status = self.feeds.get(name)
            if status is not None and status.feed is not feed and name in self._discovered:
                self.remove(name)  # a new connection under an old name
                status = None
            if status is None:
                self.add(feed)
                self._discovered.add(name)

    async def start(self) -> None:
        """Subscribe to the bus and start the periodic check (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self.attach()
        self.step()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="hean-health")

    def attach(self) -> None:
        """Subscribe to the bus without starting the periodic check (drive :meth:`step` by hand,
        e.g. with a ``ManualClock`` in tests). Idempotent."""
        if not self._subs:
            bus = self.bus
            self._subs = [
                bus.subscribe(EventType.TICK, self._on_tick, name="health"),
                bus.subscribe(EventType.ORDERBOOK, self._on_book, name="health"),
                bus.subscribe(EventType.TRADE, self._on_trade, name="health"),
                bus.subscribe(EventType.KLINE, self._on_kline, name="health"),
                bus.subscribe(EventType.LIQUIDATION, self._on_liquidation, name="health"),
                *self._subscribe_control(bus),
            ]
            for extra in self._buses:
                self._subs.extend(self._subscribe_control(extra))

    def _subscribe_control(self, bus: Any) -> list[Subscription]:
        return [
            bus.subscribe(EventType.CONNECTION_STATE, self._on_state, name="health"),
            bus.subscribe(EventType.SUBSCRIPTION, self._on_subscription, name="health"),
            bus.subscribe(EventType.AUTH, self._on_auth, name="health"),
        ]

    async def stop(self) -> None:
        """Stop checking and leave the bus."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in self._subs:
            sub.unsubscribe()
        self._subs = []

    async def __aenter__(self) -> HealthMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        logged_at: float | None = None
        while True:
            await self.clock.sleep(self.check_interval)
            try:
                self.step()
            except Exception:  # the watchdog must never die of its own bug (logged every 10 s)
                now = self.clock.monotonic()
                if logged_at is None or now - logged_at >= 10.0:
                    logged_at = now
                    log.exception("health check failed")

    # -- the periodic check -------------------------------------------------------------------

    def step(self, now: float | None = None) -> list[StaleAction]:
        """One check: sync watches, judge staleness, act, sample, update quality."""
        if now is None:
            now = self.clock.monotonic()
        self.checks += 1
        self._discover()
        self._sync(now)
        for status in self.feeds.values():
            self._sample_rtt(status)
        actions = self.staleness.check(now)
        self._execute(actions, now)
        self._sample_rates(now)
        self._assess(now)
        return actions

    def _sync(self, now: float) -> None:
        """Watch exactly the subscribed, not rejected topics of every connection."""
        mon = self.staleness
        for status in self.feeds.values():
            feed = status.feed
            session = feed.session
            live = session.state is ConnectionState.LIVE
            mon.connection_state(feed.name, live, session.stats.live_since)
            wanted = session.subscriptions.topics
            for topic, st in wanted.items():
                if st is not TopicStatus.REJECTED:
                    status.rejected.pop(topic, None)
                if topic_kind(topic) in WATCHED_KINDS and mon.get(feed.name, topic) is None:
                    self._add_watch(status, topic, now)
            for w in [w for w in mon if w.connection == feed.name]:
                now_status = wanted.get(w.topic)
                if now_status is None:
                    self._unwatch(feed, w)
                elif now_status is TopicStatus.REJECTED:
                    # still watched (issue 13): a refused topic receives nothing, and its row
                    # must say so (stale, then down, with the server's reason)
                    w.rejected = status.rejected.get(w.topic) or "rejected"
                else:
                    w.rejected = ""
        self._misses.clear()

    def _unwatch(self, feed: Feed, w: TopicWatch) -> None:
        self.staleness.unwatch(feed.name, w.topic)
        routes = self._routes.get(_category(feed), {})
        route = routes.get(w.topic)
        if route is not None and route.watch is w:
            del routes[w.topic]
        self.rates.pop((feed.name, w.topic), None)
        self._sample_counts.pop((feed.name, w.topic), None)

    def _add_watch(self, status: FeedStatus, topic: str, now: float) -> _Route:
        feed = status.feed
        w = self.staleness.watch(
            feed.name, topic, now, required=status.required and topic not in self.optional_topics
        )
        lag = status.lag.get(w.kind)
        if lag is None:
            lag = status.lag[w.kind] = Histogram(LAG_BUCKETS)
        route = _Route(w, lag, status)
        self._routes.setdefault(_category(feed), {}).setdefault(topic, route)
        self.rates.setdefault((feed.name, topic), deque(maxlen=RATE_WINDOW))
        return route

    def _sample_rtt(self, status: FeedStatus) -> None:
        hb = status.feed.session.heartbeat
        pongs = hb.pongs_received
        if pongs < status.pongs_seen:
            status.pongs_seen = 0
        if pongs > status.pongs_seen:
            status.pongs_seen = pongs
            if hb.rtt is not None:
                status.rtt.observe(hb.rtt)

    def _sample_rates(self, now: float) -> None:
        last = self._sampled_at
        if last is not None and now - last < self.sample_interval:
            return
        self._sampled_at = now
        for w in self.staleness:
            key = (w.connection, w.topic)
            before = self._sample_counts.get(key)
            self._sample_counts[key] = w.messages
            if last is None or before is None:
                continue
            series = self.rates.setdefault(key, deque(maxlen=RATE_WINDOW))
            series.append(round((w.messages - before) / (now - last), 3))
        for w in self.staleness:
            if w.kind == "tickers" and w.last_price is not None:
                status = self.feeds.get(w.connection)
                cat = "" if status is None else _category(status.feed)
                prices = self.prices.setdefault((cat, w.symbol), deque(maxlen=RATE_WINDOW))
                prices.append(w.last_price)

    def _assess(self, now: float) -> None:
        views = [self._view(s) for s in self.feeds.values()]
        reasons = assess(views, self.staleness)
        for status in self.feeds.values():
            if status.required:
                for topic, why in sorted(status.rejected.items()):
                    reasons.append(f"subscription {topic} rejected ({why})")
        for acct in self.accounts.values():
            if not acct.required:
                continue
            sync = acct.sync_state()
            if sync == "reconciling":
                reasons.append(f"account {acct.name} reconciling")
            elif sync == "failing":
                reasons.append(f"account {acct.name} reconciling (last run failed, retrying)")
        rtts = [
            s.feed.session.heartbeat.rtt
            for s in self.feeds.values()
            if s.feed.session.state is ConnectionState.LIVE
        ]
        rtt = max((r for r in rtts if r is not None), default=None)
        lags = [
            w.last_lag
            for w in self.staleness
            if w.required and w.stage is Stage.FRESH and w.last_lag is not None
        ]
        lag = max((x for x in lags if x is not None), default=None)
        self.quality.update(reasons, now, ping_rtt=rtt, lag=lag)

    def _view(self, status: FeedStatus) -> ConnectionView:
        session = status.feed.session
        state = session.state
        reason = status.reason
        if not reason and state is not ConnectionState.LIVE:
            reason = session.stats.last_disconnect_reason
        return ConnectionView(
            name=status.name,
            state=state,
            reason=reason,
            live_since=session.stats.live_since,
            breaker_open=session.breaker.state is BreakerState.OPEN,
            auth_failed=_auth_failure(status),
            required=status.required,
        )

    # -- actions ------------------------------------------------------------------------------

    def _execute(self, actions: list[StaleAction], now: float) -> None:
        for action in actions:
            if isinstance(action, Report):
                self.bus.publish(EventType.STALENESS, action.event)
                continue
            status = self.feeds.get(action.connection)
            if status is None:
                continue
            feed = status.feed
            if isinstance(action, Resubscribe):
                feed.connection.run_actions(feed.session.resync(action.topic, action.reason, now))
            elif isinstance(action, Recycle):
                status.recycles += 1
                recycle_connection(feed, action.reason)

    # -- bus callbacks (sync, on the reader's path: keep them short) ---------------------------

    def _route(self, category: str, topic: str) -> _Route | None:
        routes = self._routes.get(category)
        route = routes.get(topic) if routes is not None else None
        if route is not None:
            return route
        key = (category, topic)
        if key in self._misses:
            return None
        # A topic (or connection) new since the last check: watch it now, so that no message
        # goes uncounted. At most once per topic and check for a topic nobody here wants.
        self._discover()
        route = self._routes.get(category, {}).get(topic)
        if route is not None:
            return route
        if topic_kind(topic) in WATCHED_KINDS:
            for status in self.feeds.values():
                feed = status.feed
                if _category(feed) == category and topic in feed.session.subscriptions.topics:
                    return self._add_watch(status, topic, self.clock.monotonic())
        self._misses.add(key)
        return None

    def _observe(self, route: _Route, now: float, recv_wall_ms: int, exchange_ts: int) -> None:
        lag: float | None = None
        if exchange_ts > 0:
            lag = (recv_wall_ms - exchange_ts) * 0.001
            route.lag.observe(lag if lag > 0.0 else 0.0)
        actions = self._observe_watch(route.watch, now, lag)
        if actions:
            self._execute(actions, now)

    def _on_tick(self, ev: TickEvent) -> None:
        # The hottest path of the monitor (one call per ticker message): kept flat.
        ticker = ev.ticker
        routes = self._routes.get(ev.category)
        route = None if routes is None else routes.get(ticker.topic)
        if route is None:
            route = self._route(ev.category, ticker.topic)
            if route is None:
                return
        w = route.watch
        w.ticker = ticker
        w.last_price = ev.last_price
        w.bid = ev.bid
        w.ask = ev.ask
        self._observe(route, ev.recv_time, ev.recv_wall_ms, ev.exchange_ts)

    def _on_book(self, ev: OrderBookEvent) -> None:
        route = self._route(ev.category, ev.topic)
        if route is None:
            return
        w = route.watch
        w.book_valid = ev.valid
        bid, ask = ev.best_bid, ev.best_ask
        w.bid = None if bid is None else float(bid[0])
        w.ask = None if ask is None else float(ask[0])
        if not ev.valid:
            # An invalid book is no update, whatever keeps arriving: its silence goes on, so a
            # book that stays invalid goes stale and escalates like a silent one (issue 12).
            w.book_reason = ev.book.invalid_reason or "invalid"
            return
        w.book_reason = ""
        self._observe(route, ev.recv_time, ev.recv_wall_ms, ev.exchange_ts)

    def _on_trade(self, ev: TradeEvent) -> None:
        route = self._route(ev.category, f"publicTrade.{ev.symbol}")
        if route is None:
            return
        if ev.trades:
            price = getattr(ev.trades[-1], "price", None)
            with contextlib.suppress(TypeError, ValueError):
                route.watch.last_price = None if price is None else float(price)
        self._observe(route, ev.recv_time, ev.recv_wall_ms, ev.exchange_ts)

    def _on_kline(self, ev: KlineEvent) -> None:
        route = self._route(ev.category, f"kline.{ev.interval}.{ev.symbol}")
        if route is not None:
            self._observe(route, ev.recv_time, ev.recv_wall_ms, ev.exchange_ts)

    def _on_liquidation(self, ev: LiquidationEvent) -> None:
        route = self._route(ev.category, f"allLiquidation.{ev.symbol}")
        if route is None:
            route = self._route(ev.category, f"liquidation.{ev.symbol}")
        if route is not None:
            self._observe(route, ev.recv_time, ev.recv_wall_ms, ev.exchange_ts)

    def _on_state(self, ev: ConnectionStateEvent) -> None:
        status = self.feeds.get(ev.connection)
        if status is None:
            return
        status.reason = ev.reason
        live = ev.new is ConnectionState.LIVE
        self.staleness.connection_state(ev.connection, live, ev.time if live else None)
        self.history.append(
            {
                "time": ev.time,
                "wall_ms": int((ev.time + self._wall_offset) * 1000),
                "connection": ev.connection,
                "old": ev.old.value,
                "new": ev.new.value,
                "reason": ev.reason,
                "attempt": ev.attempt,
            }
        )

    def _on_subscription(self, ev: SubscriptionEvent) -> None:
        status = self.feeds.get(ev.connection)
        if status is None:
            return
        if ev.status is SubscriptionStatus.REJECTED:
            status.rejected[ev.topic] = ev.reason[:120]
        elif ev.status in (SubscriptionStatus.CONFIRMED, SubscriptionStatus.UNSUBSCRIBED):
            status.rejected.pop(ev.topic, None)

    def _on_auth(self, ev: AuthEvent) -> None:
        status = self.feeds.get(ev.connection)
        if status is None:
            return
        status.auth_seen = True
        status.auth_ok = ev.ok
        status.auth_reason = "" if ev.ok else ev.reason
        if not ev.ok:
            key = ev.reason if ev.reason in AUTH_REASONS else "unknown"
            status.auth_failures[key] = status.auth_failures.get(key, 0) + 1

    # -- views --------------------------------------------------------------------------------

    def status(self) -> str:
        """``ok``, ``degraded`` (connections live, some data stale) or ``down``."""
        if self.quality.ws_ok:
            return "ok"
        for s in self.feeds.values():
            if s.required and s.feed.session.state is not ConnectionState.LIVE:
                return "down"
        if any(a.required and a.sync_state() == "failing" for a in self.accounts.values()):
            return "down"
        if any(w.stage is Stage.DOWN for w in self.staleness if w.required):
            return "down"
        return "degraded"

    def _connection_doc(self, status: FeedStatus, now: float) -> dict[str, Any]:
        session = status.feed.session
        stats = session.stats
        view = self._view(status)
        hb = session.heartbeat
        return {
            "state": view.state.value,
            "reason": view.reason,
            "url": public_url(status.feed.url),
            "category": _category(status.feed),
            "required": status.required,
            "uptime_s": None if stats.live_since is None else round(now - stats.live_since, 3),
            "connects": stats.connects,
            "drops": stats.drops,
            "reconnects": stats.reconnects,
            "last_disconnect_reason": stats.last_disconnect_reason,
            "detail": connection_reason(session, now),
            "circuit_breaker": session.breaker.state.value,
            "auth": status.auth_state,
            "ping_rtt_ms": None if hb.rtt is None else round(hb.rtt * 1e3, 3),
            "last_message_age_s": None
            if stats.last_message_at is None
            else round(now - stats.last_message_at, 3),
            "messages": stats.messages,
            "decode_errors": stats.decode_errors,
            "recycles": status.recycles,
            "rejected_topics": dict(status.rejected),
        }

    def _account_doc(self, status: AccountStatus) -> dict[str, Any]:
        stats = status.account.stats
        core = getattr(stats, "state", None)
        last = getattr(stats, "last_run", None)
        retry_in = getattr(stats, "retry_in", None)
        return {
            "sync": status.sync_state(),
            "in_sync": status.account.in_sync,
            "required": status.required,
            "private_connection": getattr(status.account.private, "name", None),
            "open_orders": getattr(core, "open_orders", None),
            "positions": getattr(core, "positions", None),
            "runs": getattr(core, "runs", None),
            "runs_failed": getattr(core, "runs_failed", None),
            "consecutive_failures": getattr(stats, "consecutive_failures", None),
            "retry_in_s": None if retry_in is None else round(retry_in, 3),
            "rest_calls": getattr(stats, "rest_calls", None),
            "executions_seen": getattr(core, "executions_seen", None),
            "duplicate_executions": getattr(core, "duplicate_executions", None),
            "buffered": getattr(core, "buffered", None),
            "last_run": None
            if last is None
            else {
                "trigger": last.trigger,
                "ok": last.ok,
                "error": last.error,
                "duration_s": round(last.duration, 4),
                "rest_calls": last.rest_calls,
                "orders_changed": last.orders_changed,
                "orders_closed": last.orders_closed,
                "external_orders": last.external_orders,
                "executions_new": last.executions_new,
                "positions_changed": last.positions_changed,
                "wallet_changed": last.wallet_changed,
            },
        }

    def _topic_doc(self, w: TopicWatch, now: float) -> dict[str, Any]:
        return {
            "connection": w.connection,
            "symbol": w.symbol,
            "kind": w.kind,
            "age_s": round(w.silence(now), 3),
            "received": w.last_update is not None,
            "threshold_s": w.threshold,
            "stale": w.stale,
            "stage": w.stage.value,
            "reason": self._topic_reason(w, now),
            "stale_fields": sorted(w.field_episodes),
            "required": w.required,
            "messages": w.messages,
        }

    def _topic_reason(self, w: TopicWatch, now: float) -> str:
        """Why ``w`` is not fresh, in words (empty when it is fresh and receiving)."""
        if w.rejected:
            return f"subscription rejected: {w.rejected}"
        status = self.feeds.get(w.connection)
        if status is not None and status.feed.session.state is not ConnectionState.LIVE:
            return f"connection {connection_reason(status.feed.session, now)}"
        if w.kind == "orderbook" and w.book_valid is False:
            return f"book invalid: {w.book_reason or 'invalid'}"
        silence = w.silence(now)
        if w.stage is not Stage.FRESH:
            steps = {Stage.STALE: "resubscribed", Stage.RECYCLED: "connection recycled",
                     Stage.DOWN: "feed down"}  # fmt: skip
            never = "" if w.last_update is not None else ", never received"
            return f"no update for {silence:.1f}s{never} ({steps.get(w.stage, w.stage.value)})"
        if w.field_episodes:
            return ", ".join(f"{n} frozen" for n in sorted(w.field_episodes))
        if w.last_update is None:
            return "waiting for the first update"
        return ""

    def health(self, now: float | None = None) -> tuple[bool, dict[str, Any]]:
        """``(ok, document)`` for ``/health``: ok is ``quality.ws_ok``.

        The document: ``status``, ``ws_ok``, ``reasons``, ``ping_rtt_ms``, ``lag_ms`` (receive
        wall time minus the exchange timestamp, as measured: negative when this machine's clock
        is behind the exchange's by more than the latency), ``since``,
        ``for_s``, ``connections`` (name -> state, reason, breaker, auth, ...), ``topics``
        (connection name -> topic -> age, threshold, stage, ...) and ``accounts`` (name -> sync
        ``in_sync`` / ``reconciling`` / ``failing``, the last reconciliation run, counters).
        """
        if now is None:
            now = self.clock.monotonic()
        q = self.quality
        topics: dict[str, dict[str, Any]] = {name: {} for name in self.feeds}
        for w in sorted(self.staleness, key=lambda w: w.topic):
            topics.setdefault(w.connection, {})[w.topic] = self._topic_doc(w, now)
        doc = {
            "status": self.status(),
            **q.as_dict(now),
            "connections": {n: self._connection_doc(s, now) for n, s in self.feeds.items()},
            "topics": topics,
            "accounts": {n: self._account_doc(a) for n, a in self.accounts.items()},
        }
        return q.ws_ok, doc

    def _symbols_doc(self, topics: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One row per symbol (the dashboard's table): its ticker's price and rate, its book's
        validity, best prices and depth, the worst stage of its topics and why."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for t in topics:
            status = self.feeds.get(t["connection"])
            cat = "" if status is None else _category(status.feed)
            key = (cat, t["symbol"])
            row = rows.get(key)
            if row is None:
                row = rows[key] = {
                    "symbol": t["symbol"], "category": cat, "connections": [],
                    "last_price": None, "bid": None, "ask": None, "spread": None,
                    "decimals": None, "rate": None, "lag_ms": None, "prices": [],
                    "book": None, "age_s": None, "stage": "fresh", "stale": False,
                    "reason": "", "topics": [], "messages": 0,
                }  # fmt: skip
            if t["connection"] not in row["connections"]:
                row["connections"].append(t["connection"])
            row["topics"].append(t["topic"])
            row["messages"] += t["messages"]
            w = self.staleness.get(t["connection"], t["topic"])
            if t["kind"] == "tickers":
                row.update(last_price=t["last_price"], rate=t["rate"], lag_ms=t["lag_ms"])
                if row["bid"] is None:
                    row.update(bid=t["bid"], ask=t["ask"])
                ticker = None if w is None else w.ticker
                fields = getattr(ticker, "fields", None)
                if isinstance(fields, dict):
                    row["decimals"] = _decimals(fields.get("lastPrice"))
                row["prices"] = list(self.prices.get(key, ()))
            elif t["kind"] == "orderbook":
                depth = t["topic"].split(".")[1]
                book_stale = t["stage"] != "fresh" or bool(t["reason"])
                row["book"] = {
                    "valid": t["book_valid"], "reason": t["book_reason"],
                    "depth": int(depth) if depth.isdigit() else None,
                    "stale": book_stale and t["book_valid"] is not False,
                }  # fmt: skip
                if t["bid"] is not None:
                    row.update(bid=t["bid"], ask=t["ask"])
            if t["threshold_s"] is not None and t["required"]:
                if row["age_s"] is None or t["age_s"] > row["age_s"]:
                    row["age_s"] = t["age_s"]
                if _STAGE_ORDER.get(t["stage"], 0) > _STAGE_ORDER.get(row["stage"], 0):
                    row["stage"] = t["stage"]
                row["stale"] = row["stale"] or t["stale"]
                if t["reason"] and (not row["reason"] or t["stale"]):
                    row["reason"] = t["reason"]
        for row in rows.values():
            if row["bid"] is not None and row["ask"] is not None:
                spread = row["ask"] - row["bid"]
                d = row["decimals"]
                row["spread"] = round(spread, d) if d is not None else round(spread, 10)
        return sorted(rows.values(), key=lambda r: (r["category"], r["symbol"]))

    def state(self, now: float | None = None) -> dict[str, Any]:
        """Everything the dashboard shows (``/api/state``)."""
        if now is None:
            now = self.clock.monotonic()
        _, doc = self.health(now)
        topics = []
        for w in self.staleness:
            t = self._topic_doc(w, now)
            rates = self.rates.get((w.connection, w.topic))
            t.update(
                topic=w.topic,
                rate=rates[-1] if rates else None,
                rates=list(rates) if rates else [],
                last_price=w.last_price,
                bid=w.bid,
                ask=w.ask,
                lag_ms=None if w.last_lag is None else round(w.last_lag * 1e3, 3),
                book_valid=w.book_valid,
                book_reason=w.book_reason,
                episodes=w.episodes,
                resubscribes=w.resubscribes,
            )
            topics.append(t)
        doc["topics"] = sorted(
            topics, key=lambda t: (t["symbol"], t["kind"], t["topic"], t["connection"])
        )
        doc["symbols"] = self._symbols_doc(doc["topics"])
        doc["history"] = [{**h, "ago_s": round(now - h["time"], 3)} for h in self.history]
        doc["wall_ms"] = int((now + self._wall_offset) * 1000)
        doc["uptime_s"] = round(now - self.started_at, 3)
        doc["check_interval_s"] = self.check_interval
        return doc


def _auth_failure(status: FeedStatus) -> str | None:
    """The reason of a failed authentication, or ``None``."""
    if status.auth_seen and not status.auth_ok:
        return status.auth_reason
    if status.auth_state == "failed":
        failure = getattr(status.feed.session, "last_auth_failure", None)
        return str(getattr(failure, "reason", "")) or "rejected"
    return None


def connection_reason(session: Session, now: float) -> str:
    """A connection's state in words, with what it waits for: ``live``, ``backoff: retry in
    3.2s (heartbeat_timeout)``, ``circuit open: next try in 41s``, ``authentication failed
    (bad_key)``, ``connecting`` ..."""
    state = session.state
    last = session.stats.last_disconnect_reason
    if state is ConnectionState.LIVE:
        return "live"
    breaker = session.breaker
    if breaker.state is BreakerState.OPEN:
        cooldown = max(0.0, breaker.retry_at - now)
        return f"circuit open: next try in {cooldown:.0f}s" + (f" ({last})" if last else "")
    if state is ConnectionState.BACKOFF:
        at = session.reconnect_at
        retry = "" if at is None else f": retry in {max(0.0, at - now):.1f}s"
        return f"backoff{retry}" + (f" ({last})" if last else "")
    if state.value == "auth_failed":
        failure = session.last_auth_failure
        why = failure.message if failure is not None else last
        return "authentication failed" + (f": {why}" if why else "")
    if state is ConnectionState.CONNECTING and last:
        return f"connecting (last failure: {last})"
    return state.value


_STAGE_ORDER = {"fresh": 0, "stale": 1, "recycled": 2, "down": 3}


def _decimals(text: object) -> int | None:
    if not isinstance(text, str) or not text:
        return None
    _, dot, frac = text.partition(".")
    return len(frac) if dot else 0


def _category(feed: Feed) -> str:
    category = getattr(feed, "category", None)
    return category if isinstance(category, str) else ""


AUTH_REASONS = frozenset(
    ("bad_key", "bad_signature", "expired", "clock_skew", "too_many_sessions", "unknown")
)
"""Auth failure reasons used as metric labels (anything else counts as ``unknown``)."""


def recycle_connection(feed: Feed, reason: str) -> None:
    """Drop ``feed``'s connection so it reconnects (and resubscribes everything)."""
    feed.recycle(reason)
