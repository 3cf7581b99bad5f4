"""Order book apply cost, in process: ns per delta and per level, against the decode floor.

A fixed-seed market simulator keeps a deep "true" book (3N levels a side), changes it a few levels
at a time (size changes near the top, cancels, new orders inside the window, trades that take the
best level, orders that improve the spread) and emits what Bybit would: one snapshot of the top N,
then a delta per change with exactly the levels of the N-level window that changed (levels leaving
the window sent as size ``"0"``), consecutive ``u``. About 8 levels per delta on average.

The frames are encoded to bytes once, then, in this process:

* ``decode``: msgspec-decoding every frame with HEAN's codec and dropping it (the floor: any
  consumer pays it);
* ``bisect``: ``OrderBookCache.apply`` on the pre-decoded frames (the shipped implementation:
  sorted key list + dict, per-book price-key cache);
* ``bisect, no key cache``: the same with the price-string -> key cache disabled (every level's
  price parsed);
* ``SortedDict``: the same rules with ``sortedcontainers.SortedDict`` sides (and the key cache);
* ``decode + bisect``: both, as the pipeline runs them.

Each variant's book is checked against the simulator's window at the end. Timings are the best
of ``--repeats`` runs (variants taking turns) with the garbage collector off. A second table gives
the cost of applying a full snapshot (what every (re)subscribe or resync costs).

``sortedcontainers`` is only needed here (it comes with the dev dependency ``hypothesis``).

Run:  .venv/bin/python benchmarks/bench_orderbook_apply.py [--deltas 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from collections.abc import Callable
from typing import Any

from hean.exchange.bybit.protocol.codec import Frame, decode
from hean.exchange.bybit.state.orderbook import OrderBookCache, price_key

STEP = 10  # price ticks of 0.01 -> a 0.10 tick, like BTCUSDT linear ("30247.20")


def fmt_price(tick: int) -> str:
    return f"{tick // 100}.{tick % 100:02d}"


def fmt_size(milli: int) -> str:
    return f"{milli // 1000}.{milli % 1000:03d}"


class Market:
    """A deep book that moves a few levels at a time (ticks of 0.01, sizes in thousandths)."""

    def __init__(self, depth: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.depth = depth
        mid = 3_000_000  # 30000.00
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        for k in range(1, 3 * depth + 1):
            if self.rng.random() < 0.9:
                self.bids[mid - STEP * k] = self._size()
            if self.rng.random() < 0.9:
                self.asks[mid + STEP * k] = self._size()

    def _size(self) -> int:
        return int(self.rng.expovariate(1 / 2000)) + 1

    def window(self) -> tuple[dict[int, int], dict[int, int]]:
        n = self.depth
        bids = sorted(self.bids, reverse=True)[:n]
        asks = sorted(self.asks)[:n]
        return {t: self.bids[t] for t in bids}, {t: self.asks[t] for t in asks}

    def _near(self, side: dict[int, int], best_first: list[int]) -> int:
        # Activity concentrates near the top of book.
        i = min(int(self.rng.expovariate(1 / 8)), len(best_first) - 1)
        return best_first[i]

    def change(self) -> None:
        rng = self.rng
        n = self.depth
        for _ in range(rng.randint(3, 12)):
            is_bid = rng.random() < 0.5
            side = self.bids if is_bid else self.asks
            best_first = sorted(side, reverse=is_bid)[:n]
            r = rng.random()
            if r < 0.55 and best_first:  # size change
                side[self._near(side, best_first)] = self._size()
            elif r < 0.70 and len(best_first) > 1:  # cancel
                del side[self._near(side, best_first)]
            elif r < 0.85 and best_first:  # new order inside the window
                tick = self._near(side, best_first) + (STEP if not is_bid else -STEP)
                if tick not in side:
                    side[tick] = self._size()
            elif r < 0.92 and best_first:  # a trade takes the best level
                del side[best_first[0]]
            else:  # an order joins at / improves the best price (never crosses)
                best_bid, best_ask = max(self.bids), min(self.asks)
                tick = best_bid + STEP if is_bid else best_ask - STEP
                if best_bid < tick < best_ask:
                    side[tick] = self._size()
            # a wide spread refills quickly (market makers), so the spread stays a few ticks
            best_bid, best_ask = max(self.bids), min(self.asks)
            if best_ask - best_bid > 3 * STEP:
                is_bid = rng.random() < 0.5
                side = self.bids if is_bid else self.asks
                side[best_bid + STEP if is_bid else best_ask - STEP] = self._size()
            # keep the book deep: refill the far ends
            while len(self.bids) < 2 * n:
                self.bids[min(self.bids) - STEP] = self._size()
            while len(self.asks) < 2 * n:
                self.asks[max(self.asks) + STEP] = self._size()


def diff(old: dict[int, int], new: dict[int, int], desc: bool) -> list[list[str]]:
    changed = [t for t in new if old.get(t) != new[t]] + [t for t in old if t not in new]
    changed.sort(reverse=desc)
    return [[fmt_price(t), fmt_size(new[t]) if t in new else "0"] for t in changed]


def generate(depth: int, deltas: int, seed: int) -> tuple[list[bytes], Market, int]:
    market = Market(depth, seed)
    topic = f"orderbook.{depth}.BTCUSDT"
    u, seq, ts = 5_000_000, 70_000_000_000, 1_700_000_000_000
    bids, asks = market.window()
    snap = {
        "topic": topic,
        "type": "snapshot",
        "ts": ts,
        "data": {
            "s": "BTCUSDT",
            "b": [[fmt_price(t), fmt_size(s)] for t, s in sorted(bids.items(), reverse=True)],
            "a": [[fmt_price(t), fmt_size(s)] for t, s in sorted(asks.items())],
            "u": u,
            "seq": seq,
        },
        "cts": ts - 2,
    }
    frames = [json.dumps(snap, separators=(",", ":")).encode()]
    levels = 0
    while len(frames) <= deltas:
        market.change()
        new_bids, new_asks = market.window()
        b = diff(bids, new_bids, desc=True)
        a = diff(asks, new_asks, desc=False)
        bids, asks = new_bids, new_asks
        if not b and not a:
            continue
        u += 1
        seq += 3
        ts += 20
        msg = {
            "topic": topic,
            "type": "delta",
            "ts": ts,
            "data": {"s": "BTCUSDT", "b": b, "a": a, "u": u, "seq": seq},
            "cts": ts - 2,
        }
        frames.append(json.dumps(msg, separators=(",", ":")).encode())
        levels += len(b) + len(a)
    return frames, market, levels


# --------------------------------------------------------------------------- SortedDict variant


class SortedDictBook:
    """The same rules as OrderBook (gap / crossed / key cache), sides in SortedDicts."""

    def __init__(self) -> None:
        from sortedcontainers import SortedDict

        self._sd = SortedDict
        self.bids: Any = SortedDict()  # negated keys: index 0 is the best
        self.asks: Any = SortedDict()
        self.bid_cache: dict[str, int] = {}
        self.ask_cache: dict[str, int] = {}
        self.u = 0
        self.valid = False
        self.best_bid: Any = None
        self.best_ask: Any = None

    def apply(self, frame: Frame, now: float) -> SortedDictBook:
        data: Any = frame.data
        u = data["u"]
        if frame.type == "delta" and u != 1:
            if not self.valid or u != self.u + 1:
                self.valid = False
                return self
            self._merge(self.bids, data["b"], self.bid_cache, True)
            self._merge(self.asks, data["a"], self.ask_cache, False)
        else:
            self.bids = self._sd()
            self.asks = self._sd()
            self._merge(self.bids, data["b"], self.bid_cache, True)
            self._merge(self.asks, data["a"], self.ask_cache, False)
            self.valid = True
        self.u = u
        bids, asks = self.bids, self.asks
        self.best_bid = bids.peekitem(0)[1] if bids else None
        self.best_ask = asks.peekitem(0)[1] if asks else None
        if bids and asks and -bids.peekitem(0)[0] >= asks.peekitem(0)[0]:
            self.valid = False
        return self

    @staticmethod
    def _merge(side: Any, items: Any, cache: dict[str, int], negate: bool) -> None:
        get = cache.get
        for price, size in items:
            key = get(price)
            if key is None:
                key = -price_key(price) if negate else price_key(price)
                cache[price] = key
            if size == "0" or (size[0] == "0" and not size.strip("0.")):
                side.pop(key, None)
            else:
                side[key] = (price, size)

    def levels(self) -> tuple[list[Any], list[Any]]:
        return list(self.bids.values()), list(self.asks.values())


# --------------------------------------------------------------------------- runs


def timed(run: Callable[[], Any]) -> tuple[int, Any]:
    gc.collect()
    gc.disable()
    t0 = time.perf_counter_ns()
    result = run()
    elapsed = time.perf_counter_ns() - t0
    gc.enable()
    return elapsed, result


def best_of(repeats: int, runs: dict[str, Callable[[], Any]]) -> dict[str, tuple[float, Any]]:
    """Best time of each run; the runs take turns, so a slow patch of the machine hits all."""
    best: dict[str, tuple[float, Any]] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            elapsed, result = timed(run)
            if name not in best or elapsed < best[name][0]:
                best[name] = (elapsed, result)
    return best


def run_bisect(frames: list[Frame], key_cache: bool = True) -> Any:
    cache = OrderBookCache("linear")
    apply = cache.apply
    book = apply(frames[0], 0.0)
    if not key_cache:
        book._cache_limit = 0  # every miss clears the cache: ~every level is parsed
    for frame in frames[1:]:
        apply(frame, 0.0)
    assert book.valid, book.invalid_reason
    return book


def run_sorteddict(frames: list[Frame]) -> Any:
    book = SortedDictBook()
    apply = book.apply
    for frame in frames:
        apply(frame, 0.0)
    assert book.valid
    return book


def run_decode(payloads: list[bytes]) -> list[Frame]:
    return [decode(p) for p in payloads]


def run_decode_only(payloads: list[bytes]) -> None:
    for p in payloads:
        decode(p)  # decoded and dropped, as in a streaming pipeline


def run_decode_apply(payloads: list[bytes]) -> Any:
    cache = OrderBookCache("linear")
    apply = cache.apply
    book = None
    for p in payloads:
        book = apply(decode(p), 0.0)
    return book


def run_snapshots(frame: Frame, times: int) -> Any:
    cache = OrderBookCache("linear")
    apply = cache.apply
    book = None
    for _ in range(times):
        book = apply(frame, 0.0)
    return book


def expected(market: Market) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    bids, asks = market.window()
    return (
        [(fmt_price(t), fmt_size(s)) for t, s in sorted(bids.items(), reverse=True)],
        [(fmt_price(t), fmt_size(s)) for t, s in sorted(asks.items())],
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--deltas", type=int, default=20_000, help="deltas per depth (default 20000)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--depths", default="50,200,1000", help="comma-separated (default 50,200,1000)")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()

    rows = []
    snaps = []
    for depth in (int(d) for d in args.depths.split(",")):
        payloads, market, levels = generate(depth, args.deltas, args.seed)
        n = len(payloads) - 1  # deltas (the snapshot is in every run too)
        frames = run_decode(payloads)
        want = expected(market)

        results = best_of(
            args.repeats,
            {
                "decode (floor)": lambda payloads=payloads: run_decode_only(payloads),
                "bisect (shipped)": lambda frames=frames: run_bisect(frames),
                "bisect, no key cache": lambda frames=frames: run_bisect(frames, False),
                "SortedDict": lambda frames=frames: run_sorteddict(frames),
                "decode + bisect": lambda payloads=payloads: run_decode_apply(payloads),
            },
        )
        for name, (_, book) in results.items():
            if name == "SortedDict":
                assert book.levels() == (list(want[0]), list(want[1])), name
            elif name != "decode (floor)":
                assert (book.bids(), book.asks()) == want, name
                assert book.overflows == 0 and book.valid, name
        size = sum(len(x) for x in payloads[1:]) / n
        rows.append((depth, n, levels / n, size, {k: v[0] for k, v in results.items()}))
        reps = 200  # a snapshot replaces the whole book: what a resync costs
        t_snap, _ = min(timed(lambda f=frames[0], r=reps: run_snapshots(f, r)) for _ in range(3))
        snaps.append((depth, len(payloads[0]), t_snap / reps, t_snap / reps / 2 / depth))

    print()
    print(f"Order book apply, in process ({args.deltas} deltas per depth, best of {args.repeats})")
    print()
    print("| depth | levels/delta | bytes/delta | variant | ns/delta | ns/level | x decode floor |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for depth, n, lpd, size, times in rows:
        floor = times["decode (floor)"]
        for name, t in times.items():
            print(
                f"| {depth} | {lpd:.1f} | {size:.0f} | {name} | {t / n:,.0f} "
                f"| {t / n / lpd:,.0f} | {t / floor:.2f} |"
            )
    print()
    print("| depth | snapshot bytes | ns/snapshot (apply) | ns/level |")
    print("|---:|---:|---:|---:|")
    for depth, nbytes, t, per_level in snaps:
        print(f"| {depth} | {nbytes:,} | {t:,.0f} | {per_level:,.0f} |")
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
