"""Public REST endpoints of the emulator: ``/v5/market/*`` (rest.md §5), from the venue.

Instruments come from the same :class:`~hean.emulator.instruments.InstrumentSpec` the books use
(tick size, qty step); limits the emulator does not enforce on order entry (max qty, min
notional) are listed with Bybit-like values. Tickers are the WebSocket ticker state as of its
last push, in REST's field names (rest.md §5.3). The order book is the ``orderbook.1000`` topic's
published state when someone subscribes to it (same ``u``), else the true book with a ``u`` that
moves when the book changes. Trades and klines are newest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from hean.emulator.accounts import settle_coin, spot_coins
from hean.emulator.candles import INTERVALS, Candle, interval_bounds
from hean.emulator.instruments import (
    InstrumentSpec,
    fmt_strip,
    fmt_units,
    future_delivery_ms,
    is_future_symbol,
    parse_option_symbol,
)
from hean.emulator.market import SymbolMarket
from hean.emulator.publishers import BookPublisher, FullBookPublisher
from hean.emulator.rest import (
    Call,
    category_param,
    encode_cursor,
    int_param,
    limit_param,
    text_param,
)
from hean.emulator.trading import OpError

__all__ = ["ENDPOINTS", "instrument_item"]

_CATEGORIES = ("spot", "linear", "inverse", "option")
_NOT_SUPPORTED = "Not supported symbols"
_LAUNCH_MS = "1585526400000"


def _time(call: Call) -> tuple[object, object]:
    now = call.now_ms
    nano = now * 1_000_000 + time.monotonic_ns() % 1_000_000
    return {"timeSecond": str(now // 1000), "timeNano": str(nano)}, {}


# -- instruments ---------------------------------------------------------------------------------


def _max_qty(spec: InstrumentSpec, usd: float) -> str:
    """A whole number of coins worth about ``usd`` (at least one lot)."""
    whole = max(1, int(usd / max(spec.start_price, 1e-9)))
    if spec.category == "inverse":
        whole = int(usd)
    units = max(whole * 10**spec.qty_dp, spec.lot)
    return fmt_units(units, spec.qty_dp)


def _quote(spec: InstrumentSpec) -> str:
    if spec.category == "spot":
        return spot_coins(spec)[1]
    if spec.category == "inverse":
        return "USD"
    return settle_coin(spec)


def instrument_item(spec: InstrumentSpec, symbol_id: int) -> dict[str, object]:
    """One ``instruments-info`` item in the category's shape (rest.md §5.2)."""
    tick = spec.price_str(1)
    step = spec.qty_str(1)
    max_price = spec.price_str(max(1, 19_999_998 * 10**spec.price_dp // spec.tick // 10))
    risk = {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"}
    if spec.category == "spot":
        return {
            "symbolId": symbol_id,
            "symbol": spec.symbol,
            "baseCoin": spec.base,
            "quoteCoin": _quote(spec),
            "innovation": "0",
            "status": "Trading",
            "marginTrading": "utaOnly",
            "stTag": "0",
            "lotSizeFilter": {
                "basePrecision": step,
                "quotePrecision": "0.0000001",
                "minOrderQty": step,
                "maxOrderQty": _max_qty(spec, 5e6),
                "minOrderAmt": "1",
                "maxOrderAmt": "8000000",
                "maxLimitOrderQty": _max_qty(spec, 5e6),
                "maxMarketOrderQty": _max_qty(spec, 2.5e6),
                "postOnlyMaxLimitOrderSize": _max_qty(spec, 5e6),
            },
            "priceFilter": {"tickSize": tick},
            "riskParameters": risk,
            "symbolType": "",
        }
    if spec.category == "option":
        parsed = parse_option_symbol(spec.symbol)
        kind = "Call" if parsed is not None and parsed[4] else "Put"
        coin = settle_coin(spec)
        return {
            "symbol": spec.symbol,
            "status": "Trading",
            "baseCoin": spec.base,
            "quoteCoin": coin,
            "settleCoin": coin,
            "optionsType": kind,
            "launchTime": _LAUNCH_MS,
            "deliveryTime": "0",
            "deliveryFeeRate": "0.00015",
            "priceFilter": {"minPrice": tick, "maxPrice": max_price, "tickSize": tick},
            "lotSizeFilter": {
                "maxOrderQty": _max_qty(spec, 3e7),
                "minOrderQty": step,
                "qtyStep": step,
            },
            "displayName": spec.symbol,
        }
    future = is_future_symbol(spec.symbol)
    prefix = "Inverse" if spec.category == "inverse" else "Linear"
    delivery = future_delivery_ms(spec.symbol) if future else None
    return {
        "symbol": spec.symbol,
        "symbolId": symbol_id,
        "contractType": f"{prefix}{'Futures' if future else 'Perpetual'}",
        "status": "Trading",
        "baseCoin": spec.base,
        "quoteCoin": _quote(spec),
        "launchTime": _LAUNCH_MS,
        "deliveryTime": str(delivery or 0),
        "deliveryFeeRate": "0.0005" if future else "",
        "priceScale": str(spec.price_dp),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": tick, "maxPrice": max_price, "tickSize": tick},
        "lotSizeFilter": {
            "maxOrderQty": _max_qty(spec, 7e7),
            "minOrderQty": step,
            "qtyStep": step,
            "postOnlyMaxOrderQty": _max_qty(spec, 7e7),
            "maxMktOrderQty": _max_qty(spec, 3e7),
            "minNotionalValue": "1" if spec.category == "linear" else "0",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 0 if future else 480,
        "settleCoin": settle_coin(spec),
        "copyTrading": "both",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": risk,
        "symbolType": "",
    }


def _instruments(call: Call) -> tuple[object, object]:
    params = call.params
    category = category_param(params, _CATEGORIES)
    market = call.emu.market
    names = market.symbols(category)
    symbol = text_param(params, "symbol")
    status = text_param(params, "status")
    base = text_param(params, "baseCoin")
    if symbol is not None:
        names = [n for n in names if n == symbol]
    if status is not None and status != "Trading":
        names = []
    specs = [(market.spec(category, n), i + 1) for i, n in enumerate(market.symbols(category))]
    chosen = [
        (spec, sid)
        for spec, sid in specs
        if spec.symbol in names and (base is None or spec.base == base)
    ]
    if category == "spot":  # not paginated
        return {"category": category, "list": [instrument_item(s, i) for s, i in chosen]}, {}
    limit = limit_param(params, 500, 1000, call.emu.config.rest_page_size)
    cursor = text_param(params, "cursor")
    if cursor is not None:
        last = _cursor_field(cursor, "last")
        keys = [s.symbol for s, _ in chosen]
        if last not in keys:
            raise OpError(10001, "params error: cursor invalid")
        chosen = chosen[keys.index(last) + 1 :]
    page = chosen[:limit]
    next_cursor = ""
    if page:
        next_cursor = encode_cursor(f"first={page[0][0].symbol}&last={page[-1][0].symbol}")
    return {
        "category": category,
        "list": [instrument_item(s, i) for s, i in page],
        "nextPageCursor": next_cursor,
    }, {}


def _cursor_field(cursor: str, name: str) -> str:
    for part in cursor.split("&"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    raise OpError(10001, "params error: cursor invalid")


# -- tickers -------------------------------------------------------------------------------------


_LINEAR_REST = (
    "symbol", "lastPrice", "indexPrice", "markPrice", "prevPrice24h", "price24hPcnt",
    "highPrice24h", "lowPrice24h", "prevPrice1h", "openInterest", "openInterestValue",
    "turnover24h", "volume24h", "fundingRate", "nextFundingTime", "predictedDeliveryPrice",
    "basisRate", "deliveryFeeRate", "deliveryTime", "ask1Size", "bid1Price", "ask1Price",
    "bid1Size", "basis", "preOpenPrice", "preQty", "curPreListingPhase", "fundingIntervalHour",
    "basisRateYear", "fundingCap",
)  # fmt: skip
_SPOT_REST = (
    "symbol", "bid1Price", "bid1Size", "ask1Price", "ask1Size", "lastPrice", "prevPrice24h",
    "price24hPcnt", "highPrice24h", "lowPrice24h", "turnover24h", "volume24h", "usdIndexPrice",
)  # fmt: skip
_OPTION_REST = {
    "symbol": "symbol", "bid1Price": "bidPrice", "bid1Size": "bidSize", "bid1Iv": "bidIv",
    "ask1Price": "askPrice", "ask1Size": "askSize", "ask1Iv": "askIv", "lastPrice": "lastPrice",
    "highPrice24h": "highPrice24h", "lowPrice24h": "lowPrice24h", "markPrice": "markPrice",
    "indexPrice": "indexPrice", "markIv": "markPriceIv", "underlyingPrice": "underlyingPrice",
    "openInterest": "openInterest", "turnover24h": "turnover24h", "volume24h": "volume24h",
    "totalVolume": "totalVolume", "totalTurnover": "totalTurnover", "delta": "delta",
    "gamma": "gamma", "vega": "vega", "theta": "theta",
    "predictedDeliveryPrice": "predictedDeliveryPrice", "change24h": "change24h",
}  # fmt: skip


def ticker_item(call: Call, category: str, symbol: str) -> dict[str, object]:
    """One ``tickers`` item in REST's field names (rest.md §5.3)."""
    emu = call.emu
    truth = emu.ticker_truth(category, symbol)
    if category == "option":
        return {rest: truth.get(ws, "") for rest, ws in _OPTION_REST.items()}
    if category == "spot":
        market = emu.symbol_market(category, symbol)
        bids, asks = market.book_levels(1)
        extra = {
            "bid1Price": bids[0][0] if bids else "",
            "bid1Size": bids[0][1] if bids else "",
            "ask1Price": asks[0][0] if asks else "",
            "ask1Size": asks[0][1] if asks else "",
        }
        return {k: extra[k] if k in extra else truth.get(k, "") for k in _SPOT_REST}
    out: dict[str, object] = {}
    future = is_future_symbol(symbol)
    for key in _LINEAR_REST:
        value: object = truth.get(key, "")
        if key == "deliveryTime":
            value = str(future_delivery_ms(symbol) or 0) if future else "0"
        elif key == "fundingIntervalHour" and future:
            value = ""
        out[key] = value
        if key == "openInterestValue" and category == "linear":
            oi, oiv = truth.get("openInterest", "0"), truth.get("openInterestValue", "0")
            out["singleOpenInterest"] = _half(oi)
            out["singleOpenInterestValue"] = _half(oiv)
    return out


def _half(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        return text
    decimals = len(text.partition(".")[2])
    return f"{value / 2:.{decimals}f}"


def _symbols_of(call: Call, category: str, symbol: str | None) -> list[str]:
    names = call.emu.market.symbols(category)
    if symbol is None:
        return names
    if symbol not in names:
        raise OpError(10001, _NOT_SUPPORTED)
    return [symbol]


def _tickers(call: Call) -> tuple[object, object]:
    params = call.params
    category = category_param(params, _CATEGORIES)
    symbol = text_param(params, "symbol")
    names = _symbols_of(call, category, symbol)
    if category == "option":
        base = text_param(params, "baseCoin")
        if symbol is None and base is None:
            raise OpError(10001, "params error: symbol or baseCoin is required for option")
        if base is not None:
            names = [n for n in names if n.split("-", 1)[0] == base]
    return {"category": category, "list": [ticker_item(call, category, n) for n in names]}, {}


# -- order book ----------------------------------------------------------------------------------


def _limit(params: Mapping[str, Any], default: int, most: int) -> int:
    """``limit`` (``default`` if absent) within ``1..most``, else 10001 (market endpoints do
    not cut a bigger one down)."""
    value = int_param(params, "limit")
    limit = default if value is None else value
    if not 1 <= limit <= most:
        raise OpError(10001, "params error: limit invalid")
    return limit


def _orderbook(call: Call) -> tuple[object, object]:
    params = call.params
    category = category_param(params, _CATEGORIES)
    symbol = text_param(params, "symbol", required=True)
    assert symbol is not None
    _symbols_of(call, category, symbol)
    default, most = {"spot": (1, 1000), "option": (1, 25)}.get(category, (25, 1000))
    limit = _limit(params, default, most)
    market = call.emu.symbol_market(category, symbol)
    feed = call.emu.venue.feed(category)
    name = f"orderbook.{25 if category == 'option' else 1000}.{symbol}"
    spec = market.spec
    pub = feed.books.get(name)
    if isinstance(pub, BookPublisher) and not isinstance(pub, FullBookPublisher):
        bids, asks = pub.bids[:limit], pub.asks[:limit]
        u, seq, cts = pub.u, pub.seq, pub.cts
    else:
        book = market.book
        bids, asks = book.depth(limit)
        u, seq, cts = feed.idle_book_u(name, book.version), book.seq, book.last_change_ms
    return {
        "s": symbol,
        "a": [[spec.price_str(p), spec.qty_str(q)] for p, q in asks],
        "b": [[spec.price_str(p), spec.qty_str(q)] for p, q in bids],
        "ts": call.now_ms,
        "u": u,
        "seq": seq,
        "cts": cts,
    }, {}


# -- trades --------------------------------------------------------------------------------------


def _recent_trades(call: Call) -> tuple[object, object]:
    params = call.params
    category = category_param(params, _CATEGORIES)
    symbol = text_param(params, "symbol", required=category != "option")
    if symbol is None:
        base = text_param(params, "baseCoin") or "BTC"
        names = [n for n in call.emu.market.symbols(category) if n.split("-", 1)[0] == base]
    else:
        names = _symbols_of(call, category, symbol)
    default, most = (60, 60) if category == "spot" else (500, 1000)
    limit = _limit(params, default, most)
    items: list[tuple[int, dict[str, object]]] = []
    for name in names:
        market = call.emu.symbol_market(category, name)
        option = _option_extras(call, name) if category == "option" else None
        for trade in market.recent_trades(limit):
            item: dict[str, object] = {
                "execId": trade["i"],
                "symbol": trade["s"],
                "price": trade["p"],
                "size": trade["v"],
                "side": trade["S"],
                "time": str(trade["T"]),
                "isBlockTrade": trade.get("BT", False),
                "isRPITrade": trade.get("RPI", False),
                "seq": str(trade.get("seq", "")),
            }
            if option is not None:
                item.update(option)
            ts = trade["T"]
            items.append((ts if isinstance(ts, int) else 0, item))
    items.reverse()  # newest first (stable for equal times)
    items.sort(key=lambda pair: pair[0], reverse=True)
    return {"category": category, "list": [item for _, item in items[:limit]]}, {}


def _option_extras(call: Call, symbol: str) -> dict[str, object]:
    truth = call.emu.ticker_truth("option", symbol)
    return {
        "mP": truth.get("markPrice", ""),
        "iP": truth.get("indexPrice", ""),
        "mIv": truth.get("markPriceIv", ""),
        "iv": truth.get("markPriceIv", ""),
    }


# -- klines --------------------------------------------------------------------------------------


def _filled(market: SymbolMarket, interval: str) -> Iterator[Candle]:
    """Closed candles (gaps filled with flat ones) and the open one, oldest first."""
    candles = market.candles
    scale = candles.time_scale
    previous: Candle | None = None
    for candle in (*candles.history[interval], candles.current[interval]):
        if previous is not None:
            start = previous.end + 1
            while start < candle.start:
                s, e = interval_bounds(interval, start, scale)
                price = previous.close
                yield Candle(interval, s, e, price, price, price, price)
                start = e + 1
        yield candle
        previous = candle


def _kline(call: Call) -> tuple[object, object]:
    params = call.params
    category = category_param(params, ("spot", "linear", "inverse"), default="linear")
    symbol = text_param(params, "symbol", required=True)
    interval = text_param(params, "interval", required=True)
    assert symbol is not None and interval is not None
    if interval not in INTERVALS:
        raise OpError(10001, "params error: interval invalid")
    _symbols_of(call, category, symbol)
    start = int_param(params, "start")
    end = int_param(params, "end")
    limit = _limit(params, 200, 1000)
    market = call.emu.symbol_market(category, symbol)
    chosen = [
        c
        for c in _filled(market, interval)
        if (start is None or c.start >= start) and (end is None or c.start <= end)
    ]
    chosen = chosen[:limit] if start is not None and end is None else chosen[-limit:]
    spec = market.spec
    rows = [
        [
            str(c.start),
            fmt_strip(c.open * spec.tick, spec.price_dp),
            fmt_strip(c.high * spec.tick, spec.price_dp),
            fmt_strip(c.low * spec.tick, spec.price_dp),
            fmt_strip(c.close * spec.tick, spec.price_dp),
            fmt_strip(c.volume * spec.lot, spec.qty_dp),
            fmt_strip(c.turnover, spec.notional_dp),
        ]
        for c in reversed(chosen)
    ]
    return {"symbol": symbol, "category": category, "list": rows}, {}


ENDPOINTS: dict[str, Callable[[Call], tuple[object, object]]] = {
    "/v5/market/time": _time,
    "/v5/market/instruments-info": _instruments,
    "/v5/market/tickers": _tickers,
    "/v5/market/orderbook": _orderbook,
    "/v5/market/recent-trade": _recent_trades,
    "/v5/market/kline": _kline,
}
