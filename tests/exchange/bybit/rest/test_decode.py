"""Every example response decodes into the stream's typed structures."""

from __future__ import annotations

from typing import Any

import pytest

from hean.exchange.bybit.rest.decode import (
    decode_executions,
    decode_klines,
    decode_orderbook,
    decode_orders,
    decode_positions,
    decode_trades,
    decode_wallets,
    interval_ms,
    kline_end,
)
from hean.exchange.bybit.rest.response import RestResponse, decode_envelope
from hean.exchange.bybit.state.private import Execution, Order, Position, Wallet
from hean.exchange.bybit.state.public import Kline, Trade
from tests.exchange.bybit.rest.conftest import example, example_bytes


def _result(name: str) -> dict[str, Any]:
    code, _, result, _, _ = decode_envelope(example_bytes(name))
    assert code == 0
    return result


def test_open_orders() -> None:
    result = _result("order_realtime")
    orders, bad = decode_orders(result["list"], result["category"])
    assert bad == 0
    [order] = orders
    assert isinstance(order, Order)
    assert order.category == "linear"  # from the top level
    assert order.order_id == "fd4300ae-7847-404e-b947-b46980a4d140"
    assert order.order_link_id == "test-000005" and order.symbol == "ETHUSDT"
    assert order.position_idx == 1 and order.trigger_direction == 0 and order.smp_group == 0
    assert order.order_status == "New" and order.qty == "0.10" and order.price == "1600.00"
    assert order.cum_fee_detail == {"MNT": "0.00242968"}
    assert order.reduce_only is False and order.updated_time == "1684738540561"


def test_order_history() -> None:
    result = _result("order_history")
    [order], bad = decode_orders(result["list"], result["category"])
    assert bad == 0
    assert order.order_status == "Cancelled"
    assert order.reject_reason == "EC_PostOnlyWillTakeLiquidity"
    assert order.slippage_tolerance_type == "UNKNOWN"
    assert order.rpi_taker_access is False and order.rpi_matched_qty == "0"
    assert order.category == "linear"


def test_item_category_wins_over_the_top_level() -> None:
    [order], _ = decode_orders([{"orderId": "1", "symbol": "X", "category": "spot"}], "linear")
    assert order.category == "spot"


def test_executions() -> None:
    result = _result("execution_list")
    [ex], bad = decode_executions(result["list"], result["category"])
    assert bad == 0 and isinstance(ex, Execution)
    assert ex.category == "linear" and ex.symbol == "ETHPERP"
    assert ex.exec_id == "e0cbe81d-0f18-5866-9415-cf319b5dab3b"
    assert ex.extra_fees is None  # "" in REST
    assert ex.seq == 4688002127 and ex.is_maker is False
    assert ex.exec_type == "Trade" and ex.exec_qty == "0.1" and ex.exec_time == "1672282722429"
    assert ex.fee_currency == ""


def test_execution_extra_fees_string_forms() -> None:
    items = [
        {"execId": "a", "symbol": "S", "orderId": "o", "extraFees": ""},
        {
            "execId": "b",
            "symbol": "S",
            "orderId": "o",
            "extraFees": '[{"feeCoin":"USDT","feeType":"GST","fee":"0.1"}]',
        },
        {"execId": "c", "symbol": "S", "orderId": "o", "extraFees": "garbage"},
        {"execId": "d", "symbol": "S", "orderId": "o", "extraFees": [{"feeCoin": "USDT"}]},
    ]
    out, bad = decode_executions(items, "linear")
    assert bad == 0
    assert out[0].extra_fees is None and out[2].extra_fees is None
    assert out[1].extra_fees is not None and out[1].extra_fees[0].fee_type == "GST"
    assert out[3].extra_fees is not None and out[3].extra_fees[0].fee_coin == "USDT"


