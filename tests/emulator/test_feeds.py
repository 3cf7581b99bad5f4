"""publicTrade, kline, allLiquidation and option topics: shapes and agreement with the book."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import pytest

from hean.emulator import Emulator
from hean.emulator.candles import interval_bounds
from hean.emulator.market import MarketParams
from hean.emulator.matching import Order, OrderType, Side

from .conftest import Client, connect, example, running, same_shape, until

BTC = {"linear": ("BTCUSDT",), "spot": ("BTCUSDT",)}


async def received(emu: Emulator, c: Client, index: int = 0) -> list[dict[str, Any]]:
    info = emu.live_connections()[index]
    await until(lambda: len(c.listener.all_data) == sum(info.sent_by_topic.values()))
    return list(c.listener.all_data)


def trade_like_example(trade: dict[str, Any], spot: bool) -> None:
    expected = dict(example("public_trade.json")["data"][0])
    expected["RPI"] = False  # documented field the example predates
    if spot:
        del expected["L"]  # tick direction: perpetuals and futures only
    same_shape(trade, expected)


@pytest.mark.parametrize("category", ["linear", "spot"])
async def test_trades_shape_order_and_truth(category: str) -> None:
    async with running(symbols=BTC, auto_tick=False, ticker_interval=0.1) as emu:
        c = await connect(emu, category)
        await c.subscribe("publicTrade.BTCUSDT")
        emu.tick(category, steps=30)
        msgs = await received(emu, c)
        assert msgs, "trades flow"
        trades: list[dict[str, Any]] = []
        for msg in msgs:
            assert list(msg) == ["topic", "type", "ts", "data"] and msg["type"] == "snapshot"
            assert all(t["T"] <= msg["ts"] for t in msg["data"])
            trades += msg["data"]
        assert any(len(m["data"]) > 1 for m in msgs)  # several trades per message
        for t in trades:
            trade_like_example(t, spot=category == "spot")
            assert t["s"] == "BTCUSDT" and t["S"] in ("Buy", "Sell") and Decimal(t["v"]) > 0
        seqs = [t["seq"] for t in trades]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # match order
        assert [t["T"] for t in trades] == sorted(t["T"] for t in trades)
        assert emu.trades_truth(category, "BTCUSDT", len(trades)) == trades
        ids = [t["i"] for t in trades]
        assert len(set(ids)) == len(ids)
        if category == "spot":
            assert all(i.isdigit() for i in ids)


async def test_user_order_moves_book_trades_and_ticker() -> None:
    """A taker order entered like the trade side will: its fills are the public trades, the
    book loses exactly that liquidity, the delta shows it and the ticker's lastPrice follows."""
    quiet = MarketParams(activity=0.0)
    async with running(symbols=BTC, auto_tick=False, ticker_interval=0.01, market=quiet) as emu:
        c = await connect(emu, "linear")
        await c.subscribe("publicTrade.BTCUSDT", "orderbook.50.BTCUSDT", "tickers.BTCUSDT")
        seen = len(await received(emu, c))
        sym = emu.symbol_market("linear", "BTCUSDT")
        bids, asks = emu.book_truth("linear", "BTCUSDT", 3)
        ask_lots = [sym.spec.parse_qty(q) for _, q in asks]
        want = ask_lots[0] + ask_lots[1] // 2  # the whole best level and half the next
        order = Order("user-1", "acct-7", Side.BUY, want, None, OrderType.MARKET)
        fills = sym.submit(order)
        assert sum(f.qty for f in fills) == want and order.leaves == 0
        emu.tick("linear")
        emu.flush("linear")
        msgs = (await received(emu, c))[seen:]
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for m in msgs:
            by_topic.setdefault(m["topic"], []).append(m)
        [trade_msg] = by_topic["publicTrade.BTCUSDT"]
        trades = trade_msg["data"]
        assert [(t["p"], t["v"], t["S"]) for t in trades] == [
            (sym.spec.price_str(f.price), sym.spec.qty_str(f.qty), "Buy") for f in fills
        ]
        new_bids, new_asks = emu.book_truth("linear", "BTCUSDT", 3)
        assert new_bids == bids
        left = ask_lots[1] - ask_lots[1] // 2
        assert new_asks[0] == (asks[1][0], sym.spec.qty_str(left))
        [delta] = by_topic["orderbook.50.BTCUSDT"]
        assert delta["type"] == "delta" and delta["data"]["b"] == []
        assert delta["data"]["a"][:2] == [[asks[0][0], "0"], [asks[1][0], sym.spec.qty_str(left)]]
        [ticker] = by_topic["tickers.BTCUSDT"]
        assert ticker["data"]["lastPrice"] == trades[-1]["p"]
        assert ticker["data"]["ask1Price"] == asks[1][0]
        assert ticker["data"]["ask1Size"] == sym.spec.qty_str(left)
        assert emu.ticker_truth("linear", "BTCUSDT")["lastPrice"] == trades[-1]["p"]


