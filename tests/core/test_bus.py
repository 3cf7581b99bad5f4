"""Tests for :mod:`hean.core.bus`: delivery, isolation, overflow policies, lifecycle, counters."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hean.core.bus import (
    BusNotStarted,
    EventBus,
    EventStream,
    OverflowPolicy,
    StreamClosed,
    SubscriberStats,
    Subscription,
)
from hean.core.events import EventType

TICK = EventType.TICK
OTHER = EventType.SUBSCRIPTION
LOGGER = "test.bus"


def make_bus(**kwargs: Any) -> EventBus:
    return EventBus(logger=logging.getLogger(LOGGER), **kwargs)


async def until(pred: Callable[[], bool], limit: float = 1.0) -> None:
    """Yield to the loop until ``pred()`` holds (fails the test after ``limit`` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    spins = 0
    while not pred():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        spins += 1
        await asyncio.sleep(0 if spins < 50 else 0.001)


async def settle(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def check_invariant(sub: Subscription, published: int) -> None:
    assert published == sub.delivered + sub.dropped + sub.conflated + sub.depth, sub


def records(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level and text in r.getMessage()]


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- unstarted bus -------------------------------------------------------------------------------


async def test_unstarted_bus_warns_once_and_still_delivers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    bus = make_bus()
    sync_got: list[int] = []
    async_got: list[int] = []

    async def handler(ev: int) -> None:
        async_got.append(ev)

    bus.subscribe(TICK, sync_got.append)
    sub = bus.subscribe_async(TICK, handler)
    with pytest.warns(RuntimeWarning, match=r"before start\(\)") as rec:
        for i in range(3):
            bus.publish(TICK, i)
    assert len([w for w in rec if issubclass(w.category, RuntimeWarning)]) == 1
    logged = records(caplog, logging.WARNING, "before start()")
    assert len(logged) == 1
    assert "await bus.start()" in logged[0].getMessage()
    assert sync_got == [0, 1, 2]
    assert async_got == []
    assert sub.depth == 3

    await bus.start()
    await until(lambda: len(async_got) == 3)
    assert async_got == [0, 1, 2]
    check_invariant(sub, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bus.publish(TICK, 3)  # started: no warning
    await until(lambda: len(async_got) == 4)
    await bus.stop()


def test_publish_outside_event_loop_queues_until_start() -> None:
    bus = make_bus()
    sync_got: list[int] = []
    async_got: list[int] = []

    async def handler(ev: int) -> None:
        async_got.append(ev)

    bus.subscribe(TICK, sync_got.append)
    sub = bus.subscribe_async(TICK, handler)
    with pytest.warns(RuntimeWarning):
        bus.publish(TICK, 1)
        bus.publish(TICK, 2)
    assert sync_got == [1, 2]
    assert sub.depth == 2

    async def run() -> None:
        await bus.start()
        await until(lambda: len(async_got) == 2)
        await bus.stop()

    asyncio.run(run())
    assert async_got == [1, 2]


async def test_on_unstarted_raise() -> None:
    bus = make_bus(on_unstarted="raise")
    got: list[int] = []
    bus.subscribe(TICK, got.append)
    with pytest.raises(BusNotStarted, match=r"start\(\)"):
        bus.publish(TICK, 1)
    assert got == []
    await bus.start()
    bus.publish(TICK, 2)
    await bus.stop()
    with pytest.raises(BusNotStarted, match=r"after stop\(\)"):
        bus.publish(TICK, 3)
    assert got == [2]


# -- isolation -----------------------------------------------------------------------------------


async def test_raising_sync_subscriber_is_isolated_counted_and_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    clock = FakeMonotonic()
    bus = make_bus(monotonic=clock)
    await bus.start()
    first: list[int] = []
    last: list[int] = []

    def bad(ev: int) -> None:
        raise ValueError(f"boom {ev}")

    bus.subscribe(TICK, first.append, name="first")
    bad_sub = bus.subscribe(TICK, bad, name="bad")
    bus.subscribe(TICK, last.append, name="last")
    for i in range(5):
        bus.publish(TICK, i)  # must not raise
    assert first == last == [0, 1, 2, 3, 4]
    assert bad_sub.errors == 5
    assert bad_sub.delivered == 5
    logged = records(caplog, logging.WARNING, "'bad'")
    assert len(logged) == 1
    assert "ValueError" in logged[0].getMessage()
    assert "boom 0" in logged[0].getMessage()

    clock.now += 10.5
    bus.publish(TICK, 5)
    logged = records(caplog, logging.WARNING, "'bad'")
    assert len(logged) == 2
    assert "4 not logged" in logged[1].getMessage()
    await bus.stop()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6])
async def test_every_fan_out_width_isolates_a_raising_subscriber_at_any_position(n: int) -> None:
    """Up to three targets are called unrolled, more in a loop: each width and position must
    still call every other subscriber, in order, and count the failure on the right one."""
    for bad_at in range(n):
        bus = make_bus()
        await bus.start()
        calls: list[tuple[int, int]] = []
        subs = []
        for i in range(n):

            def cb(
                ev: int, i: int = i, calls: list[tuple[int, int]] = calls, bad_at: int = bad_at
            ) -> None:
                calls.append((i, ev))
                if i == bad_at:
                    raise RuntimeError(f"subscriber {i}")

            subs.append(bus.subscribe(TICK, cb, name=f"s{i}"))
        queued = bus.stream(TICK, maxsize=10)  # an async target after the sync ones
        bus.publish(TICK, 7)
        bus.publish(TICK, 8)
        assert calls == [(i, ev) for ev in (7, 8) for i in range(n)]
        assert [s.errors for s in subs] == [2 if i == bad_at else 0 for i in range(n)]
        assert [s.delivered for s in subs] == [2] * n
        assert queued.get_nowait() == 7 and queued.get_nowait() == 8
        await bus.stop()


async def test_unsubscribing_changes_the_fan_out_width_seen_by_a_publisher() -> None:
    bus = make_bus()
    await bus.start()
    publish = bus.publisher(TICK)  # resolved once, as producers do
    got: dict[str, list[int]] = {"a": [], "b": [], "c": [], "d": []}
    subs = {k: bus.subscribe(TICK, v.append, name=k) for k, v in got.items()}
    publish(1)
    subs["b"].unsubscribe()
    publish(2)
    subs["d"].unsubscribe()
    subs["a"].unsubscribe()
    publish(3)
    subs["c"].unsubscribe()
    publish(4)
    assert got == {"a": [1, 2], "b": [1], "c": [1, 2, 3], "d": [1, 2]}
    await bus.stop()


async def test_an_internal_delivery_error_is_logged_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, LOGGER)
    bus = make_bus()
    await bus.start()
    got: list[int] = []
    bus.subscribe(TICK, got.append)
    stream = bus.stream(TICK, maxsize=4)
    route = bus._routes[TICK]

    def broken_push(event: Any) -> None:
        raise AssertionError("bug")

    route.targets = (route.targets[0], broken_push)  # as if a queue push had a bug
    bus.publish(TICK, 1)  # must not raise into the reader
    assert got == [1]
    assert records(caplog, logging.ERROR, "internal error delivering")
    stream.close()
    await bus.stop()


