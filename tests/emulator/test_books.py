"""Order-book topics: snapshot then consecutive deltas, N-level windows, level 1, cadences."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from hean.emulator import Emulator
from hean.emulator.market import MarketParams

from .conftest import Client, connect, example, running, same_shape, until

BTC = {"linear": ("BTCUSDT",), "spot": ("BTCUSDT",)}


class RefBook:
    """A tiny client-side book: applies snapshots and deltas with Bybit's rules, strictly."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.b: dict[str, str] = {}
        self.a: dict[str, str] = {}
        self.u: int | None = None
        self.seq = 0
        self.deltas = 0
        self.fullest = 0

    def apply(self, msg: dict[str, Any]) -> None:
        data = msg["data"]
        assert msg["cts"] <= msg["ts"]
        assert data["seq"] >= self.seq
        self.seq = data["seq"]
        if msg["type"] == "snapshot":
            prices_b = [Decimal(p) for p, _ in data["b"]]
            prices_a = [Decimal(p) for p, _ in data["a"]]
            assert prices_b == sorted(prices_b, reverse=True)
            assert prices_a == sorted(prices_a)
            self.b = dict(map(tuple, data["b"]))
            self.a = dict(map(tuple, data["a"]))
        else:
            assert msg["type"] == "delta"
            assert self.u is not None and data["u"] == self.u + 1, (self.u, data["u"])
            assert data["b"] or data["a"], "no empty deltas"
            for side, levels, reverse in ((self.b, data["b"], True), (self.a, data["a"], False)):
                prices = [Decimal(p) for p, _ in levels]
                assert prices == sorted(prices, reverse=reverse)
                for price, size in levels:
                    if size == "0":
                        assert price in side, f"delete of unknown level {price}"
                        del side[price]
                    else:
                        assert Decimal(size) > 0
                        side[price] = size
            self.deltas += 1
        assert len(self.b) <= self.depth and len(self.a) <= self.depth, "window exceeded"
        self.fullest = max(self.fullest, len(self.b), len(self.a))
        self.u = data["u"]

    def sides(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = sorted(self.b.items(), key=lambda x: Decimal(x[0]), reverse=True)
        asks = sorted(self.a.items(), key=lambda x: Decimal(x[0]))
        return bids, asks


def drain_into(c: Client, books: dict[str, RefBook]) -> int:
    n = 0
    while not c.listener.data.empty():
        msg = c.listener.data.get_nowait()
        books[msg["topic"]].apply(msg)
        n += 1
    return n


async def synced(emu: Emulator, c: Client, books: dict[str, RefBook], index: int = 0) -> None:
    """Wait until the client got everything sent on its topics, then apply it."""
    info = emu.live_connections()[index]

    def arrived() -> bool:
        sent = sum(info.sent_by_topic.get(t, 0) for t in books)
        return sent == len([m for m in c.listener.all_data if m["topic"] in books])

    await until(arrived)
    drain_into(c, books)


@pytest.mark.parametrize("category", ["linear", "spot"])
async def test_deltas_rebuild_the_true_book(category: str) -> None:
    """Thousands of deltas for depth 50 and 200; the client's book equals the truth at
    checkpoints, never exceeds N levels and never sees a gap."""
    async with running(
        symbols=BTC, auto_tick=False, ticker_interval=0.01, book_intervals={50: 0.01, 200: 0.01}
    ) as emu:
        c = await connect(emu, category)
        topics = ["orderbook.50.BTCUSDT", "orderbook.200.BTCUSDT"]
        await c.subscribe(*topics)
        books = {t: RefBook(int(t.split(".")[1])) for t in topics}
        for _ in range(12):
            emu.tick(category, steps=250)
            emu.flush(category)
            await synced(emu, c, books)
            for topic, ref in books.items():
                assert ref.sides() == emu.book_truth(category, "BTCUSDT", ref.depth), topic
        assert books["orderbook.50.BTCUSDT"].deltas > 2000
        assert books["orderbook.200.BTCUSDT"].deltas > 2000
        # the 200-level window was full at some point (levels really left it)
        assert books["orderbook.200.BTCUSDT"].fullest == 200


async def test_snapshot_shape_key_order_and_late_subscriber() -> None:
    async with running(symbols=BTC, auto_tick=False) as emu:
        c = await connect(emu, "linear")
        await c.subscribe("orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT")
        snap = await c.data()
        same_shape(snap, example("orderbook_snapshot.json"))
        assert list(snap) == ["topic", "type", "ts", "data", "cts"]
        assert list(snap["data"]) == ["s", "b", "a", "u", "seq"]
        assert len(snap["data"]["b"]) == 50 and len(snap["data"]["a"]) == 50
        level1 = await c.data()
        assert list(level1) == ["topic", "ts", "type", "data", "cts"]  # futures level 1: ts first
        assert len(level1["data"]["b"]) == 1 and level1["type"] == "snapshot"
        emu.tick("linear", steps=5)
        await until(lambda: any(m["type"] == "delta" for m in c.listener.all_data))
        delta = next(m for m in c.listener.all_data if m["type"] == "delta")
        same_shape(delta, example("orderbook_delta.json"))
        assert list(delta) == ["topic", "type", "ts", "data", "cts"]
        # a late subscriber starts from the published state and stays in sync
        books = {"orderbook.50.BTCUSDT": RefBook(50)}
        late = await connect(emu, "linear")
        await late.subscribe("orderbook.50.BTCUSDT")
        for _ in range(5):
            emu.tick("linear", steps=7)
            emu.flush("linear")
            await synced(emu, late, books, index=1)
            assert books["orderbook.50.BTCUSDT"].sides() == emu.book_truth("linear", "BTCUSDT", 50)
        s = await connect(emu, "spot")
        await s.subscribe("orderbook.200.BTCUSDT")
        spot = await s.data()
        assert list(spot) == ["topic", "ts", "type", "data", "cts"]  # spot: ts first


async def test_level1_snapshot_only_and_repush_same_u() -> None:
    quiet = MarketParams(activity=0.0)
    async with running(
        symbols=BTC, auto_tick=False, ticker_interval=0.1, market=quiet, level1_repush=0.5
    ) as emu:
        c = await connect(emu, "linear")
        await c.subscribe("orderbook.1.BTCUSDT")
        first = await c.data()
        emu.tick("linear", steps=12)  # 1.2 s of a book that does not move
        await until(lambda: len(c.listener.all_data) >= 3)
        msgs = c.drain_data()
        assert [m["type"] for m in msgs] == ["snapshot", "snapshot"]
        assert {m["data"]["u"] for m in msgs} == {first["data"]["u"]}
        assert [m["data"]["b"] for m in msgs] == [first["data"]["b"]] * 2
        assert msgs[1]["ts"] - msgs[0]["ts"] == 500
    async with running(symbols=BTC, auto_tick=False, ticker_interval=0.1) as emu:
        c = await connect(emu, "linear")
        await c.subscribe("orderbook.1.BTCUSDT")
        emu.tick("linear", steps=30)
        emu.flush("linear")
        [info] = emu.live_connections()
        await until(lambda: len(c.listener.all_data) == info.sent_by_topic["orderbook.1.BTCUSDT"])
        msgs = c.listener.all_data
        assert len(msgs) > 20 and all(m["type"] == "snapshot" for m in msgs)
        us = [m["data"]["u"] for m in msgs]
        assert us == list(range(us[0], us[0] + len(us)))
        tops = [(m["data"]["b"], m["data"]["a"]) for m in msgs]
        assert all(a != b for a, b in itertools.pairwise(tops))  # only on change
        bid, ask = emu.book_truth("linear", "BTCUSDT", 1)
        assert [tuple(x) for x in msgs[-1]["data"]["b"]] == bid
        assert [tuple(x) for x in msgs[-1]["data"]["a"]] == ask


async def test_cadences_and_shared_seq() -> None:
    async with running(symbols=BTC, auto_tick=False, ticker_interval=0.2) as emu:
        c = await connect(emu, "linear")
        names = [f"orderbook.{d}.BTCUSDT" for d in (1, 50, 200, 1000)]
        await c.subscribe(*names)
        emu.tick("linear", steps=10)  # 2 s
        [info] = emu.live_connections()
        total = lambda: sum(info.sent_by_topic.values())  # noqa: E731
        await until(lambda: len(c.listener.all_data) == total())
        by: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for m in c.listener.all_data:
            by[m["topic"]].append(m)
        counts = {n: len(v) for n, v in by.items()}
        assert 30 < counts[names[0]] <= 201  # 10 ms, only on change (+ snapshot)
        assert 50 < counts[names[1]] <= 101  # 20 ms
        assert 10 < counts[names[2]] <= 21  # 100 ms
        assert 5 < counts[names[3]] <= 11  # 200 ms
        for name, step in ((names[2], 100), (names[3], 200)):
            ts = [m["ts"] for m in by[name][1:]]
            assert all((b - a) % step == 0 for a, b in itertools.pairwise(ts))
        seqs = [m["data"]["seq"] for m in c.listener.all_data[len(names) :]]
        assert seqs == sorted(seqs)  # one cross sequence for every depth of the symbol
        last = {n: v[-1]["data"]["seq"] for n, v in by.items()}
        assert last[names[2]] == last[names[3]]  # pushed in the same step


async def test_book_topics_rejected_exactly(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    for bad in (
        "orderbook.30.BTCUSDT",
        "orderbook.500.BTCUSDT",
        "orderbook.50.NOPE",
        "orderbook.BTCUSDT",
        "orderbook.25.BTCUSDT",
    ):
        ack = await c.subscribe(bad)
        assert ack["success"] is False and ack["ret_msg"] == f"error:handler not found,topic:{bad}"
    s = await connect(emu, "spot")
    ack = await s.subscribe("orderbook.30.BTCUSDT")
    assert ack["ret_msg"] == "Invalid symbol :[orderbook.30.BTCUSDT]"
    o = await connect(emu, "option")
    ack = await o.subscribe("orderbook.50.BTC-26JUN26-60000-C-USDT")
    assert ack["data"]["failTopics"] == ["orderbook.50.BTC-26JUN26-60000-C-USDT"]


async def test_unsubscribe_and_resubscribe_continue_u(emu: Emulator) -> None:
    c = await connect(emu, "inverse")
    await c.subscribe("orderbook.50.BTCUSD")
    first = await c.data()
    emu.tick("inverse", steps=3)
    await c.request({"op": "unsubscribe", "args": ["orderbook.50.BTCUSD"]})
    c.drain_data()
    emu.tick("inverse", steps=3)
    await c.subscribe("orderbook.50.BTCUSD")
    again = await c.data()
    assert again["type"] == "snapshot" and again["data"]["u"] > first["data"]["u"]
    bids, asks = emu.book_truth("inverse", "BTCUSD", 50)
    assert [tuple(x) for x in again["data"]["b"]] == bids
    assert [tuple(x) for x in again["data"]["a"]] == asks


async def test_same_seed_same_book_and_trade_frames() -> None:
    from hean.core.clock import ManualClock
    from hean.emulator import EmulatorConfig

    async def frames(seed: int) -> list[bytes]:
        cfg = EmulatorConfig(seed=seed, auto_tick=False, latency=0.0, symbols=BTC)
        async with Emulator(cfg, clock=ManualClock()) as emu:
            c = await connect(emu, "linear")
            await c.subscribe("orderbook.50.BTCUSDT", "publicTrade.BTCUSDT", "kline.1.BTCUSDT")
            emu.tick("linear", steps=30)
            [info] = emu.live_connections()
            await until(lambda: len(c.listener.all_data) == sum(info.sent_by_topic.values()))
            return c.listener.raw[1:]

    a, b, other = await frames(5), await frames(5), await frames(6)
    assert a == b and len(a) > 100
    assert a != other


async def test_truth_validation(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="depth"):
        emu.book_truth("linear", "BTCUSDT", 0)
    with pytest.raises(KeyError):
        emu.book_truth("linear", "NOPE")
    with pytest.raises(KeyError):
        emu.ticker_truth("futures", "BTCUSDT")
    bids, asks = emu.book_truth("spot", "ETHUSDT")
    assert len(bids) > 100 and Decimal(bids[0][0]) < Decimal(asks[0][0])
