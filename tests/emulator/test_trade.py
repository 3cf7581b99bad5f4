"""``/v5/trade``: pongs, auth, the gateway's checks, ack latency, injected errors, batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from hean.emulator import Emulator, shapes

from .accounts_helpers import (
    KEY,
    SECRET,
    auth_msg,
    limit,
    place,
    trade_client,
    trade_msg,
)
from .conftest import connect, example, running, same_shape


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A quiet emulator with a rate limit that these tests never reach."""
    async with running(auto_tick=False, trade_rate_limit=10_000) as e:
        yield e


async def test_trade_pong_and_auth_shapes(emu: Emulator) -> None:
    c = await connect(emu, "trade")
    pong = await c.request(example("trade_ping_request.json"))
    same_shape(pong, example("pong_trade.json"))
    assert pong["retCode"] == 0 and pong["retMsg"] == "OK" and pong["op"] == "pong"
    assert abs(int(pong["data"][0]) - emu.server_time_ms()) < 1000
    assert "reqId" not in pong
    assert (await c.request({"op": "ping", "reqId": "p1"}))["reqId"] == "p1"
    ok = await c.request(auth_msg(emu))
    same_shape(ok, example("trade_auth_ok.json"))
    assert ok["retCode"] == 0 and ok["retMsg"] == "OK"
    again = await c.request(auth_msg(emu, req_id="r2", req_key="reqId"))
    assert again["retCode"] == 20001 and again["reqId"] == "r2"


@pytest.mark.parametrize(
    ("kwargs", "code", "text"),
    [
        ({"ahead_ms": -5}, 10001, shapes.PARAMS_ERROR_TEXT),
        ({"secret": "wrong"}, 10004, shapes.INVALID_SIGN_TEXT),
        ({"key": "unknown"}, 10003, shapes.INVALID_KEY_TEXT),
    ],
)
async def test_trade_auth_failures(
    emu: Emulator, kwargs: dict[str, object], code: int, text: str
) -> None:
    c = await connect(emu, "trade")
    reply = await c.request(auth_msg(emu, **kwargs))  # type: ignore[arg-type]
    same_shape(reply, example("trade_auth_ok.json"))
    assert (reply["retCode"], reply["retMsg"]) == (code, text)
    emu.set_faults(auth_reject="too_many_sessions")
    reply = await c.request(auth_msg(emu))
    assert (reply["retCode"], reply["retMsg"]) == (10003, shapes.TOO_MANY_SESSIONS_TEXT)


async def test_request_before_auth_and_unknown_op(emu: Emulator) -> None:
    c = await trade_client(emu, auth=False)
    reply = await place(c, emu, limit(), req_id="x1")
    assert reply["retCode"] == 10003 and reply["retMsg"] == shapes.NOT_AUTHORIZED_TEXT
    assert reply["reqId"] == "x1" and reply["op"] == "order.create"
    reply = await c.request({"op": "order.replace", "reqId": "x2"})
    assert (reply["retCode"], reply["reqId"]) == (10404, "x2")
    junk = await c.request({"op": 5})
    assert junk["retCode"] == 10001 and junk["retMsg"].startswith("Failed to decode")


async def test_create_ack_shape_and_headers(emu: Emulator) -> None:
    c = await trade_client(emu)
    request = example("order_create_request.json")
    request["header"]["X-BAPI-TIMESTAMP"] = str(emu.server_time_ms())
    request["args"][0]["price"] = "1000"  # far from the book: rests
    before = emu.server_time_ms()
    reply = await c.request(request)
    same_shape(reply, example("order_create_response.json"))
    assert reply["reqId"] == "test-005" and reply["retCode"] == 0 and reply["retMsg"] == "OK"
    header = reply["header"]
    assert list(header) == [
        "X-Bapi-Limit",
        "X-Bapi-Limit-Status",
        "X-Bapi-Limit-Reset-Timestamp",
        "Traceid",
        "Timenow",
    ]
    assert header["X-Bapi-Limit"] == "10000" and header["X-Bapi-Limit-Status"] == "9999"
    assert int(header["Timenow"]) >= before and len(header["Traceid"]) == 32
    assert int(header["X-Bapi-Limit-Reset-Timestamp"]) <= int(header["Timenow"]) + 1000
    order_id = reply["data"]["orderId"]
    [resting] = emu.account(KEY).open_orders
    assert resting["orderId"] == order_id and resting["orderStatus"] == "New"
    assert resting["price"] == "1000" and resting["qty"] == "0.2"
    assert resting["timeInForce"] == "PostOnly"
    # no reqId sent: none in the reply
    plain = await c.request(trade_msg(emu, "order.cancel", {**_target(order_id)}))
    assert "reqId" not in plain and plain["retCode"] == 0
    assert plain["data"] == {"orderId": order_id, "orderLinkId": ""}


