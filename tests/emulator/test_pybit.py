"""Fidelity: the official SDK (pybit 5.17.0) works against the emulator, URL constants aside."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hean.emulator import Emulator, EmulatorConfig
from hean.emulator.market import MarketParams

from .conftest import running

pybit_ut = pytest.importorskip("pybit.unified_trading")


@pytest.fixture
def local_pybit() -> Iterator[None]:
    saved = pybit_ut.PUBLIC_WSS
    yield
    pybit_ut.PUBLIC_WSS = saved


class Collector:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        # pybit hands over its live merged dict: copy it
        with self.lock:
            self.messages.append({**message, "data": dict(message["data"])})

    def last_data(self) -> dict[str, Any] | None:
        with self.lock:
            return self.messages[-1]["data"] if self.messages else None


async def _start_pybit(emu: Emulator, channel: str, symbol: str, cb: Collector) -> Any:
    pybit_ut.PUBLIC_WSS = f"ws://127.0.0.1:{emu.port}/v5/public/{{CHANNEL_TYPE}}"

    def open_ws() -> Any:
        ws = pybit_ut.WebSocket(
            testnet=False, channel_type=channel, ping_interval=1, ping_timeout=0.5, retries=3
        )
        ws.ticker_stream(symbol, cb)
        return ws

    return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, open_ws), 10)


async def _exit(ws: Any) -> None:
    await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, ws.exit), 10)


@pytest.mark.usefixtures("local_pybit")
async def test_pybit_linear_ticker_stream() -> None:
    async with running(ticker_interval=0.02, latency=0.002) as emu:
        cb = Collector()
        ws = await _start_pybit(emu, "linear", "BTCUSDT", cb)
        try:
            # pybit's merged ticker matches the ground truth at some point
            await emu.wait_for(
                lambda: (
                    len(cb.messages) > 10
                    and cb.last_data() == emu.ticker_truth("linear", "BTCUSDT")
                ),
                timeout=10,
            )
            first = cb.messages[0]
            assert first["topic"] == "tickers.BTCUSDT" and first["type"] == "snapshot"
            # heartbeats: ping frames answered (else pybit would time out), JSON pings sent
            await emu.wait_for(
                lambda: (
                    (i := emu.live_connections("linear"))
                    and i[0].protocol_pings >= 2
                    and i[0].json_pings >= 1
                ),
                timeout=10,
            )
            assert len(emu.connections) == 1  # no reconnects
            [info] = emu.live_connections("linear")
            assert info.subscriptions == {"tickers.BTCUSDT"}
            assert ws.is_connected()
            # unsubscribe: pybit re-sends its subscribe message with op "unsubscribe"
            await asyncio.get_running_loop().run_in_executor(
                None, ws.unsubscribe, "tickers.BTCUSDT"
            )
            await emu.wait_for(lambda: not info.subscriptions, timeout=5)
            assert ws.is_connected()
        finally:
            await _exit(ws)


@pytest.mark.usefixtures("local_pybit")
async def test_pybit_spot_ticker_stream() -> None:
    async with running(ticker_interval=0.02, latency=0.002) as emu:
        cb = Collector()
        ws = await _start_pybit(emu, "spot", "ETHUSDT", cb)
        try:
            await emu.wait_for(
                lambda: (
                    len(cb.messages) > 5 and cb.last_data() == emu.ticker_truth("spot", "ETHUSDT")
                ),
                timeout=10,
            )
            assert all(m["type"] == "snapshot" for m in cb.messages)
            assert ws.is_connected()
        finally:
            await _exit(ws)


@pytest.mark.usefixtures("local_pybit")
async def test_pybit_reconnects_and_resubscribes_after_drop() -> None:
    async with running(ticker_interval=0.02, latency=EmulatorConfig().latency) as emu:
        cb = Collector()
        ws = await _start_pybit(emu, "linear", "ETHUSDT", cb)
        try:
            await emu.wait_for(lambda: len(cb.messages) > 3, timeout=10)
            [old] = emu.live_connections()
            emu.drop_connections()
            await emu.wait_for(
                lambda: (
                    (i := emu.live_connections("linear"))
                    and i[0].conn_id != old.conn_id
                    and i[0].subscriptions == {"tickers.ETHUSDT"}
                    and i[0].sent_by_topic.get("tickers.ETHUSDT", 0) > 3
                ),
                timeout=10,
            )
            assert [c.close_reason for c in emu.connections] == ["dropped", None]
        finally:
            await _exit(ws)


class StreamCollector:
    """Copies what pybit hands over (its merged book is a live object)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        data = message["data"]
        if isinstance(data, dict):
            data = {k: [list(x) for x in v] if isinstance(v, list) else v for k, v in data.items()}
        else:
            data = [dict(x) for x in data]
        with self.lock:
            self.messages.append({**message, "data": data})

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def last(self) -> dict[str, Any]:
        with self.lock:
            return self.messages[-1]


