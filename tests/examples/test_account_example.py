"""examples/account.py: the account heals after a private-link outage, against the emulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "account.py"


def test_account_example_heals_after_the_outage() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "reconciled (start)" in out and "reconciled (gap)" in out
    assert "-> Filled (learned over REST)" in out and "-> Cancelled (learned over REST)" in out
    assert "(Trade, learned over REST)" in out
    assert "equal to the emulator's: True" in out
    assert "executions delivered: 1, distinct: 1" in out
