"""Reconnect storms: every connection attempt of the process waits for a rate-limit slot."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from hean.core.clock import SystemClock
from hean.core.lifecycle import ConnectionState
from hean.emulator import Emulator
from hean.hub import ConnectionRateLimiter
from hean.hub.gated import RateGate
from tests.conftest import TIME_FACTOR, ms
from tests.hub.conftest import FAST, make_hub, until

SYMBOLS = tuple(f"S{i:02d}USDT" for i in range(24))  # tickers.S00USDT: 15 characters
RATE = 20.0 / TIME_FACTOR
BURST = 4


def attempts(emu: Emulator) -> list[float]:
    return [t for t, ev, _, _ in emu.connection_log if ev == "attempt"]


STEADY = replace(FAST, ping_interval=ms(200), pong_timeout=ms(2000))
"""Heartbeats that a loaded CI machine does not trip: the storm is the only drop these tests
count (a pong 129 ms late once made a fourth of the connections reconnect on their own)."""

SLACK = ms(40)
"""Timing slack: the venue records an attempt when it reads the upgrade request, a little after
the client's slot, by an amount that varies with load (client and venue share one loop)."""


class RecordingLimiter(ConnectionRateLimiter):
    """The hub's limiter, remembering every slot it granted (monotonic time)."""

    def __init__(self, rate: float, burst: int) -> None:
        super().__init__(rate=rate, burst=burst)
        self.slots: list[float] = []

    def reserve(self, now: float) -> float:
        delay = super().reserve(now)
        self.slots.append(now + delay)
        return delay


def assert_attempts_follow_slots(venue: list[float], slots: list[float]) -> None:
    """Every attempt the venue saw came after its slot: the n-th attempt no earlier than the
    n-th slot (same monotonic clock; the venue may read an upgrade late under load, never
    early)."""
    assert len(venue) == len(slots), (len(venue), len(slots))
    for seen, slot in zip(sorted(venue), sorted(slots), strict=True):
        assert seen >= slot - 1e-3, (seen - slot, [round(t - slots[0], 4) for t in slots])


def assert_within_rate(times: list[float], rate: float, burst: int) -> None:
    """No stretch of attempts is denser than the bucket allows (one attempt and ``SLACK`` of
    timing tolerance). Without the limiter, 12 attempts land within ~50 ms and this fails."""
    for i in range(len(times)):
        for j in range(i, len(times)):
            allowed = burst + rate * (times[j] - times[i] + SLACK) + 1
            assert j - i + 1 <= allowed, (i, j, [round(t - times[0], 4) for t in times])


@pytest.mark.emulator(symbols={"linear": SYMBOLS}, ticker_interval=ms(50))
async def test_after_the_venue_drops_everything_reconnects_stay_within_the_rate_limit(
    emulator: Emulator,
) -> None:
    limiter = RecordingLimiter(rate=RATE, burst=BURST)
    # two topics per connection
    hub = make_hub(emulator, limiter=limiter, args_budget=30, options=STEADY)
    try:
        consumers = [hub.consumer(f"c{i}") for i in range(3)]
        for i, c in enumerate(consumers):
            await c.subscribe_tickers(SYMBOLS[i * 8 : (i + 2) * 8])  # overlapping
        conns = hub.connections("linear")
        assert len(conns) == 12
        await until(lambda: len(emulator.live_connections("linear")) == 12, timeout=5)
        # the pace is judged on the slots granted (exact), and the venue saw no attempt before
        # its slot (the venue's own read times stretch under load: client and venue share a loop)
        assert_within_rate(limiter.slots, RATE, BURST)
        assert_attempts_follow_slots(attempts(emulator), limiter.slots)
        slots = limiter.slots
        assert slots[-1] - slots[0] >= (12 - BURST) / RATE * 0.99  # the bucket did the spacing

        await asyncio.sleep(BURST / RATE + ms(100))  # the bucket refills; connections are stable
        before = len(emulator.connection_log)
        slots_before = len(limiter.slots)
        t_drop = time.monotonic()
        assert emulator.drop_connections() == 12
        await until(
            lambda: all(ws.state is ConnectionState.LIVE and ws.stats.reconnects for ws in conns),
            timeout=5,
        )
        storm = [t for t, ev, _, _ in emulator.connection_log[before:] if ev == "attempt"]
        assert len(storm) == 12  # one attempt each: none failed, none doubled up
        assert_within_rate(limiter.slots[slots_before:], RATE, BURST)
        assert_within_rate(limiter.slots, RATE, BURST)
        assert_attempts_follow_slots(storm, limiter.slots[slots_before:])
        # spread over (12 - burst) / rate, not all in the same instant
        storm_slots = limiter.slots[slots_before:]
        assert storm_slots[-1] - storm_slots[0] >= (12 - BURST) / RATE * 0.99
        assert storm[-1] - t_drop < 2.0

        # every topic came back, on the connection that held it before
        def back() -> bool:
            live = emulator.live_connections("linear")
            subs = set().union(*(c.subscriptions for c in live)) if live else set()
            return len(live) == 12 and subs == {f"tickers.{s}" for s in SYMBOLS}

        await until(back, timeout=5)
        for ws in conns:
            assert len(ws.session.subscriptions.topics) == 2
        received = {s: hub.ticker(s).updated_at for s in SYMBOLS}  # type: ignore[union-attr]
        await until(
            lambda: all(
                hub.ticker(s).updated_at > received[s]  # type: ignore[union-attr, operator]
                for s in SYMBOLS
            )
        )
        assert hub.stats().connect_slots == 24
    finally:
        await hub.close()


async def test_disconnect_wins_over_a_connection_waiting_for_its_slot(
    emulator: Emulator,
) -> None:
    limiter = ConnectionRateLimiter(rate=0.001, burst=1)  # the second slot is ~17 min away
    # one topic per connection
    hub = make_hub(emulator, limiter=limiter, args_budget=16, options=STEADY)
    c = hub.consumer("c")
    await c.subscribe_tickers(["BTCUSDT", "ETHUSDT"])
    conns = hub.connections()
    assert len(conns) == 2
    await until(lambda: conns[0].state is ConnectionState.LIVE)
    assert conns[1].state is ConnectionState.CONNECTING  # waiting at the gate
    t0 = time.monotonic()
    await hub.close()
    assert time.monotonic() - t0 < 1.0
    assert [ws.state for ws in conns] == [ConnectionState.CLOSED, ConnectionState.CLOSED]
    assert len(attempts(emulator)) == 1
    await asyncio.sleep(ms(50))
    assert not emulator.live_connections()


async def test_after_an_event_loop_stall_slots_do_not_all_go_out_together() -> None:
    """Slots are reserved when a waiter reaches the front, so a stalled loop cannot release a
    backlog of already-due slots at once: at most the burst plus one goes out together."""
    limiter = ConnectionRateLimiter(rate=RATE, burst=2)
    gate = RateGate(limiter, SystemClock())
    released: list[float] = []

    async def connect() -> None:
        await gate.wait()
        released.append(time.monotonic())

    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(connect()) for _ in range(10)]
    await until(lambda: len(released) >= 3)
    time.sleep(8 / RATE)  # the loop stalls for 8 slot intervals  # noqa: ASYNC251
    await asyncio.gather(*tasks)
    after = [t for t in released if t > released[2]]
    together = [t for t in after if t - after[0] < 1 / RATE / 4]
    assert len(together) <= 2 + 1, [round(t - released[0], 3) for t in released]
    assert_within_rate(released, RATE, 2)
