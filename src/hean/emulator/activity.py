"""Simulated activity on a demo account, so its private streams have something to say.

The emulator's accounts only change when a client trades. For a demo (``hean monitor --sim
--private --sim-activity 2``, ``hean sim --activity 2``) :class:`DemoActivity` makes things
happen to one account at a steady rate, through the same paths as the private-outage scenario
(:func:`hean.emulator.rest_scenario.outage_events`), while its link stays up, so every change is
pushed live on its private connections:

* orders are placed (limit orders 5 to 20 ticks behind the touch, one to five lots), two per
  step while fewer than ``max_open`` are open;
* one open order fills completely and another partly (a simulated taker trades against them at
  their price: executions, position and wallet messages follow);
* one open order is cancelled (``CancelByUser``).

Deterministic for a seed (the step number varies the choices). Usage::

    activity = DemoActivity(emu, DEFAULT_API_KEY, rate=2.0)
    activity.start()
    ...
    await activity.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import TYPE_CHECKING

from hean.emulator.rest_scenario import outage_events

if TYPE_CHECKING:
    from hean.emulator.server import Emulator

__all__ = ["DemoActivity"]

log = logging.getLogger("hean.emulator.activity")


class DemoActivity:
    """Places, fills and cancels orders of one account ``rate`` times a second (see the module
    docstring).

    Args:
        emulator: a started emulator.
        api_key: the account (e.g. ``hean.emulator.DEFAULT_API_KEY``).
        rate: steps per second (> 0).
        max_open: no new orders while this many are open.
        seed: the choices' seed.
    """

    def __init__(
        self,
        emulator: Emulator,
        api_key: str,
        *,
        rate: float = 1.0,
        max_open: int = 8,
        seed: int = 0,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise ValueError(f"rate must be a number of steps per second, got {rate!r}")
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of steps per second, got {rate!r}")
        if max_open < 2:
            raise ValueError(f"max_open must be at least 2, got {max_open!r}")
        self.emulator = emulator
        self.api_key = api_key
        self.rate = float(rate)
        self.max_open = max_open
        self.seed = seed
        self.steps = 0
        self.placed = 0
        self.filled = 0
        self.partially_filled = 0
        self.cancelled = 0
        self._task: asyncio.Task[None] | None = None

    def step(self) -> None:
        """One step: place (while below ``max_open``), fill one, fill one partly, cancel one."""
        acct = self.emulator.trading.by_key(self.api_key)
        open_orders = sum(1 for o in acct.orders.values() if o.is_open)
        busy = open_orders >= 4  # keep a few resting: fill and cancel only from a stock
        summary = outage_events(
            self.emulator,
            self.api_key,
            fills=1 if busy else 0,
            partial_fills=1 if busy else 0,
            cancels=1 if busy else 0,
            new_orders=2 if open_orders < self.max_open else 0,
            seed=self.seed * 1_000_003 + self.steps,
        )
        self.steps += 1
        self.placed += len(summary.placed)
        self.filled += len(summary.filled)
        self.partially_filled += len(summary.partially_filled)
        self.cancelled += len(summary.cancelled)

    def start(self) -> None:
        """Start stepping in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="emulator-demo-activity"
            )

    async def stop(self) -> None:
        """Stop stepping (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        while True:
            try:
                self.step()
            except Exception as exc:  # a demo must not die of one refused order: say it, go on
                log.warning("demo activity step failed: %s", exc)
            await asyncio.sleep(interval)
