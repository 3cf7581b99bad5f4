"""Kline (candlestick) aggregation from trades, for every Bybit interval at once.

``start``/``end`` follow Bybit: ``end = start + length - 1`` (ms). With ``time_scale == 1`` minute
intervals align to the Unix epoch, ``D`` to UTC midnight, ``W`` to Monday 00:00 UTC and ``M`` to
the calendar month. Tests can shrink time with ``time_scale`` (a "minute" lasts
``60 s * time_scale``); then every interval, ``W`` and ``M`` (30 "days") included, is a plain
multiple of its length from the epoch.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import deque
from dataclasses import dataclass

__all__ = ["INTERVALS", "Candle", "CandleSet", "interval_bounds"]

#: Bybit kline intervals, as they appear in ``kline.{interval}.{symbol}``
INTERVALS: tuple[str, ...] = (
    "1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M",
)  # fmt: skip
_MINUTES: dict[str, int] = {
    **{i: int(i) for i in INTERVALS[:10]},
    "D": 1440,
    "W": 10080,
    "M": 43200,
}
_MINUTE_MS = 60_000
_MONDAY_OFFSET_MS = 4 * 86_400_000  # 1970-01-05 was the first Monday
#: closed candles kept per interval (what the REST ``/v5/market/kline`` can serve)
HISTORY = 1000


def interval_bounds(interval: str, ts: int, time_scale: float = 1.0) -> tuple[int, int]:
    """``(start, end)`` in ms of the ``interval`` candle that contains ``ts``."""
    if time_scale == 1.0 and interval == "M":
        day = dt.datetime.fromtimestamp(ts / 1000, tz=dt.UTC)
        first = dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC)
        days = calendar.monthrange(day.year, day.month)[1]
        start = int(first.timestamp() * 1000)
        return start, start + days * 86_400_000 - 1
    length = max(1, round(_MINUTES[interval] * _MINUTE_MS * time_scale))
    offset = _MONDAY_OFFSET_MS if interval == "W" and time_scale == 1.0 else 0
    start = (ts - offset) // length * length + offset
    return start, start + length - 1


@dataclass(slots=True)
class Candle:
    """One candle; prices in ticks, volume in lots, turnover in notional units."""

    interval: str
    start: int
    end: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    turnover: int = 0
    timestamp: int = 0
    trades: int = 0

    def copy(self) -> Candle:
        return Candle(
            self.interval, self.start, self.end, self.open, self.high, self.low, self.close,
            self.volume, self.turnover, self.timestamp, self.trades,
        )  # fmt: skip


class CandleSet:
    """The current candle of every interval for one symbol, plus the closed ones of each (the
    last in :attr:`closed`, the most recent :data:`HISTORY` in :attr:`history`, oldest first)."""

    __slots__ = ("_scale", "closed", "closed_count", "current", "history")

    def __init__(self, price: int, now_ms: int, time_scale: float = 1.0) -> None:
        self._scale = time_scale
        self.current: dict[str, Candle] = {}
        self.closed: dict[str, Candle] = {}
        self.history: dict[str, deque[Candle]] = {i: deque(maxlen=HISTORY) for i in INTERVALS}
        #: how many candles of each interval have closed so far
        self.closed_count: dict[str, int] = dict.fromkeys(INTERVALS, 0)
        for interval in INTERVALS:
            start, end = interval_bounds(interval, now_ms, time_scale)
            self.current[interval] = Candle(
                interval, start, end, price, price, price, price, 0, 0, now_ms
            )

    @property
    def time_scale(self) -> float:
        return self._scale

    def roll(self, now_ms: int) -> None:
        """Close every candle whose interval ended before ``now_ms`` and open the next."""
        for interval, candle in self.current.items():
            if now_ms <= candle.end:
                continue
            self.closed[interval] = candle
            self.closed_count[interval] += 1
            self.history[interval].append(candle)
            start, end = interval_bounds(interval, now_ms, self._scale)
            price = candle.close
            self.current[interval] = Candle(
                interval, start, end, price, price, price, price, 0, 0, now_ms
            )

    def add_trade(self, ts: int, price: int, qty: int, notional: int) -> None:
        for candle in self.current.values():
            if candle.trades == 0:
                candle.open = candle.high = candle.low = price
            elif price > candle.high:
                candle.high = price
            elif price < candle.low:
                candle.low = price
            candle.close = price
            candle.volume += qty
            candle.turnover += notional
            candle.timestamp = ts
            candle.trades += 1
