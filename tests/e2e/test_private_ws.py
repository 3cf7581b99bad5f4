"""HEAN's private account stream against the emulator (real sockets, scaled-down time): auth and
its failures, clock skew, reconnect with re-auth / resubscribe / gaps, heartbeats and the idle
cut-off, order events, and that no secret or signature reaches a log record."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.core.lifecycle import ConnectionState as S
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.protocol.auth import AuthError, AuthReason
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_trade import BybitTradeWebSocket
from tests.conftest import ms

from .conftest import FAST_BACKOFF, Recorder

KEY = DEFAULT_API_KEY
SECRET = DEFAULT_API_SECRET
STREAMS = ["order", "execution", "execution.fast", "position", "wallet"]


class SkewedClock:
    """The real clock, but the wall clock is ``offset_ms`` off (a badly synced machine)."""

    def __init__(self, offset_ms: int) -> None:
        self.offset_ms = offset_ms

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


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


def make_private(bus: EventBus, emu: Emulator, **kw: Any) -> BybitPrivateWebSocket:
    params: dict[str, Any] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "url": emu.url("private"),
        "ping_interval": ms(100),
        "pong_timeout": ms(150),
        "connect_timeout": ms(1000),
        "ack_timeout": ms(1000),
        "auth_timeout": ms(1000),
        "auth_retry_interval": ms(200),
        "backoff": FAST_BACKOFF,
        "rng": random.Random(7),
    }
    params.update(kw)
    return BybitPrivateWebSocket(bus, **params)


def make_trade(emu: Emulator, bus: EventBus | None = None, **kw: Any) -> BybitTradeWebSocket:
    params: dict[str, Any] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "url": emu.url("trade"),
        "ping_interval": ms(100),
        "pong_timeout": ms(150),
        "connect_timeout": ms(1000),
        "auth_timeout": ms(1000),
        "auth_retry_interval": ms(200),
        "request_timeout": ms(2000),
        "backoff": FAST_BACKOFF,
        "rng": random.Random(8),
    }
    params.update(kw)
    return BybitTradeWebSocket(bus, **params)


async def until(predicate: Any, timeout: float = 3.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout * max(1.0, ms(1000))
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)


async def live_subscribed(ws: BybitPrivateWebSocket, topics: list[str]) -> None:
    await ws.connect(timeout=ms(3000))
    await ws.subscribe(topics)
    statuses = await ws.wait_subscribed(topics, timeout=ms(3000))
    assert set(statuses.values()) == {"confirmed"}, statuses


async def test_auth_success_and_subscriptions(
    bus: EventBus, recorder: Recorder, emu: Emulator
) -> None:
    ws = make_private(bus, emu)
    await live_subscribed(ws, STREAMS)
    assert ws.auth_state.status == "authenticated"
    assert ws.auth_state.clock_offset_ms is not None  # from the clock ping's pong
    assert abs(ws.auth_state.clock_offset_ms) < 500
    [info] = emu.live_connections("private")
    assert info.auth_state == "authenticated" and info.api_key == KEY
    assert info.subscriptions == set(STREAMS)
    assert [e.ok for e in recorder.events[EventType.AUTH]] == [True]
    assert [r.result for r in emu.auth_log] == ["ok"]
    # a categorised form of a stream: its pushes arrive under the categorised name
    with pytest.raises(ValueError, match="all-in-one"):
        await ws.subscribe(["order.linear"])
    await ws.disconnect()
    assert ws.state is S.CLOSED


async def test_wrong_secret_is_typed_and_not_retried(
    bus: EventBus, recorder: Recorder, emu: Emulator
) -> None:
    ws = make_private(bus, emu, api_secret=SECRET + "-wrong", auth_retry_interval=ms(50))
    with pytest.raises(AuthError) as err:
        await ws.connect(timeout=ms(3000))
    assert err.value.reason is AuthReason.BAD_SIGNATURE
    assert "signature invalid" in str(err.value)
    started = time.monotonic()
    await asyncio.sleep(ms(800))  # 16 retry intervals: no tight loop, no retry at all
    assert emu.auth_attempts(since=started) == 0
    assert emu.auth_attempts(KEY) == 1 and [r.result for r in emu.auth_log] == ["bad_signature"]
    assert len(emu.connections) == 1
    assert ws.state is S.AUTH_FAILED and ws.auth_state.status == "failed"
    # an explicit connect() tries once more
    with pytest.raises(AuthError):
        await ws.connect(timeout=ms(3000))
    assert emu.auth_attempts(KEY) == 2
    await ws.disconnect()
    [event, _] = recorder.events[EventType.AUTH]
    assert event.reason == "bad_signature" and event.retry_in is None


async def test_unknown_key_is_typed(bus: EventBus, emu: Emulator) -> None:
    ws = make_private(bus, emu, api_key="nobody-has-this-key")
    with pytest.raises(AuthError) as err:
        await ws.connect(timeout=ms(3000))
    assert err.value.reason is AuthReason.BAD_KEY
    await ws.disconnect()


async def test_expired_signature_under_client_clock_skew(
    bus: EventBus, recorder: Recorder, emu: Emulator
) -> None:
    # the local clock is 15 s behind: expires = local now + 10 s is in the server's past
    ws = make_private(bus, emu, clock=SkewedClock(-15_000), auth_window_ms=10_000)
    started = time.monotonic()
    await ws.connect(timeout=ms(3000))
    assert time.monotonic() - started >= ms(200)  # the retry waited its interval
    failed, ok = recorder.events[EventType.AUTH]
    assert failed.reason == "clock_skew" and not failed.ok
    assert "local clock is 15.0 s behind the server (measured from pongs)" in failed.message
    assert failed.ret_msg == "Params Error"
    assert ok.ok
    assert [r.result for r in emu.auth_log] == ["expired", "ok"]
    assert ws.auth_state.clock_offset_ms == pytest.approx(15_000, abs=500)
    await ws.disconnect()


async def test_expired_signature_under_the_server_skew_knob(
    bus: EventBus, recorder: Recorder, emu: Emulator
) -> None:
    emu.set_clock_skew(20_000)  # the server's clock is 20 s ahead of ours
    ws = make_private(bus, emu)
    await ws.connect(timeout=ms(3000))
    failed, ok = recorder.events[EventType.AUTH]
    assert "local clock is 20.0 s behind the server" in failed.message and ok.ok
    await ws.disconnect()


async def test_reauth_and_resubscribe_after_drops_one_gap_per_stream(
    bus: EventBus, recorder: Recorder, emu: Emulator
) -> None:
    ws = make_private(bus, emu)
    topics = ["order", "execution", "position", "wallet"]
    await live_subscribed(ws, topics)
    for round_ in (1, 2):
        [old] = emu.live_connections("private")
        old_id, want = old.conn_id, round_ * len(topics)
        emu.drop_connections(old.conn_id)
        await until(
            lambda: (
                len(emu.live_connections("private")) == 1
                and emu.live_connections("private")[0].conn_id != old_id  # noqa: B023
                and emu.live_connections("private")[0].subscriptions == set(topics)
            )
        )
        [new] = emu.live_connections("private")
        assert new.auth_state == "authenticated" and new.auth_attempts == 1
        await until(lambda: len(recorder.events[EventType.GAP]) == want)  # noqa: B023
    gaps = recorder.events[EventType.GAP]
    assert sorted(g.topic for g in gaps) == sorted(topics * 2)
    for gap in gaps:
        assert gap.duration > 0 and gap.reason.startswith("server_close")
        assert gap.down_since_wall_ms is not None and gap.up_at_wall_ms is not None
    await asyncio.sleep(ms(200))
    assert len(recorder.events[EventType.GAP]) == 2 * len(topics)  # exactly one each time
    assert [r.result for r in emu.auth_log] == ["ok", "ok", "ok"]
    # pushes flow on the new connection
    emu.set_balance(KEY, "USDT", "777")
    await until(lambda: recorder.events[EventType.WALLET_UPDATE])
    await ws.disconnect()


@pytest.mark.emulator(private_idle_timeout=0.3, max_active_time_scale=0.01)
async def test_idle_connection_stays_up_far_longer_than_the_cut_off(
    bus: EventBus, emu: Emulator
) -> None:
    plain = make_private(bus, emu)
    short = make_private(bus, emu, max_active_time="30s", name="private-30s")  # 0.3 s scaled
    await plain.connect(timeout=ms(3000))
    await short.connect(timeout=ms(3000))
    await asyncio.sleep(max(1.5, ms(1500)))  # 5x the cut-off
    assert plain.stats.reconnects == 0 and short.stats.reconnects == 0
    assert len(emu.connections) == 2
    assert all(i.is_open for i in emu.connections)
    assert [i.max_active_time for i in emu.connections] == [None, pytest.approx(0.3)]
    assert all(i.json_pings >= 5 for i in emu.connections)
    await plain.disconnect()
    await short.disconnect()


async def test_missed_pong_is_detected(bus: EventBus, recorder: Recorder, emu: Emulator) -> None:
    ws = make_private(bus, emu)
    await live_subscribed(ws, ["order"])
    [info] = emu.live_connections("private")
    emu.set_faults(info.conn_id, ignore_json_ping=True)
    await until(lambda: ws.stats.disconnect_reasons.get("heartbeat_timeout"))
    await until(lambda: ws.state is S.LIVE and emu.connection(info.conn_id).closed_at)
    await until(lambda: recorder.events[EventType.GAP])
    [gap] = recorder.events[EventType.GAP]
    assert gap.topic == "order" and gap.reason == "heartbeat_timeout"
    await ws.disconnect()


async def test_order_placed_through_the_trade_stream_produces_events(
    bus: EventBus, recorder: Recorder, emu: Emulator
) -> None:
    ws = make_private(bus, emu)
    await live_subscribed(ws, STREAMS)
    trade = make_trade(emu)
    await trade.connect(timeout=ms(3000))
    _, asks = emu.book_truth("linear", "BTCUSDT", 3)
    price = asks[1][0]  # a marketable limit: takes the best level and part of the next
    qty = Decimal(asks[0][1]) + Decimal("0.005")
    ack = await trade.create_order(
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        order_type="Limit",
        qty=qty,
        price=price,
        order_link_id="e2e-1",
    )
    assert ack.ok and ack.order_id and ack.order_link_id == "e2e-1"

    def orders() -> list[Any]:
        return [o for e in recorder.events[EventType.ORDER_UPDATE] for o in e.orders]

    def executions(fast: bool) -> list[Any]:
        return [
            x for e in recorder.events[EventType.EXECUTION] if e.fast is fast for x in e.executions
        ]

    await until(lambda: orders() and executions(False) and executions(True))
    await until(lambda: recorder.events[EventType.POSITION_UPDATE])
    [order] = orders()
    assert order.order_id == ack.order_id and order.order_link_id == "e2e-1"
    assert order.side == "Buy" and order.order_type == "Limit"
    assert Decimal(order.qty) == qty and Decimal(order.price) == Decimal(price)
    assert order.order_status == "Filled" and Decimal(order.cum_exec_qty) == qty
    slow = executions(False)
    assert {x.order_id for x in slow} == {ack.order_id}
    assert sum(Decimal(x.exec_qty) for x in slow) == Decimal(order.cum_exec_qty)
    assert {Decimal(x.exec_price) for x in slow} == {Decimal(asks[0][0]), Decimal(price)}
    assert all(x.side == "Buy" and x.is_maker is False for x in slow)
    assert [x.exec_id for x in executions(True)] == [x.exec_id for x in slow]
    [position_event] = recorder.events[EventType.POSITION_UPDATE]
    assert Decimal(position_event.positions[0].size) == qty
    await until(lambda: recorder.events[EventType.WALLET_UPDATE])
    truth = emu.account(KEY)
    assert truth.orders[ack.order_id]["cumExecQty"] == order.cum_exec_qty
    await trade.disconnect()
    await ws.disconnect()


async def test_secrets_and_signatures_never_reach_a_log_record(
    bus: EventBus, emu: Emulator
) -> None:
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler = Capture(level=1)
    saved = {name: logging.getLogger(name).level for name in ("", "picows", "hean")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("picows", "hean"):
        logging.getLogger(name).setLevel(1)  # picows logs raw frames at level 9
    try:
        ws = make_private(bus, emu)
        await live_subscribed(ws, ["order", "wallet"])
        trade = make_trade(emu)
        await trade.connect(timeout=ms(3000))
        await trade.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="0.001"
        )
        bad = make_private(bus, emu, api_secret=SECRET[:-1] + "X", name="bad")
        with pytest.raises(AuthError):
            await bad.connect(timeout=ms(3000))
        await bad.disconnect()
        await trade.disconnect()
        await ws.disconnect()
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name or None).setLevel(level)
    # what the clients actually sent, read on the emulator's side
    signatures = [str(i.last_auth_args[2]) for i in emu.connections if i.last_auth_args]
    assert len(signatures) == 3 and all(len(s) == 64 for s in signatures)
    assert len(records) > 50  # the test is meaningful: DEBUG really was on
    assert any(r.name.startswith("picows") or "emulator.ws" in r.name for r in records)
    for record in records:
        text = record.getMessage() + (record.exc_text or "") + (record.stack_info or "")
        assert SECRET not in text and SECRET[:-1] + "X" not in text, record
        for signature in signatures:
            assert signature not in text, record
