"""The account against the emulator (real sockets on 127.0.0.1, scaled-down time): start-up with
existing orders and positions, external orders, and the private-outage scenario under several
seeds: after the reconnect the account equals the venue's truth within a bounded time, every
execId reached subscribers exactly once, every change learned from REST carries
``reconciled=True``, and the REST calls stay inside the documented budget. Also: the stream
delivering the same fills while REST is being read, a second drop during a run, several pages,
order history lagging, a funding execution."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from hean.account import Account, is_fill
from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.protocol.trade import TradeResponse
from hean.exchange.bybit.rest import BybitRestClient
from hean.exchange.bybit.ws_trade import BybitTradeWebSocket
from tests.conftest import ms
from tests.e2e.conftest import Recorder as EventRecorder

KEY = DEFAULT_API_KEY
SECRET = DEFAULT_API_SECRET
SYMBOL = "BTCUSDT"

FAST_BACKOFF = BackoffPolicy(
    first=ms(20),
    cap=ms(100),
    slow_floor=ms(200),
    try_again_floor=ms(100),
    failure_threshold=50,
    cooldown=ms(500),
    max_cooldown=ms(1000),
    stable_after=ms(100),
)


class Recorder(EventRecorder):
    def executions(self) -> list[tuple[Any, bool]]:
        return [(x, e.reconciled) for e in self.events[EventType.EXECUTION] for x in e.executions]

    def orders(self) -> list[tuple[Any, bool]]:
        return [(o, e.reconciled) for e in self.events[EventType.ORDER_UPDATE] for o in e.orders]

    def runs(self) -> list[Any]:
        return list(self.events[EventType.RECONCILED])


class GatedRest:
    """The REST client, with a gate in front of ``/v5/execution/list``: while it is closed, a
    run waits there (so the test can make things happen on the stream meanwhile)."""

    def __init__(self, rest: BybitRestClient) -> None:
        self.rest = rest
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rest, name)

    def executions(self, category: str, **kw: Any) -> AsyncIterator[Any]:
        async def gen() -> AsyncIterator[Any]:
            if not self.gate.is_set():
                self.waiting.set()
                await self.gate.wait()
            async for item in self.rest.executions(category, **kw):
                yield item

        return gen()


@pytest.fixture
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    marker = request.node.get_closest_marker("emulator")
    kwargs: dict[str, Any] = {
        "ticker_interval": ms(10),
        "auto_tick": False,
        "trade_rate_limit": 1000,
        "rest_rate_scale": 100.0,
    }
    if marker is not None:
        kwargs.update(marker.kwargs)
    async with Emulator(EmulatorConfig(**kwargs)) as e:
        yield e


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    b = EventBus()
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
async def rest(emu: Emulator) -> AsyncIterator[BybitRestClient]:
    async with BybitRestClient(
        api_key=KEY, api_secret=SECRET, url=emu.rest_url(), timeout=5.0
    ) as client:
        yield client


def make_account(bus: EventBus, rest: Any, emu: Emulator, **kw: Any) -> Account:
    params: dict[str, Any] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "private_url": emu.url("private"),
        "private_options": {
            "ping_interval": ms(100),
            "pong_timeout": ms(150),
            "connect_timeout": ms(1000),
            "ack_timeout": ms(1000),
            "auth_timeout": ms(1000),
            "backoff": FAST_BACKOFF,
            "rng": random.Random(7),
        },
        "subscribe_timeout": ms(3000),
        "retry_first": ms(50),
        "retry_max": ms(200),
        "recheck_delay": ms(100),
    }
    params.update(kw)
    return Account(bus, rest, **params)


async def until(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout * max(1.0, ms(1000))
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)


def differences(account: Account, emu: Emulator) -> list[str]:
    """How the account differs from the venue's truth (empty: equal)."""
    truth = emu.account(KEY)
    out = []
    open_truth = {str(o["orderId"]): o for o in truth.open_orders}
    if set(account.orders) != set(open_truth):
        out.append(f"open orders {sorted(account.orders)} != {sorted(open_truth)}")
    for oid, item in open_truth.items():
        held = account.orders.get(oid)
        if held is None:
            continue
        if held.order_status != item["orderStatus"] or Decimal(held.cum_exec_qty or "0") != Decimal(
            str(item["cumExecQty"])
        ):
            out.append(f"order {oid}: {held.order_status}/{held.cum_exec_qty} != {item}")
    for item in truth.positions:
        held = account.position(str(item["category"]), str(item["symbol"]), 0)
        size = Decimal(str(item["size"]))
        if held is None:
            if size != 0:
                out.append(f"position {item['symbol']} missing")
            continue
        if Decimal(held.size or "0") != size or held.seq != item["seq"]:
            out.append(f"position {item['symbol']}: {held.size}/{held.seq} != {size}/{item['seq']}")
    for coin, balance in truth.balances.items():
        mine = account.balance(coin)
        if mine is None or Decimal(mine.wallet_balance or "0") != Decimal(balance):
            out.append(f"{coin}: {None if mine is None else mine.wallet_balance} != {balance}")
    return out


