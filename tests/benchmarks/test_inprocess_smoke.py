"""The in-process ticker benchmark still runs and its piece-removal cuts still match the code.

Timings are not checked (they belong in docs/benchmarks.md): only that every stage and every
"without" variant ran, so a refactor of ``TickerCache.apply`` cannot silently break the method
behind the published breakdown.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_tickers_inprocess.py"


def test_inprocess_benchmark_runs_every_stage_and_piece() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--messages", "600", "--repeats", "1", "--pieces"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ") and "ns/msg" not in line]
    names = [row.split("|")[1].strip() for row in rows]
    assert names[:4] == ["decode", "session", "merge", "full"]
    assert [n for n in names if n.startswith("full without")] == [
        "full without per-field change times",
        "full without merge into the cached fields",
        "full without float last/bid/ask",
        "full without TickEvent + bus + 3 subscribers",
    ]
