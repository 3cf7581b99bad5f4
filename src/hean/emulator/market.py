"""The simulated venue: one limit order book per symbol, driven by a seeded random process.

Each :class:`SymbolMarket` owns an :class:`~hean.emulator.matching.OrderBook` and simulated
participants (owners ``sim:lp``, ``sim:taker``, ``sim:arb``, ``sim:liq``):

* a *fair price* drifts (Gaussian random walk, weakly mean-reverting to the start price);
* liquidity providers add PostOnly limit orders around it (most near the touch, a few far out)
  and cancel the stalest of their orders, keeping about ``orders_per_side`` resting per side;
* takers send market and marketable limit orders, more often on the side the fair price leans
  to; an arbitrageur lifts quotes that the fair price has moved through;
* on linear/inverse, liquidations are market orders too (and are recorded for
  ``allLiquidation``).

Everything public is derived from the book and its fills: trades, candles, ticker fields.
Orders from outside (the private/trade side) go through :meth:`SymbolMarket.submit`,
:meth:`SymbolMarket.cancel` and :meth:`SymbolMarket.amend` — never the raw book — so their fills
move the public book and trade feed exactly like simulated ones; :attr:`SymbolMarket.fill_listeners`
report every fill, including those of resting orders hit by simulated takers.

Time is *given* (``advance(now_ms, dt)``); randomness comes from the injected ``random.Random``
(one child generator per symbol, so one symbol's data does not depend on another's activity).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from hean.emulator.candles import CandleSet
from hean.emulator.instruments import POW10, InstrumentSpec, instrument_spec
from hean.emulator.matching import (
    BookError,
    Fill,
    Order,
    OrderBook,
    OrderType,
    Side,
    TimeInForce,
)
from hean.emulator.options import OptionModel
from hean.emulator.params import OPTION_PARAMS, MarketParams

__all__ = ["Market", "MarketParams", "SymbolMarket"]

_HISTORY = 10_000
_SIM = "sim:"
_DIRECTIONS = ("PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick")


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold = math.exp(-lam)
    n, p = 0, rng.random()
    while p > threshold:
        n += 1
        p *= rng.random()
    return n


class _Pool:
    """Resting simulated order ids of one side, with O(1) random pick and removal."""

    __slots__ = ("ids", "index")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, order_id: str) -> None:
        self.index[order_id] = len(self.ids)
        self.ids.append(order_id)

    def discard(self, order_id: str) -> None:
        i = self.index.pop(order_id, None)
        if i is None:
            return
        last = self.ids.pop()
        if last != order_id:
            self.ids[i] = last
            self.index[last] = i

    def __len__(self) -> int:
        return len(self.ids)


class SymbolMarket:
    """One symbol: its book, simulated participants, trades, candles and 24 h statistics."""

    def __init__(
        self, spec: InstrumentSpec, rng: random.Random, now_ms: int, params: MarketParams
    ) -> None:
        self.spec = spec
        self.category = spec.category
        self.symbol = spec.symbol
        self.rng = rng
        self.params = params
        self.now_ms = now_ms
        self.book = OrderBook(clock=self._now, seq=rng.randrange(10**9, 10**11))
        self.option: OptionModel | None = None
        if spec.category == "option":
            under = spec.start_price * rng.uniform(0.97, 1.03)
            self.option = OptionModel(spec.symbol, under, rng, now_ms)
            start = max(2, round(self._option_fair()))
        else:
            start = max(20, spec.ticks_of(spec.start_price * rng.uniform(0.97, 1.03)))
        self.start_ticks = start
        self.fair = float(start)
        #: lots of a typical order (about 2,000 USD worth; options: a few contracts)
        self.base_lots = self._base_lots(spec)
        # -- trades and statistics (prices in ticks, volume in lots, turnover in notional units)
        self.trades: deque[dict[str, object]] = deque(maxlen=_HISTORY)
        self.trade_count = 0
        self.liquidations: deque[dict[str, object]] = deque(maxlen=_HISTORY)
        self.liquidation_count = 0
        self.last = start
        self.last_direction = rng.choice(_DIRECTIONS)
        self.prev24h = max(1, round(start * rng.uniform(0.95, 1.05)))
        self.high24h = max(self.last, self.prev24h) + rng.randrange(5, 200)
        self.low24h = max(1, min(self.last, self.prev24h) - rng.randrange(5, 200))
        self.volume24h = self.base_lots * rng.randrange(20_000, 60_000)
        self.turnover24h = spec.notional(start, self.volume24h)
        self.candles = CandleSet(start, now_ms, params.kline_time_scale)
        self._pools = {Side.BUY: _Pool(), Side.SELL: _Pool()}
        self._ids = 0
        self._spot_trade_id = rng.randrange(2_200_000_000_000_000_000, 2_300_000_000_000_000_000)
        #: called with every fill (simulated or not) after it became a public trade; the
        #: account layer uses this to learn that a resting order of its own was hit
        self.fill_listeners: list[Callable[[Fill, dict[str, object]], None]] = []
        for i in range(2 * params.orders_per_side):
            self._add_liquidity(Side.BUY if i % 2 == 0 else Side.SELL)

    def _option_fair(self) -> float:
        """The option's Black-Scholes premium in ticks."""
        assert self.option is not None
        spec = self.spec
        return self.option.fair(self.now_ms) * POW10[spec.price_dp] / spec.tick

    @staticmethod
    def _base_lots(spec: InstrumentSpec) -> int:
        unit = POW10[spec.qty_dp] / spec.lot
        if spec.category == "inverse":
            return max(1, round(2000 * unit))
        if spec.category == "option":
            return max(1, round(0.5 * unit))
        return max(1, round(2000.0 / max(spec.start_price, 1e-9) * unit))

    def _now(self) -> int:
        return self.now_ms

    def _next_id(self, owner: str) -> str:
        self._ids += 1
        return f"{owner}-{self._ids}"

    # -- the random process -------------------------------------------------------------------

    def advance(self, now_ms: int, dt: float) -> None:
        """Simulate ``dt`` seconds ending at ``now_ms``."""
        self.now_ms = now_ms
        self.candles.roll(now_ms)
        rng = self.rng
        p = self.params
        book = self.book
        book.seq += rng.randrange(1, 40)  # the cross sequence also counts other symbols' events
        if self.option is not None:
            self.option.step(dt)
            self.fair = max(1.0, self._option_fair())
        else:
            drift = (self.start_ticks - self.fair) * dt / 600.0
            noise = p.volatility * math.sqrt(dt) * rng.gauss(0, 1)
            self.fair = max(10.0, self.fair + drift + noise)
        act = p.activity * dt
        for _ in range(_poisson(rng, p.book_events_per_s * act)):
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            resting = len(self._pools[side])
            if rng.random() * (p.orders_per_side + resting) < p.orders_per_side:
                self._add_liquidity(side)
            else:
                self._cancel_stale(side)
        for _ in range(_poisson(rng, p.takers_per_s * act)):
            self._take()
        self._arbitrage(1.0 - math.exp(-15.0 * act))
        if self.category in ("linear", "inverse"):
            for _ in range(_poisson(rng, p.liquidations_per_s * act)):
                self._liquidate()

    def _add_liquidity(self, side: Side) -> None:
        rng = self.rng
        p = self.params
        r = rng.random()
        if r < p.far_share:
            k = rng.randrange(p.far_ticks)
        elif r < p.far_share + p.touch_share:
            k = int(rng.expovariate(0.5))  # at or next to the touch
        else:
            k = int(rng.expovariate(1.0 / p.near_mean_ticks))
        base = math.floor(self.fair)
        bid, ask = self.book.best_bid(), self.book.best_ask()
        if side is Side.BUY:
            price = base - p.spread_ticks - k
            if ask is not None:
                price = min(price, ask - 1)
        else:
            price = base + 1 + p.spread_ticks + k
            if bid is not None:
                price = max(price, bid + 1)
        if price < 1:
            return
        qty = max(1, int(self.base_lots * rng.lognormvariate(0.0, 0.9)))
        self._ids += 1
        order_id = f"sim:lp-{self._ids}"
        order = Order(order_id, "sim:lp", side, qty, price, tif=TimeInForce.POST_ONLY)
        self.book.add_passive(order)  # the price was clamped, so it never crosses
        self._pools[side].add(order_id)

    def _staleness(self, order_id: str) -> float:
        order = self.book.order(order_id)
        if order is None or order.price is None:
            return math.inf
        gap = self.fair - order.price if order.side is Side.BUY else order.price - self.fair
        return gap if gap >= 0 else 1e9 - gap  # quotes through the fair price go first

    def _cancel_stale(self, side: Side) -> None:
        ids = self._pools[side].ids
        if not ids:
            return
        rng = self.rng
        a = ids[int(rng.random() * len(ids))]
        if rng.random() < self.params.touch_share:
            self.cancel(a)  # quotes near the touch come and go too
            return
        b = ids[int(rng.random() * len(ids))]
        self.cancel(a if self._staleness(a) >= self._staleness(b) else b)

    def _take(self) -> None:
        rng = self.rng
        book = self.book
        bid, ask = book.best_bid(), book.best_ask()
        mid = (bid + ask) / 2 if bid is not None and ask is not None else self.fair
        p_buy = 0.5 + 0.35 * math.tanh((self.fair - mid) / 2.0)
        side = Side.BUY if rng.random() < p_buy else Side.SELL
        qty = max(1, int(self.base_lots * rng.lognormvariate(-0.5, 1.0)))
        owner = "sim:taker"
        if rng.random() < 0.75:
            order = Order(self._next_id(owner), owner, side, qty, None, OrderType.MARKET)
        else:
            touch = ask if side is Side.BUY else bid
            if touch is None:
                return
            through = rng.randrange(3)
            price = touch + through if side is Side.BUY else max(1, touch - through)
            tif = TimeInForce.GTC if rng.random() < 0.5 else TimeInForce.IOC
            order = Order(self._next_id(owner), owner, side, qty, price, tif=tif)
        self.submit(order)

    def _arbitrage(self, chance: float) -> None:
        rng = self.rng
        book = self.book
        ask = book.best_ask()
        if ask is not None and ask < self.fair - 1.0 and rng.random() < chance:
            qty = book.level_qty(Side.SELL, ask)
            self.submit(
                Order(self._next_id("sim:arb"), "sim:arb", Side.BUY, qty, ask, tif=TimeInForce.IOC)
            )
        bid = book.best_bid()
        if bid is not None and bid > self.fair + 1.0 and rng.random() < chance:
            qty = book.level_qty(Side.BUY, bid)
            self.submit(
                Order(self._next_id("sim:arb"), "sim:arb", Side.SELL, qty, bid, tif=TimeInForce.IOC)
            )

    def _liquidate(self) -> None:
        rng = self.rng
        position = Side.BUY if rng.random() < 0.5 else Side.SELL
        qty = max(1, int(self.base_lots * rng.lognormvariate(0.3, 0.8)))
        order = Order(
            self._next_id("sim:liq"), "sim:liq", position.opposite, qty, None, OrderType.MARKET
        )
        fills = self.submit(order)
        if not fills:
            return
        worst = fills[-1].price
        gap = rng.randint(1, 20)
        bankruptcy = max(1, worst - gap) if position is Side.BUY else worst + gap
        self.liquidation_count += 1
        self.liquidations.append(
            {
                "T": fills[-1].ts,
                "s": self.symbol,
                "S": position.value,
                "v": self.spec.qty_str(order.filled),
                "p": self.spec.price_str(bankruptcy),
            }
        )

    # -- order entry (simulated and, later, user orders) ---------------------------------------

    def submit(self, order: Order) -> list[Fill]:
        """Submit to the book; fills become public trades. Returns the fills."""
        fills = self.book.submit(order)
        self._after(order, fills)
        return fills

    def cancel(self, order_id: str) -> Order | None:
        order = self.book.cancel(order_id)
        if order is not None:
            self._pools[order.side].discard(order_id)
        return order

    def amend(
        self, order_id: str, *, qty: int | None = None, price: int | None = None
    ) -> list[Fill]:
        """Amend a resting order (see :meth:`OrderBook.amend`); fills become public trades."""
        order = self.book.order(order_id)
        if order is None:
            raise BookError(f"no resting order {order_id!r}")
        fills = self.book.amend(order_id, qty=qty, price=price)
        self._after(order, fills)
        return fills

    def hit(self, order_id: str, lots: int, owner: str = "sim:taker") -> list[Fill]:
        """A simulated taker trades ``lots`` against one resting order (see
        :meth:`OrderBook.hit`); the fill becomes a public trade and reaches the listeners."""
        taker = Order(self._next_id(owner), owner, Side.BUY, lots, None, OrderType.LIMIT)
        fills = self.book.hit(order_id, taker)
        self._after(taker, fills)
        return fills

    def _after(self, order: Order, fills: list[Fill]) -> None:
        if order.owner.startswith(_SIM):
            pool = self._pools[order.side]
            if order.order_id in self.book:
                if order.order_id not in pool.index:
                    pool.add(order.order_id)
            else:
                pool.discard(order.order_id)
        for fill in fills:
            if fill.maker_leaves == 0 and fill.maker.owner.startswith(_SIM):
                self._pools[fill.maker.side].discard(fill.maker.order_id)
            trade = self._record_trade(fill)
            for listener in self.fill_listeners:
                listener(fill, trade)

    def _trade_id(self) -> str:
        if self.category == "spot":
            self._spot_trade_id += 1
            return str(self._spot_trade_id)
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _record_trade(self, fill: Fill) -> dict[str, object]:
        spec = self.spec
        price = fill.price
        if price > self.last:
            direction = "PlusTick"
        elif price < self.last:
            direction = "MinusTick"
        else:
            direction = (
                "ZeroPlusTick"
                if self.last_direction in ("PlusTick", "ZeroPlusTick")
                else "ZeroMinusTick"
            )
        self.last = price
        self.last_direction = direction
        self.high24h = max(self.high24h, price)
        self.low24h = min(self.low24h, price)
        notional = spec.notional(price, fill.qty)
        self.volume24h += fill.qty
        self.turnover24h += notional
        self.candles.add_trade(fill.ts, price, fill.qty, notional)
        trade: dict[str, object] = {
            "T": fill.ts,
            "s": self.symbol,
            "S": fill.taker_side.value,
            "v": spec.qty_str(fill.qty),
            "p": spec.price_str(price),
        }
        if self.category != "spot":
            trade["L"] = direction
        trade["i"] = self._trade_id()
        trade["BT"] = False
        trade["RPI"] = False
        trade["seq"] = fill.seq
        self.trade_count += 1
        self.trades.append(trade)
        return trade

    # -- views --------------------------------------------------------------------------------

    def book_levels(
        self, depth: int | None = None
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The true book as ``(price, size)`` strings, best first."""
        spec = self.spec
        bids, asks = self.book.depth(depth)
        return (
            [(spec.price_str(p), spec.qty_str(q)) for p, q in bids],
            [(spec.price_str(p), spec.qty_str(q)) for p, q in asks],
        )

    def recent_trades(self, limit: int | None = None) -> list[dict[str, object]]:
        items = list(self.trades)
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return [dict(t) for t in items]


class Market:
    """Every :class:`SymbolMarket`, per category. Deterministic for a given ``rng`` state.

    Each symbol's generator is seeded from ``rng`` up front, in a fixed order. With
    ``lazy=True`` a symbol's market is only built when first asked for (:meth:`symbol` with the
    current time): a symbol nobody looks at costs nothing, and its data then depend only on the
    seed and on when it was first used.
    """

    def __init__(
        self,
        symbols: Mapping[str, Iterable[str]],
        rng: random.Random,
        now_ms: int,
        params: MarketParams | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        base = params if params is not None else MarketParams()
        self._params = {
            "option": replace(
                OPTION_PARAMS, activity=base.activity, kline_time_scale=base.kline_time_scale
            )
        }
        self._base = base
        self._now_ms = now_ms
        self._seeds: dict[str, dict[str, int]] = {}
        self._symbols: dict[str, dict[str, SymbolMarket]] = {}
        for category in sorted(symbols):
            self._seeds[category] = {name: rng.getrandbits(64) for name in symbols[category]}
            self._symbols[category] = {}
            if not lazy:
                for name in self._seeds[category]:
                    self.symbol(category, name)

    def categories(self) -> list[str]:
        return list(self._seeds)

    def symbols(self, category: str) -> list[str]:
        return list(self._seeds.get(category, {}))

    def has(self, category: str, symbol: str) -> bool:
        return symbol in self._seeds.get(category, {})

    def is_built(self, category: str, symbol: str) -> bool:
        return symbol in self._symbols.get(category, {})

    def spec(self, category: str, symbol: str) -> InstrumentSpec:
        """A symbol's instrument data without starting its market (KeyError if unknown)."""
        built = self._symbols.get(category, {}).get(symbol)
        if built is not None:
            return built.spec
        seed = self._seeds.get(category, {}).get(symbol)
        if seed is None:
            raise KeyError(f"no {category} symbol {symbol!r}")
        return instrument_spec(category, symbol, random.Random(seed))

    def symbol(self, category: str, symbol: str, now_ms: int | None = None) -> SymbolMarket:
        """The market of one symbol, built (at ``now_ms``) if this is its first use."""
        built = self._symbols.get(category)
        if built is not None:
            market = built.get(symbol)
            if market is not None:
                return market
        seed = self._seeds.get(category, {}).get(symbol)
        if built is None or seed is None:
            raise KeyError(f"no {category} symbol {symbol!r}")
        child = random.Random(seed)
        spec = instrument_spec(category, symbol, child)
        params = self._params.get(category, self._base)
        market = built[symbol] = SymbolMarket(
            spec, child, self._now_ms if now_ms is None else now_ms, params
        )
        return market

    def markets(self, category: str) -> list[SymbolMarket]:
        """Every symbol's market of a category (building any not built yet)."""
        return [self.symbol(category, name) for name in self.symbols(category)]

    def built(self, category: str) -> list[SymbolMarket]:
        """The markets built so far, in configuration order."""
        done = self._symbols.get(category, {})
        return [done[name] for name in self.symbols(category) if name in done]