async def in_sync_and_equal(account: Account, emu: Emulator, timeout: float = 3.0) -> None:
    try:
        await until(lambda: account.in_sync and not differences(account, emu), timeout)
    except TimeoutError:
        raise AssertionError(f"in_sync={account.in_sync}: {differences(account, emu)}") from None


def touch(emu: Emulator) -> tuple[Decimal, Decimal]:
    bids, asks = emu.book_truth("linear", SYMBOL, 1)
    return Decimal(bids[0][0]), Decimal(asks[0][0])


async def place_resting(account: Account, emu: Emulator, n: int, qty: str = "0.01") -> list[str]:
    """``n`` resting orders near the touch (buys below the bid, sells above the ask)."""
    bid, ask = touch(emu)
    ids = []
    for i in range(n):
        buy = i % 2 == 0
        price = bid - 10 * (1 + i) if buy else ask + 10 * (1 + i)
        ack = await account.create_order(
            category="linear",
            symbol=SYMBOL,
            side="Buy" if buy else "Sell",
            order_type="Limit",
            qty=qty,
            price=str(price),
        )
        ids.append(ack.order_id)
    return ids


async def open_position(account: Account, qty: str = "0.02") -> str:
    ack = await account.create_order(
        category="linear", symbol=SYMBOL, side="Buy", order_type="Market", qty=qty
    )
    return str(ack.order_id)


def assert_exactly_once(rec: Recorder, emu: Emulator, since: int = 0) -> Counter[str]:
    delivered = Counter(x.exec_id for x, _ in rec.executions())
    assert all(n == 1 for n in delivered.values()), delivered.most_common(3)
    truth = {str(x["execId"]) for x in emu.account(KEY).executions[since:]}
    assert truth <= set(delivered), truth - set(delivered)
    return delivered


def budget(
    *,
    executions: int,
    open_orders: int,
    missing: int,
    by_symbol: int,
    page: int = 100,
    order_page: int = 50,
    positions: int = 1,
) -> int:
    """The REST-call budget of one run (docs of hean.account.account), linear + USDT, one
    7-day window: per paginated query ``ceil(n / page) + 1``."""
    return (
        math.ceil(executions / min(page, 100))
        + 1
        + math.ceil(open_orders / min(order_page, 50))
        + 1
        + 2 * missing
        + math.ceil(positions / min(order_page, 200))
        + 1
        + 2 * by_symbol
        + 1
    )


# -- start-up --------------------------------------------------------------------------------


async def test_start_up_with_existing_orders_and_positions_flags_external_ones(
    bus: EventBus, rest: BybitRestClient, emu: Emulator
) -> None:
    # someone (another program) left orders and a position on the account
    bid, _ = touch(emu)
    theirs = []
    for i in range(3):
        ack = await rest.create_order(
            category="linear",
            symbol=SYMBOL,
            side="Buy",
            order_type="Limit",
            qty="0.01",
            price=str(bid - 20 - i),
        )
        theirs.append(ack.order_id)
    await rest.create_order(
        category="linear", symbol=SYMBOL, side="Buy", order_type="Market", qty="0.03"
    )
    rec = Recorder(bus)
    account = make_account(bus, rest, emu)
    await account.start()
    assert account.in_sync and not differences(account, emu)
    assert set(account.orders) == set(theirs)
    assert all(account.is_external(oid) for oid in theirs)
    pos = account.position("linear", SYMBOL)
    assert pos is not None and Decimal(pos.size or "0") == Decimal("0.03")
    [run] = rec.runs()
    assert run.trigger == "start" and run.ok and run.external_orders == 3
    assert run.rest_calls <= budget(executions=2, open_orders=3, missing=0, by_symbol=1)
    assert all(reconciled for _, reconciled in rec.orders())
    assert [(e.in_sync, e.reason) for e in rec.events[EventType.ACCOUNT_SYNC]] == [
        (False, "start"),
        (True, "reconciled"),
    ]
    # our own order: local, arrives on the stream (not reconciled)
    [mine] = await place_resting(account, emu, 1)
    await until(lambda: mine in account.orders)
    assert not account.is_external(mine)
    assert [r for o, r in rec.orders() if o.order_id == mine] == [False]
    await account.stop()
    assert not account.in_sync


