"""The examples run (against the built-in emulator)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_tickers_example_prints_ticks() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "tickers.py"), "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "BTCUSDT" in proc.stdout and "ticks per symbol" in proc.stdout
