"""Where a ticker message's time goes, measured in-process (no sockets, no server).

The same firehose frames as ``bench_tickers.py`` (50 snapshots, then linear ticker deltas over 50
symbols) are fed straight to ``Session.receive``, with reads of 600 frames sharing one ``now``
as in the firehose. Stages, each a superset of the one before:

* ``decode``: msgspec decoding of each frame (the floor's work, without picows);
* ``session``: + the session (count, route by topic) calling a handler that does nothing;
* ``merge``: + ``TickerCache.apply`` with its event discarded;
* ``full``: + the ``TickEvent`` published on an ``EventBus`` to three sync subscribers.

``--pieces`` also times the full pipeline with one piece of ``TickerCache.apply`` removed at a
time (the method behind the table in docs/benchmarks.md): a copy of the function's source with
those lines cut is compiled next to the real one. Runs are interleaved; best and median of
``--repeats`` are reported in ns per message.

Run:  .venv/bin/python benchmarks/bench_tickers_inprocess.py [--pieces] [--repeats 9]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import textwrap
import time
import types
from collections.abc import Callable
from typing import Any

N_SYMBOLS = 50
READ = 600  # frames per socket read in the firehose

# One piece removed from TickerCache.apply: (label, [(text, replacement), ...]).
PIECES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "per-field change times",
        [
            (
                "            for key in data:\n                times[key] = now\n",
                "            pass\n",
            )
        ],
    ),
    ("merge into the cached fields", [("        fields |= data\n", "")]),
    (
        "float last/bid/ask",
        [('    if "lastPrice" in data:', "    if 0:"), ("    if key in data:", "    if 0:")],
    ),
    (
        "TickEvent + bus + 3 subscribers",
        [("    self.publish(\n        TickEvent(", "    (\n        (")],
    ),
]


def payloads(messages: int) -> list[memoryview]:
    from hean.emulator.firehose import build_frames

    frames = build_frames(messages, N_SYMBOLS)
    out = []
    for i in range(frames.count):
        raw = frames.frame(i)
        size = raw[1] & 0x7F  # server frames are unmasked: 2, 4 or 10 header bytes
        out.append(memoryview(raw[2:] if size < 126 else raw[4:] if size == 126 else raw[10:]))
    return out


def variant(cuts: list[tuple[str, str]]) -> Callable[..., Any]:
    """``TickerCache.apply`` compiled from its source with ``cuts`` applied."""
    import hean.exchange.bybit.state.tickers as tickers

    source = textwrap.dedent(inspect.getsource(tickers.TickerCache.apply))
    for text, replacement in cuts:
        if text not in source:
            raise SystemExit(f"the source of TickerCache.apply changed: {text!r} not found")
        source = source.replace(text, replacement)
    namespace = dict(vars(tickers))
    exec(compile(source, "<variant>", "exec"), namespace)
    return namespace["apply"]  # type: ignore[no-any-return]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=60_000)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--pieces", action="store_true", help="also remove pieces of the merge")
    args = p.parse_args()

    from hean import EventBus, EventType
    from hean.emulator.firehose import firehose_symbols
    from hean.exchange.bybit import BybitPublicWebSocket
    from hean.exchange.bybit.protocol.codec import decode

    frames = payloads(args.messages)
    symbols = firehose_symbols("linear", N_SYMBOLS)
    bus = EventBus()
    await bus.start()
    seen = {"n": 0, "last": 0.0, "spread": 0.0}

    def count(ev: Any) -> None:
        seen["n"] += 1

    def last_price(ev: Any) -> None:
        if ev.last_price is not None:
            seen["last"] = ev.last_price

    def spread(ev: Any) -> None:
        if ev.bid is not None and ev.ask is not None:
            seen["spread"] = ev.ask - ev.bid

    for fn in (count, last_price, spread):
        bus.subscribe(EventType.TICK, fn)

    def pipeline(
        handler: Callable[[Any, Any], Any] | None,
        publish: bool,
        apply: Callable[..., Any] | None = None,
    ) -> Callable[[], None]:
        """A fresh connection's receive loop: ``handler`` as the route, or the ticker cache's
        ``apply`` (the real one, or a variant bound to this connection's cache)."""
        ws = BybitPublicWebSocket(bus, "linear", url="ws://127.0.0.1:9/v5/public/linear")
        if not publish:
            ws.tickers.publish = lambda ev: None
        if handler is not None:
            route = handler
        elif apply is not None:
            route = types.MethodType(apply, ws.tickers)
        else:
            route = ws.tickers.apply
        for symbol in symbols:
            ws.session.routes[f"tickers.{symbol}"] = route
        receive = ws.session.receive

        def run() -> None:
            now = 1.0
            for i, frame in enumerate(frames):
                if i % READ == 0:
                    now += 0.001
                receive(frame, now)

        return run

    def decode_only() -> None:
        for frame in frames:
            if decode(frame).topic is not None:
                seen["n"] += 1

    stages: dict[str, Callable[[], None]] = {
        "decode": decode_only,
        "session": pipeline(lambda frame, now: None, publish=False),
        "merge": pipeline(None, publish=False),
        "full": pipeline(None, publish=True),
    }
    if args.pieces:
        for label, cuts in PIECES:
            stages[f"full without {label}"] = pipeline(None, publish=True, apply=variant(cuts))

    results: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(args.repeats):
        for name, run in stages.items():
            t0 = time.perf_counter()
            run()
            results[name].append((time.perf_counter() - t0) / len(frames) * 1e9)
    await bus.stop()

    full = min(results["full"])
    print(f"\n{len(frames):,} frames, {N_SYMBOLS} symbols, best / median of {args.repeats}\n")
    print("| stage | best ns/msg | median | vs full |")
    print("|---|---:|---:|---:|")
    for name, runs in results.items():
        best = min(runs)
        print(f"| {name} | {best:,.0f} | {statistics.median(runs):,.0f} | {best - full:+,.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
