"""The soak, one command (issue 12): a simulated day with random faults; memory, descriptors,
tasks and per-topic state must stay flat and every chaos invariant hold.

    python benchmarks/soak.py                                 # 24 simulated hours at 48x: 30 min
    python benchmarks/soak.py --hours 1 --scale 60 --warmup 10   # a quick look

Exit code 1 when something grew or an invariant broke (the report says how to replay it).
"""

from __future__ import annotations

import sys

from hean.cli.chaos import soak_main

if __name__ == "__main__":
    sys.exit(soak_main(sys.argv[1:]))
