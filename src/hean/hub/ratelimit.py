"""Connection-rate limiting for every connection of a process, sans-I/O.

Bybit asks clients not to open more than 500 connections in 5 minutes per host and not to
connect/disconnect frequently (protocol.md §3.4). After an exchange outage every connection of
a process wants to come back at once; the session's full-jitter backoff spreads them, and the
limiter here puts a hard bound on top: every connection attempt (first connect and reconnect)
takes one slot first.

Two rules, both enforced on every slot:

* a **token bucket**: at most ``burst`` attempts at once, refilled at ``rate`` per second;
* a **sliding window**: at most ``window_max`` attempts in any ``window`` seconds (the default,
  400 in 300 s, stays well under Bybit's 500 per 5 minutes even if the bucket runs flat out).

Nothing here reads a clock or sleeps: :meth:`ConnectionRateLimiter.reserve` is given ``now``
(monotonic seconds) and returns how long the caller must wait before its attempt. Reservations
are first come, first served: the k-th waiting attempt is scheduled k slots later, so a storm is
spread evenly at the configured rate instead of retried in bursts.
"""

from __future__ import annotations

import math
from collections import deque
from urllib.parse import urlsplit

__all__ = [
    "ConnectionRateLimiter",
    "SlidingWindow",
    "TokenBucket",
    "shared_limiter",
]


class TokenBucket:
    """A token bucket whose tokens can be reserved in the future.

    Args:
        rate: tokens added per second (> 0).
        burst: bucket size: tokens available at once (>= 1). The bucket starts full.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._last: float | None = None

    def tokens(self, now: float) -> float:
        """Tokens left at ``now`` (or, while slots are reserved ahead of ``now``, at the last
        reserved slot)."""
        if self._last is None:
            return float(self.burst)
        t = max(now, self._last)
        return min(float(self.burst), self._tokens + (t - self._last) * self.rate)

    def ready_at(self, now: float) -> float:
        """The earliest time ``>= now`` at which one token is available."""
        if self._last is None:
            return now
        t = max(now, self._last)
        tokens = min(float(self.burst), self._tokens + (t - self._last) * self.rate)
        if tokens >= 1.0:
            return t
        return t + (1.0 - tokens) / self.rate

    def take(self, at: float) -> None:
        """Use one token at time ``at``, which must be ``>= ready_at(...)`` of the caller."""
        if self._last is None:
            self._tokens = float(self.burst) - 1.0
        else:
            t = max(at, self._last)
            self._tokens = min(float(self.burst), self._tokens + (t - self._last) * self.rate) - 1.0
            at = t
        self._last = at


class SlidingWindow:
    """At most ``limit`` events in any window of ``window`` seconds (exact, O(1) per event)."""

    __slots__ = ("_times", "limit", "window")

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        if not (window > 0 and math.isfinite(window)):
            raise ValueError(f"window must be a finite number > 0, got {window!r}")
        self.limit = int(limit)
        self.window = float(window)
        self._times: deque[float] = deque(maxlen=self.limit)

    def ready_at(self, now: float) -> float:
        """The earliest time ``>= now`` at which one more event keeps the rule."""
        times = self._times
        t = max(now, times[-1]) if times else now
        if len(times) == self.limit:
            t = max(t, times[0] + self.window)
        return t

    def take(self, at: float) -> None:
        """Record an event at ``at`` (never earlier than the last one recorded)."""
        times = self._times
        if times and at < times[-1]:
            at = times[-1]
        times.append(at)

    def count(self, now: float) -> int:
        """Events recorded in ``(now - window, now]`` (future reservations included)."""
        lo = now - self.window
        return sum(1 for t in self._times if t > lo)


class ConnectionRateLimiter:
    """Slots for new connections: a token bucket plus a sliding-window cap. Sans-I/O.

    Args:
        rate: sustained connection attempts per second.
        burst: attempts allowed at once.
        window: length of the long window, seconds.
        window_max: attempts allowed in any ``window`` seconds.

    The defaults (5/s, burst 10, 400 per 300 s) are well inside Bybit's 500 per 5 minutes per
    host. Attributes ``granted``, ``delayed`` and ``max_delay`` count what happened.
    """

    __slots__ = ("bucket", "delayed", "granted", "max_delay", "total_delay", "window")

    def __init__(
        self,
        rate: float = 5.0,
        burst: int = 10,
        *,
        window: float = 300.0,
        window_max: int = 400,
    ) -> None:
        self.bucket = TokenBucket(rate, burst)
        self.window = SlidingWindow(window_max, window)
        self.granted = 0
        """Slots handed out."""
        self.delayed = 0
        """Slots that had to wait (delay > 0)."""
        self.max_delay = 0.0
        self.total_delay = 0.0

    @property
    def rate(self) -> float:
        return self.bucket.rate

    @property
    def burst(self) -> int:
        return self.bucket.burst

    def ready_at(self, now: float) -> float:
        """When the next slot would be granted (without reserving it)."""
        t = max(self.bucket.ready_at(now), self.window.ready_at(now))
        # Tokens only grow with time, so the bucket is still ready at the later time t.
        return t

    def reserve(self, now: float) -> float:
        """Reserve the next slot; returns the seconds to wait (``>= 0``) before connecting."""
        at = self.ready_at(now)
        self.bucket.take(at)
        self.window.take(at)
        delay = at - now
        self.granted += 1
        if delay > 0:
            self.delayed += 1
            self.total_delay += delay
            if delay > self.max_delay:
                self.max_delay = delay
        return delay

    def __repr__(self) -> str:
        return (
            f"ConnectionRateLimiter(rate={self.rate:g}/s, burst={self.burst}, "
            f"window={self.window.limit}/{self.window.window:g}s, granted={self.granted}, "
            f"delayed={self.delayed})"
        )


_SHARED: dict[str, ConnectionRateLimiter] = {}


def shared_limiter(url: str) -> ConnectionRateLimiter:
    """The process-wide limiter of ``url``'s host (created with the defaults on first use).

    Bybit counts connections per WebSocket domain, so every hub in a process that connects to
    the same host shares one limiter unless it is given its own.
    """
    host = urlsplit(url).netloc.lower() or url
    limiter = _SHARED.get(host)
    if limiter is None:
        limiter = _SHARED[host] = ConnectionRateLimiter()
    return limiter
