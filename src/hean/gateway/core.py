"""The gateway's publishing rules, sans-I/O: sequence numbers, snapshot cadence, the bounded
buffer of entries not yet written, and what was lost.

* Every stream has its own sequence ``g`` (1, 2, 3 ...); the entry id is ``{epoch}-{g}``.
* Ticker and book streams start with a snapshot entry, and every ``snapshot_every``-th entry is
  a snapshot too (the message replaced by the whole state after it), as is the first entry after
  anything of that stream was lost, and one written on demand (``want_snapshot``) after a Redis
  (re)connect.
* Entries wait in one buffer, at most ``max_pending``. Past it the *oldest* entry is dropped and
  counted (``overflows``, per stream ``lost``) and its stream's next entry is a snapshot: the
  consumer sees the hole in ``g``, and the snapshot that follows repairs it. Nothing grows without
  bound while Redis is away.
* The shell takes a batch, writes it, and reports ``confirm`` (written) or ``fail`` (not
  written: the batch goes back to the front of the buffer, within the same bound).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

__all__ = ["Outbox", "Pending", "StreamSeq"]


@dataclass(slots=True, eq=False)
class StreamSeq:
    """One stream's publishing state."""

    key: str
    kind: str
    """``tick``, ``book``, ``trade``, ``kline``, ``liq``, ``acct`` or ``ctl``."""
    maxlen: int
    snap_key: str | None = None
    """Where its latest snapshot is kept (ticker and book streams only)."""
    g: int = 0
    since_snap: int = 0
    need_snap: bool = True
    lost: int = 0
    """Entries dropped before they could be written."""
    written: int = 0
    snapshots: int = 0
    last_valid: bool = True
    head: bytes = b""
    """What the shell sends before each entry's id (its packed ``XADD key MAXLEN ~ N``)."""
    id_head: bytes = b""
    """The shell's packed start of ids ``{epoch}-{g}`` for ``id_low <= g < id_high``."""
    id_low: int = 0
    id_high: int = 0

    @property
    def snapshots_on(self) -> bool:
        return self.snap_key is not None


class Pending(msgspec.Struct, gc=False):
    """One entry waiting to be written (a struct the garbage collector never scans: one is made
    per published event)."""

    stream: StreamSeq
    g: int
    """Sequence number in the stream; the entry id is ``{epoch}-{g}`` (:meth:`Outbox.entry_id`,
    formatted when written, so entries queued before the first connect take the epoch then
    chosen)."""
    payload: bytes
    snapshot: bool
    at: float
    """Gateway receipt time of the event (monotonic), for the publish lag."""


@dataclass(slots=True)
class Outbox:
    epoch: int
    snapshot_every: int = 100
    max_pending: int = 100_000
    streams: dict[str, StreamSeq] = field(default_factory=dict)
    pending: deque[Pending] = field(default_factory=deque)
    in_flight: int = 0
    overflows: int = 0
    written: int = 0
    batches: int = 0
    failures: int = 0
    last_lag: float | None = None
    max_lag: float = 0.0

    def __post_init__(self) -> None:
        if self.snapshot_every < 1:
            raise ValueError(f"snapshot_every must be >= 1, got {self.snapshot_every}")
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {self.max_pending}")

    def stream(self, key: str, kind: str, maxlen: int, snap_key: str | None = None) -> StreamSeq:
        s = self.streams.get(key)
        if s is None:
            s = self.streams[key] = StreamSeq(key, kind, maxlen, snap_key)
        return s

    def due_snapshot(self, s: StreamSeq) -> bool:
        """Whether ``s``'s next entry must be a snapshot."""
        return s.snap_key is not None and (s.need_snap or s.since_snap + 1 >= self.snapshot_every)

    def want_snapshot(self, s: StreamSeq) -> None:
        if s.snap_key is not None:
            s.need_snap = True

    def add(self, s: StreamSeq, payload: bytes, snapshot: bool, at: float) -> int:
        """Queue the next entry of ``s``; returns its sequence number ``g``."""
        g = s.g = s.g + 1
        if snapshot:
            s.since_snap = 0
            s.need_snap = False
        else:
            s.since_snap += 1
        pending = self.pending
        pending.append(Pending(s, g, payload, snapshot, at))
        if len(pending) + self.in_flight > self.max_pending:
            self._drop_oldest()
        return g

    def entry_id(self, p: Pending) -> str:
        """The Redis entry id of ``p``: ``{epoch}-{g}``."""
        return f"{self.epoch}-{p.g}"

    def _drop_oldest(self) -> None:
        if not self.pending:
            return
        lost = self.pending.popleft()
        self.overflows += 1
        lost.stream.lost += 1
        if lost.stream.snap_key is not None:
            lost.stream.need_snap = True

    def take(self, n: int) -> list[Pending]:
        """Up to ``n`` entries to write now (they count against the bound until settled)."""
        pending = self.pending
        if len(pending) <= n:
            batch = list(pending)
            pending.clear()
        else:
            pop = pending.popleft
            batch = [pop() for _ in range(n)]
        self.in_flight += len(batch)
        return batch

    def confirm(self, batch: list[Pending], now: float) -> None:
        self.in_flight -= len(batch)
        self.written += len(batch)
        self.batches += 1
        for p in batch:
            s = p.stream
            s.written += 1
            if p.snapshot:
                s.snapshots += 1
        if batch:
            lag = now - batch[0].at
            self.last_lag = lag
            if lag > self.max_lag:
                self.max_lag = lag

    def reject(self, p: Pending) -> None:
        """Redis refused this one entry (e.g. an id not above the stream's last): it is lost."""
        p.stream.lost += 1
        if p.stream.snap_key is not None:
            p.stream.need_snap = True

    def fail(self, batch: list[Pending]) -> None:
        """The batch was not written: back to the front, oldest dropped past the bound."""
        self.in_flight -= len(batch)
        self.failures += 1
        self.pending.extendleft(reversed(batch))
        while len(self.pending) + self.in_flight > self.max_pending:
            self._drop_oldest()

    def __iter__(self) -> Iterator[StreamSeq]:
        return iter(self.streams.values())

    @property
    def depth(self) -> int:
        return len(self.pending) + self.in_flight

    @property
    def lost(self) -> int:
        return sum(s.lost for s in self.streams.values())
