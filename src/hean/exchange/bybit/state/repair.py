"""Repair schedule of invalid topics: bounded, rate-limited resubscribes until each is valid.

Rule held here: every topic is either valid or being repaired, forever. A topic that turns
invalid (an order book with a ``u`` gap, a delta before its snapshot ...) is resubscribed to get
a fresh snapshot. The snapshot can be lost (the ack arrives, the snapshot never does, the deltas
keep coming), so a resubscribe that has not made the topic valid within ``timeout`` is sent
again, and again, with the wait doubling up to ``max_timeout``, until a snapshot arrives. Two
resubscribes of one topic are never closer than ``min_interval``.

Sans-I/O: the owner reports what happened (:meth:`RepairSchedule.invalid`,
:meth:`RepairSchedule.valid`) with ``now`` and asks which resubscribes are due
(:meth:`RepairSchedule.due`, when :meth:`RepairSchedule.next_deadline` is reached).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Repair", "RepairSchedule"]


@dataclass(slots=True)
class Repair:
    """One topic under repair."""

    since: float
    """When the topic turned invalid."""
    due_at: float
    """When the next resubscribe goes out."""
    attempts: int = 0
    """Resubscribes sent for this repair."""
    reason: str = ""


class RepairSchedule:
    """Resubscribe deadlines of the invalid topics of one connection.

    Args:
        min_interval: minimum seconds between two resubscribes of one topic.
        timeout: seconds a resubscribe may take to make the topic valid before it is sent
            again (the first wait; it doubles with each further attempt).
        max_timeout: upper bound of that (doubling) wait.
    """

    __slots__ = ("_last_sent", "max_timeout", "min_interval", "repairs", "sent", "timeout")

    def __init__(self, min_interval: float, timeout: float, max_timeout: float) -> None:
        if not min_interval >= 0:
            raise ValueError(f"min_interval must be >= 0, got {min_interval!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        if not max_timeout >= timeout:
            raise ValueError(f"max_timeout ({max_timeout!r}) must be >= timeout ({timeout!r})")
        self.min_interval = min_interval
        self.timeout = timeout
        self.max_timeout = max_timeout
        self.repairs: dict[str, Repair] = {}
        """Topics under repair."""
        self._last_sent: dict[str, float] = {}
        self.sent = 0
        """Resubscribes asked for (cumulative)."""

    def invalid(self, topic: str, reason: str, now: float) -> bool:
        """``topic`` is invalid. Returns whether a resubscribe should be sent now (it is then
        counted as sent); otherwise one is already scheduled (see :meth:`next_deadline`)."""
        repair = self.repairs.get(topic)
        if repair is not None:
            return False
        last = self._last_sent.get(topic)
        due = now if last is None else max(now, last + self.min_interval)
        repair = self.repairs[topic] = Repair(since=now, due_at=due, reason=reason)
        if due > now:
            return False
        self._sent(topic, repair, now)
        return True

    def valid(self, topic: str) -> Repair | None:
        """``topic`` is valid again (a snapshot arrived): its repair ends. Returns it."""
        return self.repairs.pop(topic, None)

    def forget(self, topic: str) -> None:
        """``topic`` is no longer wanted."""
        self.repairs.pop(topic, None)
        self._last_sent.pop(topic, None)

    def clear(self) -> None:
        """A fresh connection: every topic is subscribed anew (and judged anew)."""
        self.repairs.clear()
        self._last_sent.clear()

    def next_deadline(self) -> float | None:
        """When the next resubscribe is due (``None`` when nothing is under repair)."""
        if not self.repairs:
            return None
        return min(r.due_at for r in self.repairs.values())

    def due(self, now: float) -> list[tuple[str, Repair]]:
        """The topics to resubscribe now (each counted as sent and rescheduled)."""
        out: list[tuple[str, Repair]] = []
        for topic, repair in self.repairs.items():
            if repair.due_at <= now:
                self._sent(topic, repair, now)
                out.append((topic, repair))
        return out

    def stuck_for(self, now: float) -> float:
        """Seconds the longest repair under way has lasted (0 when none)."""
        if not self.repairs:
            return 0.0
        return now - min(r.since for r in self.repairs.values())

    def _sent(self, topic: str, repair: Repair, now: float) -> None:
        wait = min(self.max_timeout, self.timeout * 2.0 ** min(repair.attempts, 32))
        repair.attempts += 1
        repair.due_at = now + max(wait, self.min_interval)
        self._last_sent[topic] = now
        self.sent += 1
