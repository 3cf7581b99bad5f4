from __future__ import annotations

import random

import pytest

from hean.exchange.bybit.protocol.backoff import (
    Backoff,
    BackoffPolicy,
    BreakerState,
    CircuitBreaker,
    RetryClass,
    classify,
)


def test_delays_are_full_jitter_within_capped_exponential_bounds() -> None:
    policy = BackoffPolicy(first=1.0, cap=30.0)
    backoff = Backoff(policy, random.Random(7))
    for attempt in range(40):
        bound = min(30.0, 1.0 * 2**attempt)
        delay = backoff.next_delay()
        assert 0.0 <= delay <= bound
    assert backoff.attempts == 40


def test_jitter_spreads_over_the_whole_range() -> None:
    backoff = Backoff(BackoffPolicy(first=1.0, cap=8.0), random.Random(1))
    delays = []
    for _ in range(2000):
        backoff.reset()
        for _ in range(3):
            backoff.next_delay()
        delays.append(backoff.next_delay())  # 4th attempt: U(0, 8)
    assert min(delays) < 0.5 and max(delays) > 7.5
    assert 3.5 < sum(delays) / len(delays) < 4.5


def test_floor_and_reset_and_huge_attempt_numbers() -> None:
    backoff = Backoff(BackoffPolicy(first=1.0, cap=2.0), random.Random(3))
    assert backoff.next_delay(floor=5.0) >= 5.0
    backoff.attempts = 10_000
    assert backoff.next_delay() <= 2.0
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.upper_bound(0) == 1.0


@pytest.mark.parametrize(
    ("reason", "retry_after", "cls", "floor"),
    [
        ("heartbeat_timeout", None, RetryClass.RETRY, 0.0),
        ("server_close:1006", None, RetryClass.RETRY, 0.0),
        ("server_close:1001", None, RetryClass.RETRY, 0.0),
        ("server_close:1012", None, RetryClass.RETRY, 0.0),
        ("server_close:1013", None, RetryClass.SLOW, 5.0),
        ("server_close:1008", None, RetryClass.SLOW, 5.0),
        ("http_503", None, RetryClass.RETRY, 0.0),
        ("http_429", None, RetryClass.SLOW, 30.0),
        ("http_429", 90.0, RetryClass.SLOW, 90.0),
        ("http_403", None, RetryClass.SLOW, 30.0),
        ("http_404", None, RetryClass.SLOW, 30.0),
        ("dns", None, RetryClass.RETRY, 0.0),
        ("connect_timeout", None, RetryClass.RETRY, 0.0),
    ],
)
def test_classify_table(
    reason: str, retry_after: float | None, cls: RetryClass, floor: float
) -> None:
    assert classify(reason, BackoffPolicy(), retry_after) == (cls, floor)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="cap"):
        BackoffPolicy(first=5, cap=1)
    with pytest.raises(ValueError, match="first"):
        BackoffPolicy(first=-1)
    with pytest.raises(ValueError, match="failure_threshold"):
        BackoffPolicy(failure_threshold=0)
    scaled = BackoffPolicy().scaled(0.01)
    assert scaled.cap == pytest.approx(0.3) and scaled.failure_threshold == 5


def test_breaker_closed_open_half_open_closed() -> None:
    breaker = CircuitBreaker(BackoffPolicy(failure_threshold=3, cooldown=10, max_cooldown=25))
    now = 100.0
    for _ in range(2):
        breaker.record_failure(now)
        assert breaker.state is BreakerState.CLOSED and breaker.allow(now)
    breaker.record_failure(now)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(now + 9.9)
    assert breaker.allow(now + 10.0)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure(now + 10.0)  # trial failed: open again, cooldown doubled
    assert breaker.state is BreakerState.OPEN and breaker.retry_at == pytest.approx(130.0)
    assert breaker.allow(now + 30.0)
    breaker.record_failure(now + 30.0)  # doubled again but capped at 25
    assert breaker.retry_at == pytest.approx(155.0)
    assert breaker.allow(now + 55.0)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0
    breaker.record_failure(200.0)
    assert breaker.state is BreakerState.CLOSED  # counting starts over
