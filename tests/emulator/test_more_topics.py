"""Dated futures tickers and the less common public topics (protocol.md §5.8), against fixtures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from hean.emulator import Emulator, EmulatorConfig
from hean.emulator.instruments import future_delivery_ms, is_future_symbol
from hean.emulator.ticker import FUTURES_FIELDS

from .conftest import Client, connect, example, running, same_shape

FUTURE = "BTCUSDT-25JUN27"
USDC_FUTURE = "BTC-31DEC27"


@pytest.fixture
async def femu() -> AsyncIterator[Emulator]:
    symbols = {"linear": ("BTCUSDT", FUTURE, USDC_FUTURE), "inverse": ("BTCUSD",)}
    async with running(auto_tick=False, symbols=symbols) as e:
        yield e


def test_future_symbols() -> None:
    assert is_future_symbol("BTCUSDT-26JUN26") and is_future_symbol("BTC-26DEC25")
    assert not is_future_symbol("BTCUSDT") and not is_future_symbol("BTC-31FEB26")
    assert not is_future_symbol("BTC-26JUN26-60000-C")
    assert future_delivery_ms("BTC-26DEC25") == 1766736000000  # 2025-12-26T08:00:00Z
    with pytest.raises(ValueError):
        EmulatorConfig(symbols={"spot": ("BTCUSDT-26JUN26",)})


@pytest.mark.parametrize("symbol", [FUTURE, USDC_FUTURE])
async def test_futures_ticker_snapshot_then_deltas(femu: Emulator, symbol: str) -> None:
    fixture = example("tickers_linear_futures_snapshot.json")
    assert tuple(fixture["data"]) == FUTURES_FIELDS
    c = await connect(femu, "linear")
    assert (await c.subscribe(f"tickers.{symbol}"))["success"] is True
    snap = await c.data()
    same_shape(snap, fixture)
    assert list(snap) == list(fixture)
    data = snap["data"]
    assert tuple(data) == FUTURES_FIELDS
    assert snap["type"] == "snapshot" and data["symbol"] == symbol
    assert data["nextFundingTime"] == "" and data["fundingRate"] == ""
    expected_day = {FUTURE: "2027-06-25", USDC_FUTURE: "2027-12-31"}[symbol]
    assert data["deliveryTime"] == f"{expected_day}T08:00:00Z"
    basis = Decimal(data["lastPrice"]) - Decimal(data["indexPrice"])
    assert Decimal(data["basis"]) == basis
    rate = Decimal(data["basisRate"])
    assert abs(rate - basis / Decimal(data["indexPrice"])) < Decimal("1e-8")
    assert (Decimal(data["basisRateYear"]) < 0) == (rate < 0)
    assert 30_000 < float(data["lastPrice"]) < 100_000

    femu.tick("linear", steps=50)
    deltas = [await c.data() for _ in range(50)]
    state = dict(data)
    for msg in deltas:
        assert msg["type"] == "delta" and set(msg) == set(fixture)
        assert isinstance(msg["cs"], int) and isinstance(msg["ts"], int)
        assert msg["data"]["symbol"] == symbol
        assert set(msg["data"]) <= set(FUTURES_FIELDS)
        assert all(isinstance(v, str) for v in msg["data"].values())
        state.update(msg["data"])
    assert state == femu.ticker_truth("linear", symbol)
    assert any("basis" in m["data"] for m in deltas)
    c.close()


async def _drain(c: Client) -> list[dict[str, Any]]:
    """Everything received once the emulator's pushes have arrived."""
    await asyncio.sleep(0.15)
    return c.drain_data()


