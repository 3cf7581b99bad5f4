"""Tickers derived from the order-book market, so they agree with the book and the trades.

:class:`TickerState` holds the ground-truth ticker of one symbol (all values strings, Bybit's field
order) as of the last ticker push. :meth:`TickerState.update` recomputes it from the
:class:`~hean.emulator.market.SymbolMarket` — ``lastPrice``/``tickDirection``/24 h statistics from
the trades, ``bid1*``/``ask1*`` from the book — moves the fields that come from outside the book
(mark and index price, open interest, funding) and returns what changed: exactly the content of a
linear/inverse ``delta``. The real feed sends nothing when nothing changed; to keep one message per
push interval, an update that would be empty nudges the index price by one tick (index prices come
from other venues, so this never contradicts the book).
"""

from __future__ import annotations

from datetime import UTC, datetime

from hean.emulator.instruments import POW10, fmt_strip, fmt_units, future_delivery_ms
from hean.emulator.market import SymbolMarket

__all__ = ["FUTURES_FIELDS", "LINEAR_FIELDS", "OPTION_FIELDS", "SPOT_FIELDS", "TickerState"]

#: Ticker fields of a linear/inverse perpetual, in Bybit's order (``tickers_linear_snapshot.json``).
LINEAR_FIELDS: tuple[str, ...] = (
    "symbol", "tickDirection", "price24hPcnt", "lastPrice", "prevPrice24h", "highPrice24h",
    "lowPrice24h", "prevPrice1h", "markPrice", "indexPrice", "openInterest", "openInterestValue",
    "turnover24h", "volume24h", "fundingIntervalHour", "fundingCap", "nextFundingTime",
    "fundingRate", "bid1Price", "bid1Size", "ask1Price", "ask1Size", "preOpenPrice", "preQty",
    "curPreListingPhase",
)  # fmt: skip
#: Ticker fields of a linear/inverse dated future, in Bybit's order
#: (``tickers_linear_futures_snapshot.json``): no funding (``nextFundingTime``/``fundingRate`` are
#: ``""``), delivery and basis fields instead.
FUTURES_FIELDS: tuple[str, ...] = (
    "symbol", "tickDirection", "price24hPcnt", "lastPrice", "prevPrice24h", "highPrice24h",
    "lowPrice24h", "prevPrice1h", "markPrice", "indexPrice", "openInterest", "openInterestValue",
    "turnover24h", "volume24h", "deliveryTime", "basisRate", "deliveryFeeRate",
    "predictedDeliveryPrice", "basis", "basisRateYear", "nextFundingTime", "fundingRate",
    "bid1Price", "bid1Size", "ask1Price", "ask1Size",
)  # fmt: skip
#: Spot ticker fields, in Bybit's order (``tickers_spot.json``).
SPOT_FIELDS: tuple[str, ...] = (
    "symbol", "lastPrice", "highPrice24h", "lowPrice24h", "prevPrice24h", "volume24h",
    "turnover24h", "price24hPcnt", "usdIndexPrice",
)  # fmt: skip
#: Option ticker fields, in Bybit's order (``tickers_option.json``).
OPTION_FIELDS: tuple[str, ...] = (
    "symbol", "bidPrice", "bidSize", "bidIv", "askPrice", "askSize", "askIv", "lastPrice",
    "highPrice24h", "lowPrice24h", "markPrice", "indexPrice", "markPriceIv", "underlyingPrice",
    "openInterest", "turnover24h", "volume24h", "totalVolume", "totalTurnover", "delta", "gamma",
    "vega", "theta", "predictedDeliveryPrice", "change24h",
)  # fmt: skip

_FUNDING_INTERVAL_MS = 8 * 3600 * 1000
_TURNOVER_DP = 4


