"""The soak (issue 12): a simulated day with random faults; nothing may grow, nothing may stick.

One emulator serves a realistic linear symbol set at Bybit's own cadence (a ticker every 100 ms
per symbol, ``orderbook.50`` every 20 ms, trades as they happen) to the whole client stack of
the chaos storms at once: public tickers, books and trades through a
:class:`~hean.hub.StreamHub` watched by a :class:`~hean.health.HealthMonitor` (with a slow
consumer), an :class:`~hean.account.Account` over the private stream while market orders fill,
and order entry over the trade stream. Each stream kind gets its own seeded fault schedule
(:func:`~hean.chaos.schedule.plan`, every fault the emulator injects) and every invariant of
:class:`~hean.chaos.invariants.InvariantChecker` is checked as in a storm.

**Time.** The control plane runs ``scale`` times faster than real time: every client timing is
HEAN's default divided by ``scale`` (:meth:`~hean.chaos.storm.Timing.compressed`: the 20 s ping,
10 s pong timeout, backoff and circuit breaker, book and ticker repair, the connection rate
limit, orders and trade requests), and so are fault spacings and durations; ``hours`` simulated
hours take ``hours * 3600 / scale`` wall seconds. The data plane runs at Bybit's cadence in wall
time (what a client must keep up with at peak); the messages a run handles are counted and
reported, so what was covered is stated, not implied.

**Flat.** After a warm-up (faults included, so every code path has made its caches), the faults
stop, every stream settles, and a baseline is taken: Python heap by source file
(:mod:`tracemalloc`, traced from the start), resident memory, open file descriptors, asyncio
tasks and the sizes of the per-topic state (hub, connections, repair schedules, health watches,
account). After the day the faults stop again, the streams settle, the final invariants are
checked (state equal to the venue's, every frame delivered, executions exactly once ...) and the
same figures are taken again: HEAN's own heap may not grow by more than ``max_growth`` bytes,
descriptors and tasks not beyond the baseline plus a small allowance for pooled REST
connections, and per-topic state not at all. Samples every ``hours / samples`` simulated hours
show the way there.

Bounded-by-design stores are made small so that they reach their bound during the warm-up (the
account's de-duplication ids and closed orders, the health monitor's sample windows); growth
after that is a leak. The emulator's own stores (every execution of the venue, every connection
it accepted) grow by design and are reported apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hean.chaos.invariants import Violation
from hean.chaos.schedule import KINDS, Fault, plan
from hean.chaos.storm import (
    StormConfig,
    Timing,
    _PrivateStorm,
    _PublicStorm,
    _Storm,
    _TradeStorm,
)
from hean.emulator import Emulator, EmulatorConfig, MarketParams

__all__ = ["SOAK_SYMBOLS", "Sample", "SoakConfig", "SoakReport", "run_soak", "soak_command"]

log = logging.getLogger("hean.chaos")

SOAK_SYMBOLS: tuple[str, ...] = (
    "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT", "ADAUSDT", "AVAXUSDT",
    "LINKUSDT", "DOTUSDT", "TRXUSDT", "TONUSDT", "LTCUSDT", "BCHUSDT", "NEARUSDT", "UNIUSDT",
    "APTUSDT", "ARBUSDT", "OPUSDT", "SUIUSDT", "1000PEPEUSDT", "FILUSDT", "ATOMUSDT", "ETCUSDT",
    "INJUSDT", "AAVEUSDT", "WLDUSDT", "SEIUSDT", "TIAUSDT", "ENAUSDT", "HBARUSDT", "ICPUSDT",
    "XLMUSDT", "MKRUSDT", "RUNEUSDT", "STXUSDT", "IMXUSDT", "FETUSDT", "GALAUSDT", "ORDIUSDT",
    "JUPUSDT", "PYTHUSDT", "ONDOUSDT", "WIFUSDT", "1000BONKUSDT", "TAOUSDT", "ALGOUSDT",
    "SANDUSDT", "EOSUSDT", "CRVUSDT",
)  # fmt: skip
"""Fifty of Bybit's busiest linear perpetuals (names only: the emulator prices them)."""

_HEAN = os.sep + "hean" + os.sep

TRACE_FRAMES = 1
"""Frames kept per traced allocation. One: each more costs about as much again (6 frames
halved the messages this machine could serve); an allocation is charged to the innermost
frame in HEAN's tree among them (see :func:`_owner`), so with one frame a library allocating
on HEAN's behalf is "other" (reported, not judged)."""