def test_interval_bounds() -> None:
    ts = int(dt.datetime(2024, 2, 14, 13, 7, 30, tzinfo=dt.UTC).timestamp() * 1000)

    def at(*args: int) -> int:
        return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)

    assert interval_bounds("1", ts) == (at(2024, 2, 14, 13, 7), at(2024, 2, 14, 13, 8) - 1)
    assert interval_bounds("15", ts)[0] == at(2024, 2, 14, 13, 0)
    assert interval_bounds("240", ts)[0] == at(2024, 2, 14, 12, 0)
    assert interval_bounds("D", ts) == (at(2024, 2, 14), at(2024, 2, 15) - 1)
    assert interval_bounds("W", ts) == (at(2024, 2, 12), at(2024, 2, 19) - 1)  # Monday
    assert interval_bounds("M", ts) == (at(2024, 2, 1), at(2024, 3, 1) - 1)  # leap February
    assert interval_bounds("1", ts, 0.001) == (ts - ts % 60, ts - ts % 60 + 59)


async def test_klines_confirm_and_equal_the_trades() -> None:
    fast = MarketParams(kline_time_scale=1 / 600)  # a kline "minute" lasts 100 ms
    async with running(
        symbols=BTC, auto_tick=False, ticker_interval=0.01, kline_interval=0.05, market=fast
    ) as emu:
        c = await connect(emu, "linear")
        await c.subscribe("kline.1.BTCUSDT", "kline.3.BTCUSDT", "publicTrade.BTCUSDT")
        emu.tick("linear", steps=200)  # 2 s: 20 one-"minute" candles
        msgs = await received(emu, c)
        trades = [t for m in msgs if m["topic"] == "publicTrade.BTCUSDT" for t in m["data"]]
        candles = [m for m in msgs if m["topic"] == "kline.1.BTCUSDT"]
        for m in candles:
            same_shape(m, example("kline.json"))
            assert list(m) == ["topic", "data", "ts", "type"]
        confirmed = [m["data"][0] for m in candles if m["data"][0]["confirm"]]
        assert 18 <= len(confirmed) <= 20
        starts = [k["start"] for k in confirmed]
        assert all(b == a + 100 for a, b in itertools.pairwise(starts))
        prev_close = confirmed[0]["close"]
        for k in confirmed[1:]:
            assert k["end"] == k["start"] + 99 and k["interval"] == "1"
            inside = [t for t in trades if k["start"] <= t["T"] <= k["end"]]
            if inside:
                prices = [Decimal(t["p"]) for t in inside]
                assert Decimal(k["open"]) == prices[0] and Decimal(k["close"]) == prices[-1]
                assert Decimal(k["high"]) == max(prices) and Decimal(k["low"]) == min(prices)
                assert Decimal(k["volume"]) == sum(Decimal(t["v"]) for t in inside)
                turnover = sum(Decimal(t["p"]) * Decimal(t["v"]) for t in inside)
                assert Decimal(k["turnover"]) == turnover
                assert k["timestamp"] == inside[-1]["T"]
            else:
                assert k["open"] == k["close"] == k["high"] == k["low"] == prev_close
                assert k["volume"] == "0"
            prev_close = k["close"]
        updates = [m["data"][0] for m in candles if not m["data"][0]["confirm"]]
        assert len(updates) >= 35  # every 50 ms
        three = [m["data"][0] for m in msgs if m["topic"] == "kline.3.BTCUSDT"]
        assert sum(k["confirm"] for k in three) in (6, 7)


async def test_liquidations_shape_and_cadence() -> None:
    busy = MarketParams(liquidations_per_s=20.0)
    async with running(symbols=BTC, auto_tick=False, ticker_interval=0.1, market=busy) as emu:
        c = await connect(emu, "linear")
        await c.subscribe("allLiquidation.BTCUSDT")
        emu.tick("linear", steps=30)  # 3 s
        msgs = await received(emu, c)
        assert 4 <= len(msgs) <= 6
        assert all((b["ts"] - a["ts"]) % 500 == 0 for a, b in itertools.pairwise(msgs))
        items = [x for m in msgs for x in m["data"]]
        assert len(items) > 20
        for m in msgs:
            same_shape(m, example("liquidation.json"))
            assert list(m) == ["topic", "type", "ts", "data"]
        for x in items:
            assert x["S"] in ("Buy", "Sell") and Decimal(x["v"]) > 0 and Decimal(x["p"]) > 0
            assert x["T"] <= msgs[-1]["ts"]
        s = await connect(emu, "spot")
        ack = await s.subscribe("allLiquidation.BTCUSDT")
        assert ack["success"] is False  # not a spot topic


