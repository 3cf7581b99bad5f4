"""A lightweight seeded random-walk ticker model, used by the ticker firehose.

The live emulator derives its tickers from the order-book market (:mod:`hean.emulator.market`);
this model only fakes plausible ticker deltas, cheaply enough to pre-encode millions of frames.
Sans-I/O: it is *given* the time, never reads a clock.

Every (category, symbol) has a :class:`TickerModel` holding the ground-truth ticker as Bybit would
show it (all values strings, prices on the instrument's tick grid). :meth:`TickerModel.step`
moves the market one push interval forward and returns only the fields that changed — exactly
what a linear/inverse ``delta`` carries. Most steps have no trade, so most deltas carry no
``lastPrice`` (mark/index/top-of-book fields move more often), as on the real feed.

Prices are kept as integers in units of ``10**-price_dp`` so formatting is exact and fast.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from hean.emulator.instruments import POW10 as _POW10
from hean.emulator.instruments import InstrumentSpec, fmt_strip, fmt_units, instrument_spec

__all__ = ["LINEAR_FIELDS", "SPOT_FIELDS", "TickerModel", "WalkMarket"]

#: Ticker fields of a linear/inverse perpetual, in Bybit's order (``tickers_linear_snapshot.json``).
LINEAR_FIELDS: tuple[str, ...] = (
    "symbol", "tickDirection", "price24hPcnt", "lastPrice", "prevPrice24h", "highPrice24h",
    "lowPrice24h", "prevPrice1h", "markPrice", "indexPrice", "openInterest", "openInterestValue",
    "turnover24h", "volume24h", "fundingIntervalHour", "fundingCap", "nextFundingTime",
    "fundingRate", "bid1Price", "bid1Size", "ask1Price", "ask1Size", "preOpenPrice", "preQty",
    "curPreListingPhase",
)  # fmt: skip
#: Spot ticker fields, in Bybit's order (``tickers_spot.json``).
SPOT_FIELDS: tuple[str, ...] = (
    "symbol", "lastPrice", "highPrice24h", "lowPrice24h", "prevPrice24h", "volume24h",
    "turnover24h", "price24hPcnt", "usdIndexPrice",
)  # fmt: skip

_FUNDING_INTERVAL_MS = 8 * 3600 * 1000
_TURNOVER_DP = 4


class TickerModel:
    """One symbol's market: a seeded random walk plus the ground-truth ticker dict.

    Numeric state is kept as integers; a field is re-formatted (and reported as changed) only
    when its integer value changes, which keeps :meth:`step` cheap enough for the firehose.
    """

    __slots__ = (
        "_ask_size", "_base_qty", "_bid_size", "_cap", "_high", "_index", "_low", "_mark",
        "_next_funding", "_oi", "_rate", "_rng", "_start", "_turnover", "_volume", "ask", "bid",
        "cs", "last", "mid", "prev24h", "spec", "spot", "truth",
    )  # fmt: skip

    def __init__(self, spec: InstrumentSpec, rng: random.Random, now_ms: int) -> None:
        self.spec = spec
        self.spot = spec.category == "spot"
        self._rng = rng
        t = spec.tick
        unit = _POW10[spec.price_dp]
        start = max(t * 20, round(spec.start_price * unit * rng.uniform(0.97, 1.03) / t) * t)
        self._start = start
        self.mid = start
        self.bid = start
        self.ask = start + t
        self.last = start
        self._mark = start
        self._index = start + rng.randint(-3 * t, 3 * t)
        self.prev24h = max(t, round(start * rng.uniform(0.95, 1.05) / t) * t)
        self._high = max(self.last, self.prev24h) + t * rng.randrange(5, 200)
        self._low = max(t, min(self.last, self.prev24h) - t * rng.randrange(5, 200))
        self.cs = rng.randrange(10**9, 10**11)
        # base order size: about 2000 USD worth, in qty units
        qty_unit = _POW10[spec.qty_dp]
        self._base_qty = max(1, round(2000.0 / max(spec.start_price, 1e-9) * qty_unit))
        if spec.category == "inverse":
            self._base_qty = 2000 * qty_unit
        self._volume = self._base_qty * rng.randrange(20_000, 60_000)
        self._turnover = self._notional(self._volume, start)
        self._oi = self._base_qty * rng.randrange(5_000, 50_000)
        self._rate = rng.choice((100, 100, 100, 50, 75, 125, -20))  # 1e-6 units
        self._cap = 5000 if spec.base in ("BTC", "ETH") else 20000
        self._next_funding = (now_ms // _FUNDING_INTERVAL_MS + 1) * _FUNDING_INTERVAL_MS
        self._bid_size = self._random_size()
        self._ask_size = self._random_size()
        self.truth: dict[str, str] = {}
        self._init_truth()

    # -- formatting helpers -------------------------------------------------------------------

    def _price(self, units: int) -> str:
        return fmt_units(units, self.spec.price_dp)

    def _qty(self, units: int) -> str:
        return fmt_units(units, self.spec.qty_dp)

    def _pcnt(self) -> str:
        prev = self.prev24h
        dp = 4 if self.spot else 6
        return fmt_strip(round((self.last - prev) * _POW10[dp] / prev), dp)

    def _notional(self, qty: int, price: int) -> int:
        """Value of ``qty`` at ``price`` in units of ``10**-_TURNOVER_DP`` (quote coin; base coin
        for inverse contracts, whose quantities are USD)."""
        spec = self.spec
        if spec.category == "inverse":
            return qty * _POW10[_TURNOVER_DP + spec.price_dp] // (price * _POW10[spec.qty_dp])
        return qty * price * _POW10[_TURNOVER_DP] // _POW10[spec.qty_dp + spec.price_dp]

    def _oi_value(self) -> str:
        return fmt_units(self._notional(self._oi, self._mark) // 100, 2)

    def _usd_index(self) -> str:
        extra = 5
        units = self._index * _POW10[extra] + int(self._rng.random() * _POW10[extra])
        return fmt_strip(units, self.spec.price_dp + extra)

    def _random_size(self) -> int:
        return max(1, int(self._base_qty * self._rng.expovariate(0.5)))

    def _init_truth(self) -> None:
        spec = self.spec
        rng = self._rng
        t = spec.tick
        price = self._price
        if self.spot:
            self.truth = {
                "symbol": spec.symbol,
                "lastPrice": price(self.last),
                "highPrice24h": price(self._high),
                "lowPrice24h": price(self._low),
                "prevPrice24h": price(self.prev24h),
                "volume24h": self._qty(self._volume),
                "turnover24h": fmt_units(self._turnover, _TURNOVER_DP),
                "price24hPcnt": self._pcnt(),
                "usdIndexPrice": self._usd_index(),
            }
            return
        self.truth = {
            "symbol": spec.symbol,
            "tickDirection": rng.choice(("PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick")),
            "price24hPcnt": self._pcnt(),
            "lastPrice": price(self.last),
            "prevPrice24h": price(self.prev24h),
            "highPrice24h": price(self._high),
            "lowPrice24h": price(self._low),
            "prevPrice1h": price(self.last + t * rng.randint(-20, 20)),
            "markPrice": price(self._mark),
            "indexPrice": price(self._index),
            "openInterest": self._qty(self._oi),
            "openInterestValue": self._oi_value(),
            "turnover24h": fmt_units(self._turnover, _TURNOVER_DP),
            "volume24h": self._qty(self._volume),
            "fundingIntervalHour": "8",
            "fundingCap": fmt_strip(self._cap, 6),
            "nextFundingTime": str(self._next_funding),
            "fundingRate": fmt_strip(self._rate, 6),
            "bid1Price": price(self.bid),
            "bid1Size": self._qty(self._bid_size),
            "ask1Price": price(self.ask),
            "ask1Size": self._qty(self._ask_size),
            "preOpenPrice": "",
            "preQty": "",
            "curPreListingPhase": "",
        }

    # -- the walk -----------------------------------------------------------------------------

    def _walk(self, changes: dict[str, str]) -> None:
        r = self._rng.random
        t = self.spec.tick
        if r() < 0.55:
            # mean-reverting walk so long runs stay near the start price
            drift = (self.mid - self._start) / self._start
            p_up = min(0.7, max(0.3, 0.5 - 2.0 * drift))
            steps = t if r() < 0.8 else 2 * t
            self.mid = max(t * 10, self.mid + (steps if r() < p_up else -steps))
        ask = self.mid + (t if r() < 0.92 else 2 * t)
        if self.spot:
            self.bid, self.ask = self.mid, ask
            return
        truth = self.truth
        if self.mid != self.bid:
            self.bid = self.mid
            truth["bid1Price"] = changes["bid1Price"] = self._price(self.mid)
        if ask != self.ask:
            self.ask = ask
            truth["ask1Price"] = changes["ask1Price"] = self._price(ask)

    def _trade(self, changes: dict[str, str]) -> None:
        r = self._rng.random
        truth = self.truth
        price = self.ask if r() < 0.5 else self.bid
        qty = self._random_size()
        self._volume += qty
        self._turnover += self._notional(qty, price)
        truth["volume24h"] = changes["volume24h"] = self._qty(self._volume)
        turnover = fmt_units(self._turnover, _TURNOVER_DP)
        if truth["turnover24h"] != turnover:
            truth["turnover24h"] = changes["turnover24h"] = turnover
        old = self.last
        if price == old:
            if not self.spot and truth["tickDirection"] in ("PlusTick", "MinusTick"):
                zero = "ZeroPlusTick" if truth["tickDirection"] == "PlusTick" else "ZeroMinusTick"
                truth["tickDirection"] = changes["tickDirection"] = zero
            return
        self.last = price
        text = self._price(price)
        truth["lastPrice"] = changes["lastPrice"] = text
        if not self.spot:
            direction = "PlusTick" if price > old else "MinusTick"
            if truth["tickDirection"] != direction:
                truth["tickDirection"] = changes["tickDirection"] = direction
        if price > self._high:
            self._high = price
            truth["highPrice24h"] = changes["highPrice24h"] = text
        if price < self._low:
            self._low = price
            truth["lowPrice24h"] = changes["lowPrice24h"] = text
        pcnt = self._pcnt()
        if truth["price24hPcnt"] != pcnt:
            truth["price24hPcnt"] = changes["price24hPcnt"] = pcnt

    def step(self, now_ms: int) -> dict[str, str]:
        """Advance one push interval; return the changed fields (without ``symbol``)."""
        r = self._rng.random
        t = self.spec.tick
        truth = self.truth
        changes: dict[str, str] = {}
        self.cs += 1 + int(r() * 5000)
        self._walk(changes)
        if r() < 0.75:
            index = self.mid + int(r() * (6 * t + 1)) - 3 * t
            if index != self._index:
                self._index = index
                if not self.spot:
                    truth["indexPrice"] = changes["indexPrice"] = self._price(index)
        if self.spot:
            if r() < 0.45:
                self._trade(changes)
            if r() < 0.7:
                truth["usdIndexPrice"] = changes["usdIndexPrice"] = self._usd_index()
            return changes
        if r() < 0.36:
            self._trade(changes)
        revalue = False
        if r() < 0.75:
            mark = self.mid + t * (int(r() * 3) - 1)
            if mark != self._mark:
                self._mark = mark
                truth["markPrice"] = changes["markPrice"] = self._price(mark)
                revalue = True
        if r() < 0.55:
            size = self._random_size()
            if size != self._bid_size:
                self._bid_size = size
                truth["bid1Size"] = changes["bid1Size"] = self._qty(size)
        if r() < 0.55:
            size = self._random_size()
            if size != self._ask_size:
                self._ask_size = size
                truth["ask1Size"] = changes["ask1Size"] = self._qty(size)
        if r() < 0.25:
            oi = max(self._base_qty, self._oi + self._base_qty * (int(r() * 41) - 20))
            if oi != self._oi:
                self._oi = oi
                truth["openInterest"] = changes["openInterest"] = self._qty(oi)
                revalue = True
        if revalue:
            value = self._oi_value()
            if truth["openInterestValue"] != value:
                truth["openInterestValue"] = changes["openInterestValue"] = value
        if r() < 0.03:
            rate = max(-self._cap, min(self._cap, self._rate + (-1 if r() < 0.5 else 1)))
            if rate != self._rate:
                self._rate = rate
                truth["fundingRate"] = changes["fundingRate"] = fmt_strip(rate, 6)
        if now_ms >= self._next_funding:
            self._next_funding = (now_ms // _FUNDING_INTERVAL_MS + 1) * _FUNDING_INTERVAL_MS
            truth["nextFundingTime"] = changes["nextFundingTime"] = str(self._next_funding)
        if r() < 0.003 and truth["prevPrice1h"] != truth["lastPrice"]:
            truth["prevPrice1h"] = changes["prevPrice1h"] = truth["lastPrice"]
        if not changes:  # the real feed sends nothing when nothing changed; keep one field moving
            self._bid_size += 1
            truth["bid1Size"] = changes["bid1Size"] = self._qty(self._bid_size)
        return changes

    def snapshot(self) -> dict[str, str]:
        """A copy of the full ground-truth ticker."""
        return dict(self.truth)


class WalkMarket:
    """All ticker models, per category and symbol. Deterministic for a given ``rng`` state.

    Each symbol gets its own child generator seeded from ``rng`` in a fixed order, so the data of
    one symbol does not depend on how often another is stepped.
    """

    def __init__(
        self, symbols: Mapping[str, Iterable[str]], rng: random.Random, now_ms: int
    ) -> None:
        self._models: dict[str, dict[str, TickerModel]] = {}
        for category in sorted(symbols):
            per: dict[str, TickerModel] = {}
            for symbol in symbols[category]:
                child = random.Random(rng.getrandbits(64))
                spec = instrument_spec(category, symbol, child)
                per[symbol] = TickerModel(spec, child, now_ms)
            self._models[category] = per

    def categories(self) -> list[str]:
        return list(self._models)

    def symbols(self, category: str) -> list[str]:
        return list(self._models.get(category, {}))

    def has(self, category: str, symbol: str) -> bool:
        return symbol in self._models.get(category, {})

    def model(self, category: str, symbol: str) -> TickerModel:
        try:
            return self._models[category][symbol]
        except KeyError:
            raise KeyError(f"no {category} symbol {symbol!r}") from None

    def models(self, category: str) -> list[TickerModel]:
        return list(self._models.get(category, {}).values())
