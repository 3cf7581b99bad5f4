"""Reconnect policy: capped exponential backoff with full jitter, failure classes, circuit breaker.

Sans-I/O: nothing here reads a clock or sleeps. Callers pass ``now`` (monotonic seconds) and get
back delays and deadlines.

Backoff (AWS "Exponential Backoff and Jitter", full jitter; RFC 6455 §7.2.3 asks for a random
first delay): attempt ``n`` (0-based) waits ``U(0, min(cap, first * 2**n))``. Full jitter spreads
many clients that lost the same venue at the same instant, so they do not all come back together.

Some failures deserve a *slow* retry whatever the attempt number: a handshake answered with HTTP
429 waits at least ``max(Retry-After, slow_floor)``; 403 (an IP ban or geo block) and other 4xx
answers wait at least ``slow_floor`` and raise an operator-visible reason; close code 1013
("try again later") waits at least ``try_again_floor``. See :func:`classify`.

The circuit breaker stops a client from hammering a venue that keeps refusing it: after
``failure_threshold`` consecutive failed connection *attempts* it *opens* for ``cooldown`` seconds
(doubling, up to ``max_cooldown``, each time a trial fails), then lets exactly one trial attempt
through (*half-open*); a trial whose handshake completes closes it again.

What counts (issue 12). A failure is an attempt the venue did not accept: refused, reset or timed
out before the upgrade, DNS, TLS, an HTTP status on the upgrade. That is what Bybit does while it
is down for maintenance (the upgrade is refused or never answered) and what the trusted clients
back off from: websockets' reconnect loop grows its delay on failed *connects* and starts over
once a connection is made; nautilus retries connects with bounded backoff. A connection that was
accepted and then dropped, however young, proves the venue reachable: it closes the breaker and is
paced by the jittered backoff alone, which is *not* reset until a connection stays up
``stable_after`` seconds, so a venue that accepts and drops at once is retried no faster than
``U(0, cap)`` apart, and never waited for longer than ``cap``. The breaker therefore never keeps a
client away from a venue that accepts it, and once a refusing venue is back the breaker delays
the first connection by at most ``max_cooldown`` (plus one connect timeout).
"""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass

__all__ = [
    "Backoff",
    "BackoffPolicy",
    "BreakerState",
    "CircuitBreaker",
    "RetryClass",
    "classify",
]

