"""Client-side rate limiting and the retry policy, sans-I/O (rest.md §3).

Times are **server** milliseconds (local wall time corrected by the measured clock offset),
because ``X-Bapi-Limit-Reset-Timestamp`` is server time. Nothing here reads a clock or sleeps:
the shell asks how long to wait and does the waiting.

* :class:`RateLimitInfo` / :func:`parse_limit_headers`: the ``X-Bapi-Limit`` (quota),
  ``X-Bapi-Limit-Status`` (remaining) and ``X-Bapi-Limit-Reset-Timestamp`` headers.
* :func:`endpoint_group`: Bybit counts per UID per endpoint (order entry also per category
  family: linear and inverse share one quota). Market endpoints have no per-UID limit.
* :class:`RateLimiter`: follows the headers. When the last answer of a group said nothing is
  left, requests of that group wait until the window frees (the reset time when it lies ahead;
  otherwise one rolling window, 1 s, after that answer). A ``10006`` blocks the group until its
  reset time (``now + 2 s`` when the header is missing, as pybit does). Requests sent but not yet
  answered are counted against what is left, so a burst does not overshoot. An IP-wide window
  (600 requests / 5 s, rest.md §3.1) is kept for the whole client.
* :class:`RetryPolicy`: which failures are retried, how often and after how long. Retried
  (bounded by ``max_retries``, with jittered exponential backoff, never without a wait):
  ``10006`` and other rate limits (waiting until the reset time when known), HTTP 403 / 429,
  HTTP 5xx, ``10000`` / ``10016``, transport errors. Never retried: auth, permission, parameter
  and business errors. ``10002`` (timestamp): at most once, after re-syncing the clock. Order
  entry (not idempotent) is retried only when the server certainly did not process it (rate
  limits, ``10002``), never after a server error or a lost answer (the order may exist).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from hean.exchange.bybit.rest.errors import (
    RestError,
    RestRateLimitError,
    RestServerError,
    RestTimestampError,
    RestTransportError,
)

__all__ = [
    "DEFAULT_BLOCK_MS",
    "ORDER_ENTRY_PATHS",
    "RateLimitInfo",
    "RateLimiter",
    "Retry",
    "RetryPolicy",
    "endpoint_group",
    "parse_limit_headers",
]

DEFAULT_BLOCK_MS = 2_000
"""How long a ``10006`` without ``X-Bapi-Limit-Reset-Timestamp`` blocks its group."""

ORDER_ENTRY_PATHS = frozenset(
    {
        "/v5/order/create",
        "/v5/order/amend",
        "/v5/order/cancel",
        "/v5/order/cancel-all",
        "/v5/order/create-batch",
        "/v5/order/amend-batch",
        "/v5/order/cancel-batch",
    }
)


class RateLimitInfo(msgspec.Struct, frozen=True, gc=False):
    """The ``X-Bapi-Limit*`` headers of one response."""

    limit: int | None
    """``X-Bapi-Limit``: the group's quota per window."""
    remaining: int | None
    """``X-Bapi-Limit-Status``: requests left in the current window."""
    reset_ms: int | None
    """``X-Bapi-Limit-Reset-Timestamp``: server ms; now when allowed, the unblock time when
    blocked."""


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    low = name.lower()
    for key, val in headers.items():
        if key.lower() == low:
            return val
    return None


