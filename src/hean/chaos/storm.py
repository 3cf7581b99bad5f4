"""Run a chaos storm: a seeded fault schedule against the emulator, invariants checked.

``await run_storm(StormConfig(kind="public", seed=3, duration=10))`` starts an emulator, the
client stack of that stream kind (public: tickers, books and trades through a
:class:`~hean.hub.StreamHub` with a slow consumer; private: an :class:`~hean.account.Account`
while orders fill; trade: a :class:`~hean.exchange.bybit.ws_trade.BybitTradeWebSocket` sending
orders), applies the schedule of :func:`~hean.chaos.schedule.plan`, then a calm phase, and
checks :class:`~hean.chaos.invariants.InvariantChecker`'s rules. Intervals are scaled: the
client pings every ``0.1 * scale`` s, so a 1-3 s fault spacing is many heartbeats.

A failing seed is replayed with ``python benchmarks/chaos.py --kind K --seed N --duration D``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hean.chaos.invariants import InvariantChecker, Violation
from hean.chaos.schedule import FAULTS, Fault, plan
from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.core.lifecycle import ConnectionState
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.protocol.backoff import BackoffPolicy

__all__ = ["StormConfig", "StormReport", "replay_command", "run_storm"]

log = logging.getLogger("hean.chaos")

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DEPTH = 50
MAX_MESSAGE = 256 * 1024
"""The client's frame limit in a storm (oversized frames are 2x this)."""


@dataclass(frozen=True, slots=True)
class StormConfig:
    kind: str
    seed: int
    duration: float
    scale: float = 1.0
    """Multiplies every client interval (raise it on a slow machine)."""
    every: tuple[float, float] = (1.0, 3.0)
    """Spacing of faults (seconds)."""
    only: tuple[str, ...] | None = None
    """Draw faults from these kinds alone (default: every fault of the stream kind)."""


