from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from hean.core.events import KlineEvent, LiquidationEvent, TradeEvent
from hean.exchange.bybit.protocol.codec import Frame, decode
from hean.exchange.bybit.state.public import (
    Kline,
    Liquidation,
    Trade,
    decode_klines,
    decode_liquidations,
    decode_trades,
    kline_event,
    liquidation_event,
    topic_symbol,
    trade_event,
)
from tests.conftest import example, example_bytes


def frame(topic: str, data: Any, ts: int | None = 1000, kind: str = "snapshot") -> Frame:
    payload: dict[str, Any] = {"topic": topic, "type": kind, "data": data}
    if ts is not None:
        payload["ts"] = ts
    return decode(json.dumps(payload))


TRADE: dict[str, Any] = {
    "T": 1672304486865,
    "s": "BTCUSDT",
    "S": "Buy",
    "v": "0.001",
    "p": "16578.50",
    "L": "PlusTick",
    "i": "20f43950-d8dd-5b31-9112-a178eb6023af",
    "BT": False,
    "seq": 1783284617,
}

# --------------------------------------------------------------------------- trades


def test_trade_example() -> None:
    raw = example("public_trade")
    event = trade_event(decode(example_bytes("public_trade")), "linear", 5.0, 123)
    assert isinstance(event, TradeEvent)
    assert (event.symbol, event.category, event.exchange_ts) == ("BTCUSDT", "linear", raw["ts"])
    assert (event.recv_time, event.recv_wall_ms) == (5.0, 123)
    (trade,) = event.trades
    item = raw["data"][0]
    assert trade == Trade(
        time=item["T"],
        symbol="BTCUSDT",
        side="Buy",
        size="0.001",
        price="16578.50",
        tick_direction="PlusTick",
        trade_id=item["i"],
        block_trade=False,
        seq=item["seq"],
    )
    assert trade.rpi is None and trade.mark_price is None and trade.iv is None
    assert trade.price_float == 16578.5 and trade.size_float == 0.001
    with pytest.raises(AttributeError):
        trade.price = "1"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.symbol = "X"  # type: ignore[misc]


def test_multi_trade_message_keeps_order() -> None:
    items = [dict(TRADE, i=str(n), T=TRADE["T"] + n, p=f"{16578 + n}.5") for n in range(5)]
    trades = decode_trades(frame("publicTrade.BTCUSDT", items))
    assert [t.trade_id for t in trades] == ["0", "1", "2", "3", "4"]
    assert [t.price for t in trades] == ["16578.5", "16579.5", "16580.5", "16581.5", "16582.5"]


def test_trade_unknown_fields_missing_optionals_and_coercion() -> None:
    minimal = {"T": "1672304486865", "s": "BTCUSDT", "S": "Sell", "v": "2", "p": "3", "zz": {}}
    (trade,) = decode_trades(frame("publicTrade.BTCUSDT", [minimal]))
    assert trade.time == 1672304486865  # string timestamp coerced
    assert trade.tick_direction is None and trade.trade_id is None and trade.seq is None
    assert trade.block_trade is None
    (trade,) = decode_trades(frame("publicTrade.BTCUSDT", [dict(TRADE, RPI=True, new="x")]))
    assert trade.rpi is True


def test_option_trade_fields() -> None:
    item = {
        "T": 1672304486865,
        "s": "BTC-30JUN23-25000-C",
        "S": "Buy",
        "v": "0.1",
        "p": "1085",
        "i": "abc",
        "BT": True,
        "mP": "1090.5",
        "iP": "25100.2",
        "mIv": "0.4512",
        "iv": "0.4498",
    }
    event = trade_event(frame("publicTrade.BTC", [item]), "option", 1.0, 2)
    assert event.symbol == "BTC"
    (trade,) = event.trades
    assert trade.symbol == "BTC-30JUN23-25000-C" and trade.block_trade is True
    assert (trade.mark_price, trade.index_price, trade.mark_iv, trade.iv) == (
        "1090.5",
        "25100.2",
        "0.4512",
        "0.4498",
    )


@pytest.mark.parametrize(
    "data",
    [
        [TRADE, {k: v for k, v in TRADE.items() if k != "p"}],  # missing price in item 2
        [dict(TRADE, T="yesterday")],
        [dict(TRADE, v=1.5)],  # a number where a string is expected
        [dict(TRADE, BT="maybe")],
        ["not a trade"],
        "nope",
        None,
        42,
    ],
)
def test_bad_trades_raise_value_error(data: Any) -> None:
    with pytest.raises(ValueError):
        decode_trades(frame("publicTrade.BTCUSDT", data))
    with pytest.raises(ValueError):
        trade_event(frame("publicTrade.BTCUSDT", data), "linear", 0.0, 0)


def test_single_object_trade_and_empty_list() -> None:
    assert len(decode_trades(frame("publicTrade.BTCUSDT", TRADE))) == 1
    assert decode_trades(frame("publicTrade.BTCUSDT", [])) == []


