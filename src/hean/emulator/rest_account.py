"""Private REST endpoints of the emulator (rest.md §6, §7): account queries and order entry.

Items are the private stream's items (:mod:`hean.emulator.accounts`) in REST's field set and
names: no per-item ``category`` (it is top level), position ``avgPrice`` for the stream's
``entryPrice``, execution ``extraFees`` as a string (``""``), no execution ``execPnl`` /
``isLeverage`` / ``marketUnit``. Order entry runs the ops of
:class:`~hean.emulator.trading.Trading` (the ``/v5/trade`` code), so a REST order is matched on
the book and pushed on the private stream like a WS-trade one. Pagination and time rules: see
:mod:`hean.emulator.rest`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hean.emulator.accounts import (
    Account,
    PositionState,
    UserOrder,
    order_item,
    position_item,
    settle_coin,
    wallet_item,
)
from hean.emulator.rest import (
    ERROR_TEXTS,
    Call,
    category_param,
    encode_cursor,
    int_param,
    limit_param,
    text_param,
)
from hean.emulator.trading import OpError, OpResult, Trading

__all__ = [
    "EXECUTION_KEYS",
    "HISTORY_KEYS",
    "ORDER_ENTRY",
    "ORDER_KEYS",
    "POSITION_KEYS",
    "QUERIES",
    "execution_rest",
    "history_keeps",
    "order_rest",
    "position_rest",
]

_CATEGORIES = ("spot", "linear", "inverse", "option")
_DAY_MS = 86_400_000
_WEEK_MS = 7 * _DAY_MS
_CLOSED_CACHE = 500
_UNFILLED_FINAL = frozenset({"Cancelled", "Rejected", "Deactivated"})

#: ``/v5/order/realtime`` item fields, in the docs example's order (``order_realtime.json``)
ORDER_KEYS: tuple[str, ...] = (
    "orderId", "orderLinkId", "blockTradeId", "symbol", "price", "qty", "side", "isLeverage",
    "positionIdx", "orderStatus", "cancelType", "rejectReason", "avgPrice", "leavesQty",
    "leavesValue", "cumExecQty", "cumExecValue", "cumExecFee", "timeInForce", "orderType",
    "stopOrderType", "orderIv", "triggerPrice", "takeProfit", "stopLoss", "tpTriggerBy",
    "slTriggerBy", "triggerDirection", "triggerBy", "lastPriceOnCreated", "reduceOnly",
    "closeOnTrigger", "smpType", "smpGroup", "smpOrderId", "tpslMode", "tpLimitPrice",
    "slLimitPrice", "placeType", "createdTime", "updatedTime", "cumFeeDetail",
)  # fmt: skip
#: ``/v5/order/history`` item fields (``order_history.json``)
HISTORY_KEYS: tuple[str, ...] = (
    *ORDER_KEYS[:39], "slippageToleranceType", "slippageTolerance", "createdTime",
    "updatedTime", "extraFees", "cumFeeDetail", "rpiTakerAccess", "rpiMatchedQty",
)  # fmt: skip
#: ``/v5/execution/list`` item fields (``execution_list.json``)
EXECUTION_KEYS: tuple[str, ...] = (
    "symbol", "orderType", "underlyingPrice", "orderLinkId", "side", "indexPrice", "orderId",
    "stopOrderType", "leavesQty", "execTime", "feeCurrency", "isMaker", "execFee", "feeRate",
    "execId", "tradeIv", "blockTradeId", "markPrice", "execPrice", "markIv", "orderQty",
    "orderPrice", "execValue", "execType", "execQty", "closedSize", "extraFees", "seq",
)  # fmt: skip
#: ``/v5/position/list`` item fields (``position_list_linear_flat.json``)
POSITION_KEYS: tuple[str, ...] = (
    "positionIdx", "riskId", "riskLimitValue", "symbol", "side", "size", "avgPrice",
    "positionValue", "tradeMode", "positionStatus", "autoAddMargin", "adlRankIndicator",
    "leverage", "breakEvenPrice", "positionBalance", "markPrice", "liqPrice", "bustPrice",
    "positionMM", "positionMMByMp", "positionIM", "positionIMByMp", "tpslMode", "takeProfit",
    "stopLoss", "trailingStop", "unrealisedPnl", "curRealisedPnl", "cumRealisedPnl", "seq",
    "isReduceOnly", "mmrSysUpdatedTime", "leverageSysUpdatedTime", "sessionAvgPrice",
    "createdTime", "updatedTime", "openTime",
)  # fmt: skip
_OPTION_GREEKS = ("delta", "gamma", "vega", "theta")


# -- item shapes ---------------------------------------------------------------------------------


def order_rest(order: UserOrder, keys: tuple[str, ...] = ORDER_KEYS) -> dict[str, object]:
    """An order as ``/v5/order/realtime`` (or, with :data:`HISTORY_KEYS`, history) lists it."""
    item = order_item(order)
    return {k: item.get(k, "") for k in keys}


def execution_rest(item: Mapping[str, object]) -> dict[str, object]:
    """A booked ``execution`` stream item as ``/v5/execution/list`` lists it."""
    out = {k: item.get(k, "") for k in EXECUTION_KEYS}
    out["extraFees"] = ""
    return out


def position_rest(item: Mapping[str, object]) -> dict[str, object]:
    """A ``position`` stream item as ``/v5/position/list`` lists it."""
    out = {k: item.get("entryPrice" if k == "avgPrice" else k, "") for k in POSITION_KEYS}
    if item.get("category") == "option":
        for key in _OPTION_GREEKS:
            out[key] = item.get(key, "0")
    return out


# -- helpers -------------------------------------------------------------------------------------


def _account(call: Call) -> Account:
    assert call.account is not None
    return call.account


def _page_size(call: Call, default: int, most: int) -> int:
    return limit_param(call.params, default, most, call.emu.config.rest_page_size)


def _cursor_parts(call: Call, prefix: str) -> tuple[int, int] | None:
    """``(createdTime, order number)`` from a cursor made by :func:`_make_cursor` (``None``
    without one)."""
    cursor = text_param(call.params, "cursor")
    if cursor is None:
        return None
    head, sep, rest = cursor.partition("=")
    body = rest.rstrip("&")
    ms, _, number = body.partition(":")
    if head != prefix or not sep or not ms.isdigit() or not number.isdigit():
        raise OpError(10001, "params error: cursor invalid")
    return int(ms), int(number)


def _make_cursor(prefix: str, order: UserOrder) -> str:
    return encode_cursor(f"{prefix}={order.created_ms}:{order.number}&")


def _time_window(call: Call, now: int) -> tuple[int, int]:
    """``[start, end]`` by Bybit's 7-day rules (rest.md §6.2)."""
    start = int_param(call.params, "startTime")
    end = int_param(call.params, "endTime")
    if start is None and end is None:
        return now - _WEEK_MS, now
    if end is None:
        assert start is not None
        return start, start + _WEEK_MS
    if start is None:
        return end - _WEEK_MS, end
    if end < start:
        raise OpError(10001, "params error: endTime must not be earlier than startTime")
    if end - start > _WEEK_MS:
        raise OpError(
            10001, "params error: The time range between startTime and endTime cannot exceed 7 days"
        )
    return start, end


