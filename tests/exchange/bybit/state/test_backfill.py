"""Backfill trackers: what a REST fetch after a gap adds, de-duplicated against live data, and when
the loss is more than REST keeps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hean.exchange.bybit.state.backfill import KlineTracker, TradeTracker, interval_ms
from hean.exchange.bybit.state.public import Kline, Trade

TOPIC = "publicTrade.BTCUSDT"


def trade(i: int, time: int | None = None) -> Trade:
    return Trade(
        time if time is not None else 1_000 + i, "BTCUSDT", "Buy", "1", "100", None, f"t{i}"
    )


def test_missed_trades_published_once_oldest_first() -> None:
    tracker = TradeTracker()
    tracker.observe(TOPIC, [trade(i) for i in range(10)])  # live before the gap
    since = tracker.last_time[TOPIC]
    tracker.observe(TOPIC, [trade(20), trade(21)])  # live after the reconnect, before the fetch
    fetched = [trade(i) for i in range(22)][::-1]  # newest first, overlapping both sides
    out, outcome = tracker.merge(TOPIC, fetched, since_ms=since, limit=1000)
    assert [t.trade_id for t in out] == [f"t{i}" for i in range(10, 20)]
    assert outcome.complete and outcome.recovered == 10
    assert outcome.duplicates == 3  # t9 (same ms as the last live one), t20, t21
    again, second = tracker.merge(TOPIC, fetched, since_ms=since, limit=1000)
    assert again == [] and second.recovered == 0  # a second fetch adds nothing


def test_more_missed_than_rest_keeps_is_reported_with_the_lost_range() -> None:
    tracker = TradeTracker()
    tracker.observe(TOPIC, [trade(0)])
    fetched = [trade(i) for i in range(500, 560)]  # the endpoint's 60 newest (spot)
    out, outcome = tracker.merge(TOPIC, fetched, since_ms=1_000, limit=60)
    assert len(out) == 60
    assert not outcome.complete and outcome.reason == "truncated"
    assert (outcome.missing_from_ms, outcome.missing_to_ms) == (1_000, 1_500)


def test_trade_ids_are_bounded() -> None:
    tracker = TradeTracker(max_ids=5)
    tracker.observe(TOPIC, [trade(i) for i in range(10)])
    out, _ = tracker.merge(TOPIC, [trade(0), trade(9)], since_ms=None, limit=1000)
    assert [t.trade_id for t in out] == ["t0"]  # forgotten: FIFO bound of 5


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 80),
    gap=st.tuples(st.integers(0, 80), st.integers(0, 80)),
    overlap=st.integers(0, 10),
    seed=st.randoms(use_true_random=False),
)
def test_every_trade_exactly_once_whatever_the_interleaving(
    n: int, gap: tuple[int, int], overlap: int, seed: object
) -> None:
    """Live before the gap, a gap, live after it (some re-sent), then REST's newest window: the
    union of live and backfilled is every trade exactly once whenever REST reached back far
    enough, and the outcome says so."""
    rng = seed  # hypothesis' Random
    truth = [trade(i, 1_000 + i // 2) for i in range(n)]  # two trades per ms: ties on time
    lo, hi = sorted(gap)
    lo, hi = min(lo, n), min(hi, n)
    before, after = truth[:lo], truth[hi:]
    tracker = TradeTracker()
    delivered: list[str] = []
    if before:
        tracker.observe(TOPIC, before)
        delivered += [t.trade_id or "" for t in before]
    since = tracker.last_time.get(TOPIC)
    resent = after[: min(overlap, len(after))]
    if after:
        tracker.observe(TOPIC, after)
        delivered += [t.trade_id or "" for t in after]
    limit = rng.randint(1, n + 5)  # type: ignore[attr-defined]
    window = truth[-limit:]
    rng.shuffle(window)  # type: ignore[attr-defined]
    out, outcome = tracker.merge(TOPIC, window + resent, since_ms=since, limit=limit)
    delivered += [t.trade_id or "" for t in out]
    assert len(delivered) == len(set(delivered))  # nothing twice
    times = [t.time for t in out]
    assert times == sorted(times)
    missing = {t.trade_id for t in truth} - set(delivered)
    if outcome.complete:
        assert not missing
    else:
        assert outcome.missing_to_ms is not None
        low = outcome.missing_from_ms  # None: nothing was known before the gap
        for t in truth:
            if t.trade_id in missing:
                assert (low is None or low <= t.time) and t.time <= outcome.missing_to_ms


def candle(start_min: int, confirm: bool) -> Kline:
    start = start_min * 60_000
    return Kline(
        start=start,
        end=start + 59_999,
        interval="1",
        open="1",
        close="2",
        high="3",
        low="0",
        confirm=confirm,
    )


def test_closed_candles_missed_are_published_confirmed_open_one_left() -> None:
    topic = "kline.1.BTCUSDT"
    tracker = KlineTracker()
    tracker.observe(topic, [candle(10, True), candle(11, False)])
    assert tracker.window(topic, None) == 11 * 60_000
    fetched = [candle(m, False) for m in (15, 14, 13, 12, 11)]  # REST: newest first, no confirm
    now_ms = 15 * 60_000 + 30_000  # candle 15 still open
    out, outcome = tracker.merge(topic, "1", fetched, now_ms=now_ms)
    assert [k.start // 60_000 for k in out] == [11, 12, 13, 14]
    assert all(k.confirm and k.interval == "1" for k in out)
    assert outcome.complete and outcome.recovered == 4
    out, outcome = tracker.merge(topic, "1", fetched, now_ms=now_ms)
    assert out == [] and outcome.duplicates == 4


def test_live_confirmed_candles_are_not_repeated() -> None:
    topic = "kline.1.BTCUSDT"
    tracker = KlineTracker()
    tracker.observe(topic, [candle(12, True)])
    out, outcome = tracker.merge(
        topic, "1", [candle(12, False), candle(13, False)], now_ms=14 * 60_000
    )
    assert [k.start // 60_000 for k in out] == [13] and outcome.duplicates == 1


def test_month_candles_are_not_backfilled() -> None:
    assert interval_ms("M") is None and interval_ms("D") == 86_400_000
    out, outcome = KlineTracker().merge("kline.M.X", "M", [candle(1, False)], now_ms=10**12)
    assert out == [] and not outcome.complete
