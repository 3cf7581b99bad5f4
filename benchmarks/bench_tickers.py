"""Ticker pipeline throughput and CPU cost, as ratios against a floor measured in the same run.

What is compared (each run is a fresh client process pinned to CPU 0; the firehose server is
its own process pinned to CPU 1, sending pre-encoded Bybit linear ticker frames):

* ``floor``: picows receiving + msgspec decoding each frame (HEAN's own codec), nothing else —
  the fastest a Python client on this machine can go (shared/design/perf-baseline.md).
* ``hean``: the full HEAN pipeline — ``BybitPublicWebSocket`` (picows shell, session, codec,
  ticker snapshot/delta merge, TickEvent) publishing to an ``EventBus`` with three synchronous
  subscribers.
* ``hean-async``: the same, but the three subscribers are async consumers (``batch=True``), i.e.
  bounded queues drained by their own tasks, one wake-up per socket read.
* ``hean-no-field-times``: ``hean`` built with ``field_times=False`` (no per-field change
  times: the option for consumers that never read them), to show what that feature costs.
* ``pybit`` (``--pybit``): the official SDK's ``ticker_stream`` (threads, websocket-client).

Firehose mode sends everything back to back (msgs/s and CPU-µs/msg); paced mode sends a fixed
rate (default 10,000 msg/s) and reports CPU-µs per message (the share of one core it costs).

Run:  .venv/bin/python benchmarks/bench_tickers.py [--messages 200000] [--repeats 5]
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

N_SYMBOLS = 50


def _symbols() -> list[str]:
    from hean.emulator.firehose import firehose_symbols

    return firehose_symbols("linear", N_SYMBOLS)


def _pin(cpu: int) -> None:
    try:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


# --------------------------------------------------------------------------- clients


class _Timer:
    """Wall and CPU time from the first to the last counted message."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.n = 0
        self.t0 = self.c0 = 0.0
        self.done = asyncio.get_running_loop().create_future()

    def hit(self) -> None:
        self.n += 1
        if self.n == 1:
            self.t0, self.c0 = time.perf_counter(), time.process_time()
        elif self.n == self.target:
            wall, cpu = time.perf_counter() - self.t0, time.process_time() - self.c0
            if not self.done.done():
                self.done.set_result((wall, cpu))


