"""The session's auth flow (private/trade streams), driven with plain calls and a hand-moved
``now``: no sockets, no clocks."""

from __future__ import annotations

import itertools
import json
import logging
import random
from typing import Any

import pytest

from hean.core.events import AuthEvent, EventType, GapEvent
from hean.core.lifecycle import TRANSITIONS, Lifecycle
from hean.core.lifecycle import ConnectionState as S
from hean.exchange.bybit.protocol.auth import Authenticator, sign
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
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
    with_max_active_time,
)
from tests.conftest import example_bytes

URL = "ws://127.0.0.1:1/v5/private"
EPOCH = 1_700_000_000_000
KEY = "test-api-key-123456"
SECRET = "test-api-secret-abcdefghijkl"

AUTH_OK = example_bytes("auth_ok")
AUTH_EXPIRED = example_bytes("auth_fail")  # {"success": false, "ret_msg": "Params Error", ...}
AUTH_BAD_KEY = b'{"success":false,"ret_msg":"API key is invalid","op":"auth","conn_id":"c"}'
AUTH_BAD_SIGN = b'{"success":false,"ret_msg":"Error sign","op":"auth","conn_id":"c"}'


class Wall:
    """Local wall clock derived from ``now``, with a settable skew (local - server)."""

    def __init__(self) -> None:
        self.skew_ms = 0

    def __call__(self, now: float) -> int:
        return EPOCH + round(now * 1000) + self.skew_ms


def make(**kw: Any) -> tuple[Session, Authenticator, Wall, list[tuple[Frame, float]]]:
    wall = Wall()
    auth = Authenticator(KEY, SECRET, wall_ms=wall, window_ms=kw.pop("window_ms", 10_000))
    data: list[tuple[Frame, float]] = []
    config = SessionConfig(
        name="private",
        url=URL,
        heartbeat=kw.pop("heartbeat", HeartbeatPolicy(20, 10)),
        backoff=kw.pop("backoff", BackoffPolicy(first=1, cap=30, stable_after=10)),
        auth_timeout=kw.pop("auth_timeout", 10.0),
        auth_retry_interval=kw.pop("auth_retry_interval", 60.0),
        report_gaps=kw.pop("report_gaps", True),
        **kw,
    )
    session = Session(
        config,
        lambda f, now: data.append((f, now)),
        rng=random.Random(1),
        auth=auth,
        wall_ms=wall,
    )
    return session, auth, wall, data


def sends(actions: list[Action] | None) -> list[dict[str, Any]]:
    return [json.loads(a.payload) for a in actions or [] if isinstance(a, Send)]


def emits(actions: list[Action] | None, kind: EventType) -> list[Any]:
    return [a.event for a in actions or [] if isinstance(a, Emit) and a.event_type is kind]


def pong(server_ms: int) -> bytes:
    return json.dumps({"op": "pong", "args": [str(server_ms)], "conn_id": "c"}).encode()


def sub_ack(req_id: str) -> bytes:
    return json.dumps(
        {"success": True, "ret_msg": "", "op": "subscribe", "conn_id": "c", "req_id": req_id}
    ).encode()


def connect_and_auth(session: Session, now: float) -> list[dict[str, Any]]:
    """connected -> auth ok; returns the frames sent once live (subscriptions)."""
    session.connected(now)
    return sends(session.receive(AUTH_OK, now + 0.01))


def test_connected_authenticates_before_going_live_and_subscribing() -> None:
    session, _, wall, _ = make()
    session.subscribe(["order", "execution"], 0.0)
    session.start(0.0)
    actions = session.connected(0.5)
    assert session.state is S.AUTHENTICATING
    [state] = emits(actions, EventType.CONNECTION_STATE)
    assert (state.old, state.new, state.reason) == (S.CONNECTING, S.AUTHENTICATING, "connected")
    ping, auth = sends(actions)
    assert ping["op"] == "ping"  # the clock ping goes first
    assert auth["op"] == "auth" and auth["req_id"] == "auth-1"
    key, expires, sig = auth["args"]
    assert key == KEY and expires == wall(0.5) + 10_000 and sig == sign(SECRET, expires)
    assert session.next_deadline() == 10.5  # pong deadline and auth deadline
    assert session.subscribe(["position"], 0.6) == []  # not sent before auth
    actions = session.receive(AUTH_OK, 0.7)
    assert session.state is S.LIVE
    [ok] = emits(actions, EventType.AUTH)
    assert isinstance(ok, AuthEvent) and ok.ok and ok.reason == "ok" and ok.retry_in is None
    [state] = emits(actions, EventType.CONNECTION_STATE)
    assert (state.old, state.new, state.reason) == (S.AUTHENTICATING, S.LIVE, "authenticated")
    [sub] = sends(actions)
    assert sub["op"] == "subscribe" and sub["args"] == ["order", "execution", "position"]
    assert session.stats.auth_attempts == 1 and session.stats.authenticated_at == 0.7