# -- the outage scenario ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_outage_heals_exactly_once_flagged_within_budget(
    bus: EventBus, rest: BybitRestClient, emu: Emulator, seed: int
) -> None:
    rec = Recorder(bus)
    account = make_account(bus, rest, emu)
    await account.start()
    await open_position(account)
    mine = await place_resting(account, emu, 6)
    await until(lambda: set(mine) <= set(account.orders) and account.position("linear", SYMBOL))
    await in_sync_and_equal(account, emu)
    calls_before = emu.rest_calls(api_key=KEY)
    summary = await emu.private_outage(
        KEY,
        fills=2,
        partial_fills=1,
        cancels=1,
        new_orders=1,
        funding_rate="0.0001",
        funding_symbol=SYMBOL,
        seed=seed,
        hold=ms(30),
    )
    assert summary.funding_exec_ids and summary.placed and summary.filled
    await in_sync_and_equal(account, emu)
    runs = [r for r in rec.runs() if r.trigger != "start"]
    assert [(r.trigger, r.ok) for r in runs] == [("gap", True)]
    [run] = runs
    # every execution once; those booked during the outage learned from REST
    delivered = assert_exactly_once(rec, emu)
    assert set(summary.exec_ids) <= set(delivered)
    by_id = {x.exec_id: (x, r) for x, r in rec.executions()}
    assert all(by_id[e][1] for e in summary.exec_ids)
    [(funding, _)] = [by_id[e] for e in summary.funding_exec_ids]
    assert funding.exec_type == "Funding" and not is_fill(funding)
    assert run.executions_new == len(summary.exec_ids)
    # the orders that changed meanwhile: their new state came from REST, flagged
    changed = set(summary.filled) | set(summary.partially_filled) | set(summary.cancelled)
    for oid in changed | set(summary.placed):
        final = [(o, r) for o, r in rec.orders() if o.order_id == oid][-1]
        assert final[1] is True and final[0].order_status == summary.statuses[oid], oid
    assert [account.is_external(oid) for oid in summary.placed] == [True] * len(summary.placed)
    assert not any(account.is_external(oid) for oid in mine)
    assert run.orders_closed == len(summary.filled) + len(summary.cancelled)
    assert run.external_orders == len(summary.placed)
    # nothing published twice
    versions = [
        (o.order_id, o.order_status, o.cum_exec_qty, o.updated_time) for o, _ in rec.orders()
    ]
    assert len(versions) == len(set(versions))
    # the budget: closed orders looked up by id (found in realtime's closed cache: 1 call each)
    assert run.rest_calls == emu.rest_calls(api_key=KEY) - calls_before
    assert run.rest_calls <= budget(
        executions=len(emu.account(KEY).executions),
        open_orders=len(emu.account(KEY).open_orders),
        missing=len(summary.filled) + len(summary.cancelled),
        by_symbol=1,
    )
    await account.stop()