def _numbers_like(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Same keys; strings where the example has strings, JSON numbers where it has numbers."""
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if isinstance(value, str):
            assert isinstance(actual[key], str), key
        else:
            assert isinstance(actual[key], int | float) and not isinstance(actual[key], bool), key


@pytest.mark.parametrize(("category", "symbol"), [("linear", "BTCUSDT"), ("spot", "BTCUSDT")])
async def test_price_limit(emu: Emulator, category: str, symbol: str) -> None:
    fixture = example("price_limit.json")
    c = await connect(emu, category)
    assert (await c.subscribe(f"priceLimit.{symbol}"))["success"] is True
    first = await c.data()
    same_shape(first, fixture)
    assert list(first) == list(fixture)  # no "type"
    emu.tick(category, steps=100)  # 1 s (10 ms a step): three pushes
    msgs = [first] + [m for m in await _drain(c) if m["topic"] == f"priceLimit.{symbol}"]
    assert len(msgs) >= 3
    truth = emu.ticker_truth(category, symbol)
    ref = Decimal(truth["markPrice"] if category == "linear" else truth["lastPrice"])
    for msg in msgs:
        same_shape(msg, fixture)
        data = msg["data"]
        assert data["symbol"] == symbol
        buy, sell = Decimal(data["buyLmt"]), Decimal(data["sellLmt"])
        assert sell < buy
    # the last band is +-5 % around the current reference price
    data = msgs[-1]["data"]
    assert abs(Decimal(data["buyLmt"]) / ref - Decimal("1.05")) < Decimal("0.002")
    assert abs(Decimal(data["sellLmt"]) / ref - Decimal("0.95")) < Decimal("0.002")
    c.close()


async def test_price_limit_inverse_and_not_on_option(emu: Emulator) -> None:
    c = await connect(emu, "inverse")
    assert (await c.subscribe("priceLimit.BTCUSD"))["success"] is True
    same_shape(await c.data(), example("price_limit.json"))
    ack = await c.subscribe("priceLimit.NOPEUSD")
    assert ack["ret_msg"] == "error:handler not found,topic:priceLimit.NOPEUSD"
    o = await connect(emu, "option")
    ack = await o.subscribe("priceLimit.BTC-26JUN26-60000-C-USDT")
    assert ack["success"] is False


async def test_insurance_snapshot_then_deltas(emu: Emulator) -> None:
    fixture = example("insurance.json")
    c = await connect(emu, "linear")
    assert (await c.subscribe("insurance.USDT", req_id="i"))["success"] is True
    snap = await c.data()
    assert snap["type"] == "snapshot" and list(snap) == list(fixture)
    same_shape({**snap, "type": "delta"}, fixture)
    pools = {item["symbols"] for item in snap["data"]}
    assert pools == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"}
    assert all(item["coin"] == "USDT" for item in snap["data"])
    emu.tick("linear", steps=1000)  # 10 s
    deltas = [m for m in await _drain(c) if m["topic"] == "insurance.USDT"]
    assert deltas
    state = {item["symbols"]: item for item in snap["data"]}
    for msg in deltas:
        same_shape(msg, fixture)
        assert msg["type"] == "delta" and 1 <= len(msg["data"]) <= len(pools)
        for item in msg["data"]:
            assert item["symbols"] in pools
            assert item["balance"] != state[item["symbols"]]["balance"]
            assert item["updateTime"] == str(msg["ts"])
            state[item["symbols"]] = item
    stamps = [m["ts"] for m in deltas]
    assert all(b - a >= 1000 for a, b in pairwise(stamps))
    # the inverse pool lives on the inverse endpoint
    ack = await c.subscribe("insurance.inverse")
    assert ack["ret_msg"] == "error:handler not found,topic:insurance.inverse"
    i = await connect(emu, "inverse")
    assert (await i.subscribe("insurance.inverse"))["success"] is True
    snap = await i.data()
    assert {(x["coin"], x["symbols"]) for x in snap["data"]} == {
        ("BTC", "BTCUSD"),
        ("ETH", "ETHUSD"),
    }


async def test_insurance_usdc_pool() -> None:
    symbols = {"linear": ("BTCUSDT", "BTC-26DEC25", FUTURE)}
    async with running(auto_tick=False, symbols=symbols) as e:
        c = await connect(e, "linear")
        assert (await c.subscribe("insurance.USDC", "insurance.USDT"))["success"] is True
        usdc, usdt = await c.data(), await c.data()
        assert [x["symbols"] for x in usdc["data"]] == ["BTC-26DEC25"]
        assert [x["symbols"] for x in usdt["data"]] == ["BTCUSDT", FUTURE]


async def test_adl_alert(emu: Emulator) -> None:
    fixture = example("adl_alert.json")
    c = await connect(emu, "linear")
    assert (await c.subscribe("adlAlert.USDT", "insurance.USDT"))["success"] is True
    first = await c.data()
    insurance = await c.data()
    emu.tick("linear", steps=300)  # 3 s
    later = await _drain(c)
    msgs = [first] + [m for m in later if m["topic"] == "adlAlert.USDT"]
    ins = {x["symbols"]: x["balance"] for x in insurance["data"]}
    for msg in later:
        if msg["topic"] == "insurance.USDT":
            ins.update({x["symbols"]: x["balance"] for x in msg["data"]})
    assert len(msgs) >= 3
    for msg in msgs:
        assert list(msg) == list(fixture) and msg["type"] == "snapshot"
        assert isinstance(msg["ts"], int)
        assert len(msg["data"]) == 5
        for item in msg["data"]:
            _numbers_like(item, fixture["data"][0])
            assert list(item) == list(fixture["data"][0])
            assert item["c"] == "USDT" and item["mb"] >= item["b"] > 0
            assert isinstance(item["adl_tt"], int) and isinstance(item["b"], float)
    last = {x["s"]: x["b"] for x in msgs[-1]["data"]}
    for symbol, balance in ins.items():
        assert abs(float(balance) - last[symbol]) < 1e-6
    i = await connect(emu, "inverse")
    assert (await i.subscribe("adlAlert.inverse"))["success"] is True
    assert {x["c"] for x in (await i.data())["data"]} == {"BTC", "ETH"}


async def test_system_status(emu: Emulator) -> None:
    fixture = example("system_status.json")
    assert emu.url("status").endswith("/v5/public/misc/status")
    c = await connect(emu, "status")
    ack = await c.subscribe("system.status", req_id="st")
    [info] = emu.live_connections("status")
    assert ack == {
        "success": True,
        "ret_msg": "",
        "conn_id": info.conn_id,
        "req_id": "st",
        "op": "subscribe",
    }
    first = await c.data()
    assert first["topic"] == "system.status" and first["data"] == []
    assert list(first) == list(fixture) and isinstance(first["ts"], int)
    ack = await c.subscribe("tickers.BTCUSDT")
    assert ack["ret_msg"] == "error:handler not found,topic:tickers.BTCUSDT"
    assert (await c.request({"op": "ping"}))["ret_msg"] == "pong"

    begin = emu.server_time_ms() + 3_600_000
    window_id = emu.announce_maintenance(begin, begin + 1_800_000, title="t06")
    msg = await c.data()
    same_shape(msg, fixture)
    assert list(msg) == list(fixture)
    [item] = msg["data"]
    assert list(item) == list(fixture["data"][0])
    assert item["id"] == window_id and item["state"] == "upcoming" and item["title"] == "t06"
    assert item["begin"] == str(begin) and item["end"] == str(begin + 1_800_000)
    # a late subscriber gets the pending windows at once
    late = await connect(emu, "status")
    await late.subscribe("system.status")
    assert [w["id"] for w in (await late.data())["data"]] == [window_id]
    # the same window moves on; once completed it is no longer pending
    emu.announce_maintenance(begin, begin + 1_800_000, window_id=window_id, state="ongoing")
    assert (await c.data())["data"][0]["state"] == "ongoing"
    emu.announce_maintenance(begin, begin + 1_800_000, window_id=window_id, state="completed")
    assert (await c.data())["data"][0]["state"] == "completed"
    assert [(await late.data())["data"][0]["state"] for _ in range(2)] == ["ongoing", "completed"]
    fresh = await connect(emu, "status")
    await fresh.subscribe("system.status")
    assert (await fresh.data())["data"] == []
    with pytest.raises(ValueError):
        emu.announce_maintenance(begin, begin + 1, state="soon")


@pytest.mark.parametrize("category", ["linear", "spot"])
async def test_orderbook_rpi(emu: Emulator, category: str) -> None:
    fixture = example("orderbook_rpi_delta.json")
    topic = "orderbook.rpi.BTCUSDT"
    c = await connect(emu, category)
    assert (await c.subscribe(topic))["success"] is True
    snap = await c.data()
    same_shape({**snap, "type": "delta"}, fixture)
    assert snap["type"] == "snapshot" and list(snap) == list(fixture)
    book: dict[str, dict[str, tuple[str, str]]] = {"b": {}, "a": {}}
    for side in "ba":
        assert len(snap["data"][side]) == 50
        for price, plain, rpi in snap["data"][side]:
            book[side][price] = (plain, rpi)
    u = snap["data"]["u"]
    emu.tick(category, steps=100)  # 1 s: about ten pushes
    deltas = [m for m in await _drain(c) if m["topic"] == topic]
    assert len(deltas) >= 5
    stamps = [snap["ts"]] + [m["ts"] for m in deltas]
    assert all(b - a >= 100 for a, b in pairwise(stamps))
    for msg in deltas:
        same_shape(msg, fixture)
        assert msg["type"] == "delta" and list(msg) == list(fixture)
        assert msg["data"]["u"] == u + 1
        u = msg["data"]["u"]
        for side in "ba":
            for price, plain, rpi in msg["data"][side]:
                if plain == "0" and rpi == "0":
                    book[side].pop(price, None)
                else:
                    book[side][price] = (plain, rpi)
    # the maintained book is the 50-level window, sizes split into non-RPI + RPI
    bids, asks = emu.book_truth(category, "BTCUSDT", 50)
    for side, truth in (("b", bids), ("a", asks)):
        assert len(book[side]) == 50
        got = {Decimal(p): Decimal(x) + Decimal(y) for p, (x, y) in book[side].items()}
        assert got == {Decimal(str(p)): Decimal(str(q)) for p, q in truth}
    rpi_levels = [v for side in "ba" for v in book[side].values() if v[1] != "0"]
    plain_only = [v for side in "ba" for v in book[side].values() if v[1] == "0"]
    assert rpi_levels and plain_only
    ack = await c.subscribe("orderbook.rpi.NOPE")
    assert ack["success"] is False


@pytest.mark.parametrize("category", ["linear", "spot"])
async def test_orderbook_full(emu: Emulator, category: str) -> None:
    fixture = example("orderbook_full_delta.json")
    topic = "orderbook.full.ETHUSDT"

    def apply(book: dict[str, dict[str, str]], msg: dict[str, Any]) -> None:
        if msg["data"]["u"] == 1:
            book["b"].clear()
            book["a"].clear()
        for side in "ba":
            for price, size in msg["data"][side]:
                if size == "0":
                    book[side].pop(price, None)
                else:
                    book[side][price] = size

    c = await connect(emu, category)
    assert (await c.subscribe(topic))["success"] is True
    first = await c.data()
    same_shape(first, fixture)
    assert first["type"] == "delta" and list(first) == list(fixture)
    assert first["data"]["u"] == 1
    bids, asks = emu.book_truth(category, "ETHUSDT")
    assert len(first["data"]["b"]) == len(bids) > 50
    assert len(first["data"]["a"]) == len(asks) > 50
    book: dict[str, dict[str, str]] = {"b": {}, "a": {}}
    apply(book, first)
    emu.tick(category, steps=100)  # 1 s: about five pushes
    msgs = [m for m in await _drain(c) if m["topic"] == topic]
    assert len(msgs) >= 3
    u = 1
    for msg in msgs:
        same_shape(msg, fixture)
        assert msg["type"] == "delta" and msg["data"]["u"] == u + 1
        u = msg["data"]["u"]
        apply(book, msg)
    bids, asks = emu.book_truth(category, "ETHUSDT")
    assert book["b"] == dict(bids) and book["a"] == dict(asks)
    # a new subscriber re-initialises the topic for everyone: u=1 with the whole book
    late = await connect(emu, category)
    await late.subscribe(topic)
    again = await late.data()
    assert again["data"]["u"] == 1 and again["type"] == "delta"
    mine = await c.data()
    assert mine == again
    assert not any(m["type"] == "snapshot" for m in c.listener.all_data if m["topic"] == topic)


async def test_tickers_lt(emu: Emulator) -> None:
    fixture = example("tickers_lt.json")
    c = await connect(emu, "spot")
    assert (await c.subscribe("tickers_lt.BTC3LUSDT", "tickers_lt.BTC3SUSDT"))["success"] is True
    first = await c.data()
    same_shape(first, fixture)
    assert list(first) == list(fixture) and list(first["data"]) == list(fixture["data"])
    assert first["data"]["symbol"] == "BTC3LUSDT" and first["type"] == "snapshot"
    await c.data()
    spot_start = Decimal(emu.ticker_truth("spot", "BTCUSDT")["lastPrice"])
    emu.tick("spot", steps=50)
    msgs = await _drain(c)
    longs = [m for m in msgs if m["topic"] == "tickers_lt.BTC3LUSDT"]
    shorts = [m for m in msgs if m["topic"] == "tickers_lt.BTC3SUSDT"]
    assert len(longs) == len(shorts) == 50
    for msg in longs + shorts:
        same_shape(msg, fixture)
        data = msg["data"]
        assert Decimal(data["lowPrice24h"]) <= Decimal(data["lastPrice"])
        assert Decimal(data["lastPrice"]) <= Decimal(data["highPrice24h"])
    move = Decimal(emu.ticker_truth("spot", "BTCUSDT")["lastPrice"]) / spot_start - 1
    long_move = Decimal(longs[-1]["data"]["lastPrice"]) / Decimal("0.5") - 1
    short_move = Decimal(shorts[-1]["data"]["lastPrice"]) / Decimal("0.5") - 1
    if move:
        assert (long_move > 0) == (move > 0) and (short_move > 0) == (move < 0)
    ack = await c.subscribe("tickers_lt.ETH3LUSDT")
    assert ack["success"] is False
    lin = await connect(emu, "linear")
    assert (await lin.subscribe("tickers_lt.BTC3LUSDT"))["success"] is False
