"""Replay into the emulator: HEAN connected to the replay publishes the live run's data events
(the recorded reconnect included, with its GAPs); pybit gets the recorded frames; ``speed``
scales the recorded spacing."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from hean.record import Recorder, RecordingReader
from hean.replay.server import ReplayServer

from .session import PRIVATE, SETTINGS, SYMBOLS, LiveRun, collect

DATA = {"tick", "orderbook", "trade", "order_update", "execution", "position_update",
        "wallet_update"}  # fmt: skip


async def until(cond: Callable[[], object], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_hean_on_the_replay_publishes_the_live_events(live_run: LiveRun) -> None:
    async with ReplayServer(live_run.files, speed=1.0, wait=5.0) as server:
        bus = EventBus()
        await bus.start()
        got = collect(bus)
        public = BybitPublicWebSocket(
            bus, "linear", url=server.url("linear"), rng=random.Random(1), **SETTINGS
        )
        private = BybitPrivateWebSocket(
            bus,
            api_key=DEFAULT_API_KEY,
            api_secret=DEFAULT_API_SECRET,
            url=server.url("private"),
            rng=random.Random(2),
            **SETTINGS,
        )
        await public.subscribe_tickers(SYMBOLS)
        await public.subscribe_orderbook(["BTCUSDT"], 50)
        await public.subscribe_trades(["BTCUSDT"])
        await public.connect(timeout=3.0)
        await private.connect(timeout=3.0)
        await private.subscribe(PRIVATE)
        await asyncio.wait_for(server.done.wait(), 20)
        await public.disconnect()
        await private.disconnect()
        await bus.stop()
    stats = server.stats
    assert stats.unsubscribed == 0 and stats.disconnects == 2 and stats.streams == 2
    want = [e for e in live_run.events if e[0] in DATA]
    have = [e for e in got.events if e[0] in DATA]
    assert len(have) == len(want)
    for i, (a, b) in enumerate(zip(have, want, strict=True)):
        assert a == b, f"data event {i} differs"
    gaps = sorted(e[1:3] for e in got.events if e[0] == "gap")
    assert gaps == sorted(e[1:3] for e in live_run.events if e[0] == "gap")
    assert {s: dict(public.ticker(s).fields) for s in SYMBOLS} == live_run.tickers
    book = public.orderbook("BTCUSDT", 50)
    assert (book.u, tuple(map(tuple, book.bids())), tuple(map(tuple, book.asks()))) == live_run.book


async def test_a_late_joiner_gets_a_snapshot_of_the_state_then_the_deltas(
    live_run: LiveRun,
) -> None:
    """A HEAN client that subscribes to the book and a ticker in the middle of the replay gets a
    snapshot built from the state played so far, then the deltas: its book is valid from its
    first event on and ends equal to the live run's, its merged ticker too."""
    async with ReplayServer(live_run.files, speed=1.0, wait=5.0) as server:
        first_ticks: list[float] = []
        first = BybitPublicWebSocket(_Sink(first_ticks), "linear", url=server.url("linear"),
                                     rng=random.Random(1), **SETTINGS)  # fmt: skip
        await first.subscribe_tickers(["ETHUSDT"])  # starts the clock
        await first.connect(timeout=3.0)
        await until(lambda: len(first_ticks) >= 8)
        bus = EventBus()
        await bus.start()
        got = collect(bus)
        late = BybitPublicWebSocket(
            bus, "linear", url=server.url("linear"), rng=random.Random(3), **SETTINGS
        )
        await late.subscribe_orderbook(["BTCUSDT"], 50)
        await late.subscribe_tickers(["BTCUSDT"])
        await late.connect(timeout=3.0)
        await asyncio.wait_for(server.done.wait(), 20)
        await first.disconnect()
        await late.disconnect()
        await bus.stop()
    books = [e for e in got.events if e[0] == "orderbook"]
    ticks = [e for e in got.events if e[0] == "tick" and e[1] == "BTCUSDT"]
    live_books = [e for e in live_run.events if e[0] == "orderbook"]
    assert books and ticks and len(books) < len(live_books)  # it joined late
    assert books[0][4] is True and ticks[0][2] is True  # a snapshot first
    assert all(e[5] for e in books), "the book was invalid at some point"
    assert books[0][2] > live_books[0][2]  # the state's u, not the recording's first snapshot
    assert not [e for e in got.events if e[0] == "subscription" and e[3] == "resyncing"]
    final = late.orderbook("BTCUSDT", 50)
    assert final is not None and final.valid
    assert (final.u, tuple(map(tuple, final.bids())), tuple(map(tuple, final.asks()))) == (
        live_run.book
    )
    assert dict(late.ticker("BTCUSDT").fields) == live_run.tickers["BTCUSDT"]


