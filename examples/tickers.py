"""Stream merged tickers from the built-in emulator (or Bybit) and print them.

.venv/bin/python examples/tickers.py                 # built-in emulator, 5 seconds
.venv/bin/python examples/tickers.py --testnet 30    # Bybit testnet, 30 seconds
"""

from __future__ import annotations

import asyncio
import sys

from hean import EventBus, EventType
from hean.core.events import TickEvent
from hean.emulator import Emulator, EmulatorConfig
from hean.exchange.bybit import BybitPublicWebSocket


async def main(testnet: bool, seconds: float) -> int:
    bus = EventBus()
    await bus.start()
    counts: dict[str, int] = {}

    def on_tick(tick: TickEvent) -> None:
        counts[tick.symbol] = counts.get(tick.symbol, 0) + 1
        if counts[tick.symbol] % 10 == 1:
            mark = tick.ticker.get("markPrice")
            print(
                f"{tick.symbol:<8} last={tick.last_price} bid={tick.bid} ask={tick.ask} mark={mark}"
            )

    bus.subscribe(EventType.TICK, on_tick)
    emulator = None if testnet else Emulator(EmulatorConfig())
    if emulator is not None:
        await emulator.start()
    ws = BybitPublicWebSocket(
        bus, "linear", testnet=True, url=None if emulator is None else emulator.url("linear")
    )
    try:
        await ws.connect(timeout=15)
        await ws.subscribe_tickers(["BTCUSDT", "ETHUSDT"])
        await asyncio.sleep(seconds)
        print("ticks per symbol:", counts, "| stats:", ws.stats.state, ws.stats.reconnects)
    finally:
        await ws.disconnect()
        await bus.stop()
        if emulator is not None:
            await emulator.stop()
    return 0 if counts else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    testnet = "--testnet" in args
    numbers = [a for a in args if not a.startswith("--")]
    sys.exit(asyncio.run(main(testnet, float(numbers[0]) if numbers else 5.0)))
