"""Firehose: pre-encoded frames, blast and paced delivery, standalone CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest
from picows import WSMsgType, ws_connect

from hean.emulator.firehose import FirehoseServer, build_frames, ws_text_frame

from .conftest import RawListener, example, same_shape, until


def parse_frames(blob: bytes) -> list[bytes]:
    """Decode back-to-back unmasked server frames."""
    out, i = [], 0
    while i < len(blob):
        assert blob[i] == 0x81  # FIN + text
        n = blob[i + 1]
        assert n & 0x80 == 0  # unmasked
        i += 2
        if n == 126:
            n = int.from_bytes(blob[i : i + 2], "big")
            i += 2
        elif n == 127:
            n = int.from_bytes(blob[i : i + 8], "big")
            i += 8
        out.append(blob[i : i + n])
        i += n
    return out


def merge(messages: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    state: dict[str, dict[str, str]] = {}
    for msg in messages:
        symbol = msg["data"]["symbol"]
        if msg["type"] == "snapshot":
            state[symbol] = dict(msg["data"])
        else:
            state[symbol].update(msg["data"])
    return state


def test_ws_text_frame_lengths() -> None:
    for size in (0, 125, 126, 65535, 65536):
        payload = b"x" * size
        assert parse_frames(ws_text_frame(payload)) == [payload]


def test_build_frames() -> None:
    frames = build_frames(500, 7, seed=3)
    assert frames.count == 507 and frames.snapshots == 7
    assert frames.offsets[-1] == len(frames.blob)
    payloads = parse_frames(frames.blob)
    assert len(payloads) == 507 and parse_frames(frames.frame(7)) == [payloads[7]]
    msgs = [json.loads(p) for p in payloads]
    assert [m["type"] for m in msgs[:7]] == ["snapshot"] * 7
    assert all(m["type"] == "delta" for m in msgs[7:])
    same_shape(msgs[0], example("tickers_linear_snapshot.json"))
    assert frames.symbols[:5] == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")
    assert frames.symbols[5] == "SYM0005USDT"
    assert merge(msgs) == frames.truth
    assert build_frames(500, 7, seed=3).blob == frames.blob
    spot = build_frames(20, 2, category="spot")
    assert all(json.loads(p)["type"] == "snapshot" for p in parse_frames(spot.blob))


async def _receive(url: str, expected: int) -> tuple[RawListener, float]:
    transport, listener = await ws_connect(RawListener, url)
    assert isinstance(listener, RawListener)
    t0 = time.perf_counter()
    transport.send_ping(b"p")
    transport.send(WSMsgType.TEXT, b'{"op":"subscribe","req_id":"fh","args":["tickers.BTCUSDT"]}')
    ack = await asyncio.wait_for(listener.replies.get(), 5)
    assert ack == {
        "success": True,
        "ret_msg": "",
        "conn_id": "firehose",
        "req_id": "fh",
        "op": "subscribe",
    }
    await until(lambda: len(listener.all_data) >= expected, timeout=20)
    elapsed = time.perf_counter() - t0
    assert len(listener.all_data) == expected
    transport.disconnect()
    return listener, elapsed


async def test_blast_delivers_everything_in_order() -> None:
    frames = build_frames(20_000, 5)
    async with FirehoseServer(frames, chunk_size=64 << 10, repeat=3) as server:
        assert server.total == 5 + 3 * 20_000
        listener, _ = await _receive(server.url(), server.total)
        await server.wait_served(1, timeout=5)
    assert merge(listener.all_data) == frames.truth
    assert listener.all_data[5]["data"] == listener.all_data[5 + 20_000]["data"]


async def test_paced_rate() -> None:
    frames = build_frames(300, 3)
    async with FirehoseServer(frames, rate=2000.0, close_after=True) as server:
        listener, elapsed = await _receive(server.url(), 303)
        await server.wait_served(1, timeout=5)
    assert 0.1 <= elapsed < 1.0, elapsed
    assert merge(listener.all_data) == frames.truth


def test_cli_standalone() -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "hean.emulator.firehose"),
            *("--messages", "2000", "--symbols", "4", "--close", "--once"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/v5/public/linear")

        async def client() -> RawListener:
            listener, _ = await _receive(url, 2004)
            return listener

        listener = asyncio.run(client())
        assert listener.all_data[-1]["type"] == "delta"
        assert proc.wait(timeout=10) == 0
        assert "2004 frames" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_validation() -> None:
    with pytest.raises(ValueError):
        build_frames(-1, 1)
    with pytest.raises(ValueError):
        build_frames(1, 0)
    with pytest.raises(ValueError):
        FirehoseServer(build_frames(1, 1), rate=0)


def apply_books(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply order-book snapshots/deltas strictly (consecutive u, known deletes)."""
    books: dict[str, dict[str, Any]] = {}
    for msg in messages:
        data = msg["data"]
        symbol = data["s"]
        if msg["type"] == "snapshot":
            books[symbol] = {"b": dict(map(tuple, data["b"])), "a": dict(map(tuple, data["a"]))}
        else:
            book = books[symbol]
            assert data["u"] == book["u"] + 1
            for side in ("b", "a"):
                for price, size in data[side]:
                    if size == "0":
                        del book[side][price]
                    else:
                        book[side][price] = size
        books[symbol]["u"] = data["u"]
    return {
        s: (
            sorted(b["b"].items(), key=lambda x: -float(x[0])),
            sorted(b["a"].items(), key=lambda x: float(x[0])),
        )
        for s, b in books.items()
    }


@pytest.mark.parametrize(("topic", "depth"), [("orderbook.50", 50), ("orderbook.200", 200)])
def test_build_book_frames(topic: str, depth: int) -> None:
    frames = build_frames(300, 3, seed=4, topic=topic)
    assert frames.count == 303 and frames.topic == topic and frames.replayable_from == 0
    msgs = [json.loads(p) for p in parse_frames(frames.blob)]
    assert [m["type"] for m in msgs[:3]] == ["snapshot"] * 3
    assert all(m["type"] == "delta" for m in msgs[3:])
    assert all(m["topic"] == f"{topic}.{m['data']['s']}" for m in msgs)
    same_shape(msgs[0], example("orderbook_snapshot.json"))
    same_shape(msgs[5], example("orderbook_delta.json"))
    assert len(msgs[0]["data"]["b"]) == depth
    assert apply_books(msgs) == frames.truth
    assert build_frames(300, 3, seed=4, topic=topic).blob == frames.blob
    with pytest.raises(ValueError, match="topic"):
        build_frames(1, 1, topic="orderbook.1000")


async def test_book_blast_repeats_whole_sequence() -> None:
    frames = build_frames(2_000, 2, topic="orderbook.50")
    async with FirehoseServer(frames, repeat=3) as server:
        assert server.total == 3 * 2_002
        listener, _ = await _receive(server.url(), server.total)
        await server.wait_served(1, timeout=5)
    msgs = listener.all_data
    assert [m["type"] for m in msgs].count("snapshot") == 6
    assert apply_books(msgs) == frames.truth


def test_cli_book_topic() -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "hean.emulator.firehose", "--topic", "orderbook.200"),
            *("--messages", "300", "--symbols", "2", "--close", "--once"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()

        async def client() -> RawListener:
            listener, _ = await _receive(url, 302)
            return listener

        listener = asyncio.run(client())
        assert {m["topic"] for m in listener.all_data} == {
            "orderbook.200.BTCUSDT",
            "orderbook.200.ETHUSDT",
        }
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