def _order_filter(call: Call, category: str, orders: Iterable[UserOrder]) -> list[UserOrder]:
    params = call.params
    symbol = text_param(params, "symbol")
    base = text_param(params, "baseCoin")
    settle = text_param(params, "settleCoin")
    out = []
    for order in orders:
        if order.category != category:
            continue
        if symbol is not None:
            if order.symbol != symbol:
                continue
        elif base is not None:
            if order.spec.base != base:
                continue
        elif settle is not None and settle_coin(order.spec) != settle:
            continue
        out.append(order)
    return out


def _by_id(acct: Account, order_id: str | None, link: str | None) -> list[UserOrder]:
    if order_id is not None:
        found = acct.orders.get(order_id)
        return [found] if found is not None else []
    matches = [o for o in acct.orders.values() if o.order_link_id == link]
    return matches[-1:]  # the most recent one with that orderLinkId


def _newest_first(orders: Iterable[UserOrder]) -> list[UserOrder]:
    return sorted(orders, key=lambda o: (o.created_ms, o.number), reverse=True)


def _orders_page(
    call: Call, orders: list[UserOrder], prefix: str, keys: tuple[str, ...], limit: int
) -> dict[str, object]:
    after = _cursor_parts(call, prefix)
    if after is not None:
        orders = [o for o in orders if (o.created_ms, o.number) < after]
    page = orders[:limit]
    cursor = _make_cursor(prefix, page[-1]) if page else ""
    return {"list": [order_rest(o, keys) for o in page], "nextPageCursor": cursor}


