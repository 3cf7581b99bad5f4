"""Public topic encoders: turn one symbol's market state into Bybit messages (no I/O, no timers).

Each publisher remembers what it last *published* (not what the market holds now), so deltas are
exactly the difference between two published states and a late subscriber's snapshot plus the
following deltas always reproduces the published book. Scheduling (cadences) and delivery belong
to :mod:`hean.emulator.feeds`; the firehose reuses these classes to pre-encode traffic.
"""

from __future__ import annotations

from itertools import islice

import msgspec

from hean.emulator import shapes
from hean.emulator.candles import Candle
from hean.emulator.instruments import fmt_strip
from hean.emulator.market import SymbolMarket

__all__ = [
    "BOOK_DEPTHS",
    "BookPublisher",
    "FullBookPublisher",
    "KlinePublisher",
    "LiquidationPublisher",
    "RpiBookPublisher",
    "TradePublisher",
    "rpi_split",
]

#: order-book depths per endpoint kind
BOOK_DEPTHS: dict[str, tuple[int, ...]] = {
    "linear": (1, 50, 200, 1000),
    "inverse": (1, 50, 200, 1000),
    "spot": (1, 50, 200, 1000),
    "option": (25, 100),
}
_MAX_TRADES_PER_MESSAGE = 1024

Levels = list[tuple[int, int]]

_encode = msgspec.json.Encoder().encode


class BookPublisher:
    """``orderbook.{depth}.{symbol}``: N-level window, consecutive ``u``, shared ``seq``.

    Level 1 publishes snapshots only; other depths publish a snapshot to each new subscriber and
    then deltas: changed sizes, ``"0"`` for levels that were deleted *or left the window*, so a
    client applying them never holds more than ``depth`` levels. No delta is produced when the
    window did not change.
    """

    __slots__ = (
        "_version",
        "asks",
        "bids",
        "cts",
        "depth",
        "market",
        "sent_ms",
        "seq",
        "topic",
        "ts_first",
        "u",
    )  # fmt: skip

    def __init__(self, market: SymbolMarket, depth: int, u: int = 0) -> None:
        self.market = market
        self.depth = depth
        self.topic = f"orderbook.{depth}.{market.symbol}"
        self.ts_first = market.category == "spot" or depth == 1
        self.u = u
        self.seq = 0
        self.cts = 0
        self.sent_ms = 0
        self.bids: Levels = []
        self.asks: Levels = []
        self._version = -1

    @property
    def snapshot_only(self) -> bool:
        return self.depth == 1

    def prime(self, now_ms: int) -> None:
        """Publish the current book as a new state (``u`` + 1) without producing a delta."""
        book = self.market.book
        self.bids, self.asks = book.depth(self.depth or None)
        self._version = book.version
        self.u += 1
        self.seq = book.seq
        self.cts = book.last_change_ms
        self.sent_ms = now_ms

    def _levels(self, levels: Levels) -> list[list[str]]:
        spec = self.market.spec
        return [[spec.price_str(p), spec.qty_str(q) if q else "0"] for p, q in levels]

    def _message(self, kind: str, now_ms: int, bids: Levels, asks: Levels, u: int) -> bytes:
        data: dict[str, object] = {
            "s": self.market.symbol,
            "b": self._levels(bids),
            "a": self._levels(asks),
            "u": u,
            "seq": self.seq,
        }
        msg = shapes.orderbook(self.topic, kind, now_ms, data, self.cts, ts_first=self.ts_first)
        return _encode(msg)

    def snapshot(self, now_ms: int, u: int | None = None) -> bytes:
        """The published window as a snapshot (``u`` defaults to the current one)."""
        return self._message("snapshot", now_ms, self.bids, self.asks, self.u if u is None else u)

    def delta_like(self, now_ms: int) -> bytes:
        """A plausible delta for the published state (for the delta-before-snapshot fault)."""
        return self._message("delta", now_ms, self.bids[:1], self.asks[:1], self.u)

    def refresh(self, now_ms: int) -> bytes | None:
        """Publish the book's changes since the last publication; ``None`` if there were none
        (level 1: a repeat of the last snapshot, same ``u``, is the caller's decision)."""
        book = self.market.book
        if book.version == self._version:
            return None
        self._version = book.version
        bids, asks = book.depth(self.depth or None)
        if self.snapshot_only:
            if bids == self.bids and asks == self.asks:
                return None
            self.bids, self.asks = bids, asks
            self._stamp(now_ms)
            return self.snapshot(now_ms)
        db = _diff(self.bids, bids, reverse=True)
        da = _diff(self.asks, asks, reverse=False)
        if not db and not da:
            return None
        self.bids, self.asks = bids, asks
        self._stamp(now_ms)
        return self._message("delta", now_ms, db, da, self.u)

    def _stamp(self, now_ms: int) -> None:
        book = self.market.book
        self.u += 1
        self.seq = book.seq
        self.cts = book.last_change_ms
        self.sent_ms = now_ms

    def repeat(self, now_ms: int) -> bytes:
        """Level 1's re-push of an unchanged book: same ``u``, new ``ts``."""
        self.sent_ms = now_ms
        return self.snapshot(now_ms)


