"""``wall_offset``: monotonic to Unix time, as precisely as the clock tells."""

from __future__ import annotations

import pytest

from hean.core.clock import ManualClock, SystemClock, wall_offset


def test_the_offset_keeps_the_clocks_sub_millisecond_part() -> None:
    clock = ManualClock(start=1000.0009)
    assert clock.wall_ms() == clock.epoch_ms + 1_000_000  # rounded down to the ms
    offset = wall_offset(clock)
    assert (clock.monotonic() + offset) * 1000 == pytest.approx(clock.epoch_ms + 1_000_000.9)


def test_a_clock_with_wall_ms_only_falls_back_to_it() -> None:
    class Coarse:
        def monotonic(self) -> float:
            return 5.25

        def wall_ms(self) -> int:
            return 1_700_000_000_123

        async def sleep(self, seconds: float) -> None:
            return None

    assert wall_offset(Coarse()) == pytest.approx(1_700_000_000.123 - 5.25)


def test_the_system_clock_agrees_with_its_wall_ms() -> None:
    clock = SystemClock()
    derived_ms = (clock.monotonic() + wall_offset(clock)) * 1000
    assert abs(derived_ms - clock.wall_ms()) < 1000  # the same clock, not a timing assertion
