"""examples/shared_connection.py runs against the built-in emulator and shares one connection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "shared_connection.py"


def test_shared_connection_example_serves_every_consumer_over_one_connection() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "connections opened: {'/v5/public/linear': 1}" in out
    assert "one shared connection, every consumer served" in out
    for name in ("strategy", "router", "risk"):
        assert f"  {name}" in out
