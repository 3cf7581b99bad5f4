"""The gateway's publishing rules (sans-I/O): sequence, snapshot cadence, bounded buffer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hean.gateway.core import Outbox


def test_ids_are_epoch_and_consecutive_sequence_and_snapshots_follow_the_cadence() -> None:
    out = Outbox(epoch=1700, snapshot_every=3)
    s = out.stream("k", "tick", 100, snap_key="snap")
    snaps = []
    for _ in range(7):
        snap = out.due_snapshot(s)
        snaps.append(snap)
        out.add(s, b"x", snap, 0.0)
    assert [out.entry_id(p) for p in out.pending] == [f"1700-{g}" for g in range(1, 8)]
    # the first entry is a snapshot, then every third
    assert snaps == [True, False, False, True, False, False, True]


def test_streams_without_snapshots_never_ask_for_one() -> None:
    out = Outbox(epoch=1, snapshot_every=1)
    s = out.stream("t", "trade", 100)
    assert not out.due_snapshot(s)


def test_overflow_drops_the_oldest_counts_it_and_forces_a_snapshot() -> None:
    out = Outbox(epoch=1, snapshot_every=1000, max_pending=3)
    a = out.stream("a", "book", 100, snap_key="sa")
    b = out.stream("b", "trade", 100)
    out.add(a, b"a1", out.due_snapshot(a), 0.0)  # snapshot
    out.add(a, b"a2", out.due_snapshot(a), 0.0)
    out.add(b, b"b1", False, 0.0)
    assert not out.due_snapshot(a)
    out.add(b, b"b2", False, 0.0)  # a1 dropped
    assert out.depth == 3 and out.overflows == 1 and a.lost == 1
    assert out.due_snapshot(a)  # the consumer will see the hole; the next entry repairs it
    assert [p.payload for p in out.pending] == [b"a2", b"b1", b"b2"]


def test_a_failed_batch_goes_back_in_front_within_the_bound() -> None:
    out = Outbox(epoch=1, snapshot_every=1000, max_pending=4)
    s = out.stream("t", "trade", 100)
    for i in range(3):
        out.add(s, b"%d" % i, False, 0.0)
    batch = out.take(2)
    assert out.depth == 3  # in flight still counts
    out.add(s, b"3", False, 0.0)
    out.add(s, b"4", False, 0.0)  # over the bound: the oldest still queued goes
    assert out.depth == 4 and out.overflows == 1
    out.fail(batch)
    assert [p.payload for p in out.pending] == [b"0", b"1", b"3", b"4"]
    batch = out.take(10)
    out.confirm(batch, 1.0)
    assert out.written == 4 and out.depth == 0 and s.written == 4


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(0, 2)),
            st.tuples(st.just("take"), st.integers(1, 5)),
            st.tuples(st.just("settle"), st.booleans()),
        ),
        max_size=200,
    ),
    bound=st.integers(1, 20),
)
def test_never_more_than_the_bound_and_every_entry_accounted(
    ops: list[tuple[str, int]], bound: int
) -> None:
    out = Outbox(epoch=1, snapshot_every=4, max_pending=bound)
    streams = [
        out.stream("a", "book", 100, "sa"),
        out.stream("b", "tick", 100, "sb"),
        out.stream("c", "trade", 100),
    ]
    added = 0
    flying: list[list[object]] = []
    for op, arg in ops:
        if op == "add":
            s = streams[arg]
            out.add(s, b"", out.due_snapshot(s), 0.0)
            added += 1
        elif op == "take":
            if not flying:  # one writer: one batch in flight at a time
                flying.append(out.take(arg))  # type: ignore[arg-type]
        elif flying:
            batch = flying.pop(0)
            if arg:
                out.confirm(batch, 0.0)  # type: ignore[arg-type]
            else:
                out.fail(batch)  # type: ignore[arg-type]
        assert out.depth <= bound
        # every entry is written, waiting, in flight, or counted lost
        assert added == out.written + out.depth + out.lost
        # sequence numbers per stream are consecutive and never reused
        for s in streams:
            gs = [p.g for p in out.pending if p.stream is s]
            assert gs == sorted(set(gs))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Outbox(epoch=1, snapshot_every=0)
    with pytest.raises(ValueError):
        Outbox(epoch=1, max_pending=0)