def _target(order_id: str) -> dict[str, str]:
    return {"category": "linear", "symbol": "ETHUSDT", "orderId": order_id}


async def test_timestamp_and_recv_window(emu: Emulator) -> None:
    c = await trade_client(emu)
    now = emu.server_time_ms()

    async def code(**kw: object) -> dict[str, object]:
        return await place(c, emu, limit(price="1000"), **kw)  # type: ignore[arg-type]

    assert (await code(ts=now))["retCode"] == 0
    assert (await code(ts=now - 4000))["retCode"] == 0  # default window 5000
    stale = await code(ts=now - 6000)
    assert stale["retCode"] == 10002
    assert str(stale["retMsg"]).startswith("invalid request, please check your server timestamp")
    assert f"req_timestamp[{now - 6000}]" in str(stale["retMsg"])
    assert "recv_window[5000]" in str(stale["retMsg"])
    assert (await code(ts=now - 6000, recv_window=10_000))["retCode"] == 0
    assert (await code(ts=str(now - 6000), recv_window="10000"))["retCode"] == 0  # strings
    assert (await code(ts=emu.server_time_ms() + 900))["retCode"] == 0
    assert (await code(ts=emu.server_time_ms() + 1500))["retCode"] == 10002
    missing = await c.request(trade_msg(emu, "order.create", limit(), header={}))
    assert missing["retCode"] == 10001 and "X-BAPI-TIMESTAMP" in str(missing["retMsg"])
    no_header = {"op": "order.create", "args": [limit()]}
    assert (await c.request(no_header))["retCode"] == 10001
    bad_window = await code(ts=now, recv_window="-5")
    assert bad_window["retCode"] == 10001
    two_args = trade_msg(emu, "order.create", limit())
    two_args["args"].append(limit())
    assert (await c.request(two_args))["retCode"] == 10001


async def test_req_id_rules(emu: Emulator) -> None:
    c = await trade_client(emu)
    long = "x" * 37
    reply = await place(c, emu, limit(price="1000"), req_id=long)
    assert reply["retCode"] == 10001 and reply["reqId"] == long
    assert (await place(c, emu, limit(price="1000"), req_id="x" * 36))["retCode"] == 0
    assert (await place(c, emu, limit(price="1000"), req_id="dup"))["retCode"] == 0
    dup = await place(c, emu, limit(price="1000"), req_id="dup")
    assert (dup["retCode"], dup["reqId"]) == (20006, "dup")
    # duplicates are per connection
    other = await trade_client(emu)
    assert (await place(other, emu, limit(price="1000"), req_id="dup"))["retCode"] == 0


async def test_rate_limit_per_account_and_op() -> None:
    async with running(auto_tick=False, trade_rate_limit=3, ack_latency=0.0) as emu:
        c = await trade_client(emu)
        statuses, resets = [], []
        for i in range(4):
            reply = await place(c, emu, limit(price="1000"), req_id=f"r{i}")
            header = reply["header"]
            statuses.append((reply["retCode"], header["X-Bapi-Limit-Status"]))
            resets.append(int(header["X-Bapi-Limit-Reset-Timestamp"]) - int(header["Timenow"]))
        assert statuses == [(0, "2"), (0, "1"), (0, "0"), (10006, "0")]
        # the reset time is "now" while requests are allowed, the window's end once refused
        # (as on REST: one rolling window for both)
        # (Timenow is stamped when the answer is sent, a moment after the request was counted)
        assert all(-100 <= r <= 0 for r in resets[:3]) and 0 < resets[3] <= 1000, resets
        # another op has its own quota; another connection of the account shares it
        cancel = await c.request(
            trade_msg(
                emu, "order.cancel", {"category": "linear", "symbol": "BTCUSDT", "orderId": "x"}
            )
        )
        assert cancel["retCode"] == 110001
        other = await trade_client(emu)
        assert (await place(other, emu, limit(price="1000")))["retCode"] == 10006
        await asyncio.sleep(1.05)
        assert (await place(other, emu, limit(price="1000")))["retCode"] == 0