async def test_fills_seen_on_the_stream_during_the_fetch_and_a_second_drop(
    bus: EventBus, rest: BybitRestClient, emu: Emulator
) -> None:
    gated = GatedRest(rest)
    rec = Recorder(bus)
    account = make_account(bus, gated, emu)
    await account.start()
    mine = await place_resting(account, emu, 5)
    await until(lambda: set(mine) <= set(account.orders))
    gated.gate.clear()  # the next run waits in front of /v5/execution/list
    first = await emu.private_outage(KEY, fills=1, partial_fills=1, cancels=0, new_orders=0, seed=5)
    await gated.waiting.wait()
    assert not account.in_sync
    # while REST is being read: fills happen live (the stream is back) ...
    await open_position(account, "0.01")
    await until(lambda: account.stats.state.buffered >= 3)
    # ... and the link drops again, with more happening
    second = await emu.private_outage(
        KEY, fills=1, partial_fills=0, cancels=1, new_orders=1, seed=6, hold=ms(20)
    )
    await until(lambda: account.state.queued)  # its GAP arrived while the first run waits
    assert account.state.in_run and not account.in_sync
    gated.gate.set()
    await in_sync_and_equal(account, emu)
    runs = [(r.trigger, r.ok) for r in rec.runs()]
    assert runs == [("start", True), ("gap", True), ("gap", True)]  # exactly one more
    assert rec.runs()[1].buffered >= 3
    delivered = assert_exactly_once(rec, emu)
    assert set(first.exec_ids) | set(second.exec_ids) <= set(delivered)
    # the live fills came from REST first (the run read them), their stream copies were dropped
    by_id = {x.exec_id: r for x, r in rec.executions()}
    assert all(by_id[e] for e in first.exec_ids + second.exec_ids)
    # in sync only once both runs are done
    sync = [(e.in_sync, e.reason) for e in rec.events[EventType.ACCOUNT_SYNC]]
    assert sync[-1] == (True, "reconciled") and sync.count((True, "reconciled")) == 2
    await account.stop()


@pytest.mark.emulator(rest_page_size=2, rest_history_lag=5.0)
async def test_several_pages_and_a_lagging_history(
    bus: EventBus, rest: BybitRestClient, emu: Emulator
) -> None:
    rec = Recorder(bus)
    account = make_account(bus, rest, emu)
    await account.start()
    await open_position(account, "0.01")
    await open_position(account, "0.01")
    mine = await place_resting(account, emu, 7)
    await until(lambda: set(mine) <= set(account.orders))
    calls_before = emu.rest_calls(api_key=KEY)
    summary = await emu.private_outage(
        KEY, fills=3, partial_fills=1, cancels=1, new_orders=2, seed=9, hold=ms(20)
    )
    await in_sync_and_equal(account, emu)
    [run] = [r for r in rec.runs() if r.trigger == "gap"]
    assert_exactly_once(rec, emu)
    assert run.executions_new == len(summary.exec_ids)
    truth = emu.account(KEY)
    pages = budget(
        executions=len(truth.executions),
        open_orders=len(truth.open_orders),
        missing=len(summary.filled) + len(summary.cancelled),
        by_symbol=1,
        page=2,
        order_page=2,
    )
    assert run.rest_calls == emu.rest_calls(api_key=KEY) - calls_before <= pages
    assert emu.rest_calls("/v5/order/realtime", KEY) > 3  # paged
    # history lags by 5 s: the closed orders were found in realtime's closed-order cache
    assert not account.state.unconfirmed
    await account.stop()


async def test_a_position_closed_during_the_outage_is_fetched_by_symbol(
    bus: EventBus, rest: BybitRestClient, emu: Emulator
) -> None:
    rec = Recorder(bus)
    account = make_account(bus, rest, emu)
    await account.start()
    await open_position(account, "0.02")
    _, ask = touch(emu)
    close = await account.create_order(
        category="linear",
        symbol=SYMBOL,
        side="Sell",
        order_type="Limit",
        qty="0.02",
        price=str(ask + 10),
        reduce_only=True,
    )
    await until(lambda: close.order_id in account.orders)
    summary = await emu.private_outage(
        KEY, fills=1, partial_fills=0, cancels=0, new_orders=0, seed=1, hold=ms(20)
    )
    assert summary.filled == (close.order_id,)
    await in_sync_and_equal(account, emu)
    held = account.position("linear", SYMBOL)
    assert held is not None and Decimal(held.size or "0") == 0 and held.side == ""
    [run] = [r for r in rec.runs() if r.trigger == "gap"]
    assert run.positions_changed == 1
    assert emu.account(KEY).position("linear", SYMBOL)["seq"] == held.seq  # type: ignore[index]
    await account.stop()


