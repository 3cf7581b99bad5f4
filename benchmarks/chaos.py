"""The long chaos storm, one command (issue 12).

    python benchmarks/chaos.py --seed 7 --duration 600            # every stream kind
    python benchmarks/chaos.py --kind public --seed 7 --duration 60

Exit code 1 when an invariant was broken (the report says how to replay the seed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from hean.chaos import KINDS, StormConfig, run_storm


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=(*KINDS, "all"), default="all")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=600.0, help="seconds per stream kind")
    p.add_argument("--scale", type=float, default=1.0, help="multiply client intervals")
    p.add_argument("--every", default="1,3", help="fault spacing: min,max seconds")
    p.add_argument("--only", default=None, help="comma-separated fault kinds")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    try:
        lo, hi = (float(x) for x in args.every.split(","))
    except ValueError:
        print(f"chaos: --every must be min,max seconds, got {args.every!r}", file=sys.stderr)
        return 2
    if args.duration <= 0 or args.scale <= 0 or not 0 < lo <= hi:
        print("chaos: --duration, --scale and --every must be > 0", file=sys.stderr)
        return 2
    only = tuple(args.only.split(",")) if args.only else None
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    kinds = KINDS if args.kind == "all" else (args.kind,)
    failed = False
    for kind in kinds:
        cfg = StormConfig(
            kind=kind,
            seed=args.seed,
            duration=args.duration,
            scale=args.scale,
            every=(lo, hi),
            only=only,
        )
        try:
            report = asyncio.run(run_storm(cfg))
        except ValueError as exc:
            print(f"chaos: {exc}", file=sys.stderr)
            return 2
        print(report.text(), flush=True)
        failed |= not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