class TickerState:
    """Ground-truth ticker of one symbol, recomputed at every ticker push."""

    __slots__ = (
        "_cap", "_delivery", "_index", "_mark", "_next_funding", "_oi", "_prev1h", "_rate", "cs",
        "kind", "market", "truth",
    )  # fmt: skip

    def __init__(self, market: SymbolMarket) -> None:
        self.market = market
        self.kind = market.category if market.category in ("spot", "option") else "linear"
        #: delivery time (ms) of a dated future, None for perpetuals
        self._delivery = future_delivery_ms(market.symbol) if self.kind == "linear" else None
        rng = market.rng
        spec = market.spec
        self._mark = market.last
        self._index = market.last + rng.randint(-3, 3)
        self._prev1h = market.last + rng.randint(-20, 20)
        self._oi = market.base_lots * rng.randrange(5_000, 50_000)
        self._rate = rng.choice((100, 100, 100, 50, 75, 125, -20))  # 1e-6 units
        self._cap = 5000 if spec.base in ("BTC", "ETH") else 20000
        now = market.now_ms
        self._next_funding = (now // _FUNDING_INTERVAL_MS + 1) * _FUNDING_INTERVAL_MS
        self.cs = market.book.seq
        self.truth: dict[str, str] = {}
        self.truth = self._compute()

    @property
    def reference_ticks(self) -> int:
        """The price limits' reference: the mark price (spot and option: the last price)."""
        return max(1, self._mark if self.kind == "linear" else self.market.last)

    # -- helpers --------------------------------------------------------------------------------

    def _turnover(self, value: int) -> str:
        dp = self.market.spec.notional_dp
        if dp >= _TURNOVER_DP:
            return fmt_units(value // POW10[dp - _TURNOVER_DP], _TURNOVER_DP)
        return fmt_units(value * POW10[_TURNOVER_DP - dp], _TURNOVER_DP)

    def _pcnt(self, dp: int) -> str:
        m = self.market
        return fmt_strip(round((m.last - m.prev24h) * POW10[dp] / m.prev24h), dp)

    def _move_external(self) -> None:
        """Mark/index/open interest/funding: values that do not come from this book."""
        m = self.market
        r = m.rng.random
        fair = round(m.fair)
        if r() < 0.75:
            self._index = max(1, fair + int(r() * 7) - 3)
        if r() < 0.75:
            self._mark = max(1, fair + int(r() * 3) - 1)
        if r() < 0.25:
            base = m.base_lots
            self._oi = max(base, self._oi + base * (int(r() * 41) - 20))
        if r() < 0.03:
            self._rate = max(-self._cap, min(self._cap, self._rate + (-1 if r() < 0.5 else 1)))
        if r() < 0.003:
            self._prev1h = m.last
        now = m.now_ms
        if now >= self._next_funding:
            self._next_funding = (now // _FUNDING_INTERVAL_MS + 1) * _FUNDING_INTERVAL_MS

    # -- computing ------------------------------------------------------------------------------

    def _compute(self) -> dict[str, str]:
        if self.kind == "spot":
            return self._spot()
        if self.kind == "option":
            return self._option()
        if self._delivery is not None:
            return self._futures(self._linear())
        return self._linear()

    def _linear(self) -> dict[str, str]:
        m = self.market
        spec = m.spec
        price = spec.price_str
        book = m.book
        old = self.truth
        bids, asks = book.depth(1)
        oi_value = spec.notional(self._mark, self._oi)
        oi_value_2dp = oi_value // POW10[spec.notional_dp - 2] if spec.notional_dp >= 2 else 0
        return {
            "symbol": m.symbol,
            "tickDirection": m.last_direction,
            "price24hPcnt": self._pcnt(6),
            "lastPrice": price(m.last),
            "prevPrice24h": price(m.prev24h),
            "highPrice24h": price(m.high24h),
            "lowPrice24h": price(m.low24h),
            "prevPrice1h": price(max(1, self._prev1h)),
            "markPrice": price(self._mark),
            "indexPrice": price(self._index),
            "openInterest": spec.qty_str(self._oi),
            "openInterestValue": fmt_units(oi_value_2dp, 2),
            "turnover24h": self._turnover(m.turnover24h),
            "volume24h": spec.qty_str(m.volume24h),
            "fundingIntervalHour": "8",
            "fundingCap": fmt_strip(self._cap, 6),
            "nextFundingTime": str(self._next_funding),
            "fundingRate": fmt_strip(self._rate, 6),
            "bid1Price": price(bids[0][0]) if bids else old.get("bid1Price", ""),
            "bid1Size": spec.qty_str(bids[0][1]) if bids else old.get("bid1Size", ""),
            "ask1Price": price(asks[0][0]) if asks else old.get("ask1Price", ""),
            "ask1Size": spec.qty_str(asks[0][1]) if asks else old.get("ask1Size", ""),
            "preOpenPrice": "",
            "preQty": "",
            "curPreListingPhase": "",
        }

    def _futures(self, perp: dict[str, str]) -> dict[str, str]:
        """A dated future's ticker: the perpetual's common fields plus delivery and basis.

        ``basis`` = last price - index price; ``basisRate`` = basis / index price;
        ``basisRateYear`` annualises it over the time left to delivery (at least one day).
        ``predictedDeliveryPrice`` stays zero (Bybit only fills it near delivery).
        """
        m = self.market
        spec = m.spec
        delivery = self._delivery
        assert delivery is not None
        index = max(1, self._index)
        basis = m.last - index
        rate = basis / index
        days = max(1.0, (delivery - m.now_ms) / 86_400_000)
        extra = {
            "deliveryTime": datetime.fromtimestamp(delivery / 1000, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "basisRate": f"{rate:.8f}",
            "deliveryFeeRate": "0",
            "predictedDeliveryPrice": spec.price_str(0),
            "basis": fmt_units(basis * spec.tick, spec.price_dp),
            "basisRateYear": f"{rate * 365 / days:.8f}",
            "nextFundingTime": "",
            "fundingRate": "",
        }
        return {k: extra[k] if k in extra else perp[k] for k in FUTURES_FIELDS}

    def _spot(self) -> dict[str, str]:
        m = self.market
        spec = m.spec
        extra = 5
        usd_index = self._index * spec.tick * POW10[extra] + int(m.rng.random() * POW10[extra])
        return {
            "symbol": m.symbol,
            "lastPrice": spec.price_str(m.last),
            "highPrice24h": spec.price_str(m.high24h),
            "lowPrice24h": spec.price_str(m.low24h),
            "prevPrice24h": spec.price_str(m.prev24h),
            "volume24h": spec.qty_str(m.volume24h),
            "turnover24h": self._turnover(m.turnover24h),
            "price24hPcnt": self._pcnt(4),
            "usdIndexPrice": fmt_strip(usd_index, spec.price_dp + extra),
        }

    def _option(self) -> dict[str, str]:
        m = self.market
        spec = m.spec
        opt = m.option
        assert opt is not None
        now = m.now_ms
        bids, asks = m.book.depth(1)
        unit = spec.tick / POW10[spec.price_dp]

        def iv(level: list[tuple[int, int]]) -> str:
            return f"{opt.iv(level[0][0] * unit, now):.4f}" if level else "0"

        delta, gamma, vega, theta = opt.greeks(now)
        volume = spec.qty_str(m.volume24h)
        turnover = self._turnover(m.turnover24h)
        change = (m.last - m.prev24h) / m.prev24h
        return {
            "symbol": m.symbol,
            "bidPrice": spec.price_str(bids[0][0]) if bids else "0",
            "bidSize": spec.qty_str(bids[0][1]) if bids else "0",
            "bidIv": iv(bids),
            "askPrice": spec.price_str(asks[0][0]) if asks else "0",
            "askSize": spec.qty_str(asks[0][1]) if asks else "0",
            "askIv": iv(asks),
            "lastPrice": spec.price_str(m.last),
            "highPrice24h": spec.price_str(m.high24h),
            "lowPrice24h": spec.price_str(m.low24h),
            "markPrice": f"{opt.fair(now):.8f}",
            "indexPrice": f"{opt.under:.2f}",
            "markPriceIv": f"{opt.vol:.4f}",
            "underlyingPrice": f"{opt.under * 1.0002:.2f}",
            "openInterest": spec.qty_str(self._oi),
            "turnover24h": turnover,
            "volume24h": volume,
            "totalVolume": str(int(float(volume)) + 1),
            "totalTurnover": str(int(float(turnover)) + 1),
            "delta": f"{delta:.8f}",
            "gamma": f"{gamma:.8f}",
            "vega": f"{vega:.8f}",
            "theta": f"{theta:.8f}",
            "predictedDeliveryPrice": "0",
            "change24h": f"{change:.8f}",
        }

    def update(self) -> dict[str, str]:
        """Recompute at a push; returns the changed fields (without ``symbol``)."""
        self._move_external()
        new = self._compute()
        old = self.truth
        changes = {k: v for k, v in new.items() if old.get(k) != v}
        if not changes and self.kind == "linear":
            self._index += 1 if self.market.rng.random() < 0.5 else -1
            self._index = max(1, self._index)
            new["indexPrice"] = changes["indexPrice"] = self.market.spec.price_str(self._index)
        self.truth = new
        self.cs = max(self.cs + 1, self.market.book.seq)
        return changes

    def snapshot(self) -> dict[str, str]:
        """A copy of the full ground-truth ticker."""
        return dict(self.truth)