async def test_ack_latency_and_delay_fault() -> None:
    async with running(auto_tick=False, ack_latency=0.05) as emu:
        c = await trade_client(emu)
        started = time.monotonic()
        await place(c, emu, limit(price="1000"))
        assert time.monotonic() - started >= 0.05
        emu.set_faults(emu.live_connections("trade")[0].conn_id, ack_delay=0.3)
        started = time.monotonic()
        await place(c, emu, limit(price="1000"))
        assert time.monotonic() - started >= 0.3
        # answers keep their order even when the delay changes in between
        emu.set_faults(emu.live_connections("trade")[0].conn_id, ack_delay=0.2)
        c.send_json(trade_msg(emu, "order.create", limit(price="1000"), req_id="slow"))
        await asyncio.sleep(0.01)
        emu.set_faults(emu.live_connections("trade")[0].conn_id, ack_delay=0.0)
        c.send_json(trade_msg(emu, "order.create", limit(price="1000"), req_id="fast"))
        first, second = await c.reply(), await c.reply()
        assert [first["reqId"], second["reqId"]] == ["slow", "fast"]


@pytest.mark.parametrize("code", [10016, 10019, 10429, 20006])
async def test_injected_trade_errors(emu: Emulator, code: int) -> None:
    c = await trade_client(emu)
    emu.inject_trade_error(code, 2)
    assert emu.pending_trade_errors() == [code, code]
    for i in range(2):
        reply = await place(c, emu, limit(price="1000"), req_id=f"e{i}")
        assert reply["retCode"] == code and reply["retMsg"] == shapes.trade_text(code)
        assert "header" in reply and reply["reqId"] == f"e{i}"
    assert (await place(c, emu, limit(price="1000")))["retCode"] == 0
    assert emu.account(KEY).open_orders and len(emu.account(KEY).open_orders) == 1


async def test_injected_errors_per_connection(emu: Emulator) -> None:
    a = await trade_client(emu)
    b = await trade_client(emu)
    a_id = emu.live_connections("trade")[0].conn_id
    emu.inject_trade_error(10019, conn_id=a_id)
    assert (await place(b, emu, limit(price="1000")))["retCode"] == 0
    assert (await place(a, emu, limit(price="1000")))["retCode"] == 10019
    emu.inject_trade_error(10016, 3)
    assert emu.clear_trade_errors() == 3
    with pytest.raises(ValueError, match="cannot inject"):
        emu.inject_trade_error(110007)
    with pytest.raises(KeyError):
        emu.inject_trade_error(10016, conn_id="nope")


async def test_in_flight_request_executes_even_if_the_connection_drops(emu: Emulator) -> None:
    c = await trade_client(emu)
    emu.set_faults(ack_delay=0.2)
    c.send_json(trade_msg(emu, "order.create", limit(price="1000"), req_id="lost"))
    await asyncio.sleep(0.05)
    emu.drop_connections()
    await c.wait_closed()
    await asyncio.sleep(0.25)
    [order] = emu.account(KEY).open_orders  # executed: its outcome is unknown to the client
    assert order["price"] == "1000"


