"""The HTTP control API on the emulator's port, driven from another process."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
from picows import WSHandshakeError

from hean.emulator import Emulator
from hean.emulator.control import call

from .conftest import connect, running, until


async def ctl(emu: Emulator, action: str, *pairs: str) -> tuple[int, dict[str, Any]]:
    """Run ``python -m hean.emulator.control`` in a subprocess; returns (exit code, reply)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hean.emulator.control",
        f"http://127.0.0.1:{emu.port}",
        action,
        *pairs,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else {"stderr": err.decode()}


async def test_fault_driven_from_a_subprocess() -> None:
    async with running(
        symbols={"linear": ("BTCUSDT",)},
        auto_tick=False,
        ticker_interval=0.01,
        book_intervals={50: 0.01},
    ) as emu:
        c = await connect(emu, "linear")
        await c.subscribe("orderbook.50.BTCUSDT")
        await c.data()
        code, reply = await ctl(emu, "inject", "kind=u_gap", "topic=orderbook.50.BTCUSDT")
        assert code == 0 and reply["ok"] is True
        assert reply["result"] == {
            "kind": "u_gap",
            "topic": "orderbook.50.BTCUSDT",
            "repeat": False,
        }
        book = emu.venue.feed("linear").books["orderbook.50.BTCUSDT"]
        start = book.u
        while book.u < start + 3:
            emu.tick("linear")
        await until(lambda: len(c.listener.all_data) >= 3)
        got = [m["data"]["u"] for m in c.listener.all_data]
        assert got == [start, start + 2, start + 3]
        code, reply = await ctl(emu, "faults", "blackhole=true", "paused_symbols=BTCUSDT,ETHUSDT")
        assert code == 0 and emu.faults.blackhole is True
        assert emu.faults.paused_symbols == {"BTCUSDT", "ETHUSDT"}
        assert reply["result"]["blackhole"] is True
        code, reply = await ctl(emu, "faults", "blackhole=false", "paused_symbols=")
        assert emu.faults.blackhole is False and emu.faults.paused_symbols == set()
        conn_id = emu.live_connections()[0].conn_id
        code, reply = await ctl(emu, "faults", f"conn_id={conn_id}", "ignore_json_ping=1")
        assert code == 0 and emu.connection_faults(conn_id).ignore_json_ping is True
        code, reply = await ctl(emu, "close", "code=4001", "reason=bye")
        assert code == 0 and reply["result"] == 1
        await c.wait_closed()
        assert c.listener.close_code == 4001


async def test_handshake_drop_and_errors(emu: Emulator) -> None:
    c = await connect(emu, "spot")
    code, reply = await ctl(emu, "handshake", "status=503", "retry_after=3")
    assert code == 0 and reply["result"] == 503
    with pytest.raises(WSHandshakeError) as err:
        await connect(emu, "linear")
    assert err.value.response is not None and err.value.response.status == 503
    code, _ = await ctl(emu, "handshake", "status=none")
    assert code == 0
    code, reply = await ctl(emu, "drop")
    assert reply["result"] == 1
    await c.wait_closed()
    assert c.listener.close_code is None  # no close frame
    code, reply = await ctl(emu, "dance")
    assert code == 1 and reply["ok"] is False and "unknown action" in reply["error"]
    code, reply = await ctl(emu, "faults", "blackholes=1")
    assert code == 1 and "unknown fault switch" in reply["error"]
    code, reply = await ctl(emu, "inject", "kind=nope")
    assert code == 1 and "unknown stream fault" in reply["error"]
    code, reply = await ctl(emu, "faults", "conn_id=nope", "blackhole=1")
    assert code == 1 and "nope" in reply["error"]
    code, reply = await ctl(emu, "close", "code=abc")
    assert code == 1 and "integer" in reply["error"]


async def test_truth_and_market_actions_in_process(emu: Emulator) -> None:
    loop = asyncio.get_running_loop()
    url = emu.url("linear")  # the ws:// URL works as the base too

    async def get(action: str, **params: str) -> dict[str, Any]:
        return await loop.run_in_executor(None, call, url, action, params)

    book = await get("book", category="linear", symbol="BTCUSDT", depth="3")
    bids, asks = emu.book_truth("linear", "BTCUSDT", 3)
    assert book["result"] == {"b": [list(x) for x in bids], "a": [list(x) for x in asks]}
    ticker = await get("ticker", category="spot", symbol="ETHUSDT")
    assert ticker["result"] == emu.ticker_truth("spot", "ETHUSDT")
    before = emu.venue.feed("linear").n
    assert (await get("tick", category="linear", steps="2"))["ok"] is True
    assert emu.venue.feed("linear").n > before
    assert (await get("flush"))["ok"] is True
    c = await connect(emu, "linear")
    await c.subscribe("tickers.BTCUSDT")
    [conn] = (await get("connections"))["result"]
    assert conn["subscriptions"] == ["tickers.BTCUSDT"] and conn["category"] == "linear"
    assert (await get("stall", seconds="0.2"))["result"] == 0.2
    await asyncio.sleep(0.4)
    assert (await get("clear"))["result"] == 0
    missing = await get("book", category="linear", symbol="NOPE")
    assert missing["ok"] is False
    events = [e for _, e, _, _ in emu.connection_log]
    assert "control" in events


async def test_control_can_be_disabled() -> None:
    async with running(auto_tick=False, control=False) as emu:
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(None, call, f"http://127.0.0.1:{emu.port}", "drop", {})
        assert reply["ok"] is False and "disabled" in reply["error"]


async def test_malformed_control_requests_never_hurt(emu: Emulator) -> None:
    async def raw(request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        writer.write(request)
        data = await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        return data

    for path in (
        b"/control/%ff%fe?x=%ff",
        b"/control/faults?blackhole=%ff",
        b"/control/faults?idle_timeout=nan",
        b"/control/tick?steps=99999999999",
        b"/control/book?symbol=BTCUSDT&depth=-1",
        b"/control/inject?kind=burst&count=1",
        b"/control/close?code=1006",
    ):
        reply = await raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.1 400", b"HTTP/1.1 404")), (path, head)
        assert json.loads(body)["ok"] is False
    c = await connect(emu, "linear")
    assert (await c.request({"op": "ping"}))["ret_msg"] == "pong"
