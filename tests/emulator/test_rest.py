"""The emulator's REST API: signing, envelopes and headers, limits, pagination, history lag,
funding, shapes against the docs' examples (rest.md §1-§7, §10)."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hean.core.clock import ManualClock
from hean.emulator import AccountConfig, Emulator, EmulatorConfig
from hean.emulator.rest_account import history_keeps

from .accounts_helpers import KEY, private_client
from .conftest import running
from .rest_helpers import (
    auth_headers,
    get,
    limit_order,
    post,
    raw_get,
    raw_post,
    rest_example,
    rest_shape,
    sign,
)

VECTORS = rest_example("signing_vectors.json")


@asynccontextmanager
async def manual(**kwargs: Any) -> AsyncIterator[tuple[Emulator, ManualClock]]:
    """An emulator on a clock that moves only when told (no private connections here: the
    idle watchdog would spin a manual clock)."""
    clock = ManualClock(start=0.1)
    cfg: dict[str, Any] = {"auto_tick": False, "latency": 0.0}
    cfg.update(kwargs)
    async with Emulator(EmulatorConfig(**cfg), clock=clock) as emu:
        yield emu, clock


# -- signing -------------------------------------------------------------------------------------


async def test_signing_vectors_are_accepted() -> None:
    key, secret = VECTORS["api_key"], VECTORS["api_secret"]
    account = AccountConfig(api_key=key, api_secret=secret)
    # the vectors' timestamp is 1700000000000: the manual clock's wall time starts there
    async with manual(accounts=(account,)) as (emu, _):
        assert 0 <= emu.server_time_ms() - int(VECTORS["timestamp"]) < 1000
        # signed right, answered after auth: everything OK but three business answers
        expected = {
            # a cursor of the real exchange is not one of the emulator's (opaque) cursors
            "GET with cursor passed back verbatim": (10001, "params error: cursor invalid"),
            # /v5/account/info is not emulated: an empty query to /v5/order/realtime instead
            "GET without parameters": (10001, "params error: category is required"),
            # the same order as the case before it: its orderLinkId is taken
            "POST pybit-style JSON (', ' and ': ' separators) - same data, different bytes, "
            "different signature": (110072, "OrderLinkedID is duplicate"),
        }
        assert set(expected) < {case["name"] for case in VECTORS["cases"]}
        for case in VECTORS["cases"]:
            window = case.get("recv_window", VECTORS["recv_window"])
            payload = case.get("body", case.get("query", ""))
            prefix = f"{VECTORS['timestamp']}{key}{window or ''}"
            assert sign(secret, prefix + payload) == case["X-BAPI-SIGN"], case["name"]
            headers = {
                "X-BAPI-API-KEY": key,
                "X-BAPI-TIMESTAMP": VECTORS["timestamp"],
                "X-BAPI-SIGN": case["X-BAPI-SIGN"],
            }
            if window is not None:
                headers["X-BAPI-RECV-WINDOW"] = window
            path = case["path"] if case["path"] != "/v5/account/info" else "/v5/order/realtime"
            if case["method"] == "GET":
                reply = await raw_get(emu, path, case["query"], headers)
            else:
                reply = await raw_post(emu, path, case["body"], headers)
            assert reply.status == 200
            outcome = (reply.code, reply.body["retMsg"])
            assert outcome == expected.get(case["name"], (0, "OK")), (case["name"], reply.body)
        # what each accepted request did
        [order] = emu.account(key).open_orders
        assert order["orderLinkId"] == "test-0001" and order["price"] == "30000"


async def test_auth_failures_in_bybits_order() -> None:
    async with running(auto_tick=False) as emu:
        path, query = "/v5/position/list", "category=linear&symbol=BTCUSDT"
        # wrong secret: 10004 echoing the exact payload the server signed
        headers = auth_headers(emu, query, secret="wrong")
        reply = await raw_get(emu, path, query, headers)
        origin = f"{headers['X-BAPI-TIMESTAMP']}{KEY}5000{query}"
        assert reply.code == 10004
        assert reply.body["retMsg"] == f"error sign! origin_string[{origin}]"
        assert reply.body["result"] == {} and reply.body["retExtInfo"] == {}
        assert "\\u0026" in reply.text  # Go's escaping of '&'
        # expired (and ahead by a second): 10002 with the observed text, before key checks
        old = emu.server_time_ms() - 6000
        reply = await raw_get(emu, path, query, auth_headers(emu, query, ts=old, key="nobody"))
        assert reply.code == 10002
        assert reply.body["retMsg"] == (
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{old}],server_timestamp[{reply.body['time']}],recv_window[5000]"
        )
        ahead = emu.server_time_ms() + 1500
        reply = await raw_get(emu, path, query, auth_headers(emu, query, ts=ahead))
        assert reply.code == 10002
        # a wider recv window lets the old timestamp in
        old = emu.server_time_ms() - 6000
        reply = await raw_get(
            emu, path, query, auth_headers(emu, query, ts=old, recv_window="20000")
        )
        assert reply.code == 0
        # unknown key (before the signature is looked at)
        reply = await raw_get(emu, path, query, auth_headers(emu, query, key="nobody"))
        assert reply.code == 10003 and reply.body["retMsg"] == "API key is invalid."
        # missing headers: the three observed forms
        ts = str(emu.server_time_ms())
        cases = [
            ({}, "empty value: apiTimestamp[] apiKey[] apiSignature[]"),
            ({"X-BAPI-TIMESTAMP": ts}, f"empty value: apiTimestamp[{ts}] apiKey[] apiSignature[]"),
            ({"X-BAPI-API-KEY": KEY}, f"empty value: apiTimestamp[] apiKey[{KEY}]"),
            (
                {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": ts},
                f"empty value: apiTimestamp[{ts}] apiKey[{KEY}] apiSignature[]",
            ),
        ]
        for headers, text in cases:
            reply = await raw_get(emu, path, query, headers)
            assert (reply.code, reply.body["retMsg"]) == (10001, text)
        bad_ts = {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": "soon", "X-BAPI-SIGN": "ab"}
        reply = await raw_get(emu, path, query, bad_ts)
        assert reply.body["retMsg"] == "openapi params error! req_timestamp invalid"
        # the server clock's skew is what counts (a client 60 s behind fails)
        emu.set_clock_skew(60_000)
        reply = await raw_get(
            emu, path, query, auth_headers(emu, query, ts=emu.server_time_ms() - 60_000)
        )
        assert reply.code == 10002
        emu.set_clock_skew(0)
        # a read-only key may read, not trade
        emu.add_account(AccountConfig(api_key="RO", api_secret="ro-secret", read_only=True))
        reply = await get(emu, path, query, key="RO", secret="ro-secret")
        assert reply.code == 0
        reply = await post(emu, "/v5/order/create", limit_order(), key="RO", secret="ro-secret")
        assert reply.code == 10005
        assert reply.body["retMsg"] == rest_example("error_permission_denied.json")["retMsg"]


async def test_query_is_signed_raw_sorted_or_not_encoded_or_not() -> None:
    async with running(auto_tick=False) as emu:
        await post(emu, "/v5/order/create", limit_order(orderLinkId="raw-1"))
        for query in (
            "category=linear&orderLinkId=raw-1&symbol=BTCUSDT",  # pybit: sorted
            "symbol=BTCUSDT&category=linear&orderLinkId=raw-1",  # ccxt: as inserted
            "category=linear&symbol=%42TCUSDT&orderLinkId=raw%2D1",  # bybit-api: encoded
        ):
            reply = await get(emu, "/v5/order/realtime", query)
            assert reply.code == 0, (query, reply.body)
            [item] = reply.result["list"]
            assert item["orderLinkId"] == "raw-1"
        # signing a re-built (sorted) string while sending another order fails
        sent = "symbol=BTCUSDT&category=linear"
        headers = auth_headers(emu, "category=linear&symbol=BTCUSDT")
        reply = await raw_get(emu, "/v5/position/list", sent, headers)
        assert reply.code == 10004
        # POST: the exact bytes, whatever the spacing; JSON null = absent; numbers for qty/price
        body = '{"category": "linear",  "symbol":"BTCUSDT","side":"Buy","orderType":"Limit",'
        body += '"qty":0.01,"price":1000,"orderLinkId":null,"reduceOnly":"false"}'
        reply = await raw_post(emu, "/v5/order/create", body, auth_headers(emu, body))
        assert reply.code == 0, reply.body
        for bad in ("[1, 2]", "not json"):
            reply = await raw_post(emu, "/v5/order/create", bad, auth_headers(emu, bad))
            assert reply.code == 10001


# -- envelope, headers, routes -------------------------------------------------------------------


async def test_envelope_headers_and_routes() -> None:
    async with running(auto_tick=False) as emu:
        reply = await raw_get(emu, "/v5/market/time")
        assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
        assert re.fullmatch(r"[0-9a-f]{32}", reply.headers["Traceid"])
        assert int(reply.headers["Timenow"]) == reply.body["time"]
        assert list(reply.body) == ["retCode", "retMsg", "result", "retExtInfo", "time"]
        assert "X-Bapi-Limit" not in reply.headers  # public: IP limit only
        reply = await get(emu, "/v5/order/realtime", "category=linear&settleCoin=USDT")
        assert reply.headers["X-Bapi-Limit"] == "50"
        assert reply.headers["X-Bapi-Limit-Status"] == "49"
        assert reply.headers["X-Bapi-Limit-Reset-Timestamp"] == reply.headers["Timenow"]
        reply = await raw_get(emu, "/v5/order/nothing")
        assert reply.status == 404
        reply = await raw_get(emu, "/v5/order/create")
        assert (reply.status, reply.code, reply.body["retMsg"]) == (200, 10001, "method error")
        # business errors are HTTP 200 with result {}
        reply = await post(
            emu, "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderId": "x"}
        )
        assert (reply.status, reply.code, reply.result) == (200, 110001, {})
        reply = await raw_get(emu, "/v5/market/tickers", "category=linear&symbol=NOPE")
        assert reply.body["retMsg"] == rest_example("error_not_supported_symbols.json")["retMsg"]


async def test_market_limits_outside_their_range_are_refused() -> None:
    async with running(auto_tick=False) as emu:
        option = emu.market.symbols("option")[0]
        cases = (
            ("/v5/market/orderbook", "category=linear&symbol=BTCUSDT", 1000),
            ("/v5/market/orderbook", f"category=option&symbol={option}", 25),
            ("/v5/market/recent-trade", "category=spot&symbol=BTCUSDT", 60),
            ("/v5/market/recent-trade", "category=linear&symbol=BTCUSDT", 1000),
            ("/v5/market/kline", "category=linear&symbol=BTCUSDT&interval=1", 1000),
        )
        for path, query, most in cases:
            assert (await raw_get(emu, path, f"{query}&limit={most}")).code == 0, (path, query)
            for bad in (0, -1, most + 1):
                reply = await raw_get(emu, path, f"{query}&limit={bad}")
                assert (reply.code, reply.body["retMsg"]) == (
                    10001,
                    "params error: limit invalid",
                ), (path, query, bad)


# -- rate limits ---------------------------------------------------------------------------------


async def test_rate_limit_per_uid_and_endpoint() -> None:
    limits = {"/v5/order/realtime": 3, "/v5/order/create-batch": 3}
    async with manual(rest_rate_limits=limits, rest_rate_scale=0.2) as (emu, clock):
        query = "category=linear&settleCoin=USDT"
        statuses = []
        for _ in range(3):
            reply = await get(emu, "/v5/order/realtime", query)
            assert reply.code == 0
            statuses.append(reply.headers["X-Bapi-Limit-Status"])
        assert statuses == ["2", "1", "0"]
        first = int(reply.headers["Timenow"])
        reply = await get(emu, "/v5/order/realtime", query)
        assert reply.code == 10006
        assert reply.body["retMsg"] == "Too many visits. Exceeded the API Rate Limit."
        assert reply.headers["X-Bapi-Limit"] == "3"
        assert reply.headers["X-Bapi-Limit-Status"] == "0"
        assert int(reply.headers["X-Bapi-Limit-Reset-Timestamp"]) == first + 1000
        # another endpoint has its own quota (create: 10/s x 0.2 = 2)
        for expected in (0, 0, 10006):
            reply = await post(emu, "/v5/order/create", limit_order())
            assert reply.code == expected
        assert reply.headers["X-Bapi-Limit"] == "2"
        clock.advance(1.0)
        assert (await get(emu, "/v5/order/realtime", query)).code == 0
        # batches count orders: 5 orders with 3 left: the first 3 placed, 2 refused
        batch = {
            "category": "linear",
            "request": [limit_order(price=str(1000 + i)) for i in range(5)],
        }
        for item in batch["request"]:
            del item["category"]
        reply = await post(emu, "/v5/order/create-batch", batch)
        assert reply.code == 0
        codes = [x["code"] for x in reply.body["retExtInfo"]["list"]]
        assert codes == [0, 0, 0, 10006, 10006]
        assert [bool(x["orderId"]) for x in reply.result["list"]] == [True] * 3 + [False] * 2
        reply = await post(emu, "/v5/order/create-batch", batch)
        assert reply.code == 10006


@pytest.mark.parametrize("rate_limit", [None, 10])
async def test_an_oversized_batch_is_refused_whole_even_when_rate_limited(
    rate_limit: int | None,
) -> None:
    limits = {} if rate_limit is None else {"/v5/order/create-batch": rate_limit}
    async with manual(rest_rate_limits=limits) as (emu, _):
        for category, size, most in (("linear", 25, 20), ("spot", 11, 10)):
            items = [limit_order(price=str(1000 + i)) for i in range(size)]
            for item in items:
                del item["category"]
            reply = await post(
                emu, "/v5/order/create-batch", {"category": category, "request": items}
            )
            assert reply.code == 10001, reply.body
            assert reply.body["retMsg"] == (
                f"params error: at most {most} orders per batch for {category}"
            )
            assert reply.result == {} and emu.account(KEY).open_orders == []
            quota = int(reply.headers["X-Bapi-Limit"])
            assert reply.headers["X-Bapi-Limit-Status"] == str(quota - 1)  # counted once
        reply = await post(emu, "/v5/order/create-batch", {"category": "linear", "request": []})
        assert reply.code == 10001 and emu.account(KEY).open_orders == []


# -- pagination ----------------------------------------------------------------------------------


async def test_cursors_raw_and_double_encoded() -> None:
    async with running(auto_tick=False, rest_page_size=2) as emu:
        ids = []
        for i in range(5):
            reply = await post(emu, "/v5/order/create", limit_order(price=str(1000 + i)))
            ids.append(reply.result["orderId"])
        base = "category=linear&settleCoin=USDT&limit=50"
        first = await get(emu, "/v5/order/realtime", base)
        assert [o["orderId"] for o in first.result["list"]] == ids[::-1][:2]
        cursor = first.result["nextPageCursor"]
        assert "%3D" in cursor and "=" not in cursor  # percent-encoded and opaque
        raw = await get(emu, "/v5/order/realtime", f"{base}&cursor={cursor}")
        double = await get(
            emu, "/v5/order/realtime", f"{base}&cursor={urllib.parse.quote(cursor, safe='')}"
        )
        assert raw.result["list"] == double.result["list"]
        assert [o["orderId"] for o in raw.result["list"]] == ids[::-1][2:4]
        last = await get(emu, "/v5/order/realtime", f"{base}&cursor={raw.result['nextPageCursor']}")
        assert [o["orderId"] for o in last.result["list"]] == ids[:1]
        end = await get(emu, "/v5/order/realtime", f"{base}&cursor={last.result['nextPageCursor']}")
        assert end.result["list"] == [] and end.result["nextPageCursor"] == ""
        # executions: newest first over several pages, nothing twice
        for _ in range(3):
            await post(
                emu,
                "/v5/order/create",
                {
                    "category": "linear",
                    "symbol": "BTCUSDT",
                    "side": "Sell",
                    "orderType": "Market",
                    "qty": "0.01",
                },
            )
        truth = [e["execId"] for e in emu.account(KEY).executions][::-1]
        seen: list[str] = []
        query = "category=linear"
        while True:
            page = await get(emu, "/v5/execution/list", query)
            assert page.code == 0 and len(page.result["list"]) <= 2
            seen += [e["execId"] for e in page.result["list"]]
            cursor = page.result["nextPageCursor"]
            if not page.result["list"] or not cursor:
                break
            query = f"category=linear&cursor={cursor}"
        assert seen == truth and len(truth) >= 3
        # 7-day rules
        now = emu.server_time_ms()
        week = 7 * 86_400_000
        early = now - week - 60_000
        reply = await get(emu, "/v5/execution/list", f"category=linear&startTime={early}")
        assert reply.code == 0 and reply.result["list"] == []  # [start, start + 7 days]
        reply = await get(
            emu, "/v5/execution/list", f"category=linear&startTime={now - week - 1}&endTime={now}"
        )
        assert reply.code == 10001
        reply = await get(emu, "/v5/execution/list", f"category=linear&endTime={now + 1000}")
        assert len(reply.result["list"]) == 2


async def test_order_history_lag_and_recently_closed_cache() -> None:
    async with manual(rest_history_lag=0.5) as (emu, clock):
        placed = await post(emu, "/v5/order/create", limit_order(orderLinkId="lagging"))
        order_id = placed.result["orderId"]
        cancel = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "lagging"}
        assert (await post(emu, "/v5/order/cancel", cancel)).code == 0
        history = await get(emu, "/v5/order/history", "category=linear")
        assert history.result["list"] == []  # not yet: history lags
        by_id = await get(emu, "/v5/order/history", f"category=linear&orderId={order_id}")
        assert by_id.result["list"] == []
        realtime = await get(emu, "/v5/order/realtime", f"category=linear&orderId={order_id}")
        [item] = realtime.result["list"]  # realtime knows it at once (recently closed)
        assert item["orderStatus"] == "Cancelled" and item["cancelType"] == "CancelByUser"
        closed = await get(emu, "/v5/order/realtime", "category=linear&settleCoin=USDT&openOnly=1")
        assert [o["orderId"] for o in closed.result["list"]] == [order_id]
        opened = await get(emu, "/v5/order/realtime", "category=linear&settleCoin=USDT")
        assert opened.result["list"] == []
        clock.advance(0.5)
        history = await get(emu, "/v5/order/history", "category=linear")
        [item] = history.result["list"]
        assert item["orderId"] == order_id and item["orderStatus"] == "Cancelled"
        # a never-filled cancel stays 24 h
        clock.advance(86_400)
        history = await get(emu, "/v5/order/history", f"category=linear&orderId={order_id}")
        assert history.result["list"] == []


async def test_order_history_retention_24_hours_7_days_and_older() -> None:
    """rest.md §6.2: never-filled Cancelled / Rejected / Deactivated orders for 24 h, orders
    with fills for as long as they are asked for (a window older than 7 days included)."""
    day = 86_400_000
    async with manual() as (emu, clock):
        unfilled = await post(emu, "/v5/order/create", limit_order(orderLinkId="never"))
        cancel = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "never"}
        assert (await post(emu, "/v5/order/cancel", cancel)).code == 0
        market = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market"}
        filled = await post(emu, "/v5/order/create", {**market, "qty": "0.01"})
        bids, _ = emu.book_truth("linear", "BTCUSDT", 1)
        near = f"{float(bids[0][0]) - 10:.2f}"
        partly = await post(emu, "/v5/order/create", limit_order(near, orderLinkId="partly"))
        partly_id = partly.result["orderId"]
        emu.symbol_market("linear", "BTCUSDT").hit(partly_id, 5)
        cancel = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "partly"}
        assert (await post(emu, "/v5/order/cancel", cancel)).code == 0
        ids = {
            unfilled.result["orderId"]: "Cancelled",
            filled.result["orderId"]: "Filled",
            partly_id: "PartiallyFilledCanceled",
        }

        async def history(query: str = "") -> dict[str, str]:
            reply = await get(emu, "/v5/order/history", "category=linear" + query)
            assert reply.code == 0, reply.body
            return {o["orderId"]: o["orderStatus"] for o in reply.result["list"]}

        assert await history() == ids
        closed = max(int(o["updatedTime"]) for o in emu.account(KEY).orders.values())
        created = min(int(o["createdTime"]) for o in emu.account(KEY).orders.values())
        clock.advance((closed + day - 10 - emu.server_time_ms()) / 1000)
        assert await history() == ids  # just under 24 h: all of them
        clock.advance(0.02)
        with_fills = {k: v for k, v in ids.items() if v != "Cancelled"}
        assert await history() == with_fills  # just over 24 h: the never-filled cancel is gone
        unfilled_id = unfilled.result["orderId"]
        assert await history(f"&orderId={unfilled_id}") == {}
        clock.advance(7 * 86_400)  # 8 days: out of the default window (the last 7 days) ...
        assert await history() == {}
        window = f"&startTime={created - 1000}&endTime={closed + 1000}"
        assert await history(window) == with_fills  # ... but listed when asked for that window
        assert await history(f"{window}&orderId={unfilled_id}") == {}


@pytest.mark.parametrize(
    ("status", "has_fills", "kept_until"),
    [
        ("Cancelled", False, "day"),
        ("Rejected", False, "day"),
        ("Deactivated", False, "day"),
        ("Filled", True, "always"),
        ("PartiallyFilledCanceled", True, "always"),
        ("Cancelled", True, "always"),
    ],
)
def test_history_retention_tiers(status: str, has_fills: bool, kept_until: str) -> None:
    day, week = 86_400_000, 7 * 86_400_000
    ages = (0, day - 1, day, day + 1, week, week + 1, 400 * day)
    kept = [history_keeps(status, has_fills, age) for age in ages]
    if kept_until == "day":
        assert kept == [True, True, True, False, False, False, False]
    else:
        assert all(kept)


# -- funding -------------------------------------------------------------------------------------


async def test_funding_execution_on_stream_and_rest() -> None:
    async with running(auto_tick=False) as emu:
        ws = await private_client(emu)
        assert (await ws.subscribe("execution", "wallet", "position"))["success"]
        buy = {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Market",
            "qty": "0.1",
        }
        assert (await post(emu, "/v5/order/create", buy)).code == 0
        before = emu.account(KEY).balances["USDT"]
        [exec_id] = emu.charge_funding(KEY, "linear", "BTCUSDT", "0.0001")
        reply = await get(emu, "/v5/execution/list", "category=linear&execType=Funding")
        [item] = reply.result["list"]
        assert item["execId"] == exec_id and item["execType"] == "Funding"
        assert (item["orderType"], item["orderId"], item["execQty"]) == ("UNKNOWN", "", "0.1")
        fee = float(item["execFee"])
        assert fee == pytest.approx(0.1 * float(item["execPrice"]) * 0.0001)
        after = emu.account(KEY).balances["USDT"]
        assert float(before) - float(after) == pytest.approx(fee)

        def funding_pushed() -> list[dict[str, Any]]:
            return [
                e
                for m in ws.listener.all_data
                if m["topic"] == "execution"
                for e in m["data"]
                if e["execType"] == "Funding"
            ]

        [pushed] = await emu.wait_for(funding_pushed)
        assert pushed["execId"] == exec_id and pushed["execFee"] == item["execFee"]
        assert emu.charge_funding(KEY, "linear", "ETHUSDT", "0.0001") == []  # no position
        ws.close()


# -- failure switches ----------------------------------------------------------------------------


async def test_failure_switches() -> None:
    async with running(auto_tick=False) as emu:
        path = "/v5/order/realtime"
        query = "category=linear&settleCoin=USDT"
        for code in (10002, 10003, 10004, 10005, 10006, 10010, 10016):
            emu.inject_rest_error(code)
            reply = await get(emu, path, query)
            assert reply.code == code and reply.result == {}
            if code == 10006:
                assert reply.headers["X-Bapi-Limit-Status"] == "0"
                assert int(reply.headers["X-Bapi-Limit-Reset-Timestamp"]) > reply.body["time"]
            assert (await get(emu, path, query)).code == 0  # one request only
        assert (
            rest_example("error_unmatched_ip.json")["retMsg"]
            == (await _injected(emu, 10010)).body["retMsg"]
        )
        emu.inject_rest_error(10006, reset_header=False)
        reply = await get(emu, path, query)
        assert reply.code == 10006 and "X-Bapi-Limit-Reset-Timestamp" not in reply.headers
        assert "X-Bapi-Limit" in reply.headers
        for status in (403, 429, 500, 502, 503, 504):
            emu.inject_rest_http(status)
            reply = await raw_get(emu, "/v5/market/time")
            assert reply.status == status
            with pytest.raises(json.JSONDecodeError):
                json.loads(reply.text)
        # limited to a path; counts
        emu.inject_rest_error(10016, 2, path="/v5/order/create")
        assert (await get(emu, path, query)).code == 0
        assert (await post(emu, "/v5/order/create", limit_order())).code == 10016
        assert (await post(emu, "/v5/order/create", limit_order())).code == 10016
        assert (await post(emu, "/v5/order/create", limit_order())).code == 0
        # slow: processed at once, answered late
        emu.inject_rest_delay(0.3, path="/v5/order/create")
        loop_time = emu.clock.monotonic()
        task = asyncio.create_task(post(emu, "/v5/order/create", limit_order(orderLinkId="slow")))
        await emu.wait_for(
            lambda: any(o["orderLinkId"] == "slow" for o in emu.account(KEY).open_orders)
        )
        assert not task.done()  # placed at once, the response held back
        reply = await task
        assert reply.code == 0 and emu.clock.monotonic() - loop_time >= 0.3
        # a delay is taken by a routed request only (like the other switches)
        emu.inject_rest_delay(30.0)
        missing = await asyncio.wait_for(raw_get(emu, "/v5/nope"), 5.0)
        assert missing.status == 404
        wrong = await asyncio.wait_for(raw_post(emu, "/v5/market/time", "{}"), 5.0)
        assert wrong.code == 10001 and wrong.body["retMsg"] == "method error"
        assert len(emu.pending_rest_failures()) == 1
        emu.clear_rest_failures()
        # partial batch failure
        emu.inject_batch_failure([1])
        batch = {
            "category": "linear",
            "request": [
                {k: v for k, v in limit_order(price=str(p)).items() if k != "category"}
                for p in (1001, 1002, 1003)
            ],
        }
        reply = await post(emu, "/v5/order/create-batch", batch)
        assert [x["code"] for x in reply.body["retExtInfo"]["list"]] == [0, 10001, 0]
        assert (
            reply.result["list"][1]["orderId"] == "" and reply.result["list"][1]["createAt"] == ""
        )
        rest_shape(reply.body, rest_example("order_create_batch_response_partial.json"))
        emu.inject_rest_error(10002, 5)
        assert len(emu.pending_rest_failures()) == 1 and emu.clear_rest_failures() == 1
        with pytest.raises(ValueError):
            emu.inject_rest_error(110001)
        with pytest.raises(ValueError):
            emu.inject_rest_http(200)


async def _injected(emu: Emulator, code: int) -> Any:
    emu.inject_rest_error(code)
    return await raw_get(emu, "/v5/market/time")


# -- shapes against the docs' examples -----------------------------------------------------------


async def test_shapes_match_the_examples() -> None:
    async with running(auto_tick=False) as emu:
        for category, symbol in (("spot", "BTCUSDT"), ("inverse", "BTCUSD"), ("linear", "BTCUSDT")):
            emu.symbol_market(category, symbol)
        emu.tick(None, 300)
        market = [
            ("/v5/market/time", "", "market_time.json"),
            (
                "/v5/market/instruments-info",
                "category=linear",
                "market_instruments_info_linear.json",
            ),
            ("/v5/market/instruments-info", "category=spot", "market_instruments_info_spot.json"),
            (
                "/v5/market/instruments-info",
                "category=option",
                "market_instruments_info_option.json",
            ),
            ("/v5/market/tickers", "category=linear&symbol=BTCUSDT", "market_tickers_linear.json"),
            ("/v5/market/tickers", "category=inverse&symbol=BTCUSD", "market_tickers_inverse.json"),
            ("/v5/market/tickers", "category=spot&symbol=BTCUSDT", "market_tickers_spot.json"),
            ("/v5/market/tickers", "category=option&baseCoin=BTC", "market_tickers_option.json"),
            ("/v5/market/orderbook", "category=spot&symbol=BTCUSDT", "market_orderbook_spot.json"),
            (
                "/v5/market/recent-trade",
                "category=spot&symbol=BTCUSDT&limit=3",
                "market_recent_trade_spot.json",
            ),
            (
                "/v5/market/kline",
                "category=inverse&symbol=BTCUSD&interval=1&limit=3",
                "market_kline_inverse.json",
            ),
        ]
        for path, query, name in market:
            reply = await raw_get(emu, path, query)
            assert reply.code == 0, (path, reply.body)
            assert reply.result.get("list", [1]), (path, "empty list proves nothing")
            rest_shape(reply.body, rest_example(name), f"{name}")
        # account side
        rest = "/v5/order/create"
        r = await post(emu, rest, limit_order(orderLinkId="shape-1"))
        rest_shape(r.body, rest_example("order_create_response.json"))
        amend = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "shape-1", "qty": "0.02"}
        rest_shape(
            (await post(emu, "/v5/order/amend", amend)).body,
            rest_example("order_amend_response.json"),
        )
        buy = {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Market",
            "qty": "0.01",
        }
        assert (await post(emu, rest, buy)).code == 0
        await post(emu, rest, limit_order(orderLinkId="shape-2"))
        rest_shape(
            (await get(emu, "/v5/order/realtime", "category=linear&symbol=BTCUSDT")).body,
            rest_example("order_realtime.json"),
        )
        rest_shape(
            (await get(emu, "/v5/order/history", "category=linear")).body,
            rest_example("order_history.json"),
        )
        rest_shape(
            (await get(emu, "/v5/execution/list", "category=linear")).body,
            rest_example("execution_list.json"),
        )
        for query in ("category=linear&symbol=BTCUSDT", "category=linear&symbol=ETHUSDT"):
            reply = await get(emu, "/v5/position/list", query)
            rest_shape(reply.body, rest_example("position_list_linear_flat.json"))
        flat = (await get(emu, "/v5/position/list", "category=linear&symbol=ETHUSDT")).result
        assert flat["list"][0]["size"] == "0" and flat["list"][0]["seq"] == -1
        wallet = await get(emu, "/v5/account/wallet-balance", "accountType=UNIFIED&coin=BTC")
        rest_shape(wallet.body, rest_example("account_wallet_balance.json"))
        cancel = {
            "category": "linear",
            "symbol": "BTCUSDT",
            "orderLinkId": "shape-1",
            "orderId": None,
        }
        rest_shape(
            (await post(emu, "/v5/order/cancel", cancel)).body,
            rest_example("order_cancel_response.json"),
        )
        cancel_all = {"category": "linear", "symbol": None, "settleCoin": "USDT"}
        reply = await post(emu, "/v5/order/cancel-all", cancel_all)
        rest_shape(reply.body, rest_example("order_cancel_all_response.json"))
        assert len(reply.result["list"]) == 1 and emu.account(KEY).open_orders == []
        batch = rest_example("order_create_batch_request.json")
        reply = await post(emu, "/v5/order/create-batch", batch)
        assert [x["code"] for x in reply.body["retExtInfo"]["list"]] == [0, 10001]  # no ATOMUSDT
        rest_shape(reply.body, rest_example("order_create_batch_response.json"))
        # the request examples are accepted as they are
        reduce_only = rest_example("order_create_request_reduce_only.json")
        reduce_only["qty"], reduce_only["price"] = "0.01", "90000"
        assert (await post(emu, rest, reduce_only)).code == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rest", "yes"),
        ("rest_port", -1),
        ("rest_port", 70000),
        ("rest_page_size", 0),
        ("rest_page_size", True),
        ("rest_history_lag", -1.0),
        ("rest_rate_scale", 0),
        ("rest_rate_limits", {"/v5/order/create": 0}),
        ("rest_rate_limits", {"order/create": 5}),
    ],
)
def test_rest_config_is_validated(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        EmulatorConfig(**{field: value})  # type: ignore[arg-type]


def test_rest_port_must_differ_from_the_websocket_port() -> None:
    with pytest.raises(ValueError, match="rest_port"):
        EmulatorConfig(port=9100, rest_port=9100)
    assert EmulatorConfig(rest_page_size=None, rest_history_lag=0.5).rest_history_lag == 0.5