async def test_raising_async_handler_keeps_its_task_alive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    bus = make_bus()
    await bus.start()
    got: list[int] = []

    async def handler(ev: int) -> None:
        if ev % 2 == 0:
            raise RuntimeError("even")
        got.append(ev)

    sub = bus.subscribe_async(TICK, handler, name="flaky")
    for i in range(4):
        bus.publish(TICK, i)
        await settle()
    await until(lambda: sub.delivered == 4)
    assert got == [1, 3]
    assert sub.errors == 2
    assert len(records(caplog, logging.WARNING, "'flaky'")) == 1
    bus.publish(TICK, 5)
    await until(lambda: got == [1, 3, 5])
    await bus.stop()


async def test_handler_raising_cancelled_error_does_not_kill_consumer() -> None:
    bus = make_bus()
    await bus.start()
    got: list[int] = []

    async def handler(ev: int) -> None:
        if ev == 0:
            raise asyncio.CancelledError
        got.append(ev)

    sub = bus.subscribe_async(TICK, handler)
    bus.publish(TICK, 0)
    await settle()
    bus.publish(TICK, 1)
    await until(lambda: got == [1])
    assert sub.errors == 1
    await bus.stop()


async def test_slow_async_subscriber_never_delays_publish() -> None:
    bus = make_bus()
    await bus.start()
    slow_got: list[int] = []
    fast_got: list[int] = []

    async def slow(ev: int) -> None:
        slow_got.append(ev)
        await asyncio.sleep(0.05)

    async def fast(evs: list[int]) -> None:
        fast_got.extend(evs)

    slow_sub = bus.subscribe_async(TICK, slow, maxsize=100, name="slow")
    fast_sub = bus.subscribe_async(TICK, fast, maxsize=20_000, batch=True, name="fast")
    await settle()

    n = 10_000
    t0 = time.perf_counter()
    for i in range(n):
        bus.publish(TICK, i)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5  # the consumer alone would need n * 50 ms = 500 s
    assert slow_sub.depth == 100
    assert slow_sub.max_depth == 100
    assert slow_sub.dropped == n - 100
    check_invariant(slow_sub, n)

    await until(lambda: len(fast_got) == n)  # other subscribers are not held up
    assert fast_got == list(range(n))
    assert slow_got[0] == n - 100  # the slow one took the oldest survivor and is sleeping
    check_invariant(slow_sub, n)

    t0 = time.perf_counter()
    for i in range(n, 2 * n):
        bus.publish(TICK, i)
    assert time.perf_counter() - t0 < 0.5
    assert slow_sub.depth == 100
    assert slow_sub.dropped == 2 * n - 100 - slow_sub.delivered
    check_invariant(slow_sub, 2 * n)
    check_invariant(fast_sub, len(fast_got) + fast_sub.depth)
    await bus.stop(drain_timeout=0.01)
    assert not bus.is_running
    check_invariant(slow_sub, 2 * n)


