"""A consumer in another process (or on another machine) of a ``hean gateway``.

In one shell, the gateway (here against the built-in emulator, with a local redis-server)::

    scripts/hean gateway --sim --books 50 --symbols BTCUSDT,ETHUSDT --redis redis://127.0.0.1:6379/0

In another (as many as you like)::

    .venv/bin/python examples/remote_consumer.py --redis redis://127.0.0.1:6379/0 --seconds 5

The consumer code is what it would be on a StreamHub in the gateway's own process; only the
constructor differs (``RemoteHub(url)`` instead of ``StreamHub(host=...)``). It prints the
current state it got at once on joining, then a line a second: ticks received, the book, the
price feed's view, its lag behind the gateway and any rebuilds.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from typing import Any

from hean import EventType, PriceFeed
from hean.remote import RemoteHub


async def main(url: str, prefix: str, symbols: list[str], depth: int, seconds: float) -> int:
    hub = RemoteHub(url, prefix=prefix)
    try:
        strategy = hub.consumer("strategy")
        ticks: Counter[str] = Counter()

        async def on_tick(ev: Any) -> None:
            ticks[ev.symbol] += 1

        strategy.on(EventType.TICK, on_tick)
        strategy.on_inline(
            EventType.SUBSCRIPTION,
            lambda ev: print(f"  {ev.topic}: {ev.status.value} ({ev.reason})"),
        )
        await strategy.subscribe_tickers(symbols, wait=5)
        await strategy.subscribe_orderbook(symbols[:1], depth, wait=5)
        feed = PriceFeed(hub, stale_after=3.0)
        await feed.track(symbols)
        t = hub.ticker(symbols[0])
        book = hub.orderbook(symbols[0], depth)
        print(
            f"joined: {symbols[0]} last={t.last_price if t else None} "
            f"book valid={book.valid if book else None} u={book.u if book else None}"
        )
        for _ in range(int(seconds)):
            await asyncio.sleep(1.0)
            p = feed.price(symbols[0])
            book = hub.orderbook(symbols[0], depth)
            s = hub.stats()
            lag = "-" if s.lag_last is None else f"{s.lag_last * 1e3:.2f} ms"
            print(
                f"ticks {dict(ticks)} | book valid={book.valid if book else None} "
                f"bid={book.best_bid if book else None} | price "
                f"{'-' if p is None else f'{p.last} stale={p.stale}'} | lag {lag} | "
                f"gaps {s.gaps} resyncs {s.resyncs}"
            )
        return 0
    finally:
        await hub.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--prefix", default="hean")
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    raise SystemExit(asyncio.run(main(a.redis, a.prefix, a.symbols.split(","), a.depth, a.seconds)))
