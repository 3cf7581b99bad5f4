"""The slow-drip fault: a connection's output released a few bytes at a time, in order."""

from __future__ import annotations

import asyncio

import pytest

from hean.emulator import Emulator
from hean.emulator.drip import OP_PONG, OP_TEXT, TICK, Drip, ws_frame
from hean.emulator.faults import Faults

from .conftest import connect, running, until


def test_drip_releases_rate_bytes_per_second_in_order() -> None:
    d = Drip(80.0, now=0.0)
    d.add(b"a" * 30, 0.0)
    d.add(b"b" * 30, 0.25)
    assert d.take(0.0) == b""
    assert d.take(0.125) == b"a" * 10  # 80 B/s for 1/8 s
    assert d.delay(0.125) == 0.125  # the a's have waited since 0
    assert d.take(0.4375) == b"a" * 20 + b"b" * 5
    assert d.pending == 25 and d.delay(0.5) == 0.25  # the b's, since 0.25
    assert d.drain() == b"b" * 25 and d.pending == 0 and d.written == 60
    assert d.delay(1.0) == 0.0


def test_an_idle_drip_does_not_burst_and_fractions_accumulate() -> None:
    d = Drip(50.0, now=0.0)
    assert d.take(100.0) == b""  # idle for long: saves at most one tick's worth
    d.add(b"x" * 100, 100.0)
    assert len(d.take(100.0)) == max(1, int(50.0 * TICK))
    d.take(200.0)
    d.drain()
    d.add(b"y" * 100, 300.0)  # idle since 200 s, without a take in between: no burst either
    assert len(d.take(300.0)) == max(1, int(50.0 * TICK))
    d2 = Drip(1.0, now=0.0)
    d2.add(b"xyz", 0.0)
    got = b"".join(d2.take(0.25 * i) for i in range(1, 9))  # 2 s at 1 B/s
    assert got == b"xy" and d2.discard() == 1


def test_frames_and_rates_are_checked() -> None:
    assert ws_frame(OP_TEXT, b"hi") == b"\x81\x02hi"
    assert ws_frame(OP_PONG, b"") == b"\x8a\x00"
    assert ws_frame(OP_TEXT, b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert ws_frame(OP_TEXT, b"x" * 70000)[:2] == b"\x81\x7f"
    with pytest.raises(ValueError):
        Drip(0.5, now=0.0)
    for bad in (0, -1, float("inf"), float("nan"), True, "fast"):
        with pytest.raises(ValueError, match="drip"):
            Faults(drip=bad)  # type: ignore[arg-type]
    assert Faults(drip=200).copy().drip == 200


async def test_a_dripping_link_holds_everything_back_in_order_until_released(
    emu: Emulator,
) -> None:
    c = await connect(emu, "linear", enable_auto_pong=False)
    await c.subscribe("tickers.BTCUSDT")
    await c.data()  # the snapshot, before the drip
    [info] = emu.live_connections()
    emu.set_faults(info.conn_id, drip=1)  # 1 byte/s: a frame takes minutes
    c.send_json({"op": "ping", "req_id": "p1"})
    c.ping_frame(b"frame-ping")
    for _ in range(3):
        emu.tick("linear")
    await until(lambda: emu._sessions[info.conn_id].drip_pending > 100)
    await asyncio.sleep(0.05)
    assert emu.output_delay(info.conn_id) > 0.0
    assert c.listener.replies.empty() and c.listener.pongs.empty()  # queued behind the drip
    assert c.listener.all_data[1:] == []
    emu.set_faults(info.conn_id, drip=None)  # off: the rest goes out at once, whole
    pong = await c.reply()
    assert pong["op"] == "ping" and pong["req_id"] == "p1"
    assert await c.pong() == b"frame-ping"
    await until(lambda: len(c.listener.all_data) >= 4)
    assert [m["type"] for m in c.listener.all_data[1:]] == ["delta"] * 3
    assert c.listener.junk == []  # no frame was cut or garbled


async def test_a_server_close_goes_out_behind_the_dripped_bytes(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    await c.subscribe("tickers.BTCUSDT")
    await c.data()
    emu.set_faults(drip=5000)  # globally: frames trickle
    for _ in range(3):
        emu.tick("linear")
    emu.close_connections(1012, "restart")
    await c.wait_closed()
    assert c.listener.close_code == 1012
    assert [m["type"] for m in c.listener.all_data[1:]] == ["delta"] * 3  # all before it


async def test_a_new_connection_drips_when_the_switch_is_global_and_a_backlog_is_dropped() -> None:
    async with running(auto_tick=False, max_write_buffer=1024) as emu:
        emu.set_faults(drip=1)
        c = await connect(emu, "linear")
        c.send_json({"op": "subscribe", "args": ["tickers.BTCUSDT", "orderbook.50.BTCUSDT"]})
        [info] = emu.live_connections()
        await until(lambda: emu._sessions[info.conn_id].drip_pending > 0)
        while info.is_open:
            emu.tick("linear")
            await asyncio.sleep(0.001)
        assert info.close_reason == "slow_consumer"  # the venue drops a client that lags
        await c.wait_closed()