# -- overflow policies ---------------------------------------------------------------------------


async def _burst_then_collect(
    bus: EventBus, policy: OverflowPolicy, maxsize: int, events: list[Any], **kw: Any
) -> tuple[list[list[Any]], Subscription]:
    calls: list[list[Any]] = []

    async def handler(evs: list[Any]) -> None:
        calls.append(evs)

    sub = bus.subscribe_async(TICK, handler, maxsize=maxsize, policy=policy, batch=True, **kw)
    await settle()
    for ev in events:
        bus.publish(TICK, ev)
    await until(lambda: sub.depth == 0 and bool(calls))
    return calls, sub


async def test_drop_oldest_keeps_newest() -> None:
    bus = make_bus()
    await bus.start()
    calls, sub = await _burst_then_collect(bus, OverflowPolicy.DROP_OLDEST, 3, list(range(10)))
    assert calls == [[7, 8, 9]]
    assert (sub.dropped, sub.delivered, sub.conflated, sub.max_depth) == (7, 3, 0, 3)
    check_invariant(sub, 10)
    await bus.stop()


async def test_drop_newest_keeps_oldest() -> None:
    bus = make_bus()
    await bus.start()
    calls, sub = await _burst_then_collect(bus, OverflowPolicy.DROP_NEWEST, 3, list(range(10)))
    assert calls == [[0, 1, 2]]
    assert (sub.dropped, sub.delivered, sub.conflated, sub.max_depth) == (7, 3, 0, 3)
    check_invariant(sub, 10)
    await bus.stop()


async def test_conflate_keeps_latest_per_key() -> None:
    bus = make_bus()
    await bus.start()
    events = [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2), ("c", 1)]
    calls, sub = await _burst_then_collect(
        bus, OverflowPolicy.CONFLATE, 10, events, key=lambda ev: ev[0]
    )
    assert calls == [[("a", 3), ("b", 2), ("c", 1)]]
    assert (sub.conflated, sub.dropped, sub.delivered) == (3, 0, 3)
    check_invariant(sub, len(events))
    await bus.stop()


async def test_conflate_bounds_distinct_keys_and_survives_bad_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    bus = make_bus()
    await bus.start()
    s = bus.stream(TICK, maxsize=2, policy=OverflowPolicy.CONFLATE, key=lambda ev: ev["k"])
    for ev in ({"k": "a"}, {"k": "b"}, {"k": "c"}, {"nokey": 1}, {"k": ["unhashable"]}):
        bus.publish(TICK, ev)
    assert [s.get_nowait(), s.get_nowait()] == [{"k": "b"}, {"k": "c"}]
    assert s.dropped == 3  # key "a" evicted, plus two events whose key failed
    assert s.errors == 2
    check_invariant(s, 5)
    assert len(records(caplog, logging.WARNING, "raised")) == 1  # rate-limited
    await bus.stop()