@dataclass(slots=True)
class StormReport:
    config: StormConfig
    faults: list[Fault]
    violations: list[Violation]
    counts: dict[str, int] = field(default_factory=dict)
    """Figures of the run (events, reconnects, resyncs, orders ...)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def faults_by_kind(self) -> dict[str, int]:
        return dict(Counter(f.kind for f in self.faults))

    def text(self) -> str:
        c = self.config
        lines = [
            f"chaos storm kind={c.kind} seed={c.seed} duration={c.duration:g}s "
            f"faults={len(self.faults)} violations={len(self.violations)} "
            f"({self.seconds:.1f}s wall)",
            "  faults: " + ", ".join(f"{k}={n}" for k, n in sorted(self.faults_by_kind().items())),
            "  counts: " + ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items())),
        ]
        lines += [f"  VIOLATION {v}" for v in self.violations[:50]]
        if self.violations:
            lines.append(f"  replay: {replay_command(c)}")
        return "\n".join(lines)


def replay_command(config: StormConfig) -> str:
    lo, hi = config.every
    only = f" --only {','.join(config.only)}" if config.only else ""
    return (
        f"python benchmarks/chaos.py --kind {config.kind} --seed {config.seed} "
        f"--duration {config.duration:g} --scale {config.scale:g} --every {lo:g},{hi:g}{only}"
    )


def backoff(scale: float) -> BackoffPolicy:
    return BackoffPolicy(
        first=0.05 * scale,
        cap=0.3 * scale,
        slow_floor=0.5 * scale,
        try_again_floor=0.3 * scale,
        failure_threshold=5,
        cooldown=0.6 * scale,
        max_cooldown=1.2 * scale,
        stable_after=0.5 * scale,
    )


@dataclass(frozen=True, slots=True)
class Timing:
    """Every client and fault timing of a run, in seconds of wall time.

    :meth:`storm`: the chaos storms' short intervals (a ping every ``0.1 * scale`` s);
    :meth:`compressed`: HEAN's defaults divided by ``k`` (the soak: ``k`` simulated seconds per
    wall second, so Bybit's 20 s ping is ``20 / k``).
    """

    ping_interval: float
    pong_timeout: float
    connect_timeout: float
    ack_timeout: float
    auth_timeout: float
    auth_retry_interval: float
    """Wait before retrying an auth the venue rejected as retryable (expired, too many
    sessions ...)."""
    request_timeout: float
    backoff: BackoffPolicy
    repair_interval: float
    repair_timeout: float
    repair_max: float
    hold: float
    """Unit of a fault's duration (an outage lasts up to 3 of them)."""
    stuck_bound: float
    """Longest a topic may stay invalid while its connection is live."""
    slack: float
    """Allowance for a busy machine in the lagging bound."""
    settle: float
    """Longest the calm phase may take to reach the venue's state."""
    subscribe_timeout: float
    retry_first: float
    retry_max: float
    recheck_delay: float
    order_every: float
    """Private: a market order every this many seconds."""
    request_every: float
    """Trade: an order request every this many seconds."""
    limiter_rate: float
    limiter_burst: int
    limiter_window: float

    @property
    def lag_bound(self) -> float:
        """The furthest a kept link may be behind the venue: a ping answered just in time,
        the next one ``ping_interval`` later, its pong late by ``pong_timeout``."""
        return self.ping_interval + 2 * self.pong_timeout + self.slack

    @classmethod
    def storm(cls, scale: float) -> Timing:
        s = scale
        return cls(
            ping_interval=0.1 * s, pong_timeout=0.15 * s, connect_timeout=0.5 * s,
            ack_timeout=0.5 * s, auth_timeout=0.5 * s, auth_retry_interval=3.0 * s,
            request_timeout=1.0 * s,
            backoff=backoff(s), repair_interval=0.05 * s, repair_timeout=0.4 * s,
            repair_max=1.0 * s, hold=s, stuck_bound=4.0 * s, slack=0.25 * s, settle=15.0 * s,
            subscribe_timeout=3.0 * s, retry_first=0.05 * s, retry_max=0.2 * s,
            recheck_delay=0.1 * s, order_every=0.15 * s, request_every=0.03 * s,
            limiter_rate=20.0, limiter_burst=4, limiter_window=300.0,
        )  # fmt: skip

    @classmethod
    def compressed(cls, k: float, slack: float = 0.5) -> Timing:
        """HEAN's default settings with time running ``k`` times faster (``slack`` and the
        calm phase's floor stay in wall seconds: they are about the machine)."""
        d = BackoffPolicy()
        return cls(
            ping_interval=20.0 / k, pong_timeout=10.0 / k, connect_timeout=10.0 / k,
            ack_timeout=10.0 / k, auth_timeout=10.0 / k, auth_retry_interval=60.0 / k,
            request_timeout=10.0 / k,
            backoff=BackoffPolicy(
                first=d.first / k, cap=d.cap / k, slow_floor=d.slow_floor / k,
                try_again_floor=d.try_again_floor / k, failure_threshold=d.failure_threshold,
                cooldown=d.cooldown / k, max_cooldown=d.max_cooldown / k,
                stable_after=d.stable_after / k,
            ),
            repair_interval=1.0 / k, repair_timeout=5.0 / k, repair_max=30.0 / k,
            # a repair series of up to 10 timeouts, on a link kept while it lags (a slow drip
            # its heartbeat allows), and a few event-loop stalls of the machine
            hold=30.0 / k, stuck_bound=(50.0 + 20.0 + 2 * 10.0) / k + 4 * slack, slack=slack,
            settle=max(10.0, 300.0 / k), subscribe_timeout=10.0 / k, retry_first=0.5 / k,
            retry_max=30.0 / k, recheck_delay=2.0 / k, order_every=60.0 / k,
            request_every=10.0 / k, limiter_rate=5.0 * k, limiter_burst=10,
            limiter_window=300.0 / k,
        )  # fmt: skip


async def run_storm(config: StormConfig) -> StormReport:
    """Run one storm (see the module docstring) and return its report."""
    if config.kind not in FAULTS:
        raise ValueError(f"unknown stream kind {config.kind!r}")
    runner = {"public": _PublicStorm, "private": _PrivateStorm, "trade": _TradeStorm}[config.kind]
    started = time.monotonic()
    report = await runner(config).run()
    report.seconds = time.monotonic() - started
    return report


