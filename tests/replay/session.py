"""A live session against the emulator, recorded: public tickers, a book and trades, the private
stream with two filled orders, and a reconnect of everything in the middle. The events HEAN
published live are kept as comparable summaries (no times but relative ones)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from hean.record import Recorder
from tests.conftest import ms
from tests.e2e.conftest import FAST_BACKOFF

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
BOOK = "orderbook.50.BTCUSDT"
PRIVATE = ["order", "execution", "position", "wallet"]
SETTINGS: dict[str, Any] = {
    "ping_interval": ms(150),
    "pong_timeout": ms(300),
    "connect_timeout": ms(2000),
    "ack_timeout": ms(2000),
    "backoff": FAST_BACKOFF,
}


def summarize(kind: EventType, event: Any) -> tuple[Any, ...] | None:
    """What must be equal between a live run and its replay (no absolute times)."""
    if kind is EventType.TICK:
        fields = tuple(sorted(event.ticker.fields.items()))
        return (kind.value, event.symbol, event.is_snapshot, event.exchange_ts,
                event.last_price, event.bid, event.ask, fields)  # fmt: skip
    if kind is EventType.ORDERBOOK:
        return (kind.value, event.topic, event.u, event.seq, event.is_snapshot, event.valid,
                event.best_bid, event.best_ask, tuple(map(tuple, event.book.bids(5))),
                tuple(map(tuple, event.book.asks(5))))  # fmt: skip
    if kind is EventType.CONNECTION_STATE:
        return (kind.value, event.connection, event.old.value, event.new.value, event.reason)
    if kind is EventType.SUBSCRIPTION:
        return (kind.value, event.connection, event.topic, event.status.value)
    if kind is EventType.GAP:
        return (kind.value, event.connection, event.topic, event.reason)
    if kind is EventType.AUTH:
        return (kind.value, event.connection, event.ok, event.reason)
    if kind in (EventType.TRADE, EventType.KLINE, EventType.LIQUIDATION):
        body = msgspec.to_builtins(event)
        for key in ("recv_time", "recv_wall_ms"):
            body.pop(key, None)
        return (kind.value, msgspec.json.encode(body))
    if kind in (
        EventType.ORDER_UPDATE,
        EventType.EXECUTION,
        EventType.POSITION_UPDATE,
        EventType.WALLET_UPDATE,
    ):
        body = msgspec.to_builtins(event)
        for key in ("recv_time", "recv_wall_ms"):
            body.pop(key, None)
        return (kind.value, msgspec.json.encode(body))
    return None


@dataclass
class Collected:
    events: list[tuple[Any, ...]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """``recv_time`` of data events, in order."""


def collect(bus: EventBus) -> Collected:
    out = Collected()

    def handler(kind: EventType) -> Callable[[Any], None]:
        def on(event: Any) -> None:
            summary = summarize(kind, event)
            if summary is not None:
                out.events.append(summary)
                recv = getattr(event, "recv_time", None)
                if isinstance(recv, float):
                    out.times.append(recv)

        return on

    for kind in EventType:
        bus.subscribe(kind, handler(kind), name=f"collect-{kind}")
    return out


@dataclass
class LiveRun:
    files: list[str]
    events: list[tuple[Any, ...]]
    times: list[float]
    tickers: dict[str, dict[str, str]]
    book: tuple[Any, ...]
    frames: int
    """Frames the two sessions received."""


async def _until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def _fill(emu: Emulator, n: int) -> None:
    account = emu.trading.by_key(DEFAULT_API_KEY)
    _, asks = emu.book_truth("linear", "BTCUSDT", 2)
    result = emu.trading.execute(
        account,
        "order.create",
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": str(Decimal(asks[0][1]) + Decimal("0.001")),
            "price": asks[1][0],
            "orderLinkId": f"rec-{n}",
        },
    )
    assert result.code == 0, result


async def record_session(directory: Path) -> LiveRun:
    config = EmulatorConfig(ticker_interval=ms(20), trade_rate_limit=1000, seed=3)
    async with Emulator(config) as emu:
        bus = EventBus()
        await bus.start()
        live = collect(bus)
        public = BybitPublicWebSocket(
            bus, "linear", url=emu.url("linear"), rng=random.Random(1), **SETTINGS
        )
        private = BybitPrivateWebSocket(
            bus,
            api_key=DEFAULT_API_KEY,
            api_secret=DEFAULT_API_SECRET,
            url=emu.url("private"),
            rng=random.Random(2),
            **SETTINGS,
        )
        async with Recorder(directory, flush_interval=0.1) as rec:
            rec.attach(public)
            rec.attach(private)
            await public.subscribe_tickers(SYMBOLS)
            await public.subscribe_orderbook(["BTCUSDT"], 50)
            await public.subscribe_trades(["BTCUSDT"])
            await public.connect(timeout=ms(3000))
            await private.connect(timeout=ms(3000))
            await private.subscribe(PRIVATE)
            await asyncio.sleep(ms(400))
            _fill(emu, 1)
            await asyncio.sleep(ms(300))
            emu.drop_connections()
            await _until(lambda: any(e[0] == "gap" for e in live.events))
            await _until(lambda: public.session.subscriptions.status(BOOK) == "confirmed")
            _fill(emu, 2)
            await asyncio.sleep(ms(400))
            await public.disconnect()
            await private.disconnect()
            frames = public.session.stats.messages + private.session.stats.messages
        tickers = {s: dict(public.ticker(s).fields) for s in SYMBOLS}  # type: ignore[union-attr]
        book = public.orderbook("BTCUSDT", 50)
        assert book is not None
        book_state = (book.u, tuple(map(tuple, book.bids())), tuple(map(tuple, book.asks())))
        await bus.stop()
    assert rec.stats.lost_frames == 0
    return LiveRun(list(rec.stats.files), live.events, live.times, tickers, book_state, frames)
