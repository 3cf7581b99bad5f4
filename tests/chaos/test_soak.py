"""The soak in CI (issue 12): a short simulated stretch at Bybit's cadence for 30 symbols with
random faults on every stream kind; memory, descriptors, tasks and per-topic state must stay
flat and every chaos invariant hold. The long run: ``python benchmarks/soak.py`` (a simulated
day, docs/reliability.md)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hean.chaos.soak import SoakConfig, run_soak, source_group
from hean.exchange.bybit.state.tickers import TickerCache
from tests.conftest import TIME_FACTOR

SCALE = 48.0 / TIME_FACTOR
"""A simulated minute in 1.25 s (slower on a slower machine: HEAN_TEST_TIME_FACTOR)."""


@pytest.mark.timeout(150)
async def test_short_soak_stays_flat_and_holds_every_invariant(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)  # pytest keeps every record: that would be our "growth"
    config = SoakConfig(
        hours=8 / 60, scale=SCALE, warmup=7.0, samples=2, every=(60.0, 180.0),
        max_growth=512 << 10,
    )  # fmt: skip
    report = await run_soak(config)
    print(report.text())
    assert report.ok, report.text()
    base = next(s for s in report.samples if s.label == "baseline")
    end = report.samples[-1]
    assert end.label == "end" and end.messages - base.messages > 5000
    assert end.fds <= base.fds + config.fd_slack and end.tasks <= base.tasks + config.fd_slack
    assert end.state["hub.wanted"] == base.state["hub.wanted"] == 30 * 2 + 10
    assert end.state["public0.tickers"] == 30 and end.state["health.watches"] == 70
    assert len(report.faults) - report.warmup_faults >= 6
    assert {k for k, _ in report.faults} == {"public", "private", "trade"}
    assert report.growth["hean"] < 512 << 10


@pytest.mark.timeout(90)
async def test_soak_catches_a_planted_leak(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that keeps every ticker frame it merged must fail the soak on memory."""
    caplog.set_level(logging.ERROR)
    kept: list[Any] = []
    apply = TickerCache.apply

    def leaky(self: TickerCache, frame: Any, now: float) -> Any:
        kept.append(frame)
        return apply(self, frame, now)

    monkeypatch.setattr(TickerCache, "apply", leaky)
    config = SoakConfig(
        hours=3 / 60, scale=SCALE, warmup=3.0, samples=0, kinds=("public",),
        max_growth=256 << 10,
    )  # fmt: skip
    report = await run_soak(config)
    assert "memory" in {v.rule for v in report.violations}, report.text()
    assert "hean/exchange/bybit/protocol/session.py" in "\n".join(report.top_growth)


def test_heap_is_grouped_by_who_holds_it() -> None:
    assert source_group("/x/src/hean/exchange/bybit/transport.py") == "hean"
    assert source_group("/x/src/hean/emulator/market.py") == "emulator"
    assert source_group("/x/src/hean/chaos/invariants.py") == "chaos"
    assert source_group("/usr/lib/python3.11/asyncio/events.py") == "other"
    assert source_group("/site-packages/hean_plugin/x.py") == "other"
