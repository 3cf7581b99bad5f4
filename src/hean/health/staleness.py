"""Staleness detection per topic and per ticker field, sans-I/O.

A socket can look alive (pongs arrive on time) while one symbol's data has stopped. The
:class:`StalenessMonitor` watches every subscribed topic on the monotonic clock and escalates, once
per *episode*:

1. **stale**: no update for longer than the topic's threshold. One ``[ANOMALY]`` line is logged
   (not one per check) and the topic is resubscribed, which asks the exchange for a fresh
   snapshot of that topic alone;
2. **recycled**: still stale ``recycle_after`` seconds later: the connection is dropped and
   reopened (every topic is resubscribed on the new connection);
3. **down**: still stale ``down_after`` seconds after that: the feed is marked down (logged at
   ERROR; no further action, the topic keeps being watched).

The first update after any of these ends the episode and logs a ``[RECOVERED]`` line.

Thresholds are per topic kind (tickers arrive every ~100 ms, klines every few seconds), per symbol
and per topic (:class:`StalenessPolicy`). Ticker fields are judged too: a ``markPrice`` that has
not changed for ``fields["markPrice"]`` seconds while ``lastPrice`` moves is stale (logged once,
topic resubscribed once, reported until the field changes again).

The monitor reads no clock and does no I/O. It is fed observations with ``now`` and returns
:data:`StaleAction` values for its driver (:class:`hean.health.HealthMonitor`) to carry out.
Age and stage never lie about a topic that receives nothing, whatever the reason (issue 13):
while its connection is not live, or its subscription was rejected, a topic's silence (from its
last update, or from when it was first watched) still grows and is judged: it goes *stale* and
then *down* on the same thresholds, reported and logged once, but nothing is asked of the
connection (no resubscribe or recycle on a dead link or a refused topic). Once the connection is
live again, escalation by action resumes, with the silence counted from the moment it became
live: the reconnect resubscribed everything, so the next resubscribe waits a full threshold.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from hean.core.events import StalenessEvent, StaleStatus

__all__ = [
    "DEFAULT_FIELD_THRESHOLDS",
    "DEFAULT_THRESHOLDS",
    "FieldEpisode",
    "Recycle",
    "Report",
    "Resubscribe",
    "Stage",
    "StaleAction",
    "StalenessMonitor",
    "StalenessPolicy",
    "TopicWatch",
    "topic_kind",
    "topic_symbol",
]

log = logging.getLogger("hean.health")

DEFAULT_THRESHOLDS: Mapping[str, float | None] = MappingProxyType(
    {
        "tickers": 5.0,
        "orderbook": 5.0,
        "publicTrade": 60.0,
        "kline": 90.0,
        "allLiquidation": None,
        "liquidation": None,
    }
)
"""Seconds without an update before a topic of each kind is stale. ``None``: never judged
(liquidations can be absent for hours). Kinds not listed are not judged either."""

DEFAULT_FIELD_THRESHOLDS: Mapping[str, float] = MappingProxyType({"markPrice": 30.0})
"""Ticker fields judged on their own: stale when unchanged this long while the reference field
(``lastPrice``) moves."""

RECYCLE_REASON = "stale_data"
"""Disconnect reason used when a connection is recycled because of stale data."""

_NOUN = {
    "tickers": "price",
    "orderbook": "order book",
    "publicTrade": "trades",
    "kline": "klines",
    "allLiquidation": "liquidations",
    "liquidation": "liquidations",
}


def topic_kind(topic: str) -> str:
    """``tickers.BTCUSDT`` -> ``tickers``; ``orderbook.50.BTCUSDT`` -> ``orderbook``."""
    return topic.split(".", 1)[0]


def topic_symbol(topic: str) -> str:
    """``orderbook.50.BTCUSDT`` -> ``BTCUSDT`` (the last dot-separated part)."""
    return topic.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class StalenessPolicy:
    """Thresholds and escalation timing.

    Args:
        thresholds: seconds per topic kind (``tickers``, ``orderbook``, ``publicTrade``,
            ``kline``, ...); ``None`` or a missing kind: not judged.
        symbol_thresholds: per symbol, seconds per kind; the kind ``"*"`` applies to every kind
            of that symbol (e.g. ``{"ILLIQUIDUSDT": {"tickers": 30.0}}``).
        topic_thresholds: per exact topic (``tickers.ETHUSDT``); wins over everything else.
        fields: ticker fields judged on their own, seconds (see the module docstring).
        field_reference: the ticker field whose movement makes a frozen field suspicious.
        resubscribe: resubscribe a topic when it goes stale.
        recycle_after: seconds after the resubscribe before the connection is recycled
            (``None``: never recycle).
        down_after: seconds after the recycle (or, without recycling, after the resubscribe)
            before the feed is marked down (``None``: never).
    """

    thresholds: Mapping[str, float | None] = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    symbol_thresholds: Mapping[str, Mapping[str, float | None]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    topic_thresholds: Mapping[str, float | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    fields: Mapping[str, float] = field(default_factory=lambda: DEFAULT_FIELD_THRESHOLDS)
    field_reference: str = "lastPrice"
    resubscribe: bool = True
    recycle_after: float | None = 30.0
    down_after: float | None = 60.0

    def __post_init__(self) -> None:
        values: list[tuple[str, float | None]] = [
            *((f"thresholds[{k}]", v) for k, v in self.thresholds.items()),
            *((f"topic_thresholds[{k}]", v) for k, v in self.topic_thresholds.items()),
            *((f"fields[{k}]", v) for k, v in self.fields.items()),
            ("recycle_after", self.recycle_after),
            ("down_after", self.down_after),
        ]
        for symbol, kinds in self.symbol_thresholds.items():
            values.extend((f"symbol_thresholds[{symbol}][{k}]", v) for k, v in kinds.items())
        for name, value in values:
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    def threshold(self, topic: str) -> float | None:
        """Seconds without an update before ``topic`` is stale (``None``: never)."""
        if topic in self.topic_thresholds:
            return self.topic_thresholds[topic]
        kind = topic_kind(topic)
        per_symbol = self.symbol_thresholds.get(topic_symbol(topic))
        if per_symbol is not None:
            if kind in per_symbol:
                return per_symbol[kind]
            if "*" in per_symbol:
                return per_symbol["*"]
        return self.thresholds.get(kind)

    def scaled(self, factor: float) -> StalenessPolicy:
        """Every duration multiplied by ``factor`` (tests run with short thresholds)."""

        def s(v: float | None) -> float | None:
            return None if v is None else v * factor

        return StalenessPolicy(
            thresholds={k: s(v) for k, v in self.thresholds.items()},
            symbol_thresholds={
                sym: {k: s(v) for k, v in kinds.items()}
                for sym, kinds in self.symbol_thresholds.items()
            },
            topic_thresholds={k: s(v) for k, v in self.topic_thresholds.items()},
            fields={k: v * factor for k, v in self.fields.items()},
            field_reference=self.field_reference,
            resubscribe=self.resubscribe,
            recycle_after=s(self.recycle_after),
            down_after=s(self.down_after),
        )


class Stage(enum.StrEnum):
    """Where a topic is in its staleness escalation."""

    FRESH = "fresh"
    STALE = "stale"
    """Detected, logged, resubscribed."""
    RECYCLED = "recycled"
    DOWN = "down"


_FRESH = Stage.FRESH  # a module global: faster than the enum attribute on the hot path


class Resubscribe(NamedTuple):
    """Unsubscribe and resubscribe ``topic`` on ``connection`` (a fresh snapshot)."""

    connection: str
    topic: str
    reason: str


class Recycle(NamedTuple):
    """Drop ``connection`` and reconnect it (every topic is resubscribed)."""

    connection: str
    reason: str


class Report(NamedTuple):
    """Publish this step of an episode (``EventType.STALENESS``)."""

    event: StalenessEvent


StaleAction = Resubscribe | Recycle | Report


@dataclass(slots=True)
class FieldEpisode:
    """A ticker field currently judged stale."""

    name: str
    threshold: float
    since: float
    """Monotonic time the episode began."""


@dataclass(slots=True)
class TopicWatch:
    """What is known about one watched topic. Read it freely; the monitor and driver write it."""

    connection: str
    topic: str
    kind: str
    symbol: str
    threshold: float | None
    required: bool
    watched_since: float
    last_update: float | None = None
    """Monotonic time of the last message."""
    messages: int = 0
    """Messages observed (cumulative, across reconnects)."""
    last_lag: float | None = None
    """Exchange-to-local lag of the last message that carried an exchange time, seconds."""
    stage: Stage = Stage.FRESH
    stale_since: float | None = None
    """Monotonic time the current episode began."""
    stage_at: float | None = None
    """Monotonic time of the last escalation step."""
    episodes: int = 0
    resubscribes: int = 0
    recycles: int = 0
    ticker: Any = None
    """The merged ticker (``TickerState``) of a ``tickers`` topic, for per-field checks."""
    field_episodes: dict[str, FieldEpisode] = field(default_factory=dict)
    rejected: str = ""
    """The exchange refused this topic's subscription (its reason); it is still watched: no
    data arrives, so it goes stale and down like a silent one, without resubscribes."""
    offline: bool = False
    """The current episode began (or went on) while nothing could be asked of the connection
    (not live, or the topic rejected): the resubscribe of its first step is still owed."""
    last_price: float | None = None
    bid: float | None = None
    ask: float | None = None
    book_valid: bool | None = None
    book_reason: str = ""

    @property
    def stale(self) -> bool:
        """An episode (of the topic or of one of its fields) is under way."""
        return self.stage is not Stage.FRESH or bool(self.field_episodes)

    def age(self, now: float) -> float | None:
        """Seconds since the last message (``None`` before the first)."""
        return None if self.last_update is None else now - self.last_update

    def silence(self, now: float) -> float:
        """Seconds without a message: since the last one, or since first watched when none
        came (it grows for as long as nothing arrives, whatever the reason)."""
        last = self.last_update
        return now - (last if last is not None else self.watched_since)


@dataclass(slots=True)
class _Conn:
    live: bool = True
    live_since: float | None = None
    recycled_at: float | None = None


class StalenessMonitor:
    """Watches topics for silence and escalates (see the module docstring).

    Args:
        policy: thresholds and escalation timing.
    """

    def __init__(self, policy: StalenessPolicy | None = None) -> None:
        self.policy = policy if policy is not None else StalenessPolicy()
        self._watches: dict[tuple[str, str], TopicWatch] = {}
        self._conns: dict[str, _Conn] = {}
        self._untracked: set[tuple[str, str]] = set()
        """(connection, field) pairs already reported as not tracked by the ticker cache."""

    # -- what is watched ----------------------------------------------------------------------

    def watch(
        self,
        connection: str,
        topic: str,
        now: float,
        *,
        required: bool = True,
        threshold: float | bool | None = True,
    ) -> TopicWatch:
        """Start watching ``topic`` of ``connection`` (returns the existing watch if any).

        Args:
            required: its staleness makes trading unsafe (``ws_ok`` false).
            threshold: seconds; ``True`` (default) takes it from the policy, ``None`` never
                judges it.
        """
        key = (connection, topic)
        w = self._watches.get(key)
        if w is not None:
            return w
        thr = self.policy.threshold(topic) if threshold is True else threshold
        if isinstance(thr, bool):  # False: never judged
            thr = None
        w = TopicWatch(
            connection=connection,
            topic=topic,
            kind=topic_kind(topic),
            symbol=topic_symbol(topic),
            threshold=thr,
            required=required,
            watched_since=now,
        )
        self._watches[key] = w
        self._conns.setdefault(connection, _Conn())
        return w

    def unwatch(self, connection: str, topic: str) -> TopicWatch | None:
        """Stop watching (an unsubscribed topic); returns the watch that was removed."""
        return self._watches.pop((connection, topic), None)

    def get(self, connection: str, topic: str) -> TopicWatch | None:
        return self._watches.get((connection, topic))

    def __iter__(self) -> Iterator[TopicWatch]:
        return iter(list(self._watches.values()))

    def __len__(self) -> int:
        return len(self._watches)

    def stale(self) -> list[TopicWatch]:
        """Watches with an episode under way."""
        return [w for w in self._watches.values() if w.stale]

    # -- inputs -------------------------------------------------------------------------------

    def connection_state(self, connection: str, live: bool, live_since: float | None) -> None:
        """Whether ``connection`` is live, and since when (its current connection's start)."""
        conn = self._conns.setdefault(connection, _Conn())
        conn.live = live
        conn.live_since = live_since if live else None

    def observe(
        self, w: TopicWatch, now: float, lag: float | None = None
    ) -> list[StaleAction] | None:
        """A message of ``w.topic`` arrived at ``now`` (the hot path: returns ``None`` unless
        an episode just ended)."""
        w.last_update = now
        w.messages += 1
        if lag is not None:
            w.last_lag = lag
        if w.stage is _FRESH:
            return None
        return self._recovered(w, now)

    def check(self, now: float) -> list[StaleAction]:
        """Judge every watch at ``now``; returns what to do."""
        actions: list[StaleAction] = []
        recycled: set[str] = set()
        for w in list(self._watches.values()):
            if w.threshold is None:
                continue
            conn = self._conns.get(w.connection)
            if (conn is not None and not conn.live) or w.rejected:
                self._check_offline(w, now, actions)
                continue
            silence = self._silence(w, conn, now)
            if w.offline:
                # An episode that began while nothing could be asked: the reconnect has just
                # resubscribed everything, so the resubscribe is owed only after a full
                # threshold of silence on the live connection.
                if silence > w.threshold:
                    w.offline = False
                    w.stage_at = now
                    if w.stage is not Stage.DOWN and self.policy.resubscribe:
                        w.resubscribes += 1
                        actions.append(Resubscribe(w.connection, w.topic, f"stale {silence:.1f}s"))
                continue
            if w.stage is Stage.FRESH:
                if silence > w.threshold:
                    self._went_stale(w, silence, now, actions)
                elif w.ticker is not None and self.policy.fields:
                    self._check_fields(w, now, actions)
            elif silence > w.threshold:
                self._escalate(w, conn, silence, now, actions, recycled)
        return actions

    # -- internals ----------------------------------------------------------------------------

    def _check_offline(self, w: TopicWatch, now: float, actions: list[StaleAction]) -> None:
        """Judge a topic that cannot receive (connection not live, or rejected): stale, then
        down, on time alone; report and log, but ask nothing of the connection."""
        assert w.threshold is not None
        silence = w.silence(now)
        policy = self.policy
        if w.stage is Stage.FRESH:
            if silence <= w.threshold:
                return
            w.stage = Stage.STALE
            w.stale_since = w.stage_at = now
            w.episodes += 1
            w.offline = True
            why = f"subscription rejected ({w.rejected})" if w.rejected else "connection not live"
            log.warning(
                "[ANOMALY] Stale %s for %s: no update for %.1fs (topic %s, threshold %gs; %s)",
                _NOUN.get(w.kind, "data"),
                w.symbol,
                silence,
                w.topic,
                w.threshold,
                why,
            )
            actions.append(self._event(w, StaleStatus.STALE, silence, now))
            return
        w.offline = True
        if w.stage is Stage.DOWN or policy.down_after is None or w.stale_since is None:
            return
        if now - w.stale_since < (policy.recycle_after or 0.0) + policy.down_after:
            return
        w.stage = Stage.DOWN
        w.stage_at = now
        log.error(
            "[ANOMALY] Feed down: %s (%s) no update for %.1fs (%s)",
            w.topic,
            w.symbol,
            silence,
            f"subscription rejected: {w.rejected}" if w.rejected else "connection not live",
        )
        actions.append(self._event(w, StaleStatus.DOWN, silence, now))

    @staticmethod
    def _silence(w: TopicWatch, conn: _Conn | None, now: float) -> float:
        start = w.watched_since
        if conn is not None and conn.live_since is not None and conn.live_since > start:
            start = conn.live_since
        last = w.last_update
        if last is not None and last > start:
            start = last
        return now - start

    def _event(
        self,
        w: TopicWatch,
        status: StaleStatus,
        age: float,
        now: float,
        field_name: str | None = None,
        threshold: float | None = None,
    ) -> Report:
        thr = threshold if threshold is not None else (w.threshold or 0.0)
        return Report(
            StalenessEvent(
                connection=w.connection,
                topic=w.topic,
                symbol=w.symbol,
                status=status,
                field=field_name,
                age=round(age, 6),
                threshold=thr,
                time=now,
            )
        )

    def _went_stale(
        self, w: TopicWatch, silence: float, now: float, actions: list[StaleAction]
    ) -> None:
        assert w.threshold is not None
        w.stage = Stage.STALE
        w.stale_since = w.stage_at = now
        w.episodes += 1
        age = w.age(now)
        shown = silence if age is None else age
        log.warning(
            "[ANOMALY] Stale %s detected for %s: no update for %.1fs (topic %s, threshold %gs)",
            _NOUN.get(w.kind, "data"),
            w.symbol,
            shown,
            w.topic,
            w.threshold,
        )
        actions.append(self._event(w, StaleStatus.STALE, shown, now))
        if self.policy.resubscribe:
            w.resubscribes += 1
            log.info("%s: resubscribing %s (stale %.1fs)", w.connection, w.topic, shown)
            actions.append(Resubscribe(w.connection, w.topic, f"stale {shown:.1f}s"))

    def _escalate(
        self,
        w: TopicWatch,
        conn: _Conn | None,
        silence: float,
        now: float,
        actions: list[StaleAction],
        recycled: set[str],
    ) -> None:
        policy = self.policy
        assert w.stage_at is not None and w.stale_since is not None
        waited = now - w.stage_at
        age = w.age(now)
        shown = silence if age is None else age
        if w.stage is Stage.STALE and policy.recycle_after is not None:
            if waited < policy.recycle_after:
                return
            w.stage = Stage.RECYCLED
            w.stage_at = now
            w.recycles += 1
            actions.append(self._event(w, StaleStatus.RECYCLED, shown, now))
            # One recycle per connection covers every topic on it (and not twice in a row).
            just_done = (
                conn is not None
                and conn.recycled_at is not None
                and (now - conn.recycled_at < policy.recycle_after)
            )
            if w.connection not in recycled and not just_done:
                recycled.add(w.connection)
                if conn is not None:
                    conn.recycled_at = now
                log.warning(
                    "[ANOMALY] %s still stale %.1fs after resubscribing: recycling connection %s",
                    w.topic,
                    shown,
                    w.connection,
                )
                actions.append(Recycle(w.connection, RECYCLE_REASON))
            return
        if w.stage in (Stage.STALE, Stage.RECYCLED) and policy.down_after is not None:
            if waited < policy.down_after:
                return
            w.stage = Stage.DOWN
            w.stage_at = now
            log.error(
                "[ANOMALY] Feed down: %s (%s) no update for %.1fs despite %s",
                w.topic,
                w.symbol,
                shown,
                "resubscribe and reconnect" if w.recycles else "resubscribe",
            )
            actions.append(self._event(w, StaleStatus.DOWN, shown, now))

    def _recovered(self, w: TopicWatch, now: float) -> list[StaleAction]:
        began = w.stale_since if w.stale_since is not None else now
        lasted = now - began
        log.warning(
            "[RECOVERED] %s updates resumed for %s (topic %s) after a %.1fs stale episode (%s)",
            _NOUN.get(w.kind, "data").capitalize(),
            w.symbol,
            w.topic,
            lasted,
            w.stage.value,
        )
        w.stage = Stage.FRESH
        w.stale_since = w.stage_at = None
        w.offline = False
        return [self._event(w, StaleStatus.RECOVERED, lasted, now)]

    def _report_untracked(self, w: TopicWatch, name: str) -> None:
        """A policy field whose change time the connection does not keep: say so once."""
        key = (w.connection, name)
        if key in self._untracked:
            return
        self._untracked.add(key)
        log.warning(
            "staleness policy watches ticker field %s, but connection %s does not track its "
            "change time (field_times): it cannot be judged there",
            name,
            w.connection,
        )

    def _check_fields(self, w: TopicWatch, now: float, actions: list[StaleAction]) -> None:
        policy = self.policy
        tracks = getattr(w.ticker, "tracks", None)
        if tracks is not None and getattr(w.ticker, "tracked", None) is not None:
            for name in (policy.field_reference, *policy.fields):
                if not tracks(name):
                    self._report_untracked(w, name)
        times: Mapping[str, float] | None = getattr(w.ticker, "field_times", None)
        if not times:
            return
        ref = times.get(policy.field_reference)
        for name, thr in policy.fields.items():
            changed = times.get(name)
            if changed is None or name == policy.field_reference:
                continue
            age = now - changed
            episode = w.field_episodes.get(name)
            if episode is None:
                moving = ref is not None and ref > changed and now - ref <= thr
                if age > thr and moving:
                    w.field_episodes[name] = FieldEpisode(name, thr, now)
                    log.warning(
                        "[ANOMALY] Stale %s detected for %s: unchanged for %.1fs while %s moves "
                        "(topic %s, threshold %gs)",
                        name,
                        w.symbol,
                        age,
                        policy.field_reference,
                        w.topic,
                        thr,
                    )
                    actions.append(self._event(w, StaleStatus.STALE, age, now, name, thr))
                    if policy.resubscribe:
                        w.resubscribes += 1
                        actions.append(Resubscribe(w.connection, w.topic, f"{name} frozen"))
            elif age <= thr:
                del w.field_episodes[name]
                lasted = now - episode.since
                log.warning(
                    "[RECOVERED] %s of %s changes again (topic %s) after a %.1fs stale episode",
                    name,
                    w.symbol,
                    w.topic,
                    lasted,
                )
                actions.append(self._event(w, StaleStatus.RECOVERED, lasted, now, name, thr))