@dataclass(frozen=True, slots=True)
class SoakConfig:
    hours: float = 24.0
    """Simulated hours after the warm-up."""
    scale: float = 48.0
    """Simulated seconds per wall second (48: a day in 30 minutes)."""
    symbols: int = 30
    """Linear symbols with tickers and trades (at most 50)."""
    book_symbols: int = 10
    """Of those, how many also have ``orderbook.50``."""
    activity: float = 0.25
    """The simulated market's event rate (1: 400 book changes and 3 takers a second per symbol;
    the message cadence is Bybit's either way, but the emulator's own work, in this process,
    scales with it)."""
    seed: int = 1
    every: tuple[float, float] = (120.0, 360.0)
    """Simulated seconds between two faults of one stream kind."""
    warmup: float = 60.0
    """Wall seconds of warm-up (with faults) before the baseline."""
    samples: int = 24
    kinds: tuple[str, ...] = KINDS
    trace: bool = True
    """Trace the heap with :mod:`tracemalloc` (the growth by source file)."""
    max_growth: int = 1 << 20
    """Bytes the client may hold more at the end than at the baseline (heap allocated by
    HEAN's code and by the libraries it calls; not the emulator's, not the checker's)."""
    fd_slack: int = 8
    """Descriptors (and tasks) the end may exceed the baseline by: pooled REST connections."""

    @property
    def wall_seconds(self) -> float:
        return self.hours * 3600.0 / self.scale


@dataclass(slots=True)
class Sample:
    """One measurement (``quiet``: faults off, every stream settled)."""

    label: str
    sim_hours: float
    wall: float
    heap: int
    """Bytes traced by tracemalloc (0 when not tracing)."""
    rss: int
    fds: int
    tasks: int
    messages: int
    faults: int
    state: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"{self.label:>9} {self.sim_hours:6.2f}h {self.wall:7.1f}s heap={_mib(self.heap)} "
            f"rss={_mib(self.rss)} fds={self.fds} tasks={self.tasks} msgs={self.messages} "
            f"faults={self.faults}"
        )


@dataclass(slots=True)
class SoakReport:
    config: SoakConfig
    faults: list[tuple[str, Fault]]
    violations: list[Violation]
    samples: list[Sample]
    counts: dict[str, int]
    growth: dict[str, int]
    """Heap growth baseline -> end by source group (``hean``, ``emulator``, ``chaos``, other)."""
    top_growth: list[str]
    wall: float = 0.0
    warmup_faults: int = 0
    """How many of ``faults`` came in the warm-up (the rest: the simulated day)."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def faults_by_kind(self) -> dict[str, int]:
        """Faults of the simulated day (after the warm-up) by fault kind."""
        return dict(Counter(f.kind for _, f in self.faults[self.warmup_faults :]))

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (for ``--json``)."""
        c = self.config
        return {
            "config": {
                "hours": c.hours, "scale": c.scale, "symbols": c.symbols,
                "book_symbols": c.book_symbols, "seed": c.seed, "every": list(c.every),
                "warmup": c.warmup, "kinds": list(c.kinds), "activity": c.activity,
                "trace": c.trace,
            },
            "wall_s": round(self.wall, 1),
            "ok": self.ok,
            "faults": len(self.faults),
            "warmup_faults": self.warmup_faults,
            "faults_by_kind": self.faults_by_kind(),
            "faults_by_stream": dict(Counter(k for k, _ in self.faults[self.warmup_faults :])),
            "violations": [str(v) for v in self.violations],
            "growth": self.growth,
            "top_growth": self.top_growth,
            "counts": self.counts,
            "samples": [
                {
                    "label": s.label, "sim_hours": round(s.sim_hours, 3),
                    "wall_s": round(s.wall, 1), "heap": s.heap, "rss": s.rss, "fds": s.fds,
                    "tasks": s.tasks, "messages": s.messages, "faults": s.faults,
                    "state": s.state,
                }
                for s in self.samples
            ],
        }  # fmt: skip

    def text(self) -> str:
        c = self.config
        base = next((s for s in self.samples if s.label == "baseline"), None)
        msgs = self.samples[-1].messages - base.messages if base is not None else 0
        day = self.faults[self.warmup_faults :]
        lines = [
            f"soak seed={c.seed} simulated={c.hours:g}h scale={c.scale:g} "
            f"symbols={c.symbols} books={c.book_symbols} kinds={','.join(c.kinds)} "
            f"wall={self.wall:.0f}s violations={len(self.violations)}",
            f"  faults after the warm-up ({len(day)}; {self.warmup_faults} in the warm-up): "
            + ", ".join(f"{k}={n}" for k, n in sorted(Counter(f.kind for _, f in day).items())),
            "  by stream: "
            + ", ".join(f"{k}={n}" for k, n in sorted(Counter(k for k, _ in day).items())),
            f"  messages after the warm-up: {msgs}",
            "  heap growth baseline -> end: "
            + ", ".join(f"{k}={_kib(v)}" for k, v in sorted(self.growth.items())),
            "  counts: " + ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items())),
            "  samples:",
        ]
        lines += [f"    {s.line()}" for s in self.samples]
        if self.samples:
            base = next((s for s in self.samples if s.label == "baseline"), self.samples[0])
            end = self.samples[-1]
            changed = {
                k: (base.state.get(k), v) for k, v in end.state.items() if base.state.get(k) != v
            }
            lines.append(f"  per-topic state at the baseline: {base.state}")
            lines.append(f"  changed at the end: {changed or 'nothing'}")
        if self.top_growth:
            lines.append("  largest heap growth by line:")
            lines += [f"    {g}" for g in self.top_growth]
        lines += [f"  VIOLATION {v}" for v in self.violations[:50]]
        if self.violations:
            lines.append(f"  replay: {soak_command(c)}")
        return "\n".join(lines)


