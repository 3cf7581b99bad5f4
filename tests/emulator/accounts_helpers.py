"""Raw-client helpers for the emulator's ``/v5/private`` and ``/v5/trade`` tests."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator

from .conftest import Client, connect

KEY = DEFAULT_API_KEY
SECRET = DEFAULT_API_SECRET

#: §6 field lists (protocol.md), for "extra keys are documented fields" checks
ORDER_FIELDS = frozenset(
    (
        "category",
        "orderId",
        "orderLinkId",
        "parentOrderLinkId",
        "isLeverage",
        "blockTradeId",
        "symbol",
        "price",
        "brokerOrderPrice",
        "qty",
        "side",
        "positionIdx",
        "orderStatus",
        "createType",
        "cancelType",
        "rejectReason",
        "avgPrice",
        "leavesQty",
        "leavesValue",
        "cumExecQty",
        "cumExecValue",
        "cumExecFee",
        "closedPnl",
        "feeCurrency",
        "timeInForce",
        "orderType",
        "stopOrderType",
        "ocoTriggerBy",
        "orderIv",
        "marketUnit",
        "slippageToleranceType",
        "slippageTolerance",
        "triggerPrice",
        "takeProfit",
        "stopLoss",
        "tpslMode",
        "tpLimitPrice",
        "slLimitPrice",
        "tpTriggerBy",
        "slTriggerBy",
        "triggerDirection",
        "triggerBy",
        "lastPriceOnCreated",
        "reduceOnly",
        "closeOnTrigger",
        "placeType",
        "smpType",
        "smpGroup",
        "smpOrderId",
        "createdTime",
        "updatedTime",
        "cumFeeDetail",
        "rpiTakerAccess",
        "rpiMatchedQty",
    )
)
POSITION_FIELDS = frozenset(
    (
        "category",
        "symbol",
        "side",
        "size",
        "positionIdx",
        "positionValue",
        "riskId",
        "riskLimitValue",
        "entryPrice",
        "markPrice",
        "leverage",
        "breakEvenPrice",
        "autoAddMargin",
        "positionIM",
        "positionMM",
        "liqPrice",
        "takeProfit",
        "stopLoss",
        "trailingStop",
        "unrealisedPnl",
        "curRealisedPnl",
        "sessionAvgPrice",
        "delta",
        "gamma",
        "vega",
        "theta",
        "cumRealisedPnl",
        "positionStatus",
        "adlRankIndicator",
        "isReduceOnly",
        "createdTime",
        "updatedTime",
        "openTime",
        "seq",
        "mmrSysUpdatedTime",
        "leverageSysUpdatedTime",
        "positionIMByMp",
        "positionMMByMp",
        "tpslMode",
        "bustPrice",
        "positionBalance",
        "tradeMode",
    )
)


def signature(secret: str, expires: int | str) -> str:
    return hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()


def auth_msg(
    emu: Emulator,
    *,
    key: str = KEY,
    secret: str = SECRET,
    ahead_ms: int = 10_000,
    as_string: bool = False,
    req_id: str | None = None,
    req_key: str = "req_id",
) -> dict[str, Any]:
    expires = emu.server_time_ms() + ahead_ms
    sent: int | str = str(expires) if as_string else expires
    msg: dict[str, Any] = {"op": "auth", "args": [key, sent, signature(secret, expires)]}
    if req_id is not None:
        msg[req_key] = req_id
    return msg


async def private_client(emu: Emulator, *, auth: bool = True, **kw: Any) -> Client:
    c = await connect(emu, "private", **kw)
    if auth:
        reply = await c.request(auth_msg(emu))
        assert reply["success"] is True, reply
    return c


async def trade_client(emu: Emulator, *, auth: bool = True, **kw: Any) -> Client:
    c = await connect(emu, "trade", **kw)
    if auth:
        reply = await c.request(auth_msg(emu))
        assert reply["retCode"] == 0, reply
    return c


def trade_msg(
    emu: Emulator,
    op: str,
    args: dict[str, Any],
    *,
    req_id: str | None = None,
    ts: int | str | None = None,
    recv_window: int | str | None = None,
    header: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if header is None:
        header = {"X-BAPI-TIMESTAMP": str(emu.server_time_ms()) if ts is None else ts}
        if recv_window is not None:
            header["X-BAPI-RECV-WINDOW"] = recv_window
    msg: dict[str, Any] = {"header": header, "op": op, "args": [args]}
    if req_id is not None:
        msg["reqId"] = req_id
    return msg


def limit(
    symbol: str = "BTCUSDT",
    side: str = "Buy",
    qty: str = "0.01",
    price: str = "1000",
    *,
    category: str = "linear",
    tif: str = "GTC",
    **extra: Any,
) -> dict[str, Any]:
    args = {
        "category": category,
        "symbol": symbol,
        "side": side,
        "orderType": "Limit",
        "qty": qty,
        "price": price,
        "timeInForce": tif,
    }
    args.update(extra)
    return args


def market(
    symbol: str = "BTCUSDT", side: str = "Buy", qty: str = "0.01", *, category: str = "linear"
) -> dict[str, Any]:
    return {
        "category": category,
        "symbol": symbol,
        "side": side,
        "orderType": "Market",
        "qty": qty,
    }


async def place(c: Client, emu: Emulator, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return await c.request(trade_msg(emu, "order.create", args, **kw))


def like_example(
    actual: dict[str, Any], expected: dict[str, Any], documented: frozenset[str]
) -> None:
    """Every key of the example with a value of the same JSON type; extra keys are fields the
    docs list (the docs' examples predate some fields)."""
    missing = set(expected) - set(actual)
    assert not missing, f"missing keys {sorted(missing)}"
    extra = set(actual) - set(expected)
    assert extra <= documented, f"undocumented keys {sorted(extra - documented)}"
    for key, value in expected.items():
        assert type(actual[key]) is type(value), f"{key}: {actual[key]!r} is not like {value!r}"
