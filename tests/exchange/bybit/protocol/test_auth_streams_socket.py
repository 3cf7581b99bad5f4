"""The private and trade clients over real sockets, against a tiny stand-in server in this file
(not the emulator): auth success and failure, clock-skew recovery, order entry, and that no
secret or signature reaches any log record with every logger at its most verbose level."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import picows
import pytest
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest

from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.core.lifecycle import ConnectionState as S
from hean.exchange.bybit.protocol.auth import AuthError, AuthReason
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_trade import BybitTradeWebSocket, TradeInsufficientBalance
from tests.conftest import example

KEY = "sockettestkey12345"
SECRET = "sockettestsecret-0123456789abcdef"
FAST = BackoffPolicy(first=0.05, cap=0.2, stable_after=0.1)


class FakeBybit:
    """Answers ping / auth / subscribe / order ops in Bybit's private and trade shapes."""

    def __init__(self) -> None:
        self.keys = {KEY: SECRET}
        self.skew_ms = 0
        """Server clock minus real time."""
        self.order_code = 0
        self.received: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.server: Any = None
        self.port = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    async def __aenter__(self) -> FakeBybit:
        self.server = await picows.ws_create_server(self._route, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _route(self, request: WSUpgradeRequest) -> WSListener | None:
        path = request.path.decode().split("?", 1)[0]
        if path in ("/v5/private", "/v5/trade"):
            return _Conn(self, path.rsplit("/", 1)[1])
        return None


class _Conn(WSListener):
    def __init__(self, server: FakeBybit, kind: str) -> None:
        self.server = server
        self.kind = kind

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        msg = json.loads(frame.get_payload_as_bytes())
        self.server.received[self.kind].append(msg)
        for reply in self._answer(msg):
            transport.send(WSMsgType.TEXT, json.dumps(reply).encode())

    def _answer(self, msg: dict[str, Any]) -> list[dict[str, Any]]:
        server, op, trade = self.server, msg.get("op"), self.kind == "trade"
        if op == "ping":
            now = str(server.now_ms())
            if trade:
                return [{"retCode": 0, "retMsg": "OK", "op": "pong", "data": [now], "connId": "t"}]
            return [{"op": "pong", "args": [now], "conn_id": "p"}]
        if op == "auth":
            key, expires, sig = msg["args"]
            secret = server.keys.get(key)
            good = (
                secret is not None
                and sig
                == hmac.new(
                    secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256
                ).hexdigest()
            )
            if secret is None:
                code, text = 10003, "API key is invalid"
            elif not good:
                code, text = 10004, "Error sign"
            elif int(expires) <= server.now_ms():
                code, text = 10001, "Params Error"
            else:
                code, text = 0, ""
            if trade:
                return [{"retCode": code, "retMsg": text or "OK", "op": "auth", "connId": "t"}]
            reply = {"success": code == 0, "ret_msg": text, "op": "auth", "conn_id": "p"}
            if "req_id" in msg:
                reply["req_id"] = msg["req_id"]
            return [reply]
        if op == "subscribe":
            replies: list[dict[str, Any]] = [
                {
                    "success": True,
                    "ret_msg": "",
                    "op": "subscribe",
                    "conn_id": "p",
                    "req_id": msg.get("req_id", ""),
                }
            ]
            if "order" in msg["args"]:
                replies.append(example("order"))
            return replies
        if trade and op and op.startswith("order."):
            reply = example("order_create_response")
            reply.update(reqId=msg["reqId"], op=op, retCode=server.order_code)
            if server.order_code:
                reply["retMsg"], reply["data"] = "ab not enough for new order", {}
            return [reply]
        return []


@pytest.fixture
async def fake() -> AsyncIterator[FakeBybit]:
    async with FakeBybit() as server:
        yield server


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    b = EventBus()
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
def verbose(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at its most verbose (picows logs frames at level 9)."""
    caplog.set_level(1)
    for name in ("hean", "picows", "picows.hean.client"):
        caplog.set_level(1, logger=name)
    return caplog


def record(bus: EventBus) -> dict[EventType, list[Any]]:
    events: dict[EventType, list[Any]] = defaultdict(list)
    for kind in EventType:
        bus.subscribe(kind, events[kind].append, name=f"rec-{kind}")
    return events


def assert_no_leak(caplog: pytest.LogCaptureFixture, fake: FakeBybit) -> None:
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in text and KEY not in text
    for msg in fake.received["private"] + fake.received["trade"]:
        if msg.get("op") == "auth":
            assert msg["args"][2] not in text  # the signature


async def test_private_stream_authenticates_subscribes_and_publishes(
    fake: FakeBybit, bus: EventBus, verbose: pytest.LogCaptureFixture
) -> None:
    events = record(bus)
    ws = BybitPrivateWebSocket(
        bus, api_key=KEY, api_secret=SECRET, url=fake.url("/v5/private"), backoff=FAST
    )
    await ws.connect(timeout=3)
    await ws.subscribe(["order", "wallet"])
    assert await ws.wait_subscribed(["order", "wallet"], timeout=3) == {
        "order": "confirmed",
        "wallet": "confirmed",
    }
    for _ in range(100):
        if events[EventType.ORDER_UPDATE]:
            break
        await asyncio.sleep(0.01)
    [update] = events[EventType.ORDER_UPDATE]
    assert update.orders[0].order_id == "5cf98598-39a7-459e-97bf-76ca765ee020"
    assert [e.ok for e in events[EventType.AUTH]] == [True]
    assert ws.auth_state.status == "authenticated"
    assert ws.auth_state.clock_offset_ms is not None  # from the clock ping's pong
    ops = [m["op"] for m in fake.received["private"]]
    assert ops[:3] == ["ping", "auth", "subscribe"]
    await ws.disconnect()
    assert ws.state is S.CLOSED
    assert any("authenticated" in r.getMessage() for r in verbose.records)
    assert_no_leak(verbose, fake)


async def test_wrong_secret_fails_fast_with_one_clear_error(
    fake: FakeBybit, bus: EventBus, verbose: pytest.LogCaptureFixture
) -> None:
    ws = BybitPrivateWebSocket(
        bus,
        api_key=KEY,
        api_secret=SECRET + "-wrong",
        url=fake.url("/v5/private"),
        backoff=FAST,
        auth_retry_interval=0.05,
    )
    with pytest.raises(AuthError) as info:
        await ws.connect(timeout=3)
    assert info.value.reason is AuthReason.BAD_SIGNATURE
    assert ws.state is S.AUTH_FAILED
    await asyncio.sleep(0.3)  # much longer than auth_retry_interval: still no retry
    auths = [m for m in fake.received["private"] if m["op"] == "auth"]
    assert len(auths) == 1
    errors = [r for r in verbose.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "signature invalid" in errors[0].getMessage()
    await ws.disconnect()
    assert ws.state is S.CLOSED
    text = verbose.text
    assert (SECRET + "-wrong") not in text
    assert_no_leak(verbose, fake)


async def test_clock_skew_is_measured_named_and_corrected(
    fake: FakeBybit, bus: EventBus, verbose: pytest.LogCaptureFixture
) -> None:
    fake.skew_ms = 15_000  # the server's clock is 15 s ahead of ours
    events = record(bus)
    ws = BybitPrivateWebSocket(
        bus,
        api_key=KEY,
        api_secret=SECRET,
        url=fake.url("/v5/private"),
        backoff=FAST,
        auth_window_ms=10_000,
        auth_retry_interval=0.2,
    )
    started = time.monotonic()
    await ws.connect(timeout=3)
    assert time.monotonic() - started >= 0.2  # the retry waited its interval
    failed, ok = events[EventType.AUTH]
    assert failed.reason == "clock_skew" and failed.retry_in == 0.2
    assert "local clock is 15.0 s behind the server (measured from pongs)" in failed.message
    assert ok.ok
    assert ws.auth_state.clock_offset_ms == pytest.approx(15_000, abs=500)
    await ws.disconnect()
    assert_no_leak(verbose, fake)


async def test_trade_stream_order_entry(
    fake: FakeBybit, bus: EventBus, verbose: pytest.LogCaptureFixture
) -> None:
    trade = BybitTradeWebSocket(
        bus, api_key=KEY, api_secret=SECRET, url=fake.url("/v5/trade"), backoff=FAST
    )
    await trade.connect(timeout=3)
    ack = await trade.create_order(
        category="linear",
        symbol="ETHUSDT",
        side="Buy",
        order_type="Limit",
        qty="0.2",
        price="2800",
        time_in_force="PostOnly",
    )
    assert ack.ok and ack.order_id == "a4c1718e-fe53-4659-a118-1f6ecce04ad9"
    assert ack.latency is not None and ack.latency < 1.0
    fake.order_code = 110007
    with pytest.raises(TradeInsufficientBalance):
        await trade.cancel_order(category="linear", symbol="ETHUSDT", order_id="x")
    request = fake.received["trade"][-1]
    assert request["header"]["X-BAPI-RECV-WINDOW"] == "5000"
    assert isinstance(request["header"]["X-BAPI-TIMESTAMP"], str)
    await trade.disconnect()
    assert_no_leak(verbose, fake)


async def test_unknown_key_on_the_trade_stream(fake: FakeBybit) -> None:
    trade = BybitTradeWebSocket(
        api_key="nobody-knows-this-key", api_secret=SECRET, url=fake.url("/v5/trade")
    )
    with pytest.raises(AuthError) as info:
        await trade.connect(timeout=3)
    assert info.value.reason is AuthReason.BAD_KEY
    assert "environment" in str(info.value)
    await trade.disconnect()