async def test_a_failing_run_is_retried_with_backoff_until_in_sync(
    bus: EventBus, rest: BybitRestClient, emu: Emulator
) -> None:
    rec = Recorder(bus)
    account = make_account(bus, rest, emu)
    await account.start()
    mine = await place_resting(account, emu, 3)
    await until(lambda: set(mine) <= set(account.orders))
    emu.inject_rest_error(10005, count=2, path="/v5/position/list")  # not retried by the client
    summary = await emu.private_outage(
        KEY, fills=1, partial_fills=0, cancels=1, new_orders=0, seed=3, hold=ms(20)
    )
    await in_sync_and_equal(account, emu)
    assert [(r.trigger, r.ok) for r in rec.runs()] == [
        ("start", True),
        ("gap", False),
        ("retry", False),
        ("retry", True),
    ]
    failed = rec.runs()[1]
    assert failed.error is not None and "10005" in failed.error
    assert not any(e.in_sync for e in rec.events[EventType.ACCOUNT_SYNC][2:-1])
    delivered = assert_exactly_once(rec, emu)
    assert set(summary.exec_ids) <= set(delivered)
    await account.stop()


async def test_no_secret_or_signature_reaches_a_log_record(
    bus: EventBus, rest: BybitRestClient, emu: Emulator
) -> None:
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler = Capture(level=1)
    saved = {name: logging.getLogger(name).level for name in ("", "picows", "hean", "aiohttp")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("picows", "hean", "aiohttp"):
        logging.getLogger(name).setLevel(1)
    try:
        account = make_account(bus, rest, emu)
        await account.start()
        await place_resting(account, emu, 2)
        await emu.private_outage(KEY, fills=1, partial_fills=0, cancels=1, new_orders=0, seed=2)
        await in_sync_and_equal(account, emu)
        await account.stop()
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name or None).setLevel(level)
    assert any(r.name.startswith("hean.account") for r in records)
    for record in records:
        text = record.getMessage() + (record.exc_text or "") + (record.stack_info or "")
        assert SECRET not in text, record
    assert SECRET not in repr(account) and SECRET not in repr(account.stats)


async def test_credentials_come_from_the_rest_client(
    emu: Emulator, bus: EventBus, rest: BybitRestClient
) -> None:
    assert rest.api_secret is not None and SECRET not in repr(rest.api_secret)
    account = make_account(bus, rest, emu, api_key=None, api_secret=None)
    await account.start()
    try:
        assert account.in_sync and account.private.state.value == "live"
        assert SECRET not in repr(account) and SECRET not in repr(account.private)
    finally:
        await account.stop()


@pytest.mark.emulator(clock_skew_ms=20_000)
async def test_clock_measured_over_rest_before_the_first_auth(
    emu: Emulator, bus: EventBus, rest: BybitRestClient
) -> None:
    """The venue's clock runs 20 s ahead: the account measures it over REST first, so the
    private stream's first auth is accepted (no rejected attempt, no retry wait)."""
    account = make_account(bus, rest, emu, api_key=None, api_secret=None)
    await account.start()
    try:
        assert account.in_sync
        assert emu.auth_attempts(KEY) == 1
        estimate = rest.clock_offset.estimate_ms
        assert estimate is not None and abs(estimate - 20_000) < 1_000
        assert account.private.clock_offset is rest.clock_offset
    finally:
        await account.stop()


async def test_many_orders_closed_in_a_gap_are_found_in_the_closed_list(
    bus: EventBus, rest: BybitRestClient, emu: Emulator
) -> None:
    """Twelve orders closed while the link was down: one page of the recently closed list
    (``openOnly=1``) finds them all, instead of a look-up by id each (under Bybit's 50/s per
    endpoint, dozens of look-ups cost a second each)."""
    rec = Recorder(bus)
    account = make_account(bus, rest, emu)
    await account.start()
    mine = await place_resting(account, emu, 14)
    await until(lambda: set(mine) <= set(account.orders))
    realtime_before = emu.rest_calls("/v5/order/realtime", api_key=KEY)
    summary = await emu.private_outage(
        KEY, fills=6, partial_fills=0, cancels=6, new_orders=0, seed=5, hold=ms(30)
    )
    assert len(summary.filled) + len(summary.cancelled) == 12
    await in_sync_and_equal(account, emu)
    [run] = [r for r in rec.runs() if r.trigger == "gap"]
    assert run.orders_closed == 12
    realtime = emu.rest_calls("/v5/order/realtime", api_key=KEY) - realtime_before
    # the open set (a page, and the empty one after Bybit's trailing cursor), then one page of
    # the closed list: 3, where looking each order up by id would have taken 2 + 12
    assert realtime == 3
    for oid in set(summary.filled) | set(summary.cancelled):
        final = [(o, r) for o, r in rec.orders() if o.order_id == oid][-1]
        assert final[1] is True and final[0].order_status == summary.statuses[oid]
    await account.stop()