def test_conflate_requires_key_and_key_requires_conflate() -> None:
    bus = make_bus()

    async def handler(ev: Any) -> None:
        pass

    with pytest.raises(ValueError, match="key"):
        bus.subscribe_async(TICK, handler, policy=OverflowPolicy.CONFLATE)
    with pytest.raises(ValueError, match="key"):
        bus.stream(TICK, policy=OverflowPolicy.CONFLATE)
    with pytest.raises(ValueError, match="CONFLATE"):
        bus.subscribe_async(TICK, handler, key=lambda ev: ev)
    with pytest.raises(ValueError, match="maxsize"):
        bus.subscribe_async(TICK, handler, maxsize=0)
    assert bus.stats() == []


async def test_never_drop_never_drops_and_alarms_once_per_crossing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    bus = make_bus()
    await bus.start()
    s = bus.stream(TICK, maxsize=4, policy=OverflowPolicy.NEVER_DROP, name="account")
    published = 0
    for _ in range(20):
        bus.publish(TICK, published)
        published += 1
    assert s.alarms == 1
    assert s.dropped == 0
    assert s.depth == 20
    alarms = records(caplog, logging.ERROR, "'account'")
    assert len(alarms) == 1
    assert "NEVER_DROP" in alarms[0].getMessage()

    # Drain to 2 (not below maxsize/2): still armed-off, so crossing again does not alarm.
    got = [await s.get() for _ in range(18)]
    assert got == list(range(18))
    for _ in range(5):
        bus.publish(TICK, published)
        published += 1
    assert s.alarms == 1

    # Drain below maxsize/2, then cross again: a second alarm.
    while s.depth >= 2:
        got.append(s.get_nowait())
    for _ in range(4):
        bus.publish(TICK, published)
        published += 1
    assert s.alarms == 2
    assert len(records(caplog, logging.ERROR, "'account'")) == 2
    while s.depth:
        got.append(s.get_nowait())
    assert got == list(range(published))
    assert s.dropped == 0
    assert s.max_depth == 20
    check_invariant(s, published)
    await bus.stop()


async def test_never_drop_async_consumer_gets_everything() -> None:
    bus = make_bus()
    await bus.start()
    got: list[int] = []

    async def handler(ev: int) -> None:
        got.append(ev)

    sub = bus.subscribe_async(TICK, handler, maxsize=8, policy=OverflowPolicy.NEVER_DROP)
    for i in range(100):
        bus.publish(TICK, i)
    await until(lambda: len(got) == 100)
    assert got == list(range(100))
    assert (sub.dropped, sub.alarms, sub.max_depth) == (0, 1, 100)
    await bus.stop()


# -- batching ------------------------------------------------------------------------------------


async def test_batch_receives_a_burst_as_one_list() -> None:
    bus = make_bus()
    await bus.start()
    calls: list[list[int]] = []

    async def handler(evs: list[int]) -> None:
        calls.append(evs)

    sub = bus.subscribe_async(TICK, handler, batch=True)
    await settle()
    for i in range(50):
        bus.publish(TICK, i)
    await until(lambda: sub.delivered == 50)
    for i in range(50, 53):
        bus.publish(TICK, i)
    await until(lambda: sub.delivered == 53)
    assert calls == [list(range(50)), [50, 51, 52]]
    await bus.stop()