async def test_batch_create_fixture_shapes_and_per_order_results(emu: Emulator) -> None:
    c = await trade_client(emu)
    request = example("order_create_batch_request.json")
    request["header"]["X-BAPI-TIMESTAMP"] = str(emu.server_time_ms())
    orders = request["args"][0]["request"]
    for order in orders:
        order["price"] = "10"  # far below SOLUSDT's market: all rest
    orders[1]["qty"] = "0.05"  # SOLUSDT's qty step is 0.1: this one is refused
    reply = await c.request(request)
    same_shape(reply, example("order_create_batch_response.json"))
    assert reply["retCode"] == 0 and "reqId" not in reply
    codes = [(x["code"], x["msg"]) for x in reply["retExtInfo"]["list"]]
    assert codes[0] == (0, "OK") and codes[2] == (0, "OK")
    assert codes[1] == (10001, "params error: qty invalid")
    items = reply["data"]["list"]
    assert [i["orderLinkId"] for i in items] == ["-batch-000", "batch-001", "batch-002"]
    assert items[1]["orderId"] == "" and items[1]["createAt"] == ""
    assert items[0]["orderId"] and int(items[0]["createAt"]) > 0
    assert len(emu.account(KEY).open_orders) == 2
    # amend-batch and cancel-batch by orderLinkId
    amend = trade_msg(
        emu,
        "order.amend-batch",
        {
            "category": "linear",
            "request": [
                {"symbol": "SOLUSDT", "orderLinkId": "-batch-000", "price": "11"},
                {"symbol": "SOLUSDT", "orderLinkId": "nope", "price": "11"},
            ],
        },
    )
    reply = await c.request(amend)
    assert [x["code"] for x in reply["retExtInfo"]["list"]] == [0, 110001]
    assert set(reply["data"]["list"][0]) == {"category", "symbol", "orderId", "orderLinkId"}
    cancel = trade_msg(
        emu,
        "order.cancel-batch",
        {
            "category": "linear",
            "request": [
                {"symbol": "SOLUSDT", "orderLinkId": "-batch-000"},
                {"symbol": "SOLUSDT", "orderLinkId": "batch-002"},
            ],
        },
    )
    reply = await c.request(cancel)
    assert [x["code"] for x in reply["retExtInfo"]["list"]] == [0, 0]
    assert emu.account(KEY).open_orders == []


async def test_batch_limits(emu: Emulator) -> None:
    c = await trade_client(emu)

    def batch(category: str, symbol: str, n: int) -> dict[str, object]:
        one = {"symbol": symbol, "side": "Buy", "orderType": "Limit", "qty": "1", "price": "1"}
        return trade_msg(emu, "order.create-batch", {"category": category, "request": [one] * n})

    assert (await c.request(batch("linear", "XRPUSDT", 21)))["retCode"] == 10001
    assert (await c.request(batch("spot", "XRPUSDT", 11)))["retCode"] == 10001
    ok = await c.request(batch("spot", "XRPUSDT", 10))
    assert ok["retCode"] == 0 and len(ok["data"]["list"]) == 10
    assert (await c.request(batch("linear", "XRPUSDT", 20)))["retCode"] == 0
    empty = trade_msg(emu, "order.create-batch", {"category": "linear", "request": []})
    assert (await c.request(empty))["retCode"] == 10001