log = logging.getLogger("hean.reconnect")


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Reconnect timing. All values in seconds; validated on construction."""

    first: float = 1.0
    """Upper bound of the first (jittered) delay."""
    cap: float = 30.0
    """Upper bound of any jittered delay."""
    slow_floor: float = 30.0
    """Minimum delay after HTTP 429 / 403 / other 4xx on the handshake."""
    try_again_floor: float = 5.0
    """Minimum delay after close code 1013 (try again later)."""
    failure_threshold: int = 5
    """Consecutive failures that open the circuit breaker."""
    cooldown: float = 30.0
    """How long the breaker stays open the first time."""
    max_cooldown: float = 120.0
    """Upper bound of the (doubling) open time: the longest a breaker can keep a client away
    from a venue that has come back."""
    stable_after: float = 10.0
    """A connection live this long counts as a success: backoff and breaker are reset."""

    def __post_init__(self) -> None:
        for name in ("first", "cap", "slow_floor", "try_again_floor", "cooldown", "max_cooldown"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"BackoffPolicy.{name} must be >= 0, got {value!r}")
        if self.cap < self.first:
            raise ValueError(f"BackoffPolicy.cap ({self.cap}) must be >= first ({self.first})")
        if self.max_cooldown < self.cooldown:
            raise ValueError("BackoffPolicy.max_cooldown must be >= cooldown")
        if self.failure_threshold < 1:
            raise ValueError("BackoffPolicy.failure_threshold must be >= 1")
        if self.stable_after < 0:
            raise ValueError("BackoffPolicy.stable_after must be >= 0")

    def scaled(self, factor: float) -> BackoffPolicy:
        """The same policy with every duration multiplied by ``factor`` (for fast tests)."""
        return BackoffPolicy(
            first=self.first * factor,
            cap=self.cap * factor,
            slow_floor=self.slow_floor * factor,
            try_again_floor=self.try_again_floor * factor,
            failure_threshold=self.failure_threshold,
            cooldown=self.cooldown * factor,
            max_cooldown=self.max_cooldown * factor,
            stable_after=self.stable_after * factor,
        )


class RetryClass(enum.StrEnum):
    """How a failure should be retried."""

    RETRY = "retry"
    """Normal jittered backoff."""
    SLOW = "slow"
    """Backoff, but never sooner than a floor (rate limited, banned, or told to wait)."""


def classify(
    reason: str, policy: BackoffPolicy, retry_after: float | None = None
) -> tuple[RetryClass, float]:
    """Map a disconnect/failure reason to a retry class and a minimum delay.

    Reasons are the strings HEAN uses everywhere (logs, events, metrics): ``http_<status>``,
    ``server_close:<code>``, ``heartbeat_timeout``, ``connect_failed``, ``connect_timeout``,
    ``reset``, ``dns``, ...

    Returns:
        ``(retry_class, floor_seconds)``.
    """
    if reason.startswith("http_"):
        status = _int_suffix(reason, "http_")
        if status == 429:
            return RetryClass.SLOW, max(policy.slow_floor, retry_after or 0.0)
        if status is not None and 400 <= status < 500:
            return RetryClass.SLOW, max(policy.slow_floor, retry_after or 0.0)
        return RetryClass.RETRY, retry_after or 0.0
    if reason.startswith("server_close:"):
        code = _int_suffix(reason, "server_close:")
        if code == 1013:
            return RetryClass.SLOW, policy.try_again_floor
        if code == 1008:  # policy violation: something we sent was refused
            return RetryClass.SLOW, policy.try_again_floor
    return RetryClass.RETRY, 0.0


def _int_suffix(reason: str, prefix: str) -> int | None:
    try:
        return int(reason[len(prefix) :])
    except ValueError:
        return None


class Backoff:
    """Capped exponential backoff with full jitter.

    Args:
        policy: timing.
        rng: the random source (inject a seeded one in tests).
    """

    __slots__ = ("attempts", "policy", "rng")

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.rng = rng if rng is not None else random.Random()
        self.attempts = 0

    def upper_bound(self, attempt: int) -> float:
        """The jitter range ``[0, bound]`` used for (0-based) ``attempt``."""
        # min() before the power would overflow: 2**1100 is a float overflow.
        exponent = min(attempt, 64)
        return min(self.policy.cap, self.policy.first * (2.0**exponent))

    def next_delay(self, floor: float = 0.0) -> float:
        """Delay before the next attempt; advances the attempt counter."""
        bound = self.upper_bound(self.attempts)
        self.attempts += 1
        return max(floor, self.rng.uniform(0.0, bound))

    def reset(self) -> None:
        self.attempts = 0


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed / open / half-open breaker over consecutive connection failures.

    Args:
        policy: thresholds and cooldowns.
        name: label for log lines.
    """

    __slots__ = ("_cooldown", "failures", "name", "opened_at", "policy", "retry_at", "state")

    def __init__(self, policy: BackoffPolicy, name: str = "") -> None:
        self.policy = policy
        self.name = name
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at: float | None = None
        self.retry_at = 0.0
        self._cooldown = policy.cooldown

    def allow(self, now: float) -> bool:
        """Whether a connection attempt may start now (moves OPEN -> HALF_OPEN when due)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now >= self.retry_at:
            self.state = BreakerState.HALF_OPEN
            log.info("circuit %s half-open: trying one connection", self.name)
            return True
        return self.state is BreakerState.HALF_OPEN

    def record_success(self) -> None:
        """A connection attempt was accepted (its handshake completed)."""
        if self.state is not BreakerState.CLOSED:
            log.info("circuit %s closed: connection healthy again", self.name)
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = None
        self._cooldown = self.policy.cooldown

    def record_failure(self, now: float) -> None:
        """A connection attempt failed (the venue did not accept it)."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self._cooldown = min(self.policy.max_cooldown, self._cooldown * 2)
            self._open(now)
        elif self.state is BreakerState.CLOSED and self.failures >= self.policy.failure_threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = now
        self.retry_at = now + self._cooldown
        log.warning(
            "circuit %s OPEN after %d consecutive failures: no attempts for %.1fs",
            self.name,
            self.failures,
            self._cooldown,
        )
