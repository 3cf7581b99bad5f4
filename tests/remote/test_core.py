"""The remote consumer's sequencing and de-duplication rules (sans-I/O), with hypothesis over
random deliveries: holes (trimmed or deleted entries, overflow at the gateway), re-reads after a
rewind, gateway restarts (a new epoch)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from hean.exchange.bybit.state.private import Execution, Order
from hean.remote.core import AccountDedup, StreamTracker, Verdict


@dataclass(frozen=True)
class Entry:
    epoch: int
    g: int
    snapshot: bool
    value: int
    """Delta: added to the state; snapshot: the state."""
    truth: int
    """The gateway's state after this entry."""


def history(n_by_epoch: list[int], every: int, deltas: list[int]) -> list[Entry]:
    out: list[Entry] = []
    state = 0
    i = 0
    for e, n in enumerate(n_by_epoch, start=1):
        for g in range(1, n + 1):
            d = deltas[i % len(deltas)]
            i += 1
            state += d
            snap = g == 1 or g % every == 0
            out.append(Entry(e, g, snap, state if snap else d, state))
    return out


@settings(max_examples=300, deadline=None)
@given(
    epochs=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    every=st.integers(1, 8),
    deltas=st.lists(st.integers(-5, 5), min_size=1, max_size=10),
    drops=st.sets(st.integers(0, 150)),
    rewinds=st.lists(st.tuples(st.integers(0, 150), st.integers(1, 10)), max_size=5),
)
def test_the_state_is_exact_whenever_in_sync_and_every_hole_is_reported(
    epochs: list[int],
    every: int,
    deltas: list[int],
    drops: set[int],
    rewinds: list[tuple[int, int]],
) -> None:
    entries = history(epochs, every, deltas)
    delivered = [e for i, e in enumerate(entries) if i not in drops]
    # re-reads: a rewind re-delivers a run of entries already seen
    for at, length in sorted(rewinds, reverse=True):
        if at < len(delivered):
            delivered[at + 1 : at + 1] = delivered[max(0, at - length + 1) : at + 1]
    truth = {(e.epoch, e.g): e.truth for e in entries}
    t = StreamTracker(snapshots=True)
    state: int | None = None
    missed_while_synced = False
    expected_next: tuple[int, int] | None = None
    for e in delivered:
        was_synced = t.synced
        before = (t.epoch, t.g)
        v = t.on_entry(e.epoch, e.g, e.snapshot)
        if v is Verdict.APPLY:
            state = e.value if e.snapshot else (state or 0) + e.value
        elif v is Verdict.RESYNC:
            assert e.snapshot
            state = e.value
        elif v is Verdict.GAP:
            assert was_synced
            assert (e.epoch, e.g) != (before[0], before[1] + 1)
        if was_synced and v is Verdict.APPLY:
            assert (e.epoch, e.g) == (before[0], before[1] + 1)
        if t.synced:
            # never silently wrong: in sync means exactly the gateway's state at its position
            assert state == truth[(t.epoch, t.g)]
        if expected_next is not None and was_synced and (e.epoch, e.g) > expected_next:
            missed_while_synced = True
        expected_next = (t.epoch, t.g + 1)
    if missed_while_synced:
        assert t.gaps >= 1
    # liveness: a snapshot after the last hole puts the consumer back in sync
    last_drop = max((i for i in drops if i < len(entries)), default=-1)
    if any(e.snapshot for e in entries[last_drop + 1 :]) and entries:
        assert t.synced and state == entries[-1].truth


def test_streams_without_snapshots_count_what_is_lost_and_go_on() -> None:
    t = StreamTracker(snapshots=False)
    t.start_at(5, 10)
    assert t.on_entry(5, 11, False) is Verdict.APPLY
    assert t.on_entry(5, 14, False) is Verdict.GAP
    assert t.lost == 2 and t.gaps == 1 and t.synced
    assert t.on_entry(5, 14, False) is Verdict.DUPLICATE
    assert t.on_entry(6, 1, False) is Verdict.GAP  # a new gateway run
    assert t.on_entry(6, 2, False) is Verdict.APPLY


def test_a_hole_waits_for_a_snapshot_at_or_after_it() -> None:
    t = StreamTracker(snapshots=True)
    assert t.on_entry(1, 1, True) is Verdict.RESYNC
    assert t.on_entry(1, 2, False) is Verdict.APPLY
    assert t.on_entry(1, 5, False) is Verdict.GAP  # 3 and 4 missing
    assert not t.synced and t.floor == (1, 4)
    assert t.on_entry(1, 3, True) is Verdict.WAIT  # a snapshot before the hole cannot repair it
    assert t.on_entry(1, 6, False) is Verdict.WAIT
    assert t.on_entry(1, 7, True) is Verdict.RESYNC
    assert t.on_entry(1, 8, False) is Verdict.APPLY


def _order(oid: str, t: str, status: str, cum: str) -> Order:
    return Order(
        order_id=oid, symbol="BTCUSDT", updated_time=t, order_status=status, cum_exec_qty=cum
    )


def _exe(eid: str) -> Execution:
    return Execution(exec_id=eid, symbol="BTCUSDT", order_id="o1")


def test_account_events_are_handled_once_per_process() -> None:
    d = AccountDedup(max_ids=3)
    e1 = [_exe("x1"), _exe("x2")]
    assert not d.is_duplicate("1-1", "execution", e1)
    d.handled("1-1", "execution", e1)
    assert d.is_duplicate("1-1", "execution", e1)  # redelivered entry
    assert d.is_duplicate("9-9", "execution", [_exe("x2")])  # re-published copy: by execId
    assert not d.is_duplicate("9-9", "execution", [_exe("x2"), _exe("x3")])
    assert d.fresh("execution", [_exe("x2"), _exe("x3")])[0].exec_id == "x3"
    o = [_order("o1", "100", "New", "0")]
    d.handled("1-2", "order", o)
    assert d.is_duplicate("7-7", "order", [_order("o1", "100", "New", "0")])
    assert not d.is_duplicate("7-7", "order", [_order("o1", "101", "Filled", "1")])
    # bounded: the oldest ids are forgotten (at least once still holds)
    for i in range(3, 8):
        d.handled(f"1-{i}", "position", [])
    assert not d.seen_entry("1-1")


def test_receive_wall_time_has_the_clocks_precision() -> None:
    """As for the exchange clients (issue 13): an offset taken from ``wall_ms()`` (rounded down
    to the ms) made every remote receive time up to 1 ms early."""
    from hean.core.clock import ManualClock
    from hean.remote import RemoteHub

    clock = ManualClock(start=1000.0009)  # the wall time is ...000.9 ms: wall_ms() says ...000
    hub = RemoteHub("redis://127.0.0.1:1/0", clock=clock)  # never started: no connection
    clock.advance(0.0003)  # ...001.2 ms
    assert hub._wall(clock.monotonic()) == clock.epoch_ms + 1_000_001  # was ...000
