"""Ticker cache: a snapshot replaces, a delta merges — a delta is never dropped.

Bybit linear/inverse tickers arrive as one ``snapshot`` and then ``delta`` messages carrying only
``symbol`` plus the fields that changed (protocol.md §5.1): "if a response param is not found in
the message, then its value has not changed". Most deltas carry no ``lastPrice``. Dropping them
(as the old client did) loses 70-90 % of updates; here every one is merged.

Spot and option tickers are snapshot-only; each message replaces the cached fields.

A delta for a topic that has had no snapshot yet (a lost snapshot, a restart) is merged too —
the fields it carries are current — but the ticker is flagged ``has_snapshot=False`` and the
caller is told (once per snapshot-less run) to repair the topic: resubscribe it to get a full
snapshot, and again while none comes (the snapshot of a resubscribe can be lost too; the public
client keeps the topic in its :class:`~hean.exchange.bybit.state.repair.RepairSchedule`). The
snapshot that ends the run is reported through ``on_repaired``.

The time each field last changed is kept (monotonic seconds), so staleness can be judged per field
(e.g. mark price frozen while last price moves). That costs ~0.25 µs per delta (a store per field
it carries, docs/benchmarks.md); a cache built with ``track_fields`` keeps times only for the
fields named there (``()``: none), for consumers that never ask for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hean.core.events import TickEvent
from hean.exchange.bybit.protocol.codec import Frame, parse_float, parse_float_fast

__all__ = ["TickerCache", "TickerState"]

_BID_ASK_KEYS: dict[str, tuple[str, str]] = {
    "linear": ("bid1Price", "ask1Price"),
    "inverse": ("bid1Price", "ask1Price"),
    "option": ("bidPrice", "askPrice"),
    "spot": ("", ""),  # spot tickers carry no bid/ask: keys no message has
}


_MISSING: Any = object()
"""A value no field has (a snapshot's field that was absent before counts as changed)."""


def _discard(event: TickEvent) -> None:
    """The publisher of a cache nobody listens to."""


class TickerState:
    """The merged ticker of one symbol. Shared with subscribers: treat it as read-only.

    Attributes:
        fields: every field as Bybit last sent it (strings, exactly as received).
        field_times: monotonic time each field was last changed (only the tracked fields when
            the cache was built with ``track_fields``; see ``tracked``).
        last_price / bid / ask: floats parsed from the fields (``None`` until first sent).
        exchange_ts: exchange ``ts`` of the last message (Unix ms); ``cs`` its cross sequence.
        updated_at: monotonic time of the last message.
        last_message: the fields of the last message as received (a delta's: only those it
            changed); for a publisher that forwards deltas as deltas.
        has_snapshot: a full snapshot has been applied since the last (re)subscribe.
    """

    __slots__ = (
        "ask",
        "bid",
        "category",
        "cs",
        "deltas",
        "exchange_ts",
        "field_times",
        "fields",
        "has_snapshot",
        "last_message",
        "last_price",
        "needs_resync",
        "resync_requested",
        "snapshots",
        "symbol",
        "topic",
        "tracked",
        "updated_at",
    )

    def __init__(
        self, topic: str, symbol: str, category: str, tracked: frozenset[str] | None = None
    ) -> None:
        self.topic = topic
        self.tracked = tracked
        """Fields whose change times are kept; ``None``: every field."""
        self.symbol = symbol
        self.category = category
        self.fields: dict[str, Any] = {}
        self.field_times: dict[str, float] = {}
        self.last_message: dict[str, Any] = {}
        self.last_price: float | None = None
        self.bid: float | None = None
        self.ask: float | None = None
        self.exchange_ts = 0
        self.cs: int | None = None
        self.updated_at: float | None = None
        self.has_snapshot = False
        self.resync_requested = False
        self.needs_resync = False
        self.snapshots = 0
        self.deltas = 0

    def get(self, name: str, default: Any = None) -> Any:
        """A field as Bybit sent it (e.g. ``"markPrice"``)."""
        return self.fields.get(name, default)

    def tracks(self, name: str) -> bool:
        """Whether ``name``'s change time is kept (see ``track_fields`` of the cache)."""
        return self.tracked is None or name in self.tracked

    def field_age(self, name: str, now: float) -> float | None:
        """Seconds since ``name`` last changed, or ``None`` if it was never received (or its
        change time is not tracked)."""
        changed = self.field_times.get(name)
        return None if changed is None else now - changed

    def as_dict(self) -> dict[str, Any]:
        """A copy of the merged fields (for callers that want to keep it)."""
        return dict(self.fields)

    def __repr__(self) -> str:
        return (
            f"TickerState({self.symbol!r}, last={self.last_price}, bid={self.bid}, "
            f"ask={self.ask}, fields={len(self.fields)}, snapshot={self.has_snapshot})"
        )


class TickerCache:
    """All tickers of one category, keyed by topic (``tickers.<symbol>``).

    Args:
        category: ``linear``, ``inverse``, ``spot`` or ``option``.
        publish: called with a :class:`TickEvent` for every applied message (optional).
        on_resync: called with ``(topic, now)`` when a topic needs a fresh snapshot (a delta
            arrived before any snapshot); when set, ``needs_resync`` is cleared for the caller.
        on_repaired: called with ``(topic, now)`` when the snapshot of a topic that needed one
            arrives (its repair is over).
        track_fields: keep change times only for these fields (``()``: none); ``None``, the
            default, keeps them for every field.
    """

    __slots__ = (
        "_ask_key",
        "_bid_key",
        "_wall_ms",
        "_wall_now",
        "_wall_offset",
        "by_symbol",
        "by_topic",
        "category",
        "on_repaired",
        "on_resync",
        "publish",
        "tracked",
    )

    def __init__(
        self,
        category: str,
        publish: Callable[[TickEvent], None] | None = None,
        on_resync: Callable[[str, float], None] | None = None,
        track_fields: Iterable[str] | None = None,
        on_repaired: Callable[[str, float], None] | None = None,
    ) -> None:
        if category not in _BID_ASK_KEYS:
            raise ValueError(f"unknown category {category!r}")
        if isinstance(track_fields, str):
            raise TypeError("track_fields must be a collection of field names, not one string")
        self.tracked = None if track_fields is None else frozenset(track_fields)
        self.category = category
        self.publish: Callable[[TickEvent], None] = publish if publish is not None else _discard
        self.on_resync = on_resync
        self.on_repaired = on_repaired
        self._wall_offset = 0.0
        self._wall_now = -1.0
        self._wall_ms = 0
        self._bid_key, self._ask_key = _BID_ASK_KEYS[category]
        self.by_topic: dict[str, TickerState] = {}
        self.by_symbol: dict[str, TickerState] = {}

    @property
    def wall_offset(self) -> float:
        """Seconds to add to monotonic ``now`` to get Unix time (for ``recv_wall_ms``)."""
        return self._wall_offset

    @wall_offset.setter
    def wall_offset(self, value: float) -> None:
        self._wall_offset = value
        self._wall_now = -1.0  # recompute the cached wall time of the current read

    def get(self, symbol: str) -> TickerState | None:
        return self.by_symbol.get(symbol)

    def reset(self, topic: str) -> None:
        """Forget that a snapshot was seen (after an unsubscribe or reconnect); a delta before
        the next snapshot asks for a repair again."""
        state = self.by_topic.get(topic)
        if state is not None:
            state.has_snapshot = False
            state.resync_requested = False

    def reset_all(self) -> None:
        for state in self.by_topic.values():
            state.has_snapshot = False
            state.resync_requested = False

    def apply(self, frame: Frame, now: float) -> TickerState:
        """Merge one ticker frame, publish its :class:`TickEvent`, and return the ticker.

        This is the data-path handler registered for each ticker topic. When a delta arrives
        before any snapshot, ``needs_resync`` is set (once per snapshot-less run of deltas): the
        ``on_resync`` callback is called and the flag cleared, or, without a callback, the
        caller should resubscribe the topic and clear it.

        Raises:
            ValueError: the frame carries no ticker object (counted and dropped by the caller).
        """
        # Hot path: one call per ticker message, kept flat and short on purpose (every
        # bytecode shows in benchmarks/bench_tickers.py); the rare branches call out.
        data = frame.data
        if data.__class__ is not dict:
            raise ValueError("ticker data is not an object")
        try:
            state = self.by_topic[frame.topic]  # type: ignore[index]
        except KeyError:
            state = self._new_state(frame.topic, data)  # type: ignore[arg-type]
        state.last_message = data
        if frame.type == "delta":
            fields = state.fields
            fields |= data
            times = state.field_times
            tracked = self.tracked
            if tracked is None:
                for key in data:
                    times[key] = now
            else:
                for key in tracked:
                    if key in data:
                        times[key] = now
            state.updated_at = now
            state.deltas += 1
            if not state.has_snapshot:
                self._delta_without_snapshot(state, now)
            is_snapshot = False
        else:
            self._snapshot(state, data, now)
            is_snapshot = True
        # Prices: msgspec's parser; float()'s rules on anything it refuses ("" -> None).
        if "lastPrice" in data:
            try:
                state.last_price = parse_float_fast(data["lastPrice"])
            except (TypeError, ValueError):
                state.last_price = parse_float(data["lastPrice"])
        key = self._bid_key
        if key in data:
            try:
                state.bid = parse_float_fast(data[key])
            except (TypeError, ValueError):
                state.bid = parse_float(data[key])
        key = self._ask_key
        if key in data:
            try:
                state.ask = parse_float_fast(data[key])
            except (TypeError, ValueError):
                state.ask = parse_float(data[key])
        ts = frame.ts
        if ts is not None:
            state.exchange_ts = ts
        state.cs = frame.cs
        if now != self._wall_now:  # once per socket read
            self._wall_now = now
            self._wall_ms = int((now + self._wall_offset) * 1000.0)
        self.publish(
            TickEvent(
                state.symbol,
                self.category,
                state.last_price,
                state.bid,
                state.ask,
                state.exchange_ts,
                now,
                self._wall_ms,
                is_snapshot,
                state,
            )
        )
        return state

    def _snapshot(self, state: TickerState, data: dict[str, Any], now: float) -> None:
        """A snapshot replaces the fields; a field's time moves only if its value changed."""
        times = state.field_times
        old = state.fields
        tracked = self.tracked
        for key, value in data.items():
            if old.get(key, _MISSING) != value and (tracked is None or key in tracked):
                times[key] = now
        state.fields = data  # the decoded dict is ours: no copy
        state.updated_at = now
        state.has_snapshot = True
        state.snapshots += 1
        if state.resync_requested:
            state.resync_requested = False
            if self.on_repaired is not None:
                self.on_repaired(state.topic, now)

    def _delta_without_snapshot(self, state: TickerState, now: float) -> None:
        """A delta before any snapshot: merged, and the caller asked once per run to repair
        the topic (it keeps resubscribing until a snapshot comes)."""
        if state.resync_requested:
            return
        state.resync_requested = True
        if self.on_resync is None:
            state.needs_resync = True  # the caller resubscribes and clears it
        else:
            self.on_resync(state.topic, now)

    def _new_state(self, topic: str, data: dict[str, Any]) -> TickerState:
        symbol = topic[8:] if topic.startswith("tickers.") else str(data.get("symbol", topic))
        state = TickerState(topic, symbol, self.category, self.tracked)
        self.by_topic[topic] = state
        self.by_symbol[symbol] = state
        return state
