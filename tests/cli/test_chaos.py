"""``hean chaos storm`` / ``hean chaos soak``: one command each; bad usage is one line and exit
code 2; a storm's report and exit code."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAN = [sys.executable, "-m", "hean"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HEAN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chaos"], "hean chaos needs a mode: storm or soak"),
        (["chaos", "soak", "--symbols", "51"], "--symbols must be 1..50, got 51"),
        (["chaos", "soak", "--books", "40", "--symbols", "30"], "--books must be 1..--symbols"),
        (["chaos", "soak", "--kinds", "public,nope"], "kinds are public,private,trade"),
        (["chaos", "soak", "--every", "3,1"], "need 0 < MIN <= MAX"),
        (["chaos", "storm", "--kind", "trade", "--only", "u_gap"], "not trade faults: u_gap"),
        (["chaos", "storm", "--duration", "0"], "must be a positive number"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_a_short_storm_reports_and_exits_0() -> None:
    proc = run(
        "chaos", "storm", "--kind", "trade", "--seed", "4", "--duration", "2",
        "--every", "0.3,0.6", "--only", "drop,trade_error",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("chaos storm kind=trade seed=4 duration=2s")
    assert "violations=0" in proc.stdout and "VIOLATION" not in proc.stdout
