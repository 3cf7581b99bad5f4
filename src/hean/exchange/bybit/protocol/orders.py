"""Request arguments with Bybit's field names, shared by the trade stream and REST (sans-I/O).

The trade WebSocket's ``args[0]`` and the REST body of order entry are the same object
(rest.md §7, protocol.md §7), and every REST query takes its parameters by the same camelCase
names. One place builds and checks them, so the two clients cannot drift apart:

* :func:`api_params`: keyword arguments in Python's snake_case to Bybit's camelCase
  (``order_link_id`` -> ``orderLinkId``), ``None`` left out;
* :func:`create_args`, :func:`amend_args`, :func:`target_args`: the order-entry arguments, with
  the side, type, category and symbol checked (``ValueError`` names the bad one) and the numeric
  fields as decimal strings (:data:`NUMERIC_FIELDS`, :func:`with_numbers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hean.exchange.bybit.endpoints import validate_category
from hean.exchange.bybit.protocol.trade import to_api_number

__all__ = [
    "AMEND_NAMED",
    "CANCEL_ALL_NAMED",
    "CREATE_NAMED",
    "NUMERIC_FIELDS",
    "ORDER_TYPES",
    "SIDES",
    "TARGET_NAMED",
    "add_extra",
    "amend_args",
    "api_name",
    "api_params",
    "choice",
    "create_args",
    "symbol_arg",
    "target_args",
    "with_numbers",
]

SIDES = ("Buy", "Sell")
ORDER_TYPES = ("Market", "Limit")
NUMERIC_FIELDS = frozenset(
    {
        "qty",
        "price",
        "triggerPrice",
        "takeProfit",
        "stopLoss",
        "tpLimitPrice",
        "slLimitPrice",
        "orderIv",
        "slippageTolerance",
    }
)
"""Fields the API wants as decimal strings (numbers given in Python are converted)."""


def api_name(name: str) -> str:
    """``order_link_id`` -> ``orderLinkId`` (a name without ``_`` is returned as it is)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def api_params(category: str | None = None, /, **named: Any) -> dict[str, Any]:
    """``{"category": category, <camelCase name>: value ...}`` for the values that are not
    ``None`` (``category`` checked when given)."""
    params: dict[str, Any] = {}
    if category is not None:
        params["category"] = validate_category(category)
    for name, value in named.items():
        if value is not None:
            params[api_name(name)] = value
    return params


def choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(allowed)} (case-sensitive), got {value!r}"
        )
    return value


def symbol_arg(symbol: str) -> str:
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValueError(f"bad symbol {symbol!r}")
    return symbol.strip()


def add_extra(
    args: dict[str, Any], extra: Mapping[str, Any] | None, named: tuple[str, ...]
) -> dict[str, Any]:
    """``args`` with the caller's other API fields added (in place; returned).

    Raises:
        ValueError: ``extra`` sets one of the ``named`` fields, which a named argument owns
            (``orderType=`` beside ``order_type=`` would bypass its check or win over it).
    """
    if not extra:
        return args
    for key in extra:
        name = api_name(key)
        if name in named:
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
            raise ValueError(f"{key!r} is set by the {snake}= argument: pass it there")
    args.update(extra)
    return args


CREATE_NAMED = (
    "category",
    "symbol",
    "side",
    "orderType",
    "qty",
    "price",
    "timeInForce",
    "orderLinkId",
    "reduceOnly",
)
"""The fields :func:`create_args` sets from its named arguments."""
TARGET_NAMED = ("category", "symbol", "orderId", "orderLinkId")
"""The fields :func:`target_args` sets (cancel, and the first part of amend)."""
AMEND_NAMED = (*TARGET_NAMED, "qty", "price", "triggerPrice")
"""The fields :func:`amend_args` sets."""
CANCEL_ALL_NAMED = ("category", "symbol", "baseCoin", "settleCoin")
"""The fields ``cancel-all`` takes as named arguments."""


def with_numbers(args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with its :data:`NUMERIC_FIELDS` as decimal strings (in place; returned)."""
    for key in NUMERIC_FIELDS:
        value = args.get(key)
        if value is not None:
            args[key] = to_api_number(value, key)
    return args


def create_args(
    *,
    category: str,
    symbol: str,
    side: str,
    order_type: str,
    qty: Any,
    price: Any | None = None,
    time_in_force: str | None = None,
    order_link_id: str | None = None,
    reduce_only: bool | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The arguments of ``order.create`` / ``POST /v5/order/create``.

    Raises:
        ValueError: a bad category, symbol, side, order type or number.
    """
    args: dict[str, Any] = {
        "category": validate_category(category),
        "symbol": symbol_arg(symbol),
        "side": choice(side, SIDES, "side"),
        "orderType": choice(order_type, ORDER_TYPES, "order_type"),
        "qty": qty,
    }
    args.update(
        api_params(
            price=price,
            time_in_force=time_in_force,
            order_link_id=order_link_id,
            reduce_only=reduce_only,
        )
    )
    return with_numbers(add_extra(args, extra, CREATE_NAMED))


def target_args(
    category: str, symbol: str, order_id: str | None, order_link_id: str | None
) -> dict[str, Any]:
    """``category``, ``symbol`` and ``orderId`` / ``orderLinkId`` of an amend or cancel.

    Raises:
        ValueError: neither id given, or a bad category or symbol.
    """
    if not order_id and not order_link_id:
        raise ValueError("give order_id or order_link_id")
    args: dict[str, Any] = {"category": validate_category(category), "symbol": symbol_arg(symbol)}
    args.update(api_params(order_id=order_id or None, order_link_id=order_link_id or None))
    return args


def amend_args(
    *,
    category: str,
    symbol: str,
    order_id: str | None = None,
    order_link_id: str | None = None,
    qty: Any | None = None,
    price: Any | None = None,
    trigger_price: Any | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The arguments of ``order.amend`` / ``POST /v5/order/amend``.

    Raises:
        ValueError: neither id given, a bad category, symbol or number.
    """
    args = target_args(category, symbol, order_id, order_link_id)
    args.update(api_params(qty=qty, price=price, trigger_price=trigger_price))
    return with_numbers(add_extra(args, extra, AMEND_NAMED))
