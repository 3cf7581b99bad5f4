"""A remote consumer process for the multi-process tests (``python -m tests.remote.consumer_proc``).

argv: REDIS_URL SYMBOLS(comma) DEPTH. Prints ``ready`` once its topics are joined, then reads one
JSON line on stdin: the gateway's final ``{stream key: [epoch, g]}``; waits until it has read that
far and prints one JSON line: ticker count and a digest of the ticker sequence per symbol, the
final book, and its stats.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from typing import Any

from hean.core.events import EventType
from hean.remote import RemoteHub


async def main(url: str, symbols: list[str], depth: int) -> None:
    hub = RemoteHub(url, gateway_timeout=2.0, block_ms=20)
    c = hub.consumer("proc")
    counts = dict.fromkeys(symbols, 0)
    digests = {s: hashlib.sha256() for s in symbols}

    def on_tick(ev: Any) -> None:
        counts[ev.symbol] += 1
        digests[ev.symbol].update(f"{ev.exchange_ts}:{ev.last_price}:{ev.bid}:{ev.ask};".encode())

    c.on_inline(EventType.TICK, on_tick)
    await c.subscribe_tickers(symbols, wait=5)
    await c.subscribe_orderbook(symbols[:1], depth, wait=5)
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    final: dict[str, list[int]] = json.loads(line)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done = True
        for key, (epoch, g) in final.items():
            topic = key.split(":", 3)[3]
            t = hub.tracker(topic)
            if t is None or (t.epoch, t.g) < (epoch, g) or not t.synced:
                done = False
        if done:
            break
        await asyncio.sleep(0.01)
    book = hub.orderbook(symbols[0], depth)
    st = hub.stats()
    print(
        json.dumps(
            {
                "counts": counts,
                "digests": {s: d.hexdigest() for s, d in digests.items()},
                "bids": book.bids() if book else None,
                "asks": book.asks() if book else None,
                "valid": bool(book and book.valid),
                "gaps": st.gaps,
                "lag_max": st.lag_max,
            }
        ),
        flush=True,
    )
    await hub.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])))
