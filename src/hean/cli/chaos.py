"""``hean chaos storm`` and ``hean chaos soak`` (issue 12): the long chaos storm and the soak, one
command each (also ``benchmarks/chaos.py`` and ``benchmarks/soak.py``).

    hean chaos storm --seed 7 --duration 600          # every stream kind, 10 min each
    hean chaos soak                                   # 24 simulated hours at 48x: 30 min

Exit code 0 when every invariant held (and, for the soak, nothing grew), 1 otherwise (the
report says how to replay the seed), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from hean.cli.argtypes import non_negative_float, positive_float

__all__ = [
    "add_chaos_parser",
    "add_soak_arguments",
    "add_storm_arguments",
    "run_command",
    "soak_main",
    "storm_main",
]


def _spacing(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX seconds, got {text!r}") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"need 0 < MIN <= MAX, got {text!r}")
    return lo, hi


def _kinds(text: str) -> tuple[str, ...]:
    from hean.chaos import KINDS

    kinds = tuple(k for k in text.split(",") if k)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"kinds are {','.join(KINDS)}, got {text!r}")
    return kinds


def add_storm_arguments(p: argparse.ArgumentParser) -> None:
    from hean.chaos import KINDS

    p.add_argument("--kind", choices=(*KINDS, "all"), default="all")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--duration", type=positive_float, default=600.0, help="seconds per stream kind (600)"
    )
    p.add_argument("--scale", type=positive_float, default=1.0, help="multiply client intervals")
    p.add_argument(
        "--every", type=_spacing, default=(1.0, 3.0), metavar="MIN,MAX",
        help="fault spacing in seconds (1,3)",
    )  # fmt: skip
    p.add_argument("--only", default=None, help="comma-separated fault kinds")
    p.add_argument("-v", "--verbose", action="store_true")


def add_soak_arguments(p: argparse.ArgumentParser) -> None:
    from hean.chaos import KINDS
    from hean.chaos.soak import SoakConfig

    d = SoakConfig()
    p.add_argument("--hours", type=positive_float, default=d.hours, help="simulated hours (24)")
    p.add_argument(
        "--scale", type=positive_float, default=d.scale,
        help="simulated seconds per wall second (48: a day in 30 min)",
    )  # fmt: skip
    p.add_argument("--symbols", type=int, default=d.symbols, help="linear symbols (30, max 50)")
    p.add_argument("--books", type=int, default=d.book_symbols, help="of those, with books (10)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--every", type=_spacing, default=d.every, metavar="MIN,MAX",
        help="simulated seconds between faults of one stream kind (120,360)",
    )  # fmt: skip
    p.add_argument(
        "--warmup", type=non_negative_float, default=d.warmup, help="wall seconds of warm-up (60)"
    )
    p.add_argument("--samples", type=int, default=d.samples)
    p.add_argument("--kinds", type=_kinds, default=KINDS, help=f"({','.join(KINDS)})")
    p.add_argument(
        "--activity", type=positive_float, default=d.activity,
        help="the simulated market's event rate (0.25)",
    )  # fmt: skip
    p.add_argument("--no-trace", action="store_true", help="no tracemalloc (no heap by file)")
    p.add_argument(
        "--max-growth", type=positive_float, default=d.max_growth / 1024, metavar="KIB",
        help="heap HEAN may grow by, baseline to end (1024 KiB)",
    )  # fmt: skip
    p.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    p.add_argument("-v", "--verbose", action="store_true")


def add_chaos_parser(sub: Any) -> None:
    """Register ``hean chaos storm`` and ``hean chaos soak`` on the main parser."""
    chaos = sub.add_parser(
        "chaos",
        help="chaos storms and the soak against the built-in emulator (issue 12)",
        description=(
            "Seeded fault schedules of every fault the emulator injects against HEAN's public, "
            "private and trade streams, with invariants checked continuously and at the end."
        ),
    )
    modes = chaos.add_subparsers(dest="chaos_mode", metavar="MODE")
    storm = modes.add_parser("storm", help="the long chaos storm, per stream kind")
    add_storm_arguments(storm)
    soak = modes.add_parser(
        "soak", help="a simulated day with random faults: nothing may grow or stick"
    )
    add_soak_arguments(soak)


async def _storms(args: argparse.Namespace) -> int:
    from hean.chaos import KINDS, StormConfig, run_storm

    only = tuple(args.only.split(",")) if args.only else None
    kinds = KINDS if args.kind == "all" else (args.kind,)
    failed = False
    for kind in kinds:
        config = StormConfig(
            kind=kind, seed=args.seed, duration=args.duration, scale=args.scale,
            every=args.every, only=only,
        )  # fmt: skip
        report = await run_storm(config)
        print(report.text(), flush=True)
        failed |= not report.ok
    return 1 if failed else 0


async def _soak(args: argparse.Namespace) -> int:
    import json

    from hean.chaos.soak import SoakConfig, run_soak
    from hean.core.loop import loop_name

    config = SoakConfig(
        hours=args.hours, scale=args.scale, symbols=args.symbols, book_symbols=args.books,
        seed=args.seed, every=args.every, warmup=args.warmup, samples=args.samples,
        kinds=args.kinds, activity=args.activity, trace=not args.no_trace,
        max_growth=int(args.max_growth * 1024),
    )  # fmt: skip
    print(
        f"soak: {config.hours:g} simulated hours at {config.scale:g}x = "
        f"{config.wall_seconds:.0f} s after a {config.warmup:g} s warm-up "
        f"(event loop: {loop_name()})",
        flush=True,
    )
    report = await run_soak(config)
    print(report.text(), flush=True)
    if args.json:
        from pathlib import Path

        text = json.dumps(report.as_dict(), indent=1)
        await asyncio.to_thread(Path(args.json).write_text, text, encoding="utf-8")
    return 0 if report.ok else 1


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Validate what argparse cannot (one line and exit 2 on bad usage)."""
    if getattr(args, "chaos_mode", None) == "soak":
        from hean.chaos.soak import SOAK_SYMBOLS

        if not 1 <= args.symbols <= len(SOAK_SYMBOLS):
            parser.error(f"--symbols must be 1..{len(SOAK_SYMBOLS)}, got {args.symbols}")
        if not 1 <= args.books <= args.symbols:
            parser.error(f"--books must be 1..--symbols ({args.symbols}), got {args.books}")
        if args.samples < 0:
            parser.error(f"--samples must be >= 0, got {args.samples}")
    if getattr(args, "chaos_mode", None) == "storm" and args.only:
        from hean.chaos.schedule import FAULTS

        kinds = FAULTS if args.kind == "all" else {args.kind: FAULTS[args.kind]}
        for kind, faults in kinds.items():
            bad = set(args.only.split(",")) - set(faults)
            if bad:
                parser.error(f"--only: not {kind} faults: {', '.join(sorted(bad))}")