pybit_ut = pytest.importorskip("pybit.unified_trading")


class Collector:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[Any, ...]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        with self.lock:
            # pybit hands over its merged ticker (typed "snapshot"): compare ts and cs
            self.messages.append((message["topic"], message["ts"], message["cs"]))


async def test_pybit_on_the_replay_receives_the_recorded_frames(
    live_run: LiveRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = []
    for record, _ in RecordingReader(live_run.files):
        if record.kind == "recv" and b'"topic":"tickers.BTCUSDT"' in record.payload:
            m = record.json()
            recorded.append((m["topic"], m["ts"], m["cs"]))
    assert len(recorded) > 20
    async with ReplayServer(live_run.files, speed=None, wait=5.0, disconnects=False) as server:
        monkeypatch.setattr(
            pybit_ut, "PUBLIC_WSS", f"ws://127.0.0.1:{server.port}/v5/public/{{CHANNEL_TYPE}}"
        )
        cb = Collector()

        def open_ws() -> Any:
            ws = pybit_ut.WebSocket(
                testnet=False, channel_type="linear", ping_interval=1, ping_timeout=0.5
            )
            ws.ticker_stream("BTCUSDT", cb)
            return ws

        loop = asyncio.get_running_loop()
        ws = await asyncio.wait_for(loop.run_in_executor(None, open_ws), 10)
        try:
            await asyncio.wait_for(server.done.wait(), 20)
            await until(lambda: len(cb.messages) >= len(recorded))
        finally:
            await asyncio.wait_for(loop.run_in_executor(None, ws.exit), 10)
    assert cb.messages == recorded


async def test_pybit_joining_late_gets_snapshots_then_deltas(
    live_run: LiveRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pybit subscribing to a book and a ticker in the middle of the replay: its merged book
    and ticker (built from a snapshot, then deltas) end equal to the live run's."""
    async with ReplayServer(live_run.files, speed=0.5, wait=5.0, disconnects=False) as server:
        monkeypatch.setattr(
            pybit_ut, "PUBLIC_WSS", f"ws://127.0.0.1:{server.port}/v5/public/{{CHANNEL_TYPE}}"
        )
        first_ticks: list[float] = []
        first = BybitPublicWebSocket(_Sink(first_ticks), "linear", url=server.url("linear"))
        await first.subscribe_tickers(["ETHUSDT"])  # starts the clock
        await first.connect(timeout=3.0)
        await until(lambda: len(first_ticks) >= 8)
        books: list[dict[str, Any]] = []
        tickers: list[dict[str, Any]] = []

        def open_ws() -> Any:
            ws = pybit_ut.WebSocket(
                testnet=False, channel_type="linear", ping_interval=1, ping_timeout=0.5
            )
            ws.orderbook_stream(50, "BTCUSDT", books.append)
            ws.ticker_stream("BTCUSDT", tickers.append)
            return ws

        loop = asyncio.get_running_loop()
        ws = await asyncio.wait_for(loop.run_in_executor(None, open_ws), 10)
        try:
            await asyncio.wait_for(server.done.wait(), 20)
            await asyncio.sleep(0.2)
        finally:
            await asyncio.wait_for(loop.run_in_executor(None, ws.exit), 10)
            await first.disconnect()
    live_books = [e for e in live_run.events if e[0] == "orderbook"]
    assert books and tickers and len(books) < len(live_books)
    data = books[-1]["data"]
    bids = sorted(map(tuple, data["b"]), key=lambda lv: -float(lv[0]))
    asks = sorted(map(tuple, data["a"]), key=lambda lv: float(lv[0]))
    assert (data["u"], tuple(bids), tuple(asks)) == live_run.book
    assert tickers[-1]["data"] == live_run.tickers["BTCUSDT"]


async def synthetic(directory: Path, frames: int, spacing: float) -> list[str]:
    """A recording of ``frames`` ticker frames ``spacing`` seconds apart (no network)."""
    async with Recorder(directory) as rec:
        tap = rec.tap("public/linear", "ws://127.0.0.1:1/v5/public/linear", category="linear")
        tap.connected("ws://127.0.0.1:1/v5/public/linear", 100.0)
        for i in range(frames):
            payload = (
                b'{"topic":"tickers.BTCUSDT","type":"%s","ts":%d,"cs":%d,'
                b'"data":{"symbol":"BTCUSDT","lastPrice":"%d"}}'
                % (b"snapshot" if i == 0 else b"delta", 1_700_000_000_000 + i, i, 60000 + i)
            )
            tap.received(payload, 100.0 + i * spacing)
    return list(rec.stats.files)


async def time_replay(files: list[str], speed: float | None) -> tuple[float, int]:
    async with ReplayServer(files, speed=speed, wait=5.0) as server:
        got: list[float] = []
        ws = BybitPublicWebSocket(_Sink(got), "linear", url=server.url("linear"))
        await ws.subscribe_tickers(["BTCUSDT"])
        await ws.connect(timeout=3.0)
        await asyncio.wait_for(server.done.wait(), 30)
        await until(lambda: len(got) >= server.stats.frames)
        await ws.disconnect()
    return got[-1] - got[0], len(got)


class _Sink:
    def __init__(self, times: list[float]) -> None:
        self.times = times

    def publish(self, event_type: Any, event: Any) -> None:
        if getattr(event_type, "value", "") == "tick":
            self.times.append(event.recv_time)


async def test_speed_scales_the_recorded_spacing(tmp_path: Path) -> None:
    files = await synthetic(tmp_path, 41, 0.05)  # a 2 s recording
    span = 2.0
    at_10, n10 = await time_replay(files, 10.0)
    at_max, nmax = await time_replay(files, None)
    assert n10 == nmax == 41
    # generous bounds around span / 10 = 0.2 s (a loaded machine stretches, never shrinks it)
    assert span / 10 * 0.9 <= at_10 < span / 10 * 4
    assert at_max < at_10


async def test_the_server_reads_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Playing decompresses each file once (it used to read every file a first time to
    collect the recorded symbols); a client may subscribe to a symbol before the player has
    read any frame of it."""
    from hean.record import reader as reader_module

    files = await synthetic(tmp_path / "a", 30, 0.001)
    files += await synthetic_symbol(tmp_path / "b", "XYZUSDT", 30, 0.001)
    reads: list[str] = []
    lines = reader_module.FileReader._lines

    def counted(self: Any) -> Any:
        reads.append(self.path.name)
        return lines(self)

    monkeypatch.setattr(reader_module.FileReader, "_lines", counted)
    async with ReplayServer(files, speed=None, wait=5.0) as server:
        got: list[float] = []
        ws = BybitPublicWebSocket(_Sink(got), "linear", url=server.url("linear"))
        await ws.subscribe_tickers(["BTCUSDT", "XYZUSDT"])
        await ws.connect(timeout=3.0)
        await asyncio.wait_for(server.done.wait(), 10)
        await until(lambda: len(got) >= 60)
        await ws.disconnect()
    assert sorted(reads) == sorted(Path(f).name for f in files)
    assert server.stats.frames == 60 and server.stats.unsubscribed == 0


async def synthetic_symbol(directory: Path, symbol: str, frames: int, spacing: float) -> list[str]:
    """Like :func:`synthetic`, for another symbol, on a clock 1 ms later."""
    async with Recorder(directory) as rec:
        tap = rec.tap("public/linear", "ws://127.0.0.1:1/v5/public/linear", category="linear")
        tap.connected("ws://127.0.0.1:1/v5/public/linear", 100.0)
        for i in range(frames):
            payload = (
                b'{"topic":"tickers.%s","type":"%s","ts":%d,"cs":%d,'
                b'"data":{"symbol":"%s","lastPrice":"%d"}}'
                % (symbol.encode(), b"snapshot" if i == 0 else b"delta",
                   1_700_000_000_000 + i, i, symbol.encode(), 3000 + i)
            )  # fmt: skip
            tap.received(payload, 100.0005 + i * spacing)
    return list(rec.stats.files)
