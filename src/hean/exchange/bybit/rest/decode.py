"""REST results decoded into the same typed items the private and public streams use.

An order from ``/v5/order/realtime`` and an order from the ``order`` topic are one type
(:class:`~hean.exchange.bybit.state.private.Order`); likewise executions, positions, wallets,
public trades and klines. The field differences of rest.md are handled here:

* REST list items have no per-item ``category``: it is taken from ``result.category`` (or the
  category asked for);
* a REST position's ``avgPrice`` is the stream's ``entryPrice`` (both kept: ``avg_price`` is not a
  Position field, ``entry_price`` is set from it); the docs example's ``mmrSysUpdateTime``
  spelling is accepted for ``mmrSysUpdatedTime``;
* a REST execution's ``extraFees`` is a string (``""``: none) where the stream has an array;
* ``recent-trade`` items use long names (``execId``, ``price`` ...) and a string ``seq`` where the
  ``publicTrade`` topic has ``i``, ``p`` and a number;
* ``kline`` rows are 7-string arrays, newest first; they become :class:`Kline` oldest first, with
  ``end`` computed from the interval and ``confirm`` true once the server time is past ``end``.

Decoding is tolerant (unknown fields ignored, numbers sent as strings coerced). An item that
cannot be decoded (an essential field missing, a value of the wrong kind) is dropped and counted
(the returned ``bad`` count), never allowed to take the rest of the page with it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

import msgspec

from hean.exchange.bybit.state.private import Execution, Order, Position, Wallet
from hean.exchange.bybit.state.public import Kline, Trade

__all__ = [
    "RestOrderBook",
    "WalletSnapshot",
    "decode_executions",
    "decode_klines",
    "decode_orderbook",
    "decode_orders",
    "decode_positions",
    "decode_trades",
    "decode_wallets",
    "interval_ms",
    "kline_end",
]

T = TypeVar("T")


class RestOrderBook(msgspec.Struct, frozen=True, gc=False):
    """A ``/v5/market/orderbook`` snapshot: bids price-descending, asks ascending, levels as
    ``[price, size]`` strings."""

    symbol: str = msgspec.field(name="s")
    bids: list[list[str]] = msgspec.field(default_factory=list, name="b")
    asks: list[list[str]] = msgspec.field(default_factory=list, name="a")
    ts: int | None = None
    """When the system generated the data, ms."""
    u: int | None = None
    """Update id (equals ``u`` of the 1000-level WS book)."""
    seq: int | None = None
    """Cross sequence."""
    cts: int | None = None
    """Matching-engine timestamp, ms."""


class WalletSnapshot(msgspec.Struct, frozen=True, gc=False):
    """The answer of ``/v5/account/wallet-balance``."""

    wallets: list[Wallet]
    time: int | None
    """The envelope's server time, ms (WS ``wallet`` messages with a later ``creationTime`` are
    newer than this snapshot)."""


def _convert(items: list[Any], kind: type[T]) -> tuple[list[T], int]:
    try:
        return msgspec.convert(items, list[kind], strict=False), 0  # type: ignore[valid-type]
    except msgspec.ValidationError:
        pass
    out: list[T] = []
    bad = 0
    for item in items:
        try:
            out.append(msgspec.convert(item, kind, strict=False))
        except msgspec.ValidationError:
            bad += 1
    return out, bad


def _items(items: Any) -> tuple[list[dict[str, Any]], int]:
    if not isinstance(items, list):
        return [], 0 if items is None else 1
    good = [i for i in items if isinstance(i, dict)]
    return good, len(items) - len(good)


def _with_category(items: Any, category: str | None) -> tuple[list[dict[str, Any]], int]:
    good, bad = _items(items)
    if category:
        good = [i if i.get("category") else {**i, "category": category} for i in good]
    return good, bad


def decode_orders(items: Any, category: str | None) -> tuple[list[Order], int]:
    """Orders of ``/v5/order/realtime`` or ``/v5/order/history``; returns ``(orders, bad)``."""
    good, bad = _with_category(items, category)
    out, more = _convert(good, Order)
    return out, bad + more


def _fix_execution(item: dict[str, Any]) -> dict[str, Any]:
    fees = item.get("extraFees")
    if isinstance(fees, str):
        fixed: Any = None
        if fees.strip().startswith("["):
            try:
                fixed = msgspec.json.decode(fees)
            except msgspec.DecodeError:
                fixed = None
        item = {**item, "extraFees": fixed if isinstance(fixed, list) else None}
    return item


def decode_executions(items: Any, category: str | None) -> tuple[list[Execution], int]:
    """Executions of ``/v5/execution/list``; returns ``(executions, bad)``."""
    good, bad = _with_category(items, category)
    out, more = _convert([_fix_execution(i) for i in good], Execution)
    return out, bad + more


def _fix_position(item: dict[str, Any]) -> dict[str, Any]:
    if "entryPrice" not in item and "avgPrice" in item:
        item = {**item, "entryPrice": item["avgPrice"]}
    if "mmrSysUpdatedTime" not in item and "mmrSysUpdateTime" in item:
        item = {**item, "mmrSysUpdatedTime": item["mmrSysUpdateTime"]}
    return item


def decode_positions(items: Any, category: str | None) -> tuple[list[Position], int]:
    """Positions of ``/v5/position/list`` (``avgPrice`` -> ``entry_price``); returns
    ``(positions, bad)``."""
    good, bad = _with_category(items, category)
    out, more = _convert([_fix_position(i) for i in good], Position)
    return out, bad + more


def decode_wallets(items: Any) -> tuple[list[Wallet], int]:
    """Accounts of ``/v5/account/wallet-balance``; returns ``(wallets, bad)``."""
    good, bad = _items(items)
    out, more = _convert(good, Wallet)
    return out, bad + more


_TRADE_FIELDS = (
    ("time", "T"),
    ("symbol", "s"),
    ("side", "S"),
    ("size", "v"),
    ("price", "p"),
    ("execId", "i"),
    ("isBlockTrade", "BT"),
    ("isRPITrade", "RPI"),
    ("seq", "seq"),
    ("mP", "mP"),
    ("iP", "iP"),
    ("mIv", "mIv"),
    ("iv", "iv"),
)


def decode_trades(items: Any) -> tuple[list[Trade], int]:
    """Trades of ``/v5/market/recent-trade``, oldest first (the endpoint's order is
    undocumented; sorted by time, stable); returns ``(trades, bad)``."""
    good, bad = _items(items)
    wire = []
    for item in good:
        mapped = {short: item[long] for long, short in _TRADE_FIELDS if long in item}
        if mapped.get("seq") == "":
            mapped.pop("seq")
        wire.append(mapped)
    out, more = _convert(wire, Trade)
    out.sort(key=lambda t: t.time)
    return out, bad + more


_FIXED_MS = {"D": 86_400_000, "W": 7 * 86_400_000}


def interval_ms(interval: str) -> int | None:
    """Length of a kline interval in ms (``None`` for ``M``, whose length varies).

    Raises:
        ValueError: not a Bybit interval.
    """
    if interval in _FIXED_MS:
        return _FIXED_MS[interval]
    if interval == "M":
        return None
    if interval.isdigit() and int(interval) > 0:
        return int(interval) * 60_000
    raise ValueError(f"bad kline interval {interval!r}")


def kline_end(start_ms: int, interval: str) -> int:
    """The last ms of the candle starting at ``start_ms`` (``start + length - 1``)."""
    length = interval_ms(interval)
    if length is not None:
        return start_ms + length - 1
    start = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    nxt = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    return int(nxt.timestamp() * 1000) - 1


def decode_klines(rows: Any, interval: str, now_ms: int | None) -> tuple[list[Kline], int]:
    """Klines of ``/v5/market/kline`` (7-string rows, newest first) as :class:`Kline`, oldest
    first. ``confirm`` is true when ``now_ms`` (server time) is past the candle's end; with
    ``now_ms`` unknown, all but the newest candle count as closed. Returns ``(klines, bad)``."""
    interval_ms(interval)  # validates
    if not isinstance(rows, list):
        return [], 0 if rows is None else 1
    parsed: list[tuple[int, list[str]]] = []
    bad = 0
    for row in rows:
        if (
            not isinstance(row, list)
            or len(row) < 5
            or not all(isinstance(v, str | int | float) for v in row)
        ):
            bad += 1
            continue
        try:
            parsed.append((int(row[0]), [str(v) for v in row]))
        except ValueError:
            bad += 1
    parsed.sort(key=lambda r: r[0])
    newest = parsed[-1][0] if parsed else None
    out = []
    for start, row in parsed:
        end = kline_end(start, interval)
        confirm = end < now_ms if now_ms is not None else start != newest
        out.append(
            Kline(
                start=start,
                end=end,
                interval=interval,
                open=row[1],
                high=row[2],
                low=row[3],
                close=row[4],
                volume=row[5] if len(row) > 5 else None,
                turnover=row[6] if len(row) > 6 else None,
                confirm=confirm,
            )
        )
    return out, bad


def decode_orderbook(result: dict[str, Any]) -> RestOrderBook:
    """The ``result`` of ``/v5/market/orderbook``.

    Raises:
        ValueError: no symbol, or levels that are not ``[price, size]`` strings.
    """
    try:
        return msgspec.convert(result, RestOrderBook, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bad order book: {exc}") from None