async def test_business_errors(emu: Emulator) -> None:
    c = await trade_client(emu)

    async def code(args: dict[str, object], op: str = "order.create") -> tuple[int, str]:
        reply = await c.request(trade_msg(emu, op, args))
        return reply["retCode"], reply["retMsg"]

    assert await code(limit(symbol="NOPEUSDT")) == (10001, "params error: symbol invalid")
    assert (await code(limit(qty="0.0001")))[0] == 10001  # below the qty step
    assert (await code(limit(price="100.01")))[0] == 10001  # off the tick grid
    assert (await code(limit(side="buy")))[0] == 10001
    assert (await code({**limit(), "orderType": "Stop"}))[0] == 10001
    assert (await code({**limit(), "category": "spread"}))[0] == 10404
    assert (await code({**limit(), "category": None}))[0] == 10001
    assert await code(limit(positionIdx=1)) == (10001, "position idx not match position mode")
    # margin: 100,000 USDT at 10x buys about 1,000,000 USDT of BTC
    assert await code(limit(qty="100", price="60000")) == (110007, "ab not enough for new order")
    # spot: 100,000 USDT
    spot = limit("BTCUSDT", qty="10", price="60000", category="spot")
    assert await code(spot) == (170131, "Insufficient balance.")
    sell = limit("BTCUSDT", "Sell", qty="3", price="90000", category="spot")
    assert await code(sell) == (170131, "Insufficient balance.")
    # reduce-only without a position
    assert await code(limit(reduceOnly=True)) == (110017, "Reduce-only rule not satisfied")
    # unknown orders
    target = {"category": "linear", "symbol": "BTCUSDT", "orderId": "nope"}
    assert await code(target, "order.cancel") == (110001, shapes.trade_text(110001))
    amend = {**target, "price": "1000"}
    assert await code(amend, "order.amend") == (110001, "order not exists or too late to replace")
    spot_target = {**target, "category": "spot"}
    assert await code(spot_target, "order.cancel") == (170213, "Order does not exist.")
    assert (await code({"category": "linear", "symbol": "BTCUSDT"}, "order.cancel"))[0] == 10001
    # duplicate orderLinkId among open orders
    assert (await code(limit(orderLinkId="mine")))[0] == 0
    assert await code(limit(orderLinkId="mine")) == (110072, "OrderLinkedID is duplicate")
    assert (await code(limit(orderLinkId="x" * 37)))[0] == 10001
    # amend that changes nothing
    unchanged = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "mine", "price": "1000"}
    assert (await code(unchanged, "order.amend"))[0] == 10001
    assert emu.account(KEY).balances["USDT"] == "100000"


async def test_numeric_fields_as_json_numbers(emu: Emulator) -> None:
    c = await trade_client(emu)
    reply = await place(c, emu, limit(qty=0.01, price=1000))  # type: ignore[arg-type]
    assert reply["retCode"] == 0
    [order] = emu.account(KEY).open_orders
    assert (order["qty"], order["price"]) == ("0.01", "1000")


async def test_control_endpoint_drives_the_account_side(emu: Emulator) -> None:
    from .test_control import ctl

    c = await trade_client(emu)
    code, reply = await ctl(emu, "trade_error", "code=10016", "count=2")
    assert code == 0 and reply["result"] == [10016, 10016]
    assert (await place(c, emu, limit(price="1000")))["retCode"] == 10016
    code, reply = await ctl(emu, "trade_error", "clear=true")
    assert reply["result"] == 1
    code, reply = await ctl(emu, "skew", "ms=2500")
    assert reply["result"] == 2500 and emu.clock_skew_ms == 2500
    emu.set_clock_skew(0)
    code, reply = await ctl(emu, "faults", "auth_reject=bad_key", "ack_delay=0.01")
    assert reply["result"]["auth_reject"] == "bad_key" and reply["result"]["ack_delay"] == 0.01
    code, reply = await ctl(emu, "faults", "auth_reject=none", "ack_delay=none")
    assert reply["result"]["auth_reject"] is None
    assert (await place(c, emu, limit(price="1000")))["retCode"] == 0
    code, reply = await ctl(emu, "account", f"key={KEY}")
    assert code == 0 and len(reply["result"]["open_orders"]) == 1
    code, reply = await ctl(emu, "balance", f"key={KEY}", "coin=USDT", "amount=123.5")
    assert reply["result"]["USDT"] == "123.5"
    code, reply = await ctl(emu, "account", "key=nobody")
    assert code != 0 and reply["ok"] is False
    code, reply = await ctl(emu, "auth_log")
    assert [r["result"] for r in reply["result"]] == ["ok"]
    code, reply = await ctl(emu, "connections")
    [conn] = reply["result"]
    assert conn["auth_state"] == "authenticated" and conn["api_key"] == KEY
    assert SECRET not in str(reply)


async def test_market_time_and_decimal_strings(emu: Emulator) -> None:
    c = await trade_client(emu)
    _, asks = emu.book_truth("linear", "ETHUSDT", 1)
    ask = Decimal(asks[0][0])
    reply = await place(c, emu, limit("ETHUSDT", price=str(ask), qty="0.01"))
    assert reply["retCode"] == 0
    order = emu.account(KEY).orders[reply["data"]["orderId"]]
    assert order["orderStatus"] == "Filled" and Decimal(str(order["avgPrice"])) == ask
    assert not str(order["cumExecQty"]).endswith("0")  # no trailing zeros