@pytest.mark.usefixtures("local_pybit")
async def test_pybit_orderbook_trades_klines() -> None:
    """pybit's own merged order book equals the emulator's true book at quiet points; its
    trade and kline streams carry the same trades."""
    fast_klines = MarketParams(kline_time_scale=1 / 600)  # a kline "minute" lasts 100 ms
    async with running(
        symbols={"linear": ("BTCUSDT",)},
        auto_tick=False,
        ticker_interval=0.1,
        latency=0.002,
        market=fast_klines,
        kline_interval=0.05,
    ) as emu:
        pybit_ut.PUBLIC_WSS = f"ws://127.0.0.1:{emu.port}/v5/public/{{CHANNEL_TYPE}}"
        book, trades, klines = StreamCollector(), StreamCollector(), StreamCollector()

        def open_ws() -> Any:
            ws = pybit_ut.WebSocket(
                testnet=False, channel_type="linear", ping_interval=1, ping_timeout=0.5, retries=3
            )
            ws.orderbook_stream(50, "BTCUSDT", book)
            ws.trade_stream("BTCUSDT", trades)
            ws.kline_stream(1, "BTCUSDT", klines)
            return ws

        loop = asyncio.get_running_loop()
        ws = await asyncio.wait_for(loop.run_in_executor(None, open_ws), 10)
        try:
            topics = {"orderbook.50.BTCUSDT", "publicTrade.BTCUSDT", "kline.1.BTCUSDT"}
            await emu.wait_for(
                lambda: (i := emu.live_connections()) and i[0].subscriptions == topics, 10
            )
            [info] = emu.live_connections()
            sent = info.sent_by_topic
            for _ in range(15):
                emu.tick("linear", steps=4)
                emu.flush("linear")
                await emu.wait_for(
                    lambda: (
                        book.count() == sent.get("orderbook.50.BTCUSDT", 0)
                        and trades.count() == sent.get("publicTrade.BTCUSDT", 0)
                        and klines.count() == sent.get("kline.1.BTCUSDT", 0)
                    ),
                    timeout=10,
                )
                merged = book.last()["data"]
                bids = sorted(map(tuple, merged["b"]), key=lambda x: -float(x[0]))
                asks = sorted(map(tuple, merged["a"]), key=lambda x: float(x[0]))
                assert (bids, asks) == emu.book_truth("linear", "BTCUSDT", 50)
                assert merged["u"] == info.book_sent["orderbook.50.BTCUSDT"][0]
            got = [t for m in trades.messages for t in m["data"]]
            assert len(got) > 20
            assert got == emu.trades_truth("linear", "BTCUSDT", len(got))
            confirmed = [m["data"][0] for m in klines.messages if m["data"][0]["confirm"]]
            assert len(confirmed) >= 5
            last = confirmed[-1]
            inside = [t for t in got if last["start"] <= t["T"] <= last["end"]]
            if inside:
                assert float(last["close"]) == float(inside[-1]["p"])
            assert len(emu.connections) == 1 and ws.is_connected()
        finally:
            await _exit(ws)
