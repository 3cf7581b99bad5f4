"""Public backfill against the emulator: trades and closed candles missed while a public connection
was down arrive once, flagged ``backfilled=True``, and a BACKFILL event says what was recovered
(or that more was missed than REST keeps)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.core.lifecycle import ConnectionState as S
from hean.emulator import Emulator
from hean.emulator.params import MarketParams
from hean.exchange.bybit.rest import BybitRestClient
from tests.conftest import ms

from .conftest import Recorder, make_ws
from .test_private_ws import until

MARKET = MarketParams(takers_per_s=50.0, liquidations_per_s=0.0, kline_time_scale=1 / 600)
TOPICS = ["publicTrade.BTCUSDT", "kline.1.BTCUSDT"]


@pytest.fixture
async def rest(emulator: Emulator) -> AsyncIterator[BybitRestClient]:
    async with BybitRestClient(url=emulator.rest_url()) as client:
        yield client


async def run_market(emulator: Emulator, rounds: int) -> None:
    for _ in range(rounds):
        emulator.step("linear", quanta=10)
        emulator.flush("linear")
        await asyncio.sleep(0)


def trade_ids(recorder: Recorder, *, backfilled: bool | None = None) -> list[str]:
    return [
        t.trade_id or ""
        for e in recorder.events[EventType.TRADE]
        if backfilled is None or e.backfilled is backfilled
        for t in e.trades
    ]


async def outage(emulator: Emulator, ws: Any, rounds: int) -> None:
    emulator.set_handshake_status(503)
    emulator.drop_connections()
    await until(lambda: ws.state is not S.LIVE)
    await run_market(emulator, rounds)  # the market moves on without us
    emulator.set_handshake_status(None)


@pytest.mark.emulator(auto_tick=False, market=MARKET)
async def test_trades_and_candles_missed_arrive_once_flagged(
    bus: EventBus, recorder: Recorder, emulator: Emulator, rest: BybitRestClient
) -> None:
    ws = make_ws(bus, emulator, rest=rest)
    await ws.connect(timeout=2)
    await ws.subscribe_trades(["BTCUSDT"])
    await ws.subscribe_klines(["BTCUSDT"], 1)
    await ws.wait_subscribed(TOPICS, timeout=2)
    await run_market(emulator, 20)
    await until(lambda: len(trade_ids(recorder)) > 0)
    first_live = trade_ids(recorder)[0]
    await outage(emulator, ws, 30)
    await until(lambda: len(recorder.events[EventType.BACKFILL]) == 2, timeout=5)
    assert {e.topic for e in recorder.events[EventType.GAP]} == set(TOPICS)
    outcomes = {e.topic: e for e in recorder.events[EventType.BACKFILL]}
    trades_outcome = outcomes["publicTrade.BTCUSDT"]
    assert trades_outcome.complete and trades_outcome.reason == "ok"
    assert trades_outcome.recovered > 0 and trades_outcome.rest_calls == 1
    # every trade of the venue from the first one seen reached the bus exactly once
    await run_market(emulator, 5)
    truth = [str(t["i"]) for t in emulator.trades_truth("linear", "BTCUSDT")]
    await until(lambda: trade_ids(recorder)[-1:] == truth[-1:])
    got = trade_ids(recorder)
    assert len(got) == len(set(got))
    assert set(got) == set(truth[truth.index(first_live) :])
    backfilled = trade_ids(recorder, backfilled=True)
    assert len(backfilled) == trades_outcome.recovered
    assert all(
        e.backfilled for e in recorder.events[EventType.TRADE] if e.trades[0].trade_id in backfilled
    )
    await ws.disconnect()


@pytest.mark.emulator(ticker_interval=ms(50), market=MARKET)
async def test_candles_closed_while_down_arrive_once_confirmed(
    bus: EventBus, recorder: Recorder, emulator: Emulator, rest: BybitRestClient
) -> None:
    """The market runs in real time here: a "minute" lasts 0.1 s, so a 0.5 s outage closes
    several candles nobody saw."""
    ws = make_ws(bus, emulator, rest=rest)
    await ws.connect(timeout=2)
    await ws.subscribe_klines(["BTCUSDT"], 1)
    await ws.wait_subscribed(["kline.1.BTCUSDT"], timeout=2)

    def confirmed(backfilled: bool | None = None) -> list[int]:
        return [
            k.start
            for e in recorder.events[EventType.KLINE]
            if backfilled is None or e.backfilled is backfilled
            for k in e.klines
            if k.confirm
        ]

    await until(lambda: len(confirmed()) >= 2, timeout=5)
    emulator.set_handshake_status(503)
    emulator.drop_connections()
    await until(lambda: ws.state is not S.LIVE)
    await asyncio.sleep(0.5)
    emulator.set_handshake_status(None)
    await until(lambda: len(recorder.events[EventType.BACKFILL]) == 1, timeout=5)
    [outcome] = recorder.events[EventType.BACKFILL]
    assert outcome.topic == "kline.1.BTCUSDT" and outcome.complete
    back = confirmed(backfilled=True)
    assert outcome.recovered == len(back) >= 3
    await until(lambda: max(confirmed(False)) > max(back), timeout=5)  # live again after them
    starts = sorted(confirmed())
    assert len(starts) == len(set(starts))  # no candle confirmed twice
    step = 100  # ms: the scaled "minute"
    assert starts == list(range(starts[0], starts[-1] + step, step))  # none missing
    await ws.disconnect()


@pytest.mark.emulator(auto_tick=False, market=MARKET)
async def test_more_trades_missed_than_rest_keeps_is_said(
    bus: EventBus, recorder: Recorder, emulator: Emulator, rest: BybitRestClient
) -> None:
    ws = make_ws(bus, emulator, "spot", rest=rest)  # spot: recent-trade keeps only 60
    await ws.connect(timeout=2)
    await ws.subscribe_trades(["BTCUSDT"])
    await ws.wait_subscribed(["publicTrade.BTCUSDT"], timeout=2)
    for _ in range(20):
        emulator.step("spot", quanta=10)
        emulator.flush("spot")
        await asyncio.sleep(0)
    await until(lambda: len(trade_ids(recorder)) > 0)
    emulator.set_handshake_status(503)
    emulator.drop_connections()
    await until(lambda: ws.state is not S.LIVE)
    for _ in range(200):
        emulator.step("spot", quanta=10)
    emulator.set_handshake_status(None)
    await until(lambda: len(recorder.events[EventType.BACKFILL]) == 1, timeout=5)
    [outcome] = recorder.events[EventType.BACKFILL]
    truth = emulator.trades_truth("spot", "BTCUSDT")
    assert len(truth) > 60 + len(trade_ids(recorder, backfilled=False))
    assert not outcome.complete and outcome.reason == "truncated"
    assert outcome.recovered == len(trade_ids(recorder, backfilled=True)) <= 60
    assert outcome.missing_from_ms is not None and outcome.missing_to_ms is not None
    assert outcome.missing_from_ms < outcome.missing_to_ms
    await ws.disconnect()


async def test_a_failed_fetch_is_reported_not_raised(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    class Broken:
        calls = 0

        async def recent_trades(self, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            raise OSError("connection refused")

    ws = make_ws(bus, emulator, rest=Broken())
    await ws.connect(timeout=2)
    await ws.subscribe_trades(["BTCUSDT"])
    await ws.wait_subscribed(["publicTrade.BTCUSDT"], timeout=2)
    emulator.drop_connections()
    await until(lambda: len(recorder.events[EventType.BACKFILL]) == 1, timeout=5)
    [outcome] = recorder.events[EventType.BACKFILL]
    assert not outcome.complete and outcome.reason.startswith("error: OSError")
    assert ws.state is S.LIVE and ws.backfill is not None and ws.backfill.errors == 1
    await ws.disconnect()