def run_command(
    args: argparse.Namespace, parser: argparse.ArgumentParser, stop: asyncio.Event
) -> Coroutine[Any, Any, int]:
    """The coroutine of ``hean chaos MODE`` for parsed ``args`` (stops early on ``stop``)."""
    if args.chaos_mode is None:
        parser.error("hean chaos needs a mode: storm or soak")
    _check(args, parser)
    if args.verbose:
        logging.getLogger("hean.chaos").setLevel(logging.INFO)
    work = _soak(args) if args.chaos_mode == "soak" else _storms(args)
    return _until_stopped(work, stop)


async def _until_stopped(work: Coroutine[Any, Any, int], stop: asyncio.Event) -> int:
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stopper.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    print("chaos: stopped", file=sys.stderr)
    return 130


def _main(mode: str, argv: Sequence[str] | None) -> int:
    from hean.core.loop import run

    parser = argparse.ArgumentParser(prog=f"{mode}.py", description=__doc__.splitlines()[0])
    (add_soak_arguments if mode == "soak" else add_storm_arguments)(parser)
    args = parser.parse_args(argv)
    args.chaos_mode = mode
    _check(args, parser)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )

    async def main() -> int:
        return await (_soak(args) if mode == "soak" else _storms(args))

    try:
        return run(main()).result
    except KeyboardInterrupt:
        return 130


def storm_main(argv: Sequence[str] | None = None) -> int:
    """``benchmarks/chaos.py``."""
    return _main("storm", argv)


def soak_main(argv: Sequence[str] | None = None) -> int:
    """``benchmarks/soak.py``."""
    return _main("soak", argv)
