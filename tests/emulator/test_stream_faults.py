"""Wire faults on data streams: each one observed on the wire; the true market is unaffected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hean.emulator import Emulator
from hean.emulator.streamfaults import StreamFault

from .conftest import Client, connect, running, until

TOPIC = "orderbook.50.BTCUSDT"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """One linear symbol; every market step pushes its orderbook.50 changes."""
    async with running(
        symbols={"linear": ("BTCUSDT", "ETHUSDT")},
        auto_tick=False,
        ticker_interval=0.01,
        book_intervals={50: 0.01},
    ) as e:
        yield e


def book_msgs(c: Client, topic: str = TOPIC) -> list[dict[str, Any]]:
    return [m for m in c.listener.all_data if m.get("topic") == topic]


async def advance(emu: Emulator, produced: int, topic: str = TOPIC) -> None:
    """Step the market until the feed produced ``produced`` more messages on ``topic``."""
    book = emu.venue.feed("linear").books[topic]
    target = book.u + produced
    while book.u < target:
        emu.tick("linear")
    await asyncio.sleep(0.05)


async def subscribed(emu: Emulator, *topics: str) -> Client:
    c = await connect(emu, "linear")
    await c.subscribe(*topics or (TOPIC,))
    await until(
        lambda: (
            len(c.listener.all_data) >= sum(t.startswith("orderbook") for t in topics or (TOPIC,))
        )
    )
    return c


def us(msgs: list[dict[str, Any]]) -> list[int]:
    return [m["data"]["u"] for m in msgs]


async def test_u_gap(emu: Emulator) -> None:
    c = await subscribed(emu)
    fault = emu.inject("u_gap", topic=TOPIC)
    await advance(emu, 4)
    got = us(book_msgs(c))
    first = got[0]  # the snapshot
    assert got == [first, first + 2, first + 3, first + 4]  # u = first + 1 never arrived
    assert fault.fired == 1 and emu.stream_faults.faults() == []


async def test_lose_snapshot_drops_only_the_resubscribe_snapshot(emu: Emulator) -> None:
    c = await subscribed(emu)
    await advance(emu, 1)
    fault = emu.inject("lose_snapshot", topic=TOPIC)
    before = len(book_msgs(c))
    await c.request({"op": "unsubscribe", "args": [TOPIC]})
    await c.subscribe(TOPIC)  # acked, but its snapshot never comes
    await advance(emu, 2)
    after = book_msgs(c)[before:]
    assert [m["type"] for m in after] == ["delta", "delta"]
    assert fault.fired == 1 and emu.stream_faults.faults() == []


async def test_lose_snapshot_drops_a_ticker_snapshot_too(emu: Emulator) -> None:
    """A linear ticker whose snapshot is lost: the ack comes, then deltas only."""
    ticker = "tickers.BTCUSDT"
    fault = emu.inject("lose_snapshot", topic=ticker)
    c = await connect(emu, "linear")
    await c.subscribe(ticker)
    for _ in range(3):
        emu.tick("linear")
    await until(lambda: len(book_msgs(c, ticker)) >= 2)
    assert {m["type"] for m in book_msgs(c, ticker)} == {"delta"}
    assert fault.fired == 1 and emu.stream_faults.faults() == []


async def test_duplicate_and_repeat_then_clear(emu: Emulator) -> None:
    c = await subscribed(emu)
    emu.inject("duplicate_delta", repeat=True)
    await advance(emu, 3)
    msgs = book_msgs(c)[1:]
    assert us(msgs) == [u for u in us(msgs)[::2] for _ in (0, 1)]
    assert msgs[0] == msgs[1] and len(msgs) == 6
    assert emu.clear_injections() == 1
    await advance(emu, 2)
    tail = us(book_msgs(c))[-3:]
    assert tail == [tail[0], tail[0] + 1, tail[0] + 2]


async def test_swap_deltas(emu: Emulator) -> None:
    c = await subscribed(emu)
    emu.inject("swap_deltas")
    await advance(emu, 3)
    got = us(book_msgs(c))
    s = got[0]
    assert got == [s, s + 2, s + 1, s + 3]


async def test_restart_snapshot_then_u_from_two(emu: Emulator) -> None:
    c = await subscribed(emu)
    other = await subscribed(emu)
    [info, _] = emu.live_connections()
    emu.inject("restart_snapshot", conn_id=info.conn_id)
    await advance(emu, 3)
    msgs = book_msgs(c)
    assert [m["type"] for m in msgs] == ["snapshot", "snapshot", "delta", "delta"]
    assert us(msgs)[1:] == [1, 2, 3]
    assert emu.book_sent(info.conn_id, TOPIC)[0] == 3
    # the restart snapshot and the renumbered deltas still rebuild the true book
    book = {side: dict(map(tuple, msgs[1]["data"][side])) for side in ("b", "a")}
    for m in msgs[2:]:
        for side in ("b", "a"):
            for price, size in m["data"][side]:
                if size == "0":
                    del book[side][price]
                else:
                    book[side][price] = size
    bids, asks = emu.book_truth("linear", "BTCUSDT", 50)
    assert sorted(book["b"].items()) == sorted(bids) and sorted(book["a"].items()) == sorted(asks)
    theirs = us(book_msgs(other))
    assert theirs == list(range(theirs[0], theirs[0] + 4))  # other connection untouched


@pytest.mark.parametrize("topic", [TOPIC, "tickers.BTCUSDT"])
async def test_delta_before_snapshot(emu: Emulator, topic: str) -> None:
    emu.inject("delta_before_snapshot", topic=topic)
    c = await connect(emu, "linear")
    await c.subscribe(topic)
    first, second = await c.data(), await c.data()
    assert (first["type"], second["type"]) == ("delta", "snapshot")
    assert first["topic"] == second["topic"] == topic


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("invalid_json", lambda c: c.listener.junk and not c.listener.junk[0].endswith(b"}")),
        ("json_array", lambda c: json.loads(c.listener.junk[0])[0]["topic"] == TOPIC),
        (
            "missing_topic",
            lambda c: [r for r in c.listener.raw if r.startswith(b'{"type":"delta"')],
        ),
        ("wrong_types", lambda c: [m for m in book_msgs(c) if isinstance(m["data"]["u"], str)]),
        ("binary", lambda c: json.loads(c.listener.binary[0])["topic"] == TOPIC),
        ("empty", lambda c: c.listener.junk == [b""]),
    ],
)
async def test_malformed_frames_arrive_before_the_real_message(
    emu: Emulator, kind: str, check: Any
) -> None:
    c = await subscribed(emu)
    emu.inject(kind, topic=TOPIC)
    await advance(emu, 2)
    assert check(c), (kind, c.listener.raw[-3:])
    real = [m for m in book_msgs(c) if isinstance(m["data"]["u"], int)]
    assert us(real) == list(range(us(real)[0], us(real)[0] + 3))  # nothing real was lost
    while not c.listener.replies.empty():  # the topic-less copy lands among the replies
        assert "type" in c.listener.replies.get_nowait()
    assert (await c.request({"op": "ping"}))["ret_msg"] == "pong"


async def test_oversized_frame(emu: Emulator) -> None:
    c = await subscribed(emu)
    emu.inject("oversized", topic=TOPIC, size=300_000)
    await advance(emu, 1)
    big = [r for r in c.listener.raw if len(r) > 100_000]
    assert [len(r) for r in big] == [300_000]
    # a client with a smaller frame limit is thrown off by it
    small = await connect(emu, "linear", max_frame_size=100_000)
    await small.subscribe(TOPIC)
    emu.inject("oversized", size=300_000, conn_id=emu.live_connections()[-1].conn_id)
    await advance(emu, 1)
    await small.wait_closed()


async def test_burst(emu: Emulator) -> None:
    c = await subscribed(emu)
    emu.inject("burst", topic=TOPIC, count=5)
    before = len(book_msgs(c))
    await advance(emu, 4)
    assert len(book_msgs(c)) == before  # held back
    await advance(emu, 1)
    got = us(book_msgs(c)[before:])
    assert got == list(range(got[0], got[0] + 5))


async def test_topic_filter_and_global_one_shot(emu: Emulator) -> None:
    a = await subscribed(emu, TOPIC, "orderbook.50.ETHUSDT")
    b = await subscribed(emu, TOPIC, "orderbook.50.ETHUSDT")
    emu.inject("u_gap", topic="orderbook.50.ETHUSDT")
    await advance(emu, 3, "orderbook.50.ETHUSDT")
    await advance(emu, 3)
    gaps = 0
    for c in (a, b):
        btc = us(book_msgs(c))
        assert btc == list(range(btc[0], btc[0] + len(btc)))
        eth = us(book_msgs(c, "orderbook.50.ETHUSDT"))
        gaps += len(eth) != eth[-1] - eth[0] + 1
    assert gaps == 1  # a global one-shot hits one connection once


def test_stream_fault_validation() -> None:
    with pytest.raises(ValueError, match="unknown stream fault"):
        StreamFault("gap")
    with pytest.raises(ValueError, match="count"):
        StreamFault("burst", count=1)
    with pytest.raises(ValueError, match="size"):
        StreamFault("oversized", size=0)


async def test_inject_unknown_connection(emu: Emulator) -> None:
    with pytest.raises(KeyError):
        emu.inject("u_gap", conn_id="nope")


async def test_stream_faults_from_config() -> None:
    armed = StreamFault("delta_before_snapshot", topic="tickers.BTCUSDT")
    async with running(auto_tick=False, stream_faults=[armed]) as emu:
        c = await connect(emu, "linear")
        await c.subscribe("tickers.BTCUSDT")
        assert [(await c.data())["type"], (await c.data())["type"]] == ["delta", "snapshot"]
        assert armed.fired == 0  # the config's copy is armed, not the object itself
        assert emu.stream_faults.faults() == []