async def test_burst_wakes_a_per_event_consumer_once(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = make_bus()
    await bus.start()
    got: list[int] = []

    async def handler(ev: int) -> None:
        got.append(ev)

    bus.subscribe_async(TICK, handler)
    await settle()
    loop = asyncio.get_running_loop()
    scheduled: list[Any] = []
    original = loop.call_soon

    def spy(*args: Any, **kwargs: Any) -> Any:
        scheduled.append(args[0])
        return original(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(loop, "call_soon", spy)
        for i in range(100):
            bus.publish(TICK, i)
    assert len(scheduled) == 1  # one wake-up for the whole burst
    await until(lambda: len(got) == 100)
    assert got == list(range(100))
    await bus.stop()


# -- streams -------------------------------------------------------------------------------------


async def test_stream_iteration_get_and_close() -> None:
    bus = make_bus()
    await bus.start()
    s = bus.stream(TICK, maxsize=10)
    assert isinstance(s, EventStream)
    for i in range(3):
        bus.publish(TICK, i)
    got: list[int] = []
    async for ev in s:
        got.append(ev)
        if len(got) == 3:
            break
    assert got == [0, 1, 2]
    # issue 13: leaving the loop unsubscribes (its queue does not keep growing)
    await settle()
    assert not s.active and bus.stats() == []
    bus.publish(TICK, 99)
    assert s.depth == 0
    s = bus.stream(TICK, maxsize=10)
    bus.publish(TICK, 0)
    bus.publish(TICK, 1)
    bus.publish(TICK, 2)
    assert [s.get_nowait() for _ in range(3)] == [0, 1, 2]

    async def consume() -> list[int]:
        return [ev async for ev in s]

    task = asyncio.create_task(consume())
    await settle()
    bus.publish(TICK, 3)
    bus.publish(TICK, 4)
    await until(lambda: s.delivered == 5)
    s.close()
    assert await asyncio.wait_for(task, 1.0) == [3, 4]
    s.close()  # idempotent
    bus.publish(TICK, 5)
    assert s.depth == 0
    with pytest.raises(StreamClosed):
        await s.get()
    assert bus.stats() == []
    check_invariant(s, 5)
    await bus.stop()


async def test_stream_works_without_started_bus_and_as_context_manager() -> None:
    bus = make_bus(on_unstarted="raise")
    async with bus.stream(OTHER) as s:
        getter = asyncio.create_task(s.get())
        await settle()
        await bus.start()
        bus.publish(OTHER, "x")
        assert await asyncio.wait_for(getter, 1.0) == "x"
        with pytest.raises(asyncio.QueueEmpty):
            s.get_nowait()
    assert not s.active
    await bus.stop()


async def test_stream_concurrent_getters_and_cancellation() -> None:
    bus = make_bus()
    await bus.start()
    s = bus.stream(TICK)
    g1 = asyncio.create_task(s.get())
    g2 = asyncio.create_task(s.get())
    await settle()
    g1.cancel()
    await settle()
    assert g1.cancelled()
    bus.publish(TICK, "a")
    assert await asyncio.wait_for(g2, 1.0) == "a"
    s.close()
    await bus.stop()


# -- unsubscribe and lifecycle -------------------------------------------------------------------


async def test_unsubscribe_stops_delivery_and_is_idempotent() -> None:
    bus = make_bus()
    await bus.start()
    sync_got: list[int] = []
    async_got: list[int] = []

    async def handler(ev: int) -> None:
        async_got.append(ev)

    s1 = bus.subscribe(TICK, sync_got.append)
    s2 = bus.subscribe_async(TICK, handler)
    bus.publish(TICK, 1)
    await until(lambda: async_got == [1])
    bus.unsubscribe(s1)
    s2.unsubscribe()
    bus.unsubscribe(s1)
    bus.unsubscribe(s2)
    assert not s1.active and not s2.active
    bus.publish(TICK, 2)
    await settle()
    assert sync_got == [1]
    assert async_got == [1]
    assert s1.delivered == 1 and s2.delivered == 1
    assert bus.stats() == []
    await bus.stop()


async def test_unsubscribe_counts_undelivered_as_dropped() -> None:
    bus = make_bus()
    await bus.start()
    gate = asyncio.Event()

    async def handler(ev: int) -> None:
        await gate.wait()

    sub = bus.subscribe_async(TICK, handler)
    for i in range(5):
        bus.publish(TICK, i)
    await until(lambda: sub.delivered == 1)
    bus.unsubscribe(sub)
    assert sub.depth == 0 and sub.dropped == 4
    check_invariant(sub, 5)
    await bus.stop()


async def test_sync_callback_may_unsubscribe_itself_during_publish() -> None:
    bus = make_bus()
    await bus.start()
    got: list[int] = []
    other: list[int] = []
    subs: list[Subscription] = []

    def once(ev: int) -> None:
        got.append(ev)
        bus.unsubscribe(subs[0])

    subs.append(bus.subscribe(TICK, once))
    bus.subscribe(TICK, other.append)
    bus.publish(TICK, 1)
    bus.publish(TICK, 2)
    assert got == [1]
    assert other == [1, 2]
    assert subs[0].delivered == 1
    await bus.stop()


async def test_stop_drains_queued_events_then_cancels() -> None:
    bus = make_bus()
    await bus.start()
    got: list[int] = []

    async def handler(ev: int) -> None:
        await asyncio.sleep(0)
        got.append(ev)

    sub = bus.subscribe_async(TICK, handler)
    for i in range(20):
        bus.publish(TICK, i)
    await bus.stop(drain_timeout=1.0)
    assert got == list(range(20))
    assert sub.depth == 0
    assert not bus.is_running
    await bus.stop()  # idempotent


async def test_stop_cancels_a_stuck_consumer_after_drain_timeout() -> None:
    bus = make_bus()
    await bus.start()
    cancelled = asyncio.Event()
    never = asyncio.Event()

    async def handler(ev: int) -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    sub = bus.subscribe_async(TICK, handler)
    for i in range(3):
        bus.publish(TICK, i)
    await settle()
    t0 = time.perf_counter()
    await bus.stop(drain_timeout=0.02)
    assert time.perf_counter() - t0 < 0.5
    assert cancelled.is_set()
    assert (sub.delivered, sub.depth) == (1, 2)  # the rest stays queued for a restart
    check_invariant(sub, 3)


async def test_concurrent_stop_calls() -> None:
    bus = make_bus()
    await bus.start()

    async def handler(ev: int) -> None:
        await asyncio.sleep(0.005)

    bus.subscribe_async(TICK, handler)
    bus.publish(TICK, 1)
    await asyncio.gather(bus.stop(), bus.stop())
    assert not bus.is_running


async def test_stop_start_cycle() -> None:
    bus = make_bus()
    got: list[int] = []

    async def handler(ev: int) -> None:
        got.append(ev)

    await bus.start()
    await bus.start()  # idempotent
    bus.subscribe_async(TICK, handler)
    bus.publish(TICK, 1)
    await until(lambda: got == [1])
    await bus.stop()
    with pytest.warns(RuntimeWarning, match=r"after stop\(\)"):
        bus.publish(TICK, 2)
    await settle()
    assert got == [1]
    await bus.start()
    assert bus.is_running
    await until(lambda: got == [1, 2])
    bus.publish(TICK, 3)
    await until(lambda: got == [1, 2, 3])

    late: list[int] = []

    async def late_handler(ev: int) -> None:
        late.append(ev)

    bus.subscribe_async(TICK, late_handler)  # added while running: its task starts at once
    bus.publish(TICK, 4)
    await until(lambda: late == [4] and got[-1] == 4)
    await bus.stop()


async def test_event_types_are_routed_separately() -> None:
    bus = make_bus()
    await bus.start()
    ticks: list[str] = []
    others: list[str] = []
    bus.subscribe(TICK, ticks.append)
    bus.subscribe(OTHER, others.append)
    bus.publish(TICK, "t")
    bus.publish(OTHER, "o")
    bus.publish(EventType.CONNECTION_STATE, "nobody listens")
    assert (ticks, others) == (["t"], ["o"])
    await bus.stop()


async def test_stats_snapshot() -> None:
    bus = make_bus()
    await bus.start()

    async def handler(evs: list[Any]) -> None:
        pass

    bus.subscribe(TICK, lambda ev: None, name="inline")
    bus.subscribe_async(
        TICK,
        handler,
        batch=True,
        maxsize=2,
        policy=OverflowPolicy.CONFLATE,
        key=lambda ev: ev % 3,
        name="books",
    )
    bus.stream(OTHER, maxsize=5, policy=OverflowPolicy.NEVER_DROP)
    for i in range(4):
        bus.publish(TICK, i)
    bus.publish(OTHER, "x")
    stats = bus.stats()
    assert [s.kind for s in stats] == ["sync", "async", "stream"]
    assert all(isinstance(s, SubscriberStats) for s in stats)
    inline, books, stream = stats
    assert (inline.name, inline.policy, inline.maxsize, inline.delivered) == (
        "inline",
        None,
        0,
        4,
    )
    # keys 0, 1 queued; key 2 evicts key 0; key 0 again evicts key 1
    assert (books.name, books.policy, books.event_type) == ("books", "conflate", TICK)
    assert (books.depth, books.dropped, books.conflated, books.max_depth) == (2, 2, 0, 2)
    assert (stream.name, stream.policy, stream.depth, stream.maxsize) == (
        "stream:subscription",
        OverflowPolicy.NEVER_DROP,
        1,
        5,
    )
    with pytest.raises(AttributeError):
        inline.delivered = 99  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(stats[1]))["policy"] == "conflate"
    await bus.stop()


# -- property: the counters always add up --------------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("pub"), st.integers(0, 6)),
    st.tuples(st.just("yield"), st.just(0)),
    st.tuples(st.just("get"), st.integers(1, 4)),
)


