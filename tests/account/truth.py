"""A ground-truth account history for the account tests: what the exchange did, step by step,
the stream messages each step pushes, and what REST would answer at any point of it.

Every step ``i`` happens at exchange time ``T0 + 10 * i`` ms and pushes one or more messages;
``snapshot(p)`` is the exchange's state after the messages of steps ``< p``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hean.core.events import (
    EventType,
    ExecutionEvent,
    GapEvent,
    OrderUpdateEvent,
    PositionUpdateEvent,
    WalletUpdateEvent,
)
from hean.exchange.bybit.state.private import (
    Execution,
    FastExecution,
    Order,
    Position,
    Wallet,
    WalletCoin,
)

T0 = 1_700_000_000_000
SYMBOLS = ("AAAUSDT", "BBBUSDT")
COINS = ("USDT", "USDC")
TERMINAL = {"Filled", "Cancelled"}


def step_time(i: int) -> int:
    return T0 + 10 * i


@dataclass
class Message:
    """One stream message: ``index`` is the step that pushed it (its position in the history)."""

    index: int
    event_type: EventType
    event: Any


@dataclass
class Truth:
    """The history: versions of every item with the index of the step that made them."""

    messages: list[Message] = field(default_factory=list)
    orders: dict[str, list[tuple[int, Order]]] = field(default_factory=dict)
    executions: list[tuple[int, Execution]] = field(default_factory=list)
    positions: dict[str, list[tuple[int, Position]]] = field(default_factory=dict)
    wallets: list[tuple[int, Wallet]] = field(default_factory=list)
    steps: int = 0

    # -- what REST says at position p (after the messages of steps < p) ----------------------

    @staticmethod
    def _latest(versions: list[tuple[int, Any]], p: int) -> Any:
        found = None
        for index, item in versions:
            if index < p:
                found = item
        return found

    def order_at(self, order_id: str, p: int) -> Order | None:
        return self._latest(self.orders.get(order_id, []), p)  # type: ignore[no-any-return]

    def open_orders(self, p: int) -> list[Order]:
        out = []
        for oid in self.orders:
            order = self.order_at(oid, p)
            if order is not None and order.order_status not in TERMINAL:
                out.append(order)
        return out

    def executions_between(self, start_ms: int, end_ms: int, p: int) -> list[Execution]:
        return [
            e for i, e in self.executions if i < p and start_ms <= int(e.exec_time or 0) <= end_ms
        ]

    def position_at(self, symbol: str, p: int) -> Position | None:
        return self._latest(self.positions.get(symbol, []), p)  # type: ignore[no-any-return]

    def open_positions(self, p: int) -> list[Position]:
        """Like ``settleCoin=`` queries: only positions with a size."""
        out = []
        for symbol in self.positions:
            pos = self.position_at(symbol, p)
            if pos is not None and Decimal(pos.size or "0") != 0:
                out.append(pos)
        return out

    def wallet_at(self, p: int) -> Wallet | None:
        return self._latest(self.wallets, p)  # type: ignore[no-any-return]

    def rest_time(self, p: int) -> int:
        """The envelope time of a REST answer at position p (after step p-1, before step p)."""
        return step_time(p) - 5

    def all_exec_ids(self) -> list[str]:
        return [e.exec_id for _, e in self.executions]


def _event(event_type: EventType, items: list[Any], t: int, fast: bool = False) -> Any:
    if event_type is EventType.ORDER_UPDATE:
        return OrderUpdateEvent("private", "order", items, f"m{t}", t, 0.0, t)
    if event_type is EventType.EXECUTION:
        topic = "execution.fast" if fast else "execution"
        return ExecutionEvent("private", topic, fast, items, f"m{t}", t, 0.0, t)
    if event_type is EventType.POSITION_UPDATE:
        return PositionUpdateEvent("private", "position", items, f"m{t}", t, 0.0, t)
    return WalletUpdateEvent("private", "wallet", items, f"m{t}", t, 0.0, t)


def generate(rng: random.Random, steps: int, *, initial_orders: int = 0) -> Truth:
    """A random history of ``steps`` steps (orders placed, partly and fully filled, amended,
    cancelled; funding; positions with increasing seq; wallets)."""
    truth = Truth()
    open_ids: list[str] = []
    state: dict[str, Order] = {}
    size = dict.fromkeys(SYMBOLS, Decimal(0))
    balance = {"USDT": Decimal(10_000), "USDC": Decimal(500)}
    seq = 100
    next_order = 0
    next_exec = 0

    def push(i: int, event_type: EventType, items: list[Any], fast: bool = False) -> None:
        truth.messages.append(Message(i, event_type, _event(event_type, items, step_time(i), fast)))

    def new_order_version(i: int, order: Order) -> None:
        state[order.order_id] = order
        truth.orders.setdefault(order.order_id, []).append((i, order))
        push(i, EventType.ORDER_UPDATE, [order])

    def position_version(i: int, symbol: str, changed: bool) -> None:
        held = truth.positions.get(symbol)
        if not changed and held:
            push(i, EventType.POSITION_UPDATE, [held[-1][1]])  # same seq, nothing new
            return
        qty = size[symbol]
        pos = Position(
            symbol=symbol,
            category="linear",
            side="Buy" if qty > 0 else "Sell" if qty < 0 else "",
            size=str(abs(qty)),
            position_idx=0,
            entry_price="100",
            mark_price=str(100 + rng.randint(0, 9)),
            seq=seq,
            updated_time=str(step_time(i)),
        )
        truth.positions.setdefault(symbol, []).append((i, pos))
        push(i, EventType.POSITION_UPDATE, [pos])

    def wallet_version(i: int, coin: str) -> None:
        coins = [WalletCoin(coin=c, wallet_balance=str(balance[c])) for c in COINS]
        total = str(sum(balance.values()))
        wallet = Wallet(account_type="UNIFIED", total_equity=total, coin=coins)
        truth.wallets.append((i, wallet))
        if rng.random() < 0.5:  # a message with the changed coin only
            partial = Wallet(
                account_type="UNIFIED",
                total_equity=total,
                coin=[c for c in coins if c.coin == coin],
            )
            push(i, EventType.WALLET_UPDATE, [partial])
        else:
            push(i, EventType.WALLET_UPDATE, [wallet])

    for i in range(steps):
        t = step_time(i)
        roll = rng.random()
        if (i < initial_orders or roll < 0.3 or not open_ids) and len(open_ids) < 8:
            next_order += 1
            oid = f"o{next_order}"
            order = Order(
                order_id=oid,
                symbol=rng.choice(SYMBOLS),
                category="linear",
                order_link_id=f"link-{next_order}" if rng.random() < 0.7 else "",
                side=rng.choice(("Buy", "Sell")),
                order_type="Limit",
                price=str(100 + rng.randint(-5, 5)),
                qty=str(rng.randint(2, 6)),
                order_status="New",
                cum_exec_qty="0",
                leaves_qty=None,
                created_time=str(t),
                updated_time=str(t),
            )
            new_order_version(i, order)
            open_ids.append(oid)
            position_version(i, order.symbol, changed=False)
        elif roll < 0.65:
            oid = rng.choice(open_ids)
            order = state[oid]
            cum = Decimal(order.cum_exec_qty or "0")
            left = Decimal(order.qty or "0") - cum
            fill = min(left, Decimal(rng.randint(1, 3)))
            cum += fill
            done = cum == Decimal(order.qty or "0")
            seq += 1
            next_exec += 1
            execution = Execution(
                exec_id=f"x{next_exec}",
                symbol=order.symbol,
                order_id=oid,
                category="linear",
                order_link_id=order.order_link_id,
                side=order.side,
                exec_qty=str(fill),
                exec_price=order.price,
                exec_type="Trade",
                exec_time=str(t),
                exec_fee="0.01",
                seq=seq,
            )
            truth.executions.append((i, execution))
            if rng.random() < 0.4:  # the fast copy first, then the full one
                fast = FastExecution(
                    exec_id=execution.exec_id,
                    symbol=order.symbol,
                    order_id=oid,
                    category="linear",
                    exec_qty=execution.exec_qty,
                    exec_price=execution.exec_price,
                    side=order.side,
                    exec_time=str(t),
                    seq=seq,
                )
                push(i, EventType.EXECUTION, [fast], fast=True)
            push(i, EventType.EXECUTION, [execution])
            new_order_version(
                i,
                Order(
                    **{
                        **_fields(order),
                        "order_status": "Filled" if done else "PartiallyFilled",
                        "cum_exec_qty": str(cum),
                        "updated_time": str(t),
                    }
                ),
            )
            if done:
                open_ids.remove(oid)
            size[order.symbol] += fill if order.side == "Buy" else -fill
            position_version(i, order.symbol, changed=True)
            balance["USDT"] -= Decimal("0.01")
            wallet_version(i, "USDT")
        elif roll < 0.8:
            oid = rng.choice(open_ids)
            order = state[oid]
            # a cancel may carry the same updatedTime as the version before (ms ties happen):
            # only "terminal wins" orders the two then
            when = order.updated_time if rng.random() < 0.3 else str(t)
            new_order_version(
                i,
                Order(**{**_fields(order), "order_status": "Cancelled", "updated_time": when}),
            )
            open_ids.remove(oid)
            position_version(i, order.symbol, changed=False)
        elif roll < 0.9:
            oid = rng.choice(open_ids)
            order = state[oid]
            new_order_version(
                i,
                Order(
                    **{
                        **_fields(order),
                        "price": str(Decimal(order.price or "0") + 1),
                        "updated_time": str(t),
                    }
                ),
            )
        else:
            symbol = rng.choice(SYMBOLS)
            next_exec += 1
            funding = Execution(
                exec_id=f"x{next_exec}",
                symbol=symbol,
                order_id="",
                category="linear",
                exec_type="Funding",
                exec_qty=str(abs(size[symbol])),
                exec_fee="0.5",
                exec_time=str(t),
                order_type="UNKNOWN",
            )
            truth.executions.append((i, funding))
            push(i, EventType.EXECUTION, [funding])
            coin = rng.choice(COINS)
            balance[coin] -= Decimal("0.5")
            wallet_version(i, coin)
    truth.steps = steps
    return truth


def _fields(order: Order) -> dict[str, Any]:
    return {name: getattr(order, name) for name in order.__struct_fields__}


def gap_events(down_since_ms: int, up_index: int, n: int = 4) -> list[GapEvent]:
    """The GAP events of one reconnect (one per topic, all with the same ``down_since``)."""
    topics = ("order", "execution", "position", "wallet")[:n]
    down = (down_since_ms - T0) / 1000.0
    up = (step_time(up_index) - T0) / 1000.0
    return [
        GapEvent(
            "private",
            topic,
            down,
            up,
            up - down,
            "server_close:1006",
            down,
            down_since_ms,
            step_time(up_index),
        )
        for topic in topics
    ]