@pytest.mark.parametrize("skew", [-20_000, 20_000])
async def test_fills_in_a_gap_are_found_whatever_the_local_clock_skew(
    request: pytest.FixtureRequest, bus: EventBus, skew: int
) -> None:
    """The venue's clock is 20 s behind (or ahead of) the local one: the execution window of a
    run is placed on the venue's clock (the gap's start and the run's start are local times),
    so the fills booked during the gap are still inside it. With local times used as they
    are, a venue 20 s behind puts the window's start after the fills and they are lost."""
    config = EmulatorConfig(
        ticker_interval=ms(10),
        auto_tick=False,
        trade_rate_limit=1000,
        rest_rate_scale=100.0,
        clock_skew_ms=skew,
    )
    async with (
        Emulator(config) as emu,
        BybitRestClient(api_key=KEY, api_secret=SECRET, url=emu.rest_url(), timeout=5.0) as rest,
    ):
        rec = Recorder(bus)
        account = make_account(bus, rest, emu, api_key=None, api_secret=None)
        await account.start()
        try:
            mine = await place_resting(account, emu, 4)
            await until(lambda: set(mine) <= set(account.orders))
            summary = await emu.private_outage(
                KEY, fills=2, partial_fills=1, cancels=0, new_orders=0, seed=3, hold=ms(30)
            )
            assert summary.exec_ids
            await in_sync_and_equal(account, emu)
            delivered = assert_exactly_once(rec, emu)
            assert set(summary.exec_ids) <= set(delivered)
        finally:
            await account.stop()


async def test_order_helpers_go_over_the_trade_stream_when_one_is_given(
    bus: EventBus, rest: BybitRestClient, emu: Emulator
) -> None:
    """``trade=``: create and cancel go over the trade WebSocket (no REST order call), the
    order is marked local, and the account sees it open, then cancelled."""
    trade = BybitTradeWebSocket(
        api_key=KEY,
        api_secret=SECRET,
        url=emu.url("trade"),
        ping_interval=ms(100),
        pong_timeout=ms(150),
        connect_timeout=ms(1000),
        auth_timeout=ms(1000),
        request_timeout=ms(2000),
        backoff=FAST_BACKOFF,
        clock_offset=rest.clock_offset,
    )
    await trade.connect(timeout=ms(3000))
    account = make_account(bus, rest, emu, trade=trade)
    await account.start()
    try:
        bid, _ = touch(emu)
        ack = await account.create_order(
            category="linear",
            symbol=SYMBOL,
            side="Buy",
            order_type="Limit",
            qty="0.01",
            price=str(bid - 50),
        )
        assert isinstance(ack, TradeResponse) and ack.ok
        order_id = ack.data["orderId"]
        assert ack.data["orderLinkId"].startswith("hean-")
        assert not account.is_external(order_id)
        await until(lambda: order_id in account.orders)
        cancelled = await account.cancel_order(category="linear", symbol=SYMBOL, order_id=order_id)
        assert isinstance(cancelled, TradeResponse) and cancelled.ok
        assert cancelled.data["orderId"] == order_id
        await until(lambda: order_id not in account.orders)
        assert account.state.closed_orders[order_id].order_status == "Cancelled"
        assert emu.rest_calls("/v5/order/create", api_key=KEY) == 0
        assert emu.rest_calls("/v5/order/cancel", api_key=KEY) == 0
        await in_sync_and_equal(account, emu)
    finally:
        await account.stop()
        await trade.disconnect()
