"""Order-book pipeline throughput against the receive+decode floor, and a realistic load.

1. Firehose: pre-encoded ``orderbook.50`` / ``orderbook.200`` snapshot+delta traffic derived from
   the emulator's book model (``python -m hean.emulator.firehose --topic ...``, its own process on
   CPU 1). Clients (fresh processes on CPU 0):
   * ``floor``: picows receiving + msgspec decoding each frame (HEAN's codec), nothing else;
   * ``hean``: ``BybitPublicWebSocket.subscribe_orderbook``: decode, sequence checks, exact-key
     book update, top of book, one ``OrderBookEvent`` per message to three sync subscribers.
2. Realistic load: ``hean sim`` with 200 linear symbols on CPU 1 pushing tickers (100 ms),
   ``orderbook.50`` (20 ms) and trades at Bybit's cadences; HEAN subscribes all three for all
   200 symbols; we report messages/s received and the CPU share of one core.

Run:  .venv/bin/python benchmarks/bench_books.py [--messages 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from bench_tickers import _pin, _Timer, client_floor, start_server

N_SYMBOLS = 10


def _symbols(n: int = N_SYMBOLS) -> list[str]:
    from hean.emulator.firehose import firehose_symbols

    return firehose_symbols("linear", n)


async def client_books(url: str, target: int, depth: int) -> tuple[float, float]:
    from hean import EventBus, EventType
    from hean.exchange.bybit import BybitPublicWebSocket

    timer = _Timer(target)
    bus = EventBus()
    await bus.start()
    state = {"spread": 0.0, "invalid": 0}

    def count(ev: Any) -> None:
        timer.hit()

    def spread(ev: Any) -> None:
        if ev.best_bid is not None and ev.best_ask is not None:
            state["spread"] = float(ev.best_ask[0]) - float(ev.best_bid[0])

    def validity(ev: Any) -> None:
        if not ev.valid:
            state["invalid"] += 1

    for fn in (count, spread, validity):
        bus.subscribe(EventType.ORDERBOOK, fn)
    ws = BybitPublicWebSocket(bus, "linear", url=url)
    await ws.connect(timeout=10)
    await ws.subscribe_orderbook(_symbols(), depth)
    result = await timer.done
    if state["invalid"]:
        raise RuntimeError(f"{state['invalid']} invalid book events in a clean stream")
    await ws.disconnect()
    await bus.stop()
    return result


def start_firehose(messages: int, topic: str) -> tuple[subprocess.Popen[str], str]:
    return start_server(messages, None, "--topic", topic, symbols=N_SYMBOLS)


def measure(kind: str, url: str, target: int, depth: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--client",
            kind,
            "--url",
            url,
            "--target",
            str(target),
            "--depth",
            str(depth),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["rate"] = result["n"] / result["wall"]
    result["cpu_us"] = result["cpu"] / result["n"] * 1e6
    return result


async def realistic_client(url: str, seconds: float, n: int) -> dict[str, Any]:
    from hean import EventBus, EventType
    from hean.exchange.bybit import BybitPublicWebSocket

    bus = EventBus()
    await bus.start()
    counts = {"tick": 0, "book": 0, "trade": 0}
    bus.subscribe(EventType.TICK, lambda ev: counts.__setitem__("tick", counts["tick"] + 1))
    bus.subscribe(EventType.ORDERBOOK, lambda ev: counts.__setitem__("book", counts["book"] + 1))
    bus.subscribe(EventType.TRADE, lambda ev: counts.__setitem__("trade", counts["trade"] + 1))
    ws = BybitPublicWebSocket(bus, "linear", url=url)
    await ws.connect(timeout=10)
    symbols = [f"SYM{i:04d}USDT" for i in range(n)]
    await ws.subscribe_tickers(symbols)
    await ws.subscribe_orderbook(symbols, 50)
    await ws.subscribe_trades(symbols)
    await asyncio.sleep(3.0)  # let snapshots and the first burst pass
    m0, c0, t0 = ws.stats.messages, time.process_time(), time.perf_counter()
    before = dict(counts)
    await asyncio.sleep(seconds)
    m1, c1, t1 = ws.stats.messages, time.process_time(), time.perf_counter()
    invalid = len(ws.books.invalid())
    await ws.disconnect()
    await bus.stop()
    wall = t1 - t0
    return {
        "msgs_per_s": (m1 - m0) / wall,
        "cpu_share": (c1 - c0) / wall,
        "cpu_us_per_msg": (c1 - c0) / max(1, m1 - m0) * 1e6,
        "per_s": {k: (counts[k] - before[k]) / wall for k in counts},
        "invalid_books": invalid,
        "reconnects": ws.stats.reconnects,
    }


def run_realistic(n: int, seconds: float) -> dict[str, Any]:
    symbols = ",".join(f"SYM{i:04d}USDT" for i in range(n))
    sim = subprocess.Popen(
        [sys.executable, "-m", "hean", "sim", "--port", "0", "--symbols", symbols],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: _pin(1),
    )
    try:
        assert sim.stdout is not None
        url = ""
        for _ in range(20):
            line = sim.stdout.readline()
            if "ws://" in line and "/linear" in line:
                url = line.split()[-1]
                break
        if not url:
            raise RuntimeError("hean sim did not start")
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                "realistic",
                "--url",
                url,
                "--target",
                str(n),
                "--seconds",
                str(seconds),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        )
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        sim.terminate()
        sim.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--symbols", type=int, default=200, help="realistic load: linear symbols")
    p.add_argument("--seconds", type=float, default=10.0, help="realistic load: measured span")
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--target", type=int, help=argparse.SUPPRESS)
    p.add_argument("--depth", type=int, default=50, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client == "realistic":
        _pin(0)
        print(json.dumps(asyncio.run(realistic_client(args.url, args.seconds, args.target))))
        return 0
    if args.client:
        _pin(0)
        if args.client == "floor":
            wall, cpu = asyncio.run(client_floor(args.url, args.target))
        else:
            wall, cpu = asyncio.run(client_books(args.url, args.target, args.depth))
        print(json.dumps({"kind": args.client, "n": args.target - 1, "wall": wall, "cpu": cpu}))
        return 0

    print("| topic | client | deltas/s | CPU-µs/msg | x floor |")
    print("|---|---|---:|---:|---:|")
    for depth in (50, 200):
        server, url = start_firehose(args.messages, f"orderbook.{depth}")
        try:
            runs: dict[str, list[dict[str, Any]]] = {"floor": [], "hean": []}
            for r in range(args.repeats):
                for kind in ["floor", "hean"] if r % 2 == 0 else ["hean", "floor"]:
                    runs[kind].append(measure(kind, url, args.messages + N_SYMBOLS, depth))
        finally:
            server.terminate()
            server.wait()
        floor = statistics.median(x["rate"] for x in runs["floor"])
        for kind, rs in runs.items():
            rate = statistics.median(x["rate"] for x in rs)
            cpu = statistics.median(x["cpu_us"] for x in rs)
            print(f"| orderbook.{depth} | {kind} | {rate:,.0f} | {cpu:.2f} | {rate / floor:.2f} |")
    real = run_realistic(args.symbols, args.seconds)
    print(
        f"\nRealistic load, {args.symbols} linear symbols (tickers 100 ms, orderbook.50 20 ms, "
        f"trades), measured over {args.seconds:g}s:"
    )
    print(json.dumps(real, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
