"""The less common public topics of protocol.md §5.8, derived from the emulated markets.

* ``priceLimit.{symbol}`` (spot, linear, inverse; every 300 ms): the order price limits, a band of
  :data:`PRICE_LIMIT_BAND` around the mark price (spot: the last price), ``buyLmt`` rounded down
  and ``sellLmt`` rounded up to the tick. No ``type`` field.
* ``insurance.{pool}`` (every 1 s): one isolated insurance pool per symbol of the pool. A snapshot
  of every pool goes to a new subscriber; then deltas with the pools that changed (nothing when
  none did). Balances grow with the market's liquidations and drift a little on their own.
* ``adlAlert.{pool}`` (every 1 s): a ``snapshot`` of every symbol of the pool with the same
  balances; ``b``/``mb``/``pr`` follow the pool (``mb`` = highest balance seen, ``pr`` = change
  since the first balance), the thresholds are fixed. Numbers are JSON numbers, as in Bybit's
  example.

* ``tickers_lt.{token}`` (spot, at the spot ticker cadence): the deprecated leveraged-token
  ticker (Bybit took its ETPs offline in 2025) for the synthetic tokens of :data:`LT_TOKENS`,
  snapshots only. The net asset value follows the underlying spot market with the token's
  leverage (no rebalancing); the 24 h figures are those seen since the topic started.

Pools (the emulator's choice, Bybit does not say which endpoint serves which pool): ``USDT`` and
``USDC`` on linear (``USDC``: the linear symbols not quoted in USDT, such as ``BTCPERP`` or
``BTC-26DEC25``), ``inverse`` on inverse. Everything is deterministic: the drift uses its own
random generator seeded from the symbol, never the market's.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from decimal import Decimal

from hean.emulator import shapes
from hean.emulator.market import SymbolMarket
from hean.emulator.ticker import TickerState

__all__ = [
    "EXTRA_INTERVALS",
    "LT_TOKENS",
    "POOLS",
    "PRICE_LIMIT_BAND",
    "AdlPublisher",
    "InsurancePool",
    "InsurancePublisher",
    "LeveragedTokenPublisher",
    "PriceLimitPublisher",
    "pool_symbols",
]

#: insurance/ADL pools served per endpoint kind
POOLS: dict[str, tuple[str, ...]] = {"linear": ("USDT", "USDC"), "inverse": ("inverse",)}
#: seconds between pushes per topic family (protocol.md §5.8)
EXTRA_INTERVALS: dict[str, float] = {"priceLimit": 0.3, "insurance": 1.0, "adlAlert": 1.0}
#: half-width of the price-limit band around the mark price, in basis points (Bybit's example:
#: +-5 %)
PRICE_LIMIT_BAND = 500

#: synthetic leveraged tokens on spot: token -> (underlying spot symbol, leverage)
LT_TOKENS: dict[str, tuple[str, int]] = {"BTC3LUSDT": ("BTCUSDT", 3), "BTC3SUSDT": ("BTCUSDT", -3)}

_BALANCE_DP = 8
_UNIT = 10**_BALANCE_DP


def pool_symbols(kind: str, pool: str, symbols: Sequence[str]) -> list[str]:
    """The symbols (of endpoint ``kind``) whose insurance lives in ``pool``."""
    if kind == "inverse":
        return list(symbols) if pool == "inverse" else []
    if kind != "linear":
        return []
    usdt = [s for s in symbols if s.partition("-")[0].endswith("USDT")]
    if pool == "USDT":
        return usdt
    if pool == "USDC":
        return [s for s in symbols if s not in usdt]
    return []


def _coin(pool: str, market: SymbolMarket) -> str:
    return market.spec.base if pool == "inverse" else pool


class _Fund:
    """One symbol's isolated insurance fund (balance in 1e-8 units)."""

    __slots__ = ("balance", "first", "high", "market", "rng", "seen", "updated_ms")

    def __init__(self, market: SymbolMarket, now_ms: int) -> None:
        self.market = market
        self.rng = random.Random(zlib.crc32(f"insurance:{market.symbol}".encode()))
        self.balance = self.rng.randrange(10_000 * _UNIT, 200_000 * _UNIT)
        self.first = self.high = self.balance
        self.seen = market.liquidation_count
        self.updated_ms = now_ms

    def advance(self, now_ms: int) -> bool:
        """One second of fund life; True if the balance changed."""
        market = self.market
        liquidations = market.liquidation_count - self.seen
        self.seen = market.liquidation_count
        change = 0
        rng = self.rng
        for _ in range(max(0, liquidations)):
            change += rng.randrange(1 * _UNIT, 50 * _UNIT)  # leftover margin of a liquidation
        if rng.random() < 0.2:
            change += rng.randrange(-5 * _UNIT, 5 * _UNIT)
        if change == 0:
            return False
        self.balance = max(_UNIT, self.balance + change)
        self.high = max(self.high, self.balance)
        self.updated_ms = now_ms
        return True