def history_keeps(status: str, has_fills: bool, age_ms: int) -> bool:
    """Whether order history still lists a closed order ``age_ms`` after it closed (rest.md
    §6.2): the last 24 h everything, never-filled ``Cancelled`` / ``Rejected`` /
    ``Deactivated`` included; the last 7 days every closed order but those; older, only orders
    with fills (asked for with ``startTime`` / ``endTime``)."""
    if has_fills or age_ms <= _DAY_MS:
        return True
    return age_ms <= _WEEK_MS and status not in _UNFILLED_FINAL


def _closed_cache(acct: Account, category: str) -> list[UserOrder]:
    """The account's most recent 500 closed orders of a category, most recently closed first."""
    out: list[UserOrder] = []
    for order_id in reversed(acct.closed):
        order = acct.orders.get(order_id)
        if order is not None and order.category == category:
            out.append(order)
            if len(out) == _CLOSED_CACHE:
                break
    return out


# -- queries -------------------------------------------------------------------------------------


def _realtime(call: Call) -> tuple[object, object]:
    acct = _account(call)
    params = call.params
    category = category_param(params, _CATEGORIES)
    order_id = text_param(params, "orderId")
    link = text_param(params, "orderLinkId")
    open_only = int_param(params, "openOnly") or 0
    if open_only not in (0, 1):
        raise OpError(10001, "params error: openOnly invalid")
    limit = _page_size(call, 20, 50)
    if order_id is not None or link is not None:
        cached = {o.order_id for o in _closed_cache(acct, category)}
        found = [
            o
            for o in _by_id(acct, order_id, link)
            if o.category == category and (o.is_open or o.order_id in cached)
        ]
        orders = found
    else:
        if category == "linear" and not any(
            text_param(params, k) for k in ("symbol", "baseCoin", "settleCoin")
        ):
            raise OpError(
                10001, "Missing some parameters that must be filled in, symbol or settleCoin"
            )
        pool = _closed_cache(acct, category) if open_only else list(acct.open.values())
        orders = _newest_first(_order_filter(call, category, pool))
    page = _orders_page(call, orders, "page_args", ORDER_KEYS, limit)
    return {
        "list": page["list"],
        "nextPageCursor": page["nextPageCursor"],
        "category": category,
    }, {}


def _history(call: Call) -> tuple[object, object]:
    acct = _account(call)
    params = call.params
    category = category_param(params, _CATEGORIES)
    now = call.now_ms
    start, end = _time_window(call, now)
    lag_ms = int(call.emu.config.rest_history_lag * 1000)
    order_id = text_param(params, "orderId")
    link = text_param(params, "orderLinkId")
    status = text_param(params, "orderStatus")
    limit = _page_size(call, 20, 50)
    if order_id is not None or link is not None:
        pool = _by_id(acct, order_id, link)
    else:
        pool = list(acct.orders.values())
    chosen = []
    for order in _order_filter(call, category, pool):
        if order.is_open or order.updated_ms + lag_ms > now:
            continue
        if status is not None and order.status != status:
            continue
        if not history_keeps(order.status, bool(order.filled_qty), now - order.updated_ms):
            continue
        if not start <= order.created_ms <= end:
            continue
        chosen.append(order)
    page = _orders_page(call, _newest_first(chosen), "page_token", HISTORY_KEYS, limit)
    return {
        "list": page["list"],
        "nextPageCursor": page["nextPageCursor"],
        "category": category,
    }, {}