def parse_limit_headers(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """The rate-limit headers of a response, or ``None`` when it has none of them (market
    endpoints). Unparseable values count as missing."""
    limit = _header(headers, "X-Bapi-Limit")
    status = _header(headers, "X-Bapi-Limit-Status")
    reset = _header(headers, "X-Bapi-Limit-Reset-Timestamp")
    if limit is None and status is None and reset is None:
        return None
    return RateLimitInfo(_int(limit), _int(status), _int(reset))


def endpoint_group(method: str, path: str, category: str | None = None) -> str | None:
    """The per-UID limit group of a request, or ``None`` for market (IP-limited) endpoints.

    Query endpoints count per path. Order entry counts per path and category family
    (``linear`` and ``inverse`` share the futures quota; rest.md §3.2).
    """
    if path.startswith("/v5/market/"):
        return None
    if method.upper() == "POST" and path in ORDER_ENTRY_PATHS:
        family = "futures" if category in ("linear", "inverse") else (category or "")
        return f"{path}:{family}"
    return path


@dataclass(slots=True)
class _Group:
    limit: int | None = None
    remaining: int | None = None
    reset_ms: int | None = None
    answered_ms: int = 0
    in_flight: int = 0
    blocked_until_ms: int = 0


class RateLimiter:
    """Per-group waits that follow Bybit's rate-limit headers (see the module docstring).

    Args:
        window_ms: the per-UID window (Bybit: rolling 1 s).
        ip_limit: requests allowed per ``ip_window_ms`` for the whole client (``None``: off).
        ip_window_ms: the IP window (Bybit: 5 s).
    """

    def __init__(
        self, window_ms: int = 1_000, ip_limit: int | None = 600, ip_window_ms: int = 5_000
    ) -> None:
        if window_ms <= 0 or ip_window_ms <= 0:
            raise ValueError("windows must be > 0 ms")
        if ip_limit is not None and ip_limit < 1:
            raise ValueError("ip_limit must be >= 1 or None")
        self.window_ms = window_ms
        self.ip_limit = ip_limit
        self.ip_window_ms = ip_window_ms
        self._groups: dict[str, _Group] = {}
        self._sent: deque[int] = deque()
        self.waits = 0
        """Times a request had to wait (counted by :meth:`wait_ms` answers > 0)."""

    def group(self, name: str) -> RateLimitInfo | None:
        """What the last answer of group ``name`` said (``None``: nothing known)."""
        g = self._groups.get(name)
        if g is None or (g.limit is None and g.remaining is None and g.reset_ms is None):
            return None
        return RateLimitInfo(g.limit, g.remaining, g.reset_ms)

    def wait_ms(self, group: str | None, now_ms: int) -> int:
        """How long to wait before sending a request of ``group`` (0: send now)."""
        wait = 0
        if self.ip_limit is not None:
            sent = self._sent
            horizon = now_ms - self.ip_window_ms
            while sent and sent[0] <= horizon:
                sent.popleft()
            if len(sent) >= self.ip_limit:
                wait = sent[0] + self.ip_window_ms - now_ms
        if group is not None:
            g = self._groups.get(group)
            if g is not None:
                wait = max(wait, g.blocked_until_ms - now_ms, self._quota_wait(g, now_ms))
        wait = max(wait, 0)
        if wait:
            self.waits += 1
        return wait

    def _quota_wait(self, g: _Group, now_ms: int) -> int:
        if g.remaining is None:
            return 0
        if g.remaining - g.in_flight > 0:
            return 0
        reset = g.reset_ms
        # a reset time after the answer is when the window frees; "now" (an allowed answer)
        # says nothing, so assume one rolling window from that answer
        if reset is not None and reset > g.answered_ms:
            free_at = reset
        else:
            free_at = g.answered_ms + self.window_ms
        if now_ms >= free_at:
            g.remaining = None  # a new window: unknown until the next answer
            return 0
        return free_at - now_ms

    def on_sent(self, group: str | None, now_ms: int) -> None:
        """A request of ``group`` is being sent."""
        if self.ip_limit is not None:
            self._sent.append(now_ms)
        if group is not None:
            self._groups.setdefault(group, _Group()).in_flight += 1

    def on_answer(
        self, group: str | None, info: RateLimitInfo | None, now_ms: int, *, blocked: bool = False
    ) -> None:
        """The answer to a request of ``group`` arrived (``info``: its headers, if any;
        ``blocked``: it was a ``10006``). A blocked group waits until the reset time, or
        :data:`DEFAULT_BLOCK_MS` when the answer did not give one in the future."""
        if group is None:
            return
        g = self._groups.setdefault(group, _Group())
        g.in_flight = max(0, g.in_flight - 1)
        if info is not None:
            g.limit = info.limit if info.limit is not None else g.limit
            g.remaining = info.remaining
            g.reset_ms = info.reset_ms
            g.answered_ms = now_ms
        if blocked:
            reset = info.reset_ms if info is not None else None
            until = reset if reset is not None and reset > now_ms else now_ms + DEFAULT_BLOCK_MS
            g.blocked_until_ms = max(g.blocked_until_ms, until)
            g.remaining = 0
            g.answered_ms = now_ms

    def on_lost(self, group: str | None) -> None:
        """A request of ``group`` got no answer (network error)."""
        if group is not None and group in self._groups:
            g = self._groups[group]
            g.in_flight = max(0, g.in_flight - 1)


@dataclass(frozen=True, slots=True)
class Retry:
    """Send the request again after ``delay`` seconds (re-syncing the clock first when
    ``resync``)."""

    delay: float
    resync: bool = False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failures are retried and when (see the module docstring).

    Args:
        max_retries: retries per call (0: never retry); the ``10002`` retry counts too.
        base_delay: first backoff in seconds (doubled per retry, jittered ±``jitter``).
        max_delay: backoff cap.
        jitter: fraction of the backoff randomised (0 … 1).
        max_rate_limit_wait: a rate-limit reset further away than this is not waited for (the
            error is raised instead).
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0
    jitter: float = 0.5
    max_rate_limit_wait: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not 0.001 <= self.base_delay <= self.max_delay:
            raise ValueError("need 0.001 <= base_delay <= max_delay")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")

    def backoff(self, retries: int, rng: random.Random) -> float:
        """The wait before retry number ``retries + 1``: exponential, capped, jittered, and
        never zero."""
        delay = min(self.max_delay, self.base_delay * (2.0**retries))
        return delay * (1.0 - self.jitter + 2.0 * self.jitter * rng.random())

    def decide(
        self,
        error: RestError,
        *,
        retries: int,
        resynced: bool,
        idempotent: bool,
        now_ms: int,
        rng: random.Random,
    ) -> Retry | None:
        """Whether (and when) to send again after ``error``.

        Args:
            retries: retries already made for this call.
            resynced: the clock was already re-synced for this call (10002 retried once).
            idempotent: the request may be repeated safely (queries; not order entry).
            now_ms: server-time estimate, ms.
        """
        if retries >= self.max_retries:
            return None
        if isinstance(error, RestTimestampError):
            return None if resynced else Retry(0.0, resync=True)
        if isinstance(error, RestRateLimitError):
            if error.ret_code in (10006, 10018):
                reset = error.limit.reset_ms if error.limit is not None else None
                until = reset if reset is not None and reset > now_ms else now_ms + DEFAULT_BLOCK_MS
                wait = (until - now_ms) / 1000.0
                if wait > self.max_rate_limit_wait:
                    return None
                # a little jitter after the reset, so parallel callers do not all fire at once
                return Retry(wait + self.base_delay * self.jitter * rng.random() + 0.001)
            return Retry(self.backoff(retries, rng))
        if isinstance(error, RestServerError | RestTransportError):
            return Retry(self.backoff(retries, rng)) if idempotent else None
        return None
