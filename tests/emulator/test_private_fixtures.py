"""Every example message of the private and trade streams in ``tests/fixtures/bybit-v5``: the
emulator accepts the requests and emits replies / pushes of the same shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hean.emulator import Emulator

from .accounts_helpers import (
    KEY,
    ORDER_FIELDS,
    POSITION_FIELDS,
    SECRET,
    like_example,
    market,
    place,
    signature,
    trade_client,
    trade_msg,
)
from .conftest import connect, example, running, same_shape, until

PRIVATE_OR_TRADE = {
    "auth_fail.json",
    "auth_ok.json",
    "auth_request.json",
    "dcp_subscribe_request.json",
    "execution.json",
    "execution_fast.json",
    "order.json",
    "order_create_batch_request.json",
    "order_create_batch_response.json",
    "order_create_error_response.json",
    "order_create_request.json",
    "order_create_response.json",
    "order_subscribe_request.json",
    "ping_request.json",
    "pong_private.json",
    "pong_trade.json",
    "position.json",
    "subscribe_ok_private.json",
    "trade_auth_ok.json",
    "trade_auth_request.json",
    "trade_ping_request.json",
    "wallet.json",
}
"""Covered here or, for the batch and create request/response files, in test_trade.py
(``greeks.json``: the emulator accepts the topic but pushes no option greeks)."""


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running(auto_tick=False, trade_rate_limit=10_000) as e:
        yield e


def _with_credentials(msg: dict[str, Any], emu: Emulator) -> dict[str, Any]:
    expires = emu.server_time_ms() + 10_000
    msg["args"] = [KEY, expires, signature(SECRET, expires)]
    return msg


async def test_private_requests_and_replies(emu: Emulator) -> None:
    c = await connect(emu, "private")
    ping = example("ping_request.json")
    same_shape(await c.request(ping), example("pong_private.json"))
    auth = _with_credentials(example("auth_request.json"), emu)
    reply = await c.request(auth)
    assert reply["success"] is True and reply["req_id"] == auth["req_id"]
    same_shape({k: v for k, v in reply.items() if k != "req_id"}, example("auth_ok.json"))
    same_shape(
        await c.request(example("order_subscribe_request.json")),
        example("subscribe_ok_private.json"),
    )
    dcp = await c.request(example("dcp_subscribe_request.json"))
    assert dcp["success"] is True
    failing = await connect(emu, "private")
    auth = example("auth_request.json")
    expired = emu.server_time_ms() - 1
    auth["args"] = [KEY, expired, signature(SECRET, expired)]
    fail = await failing.request(auth)
    same_shape({k: v for k, v in fail.items() if k != "req_id"}, example("auth_fail.json"))
    assert fail["ret_msg"] == example("auth_fail.json")["ret_msg"]


async def test_trade_requests_and_replies(emu: Emulator) -> None:
    c = await connect(emu, "trade")
    same_shape(await c.request(example("trade_ping_request.json")), example("pong_trade.json"))
    ok = await c.request(_with_credentials(example("trade_auth_request.json"), emu))
    same_shape(ok, example("trade_auth_ok.json"))
    # an insufficient-balance rejection, in the error response's shape
    spot = {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit"}
    reply = await c.request(
        trade_msg(emu, "order.create", {**spot, "qty": "50", "price": "60000"}, req_id="1")
    )
    expected = example("order_create_error_response.json")
    same_shape(reply, expected)
    assert (reply["retCode"], reply["retMsg"]) == (expected["retCode"], expected["retMsg"])


async def test_private_pushes(emu: Emulator) -> None:
    p = await connect(emu, "private")
    assert (await p.request(_with_credentials(example("auth_request.json"), emu)))["success"]
    topics = ["order", "execution", "execution.fast", "position", "wallet"]
    assert (await p.subscribe(*topics))["success"] is True
    t = await trade_client(emu)
    assert (await place(t, emu, market(qty="0.002")))["retCode"] == 0
    await until(lambda: {m["topic"] for m in p.listener.all_data} >= set(topics))
    await asyncio.sleep(0.05)
    got = {m["topic"]: m for m in p.drain_data()}
    order = example("order.json")
    like_example(got["order"], order, frozenset())
    like_example(got["order"]["data"][0], order["data"][0], ORDER_FIELDS)
    execution = example("execution.json")
    like_example(got["execution"], execution, frozenset())
    same_shape(got["execution"]["data"][0], {**execution["data"][0], "extraFees": []})
    same_shape(got["execution.fast"], example("execution_fast.json"))
    position = example("position.json")
    like_example(got["position"], position, frozenset())
    like_example(got["position"]["data"][0], position["data"][0], POSITION_FIELDS)
    same_shape(got["wallet"], example("wallet.json"))


def test_every_private_example_is_covered() -> None:
    from tests.conftest import FIXTURES

    assert {p.name for p in FIXTURES.glob("*.json")} >= PRIVATE_OR_TRADE