def test_validation_errors_are_value_errors() -> None:
    assert issubclass(msgspec.ValidationError, ValueError)


# --------------------------------------------------------------------------- klines


def test_kline_example() -> None:
    raw = example("kline")
    event = kline_event(decode(example_bytes("kline")), "linear", 3.0, 4)
    assert isinstance(event, KlineEvent)
    assert (event.symbol, event.interval, event.exchange_ts) == ("BTCUSDT", "5", raw["ts"])
    (kline,) = event.klines
    assert kline == msgspec.convert(raw["data"][0], Kline)
    assert kline.start == 1672324800000 and kline.end == 1672325099999
    assert (kline.open, kline.high, kline.low) == ("16649.5", "16677", "16608")
    assert kline.close == "16677"
    assert kline.volume == "2.081" and kline.turnover == "34666.4005" and kline.confirm is False
    assert kline.timestamp == 1672324988882 and kline.interval == "5"
    assert kline.ohlcv() == (16649.5, 16677.0, 16608.0, 16677.0, 2.081)


def test_kline_variants() -> None:
    base = example("kline")["data"][0]
    minimal = {k: base[k] for k in ("start", "end", "open", "close", "high", "low", "confirm")}
    items = [dict(base, confirm=True, extra=[1]), dict(minimal, start=str(base["start"]))]
    event = kline_event(frame("kline.D.ETHUSDT", items), "spot", 1.0, 2)
    assert event.symbol == "ETHUSDT" and event.interval == "D" and event.category == "spot"
    closed, partial = event.klines
    assert closed.confirm is True
    assert partial.volume is None and partial.turnover is None and partial.timestamp is None
    assert partial.interval is None and partial.start == base["start"]
    assert partial.ohlcv()[4] == 0.0


@pytest.mark.parametrize(
    "mutate",
    [
        lambda k: {x: y for x, y in k.items() if x != "close"},
        lambda k: dict(k, confirm="perhaps"),
        lambda k: dict(k, start=None),
        lambda k: dict(k, high=16677),
    ],
)
def test_bad_kline_raises(mutate: Any) -> None:
    good = example("kline")["data"][0]
    with pytest.raises(ValueError):
        decode_klines(frame("kline.5.BTCUSDT", [good, mutate(good)]))


def test_kline_event_needs_a_kline_topic() -> None:
    good = example("kline")["data"]
    with pytest.raises(ValueError):
        kline_event(frame("kline.BTCUSDT", good), "linear", 0.0, 0)


# --------------------------------------------------------------------------- liquidations


def test_all_liquidation_example() -> None:
    raw = example("liquidation")
    event = liquidation_event(decode(example_bytes("liquidation")), "linear", 1.0, 2)
    assert isinstance(event, LiquidationEvent)
    assert event.symbol == "ROSEUSDT" and event.exchange_ts == raw["ts"]
    (liq,) = event.liquidations
    assert liq == Liquidation(time=1739502302929, symbol="ROSEUSDT", side="Sell", size="20000",
                              price="0.04499")  # fmt: skip
    assert liq.price_float == 0.04499 and liq.size_float == 20000.0


def test_deprecated_liquidation_example() -> None:
    raw = example("liquidation_deprecated")
    (liq,) = decode_liquidations(decode(example_bytes("liquidation_deprecated")))
    d = raw["data"]
    assert liq == Liquidation(d["updatedTime"], d["symbol"], d["side"], d["size"], d["price"])


def test_deprecated_liquidation_variants() -> None:
    base = {"symbol": "BTCUSDT", "side": "Buy", "size": "1", "price": "2", "new": 1}
    (liq,) = decode_liquidations(frame("liquidation.BTCUSDT", dict(base, updateTime=5)))
    assert liq.time == 5
    (liq,) = decode_liquidations(frame("liquidation.BTCUSDT", base, ts=77))
    assert liq.time == 77  # no time in the item: the message time
    with pytest.raises(ValueError):
        decode_liquidations(frame("liquidation.BTCUSDT", base, ts=None))
    with pytest.raises(ValueError):
        decode_liquidations(frame("liquidation.BTCUSDT", {"symbol": "BTCUSDT", "updateTime": 1}))


def test_all_liquidation_multi_and_bad() -> None:
    item = example("liquidation")["data"][0]
    liqs = decode_liquidations(
        frame("allLiquidation.ROSEUSDT", [item, dict(item, S="Buy", extra=True)])
    )
    assert [x.side for x in liqs] == ["Sell", "Buy"]
    with pytest.raises(ValueError):
        decode_liquidations(frame("allLiquidation.ROSEUSDT", [item, dict(item, T=None)]))
    with pytest.raises(ValueError):
        liquidation_event(frame("allLiquidation.ROSEUSDT", "x"), "linear", 0.0, 0)


def test_topic_symbol() -> None:
    assert topic_symbol("kline.5.BTCUSDT") == "BTCUSDT"
    assert topic_symbol("publicTrade.BTC") == "BTC"
    assert topic_symbol("allLiquidation.1000PEPEUSDT") == "1000PEPEUSDT"