def _executions(call: Call) -> tuple[object, object]:
    acct = _account(call)
    params = call.params
    category = category_param(params, _CATEGORIES)
    limit = _page_size(call, 50, 100)
    order_id = text_param(params, "orderId")
    link = text_param(params, "orderLinkId")
    exec_type = text_param(params, "execType")
    symbol = text_param(params, "symbol")
    base = text_param(params, "baseCoin")
    settle = text_param(params, "settleCoin")
    by_order = order_id is not None or link is not None
    start, end = (0, 1 << 62) if by_order else _time_window(call, call.now_ms)
    first = acct.executions_total - len(acct.executions)
    after: int | None = None
    cursor = text_param(params, "cursor")
    if cursor is not None:
        head = cursor.partition(",")[0]
        _, _, digits = head.partition(":")
        if not digits.isdigit():
            raise OpError(10001, "params error: cursor invalid")
        after = int(digits)
    out: list[tuple[int, Mapping[str, object]]] = []
    for offset in range(len(acct.executions) - 1, -1, -1):
        number = first + offset
        if after is not None and number >= after:
            continue
        item = acct.executions[offset]
        if item.get("category") != category:
            continue
        if by_order:
            if order_id is not None and item.get("orderId") != order_id:
                continue
            if order_id is None and item.get("orderLinkId") != link:
                continue
        else:
            if exec_type is not None and item.get("execType") != exec_type:
                continue
            if symbol is not None and item.get("symbol") != symbol:
                continue
            if symbol is None and (base is not None or settle is not None):
                spec = call.emu.market.spec(category, str(item.get("symbol")))
                if base is not None and spec.base != base:
                    continue
                if base is None and settle is not None and settle_coin(spec) != settle:
                    continue
            exec_ms = int(str(item.get("execTime", "0")))
            if not start <= exec_ms <= end:
                continue
        out.append((number, item))
        if len(out) == limit:
            break
    cursor_out = ""
    if out:
        last_number, last_item = out[-1]
        token = f"{last_item.get('execTime')}:{last_number}"
        cursor_out = encode_cursor(f"{token},{token}")
    return {
        "nextPageCursor": cursor_out,
        "category": category,
        "list": [execution_rest(item) for _, item in out],
    }, {}


def _positions(call: Call) -> tuple[object, object]:
    acct = _account(call)
    params = call.params
    category = category_param(params, ("linear", "inverse", "option"))
    symbol = text_param(params, "symbol")
    base = text_param(params, "baseCoin")
    settle = text_param(params, "settleCoin")
    limit = _page_size(call, 20, 200)
    emu = call.emu
    positions: list[PositionState]
    if symbol is not None:
        if not emu.market.has(category, symbol):
            raise OpError(10001, "Not supported symbols")
        pos = acct.positions.get((category, symbol))
        if pos is None:
            pos = PositionState(category, emu.market.spec(category, symbol))
        positions = [pos]
    else:
        if category == "linear" and settle is None:
            raise OpError(
                10001, "Missing some parameters that must be filled in, symbol or settleCoin"
            )
        positions = [
            p
            for (cat, _), p in sorted(acct.positions.items())
            if cat == category
            and p.size != 0
            and (settle is None or settle_coin(p.spec) == settle)
            and (base is None or p.spec.base == base)
        ]
    cursor = text_param(params, "cursor")
    if cursor is not None and symbol is None:
        last, _, _ = cursor.partition(",")
        positions = [p for p in positions if p.spec.symbol > last]
    page = positions[:limit]
    more = len(positions) > limit
    items = [
        position_rest(position_item(acct, p, emu.trading.mark(category, p.spec.symbol)))
        for p in page
    ]
    next_cursor = encode_cursor(f"{page[-1].spec.symbol},{len(page)}") if more and page else ""
    return {"list": items, "nextPageCursor": next_cursor, "category": category}, {}


_ZERO_COIN_FIELDS = (
    "equity", "usdValue", "walletBalance", "availableToWithdraw", "borrowAmount",
    "accruedInterest", "totalOrderIM", "totalPositionIM", "totalPositionMM", "unrealisedPnl",
    "cumRealisedPnl", "bonus", "locked", "spotHedgingQty", "spotBorrow",
)  # fmt: skip


