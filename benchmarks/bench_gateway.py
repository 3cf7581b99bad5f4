# ruff: noqa: ASYNC110, RUF028  (polling waits are fine in a benchmark)
"""Gateway benchmark: added latency to remote consumers, publishing CPU, Redis memory.

Starts its own ``redis-server`` (free port, no persistence). The gateway process feeds real
ticker frames through the exchange layer's ``TickerCache`` (merge, ``TickEvent``) into the
gateway's hub consumer bus, which is where a hub connection publishes; so everything after the
socket read is the production path: the gateway's inline encode and queue, its pipelined writer,
Redis, a ``RemoteHub`` in another process, the tracker, its own ``TickerCache`` and dispatch to
an inline callback. The in-process baseline is an async handler of an in-process consumer
(its own queue and task, as ``Consumer.on``) on the same events, in the same run.

Measures:
1. latency (gateway receipt -> callback; same-host monotonic clock) at RATES x CONSUMERS, and
   each consumer process's CPU per entry over the window (a figure the machine's other load
   does not move much, unlike the latency tail);
2. gateway CPU per message with publishing on and off (and redis-server's own CPU), in
   alternating runs (``--repeats`` pairs; the median of each is reported);
3. Redis memory after a simulated hour at Bybit's cadence for 50 symbols (10 tickers/s and
   50 orderbook.50 messages/s per symbol): every stream written past its MAXLEN several times,
   which is the steady state of any longer run.

Every process runs on the event loop HEAN's commands use (uvloop when installed; ``--loop
asyncio`` for the standard loop) and, unless ``--no-gc-freeze``, calls ``gc.freeze()`` once set
up, as docs/gateway.md advises for latency-sensitive processes: a full collection of a process
that imported HEAN (~70 ms on this VM) otherwise stalls every consumer once in a few seconds.

Usage: ``.venv/bin/python benchmarks/bench_gateway.py [--seconds 3] [--quick] [--repeats 3]
[--loop uvloop|asyncio] [--no-gc-freeze] [--unix] [--stages] [--consumers 1,4] [--latency-only]``
(``--unix``: every process talks to Redis over a Unix socket; ``--stages``: each latency row
also says where the time went: the gateway's queue, its write to the consumer's read, and the
consumer's processing.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from hean.core.bus import OverflowPolicy  # noqa: E402
from hean.core.events import EventType  # noqa: E402
from hean.exchange.bybit.protocol.codec import Frame  # noqa: E402
from hean.exchange.bybit.state.orderbook import OrderBookCache, book_event  # noqa: E402
from hean.exchange.bybit.state.tickers import TickerCache  # noqa: E402
from hean.gateway import Gateway  # noqa: E402
from hean.hub import StreamHub  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], int, str]:
    """A redis-server on a free port and on the Unix socket ``{dir}/redis.sock``."""
    port = free_port()
    d = tempfile.mkdtemp(prefix="bench-redis-")
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    p = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", d, "--loglevel", "warning", "--unixsocket", os.path.join(d, "redis.sock"),
         "--unixsocketperm", "700"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    return p, port, d


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


CONSUMER = r"""
import asyncio, gc, json, sys, time
sys.path.insert(0, sys.argv[4])
from hean.core import loop
from hean.core.events import EventType
from hean.remote import RemoteHub
async def main():
    hub = RemoteHub(sys.argv[1], prefix="bench", block_ms=50)
    c = hub.consumer("bench")
    lat = []
    stages = []
    mono = time.monotonic
    if sys.argv[7] == "1":
        def on_tick(ev):
            t = mono()
            lat.append(t - hub.last_rt)
            stages.append((hub.last_rt, ev.recv_time, t))
    else:
        def on_tick(ev):
            lat.append(mono() - hub.last_rt)
    c.on_inline(EventType.TICK, on_tick)
    await c.subscribe_tickers(sys.argv[2].split(","), wait=5)
    if sys.argv[6] == "1":
        gc.freeze()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # go
    n0, c0 = len(lat), time.process_time()
    await asyncio.sleep(float(sys.argv[3]))
    cpu = time.process_time() - c0
    print(json.dumps({"lat": lat[n0:], "cpu_us": cpu / max(1, len(lat) - n0) * 1e6,
                      "stages": stages[n0:]}), flush=True)
    await hub.close()
