"""Test doubles for the account shell: a REST client with the contract's account methods over an
in-memory venue (paged, counted, with failure and pause switches and order-history lag), and a
private WebSocket whose events the test publishes by hand."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from hean.core.bus import EventBus
from hean.core.lifecycle import ConnectionState
from hean.exchange.bybit.state.private import Execution, Order, Position, Wallet

OPEN = {"New", "PartiallyFilled", "Untriggered"}

EXECUTIONS = "/v5/execution/list"
REALTIME = "/v5/order/realtime"
HISTORY = "/v5/order/history"
POSITIONS = "/v5/position/list"
WALLET = "/v5/account/wallet-balance"
CREATE = "/v5/order/create"
CANCEL = "/v5/order/cancel"


@dataclass
class Snapshot:
    wallets: list[Wallet]
    time: int


@dataclass
class FakeRest:
    """The venue's account as REST shows it. ``calls`` counts every page."""

    page_size: int = 50
    orders: dict[str, Order] = field(default_factory=dict)
    lagging: set[str] = field(default_factory=set)
    """Order ids found neither by id on realtime nor in history (history lag)."""
    executions_: list[Execution] = field(default_factory=list)
    positions_: dict[tuple[str, int], Position] = field(default_factory=dict)
    wallet: Wallet | None = None
    wallet_time: int = 0
    calls: int = 0
    calls_by_path: Counter[str] = field(default_factory=Counter)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    pauses: dict[str, asyncio.Event] = field(default_factory=dict)
    entered: dict[str, asyncio.Event] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))

    # -- switches ----------------------------------------------------------------------------

    def fail(self, path: str, *errors: Exception) -> None:
        self.failures.setdefault(path, []).extend(errors)

    def pause(self, path: str) -> tuple[asyncio.Event, asyncio.Event]:
        """Calls to ``path`` wait until the returned ``release`` is set; ``entered`` is set
        when one is waiting."""
        self.pauses[path] = release = asyncio.Event()
        self.entered[path] = entered = asyncio.Event()
        return entered, release

    # -- venue state -------------------------------------------------------------------------

    def put_order(self, order: Order) -> None:
        self.orders[order.order_id] = order

    def put_position(self, position: Position) -> None:
        self.positions_[(position.symbol, position.position_idx or 0)] = position

    def put_execution(self, execution: Execution) -> None:
        self.executions_.append(execution)

    # -- the contract ------------------------------------------------------------------------

    async def _call(self, path: str, params: dict[str, Any]) -> None:
        self.calls += 1
        self.calls_by_path[path] += 1
        self.requests.append((path, params))
        entered = self.entered.get(path)
        if entered is not None:
            entered.set()
        pause = self.pauses.get(path)
        if pause is not None:
            await pause.wait()
        pending = self.failures.get(path)
        if pending:
            raise pending.pop(0)

    async def _pages(
        self, path: str, params: dict[str, Any], items: list[Any], limit: int
    ) -> AsyncIterator[Any]:
        """Pages as Bybit serves them: every page with items carries a cursor, so the last
        call of a query is the empty page after it (rest.md §4)."""
        size = min(limit, self.page_size)
        start = 0
        while True:
            await self._call(path, {**params, "page": start // size})
            page = items[start : start + size]
            if not page:
                return
            for item in page:
                yield item
            start += size

    def executions(
        self,
        category: str,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 100,
    ) -> AsyncIterator[Execution]:
        assert start_time is not None and end_time is not None
        assert end_time - start_time <= 7 * 86_400_000
        items = [e for e in self.executions_ if start_time <= int(e.exec_time or 0) <= end_time]
        items.sort(key=lambda e: int(e.exec_time or 0), reverse=True)  # newest first
        params = {"category": category, "startTime": start_time, "endTime": end_time}
        return self._pages(EXECUTIONS, params, items, limit)

    def open_orders(
        self,
        category: str,
        *,
        settle_coin: str | None = None,
        order_id: str | None = None,
        open_only: int | None = None,
        limit: int = 50,
    ) -> AsyncIterator[Order]:
        if open_only == 1 and order_id is None:  # recently closed, newest first
            closed = [
                o
                for o in self.orders.values()
                if o.order_status not in OPEN and o.order_id not in self.lagging
            ][::-1]
            return self._pages(
                REALTIME, {"category": category, "settleCoin": settle_coin, "openOnly": 1},
                closed, limit,
            )  # fmt: skip
        if order_id is not None:
            found = self.orders.get(order_id)
            items = [] if found is None or order_id in self.lagging else [found]
            return self._pages(REALTIME, {"orderId": order_id}, items, limit)
        assert category != "linear" or settle_coin is not None
        items = [o for o in self.orders.values() if o.order_status in OPEN]
        return self._pages(
            REALTIME, {"category": category, "settleCoin": settle_coin}, items, limit
        )

    def order_history(
        self, category: str, *, order_id: str | None = None, limit: int = 50
    ) -> AsyncIterator[Order]:
        found = self.orders.get(order_id or "")
        items = [] if found is None or order_id in self.lagging else [found]
        return self._pages(HISTORY, {"orderId": order_id}, items, limit)

    def positions(
        self,
        category: str,
        *,
        symbol: str | None = None,
        settle_coin: str | None = None,
        limit: int = 200,
    ) -> AsyncIterator[Position]:
        if symbol is not None:
            items = [p for p in self.positions_.values() if p.symbol == symbol]
        else:
            items = [p for p in self.positions_.values() if (p.size or "0") not in ("0", "")]
        params = {"category": category, "symbol": symbol, "settleCoin": settle_coin}
        return self._pages(POSITIONS, params, items, limit)

    async def wallet_balance(self, account_type: str = "UNIFIED") -> Snapshot:
        await self._call(WALLET, {"accountType": account_type})
        return Snapshot([] if self.wallet is None else [self.wallet], self.wallet_time)

    async def create_order(self, **kw: Any) -> Any:
        await self._call(CREATE, kw)
        order_id = f"rest-{next(self._ids)}"
        self.created.append(kw)
        return SimpleNamespace(result={"orderId": order_id, "orderLinkId": kw["order_link_id"]})

    async def cancel_order(self, **kw: Any) -> Any:
        await self._call(CANCEL, kw)
        return SimpleNamespace(result={"orderId": kw.get("order_id")})


class FakePrivate:
    """A private WebSocket stand-in: the test publishes its events on ``bus``."""

    def __init__(self, reject: set[str] | None = None) -> None:
        self.bus = EventBus()
        self.state = ConnectionState.IDLE
        self.subscribed: list[str] = []
        self.reject = reject or set()
        self.disconnected = False

    async def connect(self, timeout: float | None = None) -> None:
        self.state = ConnectionState.LIVE

    async def subscribe(self, topics: list[str]) -> None:
        self.subscribed.extend(topics)

    async def wait_subscribed(self, topics: list[str], timeout: float = 10.0) -> dict[str, str]:
        return {t: "rejected" if t in self.reject else "confirmed" for t in topics}

    async def disconnect(self) -> None:
        self.disconnected = True
        self.state = ConnectionState.CLOSED