def test_position_inverse() -> None:
    result = _result("position_list_inverse")
    [pos], bad = decode_positions(result["list"], result["category"])
    assert bad == 0 and isinstance(pos, Position)
    assert pos.category == "inverse" and pos.symbol == "BTCUSD"
    assert pos.entry_price == "27464.50441675"  # REST avgPrice
    assert pos.side == "Sell" and pos.size == "300" and pos.seq == 5723621632
    assert pos.position_im == "0.00010923" and pos.position_mm_by_mp == "0.0000015"
    assert pos.mmr_sys_updated_time == ""  # docs spell it mmrSysUpdateTime
    assert pos.auto_add_margin == 1 and pos.adl_rank_indicator == 2


def test_position_linear_flat() -> None:
    result = _result("position_list_linear_flat")
    [pos], _ = decode_positions(result["list"], result["category"])
    assert pos.side == "" and pos.size == "0" and pos.entry_price == "0"
    assert pos.open_time == 0 and pos.category == "linear" and pos.liq_price == ""


def test_position_seq_as_string_is_coerced() -> None:
    [pos], bad = decode_positions([{"symbol": "X", "seq": "-1", "positionIdx": "0"}], "linear")
    assert bad == 0 and pos.seq == -1 and pos.position_idx == 0


def test_wallet() -> None:
    result = _result("account_wallet_balance")
    [wallet], bad = decode_wallets(result["list"])
    assert bad == 0 and isinstance(wallet, Wallet)
    assert wallet.account_type == "UNIFIED" and wallet.total_equity == "3.31216591"
    btc = wallet.coin_of("BTC")
    assert btc is not None and btc.spot_hedging_qty == "0.01592413"
    assert btc.collateral_switch is True and btc.margin_collateral is True


def test_recent_trades() -> None:
    result = _result("market_recent_trade_spot")
    [trade], bad = decode_trades(result["list"])
    assert bad == 0 and isinstance(trade, Trade)
    assert trade.time == 1672052955758 and trade.symbol == "BTCUSDT" and trade.side == "Buy"
    assert trade.price == "16618.49" and trade.size == "0.00012"
    assert trade.trade_id == "2100000000007764263"
    assert trade.seq == 123456  # a string in REST
    assert trade.block_trade is False and trade.rpi is True


def test_recent_trades_oldest_first_and_option_fields() -> None:
    items = [
        {"execId": "2", "symbol": "S", "price": "2", "size": "1", "side": "Sell", "time": "20"},
        {
            "execId": "1",
            "symbol": "S",
            "price": "1",
            "size": "1",
            "side": "Buy",
            "time": "10",
            "mP": "5",
            "iv": "0.5",
            "seq": "",
        },
        {"execId": "3", "symbol": "S", "side": "Buy", "time": "30"},  # no price: dropped
    ]
    trades, bad = decode_trades(items)
    assert bad == 1
    assert [t.trade_id for t in trades] == ["1", "2"]
    assert trades[0].mark_price == "5" and trades[0].iv == "0.5" and trades[0].seq is None


def test_klines_oldest_first_with_end_and_confirm() -> None:
    result = _result("market_kline_inverse")
    now = example("market_kline_inverse")["time"]
    klines, bad = decode_klines(result["list"], "60", now)
    assert bad == 0 and all(isinstance(k, Kline) for k in klines)
    assert [k.start for k in klines] == [1670601600000, 1670605200000, 1670608800000]
    first = klines[0]
    assert first.end == 1670601600000 + 3_600_000 - 1 and first.interval == "60"
    assert (first.open, first.high, first.low, first.close) == (
        "17086.5",
        "17088",
        "16978",
        "17071.5",
    )
    assert first.volume == "6356" and first.turnover == "0.37288112"
    assert all(k.confirm for k in klines)  # the answer is from much later
    # at a server time inside the newest candle, that one is still open
    klines, _ = decode_klines(result["list"], "60", 1670608800000 + 10)
    assert [k.confirm for k in klines] == [True, True, False]
    klines, _ = decode_klines(result["list"], "60", None)
    assert [k.confirm for k in klines] == [True, True, False]