class InsurancePool:
    """The funds of one pool, advanced once per second of simulated time (shared by topics)."""

    __slots__ = ("_last_ms", "changed", "funds", "pool")

    def __init__(self, pool: str, markets: Sequence[SymbolMarket], now_ms: int) -> None:
        self.pool = pool
        self.funds = [_Fund(m, now_ms) for m in markets]
        self.changed: list[_Fund] = []
        self._last_ms = now_ms

    def advance(self, now_ms: int) -> None:
        """Move every fund by the seconds elapsed since the last call (idempotent per time)."""
        if now_ms <= self._last_ms:
            return
        seconds = max(1, (now_ms - self._last_ms) // 1000)
        self._last_ms = now_ms
        changed: dict[int, _Fund] = {}
        for _ in range(seconds):
            for i, fund in enumerate(self.funds):
                if fund.advance(now_ms):
                    changed[i] = fund
        self.changed = [changed[i] for i in sorted(changed)]

    def item(self, fund: _Fund) -> dict[str, object]:
        return {
            "coin": _coin(self.pool, fund.market),
            "symbols": fund.market.symbol,
            "balance": f"{fund.balance // _UNIT}.{fund.balance % _UNIT:08d}",
            "updateTime": str(fund.updated_ms),
        }


class InsurancePublisher:
    """``insurance.{pool}``: snapshot to a new subscriber, then deltas of changed funds."""

    __slots__ = ("pool", "topic")

    def __init__(self, pool: InsurancePool) -> None:
        self.pool = pool
        self.topic = f"insurance.{pool.pool}"

    def initial(self, now_ms: int) -> bytes:
        items = [self.pool.item(f) for f in self.pool.funds]
        return shapes.encode(shapes.insurance(self.topic, "snapshot", now_ms, items))

    def collect(self, now_ms: int) -> bytes | None:
        pool = self.pool
        pool.advance(now_ms)
        if not pool.changed:
            return None
        items = [pool.item(f) for f in pool.changed]
        return shapes.encode(shapes.insurance(self.topic, "delta", now_ms, items))


class AdlPublisher:
    """``adlAlert.{pool}``: a snapshot of every symbol of the pool each second."""

    __slots__ = ("pool", "topic")

    def __init__(self, pool: InsurancePool) -> None:
        self.pool = pool
        self.topic = f"adlAlert.{pool.pool}"

    def initial(self, now_ms: int) -> bytes:
        items: list[dict[str, object]] = []
        for fund in self.pool.funds:
            items.append(
                {
                    "c": _coin(self.pool.pool, fund.market),
                    "s": fund.market.symbol,
                    "b": fund.balance / _UNIT,
                    "mb": fund.high / _UNIT,
                    "i_pr": -0.3,
                    "pr": round((fund.balance - fund.first) / fund.first, 6),
                    "adl_tt": 10000,
                    "adl_sr": -0.25,
                }
            )
        return shapes.encode(shapes.adl_alert(self.topic, now_ms, items))

    def collect(self, now_ms: int) -> bytes | None:
        self.pool.advance(now_ms)
        return self.initial(now_ms)


class PriceLimitPublisher:
    """``priceLimit.{symbol}``: the price band around the mark price, every push."""

    __slots__ = ("state", "topic")

    def __init__(self, state: TickerState) -> None:
        self.state = state
        self.topic = f"priceLimit.{state.market.symbol}"

    def limits(self) -> tuple[int, int]:
        """``(buyLmt, sellLmt)`` in ticks."""
        ref = self.state.reference_ticks
        buy = ref * (10_000 + PRICE_LIMIT_BAND) // 10_000
        sell = -(-ref * (10_000 - PRICE_LIMIT_BAND) // 10_000)
        return buy, max(1, sell)

    def initial(self, now_ms: int) -> bytes:
        spec = self.state.market.spec
        buy, sell = self.limits()
        data = {
            "symbol": self.state.market.symbol,
            "buyLmt": spec.price_str(buy),
            "sellLmt": spec.price_str(sell),
        }
        return shapes.encode(shapes.price_limit(self.topic, data, now_ms))

    def collect(self, now_ms: int) -> bytes | None:
        return self.initial(now_ms)


_NAV_QUANTUM = Decimal(1).scaleb(-18)
_PCNT_QUANTUM = Decimal("0.0001")


class LeveragedTokenPublisher:
    """``tickers_lt.{token}``: the token's net asset value from its underlying market."""

    __slots__ = ("_high", "_low", "_prev", "_ref", "leverage", "market", "token", "topic")

    def __init__(self, token: str, market: SymbolMarket, leverage: int) -> None:
        self.token = token
        self.market = market
        self.leverage = leverage
        self.topic = f"tickers_lt.{token}"
        self._ref = Decimal(max(1, market.last))
        self._prev = Decimal("0.5")  # the NAV when the topic started
        self._high = self._low = self._prev

    def nav(self) -> Decimal:
        move = (Decimal(self.market.last) - self._ref) / self._ref
        nav = self._prev * (1 + self.leverage * move)
        return max(_NAV_QUANTUM, nav.quantize(_NAV_QUANTUM))

    def initial(self, now_ms: int) -> bytes:
        nav = self.nav()
        self._high = max(self._high, nav)
        self._low = min(self._low, nav)
        pcnt = ((nav - self._prev) / self._prev).quantize(_PCNT_QUANTUM)
        data = {
            "symbol": self.token,
            "lastPrice": _plain(nav),
            "highPrice24h": _plain(self._high),
            "lowPrice24h": _plain(self._low),
            "prevPrice24h": _plain(self._prev),
            "price24hPcnt": _plain(pcnt),
        }
        return shapes.encode(shapes.ticker_lt(self.topic, now_ms, data))

    def collect(self, now_ms: int) -> bytes | None:
        return self.initial(now_ms)


def _plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros (``"0.41477848"``, ``"-0.0388"``, ``"0"``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