async def test_option_tickers_and_books(emu: Emulator) -> None:
    symbol = "BTC-26JUN26-60000-C-USDT"
    c = await connect(emu, "option")
    ack = await c.subscribe(
        f"tickers.{symbol}", f"orderbook.25.{symbol}", f"orderbook.100.{symbol}"
    )
    same_shape(ack, example("subscribe_ok_option.json"))
    assert ack["success"] is True and len(ack["data"]["successTopics"]) == 3
    emu.tick("option", steps=20)
    emu.flush("option")
    msgs = await received(emu, c)
    tickers = [m for m in msgs if m["topic"].startswith("tickers.")]
    assert len(tickers) == 21
    for m in tickers:
        same_shape(m, example("tickers_option.json"))
        assert m["type"] == "snapshot" and m["id"].startswith(f"tickers.{symbol}-")
        assert m["id"].endswith(f"-{m['ts']}")
    data = tickers[-1]["data"]
    assert data == emu.ticker_truth("option", symbol)
    bids, asks = emu.book_truth("option", symbol, 1)
    assert (data["bidPrice"], data["bidSize"]) == bids[0]
    assert (data["askPrice"], data["askSize"]) == asks[0]
    assert 0 < float(data["delta"]) < 1 and float(data["markPriceIv"]) > 0
    for depth in (25, 100):
        book: dict[str, dict[str, str]] = {"b": {}, "a": {}}
        u = None
        for m in (m for m in msgs if m["topic"] == f"orderbook.{depth}.{symbol}"):
            if m["type"] == "snapshot":
                book = {
                    "b": dict(map(tuple, m["data"]["b"])),
                    "a": dict(map(tuple, m["data"]["a"])),
                }
            else:
                assert m["data"]["u"] == u + 1
                for side in ("b", "a"):
                    for price, size in m["data"][side]:
                        if size == "0":
                            del book[side][price]
                        else:
                            book[side][price] = size
            u = m["data"]["u"]
            assert len(book["b"]) <= depth and len(book["a"]) <= depth
        want_b, want_a = emu.book_truth("option", symbol, depth)
        assert sorted(book["b"].items()) == sorted(want_b)
        assert sorted(book["a"].items()) == sorted(want_a)
    bad = await c.subscribe(f"orderbook.50.{symbol}", f"publicTrade.{symbol}", f"kline.1.{symbol}")
    assert bad["data"]["failTopics"] == [
        f"orderbook.50.{symbol}",
        f"publicTrade.{symbol}",
        f"kline.1.{symbol}",
    ]


async def test_kline_and_trade_topics_rejected_exactly(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    for bad in (
        "kline.2.BTCUSDT",
        "kline.1.NOPE",
        "kline.d.BTCUSDT",
        "publicTrade.NOPE",
        "allLiquidation.NOPE",
        "liquidation.BTCUSDT",
    ):
        ack = await c.subscribe(bad)
        assert ack["ret_msg"] == f"error:handler not found,topic:{bad}"
    ok = await c.subscribe("kline.D.BTCUSDT", "kline.W.ETHUSDT", "kline.M.SOLUSDT")
    assert ok["success"] is True
    s = await connect(emu, "spot")
    assert (await s.subscribe("kline.7.BTCUSDT"))["ret_msg"] == "Invalid symbol :[kline.7.BTCUSDT]"


async def test_user_resting_order_is_public_and_hit_by_takers() -> None:
    """A user's limit order rests in the same book: it shows in the public book, simulated
    takers trade with it, and the fill listeners see those fills."""
    async with running(symbols=BTC, auto_tick=False, ticker_interval=0.01) as emu:
        c = await connect(emu, "linear")
        await c.subscribe("orderbook.1.BTCUSDT")
        sym = emu.symbol_market("linear", "BTCUSDT")
        seen: list[tuple[str, str, dict[str, Any]]] = []
        sym.fill_listeners.append(lambda f, t: seen.append((f.maker.owner, f.taker.owner, t)))
        bid, ask = sym.book.best_bid(), sym.book.best_ask()
        assert bid is not None and ask is not None
        price = bid + 1 if ask - bid > 1 else bid
        order = Order("u-1", "acct-1", Side.BUY, 50 * sym.base_lots, price)
        assert sym.submit(order) == [] and order.is_open  # joins the best bid, rests
        emu.flush("linear")
        await until(lambda: len(c.listener.all_data) >= 2)
        top = c.listener.all_data[-1]["data"]["b"][0]
        level = sym.book.level_qty(Side.BUY, price)
        assert level >= order.leaves
        assert top == [sym.spec.price_str(price), sym.spec.qty_str(level)]
        for _ in range(2000):
            emu.tick("linear")
            if order.filled:
                break
        assert order.filled > 0, "simulated sellers hit the user's bid"
        mine = [(m, t, trade) for m, t, trade in seen if m == "acct-1"]
        assert mine and all(trade["S"] == "Sell" for _, _, trade in mine)
        assert sum(sym.spec.parse_qty(str(trade["v"])) for _, _, trade in mine) == order.filled
        assert sym.cancel("u-1") is (order if order.is_open else None)