def test_pong_before_the_ack_measures_the_clock_offset() -> None:
    session, auth, wall, _ = make()
    session.start(0.0)
    session.connected(1.0)
    # server is 7.3 s ahead of the local clock; the pong was stamped mid round trip
    assert session.receive(pong(wall(1.05) + 7_300), 1.1) is None
    assert auth.offset.estimate_ms == pytest.approx(7_300)
    assert session.heartbeat.rtt == pytest.approx(0.1)


def test_bad_key_fails_once_with_a_clear_error_and_is_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session, _, _, _ = make()
    session.subscribe(["order"], 0.0)
    session.start(0.0)
    session.connected(0.0)
    with caplog.at_level(logging.ERROR, logger="hean.session"):
        actions = session.receive(AUTH_BAD_KEY, 0.05)
    assert session.state is S.AUTH_FAILED
    assert Close(1000, "auth failed", False) in actions
    assert sends(actions) == []  # no subscription, no retry
    [event] = emits(actions, EventType.AUTH)
    assert not event.ok and event.reason == "bad_key" and event.retry_in is None
    assert event.ret_msg == "API key is invalid"
    [state] = emits(actions, EventType.CONNECTION_STATE)
    assert state.new is S.AUTH_FAILED and state.reason == "auth_failed:bad_key"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "API key is invalid" in errors[0].getMessage()
    assert "not retrying" in errors[0].getMessage()
    assert SECRET not in caplog.text
    # the socket closes; nothing happens however long we wait
    assert session.disconnected("server_close:1000", 0.1) == []
    assert session.state is S.AUTH_FAILED and session.next_deadline() is None
    assert session.tick(1e6) == []
    # until the owner asks again
    actions = session.start(2000.0)
    assert Connect(URL) in actions and session.state is S.CONNECTING
    assert session.last_auth_failure is not None  # kept until an auth succeeds
    connect_and_auth(session, 2000.5)
    assert session.state is S.LIVE and session.last_auth_failure is None


def test_bad_signature_is_not_retried_either() -> None:
    session, _, _, _ = make()
    session.start(0.0)
    session.connected(0.0)
    [event] = emits(session.receive(AUTH_BAD_SIGN, 0.1), EventType.AUTH)
    assert event.reason == "bad_signature" and event.retry_in is None
    session.disconnected("server_close:1000", 0.2)
    assert session.tick(10_000.0) == []


def test_expired_is_retried_once_per_interval_with_the_corrected_offset() -> None:
    session, _, wall, _ = make(auth_retry_interval=60.0)
    wall.skew_ms = -12_000  # local clock 12 s behind the server
    session.start(0.0)
    session.connected(0.0)
    session.receive(pong(wall(0.05) + 12_000), 0.1)  # the clock ping's answer
    actions = session.receive(AUTH_EXPIRED, 0.12)
    [event] = emits(actions, EventType.AUTH)
    assert event.reason == "clock_skew" and event.retry_in == 60.0
    assert "local clock is 12.0 s behind the server (measured from pongs)" in event.message
    assert event.clock_offset_ms == pytest.approx(12_000)
    assert session.state is S.AUTH_FAILED
    # the close is in progress: no retry while the socket is still open
    assert session.next_deadline() is None
    session.disconnected("server_close:1000", 0.2)
    assert session.next_deadline() == pytest.approx(60.12)
    assert session.tick(60.0) == []  # not before the interval
    actions = session.tick(60.12)
    assert Connect(URL) in actions and session.state is S.CONNECTING
    _, retry = sends(session.connected(60.5))
    # the retry's expires is in the *server's* future
    assert retry["args"][1] == pytest.approx(wall(60.5) + 12_000 + 10_000, abs=1)
    session.receive(AUTH_OK, 60.6)
    assert session.state is S.LIVE


def test_no_tight_auth_loop_over_ten_minutes() -> None:
    session, _, _, _ = make(auth_retry_interval=60.0)
    session.start(0.0)
    auth_times = []
    now = 0.0
    while now < 600.0:
        for action in session.tick(now):
            if isinstance(action, Connect):
                actions = session.connected(now)
                auth_times += [now for m in sends(actions) if m["op"] == "auth"]
                session.receive(AUTH_EXPIRED, now + 0.01)
                session.disconnected("server_close:1000", now + 0.02)
        if session.state is S.CONNECTING and not auth_times:
            actions = session.connected(now)
            auth_times += [now for m in sends(actions) if m["op"] == "auth"]
            session.receive(AUTH_EXPIRED, now + 0.01)
            session.disconnected("server_close:1000", now + 0.02)
        now += 0.5
    gaps = [b - a for a, b in itertools.pairwise(auth_times)]
    assert len(auth_times) == 10  # 0, 60, 120 ... 540
    assert all(g >= 60.0 for g in gaps)


