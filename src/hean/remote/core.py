"""The remote consumer's rules, sans-I/O: sequencing and gaps per stream, de-duplication of
account events.

:class:`StreamTracker` is fed the ``(epoch, g)`` of every entry read from one stream (its id,
see :mod:`hean.gateway.wire`) and says what to do with it:

* ``APPLY``: the next entry (``g`` = last + 1 in the same epoch), or the first snapshot.
* ``DUPLICATE``: already applied (``g`` <= last; a re-read after a rewind): ignore.
* ``WAIT``: the stream is not in sync and this entry cannot make it so (a delta, or a snapshot
  older than the hole): ignore.
* ``GAP``: entries are missing before this one (trimmed, deleted, never written, or a new
  gateway epoch). On a stream with snapshots the state is *invalid* from here until a snapshot
  at or after the hole (``floor``); a snapshot entry arriving over a hole is itself the repair
  (``RESYNC``). On a stream without snapshots (trades, klines, liquidations) the entry is
  applied and the loss counted (``lost``): there is no state to repair.

A delta is never applied across a hole, and every hole is reported: never silently.

:class:`AccountDedup` remembers, within bounds, which account events a process has handled:
executions by ``execId``, orders by ``(orderId, updatedTime, status, cumExecQty)``, anything by
its stream id; so a handler sees each at most once per process.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["AccountDedup", "StreamTracker", "Verdict"]


class Verdict(enum.IntEnum):
    APPLY = 0
    DUPLICATE = 1
    WAIT = 2
    GAP = 3
    """Entries missing: the state is invalid now (streams with snapshots) or the loss is counted
    and the entry applied (streams without)."""
    RESYNC = 4
    """A snapshot entry that (re)establishes the state after a hole or at the start."""


@dataclass(slots=True)
class StreamTracker:
    """One stream's position and integrity as seen by one consumer."""

    snapshots: bool
    """The stream has snapshot entries (tickers, books)."""
    epoch: int = 0
    g: int = 0
    synced: bool = False
    floor: tuple[int, int] = (0, 0)
    """While not synced: the oldest snapshot ``(epoch, g)`` that repairs the state."""
    applied: int = 0
    duplicates: int = 0
    waited: int = 0
    gaps: int = 0
    lost: int = 0
    """Entries known missing (exact within an epoch; a new epoch counts as one hole)."""
    resyncs: int = 0
    last_gap: tuple[tuple[int, int], tuple[int, int]] | None = None
    """``(expected, got)`` of the last hole."""

    def start_at(self, epoch: int, g: int) -> None:
        """Begin after entry ``(epoch, g)`` with nothing to repair (streams without snapshots:
        a joiner starts at the newest entry)."""
        self.epoch, self.g = epoch, g
        self.synced = True

    def position(self) -> tuple[int, int]:
        return self.epoch, self.g

    def on_entry(self, epoch: int, g: int, snapshot: bool) -> Verdict:
        if self.synced:
            if epoch == self.epoch:
                if g <= self.g:
                    self.duplicates += 1
                    return Verdict.DUPLICATE
                if g == self.g + 1:
                    self.g = g
                    self.applied += 1
                    return Verdict.APPLY
                missing = g - self.g - 1
            elif epoch > self.epoch:
                missing = 1  # a new gateway run: what the old one wrote last is unknown
            else:
                self.duplicates += 1  # an older run's entry (a rewind past the epoch change)
                return Verdict.DUPLICATE
            self.gaps += 1
            self.lost += missing
            self.last_gap = ((self.epoch, self.g + 1), (epoch, g))
            if not self.snapshots or snapshot:
                self.epoch, self.g = epoch, g
                self.applied += 1
                if snapshot and self.snapshots:
                    self.resyncs += 1
                    return Verdict.RESYNC
                return Verdict.GAP
            self.synced = False
            self.floor = (epoch, g - 1) if g > 1 else (epoch, 0)
            return Verdict.GAP
        # not in sync: only a snapshot at or after the floor helps
        if self.snapshots and not snapshot:
            self.waited += 1
            return Verdict.WAIT
        if (epoch, g) < self.floor:
            self.waited += 1
            return Verdict.WAIT
        self.epoch, self.g = epoch, g
        self.synced = True
        self.applied += 1
        if self.snapshots:
            self.resyncs += 1
        return Verdict.RESYNC

    def invalidate(self, epoch: int, g: int) -> None:
        """Out of sync from here (e.g. the gateway said its own book is invalid): wait for a
        snapshot after ``(epoch, g)``."""
        self.synced = False
        if (epoch, g) > self.floor:
            self.floor = (epoch, g)
        if (epoch, g) > (self.epoch, self.g):
            self.epoch, self.g = epoch, g


_TERMINAL_KEYS = ("order_id", "updated_time", "order_status", "cum_exec_qty")


class AccountDedup:
    """Bounded memory of the account events handled in this process.

    Args:
        max_ids: how many keys of each kind are kept (FIFO); beyond that an old event redelivered
            is handled again (at least once still holds).
    """

    def __init__(self, max_ids: int = 50_000) -> None:
        if max_ids < 1:
            raise ValueError(f"max_ids must be >= 1, got {max_ids}")
        self.max_ids = max_ids
        self._entries: OrderedDict[str, None] = OrderedDict()
        self._execs: OrderedDict[str, None] = OrderedDict()
        self._orders: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self.duplicates = 0

    def _remember(self, table: OrderedDict[Any, None], key: Any) -> None:
        table[key] = None
        if len(table) > self.max_ids:
            table.popitem(last=False)

    def seen_entry(self, entry_id: str) -> bool:
        return entry_id in self._entries

    def fresh(self, kind: str, items: list[Any]) -> list[Any]:
        """The items of an event not handled yet (executions by ``exec_id``, orders by version;
        other kinds pass: their entry id de-duplicates them)."""
        if kind == "execution" or kind == "fast":
            return [x for x in items if x.exec_id not in self._execs]
        if kind == "order":
            return [x for x in items if _order_key(x) not in self._orders]
        return items

    def is_duplicate(self, entry_id: str, kind: str, items: list[Any]) -> bool:
        """Whether this whole event was handled already (by id, or every item by content)."""
        if entry_id in self._entries:
            self.duplicates += 1
            return True
        if items and (kind in ("execution", "fast", "order")) and not self.fresh(kind, items):
            self.duplicates += 1
            return True
        return False

    def handled(self, entry_id: str, kind: str, items: list[Any]) -> None:
        """Record the event as handled (after its handler returned)."""
        self._remember(self._entries, entry_id)
        if kind == "execution" or kind == "fast":
            for x in items:
                self._remember(self._execs, x.exec_id)
        elif kind == "order":
            for x in items:
                self._remember(self._orders, _order_key(x))


def _order_key(order: Any) -> tuple[Any, ...]:
    return tuple(getattr(order, k, None) for k in _TERMINAL_KEYS)
