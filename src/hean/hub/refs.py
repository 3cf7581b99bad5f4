"""Reference-counted topics and connection sharding, sans-I/O.

:class:`TopicRefs` answers "which topics must be on the wire": a topic is subscribed while at
least one owner (a hub consumer) holds it, and for ``linger`` seconds after the last one let go
(so a consumer that drops a topic and takes it back a moment later causes no unsubscribe /
subscribe churn). The first holder's request subscribes; the last holder's release unsubscribes.

:class:`ShardPlanner` answers "on which connection": topics are placed first-fit on connections
whose ``args`` budget (Bybit: 21,000 characters per public connection, protocol.md §3.4) and
optional topic-count cap (option: 2,000 topics) still have room; when none has, a new connection
is planned. A connection whose last topic is removed disappears from the plan.

Neither reads a clock: ``now`` (monotonic seconds) is passed in.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Acquired", "Released", "ShardPlanner", "TopicRefs"]

OwnerT = TypeVar("OwnerT", bound=Hashable)


@dataclass(slots=True)
class Acquired:
    """What :meth:`TopicRefs.acquire` changed."""

    held: list[str] = field(default_factory=list)
    """Topics the owner did not hold before (it does now)."""
    subscribe: list[str] = field(default_factory=list)
    """Topics that were not on the wire and must now be subscribed."""
    shared: list[str] = field(default_factory=list)
    """Newly held topics that were already on the wire (held by others, or lingering): their
    current state can be replayed to this owner."""


@dataclass(slots=True)
class Released:
    """What :meth:`TopicRefs.release` changed."""

    dropped: list[str] = field(default_factory=list)
    """Topics the owner held and no longer holds."""
    unsubscribe: list[str] = field(default_factory=list)
    """Topics with no holder left that must be unsubscribed now (``linger == 0``)."""


class TopicRefs(Generic[OwnerT]):
    """Which owners hold which topics; which topics must be subscribed.

    Args:
        linger: seconds a topic stays subscribed after its last holder let go (``0``: the last
            release unsubscribes at once). A lingering topic taken again is simply kept.
    """

    __slots__ = ("_holders", "_lingering", "_owned", "linger")

    def __init__(self, linger: float = 0.0) -> None:
        if not linger >= 0:
            raise ValueError(f"linger must be >= 0, got {linger!r}")
        self.linger = float(linger)
        self._holders: dict[str, set[OwnerT]] = {}
        self._owned: dict[OwnerT, set[str]] = {}
        self._lingering: dict[str, float] = {}  # topic -> unsubscribe due (insertion = time order)

    # -- queries --------------------------------------------------------------------------------

    def count(self, topic: str) -> int:
        """How many owners hold ``topic``."""
        holders = self._holders.get(topic)
        return len(holders) if holders else 0

    def holders(self, topic: str) -> frozenset[OwnerT]:
        return frozenset(self._holders.get(topic, ()))

    def topics_of(self, owner: OwnerT) -> frozenset[str]:
        return frozenset(self._owned.get(owner, ()))

    def owners(self) -> list[OwnerT]:
        return list(self._owned)

    def wanted(self) -> set[str]:
        """Every topic that must be on the wire (held, or lingering)."""
        return set(self._holders) | set(self._lingering)

    def lingering(self) -> dict[str, float]:
        """Topics with no holder that are kept until the time given."""
        return dict(self._lingering)

    def is_wanted(self, topic: str) -> bool:
        return topic in self._holders or topic in self._lingering

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has something to do."""
        if not self._lingering:
            return None
        return min(self._lingering.values())

    # -- changes --------------------------------------------------------------------------------

    def acquire(self, owner: OwnerT, topics: Iterable[str], now: float) -> Acquired:
        """``owner`` wants ``topics`` (idempotent per owner and topic)."""
        out = Acquired()
        owned = self._owned.get(owner)
        if owned is None:
            owned = self._owned[owner] = set()
        for topic in topics:
            if topic in owned:
                continue
            owned.add(topic)
            out.held.append(topic)
            holders = self._holders.get(topic)
            if holders is None:
                holders = self._holders[topic] = set()
                if self._lingering.pop(topic, None) is not None:
                    out.shared.append(topic)
                else:
                    out.subscribe.append(topic)
            else:
                out.shared.append(topic)
            holders.add(owner)
        if not owned:
            del self._owned[owner]
        return out

    def release(self, owner: OwnerT, topics: Iterable[str], now: float) -> Released:
        """``owner`` no longer wants ``topics`` (topics it does not hold are ignored)."""
        out = Released()
        owned = self._owned.get(owner)
        if not owned:
            return out
        for topic in topics:
            if topic not in owned:
                continue
            owned.discard(topic)
            out.dropped.append(topic)
            holders = self._holders[topic]
            holders.discard(owner)
            if not holders:
                del self._holders[topic]
                if self.linger > 0:
                    self._lingering[topic] = now + self.linger
                else:
                    out.unsubscribe.append(topic)
        if not owned:
            del self._owned[owner]
        return out

    def release_all(self, owner: OwnerT, now: float) -> Released:
        """``owner`` leaves: release everything it holds."""
        return self.release(owner, sorted(self._owned.get(owner, ())), now)

    def expire(self, now: float) -> list[str]:
        """Lingering topics whose time is up: they must be unsubscribed now."""
        due = [t for t, at in self._lingering.items() if at <= now]
        for topic in due:
            del self._lingering[topic]
        return due

    def forget(self, topic: str) -> list[OwnerT]:
        """Drop ``topic`` for every holder (e.g. it can never be served); returns them."""
        self._lingering.pop(topic, None)
        holders = self._holders.pop(topic, set())
        for owner in holders:
            owned = self._owned.get(owner)
            if owned is not None:
                owned.discard(topic)
                if not owned:
                    del self._owned[owner]
        return list(holders)


