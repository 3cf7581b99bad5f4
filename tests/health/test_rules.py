"""The alert rules: valid for promtool, their unit tests pass, and they use real metric names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hean.core.bus import EventBus
from hean.core.clock import ManualClock
from hean.health import StalenessPolicy
from tests.health.test_monitor import Harness

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "hean-rules.yml"
RULE_TESTS = ROOT / "ops" / "prometheus" / "tests.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("HEAN_REQUIRE_PROMTOOL"),
    reason="promtool not installed (apt-get install -y prometheus); .ci/run installs it",
)


@needs_promtool
def test_promtool_check_rules() -> None:
    assert PROMTOOL is not None, "promtool is required here (HEAN_REQUIRE_PROMTOOL)"
    proc = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    assert PROMTOOL is not None, "promtool is required here (HEAN_REQUIRE_PROMTOOL)"
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


async def test_rules_use_metrics_that_exist_and_alerts_have_runbook_sections() -> None:
    bus = EventBus()
    await bus.start()
    h = Harness(bus, ManualClock(), policy=StalenessPolicy())
    h.go_live()
    h.subscribe(["tickers.BTCUSDT", "orderbook.50.BTCUSDT"])
    h.advance(0.5, symbols=["BTCUSDT"])
    h.drop("heartbeat_timeout")
    text = generate_latest(h.health.registry).decode()
    exported = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    # families with no samples in this run (no lag on books here, no bus alarms) still exist
    declared = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    known = exported | {f"{n}_total" for n in declared} | {f"{n}_bucket" for n in declared}
    known |= declared
    rules = RULES.read_text()
    used = set(re.findall(r"\b(hean_\w+)", rules))
    assert used, "no metric in the rules?"
    assert used <= known, f"rules use unknown metrics: {sorted(used - known)}"
    alerts = re.findall(r"^\s*- alert: (\w+)", rules, re.M)
    assert len(alerts) >= 8
    runbook = RUNBOOK.read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    for alert in alerts:
        assert f"docs/runbook.md#{alert.lower()}" in rules
        assert alert.lower() in headings, f"runbook has no section for {alert}"
    await bus.stop()
