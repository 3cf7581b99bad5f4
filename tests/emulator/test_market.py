"""Ticker model and ticker streams: shapes, deltas, merging, determinism."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from hean.core.clock import ManualClock
from hean.emulator import Emulator, EmulatorConfig
from hean.emulator.config import DEFAULT_SYMBOLS
from hean.emulator.market import LINEAR_FIELDS, SPOT_FIELDS, Market, fmt_strip, fmt_units

from .conftest import connect, example, running, same_shape, until

NOW = 1_700_000_000_000


def test_formatting() -> None:
    assert fmt_units(6666660, 2) == "66666.60"
    assert fmt_units(5, 4) == "0.0005"
    assert fmt_units(-5, 4) == "-0.0005"
    assert fmt_units(123, 0) == "123"
    assert fmt_strip(5000, 6) == "0.005"
    assert fmt_strip(-20, 6) == "-0.00002"
    assert fmt_strip(2057500, 2) == "20575"
    assert fmt_strip(0, 4) == "0"


def test_model_deterministic() -> None:
    def run(seed: int) -> list[Any]:
        market = Market(DEFAULT_SYMBOLS, random.Random(seed), NOW)
        out: list[Any] = []
        for i in range(50):
            for cat in ("linear", "inverse", "spot"):
                for model in market.models(cat):
                    out.append((cat, model.spec.symbol, model.step(NOW + i * 100), model.cs))
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_symbols_independent_of_each_other() -> None:
    a = Market({"linear": ("BTCUSDT", "ETHUSDT")}, random.Random(3), NOW)
    b = Market({"linear": ("BTCUSDT", "ETHUSDT")}, random.Random(3), NOW)
    for _ in range(20):
        a.model("linear", "ETHUSDT").step(NOW)  # only a's ETH moves
    assert [a.model("linear", "BTCUSDT").step(NOW) for _ in range(20)] == [
        b.model("linear", "BTCUSDT").step(NOW) for _ in range(20)
    ]


@pytest.mark.parametrize("category", ["linear", "inverse"])
def test_deltas_realistic(category: str) -> None:
    market = Market(DEFAULT_SYMBOLS, random.Random(11), NOW)
    for model in market.models(category):
        assert tuple(model.truth) == LINEAR_FIELDS
        tick = Decimal(model.spec.tick).scaleb(-model.spec.price_dp)
        with_last = 0
        steps = 2000
        for i in range(steps):
            before = dict(model.truth)
            changes = model.step(NOW + i * 100)
            assert changes, "every delta carries at least one field"
            assert changes == {k: v for k, v in model.truth.items() if before[k] != v}
            with_last += "lastPrice" in changes
            truth = model.truth
            for key in ("lastPrice", "markPrice", "bid1Price", "ask1Price"):
                assert Decimal(truth[key]) % tick == 0, (key, truth[key])
            assert Decimal(truth["bid1Price"]) < Decimal(truth["ask1Price"])
            assert Decimal(truth["lowPrice24h"]) <= Decimal(truth["lastPrice"])
            assert Decimal(truth["lastPrice"]) <= Decimal(truth["highPrice24h"])
        assert 0.20 <= with_last / steps <= 0.35, with_last / steps


def test_start_prices_sane() -> None:
    market = Market(DEFAULT_SYMBOLS, random.Random(1), NOW)
    btc = float(market.model("linear", "BTCUSDT").truth["lastPrice"])
    eth = float(market.model("spot", "ETHUSDT").truth["lastPrice"])
    doge = market.model("linear", "DOGEUSDT").truth["lastPrice"]
    assert 50_000 < btc < 70_000 and 2_500 < eth < 3_500
    assert len(doge.split(".")[1]) == 5
    assert tuple(market.model("spot", "BTCUSDT").truth) == SPOT_FIELDS
    odd = Market({"linear": ("ZZZUSDT",)}, random.Random(1), NOW).model("linear", "ZZZUSDT")
    assert float(odd.truth["lastPrice"]) > 0


async def test_linear_snapshot_then_deltas(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    await c.subscribe("tickers.BTCUSDT", "tickers.ETHUSDT")
    snap = await c.data()
    same_shape(snap, example("tickers_linear_snapshot.json"))
    assert list(snap) == ["topic", "type", "data", "cs", "ts"]
    assert snap["type"] == "snapshot" and snap["data"]["symbol"] == "BTCUSDT"
    await c.data()
    emu.tick("linear", steps=200)
    deltas = [await c.data() for _ in range(400)]
    delta_example = example("tickers_linear_delta.json")
    snapshot_keys = set(example("tickers_linear_snapshot.json")["data"])
    for msg in deltas:
        assert set(msg) == set(delta_example) and msg["type"] == "delta"
        assert isinstance(msg["cs"], int) and isinstance(msg["ts"], int)
        data = msg["data"]
        assert data["symbol"] == msg["topic"].split(".", 1)[1]
        assert set(data) <= snapshot_keys and len(data) >= 2
        assert all(isinstance(v, str) for v in data.values())
        assert len(data) < len(snapshot_keys)  # partial
    share = sum("lastPrice" in m["data"] for m in deltas) / len(deltas)
    assert share < 0.4, share  # most deltas carry no lastPrice
    cs = [m["cs"] for m in deltas if m["topic"] == "tickers.BTCUSDT"]
    assert cs == sorted(cs) and len(set(cs)) == len(cs)


async def _merged(emu: Emulator, category: str, symbol: str, ticks: int) -> dict[str, str]:
    c = await connect(emu, category)
    await c.subscribe(f"tickers.{symbol}")
    state: dict[str, str] = {}
    snap = await c.data()
    state = dict(snap["data"])
    emu.tick(category, steps=ticks)
    for _ in range(ticks):
        msg = await c.data()
        if msg["type"] == "snapshot":
            state = dict(msg["data"])
        else:
            state.update(msg["data"])
    return state


@pytest.mark.parametrize(("category", "symbol"), [("linear", "SOLUSDT"), ("inverse", "BTCUSD")])
async def test_merge_equals_truth(emu: Emulator, category: str, symbol: str) -> None:
    state = await _merged(emu, category, symbol, 300)
    assert state == emu.ticker_truth(category, symbol)


async def test_merge_equals_truth_live(live_emu: Emulator) -> None:
    c = await connect(live_emu, "linear")
    await c.subscribe("tickers.BTCUSDT")
    state: dict[str, str] = {}

    def merged_matches() -> bool:
        while not c.listener.data.empty():
            msg = c.listener.data.get_nowait()
            if msg["type"] == "snapshot":
                state.clear()
            state.update(msg["data"])
        return len(c.listener.all_data) > 20 and state == live_emu.ticker_truth("linear", "BTCUSDT")

    await until(merged_matches, timeout=5)


async def test_spot_snapshot_only(emu: Emulator) -> None:
    c = await connect(emu, "spot")
    await c.subscribe("tickers.BTCUSDT")
    emu.tick("spot", steps=30)
    msgs = [await c.data() for _ in range(31)]
    expected = example("tickers_spot.json")
    for msg in msgs:
        same_shape(msg, expected)
        assert list(msg) == ["topic", "ts", "type", "cs", "data"]
        assert msg["type"] == "snapshot" and tuple(msg["data"]) == SPOT_FIELDS
    assert msgs[-1]["data"] == emu.ticker_truth("spot", "BTCUSDT")


async def test_same_seed_same_frames() -> None:
    async def first_frames(seed: int) -> list[bytes]:
        cfg = EmulatorConfig(seed=seed, auto_tick=False, latency=0.0)
        async with Emulator(cfg, clock=ManualClock()) as emu:
            c = await connect(emu, "linear")
            await c.subscribe("tickers.BTCUSDT")
            emu.tick("linear", steps=49)
            await until(lambda: len(c.listener.all_data) >= 50)
            return c.listener.raw[:51]  # ack + 50 data frames

    a, b, other = await first_frames(5), await first_frames(5), await first_frames(6)
    assert a == b
    assert a[1:] != other[1:]


async def test_live_push_rate() -> None:
    async with running(ticker_interval=0.02, spot_ticker_interval=0.05) as emu:
        lin = await connect(emu, "linear")
        spot = await connect(emu, "spot")
        await lin.subscribe("tickers.BTCUSDT")
        await spot.subscribe("tickers.BTCUSDT")
        lin.drain_data()
        spot.drain_data()
        await until(lambda: len(lin.listener.all_data) >= 15, timeout=3)
        n_lin, n_spot = len(lin.listener.all_data), len(spot.listener.all_data)
        assert n_spot < n_lin


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="ticker_interval"):
        EmulatorConfig(ticker_interval=0)
    with pytest.raises(ValueError, match="port"):
        EmulatorConfig(port=70000)
    with pytest.raises(ValueError, match="unknown or data-less category"):
        EmulatorConfig(symbols={"option": ("BTC-1",)})
    with pytest.raises(ValueError, match="invalid symbol"):
        EmulatorConfig(symbols={"linear": ("btcusdt",)})
    with pytest.raises(ValueError, match="not a string"):
        EmulatorConfig(symbols={"linear": "BTCUSDT"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="duplicates"):
        EmulatorConfig(symbols={"linear": ("BTCUSDT", "BTCUSDT")})
    with pytest.raises(ValueError, match="idle_timeout"):
        EmulatorConfig(idle_timeout=-1)
    with pytest.raises(ValueError, match="latency"):
        EmulatorConfig(latency=float("nan"))
    cfg = EmulatorConfig(symbols={"linear": ["ABCUSDT"]})  # type: ignore[dict-item]
    assert cfg.symbols == {"linear": ("ABCUSDT",)}
    assert cfg.interval_for("spot") == cfg.ticker_interval


async def test_urls_and_lifecycle() -> None:
    emu = Emulator(EmulatorConfig(auto_tick=False))
    with pytest.raises(RuntimeError):
        _ = emu.port
    await emu.start()
    try:
        assert emu.url("spot") == f"ws://127.0.0.1:{emu.port}/v5/public/spot"
        with pytest.raises(ValueError):
            emu.url("futures")
        c = await connect(emu, "inverse")
        assert (await c.request({"op": "ping"}))["ret_msg"] == "pong"
    finally:
        await emu.stop()
    await c.wait_closed()
    assert emu.connections[0].close_reason == "server_stopped"
