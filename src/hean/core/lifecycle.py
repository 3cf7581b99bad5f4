"""The connection lifecycle: one explicit enum and one transition table.

Every connection HEAN owns moves through these states, and only along the edges in
:data:`TRANSITIONS`. All the rules live in this table, in the style of h11's ``_state.py``: a
transition not listed raises :class:`InvalidTransition`, and every transition is logged.

``stop()`` always wins: from ``STOPPING`` the only way out is ``CLOSED``, so a reconnect timer that
fires during shutdown, or a socket error noticed while closing, can never revive a connection.

::

    IDLE ──► CONNECTING ──► AUTHENTICATING ──► LIVE
                 │  ▲              │    │          │
                 ▼  │              │    ▼          │
               BACKOFF ◄───────────┘  AUTH_FAILED  │
                 ▲                      │ (slow retry or explicit restart ──► CONNECTING)
                 └─────────────────────────────────┘
                 (any state but CLOSED) ──► STOPPING ──► CLOSED ──► CONNECTING (explicit restart)

``AUTH_FAILED`` (private and trade streams only): the server rejected our credentials or our
``expires``; the connection is closed and is retried only as the session's auth-retry policy
allows (never in a tight loop). From there: ``CONNECTING`` (retry or explicit restart),
``STOPPING`` (stop while the rejected socket is still closing) or ``CLOSED``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

__all__ = ["TRANSITIONS", "ConnectionState", "InvalidTransition", "Lifecycle"]


class ConnectionState(enum.StrEnum):
    """Where a connection is in its life."""

    IDLE = "idle"
    """Created, never started."""
    CONNECTING = "connecting"
    """TCP + WebSocket handshake under way."""
    AUTHENTICATING = "authenticating"
    """Connected; waiting for the auth ack (private and trade streams only)."""
    LIVE = "live"
    """Connected (and authenticated where needed); subscriptions are (re)sent on entry."""
    AUTH_FAILED = "auth_failed"
    """The server rejected authentication; waiting for a slow retry or the owner's restart."""
    BACKOFF = "backoff"
    """Disconnected; waiting for the reconnect delay (or an open circuit breaker) to pass."""
    STOPPING = "stopping"
    """``stop()`` was called; closing. Nothing reconnects from here."""
    CLOSED = "closed"
    """Stopped for good (until an explicit restart)."""


S = ConnectionState

TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    S.IDLE: frozenset({S.CONNECTING, S.STOPPING, S.CLOSED}),
    S.CONNECTING: frozenset({S.AUTHENTICATING, S.LIVE, S.BACKOFF, S.STOPPING, S.CLOSED}),
    S.AUTHENTICATING: frozenset({S.LIVE, S.BACKOFF, S.AUTH_FAILED, S.STOPPING, S.CLOSED}),
    S.AUTH_FAILED: frozenset({S.CONNECTING, S.STOPPING, S.CLOSED}),
    S.LIVE: frozenset({S.BACKOFF, S.STOPPING, S.CLOSED}),
    S.BACKOFF: frozenset({S.CONNECTING, S.STOPPING, S.CLOSED}),
    S.STOPPING: frozenset({S.CLOSED}),
    S.CLOSED: frozenset({S.CONNECTING}),
}
"""Allowed transitions. ``CLOSED -> CONNECTING`` is an explicit restart by the owner only."""


class InvalidTransition(RuntimeError):
    """A transition that :data:`TRANSITIONS` does not allow was attempted."""


class Lifecycle:
    """Holds one connection's state and enforces :data:`TRANSITIONS`.

    Args:
        name: a short label for logs (e.g. ``public/linear``).
        logger: where transitions are logged.
        on_change: called with ``(old, new, reason)`` after every transition.
    """

    __slots__ = ("_logger", "_on_change", "_state", "name")

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        on_change: Callable[[ConnectionState, ConnectionState, str], None] | None = None,
    ) -> None:
        self.name = name
        self._logger = logger
        self._on_change = on_change
        self._state = ConnectionState.IDLE

    @property
    def state(self) -> ConnectionState:
        return self._state

    def can(self, new: ConnectionState) -> bool:
        """Whether moving to ``new`` is allowed from the current state."""
        return new in TRANSITIONS[self._state]

    def to(self, new: ConnectionState, reason: str = "") -> ConnectionState:
        """Move to ``new`` (logging it) and return the previous state.

        Raises:
            InvalidTransition: the table does not allow it.
        """
        old = self._state
        if new not in TRANSITIONS[old]:
            raise InvalidTransition(f"{self.name}: {old.value} -> {new.value} is not allowed")
        self._state = new
        self._logger.info(
            "= %s %s -> %s%s", self.name, old.value, new.value, f" ({reason})" if reason else ""
        )
        if self._on_change is not None:
            self._on_change(old, new, reason)
        return old