@settings(max_examples=150, deadline=None)
@given(
    policy=st.sampled_from(list(OverflowPolicy)),
    maxsize=st.integers(1, 6),
    batch=st.booleans(),
    ops=st.lists(_op, max_size=60),
)
def test_counters_invariant_property(
    policy: OverflowPolicy, maxsize: int, batch: bool, ops: list[tuple[str, int]]
) -> None:
    key = (lambda ev: ev[1]) if policy is OverflowPolicy.CONFLATE else None

    async def scenario() -> None:
        bus = make_bus()
        await bus.start()
        received: list[tuple[int, int]] = []

        async def handler(arg: Any) -> None:
            received.extend(arg if batch else [arg])
            await asyncio.sleep(0)

        sub = bus.subscribe_async(
            TICK, handler, maxsize=maxsize, policy=policy, key=key, batch=batch
        )
        stream = bus.stream(TICK, maxsize=maxsize, policy=policy, key=key)
        streamed: list[tuple[int, int]] = []
        published: list[tuple[int, int]] = []

        def check() -> None:
            for q in (sub, stream):
                check_invariant(q, len(published))
                if policy is OverflowPolicy.NEVER_DROP:
                    assert q.dropped == 0 and q.conflated == 0
                else:
                    assert q.depth <= maxsize
                if policy is not OverflowPolicy.CONFLATE:
                    assert q.conflated == 0
                assert q.max_depth >= q.depth

        for op, arg in ops:
            if op == "pub":
                ev = (len(published), arg)
                published.append(ev)
                bus.publish(TICK, ev)
            elif op == "yield":
                await asyncio.sleep(0)
            else:
                for _ in range(min(arg, stream.depth)):
                    streamed.append(stream.get_nowait())
            check()
        await until(lambda: sub.depth == 0)
        check()
        assert sub.delivered == len(received)
        assert stream.delivered == len(streamed)
        if policy is not OverflowPolicy.CONFLATE:
            # Whatever survives is delivered in publish order.
            assert received == sorted(received)
            assert streamed == sorted(streamed)
            assert set(received) <= set(published)
        if policy is OverflowPolicy.NEVER_DROP:
            assert received == published
        await bus.stop()

    asyncio.run(scenario())


async def test_a_stream_is_unsubscribed_when_its_loop_breaks_or_raises() -> None:
    """Issue 13, item 10: ``async for ev in bus.stream(...)`` left by break or by an exception
    unsubscribes the stream; before, its queue kept filling (and counting drops) forever."""
    bus = make_bus()
    await bus.start()

    async def first_of(stream: EventStream) -> Any:
        async for ev in stream:
            return ev
        return None

    s = bus.stream(TICK, maxsize=4)
    bus.publish(TICK, "a")
    assert await first_of(s) == "a"
    await settle()
    for i in range(10):
        bus.publish(TICK, i)
    assert not s.active and s.depth == 0 and s.dropped == 0
    s = bus.stream(TICK, maxsize=4)
    bus.publish(TICK, "b")
    with pytest.raises(RuntimeError):
        async for _ in s:
            raise RuntimeError("consumer failed")
    await settle()
    assert not s.active and bus.stats() == []
    await bus.stop()
