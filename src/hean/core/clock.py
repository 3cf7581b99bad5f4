"""The one seam for time.

Everything in HEAN that needs the time takes a :class:`Clock`. Protocol logic (the sans-I/O core)
never reads a clock at all: it is *given* ``now`` (monotonic seconds) by the asyncio shell, which
reads it from the injected clock. Tests use :class:`ManualClock` to move time by hand, so rules
such as "a pong later than 10 s means the link is dead" are checked exactly, without sleeping.

Monotonic time is used for every timeout, deadline and age. Wall time (Unix milliseconds) is used
only where the exchange needs it: auth ``expires``, trade headers, and exchange-to-local lag.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock", "wall_offset"]


@runtime_checkable
class Clock(Protocol):
    """Source of time for the asyncio shells."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (never goes back; arbitrary origin)."""
        ...

    def wall_ms(self) -> int:
        """Unix time in whole milliseconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.time_ns` and :func:`asyncio.sleep`."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wall_time(self) -> float:
        """Unix time in seconds, to the system clock's precision (see :func:`wall_offset`)."""
        return time.time_ns() / 1e9

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to; for tests of time-based logic.

    ``wall_ms`` is derived from the monotonic value plus a fixed epoch, so skew can be simulated
    with :attr:`wall_offset_ms`. ``sleep`` advances the clock immediately and yields once.
    """

    __slots__ = ("_now", "epoch_ms", "wall_offset_ms")

    def __init__(self, start: float = 1000.0, epoch_ms: int = 1_700_000_000_000) -> None:
        self._now = start
        self.epoch_ms = epoch_ms
        self.wall_offset_ms = 0

    def monotonic(self) -> float:
        return self._now

    def wall_ms(self) -> int:
        return self.epoch_ms + int(self._now * 1000) + self.wall_offset_ms

    def wall_time(self) -> float:
        """Unix time in seconds, not rounded to the ms (see :func:`wall_offset`)."""
        return (self.epoch_ms + self.wall_offset_ms) / 1000.0 + self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new monotonic value."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now:.3f})"


def wall_offset(clock: Clock) -> float:
    """Seconds to add to ``clock.monotonic()`` to get Unix time, as precisely as the clock tells.

    A clock with a ``wall_time()`` method (Unix seconds as a float: :class:`SystemClock`,
    :class:`ManualClock`, the replay's clock) gives it to its own precision. ``wall_ms()`` alone
    is rounded down to the millisecond, so an offset taken from it puts every time derived from
    it up to 1 ms early: a message the venue stamped (to the ms) just before it arrived would
    seem to arrive before it was sent, a negative lag. Other clocks fall back to ``wall_ms()``.
    """
    precise = getattr(clock, "wall_time", None)
    if callable(precise):
        wall = float(precise())
        return wall - clock.monotonic()
    return clock.wall_ms() / 1000.0 - clock.monotonic()
