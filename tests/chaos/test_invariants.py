"""The invariant checker fails when a fault is planted (and passes a clean history)."""

from __future__ import annotations

from hean.chaos import InvariantChecker, plan
from hean.chaos.schedule import FAULTS

T = "orderbook.50.BTCUSDT"


def clean(c: InvariantChecker) -> None:
    c.on_book(T, 10, True, True, 0.0)
    c.on_book(T, 11, False, True, 0.1)
    c.on_book(T, 13, False, False, 0.2)  # a gap, visibly invalid: allowed
    c.on_book(T, 14, False, False, 0.3)
    c.on_book(T, 40, True, True, 0.9)  # repaired within the bound
    c.on_book(T, 41, False, True, 1.0)


def test_a_clean_history_passes() -> None:
    c = InvariantChecker(stuck_bound=1.0)
    clean(c)
    c.check_repairing([], {}, 1.0)
    c.check_delivery({T: 5}, {T: 5}, "conn", 1.0)
    c.check_drops("slow", 10, 6, 3, 1, 1.0)
    c.check_attempts([0.0, 0.1, 0.2, 1.0, 1.5], rate=2.0, burst=3, now=2.0)
    c.on_execution("e1", 1.0)
    c.check_executions(["e1"], 1.0)
    c.check_pending("trade", 0, 1.0)
    assert c.ok, c.violations
    assert c.topics[T].repairs == 1 and c.topics[T].longest_invalid == 0.7


def test_planted_dropped_update_is_caught() -> None:
    """An update lost while connected and accepted as valid: a silent gap."""
    c = InvariantChecker(stuck_bound=1.0)
    c.on_book(T, 10, True, True, 0.0)
    c.on_book(T, 12, False, True, 0.1)  # u=11 dropped, the book still claims to be valid
    assert [v.rule for v in c.violations] == ["silent_gap"]
    c2 = InvariantChecker(stuck_bound=1.0)
    c2.check_delivery({T: 5, "tickers.X": 3}, {T: 4, "tickers.X": 3}, "conn", 1.0)
    assert [(v.rule, v.subject) for v in c2.violations] == [("lost", f"conn {T}")]


def test_planted_unrepaired_topic_is_caught() -> None:
    """A topic left invalid: stuck past the bound while live, and not under repair."""
    c = InvariantChecker(stuck_bound=1.0)
    c.on_book(T, 10, True, True, 0.0)
    c.on_book(T, 12, False, False, 0.1)
    for i in range(20):  # deltas keep arriving, the book stays invalid
        c.on_book(T, 13 + i, False, False, 0.2 + 0.1 * i)
    assert [v.rule for v in c.violations] == ["stuck"]
    c.check_repairing([T], {}, 2.2)
    assert [v.rule for v in c.violations] == ["stuck", "stuck"]
    assert "no repair under way" in str(c.violations[-1])


def test_planted_ticker_left_without_a_snapshot_is_caught() -> None:
    """A ticker merging deltas without its snapshot is invalid: repaired in time it passes,
    left so while its deltas keep coming it is stuck."""
    tk = "tickers.BTCUSDT"
    c = InvariantChecker(stuck_bound=1.0)
    c.on_ticker(tk, True, 0.0)
    c.on_ticker(tk, False, 0.1)  # snapshot lost on a resubscribe: deltas only
    c.on_ticker(tk, True, 0.8)  # repaired within the bound
    assert c.ok and c.topics[tk].repairs == 1
    c.on_ticker(tk, False, 1.0)
    for i in range(15):
        c.on_ticker(tk, False, 1.1 + 0.1 * i)
    assert [(v.rule, v.subject) for v in c.violations] == [("stuck", tk)]
    c.check_repairing([tk], {"orderbook.50.BTCUSDT": object()}, 2.5)
    assert [v.rule for v in c.violations] == ["stuck", "stuck"]


def test_planted_lagging_link_is_caught_once() -> None:
    """A slow-dripping link kept although it is further behind the venue than the heartbeat
    allows (the client neither noticed nor replaced it)."""
    c = InvariantChecker(stuck_bound=1.0)
    c.check_lag("conn a", 0.3, 0.5, 1.0)  # behind, but within the bound: fine
    assert c.ok
    for i in range(5):
        c.check_lag("conn a", 0.6 + i, 0.5, 2.0 + i)
    c.check_lag("conn b", 0.7, 0.5, 9.0)
    assert [(v.rule, v.subject) for v in c.violations] == [
        ("lagging", "conn a"),
        ("lagging", "conn b"),
    ]


def test_time_while_down_is_not_held_against_a_topic() -> None:
    c = InvariantChecker(stuck_bound=1.0)
    c.on_book(T, 10, True, True, 0.0)
    c.on_book(T, 12, False, False, 0.1)
    c.connection(False, 0.2)
    c.check_stuck(5.0)
    c.connection(True, 5.0)
    c.on_book(T, 1, True, True, 5.5)
    assert c.ok


def test_other_planted_faults_are_caught() -> None:
    c = InvariantChecker(stuck_bound=1.0)
    c.check_drops("slow", 10, 6, 2, 1, 0.0)  # one event unaccounted for
    c.check_attempts([0.0, 0.01, 0.02, 0.03, 0.04], rate=2.0, burst=3, now=1.0)
    c.on_execution("e1", 0.0)
    c.on_execution("e1", 0.1)
    c.check_executions(["e1", "e2"], 1.0)
    c.check_pending("trade", 2, 1.0)
    c.check_equal("book", [("1", "2")], [("1", "3")], 1.0)
    assert [v.rule for v in c.violations] == [
        "drops",
        "rate",
        "duplicate",
        "missing",
        "pending",
        "state",
    ]


def test_schedule_is_seeded_and_covers_every_fault() -> None:
    for kind, faults in FAULTS.items():
        a = plan(kind, 5, 60.0, (0.3, 0.8))
        assert a == plan(kind, 5, 60.0, (0.3, 0.8))
        assert a != plan(kind, 6, 60.0, (0.3, 0.8))
        assert {f.kind for f in a[: len(faults)]} == set(faults)  # one full round first
