"""An account that stays true across a private-link outage.

Starts the built-in emulator (in-process, its default API key pair: no network, no keys), opens
``hean.account.Account`` on it, places two resting orders, then drops the private link while one
order fills, the other is cancelled elsewhere and someone else places an order. When the link is
back the account reconciles over REST and prints what it learned; the final view equals the
emulator's own record.

.venv/bin/python examples/account.py
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from hean import EventBus, EventType
from hean.account import Account
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.rest import BybitRestClient

SYMBOL = "ETHUSDT"


async def main() -> int:
    async with Emulator(EmulatorConfig(auto_tick=False)) as emu:
        bus = EventBus()
        await bus.start()
        fills: list[str] = []

        def on_execution(event: Any) -> None:
            for x in event.executions:
                origin = "learned over REST" if event.reconciled else "from the stream"
                fills.append(x.exec_id)
                print(f"  execution {x.exec_id[:8]} {x.side} {x.exec_qty} @ {x.exec_price} "
                      f"({x.exec_type}, {origin})")  # fmt: skip

        def on_order(event: Any) -> None:
            for o in event.orders:
                origin = "learned over REST" if event.reconciled else "from the stream"
                print(f"  order {o.order_id[:8]} {o.side} {o.qty} @ {o.price} -> "
                      f"{o.order_status} ({origin})")  # fmt: skip

        bus.subscribe(EventType.EXECUTION, on_execution)
        bus.subscribe(EventType.ORDER_UPDATE, on_order)
        bus.subscribe(EventType.ACCOUNT_SYNC, lambda e: print(f"in sync: {e.in_sync} ({e.reason})"))
        bus.subscribe(
            EventType.RECONCILED,
            lambda r: print(
                f"reconciled ({r.trigger}) in {r.duration * 1e3:.0f} ms with {r.rest_calls} REST "
                f"calls: {r.orders_changed} orders changed, {r.external_orders} external, "
                f"{r.executions_new} executions learned"
            ),
        )
        async with BybitRestClient(
            api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emu.rest_url()
        ) as rest:
            account = Account(bus, rest, private_url=emu.url("private"))
            await account.start()
            bids, asks = emu.book_truth("linear", SYMBOL, 1)
            for side, price in (
                ("Buy", Decimal(bids[0][0]) - 1),
                ("Sell", Decimal(asks[0][0]) + 1),
            ):
                await account.create_order(
                    category="linear", symbol=SYMBOL, side=side, order_type="Limit",
                    qty="0.1", price=str(price),
                )  # fmt: skip
            await asyncio.sleep(0.2)
            print("-- the private link drops; meanwhile one order fills, one is cancelled, "
                  "someone else places one --")  # fmt: skip
            await emu.private_outage(
                DEFAULT_API_KEY, fills=1, partial_fills=0, cancels=1, new_orders=1, seed=3, hold=0.3
            )
            for _ in range(100):
                await asyncio.sleep(0.05)
                if account.in_sync and account.stats.state.runs >= 2:
                    break
            truth = emu.account(DEFAULT_API_KEY)
            same = set(account.orders) == {str(o["orderId"]) for o in truth.open_orders}
            external = [oid[:8] for oid in account.orders if account.is_external(oid)]
            print(f"open orders: {len(account.orders)} (external: {', '.join(external) or '-'}); "
                  f"equal to the emulator's: {same}")  # fmt: skip
            print(f"executions delivered: {len(fills)}, distinct: {len(set(fills))}")
            await account.stop()
        await bus.stop()
        return 0 if same and len(fills) == len(set(fills)) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
