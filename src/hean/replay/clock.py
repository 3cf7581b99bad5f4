"""``ReplayClock``: the simulated clock of an in-process replay.

Time is the recording's: :meth:`ReplayClock.wall_ms` is the recorded wall time and
:meth:`ReplayClock.monotonic` the seconds since the first record (plus ``origin``), so ages,
staleness and gaps measured during a replay are those of the live run. Only the replay moves it
(:meth:`advance_to`); :meth:`sleep` suspends until the replay has moved past the deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["ReplayClock"]


class ReplayClock:
    """A :class:`~hean.core.clock.Clock` moved by the replay.

    Args:
        start_ns: Unix ns of the first record.
        origin: the monotonic value at ``start_ns``.
    """

    __slots__ = ("_now", "_seq", "_sleepers", "now_ns", "origin", "start_ns")

    def __init__(self, start_ns: int, origin: float = 1000.0) -> None:
        self.start_ns = start_ns
        self.origin = origin
        self.now_ns = start_ns
        self._now = origin
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def wall_ms(self) -> int:
        return self.now_ns // 1_000_000

    def wall_time(self) -> float:
        """The recorded wall time in seconds, not rounded to the ms."""
        return self.now_ns / 1e9

    def at(self, t_ns: int) -> float:
        """The monotonic value at Unix ns ``t_ns``."""
        return self.origin + (t_ns - self.start_ns) / 1e9

    def advance_to(self, t_ns: int) -> int:
        """Move to ``t_ns`` (never backwards); wakes due sleepers. Returns how many woke."""
        if t_ns > self.now_ns:
            self.now_ns = t_ns
            self._now = self.origin + (t_ns - self.start_ns) / 1e9
        woken = 0
        sleepers = self._sleepers
        while sleepers and sleepers[0][0] <= self.now_ns:
            _, _, fut = heapq.heappop(sleepers)
            if not fut.done():
                fut.set_result(None)
                woken += 1
        return woken

    def next_wakeup(self) -> int | None:
        """Unix ns of the earliest sleeper's deadline."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self.now_ns + int(seconds * 1e9)
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        await fut

    def __repr__(self) -> str:
        return f"ReplayClock(now={self._now:.6f}, wall_ms={self.wall_ms()})"
