"""Per-category market clock, subscriptions and delivery of every public topic.

A :class:`CategoryFeed` advances its category's markets in fixed *quanta* of simulated time
(``EmulatorConfig.market_step``, at most the ticker interval). After each quantum it publishes what
is due, every cadence being a whole number of quanta:

* ``orderbook.{depth}``: every ``book_intervals[depth]`` (default 10/20/100/200 ms; option 25/100:
  20/100 ms) if the window changed; level 1 re-sends its snapshot (same ``u``) after
  ``level1_repush`` seconds without change; ``orderbook.rpi``: 50 levels, every 100 ms;
  ``orderbook.full``: the whole book, delta-only, every 200 ms;
* ``publicTrade``: every quantum that had trades;
* ``kline``: ``confirm:true`` in the quantum an interval closed, ``confirm:false`` every
  ``kline_interval``;
* ``allLiquidation``: every ``liquidation_interval`` if there were any;
* ``tickers``: every ticker interval (one message per push, as before);
* ``priceLimit`` every 300 ms, ``insurance`` and ``adlAlert`` every second, ``tickers_lt`` with
  the tickers (:mod:`hean.emulator.extras`; a message at once on subscribe).

Simulated time starts at the emulator's wall time and moves ``market_step`` per quantum; with
``auto_tick`` the loop keeps it in step with the clock, with ``tick()`` it moves only when told.
All timestamps in messages (``ts``, ``cts``, ``T``, kline bounds) are simulated time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from hean.core.clock import Clock
from hean.emulator import shapes, topics
from hean.emulator.config import EmulatorConfig
from hean.emulator.extras import (
    EXTRA_INTERVALS,
    LT_TOKENS,
    AdlPublisher,
    InsurancePool,
    InsurancePublisher,
    LeveragedTokenPublisher,
    PriceLimitPublisher,
    pool_symbols,
)
from hean.emulator.market import Market, SymbolMarket
from hean.emulator.publishers import (
    BOOK_DEPTHS,
    BookPublisher,
    FullBookPublisher,
    KlinePublisher,
    LiquidationPublisher,
    RpiBookPublisher,
    TradePublisher,
)
from hean.emulator.ticker import TickerState

if TYPE_CHECKING:
    from hean.emulator.connection import EffectiveFaults, PublicSession

__all__ = ["CategoryFeed"]

log = logging.getLogger("hean.emulator")

_MAX_CATCH_UP = 50
#: seconds between ``orderbook.rpi`` pushes (protocol.md §5.3)
RPI_INTERVAL = 0.1
#: seconds between ``orderbook.full`` pushes (protocol.md §5.4)
FULL_BOOK_INTERVAL = 0.2


class FeedHub(Protocol):
    def effective_faults(self, conn_id: str) -> EffectiveFaults: ...


class CategoryFeed:
    """Clock, publishers and subscriber index of one category (``linear``, ``spot``, …)."""

    def __init__(
        self,
        hub: FeedHub,
        category: str,
        market: Market,
        config: EmulatorConfig,
        start_ms: int,
    ) -> None:
        self.hub = hub
        self.category = category
        ticker_interval = config.interval_for(category)
        q = min(config.market_step, ticker_interval)
        self.quantum = q
        self._q_ms = q * 1000.0

        def every(seconds: float) -> int:
            return max(1, round(seconds / q))

        self.ticker_every = every(ticker_interval)
        self.book_every = {d: every(config.book_intervals[d]) for d in BOOK_DEPTHS[category]}
        self.kline_every = every(config.kline_interval)
        self.liquidation_every = every(config.liquidation_interval)
        self.extra_every = {f: every(s) for f, s in EXTRA_INTERVALS.items()}
        self.extra_every["tickers_lt"] = self.ticker_every
        self.rpi_every = every(RPI_INTERVAL)
        self.full_every = every(FULL_BOOK_INTERVAL)
        self.repush_ms = config.level1_repush * 1000.0
        self.n = 0
        self.start_ms = start_ms
        self.now_ms = start_ms
        self._market = market
        #: symbols in use (see :meth:`activate`) and their tickers
        self.markets: dict[str, SymbolMarket] = {}
        self._market_list: list[SymbolMarket] = []
        self.tickers: dict[str, TickerState] = {}
        #: topic -> subscribed sessions (insertion-ordered)
        self.index: dict[str, dict[PublicSession, None]] = {}
        self.books: dict[str, BookPublisher] = {}
        self.trades: dict[str, TradePublisher] = {}
        self.klines: dict[str, KlinePublisher] = {}
        self.liquidations: dict[str, LiquidationPublisher] = {}
        self._u: dict[str, int] = {}  # u of book topics nobody listens to right now
        self._idle_versions: dict[str, int] = {}  # book version when an idle u was last read
        #: priceLimit / insurance / adlAlert topic -> publisher
        self.extras: dict[
            str,
            PriceLimitPublisher | InsurancePublisher | AdlPublisher | LeveragedTokenPublisher,
        ] = {}
        #: insurance pools in use (shared by the insurance and adlAlert topics)
        self.pools: dict[str, InsurancePool] = {}

    def activate(self, symbol: str) -> SymbolMarket:
        """The symbol's market, started now if it was not in use yet.

        Symbols start on first use (a subscription, a truth query), so a symbol nobody looks at
        costs nothing. KeyError for an unknown symbol.
        """
        market = self.markets.get(symbol)
        if market is None:
            market = self._market.symbol(self.category, symbol, self.now_ms)
            self.markets[symbol] = market
            order = self._market.symbols(self.category)
            self._market_list = [self.markets[s] for s in order if s in self.markets]
            self.tickers = {
                s: self.tickers.get(s) or TickerState(self.markets[s])
                for s in order
                if s in self.markets
            }
        return market

    # -- the clock ----------------------------------------------------------------------------

    def step(self) -> bool:
        """Advance one quantum and publish what is due; True if tickers were pushed."""
        self.n += 1
        n = self.n
        now = self.now_ms = self.start_ms + int(n * self._q_ms)
        q = self.quantum
        for market in self._market_list:
            market.advance(now, q)
        self._publish(n, now, force=False)
        if n % self.ticker_every == 0:
            self._push_tickers(now)
            return True
        return False

    def tick(self, steps: int = 1) -> None:
        """``steps`` ticker intervals (each ends with a ticker push)."""
        for _ in range(steps):
            while not self.step():
                pass

    def flush(self) -> None:
        """Publish pending book changes, trades and liquidations now, whatever the cadence."""
        self._publish(self.n, self.now_ms, force=True)

    async def run(self, clock: Clock) -> None:
        """Keep simulated time in step with ``clock`` (catching up at most 50 quanta a wake)."""
        q = self.quantum
        # line simulated time up with the wall clock (never backwards)
        self.start_ms = max(self.start_ms, clock.wall_ms() - int(self.n * self._q_ms))
        t0 = clock.monotonic()
        n0 = self.n
        while True:
            due = n0 + int((clock.monotonic() - t0) / q)
            if not self._market_list and not self.index:  # nothing in use: just keep time
                self.n = max(self.n, due)
                self.now_ms = self.start_ms + int(self.n * self._q_ms)
                await clock.sleep(max(q, 0.02))
                continue
            for _ in range(min(_MAX_CATCH_UP, due - self.n)):
                try:
                    self.step()
                except Exception:
                    log.exception("emulator: market step failed for %s", self.category)
            next_due = t0 + (self.n - n0 + 1) * q
            await clock.sleep(max(0.0, next_due - clock.monotonic()))

    # -- subscriptions ------------------------------------------------------------------------

    def _pool(self, pool: str) -> InsurancePool:
        found = self.pools.get(pool)
        if found is None:
            names = pool_symbols(self.category, pool, self._market.symbols(self.category))
            markets = [self.activate(s) for s in names]
            found = self.pools[pool] = InsurancePool(pool, markets, self.now_ms)
        return found

    def subscribe(self, session: PublicSession, topic: topics.Topic) -> None:
        name = topic.name
        if topic.family in ("insurance", "adlAlert"):
            self.index.setdefault(name, {})[session] = None
            if name not in self.extras:
                pool = self._pool(topic.symbol)
                if topic.family == "insurance":
                    self.extras[name] = InsurancePublisher(pool)
                else:
                    self.extras[name] = AdlPublisher(pool)
            return
        if topic.family == "tickers_lt":
            underlying, leverage = LT_TOKENS[topic.symbol]
            self.index.setdefault(name, {})[session] = None
            if name not in self.extras:
                market = self.activate(underlying)
                self.extras[name] = LeveragedTokenPublisher(topic.symbol, market, leverage)
            return
        market = self.activate(topic.symbol)
        self.index.setdefault(name, {})[session] = None
        if topic.family == "priceLimit" and name not in self.extras:
            self.extras[name] = PriceLimitPublisher(self.tickers[topic.symbol])
        elif topic.variant == "full":
            full = self.books.get(name)
            if not isinstance(full, FullBookPublisher):
                full = FullBookPublisher(market)
                self.books[name] = full
            full.restart(self.now_ms)
        elif topic.family == "orderbook" and name not in self.books:
            if topic.variant == "rpi":
                pub: BookPublisher = RpiBookPublisher(market, self._u.pop(name, 0))
            else:
                pub = BookPublisher(market, topic.depth, self._u.pop(name, 0))
            pub.prime(self.now_ms)
            self.books[name] = pub
        elif topic.family == "publicTrade" and name not in self.trades:
            self.trades[name] = TradePublisher(market)
        elif topic.family == "kline" and name not in self.klines:
            self.klines[name] = KlinePublisher(market, topic.interval)
        elif topic.family == "allLiquidation" and name not in self.liquidations:
            self.liquidations[name] = LiquidationPublisher(market)

    def unsubscribe(self, session: PublicSession, name: str) -> None:
        subs = self.index.get(name)
        if subs is None:
            return
        subs.pop(session, None)
        if subs:
            return
        del self.index[name]
        book = self.books.pop(name, None)
        if book is not None:
            self._u[name] = book.u
        self.trades.pop(name, None)
        self.klines.pop(name, None)
        self.liquidations.pop(name, None)
        self.extras.pop(name, None)

    def idle_book_u(self, name: str, version: int) -> int:
        """``u`` of a book topic nobody subscribes to (REST ``/v5/market/orderbook``): one more
        whenever the book changed since the last call, continued by a later subscription."""
        if self._idle_versions.get(name) != version:
            self._idle_versions[name] = version
            self._u[name] = self._u.get(name, 0) + 1
        return self._u[name]

    def send_initial(self, session: PublicSession, topic: topics.Topic) -> None:
        """What a new subscriber gets at once: a snapshot for books and tickers, the current
        message of priceLimit / insurance / adlAlert, else nothing."""
        extra = self.extras.get(topic.name)
        if extra is not None:
            session.push(topic.name, extra.initial(self.now_ms))
            return
        if topic.family not in ("orderbook", "tickers"):
            return
        full = self.books.get(topic.name)
        if isinstance(full, FullBookPublisher):  # re-initialisation for every subscriber
            data = full.snapshot(self.now_ms)
            for sub in list(self.index.get(topic.name, ())):
                sub.stale.discard(topic.name)
                sub.push(topic.name, data, u=full.u, seq=full.seq, snapshot=True, initial=True)
            return
        faults = self.hub.effective_faults(session.conn_id)
        if topic.symbol in faults.paused_symbols:
            session.stale.add(topic.name)
            return
        data, u, seq = self.snapshot(topic.name)
        session.push(topic.name, data, u=u, seq=seq, snapshot=True, initial=True)

    def snapshot(self, name: str, u: int | None = None) -> tuple[bytes, int, int]:
        """``(message, u, seq)`` of the current snapshot of a subscribed book or ticker topic."""
        book = self.books.get(name)
        if book is not None:
            return book.snapshot(self.now_ms, u), book.u if u is None else u, book.seq
        symbol = name.partition(".")[2]
        return self._ticker_message(name, self.tickers[symbol], None), 0, 0

    def delta_like(self, name: str) -> bytes | None:
        """A delta for the delta-before-snapshot fault (None for topics without deltas)."""
        book = self.books.get(name)
        if book is not None:
            return book.delta_like(self.now_ms)
        family, _, symbol = name.partition(".")
        state = self.tickers.get(symbol)
        if family != "tickers" or state is None:
            return None
        data = {"symbol": symbol, "lastPrice": state.truth.get("lastPrice", "")}
        return shapes.encode(shapes.ticker_delta(name, data, state.cs, self.now_ms))

    # -- publishing ---------------------------------------------------------------------------

    def _deliverable(
        self, session: PublicSession, symbol: str, cache: dict[PublicSession, EffectiveFaults]
    ) -> bool:
        faults = cache.get(session)
        if faults is None:
            faults = cache[session] = self.hub.effective_faults(session.conn_id)
        return not faults.blackhole and symbol not in faults.paused_symbols

    def _publish(self, n: int, now: int, *, force: bool) -> None:
        cache: dict[PublicSession, EffectiveFaults] = {}
        for name, book in list(self.books.items()):
            if isinstance(book, RpiBookPublisher):
                every = self.rpi_every
            elif isinstance(book, FullBookPublisher):
                every = self.full_every
            else:
                every = self.book_every[book.depth]
            if not force and n % every:
                continue
            data = book.refresh(now)
            if data is None and book.snapshot_only and now - book.sent_ms >= self.repush_ms:
                data = book.repeat(now)
            self._deliver_book(name, book, data, now, cache)
        for name, trade in list(self.trades.items()):
            for data in trade.collect(now):
                self._deliver(name, trade.market.symbol, data, cache)
        if force or n % self.liquidation_every == 0:
            for name, liq in list(self.liquidations.items()):
                data = liq.collect(now)
                if data is not None:
                    self._deliver(name, liq.market.symbol, data, cache)
        if force:
            return
        for name, extra in list(self.extras.items()):
            family = name.partition(".")[0]
            if n % self.extra_every[family] == 0:
                data = extra.collect(now)
                if data is not None:
                    self._deliver(name, name.partition(".")[2], data, cache)
        for name, kline in list(self.klines.items()):
            closed = kline.closed(now)
            if closed is not None:
                self._deliver(name, kline.market.symbol, closed, cache)
            if n % self.kline_every == 0:
                self._deliver(name, kline.market.symbol, kline.update(now), cache)

    def _deliver(
        self, name: str, symbol: str, data: bytes, cache: dict[PublicSession, EffectiveFaults]
    ) -> None:
        for session in list(self.index.get(name, ())):
            if self._deliverable(session, symbol, cache):
                session.push(name, data)

    def _deliver_book(
        self,
        name: str,
        book: BookPublisher,
        data: bytes | None,
        now: int,
        cache: dict[PublicSession, EffectiveFaults],
    ) -> None:
        symbol = book.market.symbol
        snapshot: bytes | None = None
        for session in list(self.index.get(name, ())):
            if not self._deliverable(session, symbol, cache):
                session.stale.add(name)
                continue
            if name in session.stale:
                session.stale.discard(name)
                if snapshot is None:
                    snapshot = book.snapshot(now)
                session.push(name, snapshot, u=book.u, seq=book.seq, snapshot=True)
            elif data is not None:
                session.push(name, data, u=book.u, seq=book.seq, snapshot=book.snapshot_only)

    def _ticker_message(
        self, name: str, state: TickerState, changes: dict[str, str] | None
    ) -> bytes:
        now = self.now_ms
        if self.category == "spot":
            return shapes.encode(shapes.ticker_spot(name, state.truth, state.cs, now))
        if self.category == "option":
            return shapes.encode(shapes.option_ticker(name, state.truth, state.cs, now))
        if changes is None:
            return shapes.encode(shapes.ticker_snapshot(name, state.truth, state.cs, now))
        data = {"symbol": state.market.symbol, **changes}
        return shapes.encode(shapes.ticker_delta(name, data, state.cs, now))

    def _push_tickers(self, now: int) -> None:
        cache: dict[PublicSession, EffectiveFaults] = {}
        snapshots_only = self.category in ("spot", "option")
        for symbol, state in self.tickers.items():
            changes = state.update()
            name = f"tickers.{symbol}"
            subs = self.index.get(name)
            if not subs:
                continue
            snapshot: bytes | None = None
            delta: bytes | None = None
            for session in list(subs):
                if not self._deliverable(session, symbol, cache):
                    session.stale.add(name)
                    continue
                if snapshots_only or name in session.stale:
                    session.stale.discard(name)
                    if snapshot is None:
                        snapshot = self._ticker_message(name, state, None)
                    session.push(name, snapshot, snapshot=True)
                else:
                    if delta is None:
                        delta = self._ticker_message(name, state, changes)
                    session.push(name, delta)
