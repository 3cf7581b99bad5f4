"""examples/orders.py places, amends and cancels an order against the built-in emulator and
prints the private events that follow."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "orders.py"


def test_orders_example_prints_the_private_events() -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - started < 20
    lines = proc.stdout.splitlines()
    orders = [line for line in lines if line.startswith("  [order]")]
    statuses = [line.rsplit(" (", 1)[0].split()[-1] for line in orders]
    assert statuses == ["New", "New", "Cancelled", "Filled"], proc.stdout
    assert "Buy 0.1 @ 1000 New" in orders[0] and "Buy 0.2 @ 1100 New" in orders[1]
    assert any(line.startswith("  [execution] execution") for line in lines)
    assert sum(line.startswith("  [position]") for line in lines) == 4
    assert any(line.startswith("  [wallet]") for line in lines)
    assert "emulator's ground truth: position size 0.05" in proc.stdout