def rpi_split(price: int, qty: int) -> tuple[int, int]:
    """``(nonRpi, rpi)`` lots of one level: a synthetic, deterministic split of the book's size.

    The emulated book has no RPI orders, so some levels are declared part RPI: about one level in
    five is all RPI, one in five holds 40 % RPI, the rest none (a function of the price alone, so
    a level's split only changes with its size).
    """
    kind = (price * 2_654_435_761 >> 8) % 5
    rpi = qty if kind == 0 else qty * 2 // 5 if kind == 1 else 0
    return qty - rpi, rpi


class RpiBookPublisher(BookPublisher):
    """``orderbook.rpi.{symbol}`` (protocol.md §5.3): the 50-level window with 3-element levels
    ``[price, nonRpiSize, rpiSize]`` split by :func:`rpi_split`; snapshot, then deltas with
    consecutive ``u`` (a level that changed in either size, ``"0"``/``"0"`` when it left)."""

    __slots__ = ()

    DEPTH = 50

    def __init__(self, market: SymbolMarket, u: int = 0) -> None:
        super().__init__(market, self.DEPTH, u)
        self.topic = f"orderbook.rpi.{market.symbol}"
        self.ts_first = True  # as in Bybit's example: ``ts`` before ``type``

    def _levels(self, levels: Levels) -> list[list[str]]:
        spec = self.market.spec
        out = []
        for p, q in levels:
            plain, rpi = rpi_split(p, q)
            out.append(
                [
                    spec.price_str(p),
                    spec.qty_str(plain) if plain else "0",
                    spec.qty_str(rpi) if rpi else "0",
                ]
            )
        return out


class FullBookPublisher(BookPublisher):
    """``orderbook.full.{symbol}`` (protocol.md §5.4): every level, delta-only (no ``snapshot``
    type). Bybit expects clients to start from a REST snapshot; the emulator has no REST, so a
    new subscription *re-initialises* the topic: ``u`` restarts at 1 and a ``delta`` holding the
    whole book goes to every subscriber (``u=1`` means "overwrite your book"); then deltas with
    consecutive ``u`` every 200 ms when the book changed."""

    __slots__ = ()

    def __init__(self, market: SymbolMarket) -> None:
        super().__init__(market, 0, 0)
        self.topic = f"orderbook.full.{market.symbol}"
        self.ts_first = True  # as in Bybit's example: ``ts`` before ``type``

    def restart(self, now_ms: int) -> None:
        """Re-initialise: the whole current book becomes state ``u=1``."""
        self.u = 0
        self.prime(now_ms)

    def snapshot(self, now_ms: int, u: int | None = None) -> bytes:
        """The published book as a (re-initialising) ``delta``: this topic has no snapshots."""
        return self._message("delta", now_ms, self.bids, self.asks, self.u if u is None else u)


