"""StalenessMonitor (sans-I/O): thresholds, one log line per episode, escalation, recovery."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from hean.core.clock import ManualClock
from hean.core.events import StaleStatus
from hean.health.staleness import (
    Recycle,
    Report,
    Resubscribe,
    Stage,
    StaleAction,
    StalenessMonitor,
    StalenessPolicy,
    topic_kind,
    topic_symbol,
)

CONN = "public/linear"


def reports(actions: list[StaleAction]) -> list[tuple[StaleStatus, str | None]]:
    return [(a.event.status, a.event.field) for a in actions if isinstance(a, Report)]


def anomaly_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "[ANOMALY]" in r.getMessage()]


def test_topic_helpers() -> None:
    assert topic_kind("orderbook.50.BTCUSDT") == "orderbook"
    assert topic_symbol("orderbook.50.BTCUSDT") == "BTCUSDT"
    assert topic_symbol("kline.1.ETHUSDT") == "ETHUSDT"
    assert topic_kind("tickers.ETHUSDT") == "tickers"


def test_thresholds_per_kind_symbol_and_topic() -> None:
    p = StalenessPolicy(
        symbol_thresholds={"ILLIQ": {"*": 40.0}, "ETHUSDT": {"tickers": 8.0}},
        topic_thresholds={"tickers.SOLUSDT": 2.0, "kline.1.BTCUSDT": None},
    )
    assert p.threshold("tickers.BTCUSDT") == 5.0
    assert p.threshold("orderbook.50.BTCUSDT") == 5.0
    assert p.threshold("publicTrade.BTCUSDT") == 60.0
    assert p.threshold("kline.1.ETHUSDT") == 90.0
    assert p.threshold("allLiquidation.BTCUSDT") is None  # sporadic: never judged
    assert p.threshold("whatever.BTCUSDT") is None
    assert p.threshold("tickers.ETHUSDT") == 8.0
    assert p.threshold("orderbook.50.ETHUSDT") == 5.0
    assert p.threshold("tickers.ILLIQ") == 40.0 and p.threshold("kline.1.ILLIQ") == 40.0
    assert p.threshold("tickers.SOLUSDT") == 2.0
    assert p.threshold("kline.1.BTCUSDT") is None
    s = p.scaled(0.1)
    assert s.threshold("tickers.BTCUSDT") == pytest.approx(0.5)
    assert s.threshold("tickers.ETHUSDT") == pytest.approx(0.8)
    assert s.recycle_after == pytest.approx(3.0) and s.fields["markPrice"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"thresholds": {"tickers": 0.0}},
        {"topic_thresholds": {"tickers.X": -1.0}},
        {"fields": {"markPrice": float("nan")}},
        {"recycle_after": 0.0},
        {"symbol_thresholds": {"X": {"*": float("inf")}}},
    ],
)
def test_bad_policy_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        StalenessPolicy(**kwargs)  # type: ignore[arg-type]


def test_stale_detected_logged_once_resubscribed_then_recovered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "hean.health")
    clock = ManualClock()
    mon = StalenessMonitor(StalenessPolicy(recycle_after=None, down_after=None))
    mon.connection_state(CONN, True, clock.monotonic())
    eth = mon.watch(CONN, "tickers.ETHUSDT", clock.monotonic())
    btc = mon.watch(CONN, "tickers.BTCUSDT", clock.monotonic())
    assert mon.watch(CONN, "tickers.ETHUSDT", 0.0) is eth  # idempotent
    for _ in range(10):  # both flowing at 10/s
        clock.advance(0.1)
        assert mon.observe(eth, clock.monotonic()) is None
        assert mon.observe(btc, clock.monotonic()) is None
        assert mon.check(clock.monotonic()) == []
    # ETH stops; BTC carries on. Nothing until the threshold is passed.
    actions: list[StaleAction] = []
    for _ in range(80):  # 8 s of checks every 100 ms
        clock.advance(0.1)
        mon.observe(btc, clock.monotonic())
        actions += mon.check(clock.monotonic())
    assert reports(actions) == [(StaleStatus.STALE, None)]
    assert [a for a in actions if isinstance(a, Resubscribe)] == [
        Resubscribe(CONN, "tickers.ETHUSDT", "stale 5.0s")
    ]
    [line] = anomaly_lines(caplog)
    assert line == (
        "[ANOMALY] Stale price detected for ETHUSDT: no update for 5.0s "
        "(topic tickers.ETHUSDT, threshold 5s)"
    )
    assert eth.stage is Stage.STALE and eth.stale and not btc.stale
    assert mon.stale() == [eth] and eth.episodes == 1 and eth.resubscribes == 1
    event = next(a.event for a in actions if isinstance(a, Report))
    assert event.symbol == "ETHUSDT" and event.threshold == 5.0 and event.age == pytest.approx(5.0)
    # Updates resume: the episode ends with one recovery line and event.
    clock.advance(0.1)
    back = mon.observe(eth, clock.monotonic())
    assert back is not None and reports(back) == [(StaleStatus.RECOVERED, None)]
    assert eth.stage is Stage.FRESH and not eth.stale
    assert any("[RECOVERED] Price updates resumed for ETHUSDT" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert mon.check(clock.monotonic()) == []
    # A second episode is a new one: logged again (once).
    caplog.clear()
    for _ in range(60):
        clock.advance(0.1)
        mon.observe(btc, clock.monotonic())
        mon.check(clock.monotonic())
    assert len(anomaly_lines(caplog)) == 1 and eth.episodes == 2


def test_escalation_resubscribe_then_recycle_then_down() -> None:
    clock = ManualClock()
    policy = StalenessPolicy(recycle_after=10.0, down_after=20.0)
    mon = StalenessMonitor(policy)
    mon.connection_state(CONN, True, clock.monotonic())
    w = mon.watch(CONN, "tickers.ETHUSDT", clock.monotonic())
    other = mon.watch(CONN, "orderbook.50.ETHUSDT", clock.monotonic())
    mon.observe(w, clock.monotonic())
    mon.observe(other, clock.monotonic())
    steps: list[tuple[float, StaleAction]] = []
    t0 = clock.monotonic()
    for _ in range(200):
        clock.advance(0.25)
        actions = mon.check(clock.monotonic())
        steps += [(clock.monotonic() - t0, a) for a in actions]
        if any(isinstance(a, Recycle) for a in actions):
            # the recycle reconnects: not live for a moment, then live again (no data)
            mon.connection_state(CONN, False, None)
            clock.advance(0.5)
            mon.connection_state(CONN, True, clock.monotonic())
    recycles = [(t, a) for t, a in steps if isinstance(a, Recycle)]
    # both topics escalated together: one recycle of the connection, not two
    assert [a for _, a in recycles] == [Recycle(CONN, "stale_data")]
    assert recycles[0][0] == pytest.approx(5.25 + 10.0, abs=0.3)
    downs = [(t, a) for t, a in steps if isinstance(a, Report) and a.event.status == "down"]
    assert {a.event.topic for _, a in downs} == {"tickers.ETHUSDT", "orderbook.50.ETHUSDT"}
    # down: 20 s after the recycle, and only once the topic was silent past its threshold
    # on the new connection too
    assert all(t >= recycles[0][0] + 20.0 for t, _ in downs)
    assert w.stage is Stage.DOWN and w.recycles == 1
    n = len(steps)
    for _ in range(100):  # down is the end of escalation: nothing more happens
        clock.advance(0.25)
        assert mon.check(clock.monotonic()) == []
    assert len(steps) == n
    back = mon.observe(w, clock.monotonic())
    assert back is not None and reports(back) == [(StaleStatus.RECOVERED, None)]
    assert w.stage is Stage.FRESH and other.stage is Stage.DOWN


def test_a_topic_on_a_dead_connection_goes_stale_then_down_without_actions() -> None:
    """Issue 13, item 1: while the connection is down its topics' age grows and escalates
    (stale, then down), reported once each; nothing is asked of the dead connection. Live
    again, the resubscribe is owed after a full threshold of silence on the new connection."""
    clock = ManualClock()
    mon = StalenessMonitor(StalenessPolicy(recycle_after=10.0, down_after=20.0))
    mon.connection_state(CONN, True, clock.monotonic())
    w = mon.watch(CONN, "tickers.BTCUSDT", clock.monotonic())
    never = mon.watch(CONN, "tickers.ETHUSDT", clock.monotonic())
    mon.observe(w, clock.monotonic())
    mon.connection_state(CONN, False, None)
    clock.advance(4.9)
    assert mon.check(clock.monotonic()) == []
    clock.advance(0.2)
    actions = mon.check(clock.monotonic())
    assert sorted(a.event.topic for a in actions if isinstance(a, Report)) == [
        "tickers.BTCUSDT",
        "tickers.ETHUSDT",
    ]
    assert all(isinstance(a, Report) for a in actions)  # no resubscribe on a dead link
    assert w.stage is Stage.STALE and w.stale and never.stage is Stage.STALE
    assert w.silence(clock.monotonic()) == pytest.approx(5.1)
    assert never.last_update is None and never.silence(clock.monotonic()) == pytest.approx(5.1)
    steps: list[StaleAction] = []
    for _ in range(128):  # 32 s more, still down: down after recycle_after + down_after
        clock.advance(0.25)
        steps += mon.check(clock.monotonic())
    assert reports(steps) == [(StaleStatus.DOWN, None), (StaleStatus.DOWN, None)]
    assert w.stage is Stage.DOWN and w.silence(clock.monotonic()) == pytest.approx(37.1)
    # live again: the reconnect resubscribed everything; a recovery ends the episode
    mon.connection_state(CONN, True, clock.monotonic())
    clock.advance(1.0)
    assert mon.check(clock.monotonic()) == []
    back = mon.observe(w, clock.monotonic())
    assert back is not None and reports(back) == [(StaleStatus.RECOVERED, None)]


def test_an_offline_episode_resubscribes_once_live_and_still_silent() -> None:
    clock = ManualClock()
    mon = StalenessMonitor(StalenessPolicy(recycle_after=10.0, down_after=60.0))
    w = mon.watch(CONN, "tickers.BTCUSDT", clock.monotonic())
    mon.connection_state(CONN, False, None)
    clock.advance(6.0)
    assert reports(mon.check(clock.monotonic())) == [(StaleStatus.STALE, None)]
    mon.connection_state(CONN, True, clock.monotonic())
    clock.advance(4.9)
    assert mon.check(clock.monotonic()) == []
    clock.advance(0.2)
    assert mon.check(clock.monotonic()) == [Resubscribe(CONN, "tickers.BTCUSDT", "stale 5.1s")]
    assert w.stage is Stage.STALE and w.episodes == 1  # the same episode, logged once
    clock.advance(10.0)
    assert isinstance(mon.check(clock.monotonic())[-1], Recycle)


def test_a_rejected_topic_goes_stale_without_resubscribes() -> None:
    clock = ManualClock()
    mon = StalenessMonitor(StalenessPolicy())
    mon.connection_state(CONN, True, clock.monotonic())
    w = mon.watch(CONN, "tickers.NOPEUSDT", clock.monotonic())
    w.rejected = "invalid symbol"
    clock.advance(5.5)
    actions = mon.check(clock.monotonic())
    assert reports(actions) == [(StaleStatus.STALE, None)] and len(actions) == 1
    assert w.stale and w.stage is Stage.STALE


def test_thresholds_none_are_never_judged_and_unwatch_forgets() -> None:
    clock = ManualClock()
    mon = StalenessMonitor()
    liq = mon.watch(CONN, "allLiquidation.BTCUSDT", clock.monotonic())
    forced = mon.watch(CONN, "tickers.BTCUSDT", clock.monotonic(), threshold=None)
    custom = mon.watch(CONN, "tickers.ETHUSDT", clock.monotonic(), threshold=1.0)
    assert liq.threshold is None and forced.threshold is None and custom.threshold == 1.0
    clock.advance(3600)
    actions = mon.check(clock.monotonic())
    assert {a.event.topic for a in actions if isinstance(a, Report)} == {"tickers.ETHUSDT"}
    assert mon.unwatch(CONN, "tickers.ETHUSDT") is custom
    assert mon.get(CONN, "tickers.ETHUSDT") is None and len(mon) == 2


def test_frozen_mark_price_while_last_price_moves(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "hean.health")
    clock = ManualClock()
    mon = StalenessMonitor(StalenessPolicy(fields={"markPrice": 30.0}))
    mon.connection_state(CONN, True, clock.monotonic())
    w = mon.watch(CONN, "tickers.ETHUSDT", clock.monotonic())
    times = {"markPrice": clock.monotonic(), "lastPrice": clock.monotonic()}
    w.ticker = SimpleNamespace(field_times=times)
    actions: list[StaleAction] = []
    for _ in range(400):  # 40 s: lastPrice changes every 100 ms, markPrice never
        clock.advance(0.1)
        times["lastPrice"] = clock.monotonic()
        mon.observe(w, clock.monotonic())
        actions += mon.check(clock.monotonic())
    assert reports(actions) == [(StaleStatus.STALE, "markPrice")]
    assert [a.topic for a in actions if isinstance(a, Resubscribe)] == ["tickers.ETHUSDT"]
    [line] = anomaly_lines(caplog)
    assert line.startswith("[ANOMALY] Stale markPrice detected for ETHUSDT: unchanged for 30.")
    assert "while lastPrice moves" in line
    assert w.stale and w.stage is Stage.FRESH and set(w.field_episodes) == {"markPrice"}
    times["markPrice"] = clock.monotonic()
    clock.advance(0.1)
    assert reports(mon.check(clock.monotonic())) == [(StaleStatus.RECOVERED, "markPrice")]
    assert not w.stale


def test_quiet_market_is_not_a_frozen_field() -> None:
    """Nothing changes at all (a quiet market): the topic is fresh, no field is suspicious."""
    clock = ManualClock()
    mon = StalenessMonitor(StalenessPolicy(fields={"markPrice": 30.0}))
    mon.connection_state(CONN, True, clock.monotonic())
    w = mon.watch(CONN, "tickers.ETHUSDT", clock.monotonic())
    w.ticker = SimpleNamespace(field_times={"markPrice": 1000.0, "lastPrice": 1000.0})
    for _ in range(600):
        clock.advance(0.1)
        mon.observe(w, clock.monotonic())  # messages keep coming (e.g. volume fields)
        assert mon.check(clock.monotonic()) == []


def test_a_watched_field_the_cache_does_not_track_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A connection built with field_times limited to other fields cannot judge markPrice: the
    monitor says so once per connection and field, and never calls it stale."""
    from hean.exchange.bybit.protocol.codec import decode
    from hean.exchange.bybit.state.tickers import TickerCache

    caplog.set_level(logging.WARNING, "hean.health")
    clock = ManualClock()
    mon = StalenessMonitor(StalenessPolicy(fields={"markPrice": 1.0}))
    mon.connection_state(CONN, True, clock.monotonic())
    w = mon.watch(CONN, "tickers.ETHUSDT", clock.monotonic())
    cache = TickerCache("linear", track_fields=("lastPrice",))
    frame = (
        b'{"topic":"tickers.ETHUSDT","type":"snapshot","data":{"lastPrice":"1","markPrice":"1"}}'
    )
    w.ticker = cache.apply(decode(frame), clock.monotonic())
    actions: list[StaleAction] = []
    for i in range(50):
        clock.advance(0.1)
        delta = b'{"topic":"tickers.ETHUSDT","type":"delta","data":{"lastPrice":"%d"}}' % (i + 2)
        cache.apply(decode(delta), clock.monotonic())
        mon.observe(w, clock.monotonic())
        actions += mon.check(clock.monotonic())
    assert reports(actions) == []
    lines = [r.getMessage() for r in caplog.records if "does not track" in r.getMessage()]
    assert lines == [
        "staleness policy watches ticker field markPrice, but connection public/linear does "
        "not track its change time (field_times): it cannot be judged there"
    ]
