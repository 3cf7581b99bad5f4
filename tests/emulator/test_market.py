"""Market model and ticker streams: determinism, tickers derived from the book, merging."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from hean.core.clock import ManualClock
from hean.emulator import Emulator, EmulatorConfig
from hean.emulator.config import DEFAULT_SYMBOLS
from hean.emulator.instruments import fmt_strip, fmt_units, instrument_spec
from hean.emulator.market import Market, MarketParams
from hean.emulator.ticker import LINEAR_FIELDS, SPOT_FIELDS

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


def test_instrument_ticks_and_lots() -> None:
    btc = instrument_spec("linear", "BTCUSDT", random.Random(1))
    assert btc.price_str(600001) == "60000.10" and btc.qty_str(5) == "0.005"
    assert btc.parse_price("60000.1") == 600001 and btc.parse_qty("0.005") == 5
    for bad in ("60000.15", "0", "-1", "1e5", "abc", ""):
        with pytest.raises(ValueError):
            btc.parse_price(bad)
    inverse = instrument_spec("inverse", "BTCUSD", random.Random(1))
    assert inverse.price_str(120001) == "60000.50"  # tick 0.50
    assert inverse.notional(120000, 60000) == 10**8  # 60000 USD at 60000 = 1 BTC
    assert btc.notional(600000, 1000) == 60000 * 10**5  # 1 BTC at 60000, 5 decimals


def _run(seed: int, quanta: int = 200) -> list[Any]:
    market = Market(DEFAULT_SYMBOLS, random.Random(seed), NOW)
    out: list[Any] = []
    for i in range(quanta):
        for cat in market.categories():
            for sym in market.markets(cat):
                sym.advance(NOW + 10 * (i + 1), 0.01)
    for cat in market.categories():
        for sym in market.markets(cat):
            out.append((cat, sym.symbol, sym.book.depth(20), sym.recent_trades(), sym.book.seq))
    return out


def test_model_deterministic() -> None:
    assert _run(7) == _run(7)
    assert _run(7) != _run(8)


def test_symbols_independent_of_each_other() -> None:
    a = Market({"linear": ("BTCUSDT", "ETHUSDT")}, random.Random(3), NOW)
    b = Market({"linear": ("BTCUSDT", "ETHUSDT")}, random.Random(3), NOW)
    for i in range(50):
        a.symbol("linear", "ETHUSDT").advance(NOW + i, 0.01)  # only a's ETH moves
    for i in range(50):
        a.symbol("linear", "BTCUSDT").advance(NOW + i, 0.01)
        b.symbol("linear", "BTCUSDT").advance(NOW + i, 0.01)
    assert a.symbol("linear", "BTCUSDT").book.depth() == b.symbol("linear", "BTCUSDT").book.depth()


def test_book_shape_is_realistic() -> None:
    market = Market({"linear": ("BTCUSDT",)}, random.Random(2), NOW)
    sym = market.symbol("linear", "BTCUSDT")
    for i in range(3000):
        sym.advance(NOW + 10 * (i + 1), 0.01)
        bid, ask = sym.book.best_bid(), sym.book.best_ask()
        assert bid is not None and ask is not None and bid < ask
        assert ask - bid <= 40, (bid, ask)  # the touch stays tight
    bids, asks = sym.book.depth()
    assert len(bids) > 150 and len(asks) > 150  # deep enough to exercise 200-level windows
    assert sym.trade_count >= 100  # takers trade
    params = MarketParams(activity=0.0)
    quiet = Market({"linear": ("BTCUSDT",)}, random.Random(2), NOW, params).symbol(
        "linear", "BTCUSDT"
    )
    before = quiet.book.depth()
    quiet.advance(NOW + 10, 0.01)
    assert quiet.book.depth() == before and quiet.trade_count == 0


@pytest.mark.parametrize("category", ["linear", "inverse"])
def test_deltas_realistic(category: str) -> None:
    emu = Emulator(EmulatorConfig(auto_tick=False), clock=ManualClock())
    feed = emu.venue.feed(category)
    for symbol in emu.market.symbols(category):
        feed.activate(symbol)
    with_last = 0
    steps = 400
    for state in feed.tickers.values():
        assert tuple(state.truth) == LINEAR_FIELDS
    for _ in range(steps):
        before = {s: (dict(t.truth), t.cs) for s, t in feed.tickers.items()}
        feed.tick(1)
        for symbol, state in feed.tickers.items():
            spec = feed.markets[symbol].spec
            tick = Decimal(spec.tick).scaleb(-spec.price_dp)
            old, cs = before[symbol]
            changes = {k: v for k, v in state.truth.items() if old[k] != v}
            assert changes, "every delta carries at least one field"
            assert state.cs > cs
            with_last += "lastPrice" in changes
            truth = state.truth
            for key in ("lastPrice", "markPrice", "bid1Price", "ask1Price"):
                assert Decimal(truth[key]) % tick == 0, (key, truth[key])
            assert Decimal(truth["bid1Price"]) < Decimal(truth["ask1Price"])
            assert Decimal(truth["lowPrice24h"]) <= Decimal(truth["lastPrice"])
            assert Decimal(truth["lastPrice"]) <= Decimal(truth["highPrice24h"])
            # top of book and last trade come from the book and the trade feed
            (bid,), (ask,) = emu.book_truth(category, symbol, 1)
            assert (truth["bid1Price"], truth["bid1Size"]) == bid
            assert (truth["ask1Price"], truth["ask1Size"]) == ask
            trades = emu.trades_truth(category, symbol, 1)
            if trades:
                assert truth["lastPrice"] == trades[-1]["p"]
                assert truth["tickDirection"] == trades[-1]["L"]
    share = with_last / (steps * len(feed.tickers))
    assert 0.12 <= share <= 0.45, share


def test_start_prices_sane() -> None:
    emu = Emulator(EmulatorConfig(auto_tick=False), clock=ManualClock())
    btc = float(emu.ticker_truth("linear", "BTCUSDT")["lastPrice"])
    eth = float(emu.ticker_truth("spot", "ETHUSDT")["lastPrice"])
    doge = emu.ticker_truth("linear", "DOGEUSDT")["lastPrice"]
    assert 50_000 < btc < 70_000 and 2_500 < eth < 3_500
    assert len(doge.split(".")[1]) == 5
    assert tuple(emu.ticker_truth("spot", "BTCUSDT")) == SPOT_FIELDS
    odd = Emulator(EmulatorConfig(symbols={"linear": ("ZZZUSDT",)}, auto_tick=False))
    assert float(odd.ticker_truth("linear", "ZZZUSDT")["lastPrice"]) > 0


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
        EmulatorConfig(symbols={"futures": ("BTCUSDT",)})
    with pytest.raises(ValueError, match="invalid option symbol"):
        EmulatorConfig(symbols={"option": ("BTC-1",)})
    with pytest.raises(ValueError, match="book_intervals"):
        EmulatorConfig(book_intervals={30: 0.1})
    with pytest.raises(ValueError, match="market_step"):
        EmulatorConfig(market_step=0)
    with pytest.raises(ValueError, match="orders_per_side"):
        MarketParams(orders_per_side=0)
    assert EmulatorConfig(book_intervals={50: 0.5}).book_intervals[200] == 0.1
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