def _diff(old: Levels, new: Levels, *, reverse: bool) -> Levels:
    before = dict(old)
    after = dict(new)
    out = [(p, q) for p, q in new if before.get(p) != q]
    out += [(p, 0) for p in before if p not in after]
    out.sort(reverse=reverse)
    return out


class TradePublisher:
    """``publicTrade.{symbol}``: every trade since the last push, in match order."""

    __slots__ = ("cursor", "market", "topic")

    def __init__(self, market: SymbolMarket) -> None:
        self.market = market
        self.topic = f"publicTrade.{market.symbol}"
        self.cursor = market.trade_count

    def collect(self, now_ms: int) -> list[bytes]:
        market = self.market
        new = min(market.trade_count - self.cursor, len(market.trades))
        self.cursor = market.trade_count
        if new <= 0:
            return []
        trades = list(islice(market.trades, len(market.trades) - new, None))
        out = []
        for i in range(0, len(trades), _MAX_TRADES_PER_MESSAGE):
            chunk = trades[i : i + _MAX_TRADES_PER_MESSAGE]
            out.append(_encode(shapes.public_trade(self.topic, now_ms, chunk)))
        return out


class LiquidationPublisher:
    """``allLiquidation.{symbol}``: the liquidations since the last push (nothing if none)."""

    __slots__ = ("cursor", "market", "topic")

    def __init__(self, market: SymbolMarket) -> None:
        self.market = market
        self.topic = f"allLiquidation.{market.symbol}"
        self.cursor = market.liquidation_count

    def collect(self, now_ms: int) -> bytes | None:
        market = self.market
        new = min(market.liquidation_count - self.cursor, len(market.liquidations))
        self.cursor = market.liquidation_count
        if new <= 0:
            return None
        items = list(islice(market.liquidations, len(market.liquidations) - new, None))
        return _encode(shapes.all_liquidation(self.topic, now_ms, items))


class KlinePublisher:
    """``kline.{interval}.{symbol}``: ``confirm:true`` once an interval closes, ``confirm:false``
    updates of the open candle when the feed asks for them."""

    __slots__ = ("closed_seen", "interval", "market", "topic")

    def __init__(self, market: SymbolMarket, interval: str) -> None:
        self.market = market
        self.interval = interval
        self.topic = f"kline.{interval}.{market.symbol}"
        self.closed_seen = market.candles.closed_count[interval]

    def candle_dict(self, candle: Candle, confirm: bool, now_ms: int) -> dict[str, object]:
        spec = self.market.spec
        price_dp = spec.price_dp
        tick = spec.tick
        return {
            "start": candle.start,
            "end": candle.end,
            "interval": self.interval,
            "open": fmt_strip(candle.open * tick, price_dp),
            "close": fmt_strip(candle.close * tick, price_dp),
            "high": fmt_strip(candle.high * tick, price_dp),
            "low": fmt_strip(candle.low * tick, price_dp),
            "volume": fmt_strip(candle.volume * spec.lot, spec.qty_dp),
            "turnover": fmt_strip(candle.turnover, spec.notional_dp),
            "confirm": confirm,
            "timestamp": candle.timestamp if candle.trades else now_ms,
        }

    def closed(self, now_ms: int) -> bytes | None:
        """The ``confirm:true`` message if the interval closed since the last call."""
        candles = self.market.candles
        count = candles.closed_count[self.interval]
        if count == self.closed_seen:
            return None
        self.closed_seen = count
        candle = candles.closed[self.interval]
        return _encode(shapes.kline(self.topic, now_ms, [self.candle_dict(candle, True, now_ms)]))

    def update(self, now_ms: int) -> bytes:
        """The open candle (``confirm:false``)."""
        candle = self.market.candles.current[self.interval]
        return _encode(shapes.kline(self.topic, now_ms, [self.candle_dict(candle, False, now_ms)]))
