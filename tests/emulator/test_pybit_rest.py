"""The emulator's REST API judged by the official SDK: pybit 5.17's ``HTTP`` pointed at it by its
``endpoint`` attribute only (rest.md §10.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hean.emulator import Emulator

from .accounts_helpers import KEY, SECRET, private_client
from .conftest import running

pybit_ut = pytest.importorskip("pybit.unified_trading")
pybit_exceptions = pytest.importorskip("pybit.exceptions")


def session_for(emu: Emulator, **kw: Any) -> Any:
    session = pybit_ut.HTTP(testnet=True, api_key=KEY, api_secret=SECRET, **kw)
    session.endpoint = emu.rest_url()
    return session


async def call(fn: Callable[[], Any]) -> Any:
    """pybit is synchronous: run it in a thread so the emulator's loop keeps serving."""
    return await asyncio.wait_for(asyncio.to_thread(fn), 15)


async def test_pybit_reads_the_market() -> None:
    async with running(auto_tick=False) as emu:
        emu.tick("linear", 30)
        s = session_for(emu)
        now = await call(s.get_server_time)
        assert now["retCode"] == 0
        assert abs(int(now["result"]["timeSecond"]) * 1000 - emu.server_time_ms()) < 2000
        info = await call(lambda: s.get_instruments_info(category="linear"))
        symbols = [i["symbol"] for i in info["result"]["list"]]
        assert symbols == emu.market.symbols("linear")
        btc = info["result"]["list"][0]
        assert btc["priceFilter"]["tickSize"] == "0.10"
        assert btc["lotSizeFilter"]["qtyStep"] == "0.001"
        tickers = await call(lambda: s.get_tickers(category="linear", symbol="BTCUSDT"))
        [ticker] = tickers["result"]["list"]
        truth = emu.ticker_truth("linear", "BTCUSDT")
        assert ticker["lastPrice"] == truth["lastPrice"]
        assert ticker["markPrice"] == truth["markPrice"]
        book = await call(lambda: s.get_orderbook(category="linear", symbol="BTCUSDT", limit=5))
        bids, asks = emu.book_truth("linear", "BTCUSDT", 5)
        assert [tuple(x) for x in book["result"]["b"]] == bids
        assert [tuple(x) for x in book["result"]["a"]] == asks
        kline = await call(lambda: s.get_kline(category="linear", symbol="BTCUSDT", interval="1"))
        rows = kline["result"]["list"]
        assert rows and all(len(r) == 7 and all(isinstance(x, str) for x in r) for r in rows)
        assert [int(r[0]) for r in rows] == sorted((int(r[0]) for r in rows), reverse=True)
        trades = await call(
            lambda: s.get_public_trade_history(category="linear", symbol="BTCUSDT", limit=5)
        )
        truth_trades = emu.trades_truth("linear", "BTCUSDT", 5)
        assert [t["execId"] for t in trades["result"]["list"]] == [
            t["i"] for t in reversed(truth_trades)
        ]


