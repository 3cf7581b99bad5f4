"""The session state machine, driven with plain calls and a hand-moved ``now``."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from hean.core.events import EventType, SubscriptionStatus
from hean.core.lifecycle import ConnectionState as S
from hean.exchange.bybit.protocol.backoff import BackoffPolicy, BreakerState
from hean.exchange.bybit.protocol.codec import Frame
from hean.exchange.bybit.protocol.heartbeat import HeartbeatPolicy
from hean.exchange.bybit.protocol.session import (
    Action,
    Close,
    Connect,
    Emit,
    Send,
    Session,
    SessionConfig,
)
from tests.conftest import example_bytes

URL = "ws://127.0.0.1:1/v5/public/linear"


def make(**kw: Any) -> tuple[Session, list[tuple[Frame, float]]]:
    data: list[tuple[Frame, float]] = []
    config = SessionConfig(
        name="public/linear",
        url=URL,
        heartbeat=kw.pop("heartbeat", HeartbeatPolicy(20, 10)),
        backoff=kw.pop("backoff", BackoffPolicy(first=1, cap=30, stable_after=10)),
        **kw,
    )
    return Session(config, lambda f, now: data.append((f, now)), rng=random.Random(1)), data


def sends(actions: list[Action] | None) -> list[dict[str, Any]]:
    return [json.loads(a.payload) for a in actions or [] if isinstance(a, Send)]


def emits(actions: list[Action] | None, kind: EventType) -> list[Any]:
    return [a.event for a in actions or [] if isinstance(a, Emit) and a.event_type is kind]


def test_start_connect_and_subscribe_on_connect() -> None:
    session, _ = make()
    session.subscribe(["tickers.BTCUSDT"], 0.0)  # before connecting: remembered, not sent
    actions = session.start(0.0)
    assert Connect(URL) in actions
    [state] = emits(actions, EventType.CONNECTION_STATE)
    assert (state.old, state.new) == (S.IDLE, S.CONNECTING)
    actions = session.connected(0.5)
    assert session.state is S.LIVE
    [req] = sends(actions)
    assert req["op"] == "subscribe" and req["args"] == ["tickers.BTCUSDT"]


def test_pings_on_schedule_and_pongs_of_every_shape_clear_the_deadline() -> None:
    session, _ = make()
    session.start(0.0)
    session.connected(0.0)
    assert session.next_deadline() == 20.0
    for i, shape in enumerate(
        ["pong_public", "pong_public_spot", "pong_public_option", "pong_private", "pong_trade"]
    ):
        t = 20.0 * (i + 1)
        [ping] = sends(session.tick(t))
        assert ping["op"] == "ping"
        assert session.next_deadline() == t + 10.0
        assert session.receive(example_bytes(shape), t + 0.25) is None
        assert session.heartbeat.rtt == pytest.approx(0.25)
        assert session.tick(t + 15.0) == []  # pong came: no timeout
    assert session.state is S.LIVE


def test_missed_pong_is_detected_at_interval_plus_timeout_and_reconnects() -> None:
    session, _ = make()
    session.subscribe(["tickers.A"], 0.0)
    session.start(0.0)
    session.connected(0.0)
    session.tick(20.0)  # ping
    assert session.tick(29.99) == []
    actions = session.tick(30.0)
    assert Close(1011, "heartbeat_timeout", True) in actions
    actions = session.disconnected("server_close:1006", 30.01)  # the shell reports the drop
    assert session.state is S.BACKOFF
    [state] = emits(actions, EventType.CONNECTION_STATE)
    assert state.reason == "heartbeat_timeout"  # our reason, not the socket's
    assert session.stats.disconnect_reasons == {"heartbeat_timeout": 1}
    # connection was live 30 s > stable_after: backoff reset, so first delay is U(0, 1)
    assert session.reconnect_at is not None and session.reconnect_at <= 31.01
    actions = session.tick(session.reconnect_at)
    assert Connect(URL) in actions and session.state is S.CONNECTING
    [req] = sends(session.connected(32.0))
    assert req["args"] == ["tickers.A"]  # resubscribed


def test_data_keeps_flowing_but_missing_pong_still_kills() -> None:
    session, data = make()
    session.subscribe(["tickers.A"], 0.0)
    session.start(0.0)
    session.connected(0.0)
    session.tick(20.0)
    for i in range(100):
        session.receive(example_bytes("tickers_linear_delta"), 20.0 + i * 0.09)
    assert len(data) == 100
    assert any(isinstance(a, Close) for a in session.tick(30.0))


def test_server_json_ping_is_answered() -> None:
    session, _ = make()
    session.start(0.0)
    session.connected(0.0)
    assert sends(session.receive(b'{"op":"ping"}', 1.0)) == [{"op": "pong"}]


def test_acks_emit_subscription_events_and_rejections_are_not_looped() -> None:
    session, _ = make()
    session.start(0.0)
    session.connected(0.0)
    [req] = sends(session.subscribe(["tickers.A", "tickers.BAD"], 1.0))
    reply = {
        "success": False,
        "ret_msg": "error:handler not found,topic:tickers.BAD",
        "conn_id": "c",
        "req_id": req["req_id"],
        "op": "subscribe",
    }
    actions = session.receive(json.dumps(reply).encode(), 1.1)
    [event] = emits(actions, EventType.SUBSCRIPTION)
    assert (event.topic, event.status) == ("tickers.BAD", SubscriptionStatus.REJECTED)
    [retry] = sends(actions)
    assert retry["args"] == ["tickers.A"]
    ok = {
        "success": True,
        "ret_msg": "",
        "conn_id": "c",
        "req_id": retry["req_id"],
        "op": "subscribe",
    }
    [confirmed] = emits(session.receive(json.dumps(ok).encode(), 1.2), EventType.SUBSCRIPTION)
    assert confirmed.status is SubscriptionStatus.CONFIRMED
    # the rejected topic is never re-sent on this connection, however long we wait
    later = [r for t in (20.0, 40.0, 60.0) for r in sends(session.tick(t))]
    assert all(r["op"] != "subscribe" for r in later)


def test_ack_timeout_reported_once() -> None:
    session, _ = make(ack_timeout=5.0)
    session.start(0.0)
    session.connected(0.0)
    session.subscribe(["tickers.A"], 1.0)
    assert session.next_deadline() == 6.0
    [event] = emits(session.tick(6.0), EventType.SUBSCRIPTION)
    assert event.status is SubscriptionStatus.TIMEOUT
    assert emits(session.tick(7.0), EventType.SUBSCRIPTION) == []


def test_bad_frames_are_counted_and_dropped() -> None:
    session, _ = make()
    session.start(0.0)
    session.connected(0.0)
    for payload in [b"garbage", b"", b"[1]", b'{"topic": 3}']:
        assert session.receive(payload, 1.0) is None
    assert session.stats.decode_errors == 4

    def boom(frame: Frame, now: float) -> None:
        raise KeyError("x")

    session.on_data = boom
    assert session.receive(example_bytes("tickers_linear_delta"), 2.0) is None
    assert session.stats.data_errors == 1
    assert session.state is S.LIVE
    bad = b'{"success":false,"ret_msg":"Failed to decode incoming data","conn_id":"c","op":""}'
    session.receive(bad, 3.0)
    assert session.stats.server_errors == 1


@pytest.mark.parametrize("state", ["idle", "connecting", "live", "backoff"])
def test_stop_wins_from_every_state(state: str) -> None:
    session, _ = make()
    if state != "idle":
        session.start(0.0)
    if state in ("live", "backoff"):
        session.connected(0.0)
    if state == "backoff":
        session.disconnected("server_close:1006", 1.0)
        assert session.state is S.BACKOFF
    actions = session.stop(2.0)
    if state in ("idle", "backoff"):
        assert session.state is S.CLOSED and not any(isinstance(a, Close) for a in actions)
    else:
        assert session.state is S.STOPPING and Close(1000, "stop", False) in actions
        # whatever the socket does next, nothing reconnects
        if state == "connecting":
            assert Close(1000, "stop", False) in session.connected(2.1)
        session.disconnected("server_close:1006", 2.2)
        assert session.state is S.CLOSED
    assert session.tick(1e6) == [] and session.next_deadline() is None
    assert session.stop(3.0) == []  # idempotent


def test_backoff_grows_while_connections_keep_failing_and_breaker_opens() -> None:
    policy = BackoffPolicy(first=1, cap=8, failure_threshold=3, cooldown=60, stable_after=10)
    session, _ = make(backoff=policy)
    session.start(0.0)
    now = 0.0
    bounds = []
    for _ in range(3):
        session.connect_failed("connect_refused", now)
        assert session.state is S.BACKOFF
        bounds.append(session.reconnect_at - now)  # type: ignore[operator]
        now = session.reconnect_at  # type: ignore[assignment]
        if session.breaker.state is BreakerState.OPEN:
            break
        assert Connect(URL) in session.tick(now)
    assert session.breaker.state is BreakerState.OPEN
    assert bounds[-1] >= 59.9  # the third failure opened the breaker: wait out the cooldown
    assert all(b <= 8 for b in bounds[:-1])


def test_connection_dying_young_does_not_reset_backoff() -> None:
    session, _ = make(backoff=BackoffPolicy(first=1, cap=30, stable_after=10))
    session.start(0.0)
    now = 0.0
    for _ in range(4):
        session.connected(now)
        session.disconnected("server_close:1006", now + 1.0)  # died after 1 s < stable_after
        now = session.reconnect_at  # type: ignore[assignment]
        session.tick(now)
    assert session.backoff.attempts == 4
    session.connected(now)
    session.disconnected("server_close:1006", now + 11.0)  # was stable: reset
    assert session.backoff.attempts == 1


def test_venue_accepting_then_dropping_never_causes_a_long_outage() -> None:
    """Issue 12, defect 2: every handshake succeeds, every connection is dropped by the venue
    before stable_after. With the default policy the breaker used to count each one as a failed
    trial and open for 30, 60, 120, 240, 300 s. A venue that accepts us is reachable: the
    breaker stays closed and the jittered backoff (bounded by ``cap``) paces the attempts."""
    policy = BackoffPolicy()  # the defaults: cap 30 s, breaker after 5, cooldown 30..300 s
    session, _ = make(backoff=policy)
    session.start(0.0)
    now = 0.0
    waits = []
    for _ in range(60):
        session.connected(now)
        now += 1.0  # dropped after 1 s < stable_after
        session.disconnected("server_close:1006", now)
        assert session.reconnect_at is not None
        waits.append(session.reconnect_at - now)
        now = session.reconnect_at
        assert Connect(URL) in session.tick(now)
    assert session.breaker.state is BreakerState.CLOSED
    assert max(waits) <= policy.cap  # never longer without a connection than the backoff cap
    assert sum(waits) / len(waits) > policy.cap / 4  # and no storm: the backoff kept growing


def test_breaker_counts_failed_handshakes_and_one_accepted_connection_closes_it() -> None:
    policy = BackoffPolicy(first=1, cap=8, failure_threshold=3, cooldown=60, stable_after=10)
    session, _ = make(backoff=policy)
    session.start(0.0)
    now = 0.0
    for _ in range(2):
        session.connect_failed("http_503", now)
        now = session.reconnect_at  # type: ignore[assignment]
        assert Connect(URL) in session.tick(now)
    session.connect_failed("http_503", now)
    assert session.breaker.state is BreakerState.OPEN
    now = session.breaker.retry_at
    assert Connect(URL) in session.tick(now)  # the half-open trial
    assert session.breaker.state is BreakerState.HALF_OPEN
    session.connected(now)  # accepted: the venue is back
    assert session.breaker.state is BreakerState.CLOSED
    session.disconnected("server_close:1006", now + 1.0)  # dropped young: backoff, not breaker
    assert session.breaker.state is BreakerState.CLOSED
    assert session.reconnect_at is not None and session.reconnect_at - (now + 1.0) <= 8


def test_http_429_waits_at_least_retry_after() -> None:
    session, _ = make(backoff=BackoffPolicy(first=1, cap=30, slow_floor=30))
    session.start(0.0)
    session.connect_failed("http_429", 0.0, retry_after=45.0)
    assert session.reconnect_at is not None and session.reconnect_at >= 45.0


def test_resync_resubscribes_only_that_topic() -> None:
    session, _ = make()
    session.subscribe(["tickers.A", "tickers.B"], 0.0)
    session.start(0.0)
    session.connected(0.0)
    actions = session.resync("tickers.A", "delta before snapshot", 1.0)
    assert [(r["op"], r["args"]) for r in sends(actions)] == [
        ("unsubscribe", ["tickers.A"]),
        ("subscribe", ["tickers.A"]),
    ]
    [event] = emits(actions, EventType.SUBSCRIPTION)
    assert event.status is SubscriptionStatus.RESYNC
    assert session.resync("tickers.UNKNOWN", "x", 1.0) == []


def test_unsubscribe_sends_when_live_and_reports_when_not() -> None:
    session, _ = make()
    session.subscribe(["a"], 0.0)
    [event] = emits(session.unsubscribe(["a"], 0.0), EventType.SUBSCRIPTION)
    assert event.status is SubscriptionStatus.UNSUBSCRIBED
    session.subscribe(["b"], 0.0)
    session.start(0.0)
    session.connected(0.0)
    [req] = sends(session.unsubscribe(["b"], 1.0))
    assert req["op"] == "unsubscribe"


class _Timer:
    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.ticks: list[float] = []

    def next_deadline(self) -> float | None:
        return self.deadline

    def tick(self, now: float) -> None:
        self.ticks.append(now)


def test_extra_timers_are_merged_into_deadlines_and_ticked() -> None:
    session, _ = make()
    session.start(0.0)
    session.connected(0.0)
    timer = _Timer(5.0)
    session.timers.append(timer)
    assert session.next_deadline() == 5.0  # earlier than the first ping (20 s)
    session.tick(5.0)
    assert timer.ticks == [5.0]
    timer.deadline = None
    assert session.next_deadline() == 20.0


def test_drop_reconnects_with_the_given_reason() -> None:
    session, _ = make()
    assert session.drop("service_restarting:10019", 0.0) == []  # not connected: nothing
    session.start(0.0)
    session.connected(0.0)
    assert Close(1011, "service_restarting:10019", True) in session.drop(
        "service_restarting:10019", 1.0
    )
    assert session.drop("again", 1.1) == []  # already dropping
    [state] = emits(session.disconnected("server_close:1006", 1.2), EventType.CONNECTION_STATE)
    assert state.new is S.BACKOFF and state.reason == "service_restarting:10019"


def test_op_responses_reach_on_response_with_the_raw_payload() -> None:
    session, _ = make()
    got: list[tuple[str | None, bytes]] = []
    session.on_response = lambda frame, payload, now: got.append((frame.reqId, bytes(payload)))
    session.start(0.0)
    session.connected(0.0)
    payload = example_bytes("order_create_response")
    assert session.receive(payload, 1.0) is None
    assert got == [("test-005", payload)]
