"""The long chaos storm, one command (issue 12); the same as ``hean chaos storm``.

    python benchmarks/chaos.py --seed 7 --duration 600            # every stream kind
    python benchmarks/chaos.py --kind public --seed 7 --duration 60

Exit code 1 when an invariant was broken (the report says how to replay the seed).
"""

from __future__ import annotations

import sys

from hean.cli.chaos import storm_main

if __name__ == "__main__":
    sys.exit(storm_main(sys.argv[1:]))
