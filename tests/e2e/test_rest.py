"""HEAN's REST client against the emulator's REST API (real sockets on 127.0.0.1): market data
equal to the venue's truth, orders placed / amended / cancelled over REST that show up on the
private stream, paging with a small page size, executions / positions / wallet as the stream's
types, typed errors without retry loops, rate limits, and one clock offset shared with the
private WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.core.clock import SystemClock
from hean.core.events import EventType
from hean.emulator import Emulator, EmulatorConfig
from hean.exchange.bybit.protocol.auth import ClockOffset
from hean.exchange.bybit.rest import (
    BybitRestClient,
    RestAuthError,
    RestRateLimitError,
    RestTimestampError,
    RestUnknownOrderError,
    RetryPolicy,
)
from hean.exchange.bybit.state.private import Execution, Order, Position
from tests.conftest import ms

from .conftest import Recorder
from .test_private_ws import KEY, SECRET, live_subscribed, make_private, until


@pytest.fixture
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    marker = request.node.get_closest_marker("emulator")
    kwargs: dict[str, Any] = {"ticker_interval": ms(10), "auto_tick": False}
    if marker is not None:
        kwargs.update(marker.kwargs)
    async with Emulator(EmulatorConfig(**kwargs)) as e:
        yield e


class FastSleepClock(SystemClock):
    """The real clock, but waits are recorded and shortened (so a 2 s backoff takes 2 ms)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds / 1000.0)


def make_rest(emu: Emulator, **kw: Any) -> BybitRestClient:
    params: dict[str, Any] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "url": emu.rest_url(),
        "timeout": 5.0,
    }
    params.update(kw)
    return BybitRestClient(**params)


async def test_market_endpoints_equal_the_venue(emu: Emulator) -> None:
    emu.tick("linear", 30)
    async with BybitRestClient(url=emu.rest_url()) as rest:
        server = await rest.server_time()
        assert abs(server - emu.server_time_ms()) < 2000
        instruments = await rest.instruments_info("linear")
        assert [i["symbol"] for i in instruments] == emu.market.symbols("linear")
        [ticker] = await rest.tickers("linear", "BTCUSDT")
        truth = emu.ticker_truth("linear", "BTCUSDT")
        assert ticker["lastPrice"] == truth["lastPrice"]
        book = await rest.orderbook("linear", "BTCUSDT", limit=5)
        bids, asks = emu.book_truth("linear", "BTCUSDT", 5)
        assert [tuple(x) for x in book.bids] == bids and [tuple(x) for x in book.asks] == asks
        assert book.symbol == "BTCUSDT" and book.u is not None
        trades = await rest.recent_trades("linear", "BTCUSDT", limit=5)
        truth_trades = emu.trades_truth("linear", "BTCUSDT", 5)
        assert [t.trade_id for t in trades] == [t["i"] for t in truth_trades]  # oldest first
        klines = await rest.klines("linear", "BTCUSDT", "1", limit=5)
        assert klines and [k.start for k in klines] == sorted(k.start for k in klines)
        assert all(k.end == k.start + 60_000 - 1 for k in klines)
        assert klines[-1].confirm is False and all(k.confirm for k in klines[:-1])
    assert rest.calls == emu.rest_calls()


async def test_order_placed_amended_cancelled_over_rest_shows_on_the_private_stream(
    bus: EventBus, recorder: Recorder, emu: Emulator
) -> None:
    ws = make_private(bus, emu)
    await live_subscribed(ws, ["order"])
    bids, _ = emu.book_truth("linear", "BTCUSDT", 1)
    low = str(Decimal(bids[0][0]) - 1000)
    lower = str(Decimal(bids[0][0]) - 1100)
    async with make_rest(emu) as rest:
        ack = await rest.create_order(
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            order_type="Limit",
            qty="0.01",
            price=low,
            order_link_id="rest-e2e-1",
        )
        assert ack.order_id and ack.order_link_id == "rest-e2e-1"
        assert ack.limit is not None and ack.limit.limit is not None

        def pushed() -> list[Order]:
            return [
                o
                for e in recorder.events[EventType.ORDER_UPDATE]
                for o in e.orders
                if o.order_id == ack.order_id
            ]

        await until(lambda: pushed())
        [live] = await rest.open_orders("linear", symbol="BTCUSDT").all()
        assert type(live) is type(pushed()[0]) is Order
        assert (live.order_id, live.order_link_id, live.price, live.order_status) == (
            ack.order_id,
            "rest-e2e-1",
            pushed()[0].price,
            "New",
        )
        assert live.category == "linear"
        await rest.amend_order(
            category="linear", symbol="BTCUSDT", order_link_id="rest-e2e-1", price=lower
        )
        await until(lambda: len(pushed()) >= 2)
        await rest.cancel_order(category="linear", symbol="BTCUSDT", order_id=ack.order_id)
        await until(lambda: pushed()[-1].order_status == "Cancelled")
        assert [(Decimal(o.price or ""), o.order_status) for o in pushed()] == [
            (Decimal(low), "New"),
            (Decimal(lower), "New"),
            (Decimal(lower), "Cancelled"),
        ]
        assert await rest.open_orders("linear", symbol="BTCUSDT").all() == []
        history = await rest.order_history("linear", symbol="BTCUSDT").all()
        assert [(o.order_id, o.order_status) for o in history] == [(ack.order_id, "Cancelled")]
        with pytest.raises(RestUnknownOrderError):
            await rest.cancel_order(category="linear", symbol="BTCUSDT", order_id=ack.order_id)
    await ws.disconnect()