async def client_floor(url: str, target: int) -> tuple[float, float]:
    import picows

    from hean.exchange.bybit.protocol.codec import decode

    timer = _Timer(target)

    class Listener(picows.WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            args = [f"tickers.{s}" for s in _symbols()]
            transport.send(
                picows.WSMsgType.TEXT,
                json.dumps({"op": "subscribe", "req_id": "1", "args": args}).encode(),
            )

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if (
                frame.msg_type is picows.WSMsgType.TEXT
                and decode(frame.get_payload_as_memoryview()).topic is not None
            ):
                timer.hit()

    transport, _ = await picows.ws_connect(Listener, url, enable_auto_pong=True)
    result = await timer.done
    transport.disconnect()
    return result


async def client_hean(
    url: str, target: int, async_subscribers: bool = False, field_times: bool = True
) -> tuple[float, float]:
    from hean import EventBus, EventType, OverflowPolicy
    from hean.exchange.bybit import BybitPublicWebSocket

    timer = _Timer(target)
    bus = EventBus()
    await bus.start()
    state = {"last": 0.0, "spread": 0.0}

    def count(ev: Any) -> None:
        timer.hit()

    def last_price(ev: Any) -> None:
        if ev.last_price is not None:
            state["last"] = ev.last_price

    def spread(ev: Any) -> None:
        if ev.bid is not None and ev.ask is not None:
            state["spread"] = ev.ask - ev.bid

    if async_subscribers:
        for fn in (count, last_price, spread):

            async def consume(batch: list[Any], fn: Any = fn) -> None:
                for ev in batch:
                    fn(ev)

            bus.subscribe_async(
                EventType.TICK,
                consume,
                batch=True,
                maxsize=1_000_000,
                policy=OverflowPolicy.NEVER_DROP,
            )
    else:
        for fn in (count, last_price, spread):
            bus.subscribe(EventType.TICK, fn)
    ws = BybitPublicWebSocket(bus, "linear", url=url, field_times=field_times)
    await ws.connect(timeout=10)
    await ws.subscribe_tickers(_symbols())
    result = await timer.done
    await ws.disconnect()
    await bus.stop()
    return result


def client_pybit(url: str, target: int) -> tuple[float, float]:
    import threading

    import pybit.unified_trading as ut

    base = url.rsplit("/v5/", 1)[0]
    ut.PUBLIC_WSS = base + "/v5/public/{CHANNEL_TYPE}"
    done = threading.Event()
    box: dict[str, float] = {}
    n = 0

    def cb(msg: Any) -> None:
        nonlocal n
        n += 1
        if n == 1:
            box["t0"], box["c0"] = time.perf_counter(), time.process_time()
        elif n == target:
            box["wall"] = time.perf_counter() - box["t0"]
            box["cpu"] = time.process_time() - box["c0"]
            done.set()

    ws = ut.WebSocket(testnet=False, channel_type="linear")
    ws.ticker_stream(_symbols(), cb)
    done.wait(600)
    ws.exit()
    return box["wall"], box["cpu"]


def run_client(kind: str, url: str, target: int, loop_name: str) -> None:
    _pin(0)
    if kind == "pybit":
        wall, cpu = client_pybit(url, target)
    else:
        if loop_name == "uvloop":
            import uvloop

            uvloop.install()
        coro = {
            "floor": lambda: client_floor(url, target),
            "hean": lambda: client_hean(url, target),
            "hean-async": lambda: client_hean(url, target, async_subscribers=True),
            "hean-no-field-times": lambda: client_hean(url, target, field_times=False),
        }[kind]()
        wall, cpu = asyncio.run(coro)
    print(json.dumps({"kind": kind, "n": target - 1, "wall": wall, "cpu": cpu}))


# --------------------------------------------------------------------------- driver


def start_server(
    messages: int, rate: float | None, *extra: str, symbols: int = N_SYMBOLS
) -> tuple[subprocess.Popen[str], str]:
    """Start the firehose server on CPU 1; ``extra`` are more CLI arguments (e.g. --topic)."""
    cmd = [sys.executable, "-m", "hean.emulator.firehose", "--messages", str(messages),
           "--symbols", str(symbols), *extra]  # fmt: skip
    if rate is not None:
        cmd += ["--rate", str(rate)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: _pin(1),
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("ws://"):
        proc.kill()
        raise RuntimeError("firehose server did not start")
    return proc, url


def measure(kind: str, url: str, target: int, loop_name: str) -> dict[str, Any]:
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
            "--loop",
            loop_name,
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


def series(
    kinds: list[str], url: str, target: int, repeats: int, loop_name: str, pybit_target: int
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for r in range(repeats):
        order = kinds if r % 2 == 0 else list(reversed(kinds))
        for kind in order:
            if kind == "pybit" and r > 0:
                continue  # slow: once is enough for an order of magnitude
            runs[kind].append(
                measure(kind, url, pybit_target if kind == "pybit" else target, loop_name)
            )
    return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--paced-rate", type=float, default=10_000.0)
    p.add_argument("--paced-seconds", type=float, default=3.0)
    p.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    p.add_argument("--pybit", action="store_true", help="also measure pybit (slow)")
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--target", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        run_client(args.client, args.url, args.target, args.loop)
        return 0

    kinds = ["floor", "hean", "hean-async", "hean-no-field-times"]
    kinds += ["pybit"] if args.pybit else []
    total = args.messages + N_SYMBOLS
    server, url = start_server(args.messages, None)
    try:
        fire = series(kinds, url, total, args.repeats, args.loop, min(total, 50_000))
    finally:
        server.terminate()
        server.wait()
    paced_n = int(args.paced_rate * args.paced_seconds)
    server, url = start_server(paced_n, args.paced_rate)
    try:
        paced = series(
            [k for k in kinds if k != "pybit"],
            url,
            paced_n + N_SYMBOLS,
            max(1, args.repeats // 2 + 1),
            args.loop,
            0,
        )
    finally:
        server.terminate()
        server.wait()

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    floor_rate = med(fire["floor"], "rate")
    print(
        f"\nFirehose, {args.messages:,} linear ticker deltas over {N_SYMBOLS} symbols, "
        f"{args.loop}, median of {args.repeats} (client on CPU 0, server on CPU 1)\n"
    )
    print("| client | msgs/s | CPU-µs/msg | x floor (throughput) |")
    print("|---|---:|---:|---:|")
    for kind in kinds:
        rate = med(fire[kind], "rate")
        print(
            f"| {kind} | {rate:,.0f} | {med(fire[kind], 'cpu_us'):.2f} | {rate / floor_rate:.2f} |"
        )
    print()
    for kind in ("hean", "hean-no-field-times"):
        pairs = [h["rate"] / f["rate"] for h, f in zip(fire[kind], fire["floor"], strict=False)]
        print(
            f"{kind} / floor per run: {', '.join(f'{x:.2f}' for x in pairs)} "
            f"(median {statistics.median(pairs):.2f}; goal >= 0.55)"
        )
    print(
        f"\nPaced at {args.paced_rate:,.0f} msg/s for {args.paced_seconds:g}s, "
        f"median of {len(paced['floor'])}\n"
    )
    print("| client | CPU-µs/msg | share of one core |")
    print("|---|---:|---:|")
    for kind in paced:
        cpu_us = med(paced[kind], "cpu_us")
        print(f"| {kind} | {cpu_us:.1f} | {cpu_us * args.paced_rate / 1e6:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
