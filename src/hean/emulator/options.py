"""Black-Scholes pricing for the simulated option books and option tickers.

An option symbol (``BTC-27MAR26-60000-C`` or ``…-C-USDT``) gets an :class:`OptionModel`: the
underlying follows a seeded geometric random walk, the fair premium is the Black-Scholes price at
a fixed volatility, and the ticker's greeks and implied volatilities come from the same formulas.
Expiry is taken from the symbol (08:00 UTC); an expired or unparsable date counts as 30 days out.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import random

from hean.emulator.instruments import parse_option_symbol

__all__ = ["OptionModel", "bs_greeks", "bs_price", "implied_vol"]

_YEAR_MS = 365.0 * 86_400_000
_MIN_T = 86_400_000 / _YEAR_MS  # never less than one day to expiry


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _d1_d2(s: float, k: float, t: float, vol: float) -> tuple[float, float]:
    sd = vol * math.sqrt(t)
    d1 = (math.log(s / k) + 0.5 * vol * vol * t) / sd
    return d1, d1 - sd


def bs_price(s: float, k: float, t: float, vol: float, call: bool) -> float:
    """Black-Scholes price (zero rates) of a call/put."""
    if t <= 0 or vol <= 0:
        return max(0.0, s - k) if call else max(0.0, k - s)
    d1, d2 = _d1_d2(s, k, t, vol)
    if call:
        return s * _cdf(d1) - k * _cdf(d2)
    return k * _cdf(-d2) - s * _cdf(-d1)


def bs_greeks(s: float, k: float, t: float, vol: float, call: bool) -> tuple[float, ...]:
    """``(delta, gamma, vega per vol point, theta per day)``."""
    d1, _ = _d1_d2(s, k, t, vol)
    delta = _cdf(d1) if call else _cdf(d1) - 1.0
    gamma = _pdf(d1) / (s * vol * math.sqrt(t))
    vega = s * _pdf(d1) * math.sqrt(t) / 100.0
    theta = -s * _pdf(d1) * vol / (2.0 * math.sqrt(t)) / 365.0
    return delta, gamma, vega, theta


def implied_vol(price: float, s: float, k: float, t: float, call: bool) -> float:
    """Volatility giving ``price`` (bisection); 0 if the price is below intrinsic value."""
    intrinsic = max(0.0, s - k) if call else max(0.0, k - s)
    if price <= intrinsic or price <= 0:
        return 0.0
    lo, hi = 1e-4, 5.0
    if bs_price(s, k, t, hi, call) < price:
        return hi
    for _ in range(50):
        mid = (lo + hi) / 2
        if bs_price(s, k, t, mid, call) < price:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class OptionModel:
    """Underlying walk and pricing for one option symbol."""

    __slots__ = ("call", "expiry_ms", "rng", "strike", "under", "vol")

    def __init__(self, symbol: str, underlying: float, rng: random.Random, now_ms: int) -> None:
        parsed = parse_option_symbol(symbol)
        self.rng = rng
        self.under = underlying
        self.vol = rng.uniform(0.45, 0.6)
        if parsed is None:
            self.strike, self.call = underlying, True
            self.expiry_ms = now_ms + 30 * 86_400_000
            return
        _, month, year, strike, call = parsed
        self.strike, self.call = strike, call
        day = 1
        try:
            day = int(symbol.split("-")[1][:-5])
            day = min(max(day, 1), calendar.monthrange(year, month)[1])
        except (ValueError, IndexError):
            day = 1
        expiry = dt.datetime(year, month, day, 8, tzinfo=dt.UTC)
        self.expiry_ms = int(expiry.timestamp() * 1000)
        if self.expiry_ms <= now_ms + 86_400_000:
            self.expiry_ms = now_ms + 30 * 86_400_000

    def years(self, now_ms: int) -> float:
        return max(_MIN_T, (self.expiry_ms - now_ms) / _YEAR_MS)

    def step(self, dt_s: float) -> None:
        """Move the underlying (annual volatility about 50 %)."""
        sigma = 0.5 * math.sqrt(dt_s / (365.0 * 86_400.0))
        self.under *= math.exp(sigma * self.rng.gauss(0.0, 1.0))

    def fair(self, now_ms: int) -> float:
        return bs_price(self.under, self.strike, self.years(now_ms), self.vol, self.call)

    def greeks(self, now_ms: int) -> tuple[float, ...]:
        return bs_greeks(self.under, self.strike, self.years(now_ms), self.vol, self.call)

    def iv(self, price: float, now_ms: int) -> float:
        return implied_vol(price, self.under, self.strike, self.years(now_ms), self.call)
