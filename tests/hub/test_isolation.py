"""One slow or broken consumer never hurts the others; its losses are counted exactly."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hean.core.bus import OverflowPolicy
from hean.core.events import EventType
from hean.emulator import Emulator
from hean.hub import StreamHub
from tests.conftest import ms
from tests.hub.conftest import until

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]
TOPICS = {f"tickers.{s}" for s in SYMBOLS}


async def test_a_consumer_that_sleeps_on_every_message_delays_nobody(
    emulator: Emulator, hub: StreamHub
) -> None:
    reference: list[Any] = []  # every event dispatched, recorded inline in the reader
    ref = hub.consumer("reference")
    ref.on_inline(EventType.TICK, reference.append)

    fast_lag: list[float] = []
    fast = hub.consumer("fast")

    async def on_fast(ev: Any) -> None:
        fast_lag.append(time.monotonic() - ev.recv_time)

    fast_sub = fast.on(EventType.TICK, on_fast, policy=OverflowPolicy.NEVER_DROP)

    handled: list[Any] = []
    slow = hub.consumer("slow")

    async def on_slow(ev: Any) -> None:
        handled.append(ev)
        await asyncio.sleep(ms(20))

    slow_sub = slow.on(EventType.TICK, on_slow, policy=OverflowPolicy.DROP_OLDEST, maxsize=16)

    latest = hub.consumer("latest")  # slow too, with the default policy: latest per topic

    async def on_latest(ev: Any) -> None:
        await asyncio.sleep(ms(20))

    latest_sub = latest.on(EventType.TICK, on_latest)

    broken = hub.consumer("broken")

    async def on_broken(ev: Any) -> None:
        raise RuntimeError("strategy bug")

    broken_sub = broken.on(EventType.TICK, on_broken)

    for c in (ref, fast, slow, latest, broken):
        await c.subscribe_tickers(SYMBOLS)
    await asyncio.sleep(ms(1000))

    # stop the flow at the venue, let the queues settle, and count
    emulator.set_faults(paused_symbols=set(SYMBOLS))
    await asyncio.sleep(ms(100))
    [conn] = emulator.live_connections("linear")
    sent = sum(n for t, n in emulator.sent_by_topic(conn.conn_id).items() if t in TOPICS)
    total = len(reference)
    assert total == sent and total > 300  # every frame the venue sent was dispatched

    # the fast consumer got everything, promptly, while the others slept or raised
    await until(lambda: fast_sub.delivered == total)
    assert fast_sub.dropped == 0
    fast_lag.sort()
    # (were it queued behind the sleeper, the lag would grow by 20 ms per event, to seconds)
    assert fast_lag[len(fast_lag) * 99 // 100] < ms(50), fast_lag[-5:]
    assert fast_lag[-1] < ms(250)
    assert hub.connections()[0].stats.reconnects == 0  # heartbeats never waited either

    # the slow consumer: bounded memory, and its losses counted exactly
    assert slow_sub.max_depth <= 16 and slow_sub.dropped > 0
    assert slow_sub.delivered + slow_sub.dropped + slow_sub.depth == total
    assert len(handled) == slow_sub.delivered
    it = iter(reference)  # what it handled is the stream minus the drops, in order
    assert all(any(ev is r for r in it) for ev in handled)

    # the latest-value consumer: at most one pending event per topic, nothing silently lost
    assert latest_sub.max_depth <= len(SYMBOLS) and latest_sub.conflated > 0
    assert latest_sub.dropped == 0
    assert latest_sub.delivered + latest_sub.conflated + latest_sub.depth == total

    # the broken consumer: every exception caught and counted, delivery goes on
    await until(lambda: broken_sub.delivered + broken_sub.conflated == total)
    assert broken_sub.errors == broken_sub.delivered > 0

    stats = {c.name: c for c in hub.stats().consumers}
    assert stats["slow"].dropped == slow_sub.dropped
    assert stats["broken"].errors == broken_sub.errors
    assert stats["fast"].dropped == 0 and stats["fast"].errors == 0


async def test_batch_consumers_get_one_call_per_socket_read(
    emulator: Emulator, hub: StreamHub
) -> None:
    batches: list[list[Any]] = []
    c = hub.consumer("batcher")

    async def on_batch(events: list[Any]) -> None:
        batches.append(events)
        await asyncio.sleep(ms(30))  # slow: several reads pile up, one call takes them all

    sub = c.on(EventType.TICK, on_batch, batch=True, policy=OverflowPolicy.DROP_OLDEST)
    await c.subscribe_tickers(SYMBOLS)
    await until(lambda: len(batches) >= 5)
    assert max(len(b) for b in batches) > 1
    assert sum(len(b) for b in batches) == sub.delivered


async def test_stream_iteration_is_per_consumer(emulator: Emulator, hub: StreamHub) -> None:
    a, b = hub.consumer("a"), hub.consumer("b")
    seen: set[str] = set()

    async def read() -> None:
        async for ev in a.stream(EventType.TICK):
            seen.add(ev.symbol)

    task = asyncio.get_running_loop().create_task(read())
    await a.subscribe_tickers(["BTCUSDT"])
    await b.subscribe_tickers(["ETHUSDT"])
    await asyncio.sleep(ms(200))
    await a.close()  # ends the iteration
    await asyncio.wait_for(task, 1.0)
    assert seen == {"BTCUSDT"}
