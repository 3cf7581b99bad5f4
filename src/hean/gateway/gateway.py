"""``Gateway``: one process owns the exchange connections and publishes every event to Redis.

::

    hub = StreamHub(host=...)                        # the in-process consumers keep using it
    gw = Gateway(hub, "redis://127.0.0.1:6379/0", prefix="hean")
    await gw.start()
    await gw.subscribe_tickers(["BTCUSDT"]); await gw.subscribe_orderbook(["BTCUSDT"], 50)
    gw.add_account(account)                          # account events + the account state
    ...
    await gw.close()

The hub's events reach the gateway through an ordinary hub consumer (``inline`` callbacks): each
is encoded (msgspec msgpack) and queued in the :class:`~hean.gateway.core.Outbox` at once; one
writer task sends what is queued in pipelined batches: everything queued since its last write,
packed by hand into one buffer (``XADD ... MAXLEN ~ N`` per entry, its fixed part packed once per
stream, and ``SET`` of the snapshot key after a snapshot entry; :mod:`hean.gateway.resp`), one
write and one round trip per batch, the replies parsed in bulk by hiredis. The socket reader
never waits for Redis. While Redis is unreachable the in-process consumers are served as usual,
the outbox keeps at most ``max_pending`` entries (oldest dropped and counted, the streams
concerned resnapshot), and the writer reconnects with jittered exponential backoff; after every
(re)connect every ticker and book stream gets a fresh snapshot (Redis may have restarted empty)
and a ``lost`` control entry says what could not be published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from hean.core.bus import EventBus, Subscription
from hean.core.clock import Clock, SystemClock
from hean.core.events import (
    AccountSyncEvent,
    ConnectionStateEvent,
    EventType,
    ExecutionEvent,
    KlineEvent,
    LiquidationEvent,
    OrderBookEvent,
    OrderUpdateEvent,
    PositionUpdateEvent,
    ReconciledEvent,
    SubscriptionEvent,
    SubscriptionStatus,
    TickEvent,
    TradeEvent,
    WalletUpdateEvent,
)
from hean.gateway import resp
from hean.gateway.core import Outbox, Pending, StreamSeq
from hean.gateway.redis_target import RedisTarget
from hean.gateway.wire import (
    BOOK_DELTA,
    BOOK_INVALID,
    BOOK_SNAPSHOT,
    AccountSnapshot,
    AcctEntry,
    BookEntry,
    CtlEntry,
    KlineEntry,
    Layout,
    LiqEntry,
    SnapRef,
    TickEntry,
    TradeEntry,
    encode,
)
from hean.hub.hub import Consumer, StreamHub

__all__ = ["DEFAULT_MAXLEN", "Gateway", "GatewayStats", "backoff_delay", "pack_entries"]

log = logging.getLogger("hean.gateway")

DEFAULT_MAXLEN: dict[str, int] = {
    "tick": 2_000,
    "book": 2_000,
    "trade": 2_000,
    "kline": 500,
    "liq": 500,
    "acct": 100_000,
    "ctl": 1_000,
}
"""``MAXLEN ~`` per stream kind (entries kept; Redis trims in whole nodes, so a little more)."""

LINK_DOWN, LINK_CONNECTING, LINK_UP = "down", "connecting", "up"


def backoff_delay(attempt: int, first: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: ``U(0, min(cap, first * 2**attempt))``."""
    return rng.uniform(0.0, min(cap, first * (2.0 ** min(attempt, 30))))


@dataclass(frozen=True, slots=True)
class GatewayStats:
    link: str
    """``up``, ``connecting`` or ``down``."""
    redis: str
    """The target, password masked."""
    epoch: int
    connects: int
    disconnects: int
    pending: int
    written: int
    overflows: int
    lost: int
    rejected: int
    last_lag: float | None
    max_lag: float
    streams: int
    lengths: dict[str, int]
    redis_memory: int | None
    last_error: str


