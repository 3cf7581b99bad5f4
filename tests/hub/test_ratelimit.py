"""The connection-rate limiter, sans-I/O, with a hand-moved clock."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hean.core.clock import ManualClock
from hean.hub.ratelimit import ConnectionRateLimiter, SlidingWindow, TokenBucket, shared_limiter


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = ManualClock(start=100.0)
    bucket = TokenBucket(rate=5.0, burst=10)
    now = clock.monotonic()
    for _ in range(10):
        assert bucket.ready_at(now) == now
        bucket.take(now)
    assert bucket.ready_at(now) == pytest.approx(now + 0.2)
    clock.advance(0.1)
    assert bucket.ready_at(clock.monotonic()) == pytest.approx(now + 0.2)
    clock.advance(0.1)
    assert bucket.ready_at(clock.monotonic()) == pytest.approx(clock.monotonic())
    clock.advance(100.0)  # refills, but never beyond the burst
    assert bucket.tokens(clock.monotonic()) == 10.0


def test_reservations_are_first_come_first_served_at_the_rate() -> None:
    clock = ManualClock(start=0.0)
    limiter = ConnectionRateLimiter(rate=5.0, burst=10)
    delays = [limiter.reserve(clock.monotonic()) for _ in range(20)]
    assert delays[:10] == [0.0] * 10
    # the 11th waits one interval, the 20th ten: a storm is spread evenly, in arrival order
    assert delays[10:] == pytest.approx([0.2 * k for k in range(1, 11)])
    assert limiter.granted == 20 and limiter.delayed == 10
    assert limiter.max_delay == pytest.approx(2.0)
    # time passes while they wait: a later caller queues behind the reserved slots
    clock.advance(1.0)
    assert limiter.reserve(clock.monotonic()) == pytest.approx(1.2)


def test_sliding_window_caps_attempts_in_any_window() -> None:
    window = SlidingWindow(limit=3, window=10.0)
    assert window.ready_at(0.0) == 0.0
    for t in (0.0, 1.0, 2.0):
        window.take(t)
    assert window.ready_at(2.0) == 10.0  # the oldest of the last three leaves the window
    window.take(10.0)
    assert window.ready_at(10.0) == 11.0
    assert window.count(10.0) == 3


def test_long_window_keeps_a_flat_out_bucket_under_bybits_500_per_5_minutes() -> None:
    clock = ManualClock(start=0.0)
    limiter = ConnectionRateLimiter()  # 5/s burst 10, 400 per 300 s
    times = []
    for _ in range(1200):
        delay = limiter.reserve(clock.monotonic())
        clock.advance(delay)
        times.append(clock.monotonic())
    # any 300 s window holds at most 400 attempts
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - 300.0 + 1e-9:  # window (t - 300, t], float-tolerant
            j += 1
        assert i - j + 1 <= 400
    assert times[-1] > 600.0


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.5, 50.0),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=200),
)
def test_granted_slots_never_exceed_burst_plus_rate_times_interval(
    rate: float, burst: int, gaps: list[float]
) -> None:
    clock = ManualClock(start=0.0)
    limiter = ConnectionRateLimiter(rate=rate, burst=burst, window=1e9, window_max=10**9)
    slots = []
    for gap in gaps:
        clock.advance(gap)
        now = clock.monotonic()
        slots.append(now + limiter.reserve(now))
    assert slots == sorted(slots)  # first come, first served
    for i in range(len(slots)):
        for j in range(i, len(slots)):
            assert j - i + 1 <= burst + rate * (slots[j] - slots[i]) + 1e-6


def test_random_arrivals_after_an_outage_are_spread() -> None:
    """200 connections come back within 50 ms: the slots are 1/rate apart after the burst."""
    rng = random.Random(3)
    limiter = ConnectionRateLimiter(rate=5.0, burst=10)
    arrivals = sorted(1000.0 + rng.uniform(0, 0.05) for _ in range(200))
    slots = [t + limiter.reserve(t) for t in arrivals]
    gaps = [b - a for a, b in itertools.pairwise(slots[10:])]
    assert min(gaps) == pytest.approx(0.2)
    assert slots[-1] - slots[0] == pytest.approx((200 - 10) * 0.2, abs=0.06)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0.0, 1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1.0, 0)
    with pytest.raises(ValueError, match="limit"):
        SlidingWindow(0, 1.0)
    with pytest.raises(ValueError, match="window"):
        SlidingWindow(1, 0.0)


def test_shared_limiter_is_one_per_host() -> None:
    a = shared_limiter("wss://stream.bybit.com/v5/public/linear")
    b = shared_limiter("wss://stream.bybit.com/v5/public/spot")
    c = shared_limiter("wss://stream-testnet.bybit.com/v5/public/spot")
    assert a is b and a is not c
