"""HEAN's trade stream client (``BybitTradeWebSocket``) against the emulator: order entry with the
private events that follow, batches, typed errors, in-flight loss, and fresh connections after
``10016`` / ``10019``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.core.lifecycle import ConnectionState as S
from hean.emulator import Emulator, EmulatorConfig
from hean.exchange.bybit.protocol.auth import AuthError, AuthReason
from hean.exchange.bybit.ws_trade import (
    TradeConnectionLost,
    TradeDuplicateRequest,
    TradeError,
    TradeInsufficientBalance,
    TradeNotReady,
    TradeRateLimited,
    TradeServiceRestarting,
    TradeTimestampError,
    TradeUnknownOrder,
)
from tests.conftest import ms

from .conftest import Recorder
from .test_private_ws import (
    KEY,
    SECRET,
    SkewedClock,
    live_subscribed,
    make_private,
    make_trade,
    until,
)


@pytest.fixture
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    marker = request.node.get_closest_marker("emulator")
    kwargs: dict[str, Any] = {
        "ticker_interval": ms(10),
        "auto_tick": False,
        "trade_rate_limit": 1000,
    }
    if marker is not None:
        kwargs.update(marker.kwargs)
    async with Emulator(EmulatorConfig(**kwargs)) as e:
        yield e


@pytest.fixture
async def trade(emu: Emulator) -> AsyncIterator[Any]:
    client = make_trade(emu)
    await client.connect(timeout=ms(3000))
    yield client
    await client.disconnect()


def orders_of(recorder: Recorder, order_id: str) -> list[Any]:
    return [
        o
        for e in recorder.events[EventType.ORDER_UPDATE]
        for o in e.orders
        if o.order_id == order_id
    ]


async def test_create_amend_cancel_with_private_events(
    bus: EventBus, recorder: Recorder, emu: Emulator, trade: Any
) -> None:
    ws = make_private(bus, emu)
    await live_subscribed(ws, ["order.linear", "position.linear"])
    ack = await trade.create_order(
        category="linear",
        symbol="ETHUSDT",
        side="Sell",
        order_type="Limit",
        qty="0.5",
        price="9000",
        time_in_force="GTC",
        order_link_id="e2e-amend",
    )
    assert ack.ok and ack.rate_limit == 1000 and ack.rate_limit_status == 999
    assert ack.server_time_ms is not None and ack.trace_id and ack.latency is not None
    await until(lambda: orders_of(recorder, ack.order_id))
    amended = await trade.amend_order(
        category="linear", symbol="ETHUSDT", order_link_id="e2e-amend", qty="0.3", price="9100"
    )
    assert amended.order_id == ack.order_id
    await until(lambda: len(orders_of(recorder, ack.order_id)) == 2)
    cancelled = await trade.cancel_order(category="linear", symbol="ETHUSDT", order_id=ack.order_id)
    assert cancelled.order_link_id == "e2e-amend"
    await until(lambda: len(orders_of(recorder, ack.order_id)) == 3)
    new, changed, gone = orders_of(recorder, ack.order_id)
    assert (new.order_status, new.qty, new.price, new.side) == ("New", "0.5", "9000", "Sell")
    assert (changed.order_status, changed.qty, changed.price) == ("New", "0.3", "9100")
    assert gone.order_status == "Cancelled" and gone.cancel_type == "CancelByUser"
    assert all(e.topic == "order.linear" for e in recorder.events[EventType.ORDER_UPDATE])
    # a position message for each of the three ops, though the position never changed
    await until(lambda: len(recorder.events[EventType.POSITION_UPDATE]) == 3)
    assert {e.positions[0].size for e in recorder.events[EventType.POSITION_UPDATE]} == {"0"}
    assert emu.account(KEY).open_orders == []
    with pytest.raises(TradeUnknownOrder) as err:
        await trade.cancel_order(category="linear", symbol="ETHUSDT", order_id=ack.order_id)
    assert err.value.ret_code == 110001
    await ws.disconnect()


async def test_batch_create_with_one_bad_order(emu: Emulator, trade: Any) -> None:
    orders = [
        {"symbol": "SOLUSDT", "side": "Buy", "orderType": "Limit", "qty": "1", "price": "10"},
        {"symbol": "SOLUSDT", "side": "Buy", "orderType": "Limit", "qty": "1", "price": "1.0001"},
        {"symbol": "SOLUSDT", "side": "Buy", "orderType": "Limit", "qty": "2", "price": "11"},
    ]
    response = await trade.create_orders("linear", orders)
    assert response.ok and len(response.results) == 3
    [bad] = response.failed
    assert bad.index == 1 and bad.code == 10001 and bad.order_id is None
    assert [r.ok for r in response.results] == [True, False, True]
    open_ids = {o["orderId"] for o in emu.account(KEY).open_orders}
    assert open_ids == {response.results[0].order_id, response.results[2].order_id}
    cancelled = await trade.cancel_orders(
        "linear", [{"symbol": "SOLUSDT", "orderId": oid} for oid in open_ids]
    )
    assert not cancelled.failed and emu.account(KEY).open_orders == []


async def test_request_in_flight_when_the_connection_drops(emu: Emulator, trade: Any) -> None:
    [info] = emu.live_connections("trade")
    emu.set_faults(info.conn_id, ack_delay=ms(500))
    task = asyncio.create_task(
        trade.create_order(
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            order_type="Limit",
            qty="0.01",
            price="1000",
        )
    )
    await until(lambda: info.requests == 1)
    emu.drop_connections(info.conn_id)
    with pytest.raises(TradeConnectionLost, match="outcome is unknown"):
        await task
    assert trade.request_stats.lost == 1
    # the request had reached the exchange: the order exists (reconcile, never re-send)
    await until(lambda: emu.account(KEY).open_orders, timeout=ms(2000))
    await trade.wait_live(ms(3000))
    ack = await trade.create_order(
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        order_type="Limit",
        qty="0.01",
        price="1000",
    )
    assert ack.ok and len(emu.account(KEY).open_orders) == 2


@pytest.mark.parametrize("code", [10016, 10019])
async def test_service_restarting_opens_a_fresh_connection(
    emu: Emulator, trade: Any, code: int
) -> None:
    [old] = emu.live_connections("trade")
    emu.inject_trade_error(code)
    with pytest.raises(TradeServiceRestarting) as err:
        await trade.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="0.001"
        )
    assert err.value.ret_code == code
    await until(
        lambda: (
            emu.live_connections("trade")
            and emu.live_connections("trade")[0].conn_id != old.conn_id
            and trade.state is S.LIVE
        )
    )
    events = [(event, conn) for _, event, conn, _ in emu.connection_log]
    assert ("close", old.conn_id) in events
    [new] = emu.live_connections("trade")
    accepted = [i for i, (event, conn) in enumerate(events) if event == "accept"]
    assert events[accepted[-1]][1] == new.conn_id
    assert events.index(("close", old.conn_id)) < accepted[-1]  # the old one went first
    assert emu.connection(old.conn_id).close_reason is not None
    ack = await trade.create_order(
        category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="0.001"
    )
    assert ack.ok and ack.conn_id == new.conn_id


async def test_new_requests_fail_fast_while_the_connection_is_replaced(
    emu: Emulator, trade: Any
) -> None:
    [info] = emu.live_connections("trade")
    emu.set_faults(info.conn_id, ack_delay=ms(300))
    emu.inject_trade_error(10019, conn_id=info.conn_id)
    args = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "order_type": "Limit",
        "qty": "0.01",
        "price": "1000",
    }
    first = asyncio.create_task(trade.create_order(**args))
    second = asyncio.create_task(trade.create_order(**args))
    with pytest.raises(TradeServiceRestarting):
        await first
    with pytest.raises(TradeNotReady):
        await trade.create_order(**args)
    assert (await second).ok  # in flight on the old connection: it still completes
    await trade.wait_live(ms(3000))
    assert (await trade.create_order(**args)).ok


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (10429, TradeRateLimited),
        (10006, TradeRateLimited),
        (20006, TradeDuplicateRequest),
        (10001, TradeError),
    ],
)
async def test_injected_codes_map_to_typed_errors(
    emu: Emulator, trade: Any, code: int, error: type[TradeError]
) -> None:
    emu.inject_trade_error(code)
    with pytest.raises(error) as err:
        await trade.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="0.001"
        )
    assert err.value.ret_code == code and type(err.value) is error
    assert trade.state is S.LIVE and len(emu.connections) == 1  # no reconnect for these


async def test_business_errors_map_to_typed_errors(emu: Emulator, trade: Any) -> None:
    with pytest.raises(TradeInsufficientBalance) as err:
        await trade.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Limit", qty="100",
            price="60000",
        )  # fmt: skip
    assert err.value.ret_code == 110007
    with pytest.raises(TradeInsufficientBalance) as err:
        await trade.create_order(
            category="spot", symbol="BTCUSDT", side="Sell", order_type="Limit", qty="50",
            price="60000",
        )  # fmt: skip
    assert err.value.ret_code == 170131
    with pytest.raises(TradeUnknownOrder):
        await trade.amend_order(category="linear", symbol="BTCUSDT", order_id="x", qty="1")
    with pytest.raises(TradeError) as err:
        await trade.create_order(
            category="linear", symbol="BTCUSDT", side="Sell", order_type="Market", qty="0.01",
            reduce_only=True,
        )  # fmt: skip
    assert err.value.ret_code == 110017
    # a reqId used before on this connection
    await trade.create_order(
        category="linear", symbol="BTCUSDT", side="Buy", order_type="Limit", qty="0.01",
        price="1000", req_id="once",
    )  # fmt: skip
    with pytest.raises(TradeDuplicateRequest):
        await trade.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Limit", qty="0.01",
            price="1000", req_id="once",
        )  # fmt: skip


@pytest.mark.emulator(trade_rate_limit=2)
async def test_the_real_rate_limit(emu: Emulator, trade: Any) -> None:
    args = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit"}
    first = await trade.create_order(**args, qty="0.01", price="1000")
    assert first.rate_limit == 2 and first.rate_limit_status == 1
    await trade.create_order(**args, qty="0.01", price="1000")
    with pytest.raises(TradeRateLimited) as err:
        await trade.create_order(**args, qty="0.01", price="1000")
    assert err.value.ret_code == 10006 and err.value.response is not None
    assert err.value.response.rate_limit_status == 0


async def test_timestamp_outside_the_window_then_resync(emu: Emulator, trade: Any) -> None:
    emu.set_clock_skew(8_000)  # the server clock jumps 8 s ahead of ours
    with pytest.raises(TradeTimestampError) as err:
        await trade.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Limit", qty="0.01",
            price="1000",
        )  # fmt: skip
    assert err.value.ret_code == 10002 and "recv_window[5000]" in err.value.ret_msg
    # pongs (and the error's Timenow) carry the server time: the client's offset follows
    await until(lambda: (trade.clock_offset.estimate_ms or 0) > 7_000, timeout=ms(3000))
    ack = await trade.create_order(
        category="linear", symbol="BTCUSDT", side="Buy", order_type="Limit", qty="0.01",
        price="1000",
    )  # fmt: skip
    assert ack.ok


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"api_secret": SECRET + "x"}, AuthReason.BAD_SIGNATURE),
        ({"api_key": "zz"}, AuthReason.BAD_KEY),
    ],
)
async def test_trade_auth_failures_are_typed(
    emu: Emulator, kwargs: dict[str, str], reason: AuthReason
) -> None:
    client = make_trade(emu, **kwargs)
    with pytest.raises(AuthError) as err:
        await client.connect(timeout=ms(3000))
    assert err.value.reason is reason
    await asyncio.sleep(ms(300))
    assert len(emu.auth_log) == 1  # not retried
    await client.disconnect()


async def test_executions_of_a_resting_order_hit_by_the_market(
    bus: EventBus, recorder: Recorder, emu: Emulator, trade: Any
) -> None:
    ws = make_private(bus, emu)
    await live_subscribed(ws, ["execution", "order"])
    bids, _ = emu.book_truth("linear", "BTCUSDT", 1)
    ack = await trade.create_order(
        category="linear", symbol="BTCUSDT", side="Buy", order_type="Limit", qty="0.3",
        price=bids[0][0],
    )  # fmt: skip
    for _ in range(400):
        emu.tick("linear")
        if emu.account(KEY).orders[ack.order_id]["cumExecQty"] != "0":
            break
    await until(lambda: recorder.events[EventType.EXECUTION])
    fills = [x for e in recorder.events[EventType.EXECUTION] for x in e.executions]
    assert {x.order_id for x in fills} == {ack.order_id}
    assert all(x.is_maker for x in fills)
    truth = emu.account(KEY).orders[ack.order_id]
    await until(
        lambda: (
            sum(
                Decimal(x.exec_qty)
                for e in recorder.events[EventType.EXECUTION]
                for x in e.executions
            )
            == Decimal(str(truth["cumExecQty"]))
        )
    )
    await ws.disconnect()


async def test_trade_stream_under_client_clock_skew(emu: Emulator) -> None:
    """A local clock 15 s behind: the first auth expires, the retry (corrected by the measured
    offset) succeeds, and request timestamps land inside the receive window."""
    client = make_trade(emu, clock=SkewedClock(-15_000))
    await client.connect(timeout=ms(3000))
    assert [r.result for r in emu.auth_log] == ["expired", "ok"]
    assert client.auth_state.clock_offset_ms == pytest.approx(15_000, abs=500)
    ack = await client.create_order(
        category="linear", symbol="BTCUSDT", side="Buy", order_type="Limit", qty="0.01",
        price="1000",
    )  # fmt: skip
    assert ack.ok
    await client.disconnect()


async def test_instrument_rules_checked_before_sending(emu: Emulator) -> None:
    from hean.exchange.bybit.instruments import InstrumentRegistry, OrderRuleError
    from tests.exchange.bybit.test_instruments import _items

    category, items = _items("linear")  # BTCUSDT: tick 0.10, step 0.001, as the emulator lists

    async def loader(cat: str) -> list[dict[str, Any]]:
        assert cat == category
        return items

    client = make_trade(emu, instruments=InstrumentRegistry(loader))
    await client.connect(timeout=ms(3000))
    try:
        bad = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit"}
        with pytest.raises(OrderRuleError) as err:
            await client.create_order(**bad, qty="0.001", price="10000.05")
        assert err.value.rule == "tick_size"
        with pytest.raises(OrderRuleError) as err:
            await client.create_order(**bad, qty="0.0005", price="10000")
        assert err.value.rule == "qty_step"
        with pytest.raises(OrderRuleError) as err:
            await client.create_orders(
                "linear",
                [
                    {
                        "symbol": "BTCUSDT",
                        "side": "Buy",
                        "orderType": "Limit",
                        "qty": "0.001",
                        "price": "10000",
                    },
                    {
                        "symbol": "BTCUSDT",
                        "side": "Buy",
                        "orderType": "Limit",
                        "qty": "0.001",
                        "price": "1000",
                    },
                ],
            )
        assert err.value.rule == "min_notional" and "batch order 1" in str(err.value)
        assert client.request_stats.sent == 0  # nothing reached the exchange
        assert emu.account(KEY).open_orders == []
        ok = await client.create_order(**bad, qty="0.001", price="10000.1")
        assert ok.ok and client.request_stats.sent == 1
        with pytest.raises(OrderRuleError) as err:
            await client.amend_order(
                category="linear", symbol="BTCUSDT", order_id=ok.order_id, price="10000.15"
            )
        assert err.value.rule == "tick_size" and client.request_stats.sent == 1
        await client.cancel_order(category="linear", symbol="BTCUSDT", order_id=ok.order_id)
    finally:
        await client.disconnect()
