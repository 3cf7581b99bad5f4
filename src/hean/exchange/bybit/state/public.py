"""Public trades, klines and liquidations: decode a :class:`Frame` into immutable typed items.

Decoding is tolerant in the ways that matter for a feed that changes under you: unknown fields
are ignored, optional fields that are missing are ``None``, numbers sent as strings (and the
reverse for timestamps) are coerced. What is not tolerated is an item without its essential fields
(time, symbol, side, size, price ...) or with a value of the wrong kind: the decoder then raises
:class:`ValueError` for the whole frame, and the caller counts it and drops it (one bad item
never yields a half-decoded message).

Prices and sizes stay the exact strings Bybit sent; ``price_float`` / ``size_float`` (and
:meth:`Kline.ohlcv`) give floats.

Topics (protocol.md §5.5-5.7):

* ``publicTrade.{symbol}`` (options: ``publicTrade.{baseCoin}``): ``data`` is an array of trades,
  oldest first, up to 1024 per message.
* ``kline.{interval}.{symbol}``: ``data`` is an array of candles.
* ``allLiquidation.{symbol}``: ``data`` is an array of ``{T, s, S, v, p}``.
* ``liquidation.{symbol}`` (deprecated): ``data`` is one ``{updatedTime, symbol, side, size,
  price}`` object (the docs table says ``updateTime``: both are accepted).
"""

from __future__ import annotations

from typing import Any

import msgspec

from hean.core.events import KlineEvent, LiquidationEvent, TradeEvent
from hean.exchange.bybit.protocol.codec import Frame

__all__ = [
    "Kline",
    "Liquidation",
    "Trade",
    "decode_klines",
    "decode_liquidations",
    "decode_trades",
    "kline_event",
    "liquidation_event",
    "topic_symbol",
    "trade_event",
]


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One public trade (``publicTrade`` item)."""

    time: int = msgspec.field(name="T")
    """Match time, Unix ms."""
    symbol: str = msgspec.field(name="s")
    side: str = msgspec.field(name="S")
    """Taker side: ``Buy`` or ``Sell``."""
    size: str = msgspec.field(name="v")
    price: str = msgspec.field(name="p")
    tick_direction: str | None = msgspec.field(default=None, name="L")
    """``PlusTick`` / ``ZeroPlusTick`` / ``MinusTick`` / ``ZeroMinusTick`` (derivatives only)."""
    trade_id: str | None = msgspec.field(default=None, name="i")
    block_trade: bool | None = msgspec.field(default=None, name="BT")
    rpi: bool | None = msgspec.field(default=None, name="RPI")
    """Whether the trade matched a retail-price-improvement order."""
    seq: int | None = None
    """Cross sequence (several messages can share one)."""
    mark_price: str | None = msgspec.field(default=None, name="mP")
    """Option only."""
    index_price: str | None = msgspec.field(default=None, name="iP")
    """Option only."""
    mark_iv: str | None = msgspec.field(default=None, name="mIv")
    """Option only."""
    iv: str | None = None
    """Option only."""

    @property
    def price_float(self) -> float:
        return float(self.price)

    @property
    def size_float(self) -> float:
        return float(self.size)


class Kline(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One candle (``kline`` item). ``confirm`` is ``True`` once the candle is closed."""

    start: int
    """Candle open time, Unix ms."""
    end: int
    """Candle close time, Unix ms (``start + interval - 1``)."""
    interval: str | None = None
    """``1`` ... ``720`` (minutes), ``D``, ``W``, ``M``."""
    open: str
    close: str
    high: str
    low: str
    volume: str | None = None
    turnover: str | None = None
    confirm: bool
    """``True``: the candle is closed; ``False``: still updating."""
    timestamp: int | None = None
    """Time of the last match in the candle, Unix ms."""

    def ohlcv(self) -> tuple[float, float, float, float, float]:
        """``(open, high, low, close, volume)`` as floats (volume 0.0 when missing)."""
        volume = self.volume
        return (
            float(self.open),
            float(self.high),
            float(self.low),
            float(self.close),
            float(volume) if volume is not None else 0.0,
        )