def pack_entries(batch: list[Pending], epoch: int, parts: list[bytes]) -> bool:
    """Append the commands writing ``batch`` to ``parts``: ``XADD key MAXLEN ~ N {epoch}-{g} d
    <payload>`` per entry, then ``SET`` of the stream's snapshot key after a snapshot entry.
    Returns whether any ``SET`` was added (the replies are then not one per entry).

    The fixed part of each command is packed once per stream (``StreamSeq.head``, and the start
    of its ids while ``g`` keeps its number of digits): one bytes format per entry.
    """
    add = parts.append
    snapshots = False
    for p in batch:
        s = p.stream
        g = p.g
        if not s.id_low <= g < s.id_high:
            s.id_head, s.id_low, s.id_high = resp.id_prefix(epoch, g)
        payload = p.payload
        add(b"%s%s%d\r\n$1\r\nd\r\n$%d\r\n%s\r\n"
            % (s.head, s.id_head, g, len(payload), payload))  # fmt: skip
        if p.snapshot and s.snap_key is not None:
            snapshots = True
            add(resp.pack("SET", s.snap_key, encode(SnapRef(f"{epoch}-{g}", payload))))
    return snapshots


class Gateway:
    """Publishes a :class:`StreamHub`'s events (and accounts) to Redis Streams.

    Args:
        hub: the hub owning the exchange connections.
        redis: ``redis://host:port/db`` (``rediss://`` for TLS) or a :class:`RedisTarget`.
        prefix: key prefix (two gateways on one Redis need two prefixes).
        snapshot_every: every N-th entry of a ticker or book stream is a snapshot.
        maxlen: ``MAXLEN ~`` per stream kind (see :data:`DEFAULT_MAXLEN`), or one number for
            market-data streams.
        max_pending: entries held while Redis is slow or away (oldest dropped past it).
        batch: entries per pipelined write.
        heartbeat: seconds between heartbeat entries (consumers judge the gateway by them).
        stats_interval: seconds between reads of stream lengths and Redis memory.
        publish: start with publishing on (``False``: the hub runs, nothing is written).
    """

    def __init__(
        self,
        hub: StreamHub,
        redis: RedisTarget | str,
        *,
        prefix: str = "hean",
        snapshot_every: int = 100,
        maxlen: dict[str, int] | int | None = None,
        max_pending: int = 100_000,
        batch: int = 2_000,
        heartbeat: float = 0.5,
        stats_interval: float = 5.0,
        backoff_first: float = 0.05,
        backoff_cap: float = 5.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        publish: bool = True,
        name: str = "gateway",
    ) -> None:
        self.hub = hub
        self.target = redis if isinstance(redis, RedisTarget) else RedisTarget.parse(redis)
        self.layout = Layout(prefix)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng if rng is not None else random.Random()
        limits = dict(DEFAULT_MAXLEN)
        if isinstance(maxlen, int):
            for k in ("tick", "book", "trade", "kline", "liq"):
                limits[k] = maxlen
        elif maxlen:
            unknown = set(maxlen) - set(limits)
            if unknown:
                raise ValueError(f"unknown stream kinds in maxlen: {sorted(unknown)}")
            limits.update(maxlen)
        for kind in ("tick", "book"):
            if limits[kind] < 2 * snapshot_every:
                raise ValueError(
                    f"maxlen for {kind} ({limits[kind]}) must be at least twice snapshot_every "
                    f"({snapshot_every}) so that the latest snapshot is always kept"
                )
        self.maxlen = limits
        self.batch = batch
        self.heartbeat = heartbeat
        self.stats_interval = stats_interval
        self.backoff_first = backoff_first
        self.backoff_cap = backoff_cap
        self.publishing = publish
        self.name = name
        self.out = Outbox(self.clock.wall_ms(), snapshot_every, max_pending)
        self.consumer: Consumer = hub.consumer(name)
        self.link = LINK_DOWN
        self.connects = 0
        self.disconnects = 0
        self.rejected = 0
        self.last_error = ""
        self.lengths: dict[str, int] = {}
        self.redis_memory: int | None = None
        self._conn: resp.RespConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._by_obj: dict[int, StreamSeq] = {}
        self._sources: dict[str, tuple[str, str, str]] = {}
        self._conn_states: dict[str, str] = {}
        self._lost_reported: dict[str, int] = {}
        self._accounts: dict[str, Any] = {}
        self._acct_streams: dict[str, StreamSeq] = {}
        self._acct_dirty: dict[str, int] = {}
        """Accounts whose state key is due, with the ``g`` of their newest event entry."""
        self._acct_subs: list[Subscription] = []
        self._topics: dict[str, str] = {}
        self._topics_dirty: dict[str, str] = {}
        self._ctl = self._new_stream(self.layout.ctl, "ctl")
        c = self.consumer
        c.on_inline(EventType.TICK, self._on_tick, name=f"{name}:tick")
        c.on_inline(EventType.ORDERBOOK, self._on_book, name=f"{name}:book")
        c.on_inline(EventType.TRADE, self._on_trade, name=f"{name}:trade")
        c.on_inline(EventType.KLINE, self._on_kline, name=f"{name}:kline")
        c.on_inline(EventType.LIQUIDATION, self._on_liq, name=f"{name}:liq")
        c.on_inline(EventType.CONNECTION_STATE, self._on_state, name=f"{name}:state")
        c.on_inline(EventType.SUBSCRIPTION, self._on_sub, name=f"{name}:sub")

    # -- topics (the gateway's own consumer holds them) -----------------------------------------

    # Every topic the gateway holds is announced in the ``{prefix}:topics`` hash (with the
    # exchange's answer), so a remote consumer asking for one it does not publish is told.

    async def subscribe_tickers(self, symbols: Iterable[str], *, category: str = "linear") -> None:
        self._announce(
            category, await self.consumer.subscribe_tickers(list(symbols), category=category)
        )

    async def subscribe_orderbook(
        self, symbols: Iterable[str], depth: int = 50, *, category: str = "linear"
    ) -> None:
        self._announce(
            category,
            await self.consumer.subscribe_orderbook(list(symbols), depth, category=category),
        )

    async def subscribe_trades(self, symbols: Iterable[str], *, category: str = "linear") -> None:
        self._announce(
            category, await self.consumer.subscribe_trades(list(symbols), category=category)
        )

    async def subscribe_klines(
        self, symbols: Iterable[str], interval: str | int = "1", *, category: str = "linear"
    ) -> None:
        self._announce(
            category,
            await self.consumer.subscribe_klines(list(symbols), interval, category=category),
        )

    async def subscribe_liquidations(
        self, symbols: Iterable[str], *, category: str = "linear"
    ) -> None:
        self._announce(
            category, await self.consumer.subscribe_liquidations(list(symbols), category=category)
        )

    def _announce(self, category: str, statuses: dict[str, str]) -> None:
        for topic, status in statuses.items():
            if status == "rejected":
                status = f"rejected:{self.consumer.failed.get(topic, '')}"
            self._set_topic(f"{category}:{topic}", status)

    def _set_topic(self, field: str, value: str) -> None:
        if self._topics.get(field) != value:
            self._topics[field] = value
            self._topics_dirty[field] = value
            self._wake.set()

    def topics(self) -> dict[str, str]:
        """Every topic published (``{category}:{topic}``) and the exchange's answer to it."""
        return dict(self._topics)

    # -- streams --------------------------------------------------------------------------------

    def _new_stream(self, key: str, kind: str, snap_key: str | None = None) -> StreamSeq:
        s = self.out.stream(key, kind, self.maxlen[kind], snap_key)
        if not s.head:
            s.head = resp.xadd_head(key, s.maxlen)
        return s

    def _stream(self, kind: str, category: str, topic: str) -> StreamSeq:
        key = self.layout.md(category, topic)
        s = self.out.streams.get(key)
        if s is None:
            snap = self.layout.snap(category, topic) if kind in ("tick", "book") else None
            s = self._new_stream(key, kind, snap)
            self._sources[key] = (kind, category, topic)
        return s

    def _kick(self) -> None:
        self._wake.set()

    # -- hub events (inline, on the socket reader: encode and queue, nothing else) ---------------

    def _on_tick(self, ev: TickEvent) -> None:
        if not self.publishing:
            return
        st = ev.ticker
        s = self._by_obj.get(id(st))
        if s is None:
            s = self._by_obj[id(st)] = self._stream("tick", ev.category, st.topic)
        out = self.out
        now = ev.recv_time
        snap = ev.is_snapshot or out.due_snapshot(s)
        fields = st.fields if snap else st.last_message  # a delta: the fields it changed
        payload = encode(TickEntry(snap, ev.exchange_ts, st.cs, ev.recv_wall_ms, now, fields))
        out.add(s, payload, snap, now)
        self._wake.set()

    def _on_book(self, ev: OrderBookEvent) -> None:
        if not self.publishing:
            return
        book = ev.book
        s = self._by_obj.get(id(book))
        if s is None:
            s = self._by_obj[id(book)] = self._stream("book", ev.category, ev.topic)
        out = self.out
        if not ev.valid:
            if s.last_valid:
                s.last_valid = False
                why = book.invalid_reason or "invalid"
                entry = BookEntry(
                    BOOK_INVALID, ev.exchange_ts, ev.cts, ev.recv_wall_ms, ev.recv_time,
                    ev.u, ev.seq, [], [], why,
                )  # fmt: skip
                out.add(s, encode(entry), False, ev.recv_time)
                out.want_snapshot(s)
                self._wake.set()
            return
        s.last_valid = True
        if ev.is_snapshot or out.due_snapshot(s):
            entry = BookEntry(
                BOOK_SNAPSHOT, ev.exchange_ts, ev.cts, ev.recv_wall_ms, ev.recv_time,
                book.u, book.seq, book.bids(), book.asks(),
            )  # fmt: skip
            out.add(s, encode(entry), True, ev.recv_time)
        else:
            entry = BookEntry(
                BOOK_DELTA, ev.exchange_ts, ev.cts, ev.recv_wall_ms, ev.recv_time,
                ev.u, ev.seq, ev.bids, ev.asks,
            )  # fmt: skip
            out.add(s, encode(entry), False, ev.recv_time)
        self._wake.set()

    def _on_trade(self, ev: TradeEvent) -> None:
        if not self.publishing:
            return
        s = self._stream("trade", ev.category, f"publicTrade.{ev.symbol}")
        entry = TradeEntry(ev.exchange_ts, ev.recv_wall_ms, ev.recv_time, ev.trades, ev.backfilled)
        self.out.add(s, encode(entry), False, ev.recv_time)
        self._wake.set()

    def _on_kline(self, ev: KlineEvent) -> None:
        if not self.publishing:
            return
        s = self._stream("kline", ev.category, f"kline.{ev.interval}.{ev.symbol}")
        entry = KlineEntry(ev.exchange_ts, ev.recv_wall_ms, ev.recv_time, ev.klines, ev.backfilled)
        self.out.add(s, encode(entry), False, ev.recv_time)
        self._wake.set()

    def _on_liq(self, ev: LiquidationEvent) -> None:
        if not self.publishing:
            return
        s = self._stream("liq", ev.category, f"allLiquidation.{ev.symbol}")
        entry = LiqEntry(ev.exchange_ts, ev.recv_wall_ms, ev.recv_time, ev.liquidations)
        self.out.add(s, encode(entry), False, ev.recv_time)
        self._wake.set()

    def _control(self, kind: str, data: dict[str, Any]) -> None:
        now = self.clock.monotonic()
        entry = CtlEntry(kind, self.clock.wall_ms(), now, data)
        self.out.add(self._ctl, encode(entry), False, now)
        self._wake.set()

    def _on_state(self, ev: ConnectionStateEvent) -> None:
        self._conn_states[ev.connection] = ev.new.value
        self._control(
            "state",
            {
                "connection": ev.connection,
                "old": ev.old.value,
                "new": ev.new.value,
                "reason": ev.reason,
            },
        )

    def _on_sub(self, ev: SubscriptionEvent) -> None:
        field = f"{_conn_category(ev.connection)}:{ev.topic}"
        if field in self._topics:
            if ev.status is SubscriptionStatus.CONFIRMED:
                self._set_topic(field, "confirmed")
            elif ev.status in (SubscriptionStatus.REJECTED, SubscriptionStatus.TIMEOUT):
                self._set_topic(field, f"rejected:{ev.reason or ev.status.value}")
        self._control(
            "sub",
            {
                "connection": ev.connection,
                "topic": ev.topic,
                "status": ev.status.value,
                "reason": ev.reason,
            },
        )

    def connection_states(self) -> dict[str, str]:
        """Every hub connection's state (``live``, ``backoff`` ...)."""
        states = dict(self._conn_states)
        for ws in self.hub.connections():
            states[ws.name] = ws.state.value
        return states

    # -- accounts -------------------------------------------------------------------------------

    def add_account(self, account: Any, bus: EventBus | None = None) -> None:
        """Publish ``account``'s events (from ``bus``, default ``account.bus``) and its state.

        The account label (``account.name``) names the streams; no key or secret is written.
        """
        name = account.name
        if name in self._accounts:
            raise ValueError(f"an account named {name!r} is already published")
        Layout(f"{self.layout.prefix}:{name}")  # the label must be a valid key part
        self._accounts[name] = account
        src = bus if bus is not None else account.bus
        s = self._acct_streams[name] = self._new_stream(self.layout.acct(name), "acct")

        def items(kind: str, ev: Any, values: Any) -> None:
            entry = AcctEntry(
                kind,
                ev.topic,
                ev.msg_id,
                ev.creation_time,
                ev.recv_wall_ms,
                ev.reconciled,
                msgspec.Raw(encode(values)),
            )
            self._acct(name, s, entry)

        def on_order(ev: OrderUpdateEvent) -> None:
            items("order", ev, ev.orders)

        def on_exec(ev: ExecutionEvent) -> None:
            items("fast" if ev.fast else "execution", ev, ev.executions)

        def on_pos(ev: PositionUpdateEvent) -> None:
            items("position", ev, ev.positions)

        def on_wallet(ev: WalletUpdateEvent) -> None:
            items("wallet", ev, ev.wallets)

        def on_sync(ev: AccountSyncEvent) -> None:
            data = {"in_sync": ev.in_sync, "reason": ev.reason}
            entry = AcctEntry("sync", "", None, self.clock.wall_ms(), self.clock.wall_ms(), False,
                              msgspec.Raw(encode([])), data)  # fmt: skip
            self._acct(name, s, entry)

        def on_reconciled(ev: ReconciledEvent) -> None:
            data = msgspec.structs.asdict(ev)
            entry = AcctEntry("reconciled", "", None, self.clock.wall_ms(), self.clock.wall_ms(),
                              False, msgspec.Raw(encode([])), data)  # fmt: skip
            self._acct(name, s, entry)

        self._acct_subs += [
            src.subscribe(EventType.ORDER_UPDATE, on_order, name=f"{self.name}:order"),
            src.subscribe(EventType.EXECUTION, on_exec, name=f"{self.name}:execution"),
            src.subscribe(EventType.POSITION_UPDATE, on_pos, name=f"{self.name}:position"),
            src.subscribe(EventType.WALLET_UPDATE, on_wallet, name=f"{self.name}:wallet"),
            src.subscribe(EventType.ACCOUNT_SYNC, on_sync, name=f"{self.name}:sync"),
            src.subscribe(EventType.RECONCILED, on_reconciled, name=f"{self.name}:reconciled"),
        ]
        self._acct_dirty[name] = s.g

    def _acct(self, name: str, s: StreamSeq, entry: AcctEntry) -> None:
        now = self.clock.monotonic()
        self._acct_dirty[name] = self.out.add(s, encode(entry), False, now)
        self._wake.set()

    def _account_snapshot(self, name: str, last_g: int) -> bytes:
        acct = self._accounts[name]
        wallet = acct.wallet
        snap = AccountSnapshot(
            f"{self.out.epoch}-{last_g}",
            bool(acct.in_sync),
            str(acct.sync_state),
            list(acct.orders.values()),
            list(acct.positions.values()),
            [wallet] if wallet is not None else [],
            self.clock.wall_ms(),
        )
        return encode(snap)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer (it connects to Redis in the background; the hub runs regardless)."""
        if self._task is None:
            await self.consumer.bus.start()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"hean-gateway-{self.name}"
            )

    async def close(self, *, drain: float = 1.0) -> None:
        """Flush what is queued (for up to ``drain`` seconds), then stop. Idempotent."""
        if self._closing:
            return
        if self._task is not None and self.link == LINK_UP and drain > 0:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain
            while self.out.depth and loop.time() < deadline and self.link == LINK_UP:
                self._wake.set()
                await asyncio.sleep(0.01)
        self._closing = True
        for sub in self._acct_subs:
            sub.unsubscribe()
        self._acct_subs.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.consumer.close()
        await self._drop_conn()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.aclose()

    # -- the writer -----------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        next_hb = loop.time()
        next_stats = loop.time() + self.stats_interval
        while not self._closing:
            if self.link != LINK_UP:
                if not await self._connect():
                    delay = backoff_delay(attempt, self.backoff_first, self.backoff_cap, self.rng)
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                attempt = 0
            now = loop.time()
            if now >= next_hb:
                next_hb = now + self.heartbeat
                self._heartbeat()
            if not self.out.pending:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_hb - loop.time())):
                        await self._wake.wait()
            try:
                while self.out.pending:
                    batch = self.out.take(self.batch)
                    await self._write(batch)
                if loop.time() >= next_stats:
                    next_stats = loop.time() + self.stats_interval
                    await self._read_stats()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any Redis or socket failure: down, reconnect
                self._down(exc)

    async def _connect(self) -> bool:
        self.link = LINK_CONNECTING
        await self._drop_conn()
        conn: resp.RespConnection | None = None
        try:
            conn = await resp.RespConnection.open(self.target)
            await conn.call("PING")
            if self.connects == 0 and self.out.written == 0:
                prev = await conn.call("HGET", self.layout.meta, "epoch")
                if prev is not None and int(prev) >= self.out.epoch:
                    self.out.epoch = int(prev) + 1
                    for s in self.out:
                        s.id_high = 0  # packed with the old epoch
            await conn.call(
                "HSET", self.layout.meta,
                "epoch", self.out.epoch,
                "name", self.name,
                "started_ms", self.out.epoch,
                "snapshot_every", self.out.snapshot_every,
                "maxlen", msgspec.json.encode(self.maxlen),
                "heartbeat", repr(self.heartbeat),
            )  # fmt: skip
            # what this gateway publishes (Redis may be empty, or hold an earlier run's list)
            await conn.call("DEL", self.layout.topics)
            if self._topics:
                await conn.call("HSET", self.layout.topics, *_pairs(self._topics))
            self._topics_dirty.clear()
        except Exception as exc:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.aclose()
            self.link = LINK_DOWN
            err = f"{type(exc).__name__}: {exc}"
            if err != self.last_error:
                log.warning("gateway: Redis %s unreachable (%s); retrying", self.target, err)
            self.last_error = err
            return False
        self._conn = conn
        self.connects += 1
        self.link = LINK_UP
        log.info("gateway: Redis %s up (epoch %d)", self.target, self.out.epoch)
        self._after_connect()
        return True

    def _down(self, exc: BaseException) -> None:
        self.disconnects += 1
        self.link = LINK_DOWN
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "gateway: Redis %s lost (%s); %d entries held, reconnecting",
            self.target,
            self.last_error,
            self.out.depth,
        )

    def _after_connect(self) -> None:
        """Redis may be a fresh one: snapshot every ticker and book, report what was lost."""
        lost = {
            s.key: s.lost - self._lost_reported.get(s.key, 0)
            for s in self.out
            if s.lost > self._lost_reported.get(s.key, 0)
        }
        if lost:
            for key, n in lost.items():
                self._lost_reported[key] = self._lost_reported.get(key, 0) + n
            log.warning(
                "gateway: %d entries of %d streams could not be published (buffer full)",
                sum(lost.values()),
                len(lost),
            )
            self._control("lost", {"streams": lost, "overflows": self.out.overflows})
        self.snapshot_all()
        for name, acct_stream in self._acct_streams.items():
            self._acct_dirty.setdefault(name, acct_stream.g)

    def snapshot_all(self) -> int:
        """Queue a snapshot of every ticker and book stream the hub has state for."""
        n = 0
        for key, (kind, category, topic) in list(self._sources.items()):
            s = self.out.streams[key]
            now = self.clock.monotonic()
            if kind == "tick":
                st = self.hub.ticker(topic[8:], category=category)
                if st is None or not st.has_snapshot:
                    self.out.want_snapshot(s)
                    continue
                entry: Any = TickEntry(
                    True, st.exchange_ts, st.cs, self.clock.wall_ms(),
                    st.updated_at or now, st.fields,
                )  # fmt: skip
            elif kind == "book":
                _, depth, symbol = topic.split(".", 2)
                book = self.hub.orderbook(symbol, int(depth), category=category)
                if book is None or not book.valid:
                    self.out.want_snapshot(s)
                    continue
                entry = BookEntry(
                    BOOK_SNAPSHOT, book.exchange_ts or 0, book.cts, self.clock.wall_ms(),
                    book.recv_time or now, book.u, book.seq, book.bids(), book.asks(),
                )  # fmt: skip
            else:
                continue
            self.out.add(s, encode(entry), True, now)
            n += 1
        self._wake.set()
        return n

    def _heartbeat(self) -> None:
        self._control(
            "hb",
            {
                "conns": self.connection_states(),
                "epoch": self.out.epoch,
                "pending": self.out.depth,
                "lost": self.out.lost,
            },
        )

    async def _write(self, batch: list[Pending]) -> None:
        conn = self._conn
        if conn is None:
            self.out.fail(batch)
            raise ConnectionError("no Redis connection")
        parts: list[bytes] = []
        add = parts.append
        topics = self._topics_dirty
        if topics:  # before the entries: a consumer told by a ctl entry finds the hash current
            self._topics_dirty = {}
            add(resp.pack("HSET", self.layout.topics, *_pairs(topics)))
        snapshots = pack_entries(batch, self.out.epoch, parts)
        dirty = self._acct_dirty
        self._acct_dirty = {}
        for name, last_g in dirty.items():
            add(
                resp.pack("SET", self.layout.acct_state(name), self._account_snapshot(name, last_g))
            )
        try:
            conn.send(b"".join(parts))
            await conn.drain()
            replies = await conn.read(len(parts))
        except BaseException:
            self.out.fail(batch)
            for name, last_g in dirty.items():
                self._acct_dirty.setdefault(name, last_g)
            for field, value in topics.items():
                self._topics_dirty.setdefault(field, value)
            raise
        now = self.clock.monotonic()
        if resp.RespError in map(type, replies):
            self._refused(batch, replies[1:] if topics else replies, snapshots)
        self.out.confirm(batch, now)

    def _refused(self, batch: list[Pending], replies: list[Any], snapshots: bool) -> None:
        """Count and log the entries Redis refused (an id not above the stream's last)."""
        i = 0
        for p in batch:
            res = replies[i]
            i += 2 if snapshots and p.snapshot and p.stream.snap_key is not None else 1
            if not resp.is_error(res):
                continue
            self.rejected += 1
            self.out.reject(p)
            if self.rejected <= 5 or self.rejected % 1000 == 0:
                log.error(
                    "gateway: Redis refused entry %s of %s: %s (another gateway on prefix "
                    "%r?) rejected=%d",
                    self.out.entry_id(p),
                    p.stream.key,
                    res,
                    self.layout.prefix,
                    self.rejected,
                )

    async def _read_stats(self) -> None:
        conn = self._conn
        if conn is None:
            return
        keys = [s.key for s in self.out]
        res = await conn.pipeline(
            [resp.pack("XLEN", k) for k in keys] + [resp.pack("INFO", "memory")]
        )
        self.lengths = {k: int(x) for k, x in zip(keys, res, strict=False) if isinstance(x, int)}
        info = res[-1]
        if isinstance(info, bytes):
            for line in info.splitlines():
                if line.startswith(b"used_memory:"):
                    self.redis_memory = int(line[12:])
                    break

    # -- introspection --------------------------------------------------------------------------

    def stats(self) -> GatewayStats:
        out = self.out
        return GatewayStats(
            link=self.link,
            redis=str(self.target),
            epoch=out.epoch,
            connects=self.connects,
            disconnects=self.disconnects,
            pending=out.depth,
            written=out.written,
            overflows=out.overflows,
            lost=out.lost,
            rejected=self.rejected,
            last_lag=out.last_lag,
            max_lag=out.max_lag,
            streams=len(out.streams),
            lengths=dict(self.lengths),
            redis_memory=self.redis_memory,
            last_error=self.last_error,
        )

    def __repr__(self) -> str:
        return f"<Gateway {self.layout.prefix!r} redis={self.target} link={self.link}>"


def _pairs(fields: dict[str, str]) -> list[str]:
    return [x for kv in fields.items() for x in kv]


def _conn_category(name: str) -> str:
    """``public/linear#2`` -> ``linear``."""
    return name.partition("/")[2].partition("#")[0]
