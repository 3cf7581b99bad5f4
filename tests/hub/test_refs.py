"""Reference counting (with linger) and sharding by args budget, sans-I/O."""

from __future__ import annotations

import pytest

from hean.core.clock import ManualClock
from hean.hub.refs import ShardPlanner, TopicRefs


def test_first_acquire_subscribes_and_last_release_unsubscribes() -> None:
    clock = ManualClock()
    refs: TopicRefs[str] = TopicRefs()
    now = clock.monotonic()
    a = refs.acquire("a", ["t1", "t2"], now)
    assert a.held == ["t1", "t2"] and a.subscribe == ["t1", "t2"] and a.shared == []
    b = refs.acquire("b", ["t2", "t3"], now)
    assert b.held == ["t2", "t3"] and b.subscribe == ["t3"] and b.shared == ["t2"]
    assert refs.acquire("b", ["t2"], now).held == []  # idempotent per owner
    assert refs.count("t2") == 2 and refs.holders("t2") == {"a", "b"}
    r = refs.release("a", ["t2", "t9"], now)
    assert r.dropped == ["t2"] and r.unsubscribe == []  # b still holds it
    r = refs.release("b", ["t2"], now)
    assert r.dropped == ["t2"] and r.unsubscribe == ["t2"]
    assert refs.wanted() == {"t1", "t3"}
    r = refs.release_all("a", now)
    assert r.unsubscribe == ["t1"] and refs.topics_of("a") == frozenset()
    assert refs.owners() == ["b"]
    assert refs.next_deadline() is None


def test_linger_keeps_a_released_topic_and_a_quick_return_costs_nothing() -> None:
    clock = ManualClock(start=10.0)
    refs: TopicRefs[str] = TopicRefs(linger=2.0)
    refs.acquire("a", ["t"], clock.monotonic())
    r = refs.release("a", ["t"], clock.monotonic())
    assert r.unsubscribe == [] and refs.lingering() == {"t": 12.0}
    assert refs.is_wanted("t") and refs.next_deadline() == 12.0
    clock.advance(1.0)
    assert refs.expire(clock.monotonic()) == []
    back = refs.acquire("b", ["t"], clock.monotonic())
    assert back.subscribe == [] and back.shared == ["t"]  # still on the wire: no new subscribe
    assert refs.lingering() == {} and refs.next_deadline() is None
    refs.release("b", ["t"], clock.monotonic())
    clock.advance(1.999)
    assert refs.expire(clock.monotonic()) == []
    clock.advance(0.001)
    assert refs.expire(clock.monotonic()) == ["t"]
    assert refs.wanted() == set()
    assert refs.acquire("c", ["t"], clock.monotonic()).subscribe == ["t"]


def test_forget_drops_a_topic_for_everyone() -> None:
    refs: TopicRefs[str] = TopicRefs()
    refs.acquire("a", ["t", "u"], 0.0)
    refs.acquire("b", ["t"], 0.0)
    assert sorted(refs.forget("t")) == ["a", "b"]
    assert refs.wanted() == {"u"} and refs.owners() == ["a"]


def test_bad_linger_is_refused() -> None:
    with pytest.raises(ValueError, match="linger"):
        TopicRefs(linger=-1.0)


def test_planner_fills_a_connection_up_to_the_budget_then_opens_another() -> None:
    planner = ShardPlanner(budget=30)
    assert planner.place("a" * 10) == (0, True)
    assert planner.place("b" * 10) == (0, False)
    assert planner.place("c" * 10) == (0, False)  # exactly 30
    assert planner.place("d" * 5) == (1, True)
    assert planner.place("a" * 10) == (0, False)  # already placed: stays
    assert planner.chars(0) == 30 and planner.chars(1) == 5
    # a freed slot on the first connection is used again (first fit)
    assert planner.remove("b" * 10) == (0, False)
    assert planner.place("e" * 9) == (0, False)
    assert planner.remove("d" * 5) == (1, True)  # emptied: forgotten
    assert planner.shards() == [0]
    assert planner.place("f" * 25) == (2, True)  # ids are not reused
    with pytest.raises(ValueError, match="budget"):
        planner.place("x" * 31)


def test_planner_caps_topics_per_connection() -> None:
    planner = ShardPlanner(budget=10_000, max_topics=2)
    assert [planner.place(t)[0] for t in ("a", "b", "c", "d", "e")] == [0, 0, 1, 1, 2]
    assert planner.topics(1) == {"c", "d"}
    assert planner.shard_of("e") == 2 and planner.shard_of("zz") is None
    assert planner.remove("zz") == (None, False)


def test_the_real_budget_splits_a_big_ticker_set_in_two() -> None:
    planner = ShardPlanner()  # 21,000
    topics = [f"tickers.{'S' + str(i).zfill(4) + 'X' * 25}" for i in range(600)]  # 38 chars
    shards = [planner.place(t)[0] for t in topics]
    assert shards.count(0) == 21_000 // 38 and set(shards) == {0, 1}
    assert planner.chars(0) <= 21_000
