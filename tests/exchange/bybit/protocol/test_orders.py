"""Order-entry and query arguments shared by the trade stream and REST."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hean.exchange.bybit.protocol.orders import (
    amend_args,
    api_name,
    api_params,
    create_args,
    target_args,
)


def test_api_names_are_bybits() -> None:
    assert api_name("order_link_id") == "orderLinkId"
    assert api_name("base_coin") == "baseCoin"
    assert api_name("symbol") == "symbol"
    assert api_params("linear", symbol="BTCUSDT", settle_coin=None, open_only=0) == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "openOnly": 0,
    }
    with pytest.raises(ValueError, match="unknown category"):
        api_params("futures")


def test_create_args_checked_and_numbers_as_strings() -> None:
    args = create_args(
        category="linear", symbol=" BTCUSDT ", side="Buy", order_type="Limit",
        qty=Decimal("0.001"), price=30000.5, order_link_id="a-1",
        extra={"takeProfit": 31000, "positionIdx": 0},
    )  # fmt: skip
    assert args == {
        "category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
        "qty": "0.001", "price": "30000.5", "orderLinkId": "a-1", "takeProfit": "31000",
        "positionIdx": 0,
    }  # fmt: skip
    for bad in ({"side": "buy"}, {"order_type": "limit"}, {"symbol": ""}, {"qty": float("nan")}):
        kwargs = {"category": "linear", "symbol": "X", "side": "Buy", "order_type": "Market"}
        kwargs |= {"qty": "1", **bad}
        with pytest.raises(ValueError):
            create_args(**kwargs)  # type: ignore[arg-type]


def test_amend_and_cancel_need_an_id() -> None:
    assert amend_args(category="spot", symbol="ETHUSDT", order_id="o1", price=1.5) == {
        "category": "spot", "symbol": "ETHUSDT", "orderId": "o1", "price": "1.5",
    }  # fmt: skip
    assert target_args("linear", "BTCUSDT", "", "link") == {
        "category": "linear", "symbol": "BTCUSDT", "orderLinkId": "link",
    }  # fmt: skip
    with pytest.raises(ValueError, match="order_id or order_link_id"):
        target_args("linear", "BTCUSDT", None, "")
