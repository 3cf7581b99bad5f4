"""HealthMonitor driven by hand: a ManualClock, a real (unconnected) session, synthetic events."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hean.core.bus import EventBus
from hean.core.clock import ManualClock
from hean.core.events import (
    AuthEvent,
    EventType,
    ExecutionQualityEvent,
    StalenessEvent,
    SubscriptionStatus,
    TickEvent,
)
from hean.core.lifecycle import ConnectionState as S
from hean.exchange.bybit.protocol.session import Action, Emit
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from hean.health import (
    ConnectionView,
    ExecutionQuality,
    HealthMonitor,
    Histogram,
    StalenessPolicy,
    assess,
    public_url,
    reason_label,
    recycle_connection,
)
from hean.health.staleness import StalenessMonitor

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


class Harness:
    """A ws whose session is moved by hand (no sockets), and a monitor stepped by hand."""

    def __init__(self, bus: EventBus, clock: ManualClock, **kw: Any) -> None:
        self.bus = bus
        self.clock = clock
        self.ws = BybitPublicWebSocket(
            bus, "linear", url="ws://127.0.0.1:9/v5/public/linear?k=v", clock=clock
        )
        self.health = HealthMonitor(bus, [self.ws], clock=clock, **kw)
        self.health.attach()
        self.events: dict[EventType, list[Any]] = {t: [] for t in EventType}
        for t in EventType:
            bus.subscribe(t, self.events[t].append, name=f"test-{t}")
        self.tickers: dict[str, SimpleNamespace] = {}

    def emit(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Emit):
                self.ws._publish_control(a.event_type, a.event)

    def go_live(self) -> None:
        now = self.clock.monotonic()
        self.emit(self.ws.session.start(now))
        self.emit(self.ws.session.connected(now))

    def drop(self, reason: str = "heartbeat_timeout") -> None:
        self.emit(self.ws.session.disconnected(reason, self.clock.monotonic()))

    def subscribe(self, topics: list[str]) -> None:
        self.emit(self.ws.session.subscribe(topics, self.clock.monotonic()))

    def tick(self, symbol: str, price: float = 100.0, lag_ms: int = 3) -> None:
        now = self.clock.monotonic()
        t = self.tickers.setdefault(
            symbol, SimpleNamespace(topic=f"tickers.{symbol}", field_times={})
        )
        t.field_times["lastPrice"] = now
        t.field_times["markPrice"] = now
        wall = self.clock.wall_ms()
        ev = TickEvent(symbol, "linear", price, price - 1, price + 1, wall - lag_ms, now, wall,
                       False, t)  # fmt: skip
        self.bus.publish(EventType.TICK, ev)

    def advance(self, seconds: float, every: float = 0.1, symbols: list[str] = SYMBOLS) -> None:
        """Move time in steps, ticking ``symbols`` and running a check at each step."""
        n = round(seconds / every)
        for _ in range(n):
            self.clock.advance(every)
            for s in symbols:
                self.tick(s)
            self.health.step()

    def quality_events(self) -> list[ExecutionQualityEvent]:
        return self.events[EventType.EXECUTION_QUALITY]


@pytest.fixture
def h(bus: EventBus) -> Harness:
    policy = StalenessPolicy(recycle_after=10.0, down_after=10.0)
    return Harness(bus, ManualClock(), policy=policy, check_interval=0.1)


def metrics(health: HealthMonitor) -> dict[str, Any]:
    text = generate_latest(health.registry).decode()
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name + str(sorted(sample.labels.items()))] = sample.value
    return out


def sample(m: dict[str, Any], name: str, **labels: str) -> Any:
    return m.get(name + str(sorted(labels.items())))


async def test_quality_follows_connection_and_data(h: Harness) -> None:
    h.health.step()
    assert not h.health.quality.ws_ok
    assert h.health.quality.reasons == ("connection public/linear is idle",)
    h.go_live()
    h.subscribe([f"tickers.{s}" for s in SYMBOLS])
    h.health.step()
    assert set(h.health.quality.reasons) == {
        "BTCUSDT: waiting for the first tickers.BTCUSDT update",
        "ETHUSDT: waiting for the first tickers.ETHUSDT update",
    }
    h.advance(1.0)
    q = h.health.quality
    assert q.ws_ok and q.reasons == () and q.lag == pytest.approx(0.003)
    assert q.since == pytest.approx(h.clock.monotonic() - 0.9)  # the first step with data
    snap = q.snapshot()
    assert snap.ws_ok and snap.since == q.since
    # published on each change only: not started -> idle -> waiting -> ok
    events = h.quality_events()
    assert [e.ws_ok for e in events] == [False, False, True]
    h.advance(2.0)
    assert len(h.quality_events()) == 3  # no change, no event
    # the connection drops: not ok, with the reason of the transition
    h.drop("heartbeat_timeout")
    h.health.step()
    assert not q.ws_ok
    assert q.reasons == ("connection public/linear is backoff (heartbeat_timeout)",)
    assert h.quality_events()[-1].reasons == q.reasons
    assert h.health.status() == "down"
    # back: fresh data is needed on the new connection before it is ok again
    h.emit(h.ws.session.tick(h.clock.monotonic() + 5.0))
    h.clock.advance(5.0)
    h.emit(h.ws.session.connected(h.clock.monotonic()))
    h.health.step()
    assert not q.ws_ok and all("waiting for the first" in r for r in q.reasons)
    h.advance(0.2)
    assert q.ws_ok and h.health.status() == "ok"


async def test_stale_symbol_resubscribes_and_reports(h: Harness) -> None:
    h.go_live()
    h.subscribe([f"tickers.{s}" for s in SYMBOLS])
    h.advance(1.0)
    assert h.health.quality.ws_ok
    h.advance(6.0, symbols=["BTCUSDT"])  # ETH silent
    q = h.health.quality
    assert not q.ws_ok
    assert q.reasons == ("ETHUSDT: stale, no tickers.ETHUSDT update for over 5s (resubscribed)",)
    assert h.health.status() == "degraded"
    stale: list[StalenessEvent] = h.events[EventType.STALENESS]
    assert [(e.topic, e.status) for e in stale] == [("tickers.ETHUSDT", "stale")]
    resyncs = [e for e in h.events[EventType.SUBSCRIPTION] if e.status is SubscriptionStatus.RESYNC]
    assert [(e.topic, e.reason) for e in resyncs] == [("tickers.ETHUSDT", "stale 5.0s")]
    ok, doc = h.health.health()
    assert not ok and doc["topics"]["public/linear"]["tickers.ETHUSDT"]["stale"] is True
    assert doc["topics"]["public/linear"]["tickers.ETHUSDT"]["age_s"] == pytest.approx(
        6.0, abs=0.15
    )
    assert doc["topics"]["public/linear"]["tickers.BTCUSDT"]["stale"] is False
    m = metrics(h.health)
    labels = {"connection": "public/linear", "topic": "tickers.ETHUSDT"}
    assert sample(m, "hean_topic_stale", **labels) == 1.0
    assert sample(m, "hean_stale_topics", connection="public/linear") == 1.0
    assert sample(m, "hean_stale_resubscribes_total", **labels) == 1.0
    assert sample(m, "hean_ws_ok") == 0.0
    # resumes
    h.advance(0.3)
    assert q.ws_ok
    assert [e.status for e in h.events[EventType.STALENESS]] == ["stale", "recovered"]
    assert sample(metrics(h.health), "hean_topic_stale", **labels) == 0.0


async def test_invalid_book_counts_as_stale_whatever_keeps_arriving(h: Harness) -> None:
    """Issue 12: a book left invalid while its deltas keep coming must go stale (and be
    resubscribed by the health layer), not look fresh because messages arrive."""
    topic = "orderbook.50.BTCUSDT"
    h.go_live()
    h.subscribe([topic])
    book = SimpleNamespace(invalid_reason=None)

    def book_msg(valid: bool) -> None:
        now, wall = h.clock.monotonic(), h.clock.wall_ms()
        book.invalid_reason = None if valid else "gap u=12 expected 11"
        ev = SimpleNamespace(category="linear", topic=topic, valid=valid, book=book,
                             best_bid=("99", "1"), best_ask=("101", "1"), recv_time=now,
                             recv_wall_ms=wall, exchange_ts=wall - 3)  # fmt: skip
        h.bus.publish(EventType.ORDERBOOK, ev)

    for _ in range(10):
        h.clock.advance(0.1)
        book_msg(True)
        h.health.step()
    assert h.health.quality.ws_ok
    for _ in range(60):  # 6 s of deltas on an invalid book
        h.clock.advance(0.1)
        book_msg(False)
        h.health.step()
    stale = [(e.topic, e.status) for e in h.events[EventType.STALENESS]]
    assert stale == [(topic, "stale")]
    assert not h.health.quality.ws_ok
    resyncs = [e for e in h.events[EventType.SUBSCRIPTION] if e.status is SubscriptionStatus.RESYNC]
    assert [e.topic for e in resyncs] == [topic]
    book_msg(True)  # the snapshot: valid again, the episode ends
    h.health.step()
    assert [e.status for e in h.events[EventType.STALENESS]] == ["stale", "recovered"]


async def test_still_stale_recycles_the_connection_then_marks_it_down(h: Harness) -> None:
    h.go_live()
    h.subscribe(["tickers.ETHUSDT"])
    h.advance(0.5, symbols=["ETHUSDT"])
    recycled: list[str] = []
    h.ws.recycle = recycled.append  # type: ignore[attr-defined]  # the hook, when it exists
    h.advance(16.0, symbols=[])
    assert recycled == ["stale_data"]
    assert h.health.feeds["public/linear"].recycles == 1
    h.advance(10.0, symbols=[])
    assert [e.status for e in h.events[EventType.STALENESS]] == ["stale", "recycled", "down"]
    assert h.health.status() == "down"
    assert h.health.quality.reasons == (
        "ETHUSDT: feed down (tickers.ETHUSDT silent despite resubscribe)",
    )
    m = metrics(h.health)
    assert sample(m, "hean_feeds_down", connection="public/linear") == 1.0
    assert sample(m, "hean_stale_recycles_total", connection="public/linear") == 1.0


async def test_recycle_without_the_hook_drops_the_socket_with_the_reason() -> None:
    bus = EventBus()
    clock = ManualClock()
    ws = BybitPublicWebSocket(bus, "linear", url="ws://127.0.0.1:9/x", clock=clock)
    ws.session.start(clock.monotonic())
    ws.session.connected(clock.monotonic())
    closes: list[Any] = []
    ws.connection.run_actions = closes.extend  # type: ignore[method-assign]
    recycle_connection(ws, "stale_data")
    assert [(c.code, c.reason, c.abort) for c in closes] == [(1011, "stale_data", True)]
    # the disconnect that follows is reported with that reason (and counted under it)
    ws.session.disconnected("server_close:1006", clock.monotonic())
    assert ws.session.stats.last_disconnect_reason == "stale_data"
    # not live: nothing to recycle
    closes.clear()
    recycle_connection(ws, "stale_data")
    assert closes == []


async def test_rejected_subscription_and_auth_failure_are_reasons(h: Harness) -> None:
    h.go_live()
    h.subscribe(["tickers.BTCUSDT", "tickers.NOPE"])
    h.ws.session.subscriptions.topics["tickers.NOPE"] = h.ws.session.subscriptions.topics[
        "tickers.NOPE"
    ].__class__("rejected")
    from hean.core.events import SubscriptionEvent

    h.bus.publish(
        EventType.SUBSCRIPTION,
        SubscriptionEvent("public/linear", "tickers.NOPE", SubscriptionStatus.REJECTED,
                          "error:handler not found,topic:tickers.NOPE", 0.0),
    )  # fmt: skip
    h.advance(0.3, symbols=["BTCUSDT"])
    assert h.health.quality.reasons == (
        "subscription tickers.NOPE rejected (error:handler not found,topic:tickers.NOPE)",
    )
    # still watched (issue 13): it receives nothing, so it goes stale with the server's reason
    nope = h.health.staleness.get("public/linear", "tickers.NOPE")
    assert nope is not None and nope.rejected and not nope.stale
    h.advance(5.0, symbols=["BTCUSDT"])
    doc = h.health.health()[1]["topics"]["public/linear"]["tickers.NOPE"]
    assert doc["stage"] == "stale" and doc["stale"] and not doc["received"]
    assert doc["reason"].startswith("subscription rejected: error:handler not found")
    assert doc["age_s"] == pytest.approx(5.3, abs=0.15)
    h.bus.publish(
        EventType.AUTH,
        AuthEvent("public/linear", False, "bad_signature", "the signature is wrong", 10004,
                  "error sign!", None, None, 1, h.clock.monotonic()),
    )  # fmt: skip
    h.health.step()
    assert "connection public/linear: authentication failed (bad_signature)" in (
        h.health.quality.reasons
    )
    m = metrics(h.health)
    assert sample(m, "hean_auth_state", connection="public/linear", state="failed") == 1.0
    assert sample(m, "hean_auth_state", connection="public/linear", state="ok") == 0.0
    assert (
        sample(m, "hean_auth_failures_total", connection="public/linear", reason="bad_signature")
        == 1.0
    )
    assert sample(m, "hean_subscriptions_rejected", connection="public/linear") == 1.0


async def test_metrics_are_counted_and_labels_bounded(h: Harness) -> None:
    h.go_live()
    h.subscribe([f"tickers.{s}" for s in SYMBOLS])
    h.advance(2.0)  # 20 ticks each
    h.drop("server_close:4321")  # an odd close code: bucketed, not a new label value
    h.drop("server_close:4321")  # duplicate notification: ignored by the session
    m = metrics(h.health)
    for s in SYMBOLS:
        assert sample(m, "hean_ws_messages_total", connection="public/linear",
                      topic=f"tickers.{s}") == 20.0  # fmt: skip
    reconnects = {"connection": "public/linear", "reason": "server_close:other"}
    assert sample(m, "hean_ws_reconnects_total", **reconnects) == 1.0
    assert sample(m, "hean_ws_lag_seconds_count", connection="public/linear", kind="tickers") == 40
    assert (
        sample(
            m, "hean_ws_lag_seconds_bucket", connection="public/linear", kind="tickers", le="0.005"
        )
        == 40
    )
    assert sample(m, "hean_ws_connection_up", connection="public/linear") == 0.0
    assert sample(m, "hean_ws_connection_state", connection="public/linear", state="backoff") == 1
    assert sample(m, "hean_circuit_breaker_open", connection="public/linear") == 0.0
    assert sample(m, "hean_auth_state", connection="public/linear", state="not_required") == 1.0
    assert sample(m, "hean_bus_delivered_total", subscriber="health", event_type="tick") == 40.0
    assert sample(m, "hean_bus_queue_depth", subscriber="health", event_type="tick") == 0.0
    # every label value comes from configuration or a fixed set
    text = generate_latest(h.health.registry).decode()
    for family in text_string_to_metric_families(text):
        for smp in family.samples:
            for key, value in smp.labels.items():
                if key == "topic":
                    assert value in {"tickers.BTCUSDT", "tickers.ETHUSDT"}
                elif key == "connection":
                    assert value == "public/linear"
                elif key == "reason" and family.name == "hean_ws_reconnects":
                    assert value == reason_label(value)


async def test_state_document_has_rates_history_and_no_query_string(h: Harness) -> None:
    h.health.sample_interval = 0.5
    h.go_live()
    h.subscribe([f"tickers.{s}" for s in SYMBOLS])
    h.advance(3.0)
    state = h.health.state()
    [btc, eth] = state["topics"]
    assert btc["topic"] == "tickers.BTCUSDT" and eth["symbol"] == "ETHUSDT"
    assert btc["messages"] == 30 and btc["last_price"] == 100.0 and btc["bid"] == 99.0
    assert len(btc["rates"]) >= 4 and btc["rates"][-1] == pytest.approx(10.0)
    assert btc["lag_ms"] == pytest.approx(3.0)
    assert [x["new"] for x in state["history"]] == ["connecting", "live"]
    conn = state["connections"]["public/linear"]
    assert conn["url"] == "ws://127.0.0.1:9/v5/public/linear"  # no query string
    assert conn["state"] == "live" and conn["circuit_breaker"] == "closed"


def test_public_url_strips_credentials_and_query() -> None:
    assert public_url("wss://user:pw@host.example:443/v5/private?api_key=K#x") == (
        "wss://host.example:443/v5/private"
    )
    assert public_url("ws://[::1]:9/a") == "ws://[::1]:9/a"


def test_reason_labels_are_a_fixed_set() -> None:
    assert reason_label("heartbeat_timeout") == "heartbeat_timeout"
    assert reason_label("server_close:1006") == "server_close:1006"
    assert reason_label("server_close:4999") == "server_close:other"
    assert reason_label("http_429") == "http_429"
    assert reason_label("http_599") == "http_other"
    assert reason_label("something new") == "other"
    assert reason_label("local_close:message_too_big") == "local_close:message_too_big"
    assert reason_label("local_close:code_4000") == "local_close:other"


def test_histogram() -> None:
    hist = Histogram([0.1, 1.0])
    for v in (0.05, 0.1, 0.5, 5.0):
        hist.observe(v)
    assert hist.cumulative() == [("0.1", 2.0), ("1.0", 3.0), ("+Inf", 4.0)]
    assert hist.sum == pytest.approx(5.65)
    assert hist.quantile(0.5) == 0.1 and hist.quantile(1.0) == float("inf")
    assert Histogram([1.0]).quantile(0.5) is None


def test_assess_and_execution_quality_publish_on_change_only() -> None:
    published: list[tuple[EventType, Any]] = []
    q = ExecutionQuality(lambda t, e: published.append((t, e)), now=5.0)
    assert not q.ws_ok and q.reasons == ("not started",) and q.since == 5.0
    views = [ConnectionView("a", S.LIVE, live_since=1.0)]
    assert assess(views, StalenessMonitor()) == []
    assert assess([], []) == ["no connections"]
    assert assess([ConnectionView("a", S.LIVE, breaker_open=True, live_since=0.0)], []) == [
        "connection a: circuit breaker open"
    ]
    assert assess([ConnectionView("b", S.BACKOFF, required=False)], []) == []
    # a refused key: one reason, not "is auth_failed" and "authentication failed" both
    refused = ConnectionView(
        "t", S.AUTH_FAILED, reason="auth_failed:bad_key", auth_failed="bad_key"
    )
    assert assess([refused], []) == ["connection t: authentication failed (bad_key)"]
    # an expired auth being retried: the state and why
    retry = ConnectionView("p", S.BACKOFF, reason="auth_failed:expired", auth_failed="expired")
    assert assess([retry], []) == [
        "connection p is backoff (auth_failed:expired)",
        "connection p: authentication failed (expired)",
    ]
    assert q.update([], 6.0, ping_rtt=0.002, lag=0.01) is not None
    assert q.update([], 7.0, ping_rtt=0.003) is None  # rtt/lag alone are not a change
    assert q.ping_rtt == 0.003 and q.since == 6.0
    ev = q.update(["x", "x", "y"], 8.0)
    assert ev is not None and ev.reasons == ("x", "y") and not ev.ws_ok and ev.since == 8.0
    assert q.update(["y"], 9.0) is not None
    assert [e.ws_ok for _, e in published] == [True, False, False]
    assert all(t is EventType.EXECUTION_QUALITY for t, _ in published)
    assert q.as_dict(10.0)["for_s"] == 1.0 and q.changes == 3


async def test_rows_escalate_while_the_connection_is_down(h: Harness) -> None:
    """Issue 13, item 1: the venue is gone: /health must not call the topics fresh; their age
    keeps growing, they go stale then down, and the reason names the connection's backoff."""
    h.go_live()
    h.subscribe([f"tickers.{s}" for s in SYMBOLS])
    h.advance(1.0)
    h.drop("server_close:1006")
    for _ in range(20):
        h.clock.advance(1.0)
        h.health.step()
    ok, doc = h.health.health()
    assert not ok and doc["status"] == "down"
    for symbol in SYMBOLS:
        t = doc["topics"]["public/linear"][f"tickers.{symbol}"]
        assert t["stage"] == "stale" and t["stale"] is True
        assert t["age_s"] == pytest.approx(20.0, abs=0.2)
        assert t["reason"].startswith("connection backoff: retry in ")
        assert "(server_close:1006)" in t["reason"]
    conn = doc["connections"]["public/linear"]
    assert conn["detail"].startswith("backoff")
    for _ in range(60):
        h.clock.advance(1.0)
        h.health.step()
    t = h.health.health()[1]["topics"]["public/linear"]["tickers.BTCUSDT"]
    assert t["stage"] == "down" and t["age_s"] == pytest.approx(80.0, abs=0.2)
    events = h.events[EventType.STALENESS]
    assert [e.status for e in events if e.symbol == "BTCUSDT"] == ["stale", "down"]
