"""DemoActivity: simulated orders, fills and cancels on a demo account (issue 13, item 11)."""

from __future__ import annotations

import pytest

from hean.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from hean.emulator.activity import DemoActivity


async def test_steps_place_fill_and_cancel_within_the_open_bound() -> None:
    async with Emulator(EmulatorConfig(auto_tick=False)) as emu:
        activity = DemoActivity(emu, DEFAULT_API_KEY, rate=1.0, max_open=6, seed=3)
        acct = emu.trading.by_key(DEFAULT_API_KEY)
        for _ in range(12):
            activity.step()
            assert sum(1 for o in acct.orders.values() if o.is_open) <= 6 + 2
        assert activity.steps == 12 and activity.placed >= 6
        assert activity.filled >= 3 and activity.cancelled >= 3
        assert activity.partially_filled >= 1
        assert acct.executions_total >= activity.filled


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), float("inf"), True])
async def test_bad_rates_are_refused(rate: object) -> None:
    async with Emulator(EmulatorConfig(auto_tick=False)) as emu:
        with pytest.raises(ValueError, match="rate"):
            DemoActivity(emu, DEFAULT_API_KEY, rate=rate)  # type: ignore[arg-type]