def soak_command(config: SoakConfig) -> str:
    lo, hi = config.every
    return (
        f"python benchmarks/soak.py --hours {config.hours:g} --scale {config.scale:g} "
        f"--symbols {config.symbols} --books {config.book_symbols} --seed {config.seed} "
        f"--every {lo:g},{hi:g} --warmup {config.warmup:g} --kinds {','.join(config.kinds)}"
    )


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}MiB"


def _kib(n: int) -> str:
    return f"{n / 1024:+.0f}KiB"


def open_fds() -> int:
    """Open file descriptors of this process (-1 where /proc is not available)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def source_group(filename: str) -> str:
    """``hean`` (the client: everything under hean/ but the emulator and the chaos suite),
    ``emulator``, ``chaos`` or ``other`` (stdlib and libraries: uuid, aiohttp, asyncio ...,
    whoever called them)."""
    i = filename.rfind(_HEAN)
    if i < 0:
        return "other"
    rest = filename[i + len(_HEAN) :]
    if rest.startswith("emulator" + os.sep):
        return "emulator"
    if rest.startswith("chaos" + os.sep):
        return "chaos"
    return "hean"


class VenueClock:
    """The emulator's clock in the soak: the system clock, but read here, so the times the
    venue keeps (its connection and auth logs, orders ...) are charged to the venue's side of
    the heap and not to HEAN's ``core/clock.py``."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wall_time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Soak:
    def __init__(self, config: SoakConfig) -> None:
        if not 1 <= config.symbols <= len(SOAK_SYMBOLS):
            raise ValueError(f"symbols must be 1..{len(SOAK_SYMBOLS)}, got {config.symbols}")
        if not 1 <= config.book_symbols <= config.symbols:
            raise ValueError("book_symbols must be 1..symbols")
        if not config.hours > 0 or not config.scale > 0 or not config.warmup >= 0:
            raise ValueError("hours and scale must be > 0, warmup >= 0")
        unknown = set(config.kinds) - set(KINDS)
        if unknown or not config.kinds:
            raise ValueError(f"kinds must be among {', '.join(KINDS)}")
        self.config = config
        self.timing = Timing.compressed(config.scale)
        self.symbols = SOAK_SYMBOLS[: config.symbols]
        self.books = self.symbols[: config.book_symbols]
        lo, hi = config.every
        self.every = (lo / config.scale, hi / config.scale)
        self.parts: list[_Storm] = []
        self.applied: list[tuple[str, Fault]] = []
        self.samples: list[Sample] = []
        self.counts: Counter[str] = Counter()
        self._market_at = 0.0
        self._frozen = False
        self._warmup_faults = 0
        self._t0 = 0.0
        self._day_start = 0.0
        self.emu: Emulator
        self.health: Any = None

    # -- the venue ----------------------------------------------------------------------------

    def emulator_config(self) -> EmulatorConfig:
        k = self.config.scale
        return EmulatorConfig(
            symbols={"linear": self.symbols},
            market=MarketParams(activity=self.config.activity),
            auto_tick=False,  # driven by wall time below: stopped for the final comparison
            trade_rate_limit=max(10, round(10 * k)),
            rest_rate_scale=max(1.0, k),
            private_idle_timeout=max(5.0, 600.0 / k),
        )

    def market(self, _quanta: int = 0) -> None:
        """Move the venue's market with wall time (Bybit's cadence), at most 50 steps a go
        (not while frozen for the final comparison)."""
        loop_now = asyncio.get_running_loop().time()
        if self._frozen:
            self._market_at = loop_now
            return
        step = self.emu.config.market_step
        due = int((loop_now - self._market_at) / step)
        if due > 0:
            n = min(due, 50)
            self.emu.step("linear", quanta=n)
            self._market_at = loop_now if n < due else self._market_at + n * step

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> SoakReport:
        cfg = self.config
        started = time.monotonic()
        if cfg.trace and not tracemalloc.is_tracing():
            tracemalloc.start(TRACE_FRAMES)
        base_snap: tracemalloc.Snapshot | None = None
        end_snap: tracemalloc.Snapshot | None = None
        try:
            async with Emulator(self.emulator_config(), clock=VenueClock()) as emu:
                self.emu = emu
                loop = asyncio.get_running_loop()
                self._t0 = self._market_at = loop.time()
                try:
                    await self._start_parts()
                    self.samples.append(self._sample("start", 0.0))
                    # warm-up, with faults: every path makes its caches
                    await self._phase("warmup", cfg.warmup, seed_offset=1)
                    await self._quiet()
                    base_snap = self._snapshot()
                    self.samples.append(self._sample("baseline", 0.0))
                    self._warmup_faults = len(self.applied)
                    # the day
                    await self._phase("day", cfg.wall_seconds, seed_offset=0, sample=True)
                    await self._quiet(final=True)
                    end_snap = self._snapshot()
                    self.samples.append(self._sample("end", cfg.hours))
                    self._judge()
                finally:
                    await self._stop_parts()
        finally:
            if cfg.trace and tracemalloc.is_tracing():
                tracemalloc.stop()
        growth, top = _growth(base_snap, end_snap)
        # the client's heap: what HEAN's code allocated, itself or through a library (picows,
        # msgspec, asyncio ...); the emulator's and the checker's stores grow by design
        held = growth.get("hean", 0)
        if cfg.trace and held > cfg.max_growth:
            grew, limit = _kib(held), _kib(cfg.max_growth)
            self.fail("memory", "client heap", f"grew {grew} > {limit}")
        violations = [v for part in self.parts for v in part.checker.violations]
        violations += self._own
        counts = dict(self.counts)
        for part in self.parts:
            for key, value in part.counts.items():
                if not key.startswith("fault:"):
                    counts[f"{part.config.kind}.{key}"] = value
        report = SoakReport(cfg, self.applied, violations, self.samples, counts, growth, top)
        report.wall = time.monotonic() - started
        report.warmup_faults = self._warmup_faults
        return report

    _own: list[Violation]

    def fail(self, rule: str, subject: str, detail: str) -> None:
        self._own.append(Violation(rule, subject, detail, time.monotonic()))

    async def _start_parts(self) -> None:
        self._own = []
        runners: dict[str, type[_Storm]] = {
            "public": _PublicStorm,
            "private": _PrivateStorm,
            "trade": _TradeStorm,
        }
        for kind in self.config.kinds:
            sc = StormConfig(kind=kind, seed=self.config.seed, duration=1.0, every=self.every)
            part = runners[kind](sc, self.timing, self.symbols, self.books)
            part.emu = self.emu
            part.market = self.market
            if isinstance(part, _PrivateStorm):
                # the account's bounded stores reach their bounds during the warm-up
                part.account_options = {"core_options": dict(_ACCOUNT_BOUNDS)}
            self.parts.append(part)
            await part.start()
            if isinstance(part, _PublicStorm):
                await self._watch_health(part)

    async def _watch_health(self, part: _PublicStorm) -> None:
        from hean.health import HealthMonitor

        # staleness thresholds are about the data, which flows in real time: defaults; the
        # sample windows fill within the warm-up
        self.health = HealthMonitor(
            part.bus, discover=part.hub.connections, sample_interval=0.1, check_interval=0.1
        )
        await self.health.start()

    async def _stop_parts(self) -> None:
        if self.health is not None:
            await self.health.stop()
        for part in self.parts:
            with contextlib.suppress(Exception):
                await part.stop()

    async def _phase(
        self, name: str, seconds: float, seed_offset: int, sample: bool = False
    ) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending: dict[int, list[Fault]] = {}
        for i, part in enumerate(self.parts):
            pending[i] = plan(part.config.kind, cfg.seed + 7919 * seed_offset, seconds, self.every)
        every = seconds / cfg.samples if sample and cfg.samples else 0.0
        next_sample = start + every if every else float("inf")
        self._day_start = start
        log.info("soak: %s for %.0fs", name, seconds)
        while True:
            now = loop.time() - start
            if now >= seconds:
                break
            self.market()
            for i, part in enumerate(self.parts):
                queue = pending[i]
                while queue and queue[0].at <= now:
                    fault = queue.pop(0)
                    self.applied.append((part.config.kind, fault))
                    part.counts[f"fault:{fault.kind}"] += 1
                    log.info("soak fault %s %s", part.config.kind, fault)
                    part.apply(fault)
                part._run_restores(now)
                await part.step(now)
                part.check_drips()
            if loop.time() >= next_sample:
                next_sample += every
                sim = (loop.time() - start) * cfg.scale / 3600.0
                self.samples.append(self._sample("day", sim, quiet=False))
            await asyncio.sleep(0.005)

    async def _quiet(self, final: bool = False) -> None:
        """Faults off, every stream settled (and, at the end, the final invariants)."""
        for part in self.parts:
            part.clear_faults()
        for part in self.parts:
            await part.settle()
        if final:
            # the market stands still while the client's state is compared with the venue's
            self._frozen = True
            for part in self.parts:
                await part.settle()
            for part in self.parts:
                part.final_checks()
            self._frozen = False
        # let the last replies, timers and consumer queues drain
        for _ in range(20):
            self.market()
            await asyncio.sleep(0.01)

    def _snapshot(self) -> tracemalloc.Snapshot | None:
        gc.collect()
        if not tracemalloc.is_tracing():
            return None
        return tracemalloc.take_snapshot()

    def _sample(self, label: str, sim_hours: float, quiet: bool = True) -> Sample:
        if quiet:
            gc.collect()
        heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        return Sample(
            label=label,
            sim_hours=sim_hours,
            wall=asyncio.get_running_loop().time() - self._t0,
            heap=heap,
            rss=rss_bytes(),
            fds=open_fds(),
            tasks=len(asyncio.all_tasks()),
            messages=self._total_messages(),
            faults=len(self.applied),
            state=self._state() if quiet else {},
        )

    def _total_messages(self) -> int:
        """Frames received by every client connection of the run (counted by the sessions;
        a replaced connection's count is carried by the connection object, which the hub
        keeps across reconnects)."""
        total = 0
        for part in self.parts:
            for ws in _connections(part):
                total += ws.session.stats.messages
        return total

    def _state(self) -> dict[str, int]:
        """Sizes of the per-topic (and per-order) state of the client."""
        out: dict[str, int] = {}
        for part in self.parts:
            kind = part.config.kind
            if isinstance(part, _PublicStorm):
                hub = part.hub
                out["hub.wanted"] = len(hub.wanted("linear"))
                out["hub.consumers"] = len(hub.consumers)
                for n, ws in enumerate(hub.connections("linear")):
                    p = f"public{n}"
                    out[f"{p}.topics"] = len(ws.session.subscriptions.topics)
                    out[f"{p}.routes"] = len(ws.session.routes)
                    out[f"{p}.tickers"] = len(ws.tickers.by_topic)
                    out[f"{p}.books"] = len(ws.books.by_topic)
                    out[f"{p}.repairs"] = len(ws.repairs.repairs)
                    out[f"{p}.pending_acks"] = len(ws.session.subscriptions._pending)
                out["bus.subscriptions"] = _bus_size(part.bus)
                health = self.health
                if health is not None:
                    out["health.watches"] = sum(len(r) for r in health._routes.values())
                    out["health.rate_series"] = len(health.rates)
                    out["health.price_series"] = len(health.prices)
                    out["health.history"] = len(health.history)
            elif isinstance(part, _PrivateStorm):
                st = part.account.state.stats
                out["account.open_orders"] = len(part.account.orders)
                out["account.exec_ids"] = st.exec_ids
                out["account.closed_orders"] = st.closed_orders
                out["private.topics"] = len(part.account.private.session.subscriptions.topics)
            elif isinstance(part, _TradeStorm):
                out["trade.in_flight"] = part.trade.in_flight
            out[f"{kind}.tasks_of_part"] = len(getattr(part, "_orders", ())) + len(
                getattr(part, "_requests", ())
            )
        return out

    def _judge(self) -> None:
        cfg = self.config
        base = next(s for s in self.samples if s.label == "baseline")
        end = self.samples[-1]
        if base.fds >= 0 and end.fds > base.fds + cfg.fd_slack:
            self.fail("fds", "process", f"{base.fds} at the baseline, {end.fds} at the end")
        if end.tasks > base.tasks + cfg.fd_slack:
            self.fail("tasks", "process", f"{base.tasks} at the baseline, {end.tasks} at the end")
        for key, value in end.state.items():
            before = base.state.get(key)
            if key in _VENUE:
                continue
            if key in _BOUNDED:
                if value > _BOUNDED[key]:
                    self.fail("state", key, f"{value} > its bound {_BOUNDED[key]}")
            elif before is not None and value > before:
                self.fail("state", key, f"{before} at the baseline, {value} at the end")


