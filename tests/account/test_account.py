"""The account shell against a fake REST client and a hand-driven private stream: start-up,
de-duplicated pass-through, runs after gaps (with stream events arriving during the REST fetch),
a second drop during a run, pagination and the call budget, failures and retries, history lag
and re-checks, external orders and the order helpers, the audit timer."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from hean.account import ACCOUNT_TOPICS, Account, AccountError
from hean.core.bus import EventBus
from hean.core.clock import ManualClock
from hean.core.events import (
    ConnectionStateEvent,
    EventType,
    ExecutionEvent,
    GapEvent,
    OrderUpdateEvent,
    PositionUpdateEvent,
    WalletUpdateEvent,
)
from hean.core.lifecycle import ConnectionState
from hean.exchange.bybit.state.private import (
    Execution,
    FastExecution,
    Order,
    Position,
    Wallet,
    WalletCoin,
)

from .fakes import (
    CANCEL,
    CREATE,
    EXECUTIONS,
    HISTORY,
    POSITIONS,
    REALTIME,
    WALLET,
    FakePrivate,
    FakeRest,
)


class Recorder:
    def __init__(self, bus: EventBus) -> None:
        self.events: dict[EventType, list[Any]] = defaultdict(list)
        for kind in EventType:
            bus.subscribe(kind, self.events[kind].append, name=f"rec-{kind}")

    def items(self, kind: EventType, attr: str) -> list[Any]:
        return [x for e in self.events[kind] for x in getattr(e, attr)]

    def sync(self) -> list[tuple[bool, str]]:
        return [(e.in_sync, e.reason) for e in self.events[EventType.ACCOUNT_SYNC]]

    def runs(self) -> list[tuple[str, bool]]:
        return [(e.trigger, e.ok) for e in self.events[EventType.RECONCILED]]


@dataclass
class World:
    bus: EventBus
    rec: Recorder
    private: FakePrivate
    rest: FakeRest
    clock: ManualClock

    def account(self, **kw: Any) -> Account:
        return Account(self.bus, self.rest, self.private, clock=self.clock, **kw)  # type: ignore[arg-type]

    @property
    def t(self) -> int:
        return self.clock.wall_ms()

    def publish(self, kind: EventType, event: Any) -> None:
        self.private.bus.publish(kind, event)

    def drop_link(self) -> None:
        self.publish(
            EventType.CONNECTION_STATE,
            ConnectionStateEvent(
                "private", "ws://x", ConnectionState.LIVE, ConnectionState.BACKOFF, "x", 0, 0.0
            ),
        )

    def gap(self, down: float) -> None:
        """The GAP events of one reconnect (one per topic)."""
        since = self.clock.epoch_ms + int(down * 1000)
        for topic in ACCOUNT_TOPICS:
            self.publish(
                EventType.GAP,
                GapEvent("private", topic, down, down + 1, 1.0, "x", down, since, since + 1000),
            )


@pytest.fixture
async def world() -> AsyncIterator[World]:
    bus = EventBus()
    await bus.start()
    rec = Recorder(bus)
    private = FakePrivate()
    await private.bus.start()
    yield World(bus, rec, private, FakeRest(), ManualClock())
    await private.bus.stop()
    await bus.stop()


async def until(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.001)


def order(oid: str, status: str = "New", cum: str = "0", t: int = 0, **kw: Any) -> Order:
    fields: dict[str, Any] = {"qty": "1", "price": "100", "side": "Buy", **kw}
    return Order(
        order_id=oid,
        symbol="BTCUSDT",
        category="linear",
        order_status=status,
        cum_exec_qty=cum,
        updated_time=str(t),
        **fields,
    )


def execution(eid: str, t: int, oid: str = "o1", **kw: Any) -> Execution:
    fields: dict[str, Any] = {"exec_type": "Trade", "exec_qty": "1", "seq": 8, **kw}
    return Execution(
        exec_id=eid,
        symbol="BTCUSDT",
        order_id=oid,
        category="linear",
        exec_time=str(t),
        **fields,
    )


def position(seq: int, size: str, t: int = 0) -> Position:
    return Position(
        symbol="BTCUSDT",
        category="linear",
        position_idx=0,
        side="Buy" if size != "0" else "",
        size=size,
        seq=seq,
        updated_time=str(t),
    )


def wallet(usdt: str) -> Wallet:
    return Wallet(account_type="UNIFIED", coin=[WalletCoin(coin="USDT", wallet_balance=usdt)])


def copy(event: Any, attr: str) -> Any:
    """The same message decoded again: equal items, other objects."""
    items = [msgspec.structs.replace(x) for x in getattr(event, attr)]
    return msgspec.structs.replace(event, **{attr: items})


def order_event(*orders: Order, t: int = 0) -> OrderUpdateEvent:
    return OrderUpdateEvent("private", "order", list(orders), "m", t, 0.0, t)


def exec_event(*execs: Any, t: int = 0, fast: bool = False) -> ExecutionEvent:
    return ExecutionEvent("private", "execution", fast, list(execs), "m", t, 0.0, t)


def position_event(*positions: Position, t: int = 0) -> PositionUpdateEvent:
    return PositionUpdateEvent("private", "position", list(positions), "m", t, 0.0, t)


def wallet_event(w: Wallet, t: int) -> WalletUpdateEvent:
    return WalletUpdateEvent("private", "wallet", [w], "m", t, 0.0, t)


async def started(w: World, **kw: Any) -> Account:
    account = w.account(**kw)
    await account.start()
    return account


# -- start-up ----------------------------------------------------------------------------------


async def test_start_takes_the_snapshot_after_the_subscriptions_and_flags_external_orders(
    world: World,
) -> None:
    w = world
    w.rest.put_order(order("o1", t=w.t - 50, order_link_id="mine"))
    w.rest.put_order(order("o2", "PartiallyFilled", "0.4", t=w.t - 40, order_link_id="theirs"))
    w.rest.put_position(position(7, "0.4", t=w.t - 40))
    w.rest.wallet, w.rest.wallet_time = wallet("1000"), w.t
    account = w.account()
    account.mark_local(order_link_id="mine")
    assert not account.in_sync
    await account.start()
    assert account.in_sync and w.private.subscribed == list(ACCOUNT_TOPICS)
    assert set(account.orders) == {"o1", "o2"}
    assert not account.is_external("o1") and account.is_external("o2")
    assert account.position("linear", "BTCUSDT").seq == 7  # type: ignore[union-attr]
    assert account.balance("USDT").wallet_balance == "1000"  # type: ignore[union-attr]
    assert w.rec.sync() == [(False, "start"), (True, "reconciled")]
    [orders] = w.rec.events[EventType.ORDER_UPDATE]
    assert orders.reconciled and [o.order_id for o in orders.orders] == ["o1", "o2"]
    assert all(e.reconciled for e in w.rec.events[EventType.POSITION_UPDATE])
    assert all(e.reconciled for e in w.rec.events[EventType.WALLET_UPDATE])
    [summary] = w.rec.events[EventType.RECONCILED]
    assert summary.trigger == "start" and summary.ok and summary.error is None
    assert summary.orders_changed == 2 and summary.external_orders == 1
    assert summary.positions_changed == 1 and summary.wallet_changed
    # every query with items ends with the empty page after Bybit's trailing cursor
    assert summary.rest_calls == 6 == w.rest.calls
    assert dict(w.rest.calls_by_path) == {EXECUTIONS: 1, REALTIME: 2, POSITIONS: 2, WALLET: 1}
    # executions window: from the start minus the margin
    [(_, params)] = [r for r in w.rest.requests if r[0] == EXECUTIONS]
    assert params["startTime"] == w.t - 10_000 and params["endTime"] == w.t
    assert account.stats.rest_calls == 6 and account.stats.state.runs_ok == 1
    await account.stop()
    assert w.rec.sync()[-1] == (False, "stopped") and not w.private.disconnected


async def test_stream_events_pass_through_once(world: World) -> None:
    w = world
    account = await started(w)
    first = order_event(order("o1", t=w.t))
    w.publish(EventType.ORDER_UPDATE, first)
    w.publish(EventType.ORDER_UPDATE, copy(first, "orders"))
    assert w.rec.events[EventType.ORDER_UPDATE] == [first]  # the very object, once
    assert not first.reconciled
    fast = FastExecution(exec_id="x1", symbol="BTCUSDT", order_id="o1", category="linear")
    w.publish(EventType.EXECUTION, exec_event(fast, fast=True))
    w.publish(EventType.EXECUTION, exec_event(execution("x1", w.t)))
    assert [x.exec_id for x in w.rec.items(EventType.EXECUTION, "executions")] == ["x1"]
    assert account.stats.state.enriched_executions == 1
    await account.stop()
    w.publish(EventType.ORDER_UPDATE, order_event(order("o9", t=w.t)))  # unsubscribed
    assert len(w.rec.events[EventType.ORDER_UPDATE]) == 1


async def test_a_gap_runs_once_and_fills_seen_during_the_fetch_reach_subscribers_once(
    world: World,
) -> None:
    w = world
    w.rest.put_order(order("o1", t=w.t - 10, order_link_id="mine"))
    w.rest.put_position(position(7, "1", t=w.t - 10))
    w.rest.wallet, w.rest.wallet_time = wallet("1000"), w.t
    account = await started(w)
    base_events = len(w.rec.events[EventType.ORDER_UPDATE])
    w.drop_link()
    assert not account.in_sync and w.rec.sync()[-1] == (False, "disconnected")
    w.clock.advance(2.0)
    # while the link is down: o1 fills
    t = w.t
    w.rest.put_order(order("o1", "Filled", "1", t=t, order_link_id="mine"))
    w.rest.put_execution(execution("x1", t))
    w.rest.put_position(position(8, "2", t=t))
    w.rest.wallet, w.rest.wallet_time = wallet("999"), t + 5
    entered, release = w.rest.pause(EXECUTIONS)
    w.clock.advance(1.0)
    w.gap(down=1.5)  # four GAP events, one reconnect
    await entered.wait()
    # the stream delivers the same fill while REST is being read
    w.publish(EventType.EXECUTION, exec_event(execution("x1", t), t=t + 1))
    w.publish(EventType.ORDER_UPDATE, order_event(order("o1", "Filled", "1", t=t), t=t + 1))
    w.publish(EventType.POSITION_UPDATE, position_event(position(8, "2", t=t), t=t + 1))
    w.publish(EventType.WALLET_UPDATE, wallet_event(wallet("999"), t + 2))  # before REST's time
    assert account.stats.state.buffered == 4
    release.set()
    await until(lambda: account.in_sync)
    [x1] = w.rec.items(EventType.EXECUTION, "executions")
    [exec_event_] = w.rec.events[EventType.EXECUTION]
    assert x1.exec_id == "x1" and exec_event_.reconciled  # learned from REST first
    new_orders = w.rec.events[EventType.ORDER_UPDATE][base_events:]
    assert [(e.reconciled, [o.order_status for o in e.orders]) for e in new_orders] == [
        (True, ["Filled"])
    ]
    assert account.orders == {} and account.order("o1").order_status == "Filled"  # type: ignore[union-attr]
    summaries = w.rec.events[EventType.RECONCILED]
    assert w.rec.runs() == [("start", True), ("gap", True)]
    gap_run = summaries[-1]
    assert gap_run.buffered == 4 and gap_run.executions_new == 1
    assert gap_run.orders_closed == 1 and gap_run.orders_changed == 1
    assert gap_run.positions_changed == 1 and gap_run.wallet_changed
    assert gap_run.gap_since_wall_ms == w.clock.epoch_ms + 1500
    # executions, open orders, o1 by id on realtime, positions, wallet; the queries that
    # return items cost one more call each, the empty page after Bybit's trailing cursor
    assert gap_run.rest_calls == 7
    assert w.rec.sync()[-2:] == [(False, "disconnected"), (True, "reconciled")]
    assert account.balance("USDT").wallet_balance == "999"  # type: ignore[union-attr]
    await account.stop()


async def test_a_second_drop_during_a_run_queues_exactly_one_more(world: World) -> None:
    w = world
    account = await started(w)
    entered, release = w.rest.pause(EXECUTIONS)
    w.drop_link()
    w.gap(down=1.0)
    await entered.wait()
    w.drop_link()
    w.gap(down=2.0)  # the link dropped again while REST was read
    w.drop_link()
    w.gap(down=3.0)  # and again: folds into the queued run
    release.set()
    await until(lambda: account.in_sync)
    assert w.rec.runs() == [("start", True), ("gap", True), ("gap", True)]
    # not in sync in between: the first run ended while another was due
    assert w.rec.sync() == [
        (False, "start"),
        (True, "reconciled"),
        (False, "disconnected"),
        (True, "reconciled"),
    ]
    assert w.rec.events[EventType.RECONCILED][-1].gap_since_wall_ms == w.clock.epoch_ms + 2000
    await account.stop()


async def test_pagination_and_the_call_budget(world: World) -> None:
    w = world
    w.rest.page_size = 2
    for i in range(5):
        w.rest.put_order(order(f"o{i}", t=w.t - 100 + i))
    for i in range(7):
        w.rest.put_execution(execution(f"x{i}", w.t - 1000 + i, oid="o0"))
    for i in range(3):
        w.rest.put_position(
            Position(symbol=f"S{i}USDT", category="linear", position_idx=0, size="1", seq=i)
        )
    w.rest.wallet, w.rest.wallet_time = wallet("5"), w.t
    account = await started(w)
    summary = w.rec.events[EventType.RECONCILED][-1]
    # the budget formula with pages of 2: executions, open orders, positions, one position by
    # symbol (BTCUSDT traded, seq 8, but is not among the open positions), the wallet
    expected = (math.ceil(7 / 2) + 1) + (math.ceil(5 / 2) + 1) + (math.ceil(3 / 2) + 1) + 1 + 1
    assert summary.rest_calls == expected == 5 + 4 + 3 + 1 + 1 == w.rest.calls
    assert len(account.orders) == 5 and len(account.positions) == 3
    assert sorted(x.exec_id for x in w.rec.items(EventType.EXECUTION, "executions")) == [
        f"x{i}" for i in range(7)
    ]
    assert summary.executions_new == 7
    await account.stop()


async def test_a_failed_run_is_retried_with_backoff_then_in_sync(world: World) -> None:
    w = world
    account = await started(w, retry_first=0.5, retry_max=0.8)
    w.rest.fail(POSITIONS, RuntimeError("boom"), RuntimeError("boom again"), RuntimeError("3"))
    w.drop_link()
    before = w.clock.monotonic()
    w.gap(down=1.0)
    await until(lambda: account.in_sync)
    assert w.rec.runs() == [
        ("start", True),
        ("gap", False),
        ("retry", False),
        ("retry", False),
        ("retry", True),
    ]
    failed = w.rec.events[EventType.RECONCILED][1]
    assert failed.error == "RuntimeError: boom" and failed.rest_calls == 3
    assert w.clock.monotonic() - before == pytest.approx(0.5 + 0.8 + 0.8)  # capped backoff
    assert w.rec.sync()[-2:] == [(False, "disconnected"), (True, "reconciled")]
    assert account.stats.consecutive_failures == 0 and account.stats.state.runs_failed == 3
    await account.stop()


async def test_start_fails_cleanly_when_the_snapshot_fails(world: World) -> None:
    w = world
    w.rest.fail(WALLET, RuntimeError("down"))
    account = w.account()
    with pytest.raises(AccountError, match=r"account snapshot failed: RuntimeError: down"):
        await account.start()
    assert not account.in_sync
    [summary] = w.rec.events[EventType.RECONCILED]
    assert not summary.ok and summary.trigger == "start"
    w.publish(EventType.ORDER_UPDATE, order_event(order("o1", t=w.t)))  # no longer listening
    assert not w.rec.events[EventType.ORDER_UPDATE]
    await asyncio.sleep(0.01)
    assert w.rest.calls == 4  # and no retry after the failure


async def test_a_rejected_topic_fails_the_start(world: World) -> None:
    w = world
    w.private.reject = {"wallet"}
    with pytest.raises(AccountError, match="private topics rejected: wallet"):
        await w.account().start()
    assert w.rest.calls == 0


async def test_history_lag_keeps_the_order_unconfirmed_and_rechecks(world: World) -> None:
    w = world
    w.rest.put_order(order("o1", t=w.t - 10))
    account = await started(w, recheck_delay=0.25, max_rechecks=2)
    w.rest.put_order(order("o1", "Cancelled", t=w.t))
    w.rest.lagging.add("o1")
    w.drop_link()
    w.gap(down=1.0)
    await until(lambda: len(w.rec.events[EventType.RECONCILED]) == 4)
    await asyncio.sleep(0.01)
    assert w.rec.runs() == [("start", True), ("gap", True), ("recheck", True), ("recheck", True)]
    assert account.in_sync and "o1" in account.orders  # kept open: no invented status
    assert account.state.unconfirmed == {"o1"}
    assert w.rest.calls_by_path[HISTORY] == 3  # realtime, then history, each run
    # history caught up
    w.rest.lagging.clear()
    summary = await account.reconcile()
    assert summary.trigger == "manual" and summary.orders_closed == 1
    assert account.orders == {} and not account.state.unconfirmed
    cancelled = [
        (e.reconciled, o.order_status)
        for e in w.rec.events[EventType.ORDER_UPDATE]
        for o in e.orders
        if o.order_status == "Cancelled"
    ]
    assert cancelled == [(True, "Cancelled")]
    await account.stop()


async def test_order_helpers_mark_orders_local(world: World) -> None:
    w = world
    account = await started(w)
    response = await account.create_order(
        category="linear", symbol="BTCUSDT", side="Buy", order_type="Limit", qty="1", price="1"
    )
    [sent] = w.rest.created
    link = sent["order_link_id"]
    assert link.startswith("hean-") and w.rest.calls_by_path[CREATE] == 1
    order_id = response.result["orderId"]
    assert not account.is_external(order_id)
    # the stream's copy of an order placed with a link id we know, before the ack arrived
    w.publish(EventType.ORDER_UPDATE, order_event(order("early", t=w.t, order_link_id=link)))
    assert not account.is_external("early")
    w.publish(EventType.ORDER_UPDATE, order_event(order("web", t=w.t, order_link_id="web-1")))
    assert account.is_external("web")
    response = await account.cancel_order(category="linear", symbol="BTCUSDT", order_id=order_id)
    assert response.result == {"orderId": order_id} and w.rest.calls_by_path[CANCEL] == 1
    await account.stop()


async def test_manual_reconcile_and_the_audit_timer(world: World) -> None:
    w = world
    account = await started(w)
    summary = await account.reconcile()
    assert summary.trigger == "manual" and summary.ok and account.in_sync
    await account.stop()
    # a real clock for the timer (the manual one would run it back to back)
    timed = Account(w.bus, w.rest, w.private, audit_interval=0.02)  # type: ignore[arg-type]
    await timed.start()
    await until(lambda: [t for t, _ in w.rec.runs()].count("timer") >= 2)
    await timed.stop()
    runs = len(w.rec.runs())
    await asyncio.sleep(0.06)
    assert len(w.rec.runs()) == runs  # stopped: no more runs


async def test_constructor_checks(world: World) -> None:
    w = world
    with pytest.raises(ValueError, match="its own bus"):
        Account(w.private.bus, w.rest, w.private)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_key/api_secret"):
        Account(w.bus, w.rest)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="categories"):
        w.account(categories=("futures",))
    with pytest.raises(ValueError, match="audit_interval"):
        w.account(audit_interval=0)


async def test_categories_and_settle_coins_are_each_queried(world: World) -> None:
    w = world
    account = await started(
        w, categories=("linear", "spot", "inverse"), settle_coins=("USDT", "USDC")
    )
    realtime = [p for path, p in w.rest.requests if path == REALTIME]
    assert [(p["category"], p["settleCoin"]) for p in realtime] == [
        ("linear", "USDT"),
        ("linear", "USDC"),
        ("spot", None),
        ("inverse", None),
    ]
    positions = [
        (p["category"], p["settleCoin"]) for path, p in w.rest.requests if path == POSITIONS
    ]
    assert positions == [("linear", "USDT"), ("linear", "USDC"), ("inverse", None)]
    assert w.rest.calls_by_path[EXECUTIONS] == 3
    assert w.rec.events[EventType.RECONCILED][-1].rest_calls == 3 + 4 + 3 + 1
    await account.stop()


async def test_stop_during_a_run_ends_it_and_wakes_waiters(world: World) -> None:
    w = world
    account = await started(w)
    entered, _release = w.rest.pause(EXECUTIONS)
    waiter = asyncio.create_task(account.reconcile())
    await entered.wait()
    w.publish(EventType.ORDER_UPDATE, order_event(order("o1", t=w.t)))  # held
    await account.stop()
    summary = await asyncio.wait_for(waiter, 1.0)
    assert summary.trigger == "manual" and not summary.ok and summary.error == "stopped"
    assert summary.buffered == 1 and "o1" in account.orders  # released, not lost
    assert not account.state.in_run and not account.in_sync
    assert w.rec.sync()[-1] == (False, "stopped")