async def test_pybit_trades_and_the_private_stream_sees_it() -> None:
    async with running(auto_tick=False, rest_page_size=2) as emu:
        ws = await private_client(emu)
        assert (await ws.subscribe("order", "execution", "position", "wallet"))["success"]
        s = session_for(emu)
        placed = []
        for i in range(5):
            r = await call(
                lambda i=i: s.place_order(
                    category="linear",
                    symbol="BTCUSDT",
                    side="Buy",
                    orderType="Limit",
                    qty="0.01",
                    price=str(1000 + i),
                    orderLinkId=f"pybit-{i}",
                )
            )
            assert r["retCode"] == 0, r
            placed.append(r["result"]["orderId"])
        # open orders, three pages of at most two, newest first
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await call(
                lambda c=cursor: s.get_open_orders(
                    category="linear", settleCoin="USDT", limit=50, cursor=c
                )
            )
            items = page["result"]["list"]
            if not items:
                break
            pages += 1
            assert len(items) <= 2
            seen += [o["orderId"] for o in items]
            cursor = page["result"]["nextPageCursor"]
            if not cursor:
                break
        assert seen == list(reversed(placed)) and pages == 3
        # a fill: execution, position and wallet agree with the emulator's truth
        r = await call(
            lambda: s.place_order(
                category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.02"
            )
        )
        assert r["retCode"] == 0
        market_id = r["result"]["orderId"]
        execs = await call(lambda: s.get_executions(category="linear", orderId=market_id))
        assert execs["result"]["list"]
        assert {e["orderId"] for e in execs["result"]["list"]} == {market_id}
        truth = emu.account(KEY)
        ids = {e["execId"] for e in truth.executions if e["orderId"] == market_id}
        assert {e["execId"] for e in execs["result"]["list"]} == ids
        positions = await call(lambda: s.get_positions(category="linear", symbol="BTCUSDT"))
        [pos] = positions["result"]["list"]
        true_pos = truth.position("linear", "BTCUSDT")
        assert true_pos is not None
        assert (pos["size"], pos["avgPrice"], pos["seq"]) == (
            true_pos["size"],
            true_pos["entryPrice"],
            true_pos["seq"],
        )
        assert pos["seq"] == max(e["seq"] for e in execs["result"]["list"])
        wallet = await call(lambda: s.get_wallet_balance(accountType="UNIFIED", coin="USDT"))
        [usdt] = wallet["result"]["list"][0]["coin"]
        assert usdt["walletBalance"] == truth.balances["USDT"]
        # amend and cancel one of the resting orders; the private stream shows all of it
        r = await call(
            lambda: s.amend_order(
                category="linear", symbol="BTCUSDT", orderLinkId="pybit-0", price="900"
            )
        )
        assert r["retCode"] == 0 and r["result"]["orderId"] == placed[0]
        r = await call(
            lambda: s.cancel_order(category="linear", symbol="BTCUSDT", orderId=placed[0])
        )
        assert r["retCode"] == 0
        gone = await call(lambda: s.get_open_orders(category="linear", orderId=placed[0]))
        [closed] = gone["result"]["list"]  # still there: in the recently-closed cache
        assert closed["orderStatus"] == "Cancelled"

        def pushed() -> list[tuple[str, str]]:
            return [
                (o["price"], o["orderStatus"])
                for m in ws.listener.all_data
                if m["topic"] == "order"
                for o in m["data"]
                if o["orderId"] == placed[0]
            ]

        await emu.wait_for(lambda: len(pushed()) == 3)
        assert pushed() == [("1000", "New"), ("900", "New"), ("900", "Cancelled")]
        topics = {m["topic"] for m in ws.listener.all_data}
        assert topics == {"order", "execution", "position", "wallet"}
        stream_execs = {
            e["execId"]: e["seq"]
            for m in ws.listener.all_data
            if m["topic"] == "execution"
            for e in m["data"]
        }
        assert stream_execs == {e["execId"]: e["seq"] for e in execs["result"]["list"]}
        ws.close()


async def test_pybit_business_and_auth_errors() -> None:
    async with running(auto_tick=False) as emu:
        s = session_for(emu)
        with pytest.raises(pybit_exceptions.InvalidRequestError) as info:
            await call(lambda: s.cancel_order(category="linear", symbol="BTCUSDT", orderId="x"))
        assert info.value.status_code == 110001
        wrong = pybit_ut.HTTP(testnet=True, api_key=KEY, api_secret="not-the-secret")
        wrong.endpoint = emu.rest_url()
        with pytest.raises(pybit_exceptions.InvalidRequestError) as info:
            await call(lambda: wrong.get_wallet_balance(accountType="UNIFIED"))
        assert info.value.status_code == 10004
        assert "error sign! origin_string[" in info.value.message
        unknown = pybit_ut.HTTP(testnet=True, api_key="nobody", api_secret="x")
        unknown.endpoint = emu.rest_url()
        with pytest.raises(pybit_exceptions.InvalidRequestError) as info:
            await call(lambda: unknown.get_positions(category="linear", symbol="BTCUSDT"))
        assert info.value.status_code == 10003
        emu.inject_rest_http(403)
        with pytest.raises(pybit_exceptions.FailedRequestError) as failed:
            await call(s.get_server_time)
        assert failed.value.status_code == 403
