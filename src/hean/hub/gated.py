"""The hub's connect gate: every connection attempt waits for a rate-limit slot first.

The hub needs every connection attempt (the first connect and every reconnect the session
schedules) to wait for a slot of the process-wide :class:`~hean.hub.ratelimit.ConnectionRateLimiter`
first. The exchange layer's hook::

    WsConnection(..., connect_gate: Callable[[], Awaitable[None]] | None = None)
    BybitPublicWebSocket(..., connect_gate: Callable[[], Awaitable[None]] | None = None)

``connect_gate`` is awaited at the start of each connection attempt, before the TCP connect and
the handshake, and outside ``connect_timeout``; if the attempt is cancelled while waiting (a
``disconnect()``), the session is told ``connect_failed("stop")`` exactly as when a handshake is
cancelled; if the gate raises, the attempt fails with reason ``connect_gate``.

This module provides the asyncio side of the limiter (:class:`RateGate`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from hean.core.clock import Clock

if TYPE_CHECKING:
    from hean.hub.ratelimit import ConnectionRateLimiter

__all__ = ["ConnectGate", "RateGate"]


ConnectGate = Callable[[], Awaitable[None]]
"""Awaited before every connection attempt (waits for a rate-limit slot)."""


class RateGate:
    """The asyncio side of a :class:`~hean.hub.ratelimit.ConnectionRateLimiter`.

    Waiters go through one at a time (FIFO): each reserves its slot at the moment it reaches
    the front, sleeps until the slot, and lets the next one in. Reserving at the front, not on
    arrival, matters when the event loop stalls: slots reserved on arrival would all fall due
    together after the stall and go out at once; here, after a stall, at most the bucket's burst
    (plus the one that was already sleeping) goes out together.
    """

    __slots__ = ("_lock", "clock", "limiter", "waits")

    def __init__(self, limiter: ConnectionRateLimiter, clock: Clock) -> None:
        self.limiter = limiter
        self.clock = clock
        self.waits = 0
        self._lock: asyncio.Lock | None = None

    async def wait(self) -> float:
        """Wait for a slot; returns the seconds waited after reaching the front."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            delay = self.limiter.reserve(self.clock.monotonic())
            if delay > 0:
                self.waits += 1
                await self.clock.sleep(delay)
            return delay
