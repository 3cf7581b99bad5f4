"""Place, amend and cancel an order over the trade stream and print the private events that follow.

Runs against the built-in emulator (in-process, with its default API key pair), so it needs no
account and no network:

.venv/bin/python examples/orders.py

Against Bybit testnet, give your own testnet keys through ``BYBIT_API_KEY`` / ``BYBIT_API_SECRET``
and pass ``--testnet`` (it places a real, far-from-market order and cancels it).
"""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal
from typing import Any

from hean import EventBus
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_trade import BybitTradeWebSocket

SYMBOL = "ETHUSDT"


def describe(event: Any) -> str:
    """One line per private event."""
    if hasattr(event, "orders"):
        return "; ".join(
            f"order {o.order_id[:8]} {o.side} {o.qty} @ {o.price} {o.order_status}"
            f" (filled {o.cum_exec_qty})"
            for o in event.orders
        )
    if hasattr(event, "executions"):
        kind = "fast execution" if event.fast else "execution"
        return "; ".join(
            f"{kind} {x.order_id[:8]} {x.side} {x.exec_qty} @ {x.exec_price}"
            for x in event.executions
        )
    if hasattr(event, "positions"):
        return "; ".join(
            f"position {p.symbol} side={p.side or '-'} size={p.size} entry={p.entry_price}"
            for p in event.positions
        )
    if hasattr(event, "wallets"):
        coin = event.wallets[0].coin_of("USDT")
        balance = coin.wallet_balance if coin is not None else "?"
        return f"wallet USDT balance={balance}"
    return repr(event)


async def main(testnet: bool) -> int:
    bus = EventBus()
    await bus.start()
    printed: list[str] = []

    async def on_event(event: Any) -> None:
        line = f"  [{event.topic}] {describe(event)}"
        printed.append(line)
        print(line)

    emulator = None if testnet else Emulator(EmulatorConfig())
    if emulator is not None:
        await emulator.start()
        key, secret = DEFAULT_API_KEY, DEFAULT_API_SECRET
        private_url, trade_url = emulator.url("private"), emulator.url("trade")
    else:
        key, secret = os.environ["BYBIT_API_KEY"], os.environ["BYBIT_API_SECRET"]
        private_url = trade_url = None
    account = BybitPrivateWebSocket(bus, api_key=key, api_secret=secret, url=private_url)
    trade = BybitTradeWebSocket(api_key=key, api_secret=secret, url=trade_url)
    account.subscribe_events(on_event, name="example")
    try:
        await account.connect(timeout=15)
        await account.subscribe(["order", "execution", "position", "wallet"])
        await account.wait_subscribed(["order", "execution", "position", "wallet"])
        await trade.connect(timeout=15)

        price = "1000"  # far below the market: the order rests
        print(f"placing: Buy 0.1 {SYMBOL} @ {price}")
        ack = await trade.create_order(
            category="linear",
            symbol=SYMBOL,
            side="Buy",
            order_type="Limit",
            qty="0.1",
            price=price,
            order_link_id="example-1",
        )
        print(f"ack: orderId={ack.order_id} in {1000 * (ack.latency or 0):.1f} ms")
        await asyncio.sleep(0.3)

        print("amending: qty 0.2 @ 1100")
        await trade.amend_order(
            category="linear", symbol=SYMBOL, order_link_id="example-1", qty="0.2", price="1100"
        )
        await asyncio.sleep(0.3)

        print("cancelling")
        await trade.cancel_order(category="linear", symbol=SYMBOL, order_id=ack.order_id)
        await asyncio.sleep(0.3)

        if emulator is not None:
            print("a market order (fills against the simulated book):")
            await trade.create_order(
                category="linear", symbol=SYMBOL, side="Buy", order_type="Market", qty="0.05"
            )
            await asyncio.sleep(0.3)
            position = emulator.account(key).position("linear", SYMBOL)
            size = Decimal(str(position["size"])) if position else Decimal(0)
            print(f"emulator's ground truth: position size {size}")
        print(f"{len(printed)} private events received")
    finally:
        await trade.disconnect()
        await account.disconnect()
        await bus.stop()
        if emulator is not None:
            await emulator.stop()
    return 0 if printed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main("--testnet" in sys.argv[1:])))
