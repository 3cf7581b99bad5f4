"""Execution quality: is the market data good enough to trade on right now?

:class:`ExecutionQuality` holds the answer (``ws_ok``), why not (``reasons``), the worst ping
round-trip time and exchange-to-local lag, and ``since`` (the monotonic time of the last change).
It is sans-I/O: :meth:`ExecutionQuality.update` is given the reasons and ``now`` and returns an
:class:`~hean.core.events.ExecutionQualityEvent` when ``ws_ok`` or the reasons changed (and
publishes it, when given a ``publish`` callable), so subscribers hear of every change and of
nothing else. Read it synchronously at any time: ``quality.ws_ok``, ``quality.snapshot()``.

:func:`assess` builds the reasons from connection views and topic watches: ``ws_ok`` is true when
every required connection is LIVE (and, for private streams, authenticated) and every required
topic has had an update on the current connection and is not stale. Reasons are stable texts
(no ages or counters in them), so a reason changes only when the situation does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hean.core.events import EventType, ExecutionQualityEvent
from hean.core.lifecycle import ConnectionState
from hean.health.staleness import Stage, TopicWatch

__all__ = ["ConnectionView", "ExecutionQuality", "assess"]

log = logging.getLogger("hean.health")


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """What :func:`assess` needs to know about one connection."""

    name: str
    state: ConnectionState
    reason: str = ""
    """Reason of the last state change (e.g. ``heartbeat_timeout``)."""
    live_since: float | None = None
    breaker_open: bool = False
    auth_failed: str | None = None
    """The auth failure reason, if the last auth attempt failed."""
    required: bool = True


def assess(connections: Iterable[ConnectionView], watches: Iterable[TopicWatch]) -> list[str]:
    """Why trading is not safe now (empty list: it is)."""
    reasons: list[str] = []
    live_since: dict[str, float | None] = {}
    any_conn = False
    for c in connections:
        any_conn = True
        live_since[c.name] = c.live_since if c.state is ConnectionState.LIVE else None
        if not c.required:
            continue
        refused = c.state is ConnectionState.AUTH_FAILED and c.auth_failed is not None
        if c.state is not ConnectionState.LIVE and not refused:  # a refusal: one reason below
            reasons.append(
                f"connection {c.name} is {c.state.value}" + (f" ({c.reason})" if c.reason else "")
            )
        if c.breaker_open:
            reasons.append(f"connection {c.name}: circuit breaker open")
        if c.auth_failed is not None:
            reasons.append(f"connection {c.name}: authentication failed ({c.auth_failed})")
    if not any_conn:
        reasons.append("no connections")
    for w in watches:
        if not w.required or w.threshold is None:
            continue
        if w.connection in live_since and live_since[w.connection] is None:
            continue  # the connection's own reason covers it
        if w.rejected:
            continue  # the rejection is its own reason
        since = live_since.get(w.connection)
        if w.stage is Stage.FRESH:
            if w.last_update is None or (since is not None and w.last_update < since):
                reasons.append(f"{w.symbol}: waiting for the first {w.topic} update")
        elif w.stage is Stage.DOWN:
            reasons.append(f"{w.symbol}: feed down ({w.topic} silent despite resubscribe)")
        else:
            action = "connection recycled" if w.stage is Stage.RECYCLED else "resubscribed"
            reasons.append(
                f"{w.symbol}: stale, no {w.topic} update for over {w.threshold:g}s ({action})"
            )
        for ep in w.field_episodes.values():
            reasons.append(
                f"{w.symbol}: {ep.name} unchanged for over {ep.threshold:g}s while the price moves"
            )
    return reasons


class ExecutionQuality:
    """Whether it is safe to trade; see the module docstring.

    Args:
        publish: called with ``(EventType.EXECUTION_QUALITY, event)`` on every change
            (e.g. ``bus.publish``).
        now: monotonic time of creation (the initial ``since``).
    """

    def __init__(
        self, publish: Callable[[EventType, Any], None] | None = None, *, now: float = 0.0
    ) -> None:
        self._publish = publish
        self._ok = False
        self._reasons: tuple[str, ...] = ("not started",)
        self._since = now
        self.ping_rtt: float | None = None
        """Worst last ping round-trip time over the connections, seconds."""
        self.lag: float | None = None
        """Worst last exchange-to-local lag over the required topics, seconds."""
        self.changes = 0
        """Times ``ws_ok`` or the reasons changed."""

    @property
    def ws_ok(self) -> bool:
        """Every required connection LIVE and every required topic fresh."""
        return self._ok

    @property
    def reasons(self) -> tuple[str, ...]:
        return self._reasons

    @property
    def since(self) -> float:
        """Monotonic time of the last change."""
        return self._since

    def update(
        self,
        reasons: Iterable[str],
        now: float,
        *,
        ping_rtt: float | None = None,
        lag: float | None = None,
    ) -> ExecutionQualityEvent | None:
        """Set the current reasons (none: safe); returns (and publishes) the event on a change."""
        self.ping_rtt = ping_rtt
        self.lag = lag
        new = tuple(dict.fromkeys(reasons))
        ok = not new
        if ok == self._ok and new == self._reasons:
            return None
        was_ok = self._ok
        self._ok, self._reasons, self._since = ok, new, now
        self.changes += 1
        if ok:
            log.info("execution quality: ws_ok (market data fresh on every connection)")
        elif was_ok:
            log.warning("execution quality: NOT ws_ok: %s", "; ".join(new))
        else:
            log.info("execution quality: still not ws_ok: %s", "; ".join(new))
        event = self.snapshot()
        if self._publish is not None:
            self._publish(EventType.EXECUTION_QUALITY, event)
        return event

    def snapshot(self) -> ExecutionQualityEvent:
        """The current state as an event object (immutable)."""
        return ExecutionQualityEvent(
            ws_ok=self._ok,
            reasons=self._reasons,
            ping_rtt=self.ping_rtt,
            lag=self.lag,
            since=self._since,
        )

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        """JSON-ready view (with ``for_s``, the seconds since the last change, given ``now``)."""
        out: dict[str, Any] = {
            "ws_ok": self._ok,
            "reasons": list(self._reasons),
            "ping_rtt_ms": None if self.ping_rtt is None else round(self.ping_rtt * 1e3, 3),
            "lag_ms": None if self.lag is None else round(self.lag * 1e3, 3),
            "since": self._since,
        }
        if now is not None:
            out["for_s"] = round(now - self._since, 3)
        return out

    def __repr__(self) -> str:
        return f"<ExecutionQuality ws_ok={self._ok} reasons={list(self._reasons)}>"