def test_auth_timeout_reconnects_with_reason() -> None:
    session, _, _, _ = make(auth_timeout=5.0, heartbeat=HeartbeatPolicy(20, 10))
    session.start(0.0)
    session.connected(0.0)
    session.receive(pong(EPOCH + 10), 0.02)  # the link is alive, the auth ack never comes
    assert session.next_deadline() == 5.0
    assert session.tick(4.99) == []
    actions = session.tick(5.0)
    assert Close(1011, "auth_timeout", True) in actions
    actions = session.disconnected("server_close:1006", 5.01)
    assert session.state is S.BACKOFF
    [state] = emits(actions, EventType.CONNECTION_STATE)
    assert state.reason == "auth_timeout"
    assert session.stats.disconnect_reasons == {"auth_timeout": 1}


def test_every_reconnect_reauthenticates_before_resubscribing() -> None:
    session, _, _, _ = make()
    session.subscribe(["order", "wallet"], 0.0)
    session.start(0.0)
    [sub] = connect_and_auth(session, 0.0)
    session.receive(sub_ack(sub["req_id"]), 0.1)
    for round_ in range(3):
        session.disconnected("server_close:1006", 30.0 + round_ * 100)
        assert session.state is S.BACKOFF
        actions = session.tick(session.reconnect_at)  # type: ignore[arg-type]
        assert Connect(URL) in actions
        frames = sends(session.connected(35.0 + round_ * 100))
        assert [m["op"] for m in frames] == ["ping", "auth"]  # no subscribe before auth
        [sub] = sends(session.receive(AUTH_OK, 35.1 + round_ * 100))
        assert sub["op"] == "subscribe" and sub["args"] == ["order", "wallet"]
        session.receive(sub_ack(sub["req_id"]), 35.2 + round_ * 100)
    assert session.stats.auth_attempts == 4


def test_a_gap_event_per_topic_after_each_reconnect() -> None:
    session, _, wall, _ = make()
    session.subscribe(["order", "execution"], 0.0)
    session.start(0.0)
    [sub] = connect_and_auth(session, 0.0)
    session.receive(sub_ack(sub["req_id"]), 0.1)
    session.receive(example_bytes("order"), 20.0)  # last data before the loss
    session.subscribe(["wallet"], 25.0)  # wanted but never confirmed: no gap for it
    session.disconnected("server_close:1006", 30.0)
    assert set(session.pending_gaps) == {"order", "execution"}
    session.tick(session.reconnect_at)  # type: ignore[arg-type]
    [sub] = connect_and_auth(session, 32.0)
    actions = session.receive(sub_ack(sub["req_id"]), 32.5)
    gaps = emits(actions, EventType.GAP)
    assert [g.topic for g in gaps] == ["order", "execution"]
    gap = gaps[0]
    assert isinstance(gap, GapEvent)
    assert (gap.down_since, gap.up_at, gap.duration) == (30.0, 32.5, 2.5)
    assert gap.reason == "server_close:1006" and gap.last_seen == 20.0
    assert gap.down_since_wall_ms == wall(30.0) and gap.up_at_wall_ms == wall(32.5)
    assert session.pending_gaps == {} and session.stats.gaps == 2
    # each loss is reported once
    assert emits(session.tick(40.0), EventType.GAP) == []


def test_gap_spans_failed_reconnects_and_auth_failures() -> None:
    session, _, _, _ = make(auth_retry_interval=60.0)
    session.subscribe(["position"], 0.0)
    session.start(0.0)
    [sub] = connect_and_auth(session, 0.0)
    session.receive(sub_ack(sub["req_id"]), 0.1)
    session.disconnected("heartbeat_timeout", 10.0)
    session.tick(session.reconnect_at)  # type: ignore[arg-type]
    session.connected(11.0)
    session.receive(AUTH_EXPIRED, 11.1)
    session.disconnected("server_close:1000", 11.2)
    session.tick(71.1)
    [sub] = connect_and_auth(session, 72.0)
    [gap] = emits(session.receive(sub_ack(sub["req_id"]), 72.5), EventType.GAP)
    assert gap.down_since == 10.0 and gap.up_at == 72.5 and gap.reason == "heartbeat_timeout"