class _Storm:
    """The common part: emulator, schedule, connection faults, pacing.

    A storm owns its emulator (:meth:`run`); the soak (:mod:`hean.chaos.soak`) runs the three
    kinds against one emulator it drives itself, through :meth:`apply`, :meth:`step`,
    :meth:`check_drips`, :meth:`clear_faults`, :meth:`settle`, :meth:`final_checks`.
    """

    category = "linear"

    def __init__(
        self,
        config: StormConfig,
        timing: Timing | None = None,
        symbols: tuple[str, ...] = SYMBOLS,
        book_symbols: tuple[str, ...] | None = None,
    ) -> None:
        self.config = config
        self.scale = config.scale
        self.t = timing if timing is not None else Timing.storm(config.scale)
        self.symbols = symbols
        self.book_symbols = symbols if book_symbols is None else book_symbols
        self.faults = plan(config.kind, config.seed, config.duration, config.every, config.only)
        self.rng = random.Random(config.seed)
        # the longest a topic may be invalid while live: the repair timeout doubled twice,
        # plus a resubscribe round trip
        self.checker = InvariantChecker(stuck_bound=self.t.stuck_bound)
        self.counts: Counter[str] = Counter()
        self.ping_interval = self.t.ping_interval
        self.pong_timeout = self.t.pong_timeout
        self.emu: Emulator
        self._restore: list[tuple[float, Any]] = []
        self.market: Any = None
        """Moves the market (``quanta``); the storm's own stepping when ``None``."""

    def advance(self, quanta: int) -> None:
        """Move the market and publish what is due (the soak drives it by wall time)."""
        if self.market is not None:
            self.market(quanta)
            return
        self.emu.step("linear", quanta=quanta)
        self.emu.flush("linear")

    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(
            ticker_interval=0.02,
            auto_tick=False,
            trade_rate_limit=1000,
            rest_rate_scale=100.0,
        )

    async def run(self) -> StormReport:
        async with Emulator(self.emulator_config()) as emu:
            self.emu = emu
            await self.start()
            t0 = asyncio.get_running_loop().time()
            pending = list(self.faults)
            try:
                while True:
                    now = asyncio.get_running_loop().time() - t0
                    while pending and pending[0].at <= now:
                        fault = pending.pop(0)
                        self.counts[f"fault:{fault.kind}"] += 1
                        log.info("chaos fault %s", fault)
                        self.apply(fault)
                    self._run_restores(now)
                    if now >= self.config.duration and not self._restore:
                        break
                    await self.step(now)
                    self.check_drips()
                    await asyncio.sleep(0.005)
                self.clear_faults()
                await self.settle()
                self.final_checks()
            finally:
                await self.stop()
        return StormReport(
            self.config, self.faults, list(self.checker.violations), dict(self.counts)
        )

    # -- overridden per kind ------------------------------------------------------------------

    async def start(self) -> None:
        raise NotImplementedError

    async def step(self, now: float) -> None:
        """Move the market a little and make the client work (called every ~5 ms)."""

    async def settle(self) -> None:
        raise NotImplementedError

    def final_checks(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def apply_other(self, fault: Fault) -> None:
        raise NotImplementedError(fault.kind)

    def path_category(self) -> str:
        return self.category

    # -- faults -------------------------------------------------------------------------------

    def _later(self, delay: float, undo: Any) -> None:
        now = asyncio.get_running_loop().time()
        self._restore.append((now + delay, undo))

    def _run_restores(self, _now: float) -> None:
        loop_now = asyncio.get_running_loop().time()
        due = [item for item in self._restore if item[0] <= loop_now]
        for item in due:
            self._restore.remove(item)
            item[1]()

    def conns(self) -> list[str]:
        return [c.conn_id for c in self.emu.live_connections(self.path_category())]

    def apply(self, fault: Fault) -> None:
        emu = self.emu
        kind = fault.kind
        hold = (0.3 + 0.7 * fault.pick) * self.t.hold
        if kind == "drop":
            for cid in self.conns():
                emu.drop_connections(cid)
        elif kind == "reset":
            for cid in self.conns():
                emu.reset_connections(cid)
        elif kind.startswith("close_"):
            for cid in self.conns():
                emu.close_connections(int(kind[6:]), "chaos", conn_id=cid)
        elif kind in ("blackhole", "pongless"):
            switch = "blackhole" if kind == "blackhole" else "ignore_json_ping"
            for cid in self.conns():
                emu.set_faults(cid, **{switch: True})
        elif kind in ("http_503", "http_429", "outage"):
            status = 429 if kind == "http_429" else 503
            emu.set_handshake_status(status)
            for cid in self.conns():
                emu.drop_connections(cid)
            self._later(hold * (3 if kind == "outage" else 1), self._handshake_ok)
        elif kind == "stall":
            emu.set_handshake_stall(hold)
            for cid in self.conns():
                emu.drop_connections(cid)
        elif kind == "slow_drip":
            # the link's bytes trickle out: slow enough that one frame takes seconds (the pong
            # queued behind it is late: the client must replace the link), or frames trickle
            # at about the data rate (kept while it keeps up, its data correct and in order)
            pick = fault.pick
            rate = 20.0 + 400.0 * pick if pick < 0.5 else 2e3 * 50.0 ** (2.0 * pick - 1.0)
            for cid in self.conns():
                emu.set_faults(cid, drip=rate)
        else:
            self.apply_other(fault)

    def _handshake_ok(self) -> None:
        self.emu.set_handshake_status(None)

    def clear_faults(self) -> None:
        emu = self.emu
        emu.set_handshake_status(None)
        emu.clear_injections()
        for info in emu.live_connections():
            with contextlib.suppress(KeyError):
                emu.set_faults(info.conn_id, blackhole=False, ignore_json_ping=False, drip=None)
        for _, undo in self._restore:
            undo()
        self._restore.clear()

    async def until(self, predicate: Any, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                return False
            await self.step(0.0)
            await asyncio.sleep(0.01)
        return True

    def check_drips(self) -> None:
        """No live link is kept further behind the venue than the heartbeat allows: a ping
        answered just in time, the next one ``ping_interval`` later, its pong late by
        ``pong_timeout`` (plus slack for a busy machine)."""
        bound = self.t.lag_bound
        now = self.now()
        for info in self.emu.live_connections(self.path_category()):
            delay = self.emu.output_delay(info.conn_id)
            if delay:
                self.counts["drip_max_ms"] = max(self.counts["drip_max_ms"], int(delay * 1000))
                self.checker.check_lag(f"conn {info.conn_id[:8]}", delay, bound, now)

    def check_attempts(self, path: str, rate: float, burst: int) -> None:
        times = [
            t for t, ev, _, detail in self.emu.connection_log if ev == "attempt" and path in detail
        ]
        self.counts["connect_attempts"] += len(times)
        self.checker.check_attempts(times, rate, burst, self.now(), slack=0.02)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def count_link(self, stats: Any) -> None:
        """Why the link went down, and how the venue judged its auth requests."""
        for reason, n in stats.disconnect_reasons.items():
            self.counts[f"reason:{reason}"] = n
        for record in self.emu.auth_log:
            if record.kind == self.category:
                self.counts[f"auth:{record.result}"] += 1


# -- public: tickers, books, trades through the hub --------------------------------------------


class _PublicStorm(_Storm):
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(
            ticker_interval=0.02,
            auto_tick=False,
            symbols={"linear": self.symbols},
        )

    async def start(self) -> None:
        from hean.hub import ConnectionOptions, ConnectionRateLimiter, StreamHub

        t = self.t
        self.bus = EventBus()
        await self.bus.start()
        self.received: Counter[str] = Counter()
        self.live_conn: str | None = None
        self.bus.subscribe(EventType.TICK, self._on_tick, name="chaos-tick")
        self.bus.subscribe(EventType.ORDERBOOK, self._on_book, name="chaos-book")
        self.bus.subscribe(EventType.TRADE, self._on_trade, name="chaos-trade")
        self.bus.subscribe(EventType.CONNECTION_STATE, self._on_state, name="chaos-state")
        options = ConnectionOptions(
            ping_interval=self.ping_interval,
            pong_timeout=self.pong_timeout,
            connect_timeout=t.connect_timeout,
            ack_timeout=t.ack_timeout,
            backoff=t.backoff,
            max_message_size=MAX_MESSAGE,
            book_resync_interval=t.repair_interval,
            book_repair_timeout=t.repair_timeout,
            book_repair_max=t.repair_max,
        )
        self.hub = StreamHub(
            self.bus,
            host=f"ws://127.0.0.1:{self.emu.port}",
            options=options,
            limiter=ConnectionRateLimiter(
                rate=t.limiter_rate, burst=t.limiter_burst, window=t.limiter_window
            ),
            rng=random.Random(self.config.seed),
        )
        self.app = self.hub.consumer("app")
        self.trades_seen = 0
        self.app.on_inline(EventType.TRADE, self._count_trade)
        self.slow = self.hub.consumer("slow", maxsize=8)
        self.slow.on(EventType.TRADE, self._slow_handler)
        await self.app.subscribe_tickers(self.symbols)
        await self.app.subscribe_orderbook(self.book_symbols, DEPTH)
        await self.app.subscribe_trades(self.symbols)
        await self.slow.subscribe_trades(self.symbols)
        ok = await self.until(self._all_valid, max(5.0, t.settle / 3))
        if not ok:
            self.checker.fail("start", "public", "books not valid after start", self.now())

    def _count_trade(self, _ev: Any) -> None:
        self.trades_seen += 1

    async def _slow_handler(self, _ev: Any) -> None:
        await asyncio.sleep(0.02)

    def _on_state(self, ev: Any) -> None:
        live = ev.new is ConnectionState.LIVE
        if live:
            self.received.clear()
            self.counts["lives"] += 1
        self.checker.connection(live, self.now())

    def _on_tick(self, ev: Any) -> None:
        ticker = ev.ticker
        self.received[ticker.topic] += 1
        self.checker.on_ticker(ticker.topic, ticker.has_snapshot, self.now())

    def _on_trade(self, ev: Any) -> None:
        self.received[f"publicTrade.{ev.symbol}"] += 1

    def _on_book(self, ev: Any) -> None:
        self.received[ev.topic] += 1
        self.counts["book_events"] += 1
        self.checker.on_book(ev.topic, ev.u, ev.is_snapshot, ev.valid, self.now())

    def _ws(self) -> Any:
        conns = self.hub.connections("linear")
        return conns[0] if conns else None

    def _all_valid(self) -> bool:
        ws = self._ws()
        if ws is None or ws.state is not ConnectionState.LIVE:
            return False
        return all(
            (b := ws.orderbook(sym, DEPTH)) is not None and b.valid for sym in self.book_symbols
        ) and all((t := ws.ticker(sym)) is not None and t.has_snapshot for sym in self.symbols)

    async def step(self, now: float) -> None:
        self.advance(self.rng.randint(1, 3))
        self.checker.check_stuck(self.now())

    def apply_other(self, fault: Fault) -> None:
        kind = fault.kind
        symbol = self.book_symbols[int(fault.pick * len(self.book_symbols))]
        book = f"orderbook.{DEPTH}.{symbol}"
        if kind in ("u_gap", "duplicate_delta", "swap_deltas", "restart_snapshot", "lose_snapshot"):
            topic: str | None = book
            if kind == "lose_snapshot":
                if int(fault.pick * 2 * len(self.book_symbols)) % 2:
                    # a ticker's snapshot is lost on a fresh connection, then the snapshot of
                    # the resubscribe its deltas cause is lost too
                    ticker = f"tickers.{symbol}"
                    self.emu.inject("lose_snapshot", topic=ticker)
                    self.emu.inject("lose_snapshot", topic=ticker)
                    for cid in self.conns():
                        self.emu.close_connections(1012, "chaos", conn_id=cid)
                    return
                # the snapshot that answers the resubscribe after a gap is lost
                self.emu.inject("lose_snapshot", topic=book)
                self.emu.inject("u_gap", topic=book)
                return
        elif kind == "delta_before_snapshot":
            topic = book
            for cid in self.conns():
                self.emu.close_connections(1012, "chaos", conn_id=cid)
        else:
            topic = self.rng.choice([book, f"tickers.{symbol}", f"publicTrade.{symbol}"])
        size = 2 * MAX_MESSAGE if kind == "oversized" else 2 << 20
        self.emu.inject(kind, topic=topic, size=size, count=5)

    async def settle(self) -> None:
        def settled() -> bool:
            infos = self.emu.live_connections("linear")
            return (
                self._all_valid()
                and len(infos) == 1
                and self._caught_up(self._ws(), infos[0].conn_id)
                and self._tickers_match()
            )

        if not await self.until(settled, self.t.settle):
            ws = self._ws()
            state = None if ws is None else ws.state
            invalid = [] if ws is None else [b.topic for b in ws.books.invalid()]
            self.checker.fail("settle", "public", f"not settled: {state} {invalid}", self.now())
            return
        self.final_conn = self.emu.live_connections("linear")[0].conn_id

    def _tickers_match(self) -> bool:
        ws = self._ws()
        for sym in self.symbols:
            ticker = ws.ticker(sym)
            if ticker is None or ticker.fields != self.emu.ticker_truth("linear", sym):
                return False
        return True

    def _caught_up(self, ws: Any, conn_id: str) -> bool:
        self.emu.flush("linear")
        for sym in self.book_symbols:
            sent = self.emu.book_sent(conn_id, f"orderbook.{DEPTH}.{sym}")
            book = ws.orderbook(sym, DEPTH)
            if sent is None or book is None or not book.valid or book.u != sent[0]:
                return False
        return True

    def final_checks(self) -> None:
        ws = self._ws()
        now = self.now()
        conn_id = getattr(self, "final_conn", None)
        if ws is None or conn_id is None:
            return
        for sym in self.book_symbols:
            book = ws.orderbook(sym, DEPTH)
            bids, asks = self.emu.book_truth("linear", sym, DEPTH)
            self.checker.check_equal(f"book {sym}", (book.bids(), book.asks()), (bids, asks), now)
        for sym in self.symbols:  # every ticker merged from its snapshot and every delta since
            ticker = ws.ticker(sym)
            fields = None if ticker is None else ticker.fields
            self.checker.check_equal(
                f"ticker {sym}", fields, self.emu.ticker_truth("linear", sym), now
            )
        # every data frame the venue sent on the final connection reached the bus
        self.checker.check_delivery(
            self.emu.sent_by_topic(conn_id), dict(self.received), f"conn {conn_id[:8]}", now
        )
        invalid = [b.topic for b in ws.books.invalid()]
        invalid += [t.topic for t in ws.tickers.by_topic.values() if not t.has_snapshot]
        self.checker.check_repairing(invalid, ws.repairs.repairs, now)
        self.check_attempts("/v5/public/linear", self.t.limiter_rate, self.t.limiter_burst)
        st = ws.stats
        self.counts["reconnects"] = st.reconnects
        self.counts["book_resyncs"] = ws.book_resyncs
        self.counts["ticker_resyncs"] = ws.ticker_resyncs
        self.counts["disconnect_reasons"] = len(st.disconnect_reasons)
        for reason, n in st.disconnect_reasons.items():
            self.counts[f"reason:{reason}"] = n

    async def stop(self) -> None:
        hub = getattr(self, "hub", None)
        if hub is not None:
            # the slow consumer's accounting: everything published to it is delivered,
            # dropped (counted) or still queued
            slow = self.slow.stats()
            self.counts["slow_delivered"] = slow.delivered
            self.counts["slow_dropped"] = slow.dropped
            self.counts["trades_published"] = self.trades_seen
            self.checker.check_drops(
                "slow consumer",
                self.trades_seen,
                slow.delivered + slow.conflated + slow.errors,
                slow.dropped,
                slow.depth,
                self.now(),
            )
            await hub.close()
        bus = getattr(self, "bus", None)
        if bus is not None:
            await bus.stop()


# -- private: the account while orders fill ----------------------------------------------------

_RECONCILE_PATHS: tuple[str | None, ...] = (
    None,
    "/v5/execution/list",
    "/v5/order/realtime",
    "/v5/position/list",
    "/v5/account/wallet-balance",
)
"""Where a ``rest_failure`` strikes (``None``: whichever request comes next)."""


class _PrivateStorm(_Storm):
    category = "private"
    RATE = 1000.0
    BURST = 1000
    account_options: dict[str, Any] = {}  # read only: the soak sets its own bounds

    async def start(self) -> None:
        from hean.account import Account
        from hean.exchange.bybit.rest import BybitRestClient

        t = self.t
        self.bus = EventBus()
        await self.bus.start()
        self.bus.subscribe(EventType.EXECUTION, self._on_exec, name="chaos-exec")
        self.rest = BybitRestClient(
            api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=self.emu.rest_url(),
            timeout=5.0,
        )  # fmt: skip
        self.account = Account(
            self.bus,
            self.rest,
            api_key=DEFAULT_API_KEY,
            api_secret=DEFAULT_API_SECRET,
            private_url=self.emu.url("private"),
            private_options={
                "ping_interval": self.ping_interval,
                "pong_timeout": self.pong_timeout,
                "connect_timeout": t.connect_timeout,
                "ack_timeout": t.ack_timeout,
                "auth_timeout": t.auth_timeout,
                "auth_retry_interval": t.auth_retry_interval,
                "backoff": t.backoff,
                "rng": random.Random(self.config.seed),
            },
            subscribe_timeout=t.subscribe_timeout,
            retry_first=t.retry_first,
            retry_max=t.retry_max,
            recheck_delay=t.recheck_delay,
            **self.account_options,
        )
        await self.account.start()
        self._orders: set[asyncio.Task[Any]] = set()
        self._next_order = 0.0

    def _on_exec(self, ev: Any) -> None:
        for x in ev.executions:
            self.counts["executions_delivered"] += 1
            self.checker.on_execution(str(x.exec_id), self.now())

    async def step(self, now: float) -> None:
        self.advance(1)
        loop_now = self.now()
        if now > 0 and loop_now >= self._next_order and len(self._orders) < 4:
            self._next_order = loop_now + self.t.order_every
            task = asyncio.get_running_loop().create_task(self._order())
            self._orders.add(task)
            task.add_done_callback(self._orders.discard)

    async def _order(self) -> None:
        side = self.rng.choice(("Buy", "Sell"))
        try:
            await self.rest.create_order(
                category="linear", symbol="BTCUSDT", side=side, order_type="Market", qty="0.001"
            )
            self.counts["orders_filled"] += 1
        except Exception as exc:  # REST errors are not this storm's subject; counted
            self.counts[f"order_error:{type(exc).__name__}"] += 1

    def apply_other(self, fault: Fault) -> None:
        if fault.kind == "private_link_lost":
            self.emu.private_link_down(DEFAULT_API_KEY)
            self._later((0.3 + 0.7 * fault.pick) * self.t.hold, self._link_up)
        elif fault.kind == "rest_failure":
            self._rest_failure(fault.pick)

    def _rest_failure(self, pick: float) -> None:
        """REST fails (a rate limit, a server error, an HTTP 5xx or 429, a slow answer) on one
        of the paths the account reconciles with, or any, for the next 1-3 requests; the
        private link drops at the same time, so a reconciliation runs into it."""
        emu = self.emu
        path = _RECONCILE_PATHS[int(pick * len(_RECONCILE_PATHS))]
        count = 1 + int(pick * 97) % 3
        variant = int(pick * 1009) % 4
        if variant == 0:
            emu.inject_rest_error((10006, 10016, 10000)[count - 1], count, path=path)
        elif variant == 1:
            emu.inject_rest_http((500, 502, 503, 504, 429)[int(pick * 31) % 5], count, path=path)
        elif variant == 2:
            emu.inject_rest_delay((0.3 + 0.7 * pick) * self.t.hold, count, path=path)
        else:
            emu.inject_rest_error(10006, count, path=path, reset_header=False)
        self.counts[f"rest_failure:{('code', 'http', 'delay', 'code-no-reset')[variant]}"] += 1
        for cid in self.conns():
            emu.drop_connections(cid)

    def _link_up(self) -> None:
        self.emu.private_link_up(DEFAULT_API_KEY)

    def clear_faults(self) -> None:
        super().clear_faults()
        self.emu.clear_rest_failures()
        if self.emu.private_link_is_down(DEFAULT_API_KEY):
            self.emu.private_link_up(DEFAULT_API_KEY)

    async def settle(self) -> None:
        if self._orders:
            await asyncio.wait(set(self._orders), timeout=self.t.settle / 3)
        ok = await self.until(
            lambda: self.account.in_sync and not self.differences(), self.t.settle * 2 / 3
        )
        if not ok:
            self.checker.fail(
                "state",
                "account",
                f"in_sync={self.account.in_sync}: {self.differences()[:3]}",
                self.now(),
            )

    def differences(self) -> list[str]:
        truth = self.emu.account(DEFAULT_API_KEY)
        acct = self.account
        out = []
        open_truth = {str(o["orderId"]) for o in truth.open_orders}
        if set(acct.orders) != open_truth:
            out.append(f"open orders {sorted(acct.orders)} != {sorted(open_truth)}")
        for item in truth.positions:
            held = acct.position(str(item["category"]), str(item["symbol"]), 0)
            size = Decimal(str(item["size"]))
            mine = Decimal("0") if held is None else Decimal(held.size or "0")
            if mine != size:
                out.append(f"position {item['symbol']}: {mine} != {size}")
        for coin, balance in truth.balances.items():
            w = acct.balance(coin)
            if w is None or Decimal(w.wallet_balance or "0") != Decimal(balance):
                out.append(f"{coin}: {None if w is None else w.wallet_balance} != {balance}")
        return out

    def final_checks(self) -> None:
        truth = [str(x["execId"]) for x in self.emu.account(DEFAULT_API_KEY).executions]
        self.counts["executions_venue"] = len(truth)
        st = self.account.state.stats
        self.counts["reconcile_runs"] = st.runs
        self.counts["reconcile_runs_failed"] = st.runs_failed
        self.counts["stale_executions"] = st.stale_executions
        self.count_link(self.account.private.stats)
        self.checker.check_executions(truth, self.now())
        self.check_attempts("/v5/private", self.RATE, self.BURST)

    async def stop(self) -> None:
        for task in list(getattr(self, "_orders", ())):
            task.cancel()
        account = getattr(self, "account", None)
        if account is not None:
            await account.stop()
        rest = getattr(self, "rest", None)
        if rest is not None:
            await rest.close()
        bus = getattr(self, "bus", None)
        if bus is not None:
            await bus.stop()


# -- trade: order entry over the trade stream --------------------------------------------------


class _TradeStorm(_Storm):
    category = "trade"
    RATE = 1000.0
    BURST = 1000

    async def start(self) -> None:
        from hean.exchange.bybit.ws_trade import BybitTradeWebSocket

        t = self.t
        self.trade = BybitTradeWebSocket(
            None,
            api_key=DEFAULT_API_KEY,
            api_secret=DEFAULT_API_SECRET,
            url=self.emu.url("trade"),
            ping_interval=self.ping_interval,
            pong_timeout=self.pong_timeout,
            connect_timeout=t.connect_timeout,
            auth_timeout=t.auth_timeout,
            auth_retry_interval=t.auth_retry_interval,
            request_timeout=t.request_timeout,
            backoff=t.backoff,
            rng=random.Random(self.config.seed),
        )
        await self.trade.connect(timeout=max(5.0, t.settle / 3))
        self._requests: set[asyncio.Task[Any]] = set()
        self._next = 0.0
        self.outcomes: Counter[str] = Counter()

    async def step(self, now: float) -> None:
        self.advance(1)
        loop_now = self.now()
        if now > 0 and loop_now >= self._next and len(self._requests) < 8:
            self._next = loop_now + self.t.request_every
            task = asyncio.get_running_loop().create_task(self._request())
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

    async def _request(self) -> None:
        from hean.exchange.bybit.protocol.trade import TradeRequestError

        self.counts["requests"] += 1
        try:
            bids, _ = self.emu.book_truth("linear", "BTCUSDT", 1)
            price = Decimal(bids[0][0]) - 100
            # below the best bid and immediate-or-cancel: answered, never resting, so the
            # venue's open orders (and the account's) do not pile up when a cancel is lost
            ack = await self.trade.create_order(
                category="linear", symbol="BTCUSDT", side="Buy", order_type="Limit",
                qty="0.001", price=str(price), time_in_force="IOC",
            )  # fmt: skip
            self.outcomes["answered"] += 1
            with contextlib.suppress(TradeRequestError):
                await self.trade.cancel_order(
                    category="linear", symbol="BTCUSDT", order_id=ack.order_id
                )
        except TradeRequestError as exc:  # a clear error: rejected, timed out, lost, not ready
            self.outcomes[type(exc).__name__] += 1
        except Exception as exc:
            self.outcomes[f"unexpected:{type(exc).__name__}"] += 1
            self.checker.fail("pending", "trade request", f"unclear outcome {exc!r}", self.now())

    def apply_other(self, fault: Fault) -> None:
        cids = self.conns()
        if fault.kind == "trade_error":
            for cid in cids:
                self.emu.inject_trade_error(10006, count=3, conn_id=cid)
        elif fault.kind == "slow_ack":
            for cid in cids:
                self.emu.set_faults(cid, ack_delay=(0.2 + 1.5 * fault.pick) * self.t.hold)

    def clear_faults(self) -> None:
        super().clear_faults()
        for cid in self.conns():
            with contextlib.suppress(KeyError):
                self.emu.set_faults(cid, ack_delay=None)
                self.emu.clear_trade_errors(cid)

    async def settle(self) -> None:
        if self._requests:
            # every request ends: an answer or a typed error, within its timeout
            _, pending = await asyncio.wait(set(self._requests), timeout=self.t.settle / 5)
            self.checker.check_pending("trade tasks", len(pending), self.now())

    def final_checks(self) -> None:
        self.checker.check_pending("trade in flight", self.trade.in_flight, self.now())
        for k, n in self.outcomes.items():
            self.counts[f"outcome:{k}"] = n
        self.check_attempts("/v5/trade", self.RATE, self.BURST)
        self.counts["reconnects"] = self.trade.session.stats.reconnects
        self.count_link(self.trade.stats)

    async def stop(self) -> None:
        for task in list(getattr(self, "_requests", ())):
            task.cancel()
        trade = getattr(self, "trade", None)
        if trade is not None:
            await trade.disconnect()
