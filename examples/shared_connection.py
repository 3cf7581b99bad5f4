"""Several independent consumers share one connection per endpoint through a StreamHub.

A strategy, an order router and a risk check each ask for the market data they need; the hub
opens one public connection to the linear endpoint, subscribes each topic once, and hands every
consumer the events of its own topics through its own queue. The risk check is deliberately slow:
it costs the others nothing, and its skipped updates are counted.

.venv/bin/python examples/shared_connection.py          # built-in emulator, 3 seconds
.venv/bin/python examples/shared_connection.py 10       # 10 seconds
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

from hean import EventType, PriceFeed, StreamHub
from hean.core.events import TickEvent, TradeEvent
from hean.emulator import Emulator, EmulatorConfig
from hean.hub import ConnectionRateLimiter


async def main(seconds: float) -> int:
    emulator = Emulator(EmulatorConfig(ticker_interval=0.02))
    await emulator.start()
    hub = StreamHub(host=f"ws://127.0.0.1:{emulator.port}", limiter=ConnectionRateLimiter())
    try:
        # -- the strategy: every ticker update it can keep up with, plus trades --------------
        strategy = hub.consumer("strategy")
        ticks: Counter[str] = Counter()
        volume: Counter[str] = Counter()

        async def on_tick(tick: TickEvent) -> None:  # latest value per symbol if it lags
            ticks[tick.symbol] += 1

        async def on_trades(event: TradeEvent) -> None:  # drop-oldest, counted, if it lags
            volume[event.symbol] += len(event.trades)

        strategy.on(EventType.TICK, on_tick)
        strategy.on(EventType.TRADE, on_trades)
        await strategy.subscribe_tickers(["BTCUSDT", "ETHUSDT"])
        await strategy.subscribe_trades(["BTCUSDT"])

        # -- the router: reads prices from a feed, refuses stale ones -------------------------
        feed = PriceFeed(hub, stale_after=1.0, name="router")
        await feed.track(["BTCUSDT", "SOLUSDT"])
        routed = 0

        async def route_orders() -> None:
            nonlocal routed
            while True:
                quote = await feed.wait_fresh("BTCUSDT", timeout=5.0)
                if quote.bid is not None and quote.ask is not None:
                    routed += 1  # a real router would price a limit order off bid / ask here
                await asyncio.sleep(0.1)

        router_task = asyncio.get_running_loop().create_task(route_orders())

        # -- the risk check: slow on purpose (it takes 50 ms per update) ----------------------
        risk = hub.consumer("risk")
        checked: Counter[str] = Counter()

        wide_spreads = 0

        async def check(tick: TickEvent) -> None:
            nonlocal wide_spreads
            checked[tick.symbol] += 1
            book = risk.orderbook("BTCUSDT", 50)  # the shared, always-current book
            if tick.symbol == "BTCUSDT" and book is not None and book.valid:
                spread = book.spread
                if spread is not None and tick.last_price and spread > tick.last_price * 1e-3:
                    wide_spreads += 1
            await asyncio.sleep(0.05)

        risk.on(EventType.TICK, check)
        await risk.subscribe_tickers(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
        await risk.subscribe_orderbook(["BTCUSDT"], depth=50)

        await asyncio.sleep(seconds)
        router_task.cancel()

        price = feed.price("BTCUSDT")
        connections = Counter(d for _, ev, _, d in emulator.connection_log if ev == "accept")
        print(f"connections opened: {dict(connections)}")
        print(f"topics on the wire: {sorted(hub.wanted('linear'))}")
        print(f"strategy: ticks {dict(ticks)}, trades {dict(volume)}")
        print(f"router:   {routed} orders priced; BTCUSDT {price}")
        print(f"risk:     checked {dict(checked)}, wide spreads {wide_spreads}")
        for stats in hub.stats().consumers:
            print(
                f"  {stats.name:<9} delivered={stats.delivered} conflated={stats.conflated} "
                f"dropped={stats.dropped} errors={stats.errors} max_depth={stats.max_depth}"
            )
        ok = (
            connections == Counter({"/v5/public/linear": 1})
            and ticks
            and routed > 0
            and checked
            and price is not None
        )
        print("one shared connection, every consumer served" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        await hub.close()
        await emulator.stop()


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    sys.exit(asyncio.run(main(float(numbers[0]) if numbers else 3.0)))
