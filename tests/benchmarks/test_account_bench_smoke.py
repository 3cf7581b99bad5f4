"""The account benchmark still runs end to end with tiny sizes and prints its rows.

Timings are not checked (they belong in docs/benchmarks.md): only that both reconciliation rows
(raised and Bybit's default limits) and both private-stream rows (before and after the account)
were printed. The benchmark itself stops with an error when a run does not reconcile the account
to the venue or does not learn every execution of the gap, so a passing run also means the
figures describe a correct reconciliation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_account.py"


def rows(out: str) -> dict[str, list[str]]:
    found = {}
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| limits") and "best" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            found[cells[0]] = cells[1:]
    return found


def test_account_benchmark_prints_every_row() -> None:
    sizes = "--orders 12 --executions 40 --symbols 3 --closed 2 --cancels 1 --placed 1"
    runs = "--repeats 1 --stream-repeats 2 --stream-fills 20"
    done = subprocess.run(
        [sys.executable, str(BENCH), *sizes.split(), *runs.split()],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = rows(done.stdout)
    assert set(found) >= {
        "raised",
        "bybit",
        "before: private WS -> bus -> sync subscribers",
        "after: + Account (internal bus -> AccountState.feed -> user bus)",
    }, done.stdout
    for limits in ("raised", "bybit"):
        _wall, _duration, calls, emu_calls, budget, *_ = found[limits]
        assert int(calls) == int(emu_calls) <= int(budget), found[limits]
    assert "40 new executions" in done.stdout
    assert "after / before:" in done.stdout
    assert {"order_update", "execution", "position_update", "wallet_update"} <= set(found)
