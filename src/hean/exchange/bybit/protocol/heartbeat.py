"""Heartbeat scheduling: when to send ``op: ping``, when a missing pong means a dead link.

Sans-I/O. Bybit recommends a JSON ping every 20 s on every stream (protocol.md §2.1); private and
trade streams are cut after 10 minutes without ping or data, and public streams are cut much
sooner in practice (§2.3). A pong that does not arrive within ``timeout`` of its ping means the
link is dead, even if data still trickles in: so a half-open connection is detected within
``interval + timeout`` of going silent, whatever the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Heartbeat", "HeartbeatPolicy"]


@dataclass(frozen=True, slots=True)
class HeartbeatPolicy:
    interval: float = 20.0
    """Seconds between pings."""
    timeout: float = 10.0
    """Seconds a pong may take before the connection is declared dead."""

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError(f"ping interval must be > 0, got {self.interval!r}")
        if not self.timeout > 0:
            raise ValueError(f"pong timeout must be > 0, got {self.timeout!r}")


class Heartbeat:
    """Ping schedule and pong deadline for one connection.

    ``next_ping_at`` is when the next ping is due; ``pong_deadline`` is set while a ping is
    outstanding. A pong answers the outstanding ping (Bybit's pongs do not always echo the
    ``req_id``, so pongs are not matched one-to-one; one ping is outstanding at a time).
    """

    __slots__ = (
        "next_ping_at",
        "ping_sent_at",
        "pings_sent",
        "policy",
        "pong_deadline",
        "pongs_received",
        "rtt",
    )

    def __init__(self, policy: HeartbeatPolicy) -> None:
        self.policy = policy
        self.next_ping_at: float | None = None
        self.ping_sent_at: float | None = None
        self.pong_deadline: float | None = None
        self.rtt: float | None = None
        self.pings_sent = 0
        self.pongs_received = 0

    def start(self, now: float) -> None:
        """The connection is up: first ping one interval from now."""
        self.next_ping_at = now + self.policy.interval
        self.ping_sent_at = None
        self.pong_deadline = None

    def stop(self) -> None:
        self.next_ping_at = None
        self.ping_sent_at = None
        self.pong_deadline = None

    def ping_due(self, now: float) -> bool:
        return self.next_ping_at is not None and now >= self.next_ping_at

    def on_ping_sent(self, now: float) -> None:
        self.pings_sent += 1
        self.next_ping_at = now + self.policy.interval
        if self.pong_deadline is None:
            # Keep the earliest outstanding deadline: a second ping must not extend the first.
            self.ping_sent_at = now
            self.pong_deadline = now + self.policy.timeout

    def on_pong(self, now: float) -> float | None:
        """Record a pong; returns the round-trip time if a ping was outstanding."""
        self.pongs_received += 1
        sent = self.ping_sent_at
        self.ping_sent_at = None
        self.pong_deadline = None
        if sent is None:
            return None
        self.rtt = now - sent
        return self.rtt

    def expired(self, now: float) -> bool:
        """True when the outstanding ping has waited longer than the timeout."""
        return self.pong_deadline is not None and now >= self.pong_deadline

    def next_deadline(self) -> float | None:
        """The earliest time this object needs attention."""
        if self.pong_deadline is None:
            return self.next_ping_at
        if self.next_ping_at is None:
            return self.pong_deadline
        return min(self.pong_deadline, self.next_ping_at)
