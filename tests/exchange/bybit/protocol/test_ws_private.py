"""BybitPrivateWebSocket driven by hand: its session is fed frames directly (no sockets)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import pytest

from hean.core.bus import EventBus, OverflowPolicy
from hean.core.clock import ManualClock
from hean.core.events import PRIVATE_EVENT_TYPES, EventType
from hean.core.lifecycle import ConnectionState as S
from hean.exchange.bybit.protocol.session import Action, Connect
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket, validate_private_topics
from tests.conftest import example_bytes

KEY = "private-key-ABCDEFGH"
SECRET = "private-secret-0123456789abcdef"
URL = "ws://127.0.0.1:1/v5/private"


class FakeTransport:
    """Stands in for picows's transport: records what would be sent."""

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


class Recorder:
    """An event sink that keeps everything published, by type."""

    def __init__(self) -> None:
        self.events: dict[EventType, list[Any]] = defaultdict(list)

    def publish(self, event_type: EventType, event: Any) -> None:
        self.events[event_type].append(event)


def run(ws: BybitPrivateWebSocket, actions: list[Action] | None) -> None:
    """Carry out the session's actions, except opening sockets."""
    ws.connection.run_actions([a for a in actions or [] if not isinstance(a, Connect)])


def make(**kw: Any) -> tuple[BybitPrivateWebSocket, FakeTransport, ManualClock, Recorder]:
    recorder = Recorder()
    clock = ManualClock()
    ws = BybitPrivateWebSocket(
        recorder,
        api_key=KEY,
        api_secret=SECRET,
        url="ws://127.0.0.1:1/v5/private",
        clock=clock,
        **kw,
    )
    transport = FakeTransport()
    ws.connection.transport = transport  # type: ignore[assignment]
    return ws, transport, clock, recorder


def go_live(ws: BybitPrivateWebSocket, clock: ManualClock) -> None:
    run(ws, ws.session.start(clock.monotonic()))
    run(ws, ws.session.connected(clock.monotonic()))
    run(ws, ws.session.receive(example_bytes("auth_ok"), clock.monotonic()))
    assert ws.state is S.LIVE


def ack(ws: BybitPrivateWebSocket, transport: FakeTransport, clock: ManualClock) -> None:
    req = transport.sent[-1]
    reply = {"success": True, "ret_msg": "", "op": "subscribe", "req_id": req["req_id"]}
    run(ws, ws.session.receive(json.dumps(reply).encode(), clock.monotonic()))


async def test_private_messages_become_typed_events() -> None:
    ws, transport, clock, rec = make()
    await ws.subscribe(["order", "execution", "execution.fast", "position", "wallet"])
    go_live(ws, clock)
    ping, auth, sub = transport.sent
    assert ping["op"] == "ping" and auth["op"] == "auth" and auth["args"][0] == KEY
    assert sub["args"] == ["order", "execution", "execution.fast", "position", "wallet"]
    ack(ws, transport, clock)
    for name in ("order", "execution", "execution_fast", "position", "wallet"):
        clock.advance(0.1)
        assert ws.session.receive(example_bytes(name), clock.monotonic()) is None
    [order] = rec.events[EventType.ORDER_UPDATE]
    assert order.orders[0].order_status == "Filled" and order.connection == "private"
    assert order.recv_wall_ms == clock.wall_ms() - 400
    assert [e.fast for e in rec.events[EventType.EXECUTION]] == [False, True]
    assert len(rec.events[EventType.POSITION_UPDATE]) == 1
    assert len(rec.events[EventType.WALLET_UPDATE]) == 1
    [auth_event] = rec.events[EventType.AUTH]
    assert auth_event.ok
    assert ws.auth_state.status == "authenticated"
    assert ws.stats.data_messages == 5 and ws.stats.data_errors == 0


async def test_bad_and_unexpected_messages_are_counted_not_fatal() -> None:
    ws, _, clock, rec = make()
    await ws.subscribe(["order"])
    go_live(ws, clock)
    bad = b'{"topic":"order","creationTime":1,"data":[{"symbol":"X"}]}'
    assert ws.session.receive(bad, clock.monotonic()) is None
    assert ws.stats.data_errors == 1 and ws.state is S.LIVE
    # data for a stream we did not subscribe: still decoded and published, and counted
    ws.session.receive(example_bytes("wallet"), clock.monotonic())
    assert ws.stats.unexpected_topics == 1 and len(rec.events[EventType.WALLET_UPDATE]) == 1
    ws.session.receive(example_bytes("order"), clock.monotonic())
    assert len(rec.events[EventType.ORDER_UPDATE]) == 1