def test_kline_intervals() -> None:
    assert interval_ms("1") == 60_000 and interval_ms("D") == 86_400_000
    assert interval_ms("W") == 7 * 86_400_000 and interval_ms("M") is None
    jan = 1704067200000  # 2024-01-01T00:00Z
    assert kline_end(jan, "M") == 1706745600000 - 1  # 2024-02-01T00:00Z - 1 ms
    dec = 1701388800000  # 2023-12-01
    assert kline_end(dec, "M") == jan - 1
    with pytest.raises(ValueError):
        interval_ms("7x")


def test_bad_kline_rows_are_dropped() -> None:
    rows = [["1", "1", "1", "1", "1", "1", "1"], ["x", "1", "1", "1", "1"], "no", ["2", "1"]]
    klines, bad = decode_klines(rows, "1", None)
    assert [k.start for k in klines] == [1] and bad == 3


def test_orderbook() -> None:
    book = decode_orderbook(_result("market_orderbook_spot"))
    assert book.symbol == "BTCUSDT"
    assert book.bids == [["65485.47", "47.081829"]] and book.asks == [["65557.7", "16.606555"]]
    assert (book.ts, book.u, book.seq, book.cts) == (
        1716863719031,
        230704,
        1432604333,
        1716863718905,
    )
    with pytest.raises(ValueError):
        decode_orderbook({"b": []})


@pytest.mark.parametrize(
    "name",
    [
        "market_instruments_info_linear",
        "market_instruments_info_linear_prelisting",
        "market_instruments_info_option",
        "market_instruments_info_spot",
        "market_tickers_inverse",
        "market_tickers_linear",
        "market_tickers_option",
        "market_tickers_spot",
        "market_time",
    ],
)
def test_market_envelopes(name: str) -> None:
    code, msg, result, ext, time = decode_envelope(example_bytes(name))
    assert code == 0 and msg == "OK" and ext == {} and isinstance(time, int)
    if "list" in result:
        assert isinstance(result["list"], list) and result["list"]
        assert all(isinstance(i, dict) and i["symbol"] for i in result["list"])


def test_a_bad_item_is_dropped_not_the_page() -> None:
    items = [
        {"orderId": "1", "symbol": "A"},
        {"symbol": "no-id"},
        {"orderId": "3", "symbol": "C", "positionIdx": "not a number"},
        "not an object",
        {"orderId": "4", "symbol": "D"},
    ]
    orders, bad = decode_orders(items, "linear")
    assert [o.order_id for o in orders] == ["1", "4"] and bad == 3
    assert decode_orders(None, "linear") == ([], 0)
    assert decode_orders({"x": 1}, "linear") == ([], 1)


def test_batch_results_pair_items_with_codes() -> None:
    body = example("order_create_batch_response_partial")
    resp = RestResponse(
        ret_code=0,
        ret_msg="OK",
        result=body["result"],
        ret_ext_info=body["retExtInfo"],
        time=body["time"],
        http_status=200,
        limit=None,
        path="/v5/order/create-batch",
        method="POST",
    )
    first, second = resp.results
    assert (first.index, first.code, first.msg) == (
        0,
        10001,
        "position idx not match position mode",
    )
    assert first.order_id is None and first.order_link_id == "batch-000" and not first.ok
    assert second.ok and second.order_id == "1666800494330512130" and second.create_at
    assert resp.failed == [first]
    ok = example("order_create_batch_response")
    resp2 = RestResponse(
        ret_code=0,
        ret_msg="OK",
        result=ok["result"],
        ret_ext_info=ok["retExtInfo"],
        time=ok["time"],
        http_status=200,
        limit=None,
        path="/v5/order/create-batch",
    )
    assert [r.ok for r in resp2.results] == [True, True] and resp2.failed == []
    assert [r.category for r in resp2.results] == ["spot", "spot"]