@pytest.mark.emulator(rest_page_size=2)
async def test_paging_with_a_small_page_size(emu: Emulator) -> None:
    bids, _ = emu.book_truth("linear", "BTCUSDT", 1)
    base = Decimal(bids[0][0]) - 2000
    async with make_rest(emu) as rest:
        placed = []
        for i in range(5):
            ack = await rest.create_order(
                category="linear",
                symbol="BTCUSDT",
                side="Buy",
                order_type="Limit",
                qty="0.01",
                price=str(base + i),
                order_link_id=f"page-{i}",
            )
            placed.append(ack.order_id)
        before = rest.calls_by_path.get("/v5/order/realtime", 0)
        pages = rest.open_orders("linear", settle_coin="USDT")
        orders = [o async for o in pages]
        seen = [o.order_id for o in orders]
        assert len(seen) == 5 and set(seen) == set(placed)  # every order once, over the pages
        created = [int(o.created_time or 0) for o in orders]
        assert created == sorted(created, reverse=True)  # newest first (ties in any order)
        used = rest.calls_by_path["/v5/order/realtime"] - before
        assert pages.pages == used >= 3
        assert emu.rest_calls("/v5/order/realtime") == used
        cancelled = await rest.cancel_all_orders("linear", settle_coin="USDT")
        assert {o["orderId"] for o in cancelled.result["list"]} == set(placed)
        batch = await rest.create_orders(
            "linear",
            [
                {
                    "symbol": "BTCUSDT",
                    "side": "Buy",
                    "orderType": "Limit",
                    "qty": "0.01",
                    "price": str(base),
                },
                {
                    "symbol": "BTCUSDT",
                    "side": "Buy",
                    "orderType": "Limit",
                    "qty": "0.01",
                    "price": str(base + 1),
                },
            ],
        )
        assert [r.ok for r in batch.results] == [True, True] and batch.failed == []


async def test_executions_positions_and_wallet(
    bus: EventBus, recorder: Recorder, emu: Emulator
) -> None:
    ws = make_private(bus, emu)
    await live_subscribed(ws, ["execution", "position"])
    async with make_rest(emu) as rest:
        ack = await rest.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="0.02"
        )
        execs = await rest.executions("linear", order_id=ack.order_id).all()
        assert execs and all(isinstance(e, Execution) for e in execs)
        assert {e.order_id for e in execs} == {ack.order_id}
        assert all(e.category == "linear" and e.exec_type == "Trade" for e in execs)
        truth = emu.account(KEY)
        assert {e.exec_id for e in execs} == {
            e["execId"] for e in truth.executions if e["orderId"] == ack.order_id
        }
        [pos] = await rest.positions("linear", symbol="BTCUSDT").all()
        assert isinstance(pos, Position) and pos.category == "linear"
        true_pos = truth.position("linear", "BTCUSDT")
        assert true_pos is not None
        assert (pos.size, pos.entry_price, pos.seq) == (
            true_pos["size"],
            true_pos["entryPrice"],
            true_pos["seq"],
        )
        assert pos.seq == max(e.seq for e in execs if e.seq is not None)
        # the stream's copies are equal to REST's (one type, the same values)
        await until(lambda: recorder.events[EventType.POSITION_UPDATE])

        def streamed() -> dict[str, Execution]:
            return {
                x.exec_id: x
                for e in recorder.events[EventType.EXECUTION]
                for x in e.executions
                if x.order_id == ack.order_id
            }

        await until(lambda: len(streamed()) == len(execs))
        for e in execs:
            s = streamed()[e.exec_id]
            assert (s.exec_price, s.exec_qty, s.seq, s.category) == (
                e.exec_price,
                e.exec_qty,
                e.seq,
                e.category,
            )
        stream_pos = recorder.events[EventType.POSITION_UPDATE][-1].positions[0]
        assert (stream_pos.entry_price, stream_pos.size) == (pos.entry_price, pos.size)
        # funding is an execution too, told apart by execType
        funding = emu.charge_funding(KEY, "linear", "BTCUSDT", "0.0001")
        kinds = {e.exec_id: e.exec_type for e in await rest.executions("linear").all()}
        assert [kinds[f] for f in funding] == ["Funding"]
        snapshot = await rest.wallet_balance(coin="USDT")
        [wallet] = snapshot.wallets
        usdt = wallet.coin_of("USDT")
        assert usdt is not None and usdt.wallet_balance == emu.account(KEY).balances["USDT"]
        assert snapshot.time is not None and abs(snapshot.time - emu.server_time_ms()) < 5000
    await ws.disconnect()