async def test_gap_events_reach_the_bus_after_a_reconnect() -> None:
    ws, transport, clock, rec = make()
    await ws.subscribe(["order", "position"])
    go_live(ws, clock)
    ack(ws, transport, clock)
    clock.advance(5)
    run(ws, ws.session.disconnected("server_close:1006", clock.monotonic()))
    assert ws.state is S.BACKOFF and ws.auth_state.status == "not_authenticated"
    clock.advance(3)
    run(ws, ws.session.tick(clock.monotonic()))
    run(ws, ws.session.connected(clock.monotonic()))
    run(ws, ws.session.receive(example_bytes("auth_ok"), clock.monotonic()))
    assert transport.sent[-1]["op"] == "subscribe"  # resubscribed after re-auth
    clock.advance(0.5)
    ack(ws, transport, clock)
    gaps = rec.events[EventType.GAP]
    assert [g.topic for g in gaps] == ["order", "position"]
    assert gaps[0].duration == pytest.approx(3.5) and gaps[0].reason == "server_close:1006"
    assert gaps[0].down_since_wall_ms == clock.wall_ms() - 3_500


async def test_auth_failure_is_visible_in_auth_state_and_events() -> None:
    ws, transport, clock, rec = make()
    run(ws, ws.session.start(clock.monotonic()))
    run(ws, ws.session.connected(clock.monotonic()))
    bad = b'{"success":false,"ret_msg":"Invalid apikey","op":"auth","conn_id":"c"}'
    run(ws, ws.session.receive(bad, clock.monotonic()))
    state = ws.auth_state
    assert state.status == "failed" and state.failures == 1 and state.retry_at is None
    assert state.last_failure is not None and state.last_failure.reason == "bad_key"
    [event] = rec.events[EventType.AUTH]
    assert not event.ok and event.reason == "bad_key"
    assert rec.events[EventType.CONNECTION_STATE][-1].new is S.AUTH_FAILED
    assert transport.is_close_frame_sent


async def test_subscribe_rejects_mixing_all_in_one_and_categorised_forms() -> None:
    ws, _, _, _ = make()
    await ws.subscribe(["order.linear", "order.spot", "wallet"])
    with pytest.raises(ValueError, match="all-in-one and a categorised form of order"):
        await ws.subscribe(["order"])
    with pytest.raises(ValueError, match="execution"):
        validate_private_topics(["execution", "execution.linear"])
    with pytest.raises(ValueError, match="unknown private topic"):
        await ws.subscribe(["tickers.BTCUSDT"])
    with pytest.raises(ValueError, match="unknown private topic"):
        await ws.subscribe(["position.spot"])
    assert validate_private_topics("execution.fast") == ["execution.fast"]
    # execution and execution.fast are different streams
    assert validate_private_topics(["execution", "execution.fast.linear"]) == [
        "execution",
        "execution.fast.linear",
    ]


async def test_subscribe_events_uses_never_drop() -> None:
    bus = EventBus()
    ws = BybitPrivateWebSocket(bus, api_key=KEY, api_secret=SECRET)
    seen: list[Any] = []

    async def handler(event: Any) -> None:
        seen.append(event)

    subs = ws.subscribe_events(handler, maxsize=2)
    assert [s.event_type for s in subs] == list(PRIVATE_EVENT_TYPES)
    assert all(s.policy is OverflowPolicy.NEVER_DROP for s in subs)
    await bus.start()
    try:
        for i in range(10):  # far past maxsize: nothing is lost
            bus.publish(EventType.ORDER_UPDATE, i)
        for _ in range(20):
            await asyncio.sleep(0)
        assert seen == list(range(10)) and subs[0].dropped == 0
    finally:
        await bus.stop()
    with pytest.raises(TypeError):
        BybitPrivateWebSocket(_Sink(), api_key=KEY, api_secret=SECRET).subscribe_events(handler)


class _Sink:
    def publish(self, event_type: EventType, event: Any) -> None:
        pass


def test_secrets_never_show_and_urls_are_built() -> None:
    ws = BybitPrivateWebSocket(_Sink(), api_key=KEY, api_secret=SECRET, max_active_time="1m")
    assert ws.url == "wss://stream-testnet.bybit.com/v5/private?max_active_time=1m"
    text = repr(ws) + repr(ws.authenticator) + repr(ws.api_key) + str(ws.auth_state)
    assert KEY not in text and SECRET not in text and "****EFGH" in text
    main = BybitPrivateWebSocket(_Sink(), api_key=KEY, api_secret=SECRET, testnet=False)
    assert main.url == "wss://stream.bybit.com/v5/private"
    with pytest.raises(ValueError):
        BybitPrivateWebSocket(_Sink(), api_key=KEY, api_secret=SECRET, url="http://x")
    with pytest.raises(ValueError):
        BybitPrivateWebSocket(_Sink(), api_key=KEY, api_secret=SECRET, max_active_time="5s")


async def test_disconnect_before_connect_is_a_no_op() -> None:
    ws, _, _, _ = make()
    await ws.disconnect()
    assert ws.state is S.CLOSED
    await ws.disconnect()


def test_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", KEY)
    monkeypatch.setenv("BYBIT_API_SECRET", SECRET)
    monkeypatch.setenv("BYBIT_TESTNET", "true")
    ws = BybitPrivateWebSocket.from_settings(_Sink(), max_active_time=60)
    assert ws.url == "wss://stream-testnet.bybit.com/v5/private?max_active_time=60s"
    assert ws.api_key == KEY and KEY not in repr(ws)