class Liquidation(msgspec.Struct, frozen=True, gc=False):
    """One liquidation. ``side`` is the *position* side: ``Buy`` = a long was liquidated."""

    time: int = msgspec.field(name="T")
    """Unix ms."""
    symbol: str = msgspec.field(name="s")
    side: str = msgspec.field(name="S")
    size: str = msgspec.field(name="v")
    price: str = msgspec.field(name="p")
    """Bankruptcy price."""

    @property
    def price_float(self) -> float:
        return float(self.price)

    @property
    def size_float(self) -> float:
        return float(self.size)


class _LegacyLiquidation(msgspec.Struct, frozen=True, gc=False):
    """The deprecated ``liquidation.{symbol}`` item."""

    symbol: str
    side: str
    size: str
    price: str
    updatedTime: int | None = None
    updateTime: int | None = None


def _convert(data: Any, kind: type[Any], what: str) -> list[Any]:
    if data.__class__ is dict:
        data = [data]
    elif data.__class__ is not list:
        raise ValueError(f"{what} data is not an array")
    try:
        return msgspec.convert(data, list[kind], strict=False)  # type: ignore[valid-type]
    except msgspec.ValidationError as exc:
        raise ValueError(f"bad {what}: {exc}") from None


def decode_trades(frame: Frame) -> list[Trade]:
    """The trades of a ``publicTrade.*`` frame, oldest first.

    Raises:
        ValueError: ``data`` is not an array (or object) of trades, or an item is bad.
    """
    return _convert(frame.data, Trade, "trade")


def decode_klines(frame: Frame) -> list[Kline]:
    """The candles of a ``kline.{interval}.{symbol}`` frame.

    Raises:
        ValueError: ``data`` is not an array (or object) of candles, or an item is bad.
    """
    return _convert(frame.data, Kline, "kline")


def decode_liquidations(frame: Frame) -> list[Liquidation]:
    """The liquidations of an ``allLiquidation.*`` or deprecated ``liquidation.*`` frame.

    The deprecated shape's time is ``updatedTime`` or ``updateTime`` (the frame's ``ts`` when
    both are missing).

    Raises:
        ValueError: unexpected ``data`` shape, a bad item, or no time at all.
    """
    topic = frame.topic
    if topic is not None and topic.startswith("liquidation."):
        legacy: list[_LegacyLiquidation] = _convert(frame.data, _LegacyLiquidation, "liquidation")
        out = []
        for item in legacy:
            time = item.updatedTime if item.updatedTime is not None else item.updateTime
            if time is None:
                time = frame.ts
                if time is None:
                    raise ValueError("bad liquidation: no updatedTime / updateTime")
            out.append(Liquidation(time, item.symbol, item.side, item.size, item.price))
        return out
    return _convert(frame.data, Liquidation, "liquidation")


def topic_symbol(topic: str) -> str:
    """The symbol (last dot-separated part) of a topic: ``kline.5.BTCUSDT`` -> ``BTCUSDT``."""
    return topic.rpartition(".")[2]


def trade_event(frame: Frame, category: str, recv_time: float, recv_wall_ms: int) -> TradeEvent:
    """Decode a ``publicTrade`` frame into a :class:`TradeEvent` (raises :class:`ValueError`)."""
    trades = decode_trades(frame)
    topic: str = frame.topic or ""
    return TradeEvent(
        topic_symbol(topic),
        category,
        trades,
        frame.ts if frame.ts is not None else 0,
        recv_time,
        recv_wall_ms,
    )


def kline_event(frame: Frame, category: str, recv_time: float, recv_wall_ms: int) -> KlineEvent:
    """Decode a ``kline`` frame into a :class:`KlineEvent` (raises :class:`ValueError`)."""
    klines = decode_klines(frame)
    parts = (frame.topic or "").split(".", 2)
    if len(parts) != 3 or parts[0] != "kline":
        raise ValueError(f"not a kline.{{interval}}.{{symbol}} topic: {frame.topic!r}")
    return KlineEvent(
        parts[2],
        category,
        parts[1],
        klines,
        frame.ts if frame.ts is not None else 0,
        recv_time,
        recv_wall_ms,
    )


def liquidation_event(
    frame: Frame, category: str, recv_time: float, recv_wall_ms: int
) -> LiquidationEvent:
    """Decode an ``allLiquidation`` / ``liquidation`` frame into a :class:`LiquidationEvent`."""
    liquidations = decode_liquidations(frame)
    return LiquidationEvent(
        topic_symbol(frame.topic or ""),
        category,
        liquidations,
        frame.ts if frame.ts is not None else 0,
        recv_time,
        recv_wall_ms,
    )
