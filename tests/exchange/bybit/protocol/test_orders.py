"""Order-entry and query arguments shared by the trade stream and REST."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hean.exchange.bybit.protocol.orders import (
    add_extra,
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


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda extra: create_args(**CREATE, extra=extra), "orderType"),
        (lambda extra: create_args(**CREATE, extra=extra), "category"),
        (lambda extra: create_args(**CREATE, extra=extra), "order_link_id"),
        (lambda extra: create_args(**CREATE, extra=extra), "timeInForce"),
        (lambda extra: amend_args(**TARGET, extra=extra), "orderId"),
        (lambda extra: amend_args(**TARGET, extra=extra), "triggerPrice"),
    ],
)
def test_extra_fields_cannot_override_a_named_argument(build: Any, key: str) -> None:
    """``orderType="Market"`` in ``extra`` beside ``order_type="Limit"`` went out as a market
    order, past the side/type checks: a field a named argument owns is refused."""
    with pytest.raises(ValueError, match="argument: pass it there"):
        build({key: "Market"})
    args = build({"positionIdx": 1, "takeProfit": Decimal("70000.50")})
    assert args["positionIdx"] == 1 and args["takeProfit"] == "70000.5"
    target = target_args("linear", "BTCUSDT", "o1", None)
    with pytest.raises(ValueError, match="symbol= argument"):
        add_extra(target, {"symbol": "ETHUSDT"}, ("category", "symbol", "orderId"))
    assert target["symbol"] == "BTCUSDT"


CREATE: dict[str, Any] = {
    "category": "linear",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "order_type": "Limit",
    "qty": "0.01",
    "price": "100",
}
TARGET: dict[str, Any] = {"category": "linear", "symbol": "BTCUSDT", "order_id": "o1"}
