"""Ten consumer processes on one gateway: each sees what the in-process consumer sees."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hean.core.events import EventType
from hean.emulator import Emulator
from tests.gateway.helpers import make_gateway, settle, until
from tests.hub.conftest import emulator
from tests.redis_server import needs_redis

pytestmark = needs_redis
__all__ = ["emulator"]

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
N = 10


@pytest.mark.timeout(60)
@pytest.mark.emulator(auto_tick=False)
async def test_ten_consumer_processes_see_every_update_on_one_connection(
    emulator: Emulator, redis_url: str
) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.remote.consumer_proc",
            redis_url,
            ",".join(SYMBOLS),
            "50",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(N)
    ]
    hub, gw = make_gateway(emulator, redis_url, snapshot_every=25)
    local = hub.consumer("in-process")
    counts: Counter[str] = Counter()
    digests = {s: hashlib.sha256() for s in SYMBOLS}

    def on_tick(ev: Any) -> None:
        counts[ev.symbol] += 1
        digests[ev.symbol].update(f"{ev.exchange_ts}:{ev.last_price}:{ev.bid}:{ev.ask};".encode())

    local.on_inline(EventType.TICK, on_tick)
    try:
        for p in procs:  # every consumer has joined (no data yet: they wait for a snapshot)
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 30)
            assert line.strip() == b"ready", line
        await gw.start()
        await gw.subscribe_tickers(SYMBOLS)
        await gw.subscribe_orderbook(SYMBOLS[:1], 50)
        await local.subscribe_tickers(SYMBOLS)
        await until(lambda: all(hub.ticker(s) is not None for s in SYMBOLS))
        await settle(emulator, 300)
        bids, asks = emulator.book_truth("linear", "BTCUSDT", 50)

        def hub_done() -> bool:
            b = hub.orderbook("BTCUSDT", 50)
            return b is not None and b.bids() == bids and b.asks() == asks

        await until(hub_done)
        await until(lambda: gw.out.depth == 0)
        final = {key: [gw.out.epoch, s.g] for key, s in gw.out.streams.items() if ":md:" in key}
        results = []
        for p in procs:
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write((json.dumps(final) + "\n").encode())
            await p.stdin.drain()
        for p in procs:
            assert p.stdout is not None
            results.append(json.loads(await asyncio.wait_for(p.stdout.readline(), 30)))
        want_digests = {s: d.hexdigest() for s, d in digests.items()}
        assert min(counts.values()) > 50
        for r in results:
            assert r["counts"] == dict(counts)
            assert r["digests"] == want_digests
            assert r["valid"] and r["gaps"] == 0
            assert [tuple(x) for x in r["bids"]] == bids
            assert [tuple(x) for x in r["asks"]] == asks
        # one exchange connection for eleven consumers
        accepts = [e for e in emulator.connection_log if e[1] == "accept"]
        assert len(accepts) == 1, accepts
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
            await p.wait()
        await gw.close()
        await hub.close()
