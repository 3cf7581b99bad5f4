"""Orders against the simulated books and the private pushes they produce (topics, shapes,
positions, wallet, fills by simulated takers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from hean.emulator import Emulator

from .accounts_helpers import (
    KEY,
    ORDER_FIELDS,
    POSITION_FIELDS,
    like_example,
    limit,
    market,
    place,
    private_client,
    trade_client,
    trade_msg,
)
from .conftest import Client, example, running, same_shape, until

ALL = ("order", "execution", "execution.fast", "position", "wallet")


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running(auto_tick=False, trade_rate_limit=10_000) as e:
        yield e


async def subscribed(emu: Emulator, *topics: str) -> Client:
    c = await private_client(emu)
    reply = await c.subscribe(*topics)
    assert reply["success"] is True, reply
    return c


async def pushes(c: Client, n: int, timeout: float = 2.0) -> list[dict[str, Any]]:
    await until(lambda: len(c.listener.all_data) >= n, timeout)
    await asyncio.sleep(0.05)
    return c.drain_data()


def by_topic(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        out.setdefault(m["topic"], []).append(m)
    return out


async def test_market_order_pushes_every_stream_in_its_shape(emu: Emulator) -> None:
    p = await subscribed(emu, *ALL)
    t = await trade_client(emu)
    _, asks = emu.book_truth("linear", "BTCUSDT", 3)
    # more than the best level: fills across levels
    qty = Decimal(asks[0][1]) + Decimal("0.001")
    trades_before = len(emu.trades_truth("linear", "BTCUSDT"))
    ack = await place(t, emu, market(qty=str(qty)), req_id="m1")
    assert ack["retCode"] == 0
    topics = by_topic(await pushes(p, 5))
    assert list(topics) == ["execution.fast", "order", "execution", "position", "wallet"]
    [order_msg] = topics["order"]
    like_example(order_msg, example("order.json"), frozenset())
    [order] = order_msg["data"]
    like_example(order, example("order.json")["data"][0], ORDER_FIELDS)
    assert order["orderId"] == ack["data"]["orderId"] and order["orderStatus"] == "Filled"
    assert order["side"] == "Buy" and order["orderType"] == "Market" and order["qty"] == str(qty)
    assert order["timeInForce"] == "IOC" and order["leavesQty"] == "0"
    [exec_msg] = topics["execution"]
    same_shape({k: v for k, v in exec_msg.items() if k != "data"}, _envelope("execution.json"))
    executions = exec_msg["data"]  # one per maker order matched
    for item in executions:
        same_shape(
            {**item, "extraFees": []}, {**example("execution.json")["data"][0], "extraFees": []}
        )
        assert item["orderId"] == order["orderId"] and item["execType"] == "Trade"
        assert item["isMaker"] is False and item["feeCurrency"] == "USDT"
    assert sum(Decimal(e["execQty"]) for e in executions) == qty
    prices = sorted({Decimal(e["execPrice"]) for e in executions})
    assert prices == [Decimal(asks[0][0]), Decimal(asks[1][0])]  # two price levels
    assert exec_msg["id"].startswith(f"{emu.account(KEY).uid}_BTCUSDT_")
    [fast] = topics["execution.fast"]
    same_shape(fast, example("execution_fast.json"))
    assert [f["execId"] for f in fast["data"]] == [e["execId"] for e in executions]
    [pos_msg] = topics["position"]
    [pos] = pos_msg["data"]
    like_example(pos, example("position.json")["data"][0], POSITION_FIELDS)
    assert (pos["side"], pos["size"]) == ("Buy", str(qty))
    [wallet] = topics["wallet"]
    same_shape(wallet, example("wallet.json"))
    for msg in (order_msg, exec_msg, pos_msg, wallet):
        assert isinstance(msg["id"], str) and isinstance(msg["creationTime"], int)
    assert "id" not in fast
    # the fills moved the public book and trade feed like any other order
    _, after = emu.book_truth("linear", "BTCUSDT", 1)
    assert Decimal(after[0][0]) > Decimal(asks[0][0])
    trades = emu.trades_truth("linear", "BTCUSDT")[trades_before:]
    assert len(trades) == len(executions) and {t_["S"] for t_ in trades} == {"Buy"}
    assert sum(Decimal(str(t_["v"])) for t_ in trades) == qty
    view = emu.account(KEY)
    truth = view.position("linear", "BTCUSDT")
    assert truth is not None
    assert (truth["size"], truth["entryPrice"], truth["seq"]) == (
        pos["size"],
        pos["entryPrice"],
        pos["seq"],
    )
    assert [e["execId"] for e in view.executions] == [e["execId"] for e in executions]


def _envelope(name: str) -> dict[str, Any]:
    return {k: v for k, v in example(name).items() if k != "data"}


async def test_categorised_topics_get_their_own_name(emu: Emulator) -> None:
    p = await subscribed(emu, "order.linear", "execution.linear", "position.linear")
    q = await subscribed(emu, "order.spot", "execution.fast.spot", "wallet")
    t = await trade_client(emu)
    assert (await place(t, emu, limit(price="1000")))["retCode"] == 0
    got = by_topic(await pushes(p, 2))
    assert set(got) == {"order.linear", "position.linear"}  # nothing filled: no execution
    assert got["order.linear"][0]["data"][0]["category"] == "linear"
    got_q = by_topic(await pushes(q, 1))
    assert set(got_q) == {"wallet"}  # no spot order, no order.spot push
    assert (await place(t, emu, market("ETHUSDT", qty="100", category="spot")))["retCode"] == 0
    got_q = by_topic(await pushes(q, 3))
    assert set(got_q) == {"execution.fast.spot", "order.spot", "wallet"}
    assert got_q["order.spot"][0]["topic"] == "order.spot"
    await asyncio.sleep(0.05)
    assert p.drain_data() == []


async def test_position_pushed_on_every_create_amend_cancel(emu: Emulator) -> None:
    p = await subscribed(emu, "position", "order")
    t = await trade_client(emu)
    ack = await place(t, emu, limit(price="1000", orderLinkId="L1"))
    assert ack["retCode"] == 0
    order_id = ack["data"]["orderId"]
    first = by_topic(await pushes(p, 2))
    assert first["position"][0]["data"][0]["size"] == "0"  # no change, still pushed
    assert first["position"][0]["data"][0]["side"] == ""
    amend = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "L1", "qty": "0.02"}
    reply = await t.request(trade_msg(emu, "order.amend", {**amend, "price": "1100"}))
    assert reply["retCode"] == 0 and reply["data"]["orderId"] == order_id
    second = by_topic(await pushes(p, 2))
    amended = second["order"][0]["data"][0]
    assert (amended["qty"], amended["price"], amended["orderStatus"]) == ("0.02", "1100", "New")
    assert "position" in second
    cancel = {"category": "linear", "symbol": "BTCUSDT", "orderId": order_id}
    assert (await t.request(trade_msg(emu, "order.cancel", cancel)))["retCode"] == 0
    third = by_topic(await pushes(p, 2))
    cancelled = third["order"][0]["data"][0]
    assert cancelled["orderStatus"] == "Cancelled" and cancelled["cancelType"] == "CancelByUser"
    assert "position" in third
    assert emu.account(KEY).open_orders == []
    # the orderLinkId is free again
    assert (await place(t, emu, limit(price="1000", orderLinkId="L1")))["retCode"] == 0


async def test_time_in_force_outcomes(emu: Emulator) -> None:
    p = await subscribed(emu, "order")
    t = await trade_client(emu)
    bids, asks = emu.book_truth("linear", "ETHUSDT", 2)
    best_ask, best_bid = asks[0][0], bids[0][0]
    top = Decimal(asks[0][1])

    async def outcome(args: dict[str, Any]) -> dict[str, Any]:
        assert (await place(t, emu, args))["retCode"] == 0
        [msg] = await pushes(p, 1)
        item: dict[str, Any] = msg["data"][0]
        return item

    post = await outcome(limit("ETHUSDT", price=best_ask, qty="0.01", tif="PostOnly"))
    assert post["orderStatus"] == "Cancelled"
    assert post["rejectReason"] == "EC_PostOnlyWillTakeLiquidity" and post["cumExecQty"] == "0"
    fok = await outcome(limit("ETHUSDT", price=best_ask, qty=str(top + Decimal("0.01")), tif="FOK"))
    assert fok["orderStatus"] == "Cancelled" and fok["cumExecQty"] == "0"
    ioc = await outcome(limit("ETHUSDT", price=best_ask, qty=str(top + 1), tif="IOC"))
    assert ioc["orderStatus"] == "PartiallyFilledCanceled"
    assert Decimal(ioc["cumExecQty"]) == top
    _, asks = emu.book_truth("linear", "ETHUSDT", 1)
    gtc = await outcome(limit("ETHUSDT", price=asks[0][0], qty=str(Decimal(asks[0][1]) + 1)))
    assert gtc["orderStatus"] == "PartiallyFilled" and gtc["leavesQty"] == "1"
    [resting] = emu.account(KEY).open_orders
    assert resting["orderId"] == gtc["orderId"]
    bids_now, _ = emu.book_truth("linear", "ETHUSDT", 1)
    assert bids_now[0][0] == asks[0][0]  # the remainder rests as the new best bid
    del best_bid


async def test_resting_order_filled_by_simulated_takers(emu: Emulator) -> None:
    """Fills of user orders that happen later (market activity) come through fill_listeners."""
    p = await subscribed(emu, "order", "execution", "execution.fast")
    t = await trade_client(emu)
    bids, _ = emu.book_truth("linear", "BTCUSDT", 1)
    ack = await place(t, emu, limit(price=bids[0][0], qty="0.5"))  # joins the best bid
    order_id = ack["data"]["orderId"]
    await pushes(p, 1)
    for _ in range(400):
        emu.tick("linear")
        order = emu.account(KEY).orders[order_id]
        if order["cumExecQty"] != "0":
            break
    else:
        pytest.fail("no simulated taker reached the order")
    got = by_topic(await pushes(p, 3))
    execution = got["execution"][0]["data"][0]
    assert execution["orderId"] == order_id and execution["isMaker"] is True
    assert execution["feeRate"] == "0.0002"
    assert got["execution.fast"][0]["data"][0]["orderLinkId"] == ""
    assert got["order"][-1]["data"][0]["orderStatus"] in ("PartiallyFilled", "Filled")


async def test_positions_pnl_and_reduce_only(emu: Emulator) -> None:
    t = await trade_client(emu)
    p = await subscribed(emu, "order", "position")
    assert (await place(t, emu, market(qty="0.1")))["retCode"] == 0
    await pushes(p, 2)
    before = Decimal(emu.account(KEY).balances["USDT"])
    # reduce-only bigger than the position: cut to the position
    ack = await place(t, emu, {**market(side="Sell", qty="0.5"), "reduceOnly": True})
    assert ack["retCode"] == 0
    got = by_topic(await pushes(p, 2))
    order = got["order"][0]["data"][0]
    assert order["reduceOnly"] is True and order["qty"] == "0.1" and order["cumExecQty"] == "0.1"
    pos = got["position"][0]["data"][0]
    assert pos["size"] == "0" and pos["side"] == ""
    assert Decimal(pos["cumRealisedPnl"]) < 0  # crossing the spread twice, plus fees
    after = Decimal(emu.account(KEY).balances["USDT"])
    assert after < before  # the closing fill's loss and fee were booked
    assert Decimal(pos["curRealisedPnl"]) < 0
    # a resting reduce-only order is cancelled when its position goes away
    assert (await place(t, emu, market(qty="0.1")))["retCode"] == 0
    _, asks = emu.book_truth("linear", "BTCUSDT", 1)
    far = str(Decimal(asks[0][0]) + 5000)
    ro = await place(t, emu, {**limit(side="Sell", qty="0.1", price=far), "reduceOnly": True})
    assert ro["retCode"] == 0
    await pushes(p, 4)
    assert (await place(t, emu, market(side="Sell", qty="0.1")))["retCode"] == 0
    await until(lambda: not emu.account(KEY).open_orders)
    gone = emu.account(KEY).orders[ro["data"]["orderId"]]
    assert gone["orderStatus"] == "Cancelled" and gone["cancelType"] == "CancelByReduceOnly"


async def test_spot_balances_move_and_lock(emu: Emulator) -> None:
    t = await trade_client(emu)
    start = emu.account(KEY).balances
    assert start["BTC"] == "2"
    # market buy in quote coin (spot default)
    ack = await place(t, emu, market("BTCUSDT", qty="1000", category="spot"))
    assert ack["retCode"] == 0
    order = emu.account(KEY).orders[ack["data"]["orderId"]]
    assert order["marketUnit"] == "quoteCoin" and order["qty"] == "1000"
    assert Decimal(str(order["cumExecValue"])) <= 1000
    view = emu.account(KEY)
    assert Decimal(view.balances["BTC"]) > 2 and Decimal(view.balances["USDT"]) < 100_000
    # a limit sell locks base coin
    ack = await place(t, emu, limit("BTCUSDT", "Sell", qty="1", price="990000", category="spot"))
    assert ack["retCode"] == 0
    view = emu.account(KEY)
    assert Decimal(view.available["BTC"]) == Decimal(view.balances["BTC"]) - 1
    btc = next(c for c in view.wallet["coin"] if c["coin"] == "BTC")  # type: ignore[union-attr]
    assert btc["locked"] == "1"


async def test_wallet_has_no_snapshot_and_moves_with_deposits(emu: Emulator) -> None:
    p = await subscribed(emu, "wallet")
    await asyncio.sleep(0.1)
    assert p.drain_data() == []
    emu.set_balance(KEY, "USDT", "250.5")
    [msg] = await pushes(p, 1)
    usdt = next(c for c in msg["data"][0]["coin"] if c["coin"] == "USDT")
    assert usdt["walletBalance"] == "250.5"
    with pytest.raises(ValueError):
        emu.set_balance(KEY, "USDT", "-1")


async def test_inverse_and_option_orders(emu: Emulator) -> None:
    t = await trade_client(emu)
    p = await subscribed(emu, "position.inverse", "order.option")
    assert (await place(t, emu, market("BTCUSD", qty="100", category="inverse")))["retCode"] == 0
    [pos_msg] = await pushes(p, 1)
    pos = pos_msg["data"][0]
    assert pos["category"] == "inverse" and pos["size"] == "100" and pos["side"] == "Buy"
    assert Decimal(emu.account(KEY).balances["BTC"]) < 2  # fees in BTC
    option = emu.market.symbols("option")[0]
    _, asks = emu.book_truth("option", option, 1)
    ack = await place(t, emu, limit(option, qty="0.01", price=asks[0][0], category="option"))
    assert ack["retCode"] == 0
    [order_msg] = await pushes(p, 1)
    assert order_msg["topic"] == "order.option"
    assert order_msg["data"][0]["placeType"] == "price"


async def test_blackholed_private_connection_gets_no_pushes(emu: Emulator) -> None:
    p = await subscribed(emu, "wallet")
    emu.set_faults(emu.live_connections("private")[0].conn_id, blackhole=True)
    emu.set_balance(KEY, "USDT", 1)
    await asyncio.sleep(0.1)
    assert p.drain_data() == []