class ShardPlanner:
    """Places topics on connections within an ``args`` budget (first fit). Sans-I/O.

    Args:
        budget: total characters of all topics on one connection (Bybit public: 21,000).
        max_topics: topics per connection (Bybit option: 2,000); ``None`` for no cap.

    Shard ids are small integers handed out in increasing order and never reused while the
    planner lives (a closed connection's id is not given to a new one).
    """

    __slots__ = ("_chars", "_next", "_shard_of", "_topics", "budget", "max_topics")

    def __init__(self, budget: int = 21_000, max_topics: int | None = None) -> None:
        if budget < 1:
            raise ValueError(f"budget must be >= 1 character, got {budget!r}")
        if max_topics is not None and max_topics < 1:
            raise ValueError(f"max_topics must be >= 1 or None, got {max_topics!r}")
        self.budget = int(budget)
        self.max_topics = max_topics
        self._topics: dict[int, set[str]] = {}
        self._chars: dict[int, int] = {}
        self._shard_of: dict[str, int] = {}
        self._next = 0

    @staticmethod
    def cost(topic: str) -> int:
        """Characters ``topic`` uses of a connection's ``args`` budget."""
        return len(topic)

    def shards(self) -> list[int]:
        return sorted(self._topics)

    def shard_of(self, topic: str) -> int | None:
        return self._shard_of.get(topic)

    def topics(self, shard: int) -> frozenset[str]:
        return frozenset(self._topics.get(shard, ()))

    def chars(self, shard: int) -> int:
        return self._chars.get(shard, 0)

    def fits(self, shard: int, topic: str) -> bool:
        topics = self._topics.get(shard)
        if topics is None:
            return False
        if self.max_topics is not None and len(topics) >= self.max_topics:
            return False
        return self._chars[shard] + self.cost(topic) <= self.budget

    def place(self, topic: str) -> tuple[int, bool]:
        """Put ``topic`` on a connection; returns ``(shard, created)``.

        A topic already placed stays where it is.

        Raises:
            ValueError: the topic alone is longer than the budget.
        """
        shard = self._shard_of.get(topic)
        if shard is not None:
            return shard, False
        cost = self.cost(topic)
        if cost > self.budget:
            raise ValueError(
                f"topic {topic[:60]!r} is {cost} characters: more than a connection's "
                f"args budget of {self.budget}"
            )
        created = False
        for candidate in sorted(self._topics):
            if self.fits(candidate, topic):
                shard = candidate
                break
        else:
            shard = self._next
            self._next += 1
            self._topics[shard] = set()
            self._chars[shard] = 0
            created = True
        self._topics[shard].add(topic)
        self._chars[shard] += cost
        self._shard_of[topic] = shard
        return shard, created

    def remove(self, topic: str) -> tuple[int | None, bool]:
        """Take ``topic`` off its connection; returns ``(shard, now_empty)``.

        An emptied shard is forgotten (its connection should be closed).
        """
        shard = self._shard_of.pop(topic, None)
        if shard is None:
            return None, False
        topics = self._topics[shard]
        topics.discard(topic)
        self._chars[shard] -= self.cost(topic)
        if topics:
            return shard, False
        del self._topics[shard]
        del self._chars[shard]
        return shard, True
