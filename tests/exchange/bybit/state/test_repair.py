"""RepairSchedule: an invalid topic is resubscribed until valid, never faster than allowed."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hean.exchange.bybit.state.repair import RepairSchedule


def test_first_resubscribe_at_once_then_again_with_doubling_waits() -> None:
    r = RepairSchedule(min_interval=1.0, timeout=5.0, max_timeout=12.0)
    assert r.next_deadline() is None
    assert r.invalid("ob", "gap", 0.0) is True
    assert r.invalid("ob", "gap again", 0.5) is False  # already under repair
    assert r.next_deadline() == 5.0
    assert r.due(4.9) == []
    [(topic, rep)] = r.due(5.0)
    assert topic == "ob" and rep.attempts == 2 and rep.reason == "gap"
    assert r.next_deadline() == 15.0  # 5 * 2
    r.due(15.0)
    assert r.next_deadline() == 27.0  # capped at 12
    assert r.stuck_for(27.0) == 27.0
    assert r.valid("ob") is rep and r.next_deadline() is None and r.stuck_for(30.0) == 0.0
    assert r.sent == 3


def test_rate_limited_across_repairs_and_cleared_by_a_fresh_connection() -> None:
    r = RepairSchedule(min_interval=1.0, timeout=5.0, max_timeout=5.0)
    assert r.invalid("ob", "gap", 0.0)
    r.valid("ob")
    assert r.invalid("ob", "gap", 0.3) is False  # within a second of the last one
    assert r.next_deadline() == 1.0
    assert [t for t, _ in r.due(1.0)] == ["ob"]
    r.clear()
    assert r.next_deadline() is None
    assert r.invalid("ob", "delta before snapshot", 1.1)  # a new connection: no memory


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RepairSchedule(1.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        RepairSchedule(1.0, 5.0, 1.0)
    with pytest.raises(ValueError):
        RepairSchedule(-1.0, 5.0, 5.0)


@given(
    st.lists(
        st.tuples(st.floats(0.0, 3.0), st.sampled_from(["invalid", "valid", "tick"])),
        max_size=200,
    )
)
def test_never_stuck_and_never_faster_than_allowed(steps: list[tuple[float, str]]) -> None:
    """Whatever happens: an invalid topic always has a resubscribe scheduled within
    max_timeout, and two resubscribes are never closer than min_interval."""
    r = RepairSchedule(min_interval=0.5, timeout=1.0, max_timeout=4.0)
    now = 0.0
    sends: list[float] = []
    invalid = False
    for dt, what in steps:
        now += dt
        sends += [now for _ in r.due(now)]
        if what == "invalid":
            invalid = True
            if r.invalid("t", "x", now):
                sends.append(now)
        elif what == "valid":
            invalid = False
            r.valid("t")
        if invalid:
            deadline = r.next_deadline()
            assert deadline is not None and deadline - now <= 4.0 + 1e-9
    assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(sends))
