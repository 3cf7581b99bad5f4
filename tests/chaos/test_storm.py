"""Short chaos storms in CI, one per stream kind (issue 12): a seeded schedule of every fault
the emulator injects, invariants checked continuously and at the end. A failing seed prints the
command that replays it. The long storm: ``python benchmarks/chaos.py --seed N --duration 600``."""

from __future__ import annotations

import pytest

from hean.chaos import StormConfig, run_storm
from hean.exchange.bybit.protocol.heartbeat import HeartbeatPolicy
from hean.exchange.bybit.state.repair import RepairSchedule
from tests.conftest import TIME_FACTOR

SEED = 12
EVERY = (0.3, 0.8)
"""Faster than the long storm's 1-3 s, so ~10 s covers a full round of fault kinds."""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("kind", "duration"), [("public", 12.0), ("private", 8.0), ("trade", 8.0)])
async def test_short_storm_holds_every_invariant(kind: str, duration: float) -> None:
    config = StormConfig(kind=kind, seed=SEED, duration=duration, scale=TIME_FACTOR, every=EVERY)
    report = await run_storm(config)
    print(report.text())
    assert report.ok, report.text()
    assert len(report.faults) >= duration / EVERY[1]
    if kind == "public":
        assert report.counts["book_events"] > 1000
        assert report.counts["lives"] >= 2  # it did reconnect, and came back
    elif kind == "private":
        assert report.counts["executions_venue"] > 10
    else:
        assert report.counts.get("outcome:answered", 0) > 10


@pytest.mark.timeout(60)
async def test_storm_catches_a_planted_unrepaired_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    """With book repair disabled (the defect of issue 12), a storm of u gaps must fail, name
    the stuck topic and print how to replay it."""
    monkeypatch.setattr(RepairSchedule, "invalid", lambda self, topic, reason, now: False)
    monkeypatch.setattr(RepairSchedule, "due", lambda self, now: [])
    config = StormConfig(
        kind="public", seed=3, duration=3.0, scale=TIME_FACTOR, every=EVERY, only=("u_gap",)
    )
    report = await run_storm(config)
    rules = {v.rule for v in report.violations}
    assert "stuck" in rules or "settle" in rules, report.text()
    assert "replay: python benchmarks/chaos.py --kind public --seed 3" in report.text()


@pytest.mark.timeout(60)
async def test_storm_catches_a_dripping_link_that_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a client that cannot notice a late pong (pong timeout 1000 s), a storm of slow
    drips must fail: a link kept further behind the venue than the heartbeat allows."""

    def lenient(self: HeartbeatPolicy) -> None:
        object.__setattr__(self, "timeout", 1000.0)

    monkeypatch.setattr(HeartbeatPolicy, "__post_init__", lenient)
    config = StormConfig(
        kind="public", seed=3, duration=3.0, scale=TIME_FACTOR, every=EVERY, only=("slow_drip",)
    )
    report = await run_storm(config)
    assert "lagging" in {v.rule for v in report.violations}, report.text()
