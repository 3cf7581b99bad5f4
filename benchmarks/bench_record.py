"""What recording costs per frame, and how fast a recording replays (issue 15).

Recording cost: the firehose ticker frames (``bench_tickers_inprocess.py``'s: 50 symbols) go
through the full pipeline (``Session.receive`` -> ``TickerCache.apply`` -> ``TickEvent`` on an
``EventBus`` with three sync subscribers), with and without a :class:`~hean.record.Recorder`
tap in front (exactly what the socket listener calls). CPU time is the whole process's
(``time.process_time``: the writer thread's compression and writes are included, measured until
the last file is closed), plus the loop thread alone (``time.thread_time``). Two rates:

* ``firehose``: back to back, reads of 600 frames sharing one ``now``;
* ``paced``: ``--rate`` frames per second (default 2,000) in reads of 20 every 10 ms, so chunks
  are small and the 0.5 s flush timer does the hand-over (the realistic case).

Replay speed: the same frames recorded to a file, then replayed in-process (``hean.replay.Replay``
into a fresh client and bus): frames per second, against the baseline pipeline's.

``--timing``: a 20 s (``--timing-span``) synthetic recording served by ``ReplayServer`` at
``--speed 10`` and ``max`` to a HEAN client: the wall time to play it.

``--levels 1,-1,-3``: the firehose runs for each zstd level (and the compression ratio of each
level's file), all against the same baseline runs; the paced runs use the first level.

Runs alternate baseline and recording; best and median of ``--repeats``.

Run:  .venv/bin/python benchmarks/bench_record.py [--messages 60000] [--repeats 5]
      [--levels 1,-1] [--timing]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_tickers_inprocess import N_SYMBOLS, READ, payloads


def make_pipeline(bus: Any) -> Any:
    from hean.emulator.firehose import firehose_symbols
    from hean.exchange.bybit import BybitPublicWebSocket

    ws = BybitPublicWebSocket(bus, "linear", url="ws://127.0.0.1:9/v5/public/linear")
    for symbol in firehose_symbols("linear", N_SYMBOLS):
        ws.session.routes[f"tickers.{symbol}"] = ws.tickers.apply
    return ws


async def run_firehose(
    frames: list[memoryview], bus: Any, level: int | None
) -> tuple[float, float, float]:
    """(process CPU s, loop-thread CPU s, compression ratio) for all frames; ``level=None``: no
    recorder (ratio 0)."""
    ws = make_pipeline(bus)
    receive = ws.session.receive
    with tempfile.TemporaryDirectory() as tmp:
        rec = None
        tap: Any = None
        if level is not None:
            from hean.record import Recorder

            rec = Recorder(tmp, level=level)
            rec.start()
            tap = rec.tap("public/linear", "ws://127.0.0.1:9/v5/public/linear")
        c0, t0 = time.process_time(), time.thread_time()
        now = 1.0
        if tap is None:
            for i, frame in enumerate(frames):
                if i % READ == 0:
                    now += 0.001
                receive(frame, now)
        else:
            received = tap.received
            for i, frame in enumerate(frames):
                if i % READ == 0:
                    now += 0.001
                received(frame, now)
                receive(frame, now)
        t1 = time.thread_time()
        ratio = 0.0
        if rec is not None:
            await rec.close()
            assert rec.stats.lost_frames == 0, rec.stats
            ratio = rec.stats.bytes_in / rec.stats.bytes_out
        c1 = time.process_time()
    return c1 - c0, t1 - t0, ratio


async def run_paced(
    frames: list[memoryview], bus: Any, level: int | None, rate: float
) -> tuple[float, float]:
    ws = make_pipeline(bus)
    receive = ws.session.receive
    batch = max(1, int(rate / 100))
    with tempfile.TemporaryDirectory() as tmp:
        rec = None
        tap: Any = None
        if level is not None:
            from hean.record import Recorder

            rec = Recorder(tmp, level=level)
            rec.start()
            tap = rec.tap("public/linear", "ws://127.0.0.1:9/v5/public/linear")
        c0, t0 = time.process_time(), time.thread_time()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(0, len(frames), batch):
            now = loop.time()
            for frame in frames[n : n + batch]:
                if tap is not None:
                    tap.received(frame, now)
                receive(frame, now)
            due = start + (n + batch) / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        # steady state: the loop only (the last chunk's compression and closing the file,
        # fixed costs of ~20 ms that would dominate a 3 s run, are left out)
        c1, t1 = time.process_time(), time.thread_time()
        if rec is not None:
            await rec.close()
    return c1 - c0, t1 - t0


async def replay_speed(frames: list[memoryview], bus: Any) -> tuple[float, float, int]:
    """(replay frames/s, baseline pipeline frames/s, frames) over a recording of ``frames``."""
    from hean.record import Recorder
    from hean.replay import Replay

    with tempfile.TemporaryDirectory() as tmp:
        rec = Recorder(tmp)
        rec.start()
        url = "ws://127.0.0.1:9/v5/public/linear"
        tap = rec.tap("public/linear", url, category="linear", ping_interval=20.0)
        tap.state("idle", "connecting", "start", 0.5)
        tap.connected(url, 0.6)
        topics = [f"tickers.{s}" for s in _symbols()]
        import msgspec

        tap.sent(msgspec.json.encode({"req_id": "sub-1", "op": "subscribe", "args": topics}), 0.7)
        tap.received(b'{"success":true,"ret_msg":"","conn_id":"x","req_id":"sub-1",'
                     b'"op":"subscribe"}', 0.8)  # fmt: skip
        now = 1.0
        for i, frame in enumerate(frames):
            if i % READ == 0:
                now += 0.001
            tap.received(frame, now)
        await rec.close()
        files = list(rec.stats.files)
        replay = Replay(files, bus, yield_every=10_000)
        w0 = time.perf_counter()
        stats = await replay.run()
        w1 = time.perf_counter()
    ws = make_pipeline(bus)
    receive = ws.session.receive
    b0 = time.perf_counter()
    for frame in frames:
        receive(frame, 2.0)
    b1 = time.perf_counter()
    return stats.frames / (w1 - w0), len(frames) / (b1 - b0), stats.frames


def _symbols() -> list[str]:
    from hean.emulator.firehose import firehose_symbols

    return list(firehose_symbols("linear", N_SYMBOLS))


async def replay_timing(span: float = 20.0) -> None:
    from hean.exchange.bybit import BybitPublicWebSocket
    from hean.record import Recorder
    from hean.replay.server import ReplayServer

    with tempfile.TemporaryDirectory() as tmp:
        async with Recorder(tmp) as rec:
            url = "ws://127.0.0.1:1/v5/public/linear"
            tap = rec.tap("public/linear", url, category="linear")
            tap.connected(url, 100.0)
            for i in range(int(span * 10) + 1):  # one frame every 100 ms
                kind = b"snapshot" if i == 0 else b"delta"
                tap.received(
                    b'{"topic":"tickers.BTCUSDT","type":"%s","ts":%d,"data":{"symbol":"BTCUSDT",'
                    b'"lastPrice":"%d"}}' % (kind, 1_700_000_000_000 + i * 100, 60000 + i),
                    100.0 + i * 0.1,
                )
        files = list(rec.stats.files)
        print(f"\n| replay of a {span:g} s recording | wall s | ratio to {span:g} s |")
        print("|---|---|---|")
        for speed in (10.0, None):
            times: list[float] = []

            class Sink:
                def __init__(self, out: list[float]) -> None:
                    self.out = out

                def publish(self, event_type: Any, event: Any) -> None:
                    if getattr(event_type, "value", "") == "tick":
                        self.out.append(time.perf_counter())

            async with ReplayServer(files, speed=speed, wait=5.0) as server:
                ws = BybitPublicWebSocket(Sink(times), "linear", url=server.url("linear"))
                await ws.subscribe_tickers(["BTCUSDT"])
                await ws.connect(timeout=5)
                await asyncio.wait_for(server.done.wait(), 60)
                await ws.disconnect()
            wall = times[-1] - times[0]
            label = "max" if speed is None else f"--speed {speed:g}"
            print(f"| {label} ({len(times)} frames) | {wall:.3f} | {wall / span:.4f} |")


def report(name: str, n: int, base: list[float], rec: list[float]) -> None:
    bb, bm = min(base) / n * 1e6, statistics.median(base) / n * 1e6
    rb, rm = min(rec) / n * 1e6, statistics.median(rec) / n * 1e6
    print(
        f"| {name} | {bb:.3f} / {bm:.3f} | {rb:.3f} / {rm:.3f} | "
        f"{rb - bb:+.3f} / {rm - bm:+.3f} | {rm / bm:.2f} |"
    )


def levels_arg(text: str) -> list[int]:
    levels = [int(x) for x in text.split(",") if x.strip()]
    if not levels or any(lv == 0 or not -7 <= lv <= 22 for lv in levels):
        raise argparse.ArgumentTypeError(f"levels must be -7..-1 or 1..22, got {text!r}")
    return levels


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=60_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--level",
        "--levels",
        dest="levels",
        type=levels_arg,
        default=[1],
        help="zstd level(s), comma-separated (e.g. 1,-1,-3); the paced runs use the first",
    )
    p.add_argument("--rate", type=float, default=2000.0)
    p.add_argument("--paced-seconds", type=float, default=3.0)
    p.add_argument("--timing", action="store_true", help="also a recording served at speed 10/max")
    p.add_argument("--timing-span", type=float, default=20.0, help="its recorded seconds")
    args = p.parse_args()

    from hean import EventBus, EventType

    frames = payloads(args.messages)
    bus = EventBus()
    await bus.start()
    seen = {"n": 0}

    def count(ev: Any) -> None:
        seen["n"] += 1

    for _ in range(3):
        bus.subscribe(EventType.TICK, count)
    size = sum(len(f) for f in frames) / len(frames)
    levels: list[int] = args.levels
    print(f"{len(frames)} firehose ticker frames, {size:.0f} bytes on average, zstd level(s) "
          f"{', '.join(map(str, levels))}; CPU-µs per frame, best / median of "
          f"{args.repeats}\n")  # fmt: skip
    print("| run | baseline (no recording) | with recording | recording adds | ratio |")
    print("|---|---|---|---|---|")
    runs: dict[str, tuple[list[float], list[float]]] = {"pproc": ([], []), "ploop": ([], [])}
    base_proc: list[float] = []
    base_loop: list[float] = []
    proc: dict[int, list[float]] = {lv: [] for lv in levels}
    loop: dict[int, list[float]] = {lv: [] for lv in levels}
    ratios: dict[int, list[float]] = {lv: [] for lv in levels}
    for _ in range(args.repeats):
        cpu, loop_cpu, _ = await run_firehose(frames, bus, None)
        base_proc.append(cpu)
        base_loop.append(loop_cpu)
        for level in levels:
            cpu, loop_cpu, ratio = await run_firehose(frames, bus, level)
            proc[level].append(cpu)
            loop[level].append(loop_cpu)
            ratios[level].append(ratio)
    n = len(frames)
    for level in levels:
        report(f"firehose, level {level}, whole process (incl. writer thread)", n,
               base_proc, proc[level])  # fmt: skip
        report(f"firehose, level {level}, event-loop thread only", n, base_loop, loop[level])
    paced_frames = frames[: int(args.rate * args.paced_seconds)]
    for _ in range(max(1, args.repeats // 2)):
        for level in (None, levels[0]):
            cpu, loop_cpu = await run_paced(paced_frames, bus, level, args.rate)
            which = 0 if level is None else 1
            runs["pproc"][which].append(cpu)
            runs["ploop"][which].append(loop_cpu)
    m = len(paced_frames)
    report(f"paced {args.rate:g}/s, level {levels[0]}, whole process", m, *runs["pproc"])
    report(f"paced {args.rate:g}/s, level {levels[0]}, event-loop thread only", m,
           *runs["ploop"])  # fmt: skip
    print("\n| zstd level | compression ratio (firehose file) |\n|---|---|")
    for level in levels:
        print(f"| {level} | {statistics.median(ratios[level]):.2f} |")

    speeds = [await replay_speed(frames, bus) for _ in range(max(1, args.repeats // 2))]
    rs = [s[0] for s in speeds]
    bs = [s[1] for s in speeds]
    print("\n| in-process replay | frames/s (best / median) | ratio to the live pipeline |")
    print("|---|---|---|")
    print(f"| live pipeline (baseline, receive only) | {max(bs):,.0f} / "
          f"{statistics.median(bs):,.0f} | 1.00 |")  # fmt: skip
    ratio = statistics.median(rs) / statistics.median(bs)
    print(f"| Replay.run ({speeds[0][2]} frames: read, decompress, feed) | {max(rs):,.0f} / "
          f"{statistics.median(rs):,.0f} | {ratio:.2f} |")  # fmt: skip
    if args.timing:
        await replay_timing(args.timing_span)
    await bus.stop()


if __name__ == "__main__":
    asyncio.run(main())