_ACCOUNT_BOUNDS = {"max_exec_ids": 2000, "max_recent_executions": 20, "max_closed_orders": 10}
"""The account's bounded stores in the soak: the executions and closed orders it keeps reach
their bounds in the warm-up; the de-duplication ids (a few dozen bytes each) may grow to theirs
(left large: below it exactly-once holds; beyond it, by design, at most once)."""

_BOUNDED = {"account.exec_ids": 2000, "account.closed_orders": 10, "health.history": 50}
"""State allowed to differ between the baseline and the end, up to its bound."""

_VENUE = frozenset({"account.open_orders"})
"""State that follows the venue (orders the trade stream left open): checked equal to the
venue's at the end, not flat."""


def _connections(part: _Storm) -> list[Any]:
    if isinstance(part, _PublicStorm):
        return list(part.hub.connections())
    if isinstance(part, _PrivateStorm):
        return [part.account.private]
    if isinstance(part, _TradeStorm):
        return [part.trade]
    return []


def _bus_size(bus: Any) -> int:
    subs = getattr(bus, "_subs", None)
    return len(subs) if isinstance(subs, list) else -1


def _owner(traceback: tracemalloc.Traceback) -> tracemalloc.Frame:
    """The frame an allocation is charged to: the innermost one in HEAN's source tree (the
    client, the emulator or the checker: a library allocating on their behalf is theirs), else
    the innermost frame."""
    for frame in reversed(traceback):  # oldest first: the innermost is the last
        if _HEAN in frame.filename:
            return frame
    return traceback[-1]


