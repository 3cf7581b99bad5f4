"""The invariants a chaos storm must hold, checked continuously and at the end (sans-I/O).

:class:`InvariantChecker` is fed what the client published (order-book events, executions,
trade-request outcomes) with ``now`` and records a :class:`Violation` for each broken rule:

* ``silent_gap``: a *valid* order-book delta whose ``u`` is not the previous one + 1 (an update
  lost while connected and not noticed). Invalid books are allowed: they are visibly repaired.
* ``stuck``: a topic invalid for longer than ``stuck_bound`` seconds (while its connection was
  live), or still invalid at the end without a repair under way. Invalid: an order book marked
  so, or a linear ticker whose deltas arrive without its snapshot (:meth:`on_ticker`).
* ``lost`` / ``invented``: a venue connection delivered a different number of data frames per
  topic than reached the bus (:meth:`InvariantChecker.check_delivery`).
* ``state``: the final state differs from the venue's truth (:meth:`check_equal`).
* ``rate``: connection attempts denser than the policy allows (:meth:`check_attempts`).
* ``lagging``: a link kept while it delivers data later than the heartbeat allows (a slow drip
  the client neither noticed nor replaced; :meth:`check_lag`).
* ``drops``: a slow consumer's counters do not add up exactly (:meth:`check_drops`).
* ``duplicate`` / ``missing``: a private event delivered twice, or never (:meth:`on_execution`,
  :meth:`check_executions`).
* ``pending``: a trade request left without an answer or a clear error (:meth:`check_pending`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["InvariantChecker", "TopicTrack", "Violation"]


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    subject: str
    detail: str
    at: float

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject}: {self.detail} (t={self.at:.3f})"


@dataclass(slots=True)
class TopicTrack:
    """What the checker knows of one order-book or ticker topic."""

    last_u: int | None = None
    valid: bool = False
    invalid_since: float | None = None
    longest_invalid: float = 0.0
    events: int = 0
    repairs: int = 0


@dataclass(slots=True)
class InvariantChecker:
    """Collects violations (see the module docstring).

    Args:
        stuck_bound: longest a topic may stay invalid while its connection is live (seconds).
    """

    stuck_bound: float
    violations: list[Violation] = field(default_factory=list)
    topics: dict[str, TopicTrack] = field(default_factory=dict)
    executions: Counter[str] = field(default_factory=Counter)
    live: bool = True
    """Whether the connection carrying the books is live (invalid time counts only then)."""
    _lagging: set[str] = field(default_factory=set)

    def fail(self, rule: str, subject: str, detail: str, now: float) -> None:
        self.violations.append(Violation(rule, subject, detail, now))

    @property
    def ok(self) -> bool:
        return not self.violations

    # -- continuous ---------------------------------------------------------------------------

    def on_book(self, topic: str, u: int, snapshot: bool, valid: bool, now: float) -> None:
        """One order-book event as published."""
        t = self.topics.get(topic)
        if t is None:
            t = self.topics[topic] = TopicTrack()
        t.events += 1
        if valid and not snapshot and t.valid and t.last_u is not None and u != t.last_u + 1:
            self.fail("silent_gap", topic, f"valid delta u={u} after u={t.last_u}", now)
        if valid:
            t.last_u = u
        self._validity(topic, t, valid, now)

    def on_ticker(self, topic: str, complete: bool, now: float) -> None:
        """One ticker event as published; ``complete``: a snapshot has been applied since the
        last (re)subscribe (a ticker merging deltas without one is invalid until it comes)."""
        t = self.topics.get(topic)
        if t is None:
            t = self.topics[topic] = TopicTrack()
        t.events += 1
        self._validity(topic, t, complete, now)

    def _validity(self, topic: str, t: TopicTrack, valid: bool, now: float) -> None:
        if valid:
            if not t.valid and t.invalid_since is not None:
                self._invalid_for(topic, t, now)
                t.invalid_since = None
                t.repairs += 1
            t.valid = True
        else:
            if t.valid or t.invalid_since is None:
                t.invalid_since = now
            t.valid = False
            self.check_stuck(now, topics=(topic,))

    def connection(self, live: bool, now: float) -> None:
        """The books' connection went live (True) or down (False): invalid time restarts."""
        self.live = live
        for t in self.topics.values():
            if not t.valid:
                t.invalid_since = now if live else None
            if not live:
                t.valid = False

    def check_stuck(self, now: float, topics: Iterable[str] | None = None) -> None:
        """Every invalid topic has been invalid (while live) for at most ``stuck_bound``."""
        if not self.live:
            return
        names = self.topics.keys() if topics is None else topics
        for name in list(names):
            t = self.topics[name]
            since = t.invalid_since
            if not t.valid and since is not None and now - since > self.stuck_bound:
                self._invalid_for(name, t, now)
                t.invalid_since = now  # report once per bound, not per event

    def _invalid_for(self, topic: str, t: TopicTrack, now: float) -> None:
        assert t.invalid_since is not None
        lasted = now - t.invalid_since
        t.longest_invalid = max(t.longest_invalid, lasted)
        if lasted > self.stuck_bound:
            self.fail("stuck", topic, f"invalid for {lasted:.3f}s > {self.stuck_bound:g}s", now)

    def on_execution(self, exec_id: str, now: float) -> None:
        """A private execution reached the bus."""
        self.executions[exec_id] += 1
        if self.executions[exec_id] == 2:
            self.fail("duplicate", exec_id, "execution delivered twice", now)

    # -- at checkpoints / the end -------------------------------------------------------------

    def check_repairing(self, invalid: Iterable[str], repairing: Iterable[str], now: float) -> None:
        """Every invalid topic is being repaired (a resubscribe scheduled)."""
        under_way = set(repairing)
        for topic in invalid:
            if topic not in under_way:
                self.fail("stuck", topic, "invalid and no repair under way", now)

    def check_delivery(
        self, sent: Mapping[str, int], received: Mapping[str, int], subject: str, now: float
    ) -> None:
        """The venue's data frames per topic on one connection == those that reached the bus."""
        for topic in sorted(set(sent) | set(received)):
            s, r = sent.get(topic, 0), received.get(topic, 0)
            if r < s:
                self.fail("lost", f"{subject} {topic}", f"venue sent {s}, bus got {r}", now)
            elif r > s:
                self.fail("invented", f"{subject} {topic}", f"venue sent {s}, bus got {r}", now)

    def check_lag(self, subject: str, delay: float, bound: float, now: float) -> None:
        """A live link is at most ``bound`` seconds behind the venue (reported once per
        subject): a link that falls further behind must have been replaced by then."""
        if delay > bound and subject not in self._lagging:
            self._lagging.add(subject)
            self.fail("lagging", subject, f"{delay:.3f}s behind the venue > {bound:g}s", now)

    def check_equal(self, subject: str, mine: object, truth: object, now: float) -> None:
        if mine != truth:
            self.fail("state", subject, f"{_short(mine)} != truth {_short(truth)}", now)

    def check_attempts(
        self, times: Iterable[float], rate: float, burst: int, now: float, slack: float = 0.0
    ) -> None:
        """No stretch of connection attempts is denser than a token bucket (rate, burst)."""
        ts = sorted(times)
        for i in range(len(ts)):
            for j in range(i + burst, len(ts)):
                # j - i + 1 attempts in [ts[i], ts[j]]: the bucket allows burst + rate * span
                span = ts[j] - ts[i] + slack
                if j - i + 1 > burst + rate * span + 1e-9:
                    self.fail(
                        "rate", "connect", f"{j - i + 1} attempts within {ts[j] - ts[i]:.3f}s", now
                    )
                    return
                if rate * span > len(ts):
                    break

    def check_drops(
        self, subject: str, published: int, delivered: int, dropped: int, depth: int, now: float
    ) -> None:
        """A consumer's queue accounts for every event: delivered + dropped + queued."""
        if published != delivered + dropped + depth:
            self.fail(
                "drops",
                subject,
                f"published {published} != delivered {delivered} + dropped {dropped} "
                f"+ queued {depth}",
                now,
            )

    def check_executions(self, truth: Iterable[str], now: float) -> None:
        """Every execution of the venue reached the bus exactly once."""
        for exec_id in truth:
            n = self.executions.get(exec_id, 0)
            if n == 0:
                self.fail("missing", exec_id, "execution never delivered", now)

    def check_pending(self, subject: str, pending: int, now: float) -> None:
        if pending:
            self.fail("pending", subject, f"{pending} request(s) without an answer or error", now)

    def summary(self) -> dict[str, int]:
        return dict(Counter(v.rule for v in self.violations))


def _short(value: object, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
