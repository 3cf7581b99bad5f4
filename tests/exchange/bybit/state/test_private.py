"""Private message decoders against the documented examples and tolerant variants."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hean.core.events import (
    EventType,
    ExecutionEvent,
    OrderUpdateEvent,
    PositionUpdateEvent,
    WalletUpdateEvent,
)
from hean.exchange.bybit.protocol.codec import decode
from hean.exchange.bybit.state.private import (
    Execution,
    FastExecution,
    decode_executions,
    decode_fast_executions,
    decode_orders,
    decode_positions,
    decode_wallets,
    private_event,
    stream_of,
    to_float,
    to_ms,
)
from tests.conftest import example, example_bytes


def frame_of(message: dict[str, Any]) -> Any:
    return decode(json.dumps(message).encode())


def test_order_example() -> None:
    [order] = decode_orders(decode(example_bytes("order")))
    assert order.order_id == "5cf98598-39a7-459e-97bf-76ca765ee020"
    assert order.symbol == "ETH-30DEC22-1400-C" and order.category == "option"
    assert (order.side, order.order_type, order.order_status) == ("Sell", "Market", "Filled")
    assert order.time_in_force == "IOC" and order.cancel_type == "UNKNOWN"
    assert order.price == "72.5" and order.qty == "1" and order.avg_price == "75"
    assert order.cum_exec_qty == "1" and order.cum_exec_fee == "0.358635"
    assert order.leaves_qty == "" and to_float(order.leaves_qty) is None
    assert order.reduce_only is False and order.close_on_trigger is False
    assert order.position_idx == 0 and order.trigger_direction == 0 and order.smp_group == 0
    assert order.cum_fee_detail == {"MNT": "0.00242968"}
    assert order.rpi_taker_access is False and order.rpi_matched_qty == "0"
    assert to_ms(order.created_time) == 1672364262444
    assert order.parent_order_link_id is None  # not in this example: None, not an error


def test_execution_example() -> None:
    [ex] = decode_executions(decode(example_bytes("execution")))
    assert isinstance(ex, Execution)
    assert ex.exec_id == "0ab1bdf7-4219-438b-b30a-32ec863018f7" and ex.symbol == "BTCUSDT"
    assert (ex.exec_type, ex.side, ex.is_maker) == ("Trade", "Sell", False)
    assert ex.exec_price == "95900.1" and ex.exec_qty == "0.5" and ex.exec_fee == "26.3725275"
    assert ex.seq == 140612148849382 and ex.fee_currency == "USDT"
    assert ex.exec_pnl == "0.05" and ex.closed_size == "0.5" and ex.is_leverage == "0"
    assert ex.extra_fees is not None
    [fee] = ex.extra_fees
    assert (fee.fee_coin, fee.fee_type, fee.sub_fee_type, fee.fee) == (
        "USDT",
        "GST",
        "IND_GST",
        "0.006403779",
    )
    assert to_ms(ex.exec_time) == 1746270400353


def test_fast_execution_example() -> None:
    [ex] = decode_fast_executions(decode(example_bytes("execution_fast")))
    assert isinstance(ex, FastExecution)
    assert ex.order_link_id == "test-00001" and ex.exec_qty == "3000"
    assert ex.seq == 34771365464 and ex.is_maker is False


def test_position_example() -> None:
    [pos] = decode_positions(decode(example_bytes("position")))
    assert pos.symbol == "BTCUSDT" and pos.side == "" and pos.size == "0"
    assert pos.position_idx == 2 and pos.risk_id == 1 and pos.trade_mode == 0
    assert pos.position_im == "0" and pos.position_mm_by_mp == "0"
    assert pos.cum_realised_pnl == "-25.06579337" and pos.position_status == "Normal"
    assert pos.seq == 8327597863 and pos.is_reduce_only is False
    assert pos.leverage_sys_updated_time == "" and to_ms(pos.leverage_sys_updated_time) is None
    assert pos.open_time is None and pos.theta is None


def test_wallet_example() -> None:
    [wallet] = decode_wallets(decode(example_bytes("wallet")))
    assert wallet.account_type == "UNIFIED"
    assert wallet.total_equity == "10262.91335023" and wallet.account_im_rate == "0"
    assert wallet.total_perp_upl == "0" and wallet.account_ltv == "0"
    btc = wallet.coin_of("BTC")
    assert btc is not None and wallet.coin_of("USDT") is None
    assert btc.wallet_balance == "0.00102964" and btc.total_order_im == ""
    assert btc.collateral_switch is True and btc.spot_hedging_qty == "0.01592413"


@pytest.mark.parametrize(
    ("name", "event_type", "cls", "count"),
    [
        ("order", EventType.ORDER_UPDATE, OrderUpdateEvent, 1),
        ("execution", EventType.EXECUTION, ExecutionEvent, 1),
        ("execution_fast", EventType.EXECUTION, ExecutionEvent, 1),
        ("position", EventType.POSITION_UPDATE, PositionUpdateEvent, 1),
        ("wallet", EventType.WALLET_UPDATE, WalletUpdateEvent, 1),
    ],
)
def test_private_event_for_every_example(
    name: str, event_type: EventType, cls: type, count: int
) -> None:
    message = example(name)
    decoded = private_event(decode(example_bytes(name)), "private", 5.0, 1_700_000_000_000)
    assert decoded is not None
    kind, event = decoded
    assert kind is event_type and isinstance(event, cls)
    assert event.connection == "private" and event.topic == message["topic"]
    assert event.creation_time == message["creationTime"] and event.msg_id == message.get("id")
    assert event.recv_time == 5.0 and event.recv_wall_ms == 1_700_000_000_000
    if isinstance(event, ExecutionEvent):
        assert event.fast is (name == "execution_fast")


def test_categorised_topics_decode_like_the_all_in_one_ones() -> None:
    message = example("order")
    message["topic"] = "order.option"
    decoded = private_event(frame_of(message), "private", 0.0, 0)
    assert decoded is not None and decoded[0] is EventType.ORDER_UPDATE
    message = example("execution_fast")
    message["topic"] = "execution.fast.linear"
    decoded = private_event(frame_of(message), "private", 0.0, 0)
    assert decoded is not None and decoded[1].fast is True
    assert stream_of("execution.fast.spot") == "execution.fast"
    assert stream_of("position.spot") is None  # positions have no spot category
    assert stream_of("wallet.linear") is None and stream_of("nope") is None
    assert private_event(frame_of({"topic": "greeks", "data": []}), "p", 0.0, 0) is None


def test_unknown_fields_and_new_enum_values_are_kept_not_rejected() -> None:
    message = example("order")
    item = message["data"][0]
    item["orderStatus"] = "SomeNewStatus"
    item["side"] = "Sideways"
    item["brandNewField"] = {"nested": [1, 2, 3]}
    message["newTopLevel"] = True
    [order] = decode_orders(frame_of(message))
    assert order.order_status == "SomeNewStatus" and order.side == "Sideways"


def test_missing_optional_fields_are_none() -> None:
    minimal = {
        "topic": "order",
        "creationTime": 1,
        "data": [{"orderId": "o1", "symbol": "BTCUSDT"}],
    }
    [order] = decode_orders(frame_of(minimal))
    assert order.order_id == "o1" and order.price is None and order.order_status is None
    [wallet] = decode_wallets(frame_of({"topic": "wallet", "creationTime": 1, "data": [{}]}))
    assert wallet.coin == [] and wallet.total_equity is None


def test_numbers_as_strings_are_coerced() -> None:
    message = example("execution")
    message["data"][0]["seq"] = "140612148849382"
    message["data"][0]["isMaker"] = "true"
    [ex] = decode_executions(frame_of(message))
    assert ex.seq == 140612148849382 and ex.is_maker is True


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"orderId": "o1", "symbol": "X"},  # an object, not an array
        [1, 2],
        [{"symbol": "BTCUSDT"}],  # no orderId
        [{"orderId": "o1", "symbol": "X", "positionIdx": "not a number"}],
        [{"orderId": "o1", "symbol": "X"}, {"orderId": 5}],  # one bad item fails the message
    ],
)
def test_a_bad_message_raises_value_error(data: Any) -> None:
    with pytest.raises(ValueError):
        private_event(frame_of({"topic": "order", "creationTime": 1, "data": data}), "p", 0, 0)


def test_helpers() -> None:
    assert to_float("1.5") == 1.5 and to_float("") is None and to_float(None) is None
    assert to_ms("1700000000000") == 1_700_000_000_000 and to_ms(5) == 5
    assert to_ms("") is None and to_ms("0") is None and to_ms(None) is None