@pytest.mark.parametrize("socket_open", [True, False])
def test_stop_wins_from_authenticating_and_auth_failed(socket_open: bool) -> None:
    session, _, _, _ = make()
    session.start(0.0)
    session.connected(0.0)
    actions = session.stop(1.0)
    assert session.state is S.STOPPING and Close(1000, "stop", False) in actions
    assert emits(session.receive(AUTH_OK, 1.1), EventType.AUTH) == []  # late ack ignored
    assert session.state is S.STOPPING
    session.disconnected("server_close:1000", 1.2)
    assert session.state is S.CLOSED

    session, _, _, _ = make()
    session.start(0.0)
    session.connected(0.0)
    session.receive(AUTH_EXPIRED, 0.1)
    if not socket_open:
        session.disconnected("server_close:1000", 0.2)
    session.stop(1.0)
    assert session.state is (S.STOPPING if socket_open else S.CLOSED)
    session.disconnected("server_close:1000", 1.1)
    assert session.state is S.CLOSED
    assert session.tick(1e6) == [] and session.next_deadline() is None


def test_repeat_auth_counts_as_authenticated() -> None:
    session, _, _, _ = make()
    session.start(0.0)
    session.connected(0.0)
    reply = b'{"retCode":20001,"retMsg":"repeat auth","op":"auth","connId":"c"}'
    [event] = emits(session.receive(reply, 0.1), EventType.AUTH)
    assert event.ok and session.state is S.LIVE


def test_public_sessions_are_unchanged() -> None:
    config = SessionConfig(name="public/linear", url="ws://x/v5/public/linear")
    session = Session(config, lambda f, now: None)
    session.subscribe(["tickers.A"], 0.0)
    session.start(0.0)
    [sub] = sends(session.connected(0.0))
    assert session.state is S.LIVE and sub["op"] == "subscribe"
    assert session.receive(AUTH_OK, 0.1) is None  # an auth ack means nothing here


def test_trade_style_pings_have_no_req_id() -> None:
    session, _, _, _ = make(ping_req_id=False)
    session.start(0.0)
    ping, _ = sends(session.connected(0.0))
    assert ping == {"op": "ping"}


def test_auth_failed_in_the_lifecycle_table() -> None:
    assert S.AUTH_FAILED in TRANSITIONS[S.AUTHENTICATING]
    assert TRANSITIONS[S.AUTH_FAILED] == frozenset({S.CONNECTING, S.STOPPING, S.CLOSED})
    assert TRANSITIONS[S.STOPPING] == frozenset({S.CLOSED})
    for state in S:
        if state is not S.AUTHENTICATING:
            assert S.AUTH_FAILED not in TRANSITIONS[state]
    lc = Lifecycle("x", logging.getLogger("test.lc"))
    lc.to(S.CONNECTING)
    assert not lc.can(S.AUTH_FAILED)


@pytest.mark.parametrize(
    ("value", "suffix"),
    [
        (None, ""),
        (30, "?max_active_time=30s"),
        ("600s", "?max_active_time=600s"),
        ("1m", "?max_active_time=1m"),
        ("10m", "?max_active_time=10m"),
        (45.0, "?max_active_time=45s"),
    ],
)
def test_max_active_time(value: Any, suffix: str) -> None:
    assert with_max_active_time(URL, value) == URL + suffix


@pytest.mark.parametrize("value", [29, 601, "11m", "0m", "30", "30 s", "1h", 30.5, True, "-1m"])
def test_max_active_time_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="max_active_time"):
        with_max_active_time(URL, value)


def test_session_config_validates_auth_settings() -> None:
    with pytest.raises(ValueError):
        SessionConfig(name="x", url=URL, auth_timeout=0)
    with pytest.raises(ValueError):
        SessionConfig(name="x", url=URL, auth_retry_interval=0)


def test_drops_count_live_connections_lost_not_connections_ended() -> None:
    """One live link lost, then a reconnect refused at auth: one drop (/health said two)."""
    session, _, _, _ = make()
    session.subscribe(["order"], 0.0)
    session.start(0.0)
    connect_and_auth(session, 0.0)
    assert session.stats.drops == 0
    session.disconnected("heartbeat_timeout", 10.0)
    assert session.stats.drops == 1
    session.tick(session.reconnect_at)  # type: ignore[arg-type]
    session.connected(11.0)
    session.receive(AUTH_BAD_KEY, 11.1)  # refused: the connection ends, it was never live
    session.disconnected("server_close:1000", 11.2)
    assert session.state is S.AUTH_FAILED
    assert session.stats.drops == 1 and session.stats.connects == 2
    session.stop(12.0)
    assert session.stats.drops == 1  # stop() is not a drop either