def _wallet(call: Call) -> tuple[object, object]:
    acct = _account(call)
    params = call.params
    account_type = text_param(params, "accountType", required=True)
    if account_type != "UNIFIED":
        raise OpError(10001, "accountType only support UNIFIED.")
    trading = call.emu.trading
    item = wallet_item(acct, trading.mark, trading.usd_price)
    coins: list[dict[str, object]] = list(item["coin"])  # type: ignore[call-overload]
    wanted = text_param(params, "coin")
    if wanted is None:
        coins = [c for c in coins if c.get("walletBalance") != "0" or c.get("equity") != "0"]
    else:
        names = [n.strip() for n in wanted.split(",") if n.strip()]
        have = {str(c["coin"]): c for c in coins}
        coins = []
        for name in names:
            coin = have.get(name)
            if coin is None:
                coin = {"coin": name, **dict.fromkeys(_ZERO_COIN_FIELDS, "0")}
                coin.update(availableToBorrow="", collateralSwitch=True, marginCollateral=True)
            coins.append(coin)
    item["coin"] = coins
    return {"list": [item]}, {}


# -- order entry ---------------------------------------------------------------------------------


def _op(op: str) -> Callable[[Call], tuple[object, object]]:
    def handler(call: Call) -> tuple[object, object]:
        result = call.emu.trading.execute(_account(call), op, call.params)
        return _answer(result)

    return handler


def _answer(result: OpResult) -> tuple[object, object]:
    if result.code != 0:
        raise OpError(result.code, result.msg)
    return result.data, result.ext if result.ext is not None else {}


def _cancel_all(call: Call) -> tuple[object, object]:
    return _answer(call.emu.trading.cancel_all(_account(call), call.params))


def _create_batch(call: Call) -> tuple[object, object]:
    """Batch create: rate-limited orders and injected item failures are refused item by item
    (``retExtInfo.list``), the others placed in one op."""
    params = dict(call.params)
    # a batch refused as a whole is refused before any item is failed or placed
    category, requests = Trading.check_batch(params)
    failures: dict[int, tuple[int, str]] = {}
    injected = call.server.take_batch_failure()
    if injected is not None:
        for index in injected.items:
            if 0 <= index < len(requests):
                failures[index] = (injected.code, _batch_text(injected.code))
    allowed = call.rate_units if category != "option" else len(requests)
    for index in range(allowed, len(requests)):
        failures.setdefault(index, (10006, ERROR_TEXTS[10006]))
    passed = [r for i, r in enumerate(requests) if i not in failures]
    done: OpResult | None = None
    if passed:
        done = call.emu.trading.execute(
            _account(call), "order.create-batch", {**params, "request": passed}
        )
        _answer(done)  # raises if refused
    items: list[object] = []
    codes: list[object] = []
    placed_items = list(done.data.get("list", [])) if done is not None else []  # type: ignore[call-overload]
    placed_codes = list((done.ext or {}).get("list", [])) if done is not None else []  # type: ignore[call-overload]
    for index, req in enumerate(requests):
        if index in failures:
            code, msg = failures[index]
            req_map: Mapping[str, Any] = req if isinstance(req, Mapping) else {}
            symbol, link = req_map.get("symbol"), req_map.get("orderLinkId")
            items.append(
                {
                    "category": category,
                    "symbol": symbol if isinstance(symbol, str) else "",
                    "orderId": "",
                    "orderLinkId": link if isinstance(link, str) else "",
                    "createAt": "",
                }
            )
            codes.append({"code": code, "msg": msg})
        else:
            items.append(placed_items.pop(0))
            codes.append(placed_codes.pop(0))
    return {"list": items}, {"list": codes}


def _batch_text(code: int) -> str:
    from hean.emulator.shapes import trade_text

    if code == 10001:
        return "position idx not match position mode"
    return trade_text(code)


QUERIES: dict[str, Callable[[Call], tuple[object, object]]] = {
    "/v5/order/realtime": _realtime,
    "/v5/order/history": _history,
    "/v5/execution/list": _executions,
    "/v5/position/list": _positions,
    "/v5/account/wallet-balance": _wallet,
}
ORDER_ENTRY: dict[str, Callable[[Call], tuple[object, object]]] = {
    "/v5/order/create": _op("order.create"),
    "/v5/order/amend": _op("order.amend"),
    "/v5/order/cancel": _op("order.cancel"),
    "/v5/order/cancel-all": _cancel_all,
    "/v5/order/create-batch": _create_batch,
}