async def test_auth_errors_are_typed_and_not_retried(emu: Emulator) -> None:
    async with make_rest(emu, api_secret=SECRET + "x") as rest:
        with pytest.raises(RestAuthError) as info:
            await rest.wallet_balance()
    assert info.value.ret_code == 10004 and emu.rest_calls() == 1
    assert KEY not in str(info.value) and SECRET not in str(info.value)
    async with make_rest(emu, api_key="nobody-0000") as rest:
        with pytest.raises(RestAuthError) as info:
            await rest.positions("linear", symbol="BTCUSDT").all()
    assert info.value.ret_code == 10003 and emu.rest_calls() == 2


@pytest.mark.emulator(clock_skew_ms=20_000)
async def test_expired_timestamp_resyncs_once_and_the_offset_is_shared(
    bus: EventBus, emu: Emulator
) -> None:
    shared = ClockOffset()
    async with make_rest(emu, clock_offset=shared) as rest:
        snapshot = await rest.wallet_balance()  # 10002, resync, retry: ok
        assert snapshot.wallets
        assert [r.path for r in emu.rest_log] == [
            "/v5/account/wallet-balance",
            "/v5/market/time",
            "/v5/account/wallet-balance",
        ]
        assert shared.estimate_ms is not None and abs(shared.estimate_ms - 20_000) < 1_000
    # the private stream authenticates at once with the REST-measured offset
    ws = make_private(bus, emu, clock_offset=shared)
    await ws.connect(timeout=ms(3000))
    assert [r.result for r in emu.auth_log] == ["ok"]
    await ws.disconnect()
    # a client that does not correct its clock: 10002 is typed and retried only once
    async with make_rest(emu, retry=RetryPolicy(max_retries=0)) as plain:
        with pytest.raises(RestTimestampError):
            await plain.wallet_balance()


async def test_rate_limit_10006_waits_for_the_reset_and_succeeds(emu: Emulator) -> None:
    # waits are recorded and shortened; the client-side limiter (which would wait for the same
    # reset in real time) is off here, it has its own tests with an injected clock
    clock = FastSleepClock()
    emu.inject_rest_error(10006, path="/v5/position/list")
    async with make_rest(emu, clock=clock, rate_limits=False) as rest:
        [pos] = await rest.positions("linear", symbol="BTCUSDT").all()
        assert pos.symbol == "BTCUSDT"
    assert emu.rest_calls("/v5/position/list") == 2
    assert len(clock.sleeps) == 1 and 0 < clock.sleeps[0] <= 1.3  # the emulator's reset: 1 s
    emu.inject_rest_error(10006, path="/v5/position/list", reset_header=False)
    clock.sleeps.clear()
    async with make_rest(emu, clock=clock, rate_limits=False) as rest:
        await rest.positions("linear", symbol="BTCUSDT").all()
    assert len(clock.sleeps) == 1 and 2.0 <= clock.sleeps[0] <= 2.3  # now + 2 s, no header
    emu.inject_rest_http(403, count=10)
    async with make_rest(emu, clock=clock, retry=RetryPolicy(max_retries=2)) as rest:
        with pytest.raises(RestRateLimitError) as info:
            await rest.server_time()
    assert info.value.http_status == 403 and info.value.attempts == 3