def _growth(
    base: tracemalloc.Snapshot | None, end: tracemalloc.Snapshot | None
) -> tuple[dict[str, int], list[str]]:
    if base is None or end is None:
        return {}, []
    groups: Counter[str] = Counter()
    lines: Counter[tuple[str, str, int]] = Counter()
    blocks: Counter[tuple[str, str, int]] = Counter()
    for stat in end.compare_to(base, "traceback"):
        frame = _owner(stat.traceback)
        group = source_group(frame.filename)
        groups[group] += stat.size_diff
        key = (group, frame.filename, frame.lineno)
        lines[key] += stat.size_diff
        blocks[key] += stat.count_diff
    top: list[str] = []
    shown: Counter[str] = Counter()
    for key, size in lines.most_common():
        group, where, lineno = key
        if size <= 0 or len(top) >= 24:
            break
        if shown[group] >= 6:
            continue
        shown[group] += 1
        i = where.rfind(_HEAN)
        where = where[i + 1 :] if i >= 0 else os.path.basename(where)
        top.append(f"{group:>8} {_kib(size)} ({blocks[key]:+d} blocks) {where}:{lineno}")
    return dict(groups), top


async def run_soak(config: SoakConfig) -> SoakReport:
    """Run the soak (see the module docstring) and return its report."""
    return await _Soak(config).run()
