"""BybitTradeWebSocket driven by hand: its session is fed frames directly (no sockets)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from hean.core.clock import ManualClock
from hean.core.config import ConfigError, Settings
from hean.core.lifecycle import ConnectionState as S
from hean.exchange.bybit.protocol.session import Action, Close, Connect
from hean.exchange.bybit.ws_trade import (
    BybitTradeWebSocket,
    TradeConnectionLost,
    TradeInsufficientBalance,
    TradeNotReady,
    TradeRateLimited,
    TradeServiceRestarting,
    TradeTimeout,
)
from tests.conftest import example, example_bytes

KEY = "trade-key-ABCDEFGHIJ"
SECRET = "trade-secret-0123456789abcdef"


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.is_disconnected = False
        self.is_close_frame_sent = False

    def send(self, msg_type: Any, payload: bytes) -> None:
        self.sent.append(json.loads(payload))

    def send_close(self, *args: Any) -> None:
        self.is_close_frame_sent = True

    def disconnect(self, graceful: bool = True) -> None:
        self.is_disconnected = True


def run(ws: BybitTradeWebSocket, actions: list[Action] | None) -> list[Action]:
    actions = actions or []
    ws.connection.run_actions([a for a in actions if not isinstance(a, Connect)])
    return actions


def make(**kw: Any) -> tuple[BybitTradeWebSocket, FakeTransport, ManualClock]:
    clock = ManualClock()
    ws = BybitTradeWebSocket(
        api_key=KEY,
        api_secret=SECRET,
        url="ws://127.0.0.1:1/v5/trade",
        clock=clock,
        req_prefix="r-",
        **kw,
    )
    transport = FakeTransport()
    ws.connection.transport = transport  # type: ignore[assignment]
    return ws, transport, clock


def go_live(ws: BybitTradeWebSocket, clock: ManualClock) -> None:
    run(ws, ws.session.start(clock.monotonic()))
    run(ws, ws.session.connected(clock.monotonic()))
    run(ws, ws.session.receive(example_bytes("trade_auth_ok"), clock.monotonic()))
    assert ws.state is S.LIVE


def reply(req_id: str, ret_code: int = 0, op: str = "order.create", **kw: Any) -> bytes:
    message = example("order_create_response")
    message.update(reqId=req_id, retCode=ret_code, op=op, **kw)
    if ret_code:
        message["retMsg"] = kw.get("retMsg", "refused")
    return json.dumps(message).encode()


async def started(coro: Any) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0)  # let it send
    return task


async def test_requests_fail_fast_when_not_live() -> None:
    ws, transport, _ = make()
    with pytest.raises(TradeNotReady, match="idle"):
        await ws.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="1"
        )
    assert transport.sent == [] and ws.in_flight == 0


async def test_auth_and_ping_frames_use_the_trade_shapes() -> None:
    ws, transport, clock = make()
    go_live(ws, clock)
    ping, auth = transport.sent
    assert ping == {"op": "ping"}
    assert list(auth) == ["op", "args"] and auth["args"][0] == KEY


async def test_create_order_round_trip() -> None:
    ws, transport, clock = make(recv_window=8000, referer="bot-001")
    go_live(ws, clock)
    task = await started(
        ws.create_order(
            category="linear",
            symbol="ETHUSDT",
            side="Buy",
            order_type="Limit",
            qty=0.2,
            price=2800,
            time_in_force="PostOnly",
            positionIdx=0,
        )
    )
    request = transport.sent[-1]
    assert request["reqId"] == "r-1" and request["op"] == "order.create"
    assert request["header"] == {
        "X-BAPI-TIMESTAMP": str(clock.wall_ms()),
        "X-BAPI-RECV-WINDOW": "8000",
        "Referer": "bot-001",
    }
    assert request["args"] == [
        {
            "category": "linear",
            "symbol": "ETHUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.2",
            "price": "2800",
            "timeInForce": "PostOnly",
            "positionIdx": 0,
        }
    ]
    assert ws.in_flight == 1 and not task.done()
    clock.advance(0.02)
    run(ws, ws.session.receive(reply("r-1"), clock.monotonic()))
    ack = await task
    assert ack.order_id == "a4c1718e-fe53-4659-a118-1f6ecce04ad9"
    assert ack.latency == pytest.approx(0.02) and ack.rate_limit_status == 9
    assert ws.request_stats.succeeded == 1


async def test_amend_and_cancel_need_an_order_reference() -> None:
    ws, transport, clock = make()
    go_live(ws, clock)
    with pytest.raises(ValueError, match="order_id or order_link_id"):
        await ws.cancel_order(category="linear", symbol="BTCUSDT")
    task = await started(
        ws.amend_order(category="linear", symbol="BTCUSDT", order_link_id="L1", price=30000.5)
    )
    assert transport.sent[-1]["args"] == [
        {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "L1", "price": "30000.5"}
    ]
    run(ws, ws.session.receive(reply("r-1", op="order.amend"), clock.monotonic()))
    await task
    task = await started(ws.cancel_order(category="spot", symbol="BTCUSDT", order_id="O1"))
    assert transport.sent[-1]["op"] == "order.cancel"
    run(ws, ws.session.receive(reply("r-2", op="order.cancel"), clock.monotonic()))
    await task


@pytest.mark.parametrize(
    "kwargs",
    [
        {"side": "buy"},
        {"order_type": "limit"},
        {"category": "futures"},
        {"symbol": " "},
        {"qty": True},
        {"qty": ""},
    ],
)
async def test_bad_arguments_raise_before_anything_is_sent(kwargs: dict[str, Any]) -> None:
    ws, transport, clock = make()
    go_live(ws, clock)
    sent = len(transport.sent)
    args: dict[str, Any] = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "order_type": "Market",
        "qty": "1",
        **kwargs,
    }
    with pytest.raises((ValueError, TypeError)):
        await ws.create_order(**args)
    assert len(transport.sent) == sent and ws.in_flight == 0


async def test_errors_are_raised_as_typed_exceptions() -> None:
    ws, _, clock = make()
    go_live(ws, clock)
    task = await started(
        ws.create_order(category="linear", symbol="X", side="Buy", order_type="Market", qty=1)
    )
    run(ws, ws.session.receive(reply("r-1", 10006, retMsg="Too many visits"), 0.0))
    with pytest.raises(TradeRateLimited) as info:
        await task
    assert info.value.ret_code == 10006 and info.value.response is not None
    task = await started(
        ws.create_order(category="spot", symbol="X", side="Sell", order_type="Market", qty=1)
    )
    run(ws, ws.session.receive(reply("r-2", 170131), 0.0))
    with pytest.raises(TradeInsufficientBalance):
        await task


async def test_timeout_raises_trade_timeout() -> None:
    ws, _, clock = make(request_timeout=5.0)
    go_live(ws, clock)
    task = await started(
        ws.create_order(category="linear", symbol="X", side="Buy", order_type="Market", qty=1)
    )
    assert ws.session.next_deadline() == pytest.approx(clock.monotonic() + 5.0)
    clock.advance(5.0)
    run(ws, ws.session.tick(clock.monotonic()))
    with pytest.raises(TradeTimeout, match="outcome is unknown"):
        await task
    assert ws.in_flight == 0


async def test_in_flight_requests_fail_when_the_connection_drops() -> None:
    ws, transport, clock = make()
    go_live(ws, clock)
    tasks = [
        await started(
            ws.create_order(category="linear", symbol="X", side="Buy", order_type="Market", qty=1)
        )
        for _ in range(3)
    ]
    sent = len(transport.sent)
    run(ws, ws.session.disconnected("server_close:1006", clock.monotonic()))
    for task in tasks:
        with pytest.raises(TradeConnectionLost, match="server_close:1006"):
            await task
    # nothing re-sent, now or after the reconnect
    clock.advance(2)
    run(ws, ws.session.tick(clock.monotonic()))
    run(ws, ws.session.connected(clock.monotonic()))
    run(ws, ws.session.receive(example_bytes("trade_auth_ok"), clock.monotonic()))
    assert [m["op"] for m in transport.sent[sent:]] == ["ping", "auth"]
    assert ws.request_stats.lost == 3


async def test_service_restarting_raises_and_replaces_the_connection_once_idle() -> None:
    ws, _, clock = make()
    go_live(ws, clock)
    first = await started(
        ws.create_order(category="linear", symbol="X", side="Buy", order_type="Market", qty=1)
    )
    second = await started(
        ws.create_order(category="linear", symbol="X", side="Buy", order_type="Market", qty=1)
    )
    closes: list[Action] = []
    original = ws.connection.run_actions

    def spy(actions: list[Action]) -> None:
        closes.extend(a for a in actions if isinstance(a, Close))
        original(actions)

    ws.connection.run_actions = spy  # type: ignore[method-assign]
    run(ws, ws.session.receive(reply("r-1", 10019, retMsg="restarting"), clock.monotonic()))
    with pytest.raises(TradeServiceRestarting):
        await first
    # new requests are refused while the old connection drains
    with pytest.raises(TradeNotReady, match="being replaced"):
        await ws.cancel_order(category="linear", symbol="X", order_id="o")
    await asyncio.sleep(0)
    assert closes == []  # one request still in flight on the old connection
    run(ws, ws.session.receive(reply("r-2"), clock.monotonic()))
    await second
    await asyncio.sleep(0)
    assert closes == [Close(1011, "service_restarting:10019", True)]
    run(ws, ws.session.disconnected("server_close:1006", clock.monotonic()))
    assert ws.state is S.BACKOFF
    assert ws.session.stats.last_disconnect_reason == "service_restarting:10019"
    assert ws.requests.restart_requested is None


async def test_batches_are_validated_and_sent_with_their_category() -> None:
    ws, transport, clock = make()
    go_live(ws, clock)
    order = {"symbol": "SOLUSDT", "side": "Buy", "orderType": "Limit", "qty": 10, "price": "500"}
    with pytest.raises(ValueError, match="at most 10"):
        await ws.create_orders("spot", [order] * 11)
    with pytest.raises(ValueError, match="at least one"):
        await ws.cancel_orders("linear", [])
    with pytest.raises(TypeError):
        await ws.amend_orders("linear", order)  # type: ignore[arg-type]
    task = await started(ws.create_orders("linear", [order] * 20))
    request = transport.sent[-1]
    assert request["op"] == "order.create-batch"
    [args] = request["args"]
    assert args["category"] == "linear" and len(args["request"]) == 20
    assert args["request"][0]["qty"] == "10"
    response = example("order_create_batch_response")
    response["reqId"] = request["reqId"]
    run(ws, ws.session.receive(json.dumps(response).encode(), clock.monotonic()))
    ack = await task
    assert len(ack.results) == 3 and ack.failed[0].code == 10001


async def test_caller_cancellation_does_not_break_matching() -> None:
    ws, _, clock = make()
    go_live(ws, clock)
    task = await started(
        ws.create_order(category="linear", symbol="X", side="Buy", order_type="Market", qty=1)
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    run(ws, ws.session.receive(reply("r-1"), clock.monotonic()))  # late ack: no error
    assert ws.request_stats.succeeded == 1 and ws.in_flight == 0


def test_trade_url_and_masking() -> None:
    ws = BybitTradeWebSocket(api_key=KEY, api_secret=SECRET, max_active_time=120)
    assert ws.url == "wss://stream-testnet.bybit.com/v5/trade?max_active_time=120s"
    assert KEY not in repr(ws) and SECRET not in repr(ws)


def test_from_settings() -> None:
    settings = Settings(api_key=KEY, api_secret=SECRET, testnet=False)
    trade = BybitTradeWebSocket.from_settings(settings)
    assert trade.url == "wss://stream.bybit.com/v5/trade" and trade.api_key == KEY
    with pytest.raises(ConfigError):
        BybitTradeWebSocket.from_settings(Settings(_env_prefix="HEAN_TEST_NOTHING_"))
