"""The recording benchmark (benchmarks/bench_record.py) still runs and prints every figure.

A tiny run (600 frames, one repeat, a 1 s recording for the speed rows) so the script cannot rot
unnoticed; no timing is checked (the figures belong in docs/benchmarks.md), only that each table
has its rows and that every cell that should hold a number does.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_record.py"
NUMBER = re.compile(r"^[+-]?[\d,]+\.?\d*$")


def rows(out: str, first: str) -> dict[str, list[str]]:
    """The rows of the table whose header starts with ``| first``: name -> the other cells."""
    table: dict[str, list[str]] = {}
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first}"))
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0]] = cells[1:]
    return table


def numbers(cells: list[str]) -> list[str]:
    return [x for cell in cells for x in cell.split(" / ")]


def test_record_benchmark_prints_every_figure() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--messages", "600", "--repeats", "1", "--levels", "1,-1",
         "--rate", "400", "--paced-seconds", "0.25", "--timing", "--timing-span", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout  # fmt: skip
    cost = rows(out, "run ")
    assert list(cost) == [
        "firehose, level 1, whole process (incl. writer thread)",
        "firehose, level 1, event-loop thread only",
        "firehose, level -1, whole process (incl. writer thread)",
        "firehose, level -1, event-loop thread only",
        "paced 400/s, level 1, whole process",
        "paced 400/s, level 1, event-loop thread only",
    ]
    for name, cells in cost.items():
        assert len(cells) == 4 and all(NUMBER.match(x) for x in numbers(cells)), name
    ratios = rows(out, "zstd level")
    assert list(ratios) == ["1", "-1"] and all(float(r[0]) > 1 for r in ratios.values())
    replay = rows(out, "in-process replay")
    assert len(replay) == 2 and all(NUMBER.match(x) for r in replay.values() for x in numbers(r))
    assert any(name.startswith("Replay.run (") for name in replay)
    timing = rows(out, "replay of a 1 s recording")
    assert list(timing) == ["--speed 10 (11 frames)", "max (11 frames)"]
    assert all(NUMBER.match(x) for r in timing.values() for x in r)