loop.run(main(), prefer_uvloop=sys.argv[5] == "uvloop")
"""


PACER = r"""
import os, sys, time
fd, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
sys.stdin.readline()
# each message when due, but at most one write per 0.25 ms: at high rates a write carries
# several messages, as a socket read carries several frames
t0, n, total = time.monotonic(), 0, int(rate * seconds)
while n < total:
    now = time.monotonic()
    due = min(total, int((now - t0) * rate) + 1)
    if due > n:
        os.write(fd, b"x" * (due - n))
        n = due
    wait = max(t0 + n / rate, now + 0.00025) - time.monotonic()
    if wait > 0:
        time.sleep(wait)
os.close(fd)
"""


def ticker_fields(symbol: str, rng: random.Random) -> dict[str, Any]:
    return {
        "symbol": symbol, "lastPrice": f"{rng.uniform(1, 1e5):.2f}",
        "bid1Price": f"{rng.uniform(1, 1e5):.2f}", "bid1Size": f"{rng.uniform(0, 9):.3f}",
        "ask1Price": f"{rng.uniform(1, 1e5):.2f}", "ask1Size": f"{rng.uniform(0, 9):.3f}",
        "markPrice": "1", "indexPrice": "1", "openInterest": "1", "volume24h": "1",
        "turnover24h": "1", "fundingRate": "0.0001", "nextFundingTime": "1", "price24hPcnt": "0",
        "highPrice24h": "1", "lowPrice24h": "1", "prevPrice24h": "1", "openInterestValue": "1",
    }  # fmt: skip


def delta(symbol: str, rng: random.Random) -> dict[str, Any]:
    d: dict[str, Any] = {"symbol": symbol, "bid1Price": f"{rng.uniform(1, 1e5):.2f}",
                         "bid1Size": f"{rng.uniform(0, 9):.3f}"}  # fmt: skip
    if rng.random() < 0.3:
        d["lastPrice"] = f"{rng.uniform(1, 1e5):.2f}"
    return d


def stage_breakdown(sent_at: dict[float, float], rows: list[list[float]]) -> dict[str, float]:
    """Where the latency goes, per entry: gateway receipt -> its batch written (queue), written ->
    read by the consumer (Redis, the consumer's wake-up and receive), read -> callback (decode,
    sequence check, merge, dispatch); and the mean of each over the slowest 1%."""
    parts: list[tuple[float, float, float, float]] = []
    for rt, read_at, cb in rows:
        w = sent_at.get(rt)
        if w is not None:
            parts.append((cb - rt, w - rt, read_at - w, cb - read_at))
    if not parts:
        return {}
    parts.sort()
    top = parts[int(0.99 * len(parts)) :]
    out: dict[str, float] = {}
    for i, name in ((1, "queue"), (2, "write_to_read"), (3, "read_to_callback")):
        xs = [p[i] for p in parts]
        out[f"{name}_p50_ms"] = pct(xs, 0.5) * 1e3
        out[f"{name}_p99_ms"] = pct(xs, 0.99) * 1e3
        out[f"{name}_slowest1pct_mean_ms"] = sum(p[i] for p in top) / len(top) * 1e3
    return out


async def latency_run(
    url: str,
    rate: int,
    n_consumers: int,
    seconds: float,
    loop_name: str,
    freeze: bool,
    stages: bool = False,
) -> dict[str, Any]:
    symbols = [f"SYM{i}USDT" for i in range(20)]
    hub = StreamHub(host="ws://127.0.0.1:1")
    gw = Gateway(hub, url, prefix="bench", heartbeat=0.2)
    sent_at: dict[float, float] = {}
    write_rtt: list[float] = []
    if stages:  # when each entry's batch went to Redis (receipt time -> write time)
        write = gw._write

        async def timed_write(batch: Any) -> None:
            t = time.monotonic()
            for p in batch:
                sent_at[p.at] = t
            await write(batch)
            write_rtt.append(time.monotonic() - t)

        gw._write = timed_write  # type: ignore[method-assign]
    await gw.start()
    while gw.link != "up":
        await asyncio.sleep(0.01)
    bus = gw.consumer.bus
    local: list[float] = []
    mono = time.monotonic

    async def in_process(ev: Any) -> None:
        local.append(mono() - ev.recv_time)

    bus.subscribe_async(EventType.TICK, in_process, policy=OverflowPolicy.NEVER_DROP,
                        maxsize=1_000_000)  # fmt: skip
    cache = TickerCache("linear", publish=bus.publisher(EventType.TICK))
    rng = random.Random(1)
    for s in symbols:
        cache.apply(Frame(topic=f"tickers.{s}", type="snapshot", ts=1, data=ticker_fields(s, rng)),
                    mono())  # fmt: skip
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CONSUMER,
            url,
            ",".join(symbols),
            str(seconds + 1.0),
            os.path.join(ROOT, "src"),
            loop_name,
            "1" if freeze else "0",
            "1" if stages else "0",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**28,
        )  # fmt: skip
        for _ in range(n_consumers)
    ]
    for p in procs:
        assert p.stdout is not None
        await p.stdout.readline()
    if freeze:
        gc.freeze()
    await asyncio.sleep(0.3)
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        await p.stdin.drain()
    await asyncio.sleep(0.05)
    local.clear()
    load0 = os.getloadavg()[0]
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(url)
    redis0 = await r.info("cpu")
    # The messages arrive as a hub connection's would: the gateway's loop wakes on a file
    # descriptor (a pipe from a pacing process, one byte per message, evenly spaced). A timer
    # loop here would spin: uvloop's timers have 1 ms resolution, so asyncio.sleep(0.0005)
    # returns at once and the feeding loop spun on a whole core of the two, as it did in the
    # figures measured before this pacer (docs/benchmarks.md).
    rfd, wfd = os.pipe()
    pacer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PACER, str(wfd), str(rate), str(seconds),
        pass_fds=(wfd,), stdin=asyncio.subprocess.PIPE,
    )  # fmt: skip
    os.close(wfd)
    os.set_blocking(rfd, False)
    loop = asyncio.get_running_loop()
    fed: asyncio.Future[None] = loop.create_future()
    sent = 0

    def on_frames() -> None:
        nonlocal sent
        data = os.read(rfd, 4096)
        if not data:
            loop.remove_reader(rfd)
            fed.set_result(None)
            return
        for _ in range(len(data)):
            s = symbols[sent % len(symbols)]
            cache.apply(Frame(topic=f"tickers.{s}", type="delta", ts=sent, data=delta(s, rng)),
                        mono())  # fmt: skip
            sent += 1

    loop.add_reader(rfd, on_frames)
    cpu0 = time.process_time()
    assert pacer.stdin is not None
    pacer.stdin.write(b"go\n")
    await pacer.stdin.drain()
    pacer.stdin.close()
    await fed
    os.close(rfd)
    await pacer.wait()
    gw_cpu = time.process_time() - cpu0
    redis1 = await r.info("cpu")
    await r.aclose()
    redis_cpu = sum(redis1[k] - redis0[k] for k in ("used_cpu_user", "used_cpu_sys"))
    lat: list[float] = []
    cpu: list[float] = []
    rows: list[list[float]] = []
    for p in procs:
        assert p.stdout is not None
        line = await p.stdout.readline()
        if line:
            doc = json.loads(line)
            lat.extend(doc["lat"])
            cpu.append(doc["cpu_us"])
            rows.extend(doc["stages"])
        await p.wait()
    await gw.close()
    await hub.close()
    return {
        "rate": rate, "consumers": n_consumers, "sent": sent, "remote_n": len(lat),
        "remote_p50_ms": pct(lat, 0.5) * 1e3, "remote_p99_ms": pct(lat, 0.99) * 1e3,
        "remote_p999_ms": pct(lat, 0.999) * 1e3,
        "inproc_p50_ms": pct(local, 0.5) * 1e3, "inproc_p99_ms": pct(local, 0.99) * 1e3,
        "inproc_p999_ms": pct(local, 0.999) * 1e3,
        "consumer_cpu_us_per_entry": sorted(cpu)[len(cpu) // 2] if cpu else float("nan"),
        "redis_cpu_us_per_msg": redis_cpu / max(1, sent) * 1e6,
        "gateway_process_cpu_us_per_msg": gw_cpu / max(1, sent) * 1e6,
        "loadavg_1m": load0, "redis": "unix" if url.startswith("unix:") else "tcp",
        **stage_breakdown(sent_at, rows),
        **({"write_rtt_p99_ms": pct(write_rtt, 0.99) * 1e3} if write_rtt else {}),
    }  # fmt: skip


async def cpu_run(url: str, n: int, publish: bool) -> dict[str, Any]:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(url)
    await r.flushall()
    info0 = await r.info("cpu")
    hub = StreamHub(host="ws://127.0.0.1:1")
    gw = Gateway(hub, url, prefix="cpu", publish=publish, max_pending=n + 10, heartbeat=5)
    await gw.start()
    while gw.link != "up":
        await asyncio.sleep(0.01)
    cache = TickerCache("linear", publish=gw.consumer.bus.publisher(EventType.TICK))
    rng = random.Random(2)
    symbols = [f"SYM{i}USDT" for i in range(50)]
    for s in symbols:
        cache.apply(Frame(topic=f"tickers.{s}", type="snapshot", ts=1, data=ticker_fields(s, rng)),
                    time.monotonic())  # fmt: skip
    frames = [
        Frame(topic=f"tickers.{sym}", type="delta", ts=i, data=delta(sym, rng))
        for i, sym in ((i, symbols[i % 50]) for i in range(n))
    ]  # fmt: skip
    c0, w0 = time.process_time(), time.perf_counter()
    for i, f in enumerate(frames):
        cache.apply(f, time.monotonic())
        if i % 200 == 199:
            await asyncio.sleep(0)  # a socket read's worth, then the writer may run
    while gw.out.depth:
        await asyncio.sleep(0.001)
    c1, w1 = time.process_time(), time.perf_counter()
    info1 = await r.info("cpu")
    await gw.close()
    await hub.close()
    await r.aclose()
    redis_cpu = (info1["used_cpu_user"] + info1["used_cpu_sys"]) - (
        info0["used_cpu_user"] + info0["used_cpu_sys"]
    )
    return {"publish": publish, "n": n, "cpu_us_per_msg": (c1 - c0) / n * 1e6,
            "wall_s": w1 - w0, "redis_cpu_us_per_msg": redis_cpu / n * 1e6}  # fmt: skip


async def memory_run(url: str, symbols: int, multiple: float) -> dict[str, Any]:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(url)
    await r.flushall()
    base = (await r.info("memory"))["used_memory"]
    hub = StreamHub(host="ws://127.0.0.1:1")
    gw = Gateway(hub, url, prefix="mem", heartbeat=1, max_pending=1_000_000)
    await gw.start()
    while gw.link != "up":
        await asyncio.sleep(0.01)
    bus = gw.consumer.bus
    tick = TickerCache("linear", publish=bus.publisher(EventType.TICK))
    books = OrderBookCache("linear")
    pub_book = bus.publisher(EventType.ORDERBOOK)
    rng = random.Random(3)
    names = [f"SYM{i}USDT" for i in range(symbols)]
    px = {s: 1000.0 + i for i, s in enumerate(names)}
    u = dict.fromkeys(names, 0)
    for s in names:
        tick.apply(
            Frame(topic=f"tickers.{s}", type="snapshot", ts=1, data=ticker_fields(s, rng)), 0.0
        )
        u[s] = 1
        levels_b = [[f"{px[s] - 0.1 * k:.1f}", f"{rng.uniform(0.1, 5):.3f}"] for k in range(1, 51)]
        levels_a = [[f"{px[s] + 0.1 * k:.1f}", f"{rng.uniform(0.1, 5):.3f}"] for k in range(1, 51)]
        f = Frame(topic=f"orderbook.50.{s}", type="snapshot", ts=1,
                  data={"s": s, "b": levels_b, "a": levels_a, "u": 1, "seq": 1})  # fmt: skip
        pub_book(book_event(books.apply(f, 0.0), f, 0))
    # per symbol: 10 ticker + 50 book messages a second; write until every stream has been
    # trimmed `multiple` times over (the memory of any longer run)
    maxlen = gw.maxlen["book"]
    seconds = int(maxlen * multiple / 50) + 1
    sent = 0
    for sec in range(seconds):
        for k in range(50):
            for s in names:
                if k % 5 == 0:
                    tick.apply(
                        Frame(topic=f"tickers.{s}", type="delta", ts=sec, data=delta(s, rng)), 0.0
                    )
                    sent += 1
                u[s] += 1
                side = rng.choice("ba")
                off = rng.randint(1, 50) * 0.1
                price = px[s] - off if side == "b" else px[s] + off
                lv = [[f"{price:.1f}", f"{rng.uniform(0.1, 5):.3f}"]]
                f = Frame(topic=f"orderbook.50.{s}", type="delta", ts=sec,
                          data={"s": s, side: lv, "u": u[s], "seq": u[s]})  # fmt: skip
                pub_book(book_event(books.apply(f, 0.0), f, 0))
                sent += 1
            await asyncio.sleep(0)
        while gw.out.depth > 50_000:
            await asyncio.sleep(0.01)
    while gw.out.depth:
        await asyncio.sleep(0.01)
    await r.memory_purge()
    used = (await r.info("memory"))["used_memory"]
    lengths = [await r.xlen(k) for k in await r.keys("mem:md:*")]
    await gw.close()
    await hub.close()
    await r.aclose()
    return {"symbols": symbols, "entries_written": sent, "simulated_seconds": seconds,
            "streams": len(lengths), "max_stream_len": max(lengths),
            "redis_used_memory_mb": (used - base) / 2**20}  # fmt: skip


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


async def main(args: argparse.Namespace, loop_name: str) -> None:
    proc, port, d = start_redis()
    url = f"unix://{d}/redis.sock" if args.unix else f"redis://127.0.0.1:{port}/0"
    print(json.dumps({"loop": loop_name, "gc_freeze": args.gc_freeze,
                      "loadavg": os.getloadavg()}), flush=True)  # fmt: skip
    try:
        out: dict[str, Any] = {"latency": [], "cpu": [], "memory": None}
        rates = [2000] if args.quick else [2000, 20000]
        if args.rates:
            rates = [int(x) for x in args.rates.split(",")]
        consumers = [4] if args.quick else [1, 4, 16]
        if args.consumers:
            consumers = [int(x) for x in args.consumers.split(",")]
        for rate in rates:
            for n in consumers:
                res = await latency_run(
                    url, rate, n, args.seconds, loop_name, args.gc_freeze, args.stages
                )
                out["latency"].append(res)
                print(json.dumps(res), flush=True)
        if args.latency_only:
            print(json.dumps({"loadavg_end": os.getloadavg()}), flush=True)
            return
        n = 50_000 if args.quick else 200_000
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for _ in range(args.repeats):
            for publish in (False, True):
                res = await cpu_run(url, n, publish)
                runs[publish].append(res)
                out["cpu"].append(res)
                print(json.dumps(res), flush=True)
        off = median([r["cpu_us_per_msg"] for r in runs[False]])
        on = median([r["cpu_us_per_msg"] for r in runs[True]])
        print(json.dumps({"cpu_off_median": off, "cpu_on_median": on,
                          "publishing_cost_us_per_msg": on - off,
                          "redis_us_per_msg_median": median(
                              [r["redis_cpu_us_per_msg"] for r in runs[True]])}),
              flush=True)  # fmt: skip
        if not args.no_memory:
            out["memory"] = await memory_run(url, 50, 3.0)
            print(json.dumps(out["memory"]), flush=True)
        print(json.dumps({"loadavg_end": os.getloadavg()}), flush=True)
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    from hean.core import loop as hean_loop

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="on/off pairs of the CPU run")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false")
    ap.add_argument("--no-memory", action="store_true", help="skip the Redis memory run")
    ap.add_argument("--unix", action="store_true", help="Redis over a Unix socket (not TCP)")
    ap.add_argument(
        "--stages",
        action="store_true",
        help="break the latency down: gateway queue, write -> consumer read, read -> callback",
    )
    ap.add_argument("--consumers", default=None, help="consumer counts, e.g. 1,4 (default: "
                    "4 with --quick, else 1,4,16)")  # fmt: skip
    ap.add_argument("--latency-only", action="store_true", help="skip the CPU and memory runs")
    ap.add_argument("--rates", default=None, help="messages/s, e.g. 2000 (default 2000,20000)")
    cli = ap.parse_args()
    factory, name = hean_loop.loop_factory(cli.loop == "uvloop")
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(cli, name))
