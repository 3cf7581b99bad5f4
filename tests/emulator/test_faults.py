"""Heartbeats, fault switches, server-side disconnects and handshake failures."""

from __future__ import annotations

import asyncio
import base64
import math
import os

import pytest
from picows import WSCloseCode, WSHandshakeError, WSMsgType

from hean.emulator import Emulator, Faults

from .conftest import Client, connect, running, until


async def test_protocol_ping_answered_and_switch(emu: Emulator) -> None:
    c = await connect(emu, "linear", enable_auto_pong=False)
    c.ping_frame(b"hello")
    assert await c.pong() == b"hello"
    emu.set_faults(ignore_protocol_ping=True)
    c.ping_frame(b"again")
    await asyncio.sleep(0.15)
    assert c.listener.pongs.empty()
    # JSON pings still answered, and the ping frame was seen
    assert (await c.request({"op": "ping"}))["ret_msg"] == "pong"
    [info] = emu.live_connections()
    assert info.protocol_pings == 2
    emu.set_faults(ignore_protocol_ping=False)
    c.ping_frame(b"back")
    assert await c.pong() == b"back"


async def test_no_server_pings_by_default(live_emu: Emulator) -> None:
    c = await connect(live_emu, "linear")
    await c.subscribe("tickers.BTCUSDT")
    await asyncio.sleep(0.2)
    assert c.listener.pings == []


async def test_server_pings_switch() -> None:
    async with running(server_pings=True, server_ping_interval=0.05, auto_tick=False) as emu:
        c = await connect(emu, "linear", enable_auto_pong=False)
        await until(lambda: len(c.listener.pings) >= 2)


async def test_ignore_json_ping_while_data_flows(live_emu: Emulator) -> None:
    c = await connect(live_emu, "linear")
    await c.subscribe("tickers.BTCUSDT")
    [info] = live_emu.live_connections()
    live_emu.set_faults(info.conn_id, ignore_json_ping=True)
    c.drain_data()
    c.send_json({"op": "ping", "req_id": "p"})
    await asyncio.sleep(0.15)
    assert c.listener.replies.empty()
    assert len(c.drain_data()) >= 3  # data keeps flowing
    assert info.json_pings == 1
    c.ping_frame(b"f")
    assert await c.pong() == b"f"


async def test_blackhole_half_open(live_emu: Emulator) -> None:
    c = await connect(live_emu, "linear")
    await c.subscribe("tickers.BTCUSDT")
    await c.data()
    live_emu.set_faults(blackhole=True)
    await asyncio.sleep(0.03)
    c.drain_data()
    c.send_json({"op": "ping"})
    c.ping_frame(b"x")
    await asyncio.sleep(0.2)
    assert c.drain_data() == [] and c.listener.replies.empty() and c.listener.pongs.empty()
    assert not c.listener.disconnected.is_set()
    [info] = live_emu.live_connections()
    assert info.frames_received >= 3
    # recovering link: the stream resumes with a fresh snapshot
    live_emu.set_faults(blackhole=False)
    assert (await c.data())["type"] == "snapshot"
    assert (await c.data())["type"] == "delta"


async def test_blackhole_ignores_close_frame(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    emu.set_faults(blackhole=True)
    c.transport.send_close()
    await asyncio.sleep(0.15)
    assert len(emu.live_connections()) == 1


async def test_drop_client_sees_no_close_frame(live_emu: Emulator) -> None:
    c = await connect(live_emu, "linear")
    await c.subscribe("tickers.BTCUSDT")
    assert live_emu.drop_connections() == 1
    await c.wait_closed()
    assert c.listener.close_code is None
    assert c.transport.close_handshake is None
    [info] = live_emu.connections
    assert info.close_reason == "dropped" and info.closed_at is not None
    assert live_emu.live_connections() == []


async def test_close_with_code(emu: Emulator) -> None:
    a = await connect(emu, "linear")
    b = await connect(emu, "spot")
    assert emu.close_connections(4000, "bye", conn_id=emu.live_connections("linear")[0].conn_id)
    await a.wait_closed()
    assert a.listener.close_code == 4000 and a.listener.close_reason == "bye"
    assert not b.listener.disconnected.is_set()
    assert emu.close_connections(1012) == 1
    await b.wait_closed()
    assert b.listener.close_code == 1012
    reasons = sorted(i.close_reason or "" for i in emu.connections)
    assert reasons == ["server_close:1012", "server_close:4000"]
    with pytest.raises(ValueError, match="cannot be sent"):
        emu.close_connections(1006)


async def _raw_upgrade(emu: Emulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /v5/public/linear HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def test_reset_sends_rst(emu: Emulator) -> None:
    reader, writer = await _raw_upgrade(emu)
    await until(lambda: emu.live_connections())
    assert emu.reset_connections() == 1
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 2)
    writer.close()
    assert emu.connections[0].close_reason == "reset"


async def test_drop_is_eof_without_close_frame(emu: Emulator) -> None:
    reader, writer = await _raw_upgrade(emu)
    await until(lambda: emu.live_connections())
    emu.drop_connections()
    assert await asyncio.wait_for(reader.read(100), 2) == b""
    writer.close()


@pytest.mark.parametrize("status", [403, 429, 503])
async def test_handshake_status(emu: Emulator, status: int) -> None:
    emu.set_handshake_status(status, retry_after=7)
    with pytest.raises(WSHandshakeError) as err:
        await connect(emu, "linear")
    assert err.value.response is not None
    assert err.value.response.status == status
    assert err.value.response.headers.get("Retry-After") == "7"
    assert "reject" in [e for _, e, _, _ in emu.connection_log]
    assert emu.live_connections() == []
    emu.set_handshake_status(None)
    c = await connect(emu, "linear")
    assert (await c.request({"op": "ping"}))["ret_msg"] == "pong"


async def test_unknown_path_404(emu: Emulator) -> None:
    from picows import ws_connect

    from .conftest import RawListener

    with pytest.raises(WSHandshakeError) as err:
        await ws_connect(RawListener, f"ws://127.0.0.1:{emu.port}/v5/public/nope")
    assert err.value.response is not None and err.value.response.status == 404
    assert emu.connection_log[-1][1:] == ("reject", None, "404 /v5/public/nope")


async def test_handshake_stall(emu: Emulator) -> None:
    emu.set_handshake_stall(math.inf)
    with pytest.raises(TimeoutError):
        await connect(emu, "linear", websocket_handshake_timeout=0.2)
    emu.set_handshake_stall(None)
    c = await connect(emu, "linear")
    assert (await c.request({"op": "ping"}))["ret_msg"] == "pong"
    # a timed stall ends by itself
    emu.set_handshake_stall(0.2)
    c2 = await connect(emu, "spot", websocket_handshake_timeout=2)
    assert (await c2.request({"op": "ping"}))["ret_msg"] == "pong"
    events = [e for _, e, _, _ in emu.connection_log]
    assert events.count("stall") == 2 and events.count("stall_end") == 2


async def test_idle_cut_off() -> None:
    async with running(idle_timeout=0.3, auto_tick=False) as emu:
        silent = await connect(emu, "linear")
        json_pinger = await connect(emu, "linear")
        frame_pinger = await connect(emu, "spot")

        async def keep_alive() -> None:
            for i in range(12):
                json_pinger.send_json({"op": "ping", "req_id": str(i)})
                frame_pinger.ping_frame()
                await asyncio.sleep(0.1)

        task = asyncio.create_task(keep_alive())
        await silent.wait_closed(timeout=1.0)
        assert silent.listener.close_code is None  # TCP close, no close frame
        await task
        assert not json_pinger.listener.disconnected.is_set()
        assert not frame_pinger.listener.disconnected.is_set()
        reasons = [i.close_reason for i in emu.connections]
        assert reasons == ["idle_timeout", None, None]


async def test_idle_timeout_fault_per_connection(emu: Emulator) -> None:
    a = await connect(emu, "linear")
    b = await connect(emu, "linear")
    conn_a = emu.live_connections()[0].conn_id
    emu.set_faults(conn_a, idle_timeout=0.1)
    await a.wait_closed(timeout=1.0)
    await asyncio.sleep(0.15)
    assert not b.listener.disconnected.is_set()
    emu.set_faults(idle_timeout=0.1)
    await b.wait_closed(timeout=1.0)


async def test_idle_timeout_inf_override() -> None:
    async with running(idle_timeout=0.1, auto_tick=False) as emu:
        c = await connect(emu, "linear")
        emu.set_faults(emu.live_connections()[0].conn_id, idle_timeout=math.inf)
        await asyncio.sleep(0.3)
        assert not c.listener.disconnected.is_set()


async def _subscribed(emu: Emulator, *symbols: str) -> Client:
    c = await connect(emu, "linear")
    await c.subscribe(*[f"tickers.{s}" for s in symbols])
    for _ in symbols:
        assert (await c.data())["type"] == "snapshot"
    return c


async def test_reject_topics_and_all(emu: Emulator) -> None:
    emu.set_faults(reject_topics={"tickers.ETHUSDT"})
    c = await connect(emu, "linear")
    ack = await c.subscribe("tickers.BTCUSDT", "tickers.ETHUSDT")
    assert ack["ret_msg"] == "error:handler not found,topic:tickers.ETHUSDT"
    s = await connect(emu, "spot")
    ack = await s.subscribe("tickers.ETHUSDT")
    assert ack["ret_msg"] == "Invalid symbol :[tickers.ETHUSDT]"
    emu.set_faults(reject_topics=set())
    conn_id = emu.live_connections("linear")[0].conn_id
    emu.set_faults(conn_id, reject_all_subscriptions=True)
    ack = await c.subscribe("tickers.SOLUSDT")
    assert ack["success"] is False
    assert ack["ret_msg"] == "error:handler not found,topic:tickers.SOLUSDT"
    assert (await s.subscribe("tickers.SOLUSDT"))["success"] is True  # other connection


async def test_paused_symbols(emu: Emulator) -> None:
    c = await _subscribed(emu, "BTCUSDT", "ETHUSDT")
    emu.set_faults(paused_symbols={"BTCUSDT"})
    emu.tick("linear", steps=5)
    await until(lambda: c.listener.data.qsize() >= 5)
    got = c.drain_data()
    assert {m["topic"] for m in got} == {"tickers.ETHUSDT"}
    emu.set_faults(paused_symbols=set())
    emu.tick("linear")
    msgs = [await c.data(), await c.data()]
    by_topic = {m["topic"]: m["type"] for m in msgs}
    assert by_topic == {"tickers.BTCUSDT": "snapshot", "tickers.ETHUSDT": "delta"}
    assert msgs[0]["data"] == emu.ticker_truth("linear", "BTCUSDT") or msgs[1]["data"] == (
        emu.ticker_truth("linear", "BTCUSDT")
    )


async def test_per_connection_faults_isolated(emu: Emulator) -> None:
    a = await connect(emu, "linear")
    b = await connect(emu, "linear")
    ida, _ = (i.conn_id for i in emu.live_connections())
    emu.connection_faults(ida).ignore_json_ping = True
    a.send_json({"op": "ping"})
    assert (await b.request({"op": "ping"}))["ret_msg"] == "pong"
    await a.no_reply(0.1)
    assert emu.faults == Faults()


async def test_fault_validation(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="unknown fault switch"):
        emu.set_faults(blackholes=True)
    with pytest.raises(ValueError, match="must be a bool"):
        emu.set_faults(blackhole="yes")
    with pytest.raises(ValueError, match="set of strings"):
        emu.set_faults(reject_topics="tickers.BTCUSDT")
    with pytest.raises(ValueError, match="idle_timeout"):
        emu.set_faults(idle_timeout=0)
    with pytest.raises(KeyError):
        emu.set_faults("no-such-conn", blackhole=True)
    with pytest.raises(ValueError, match=r"400\.\.599"):
        emu.set_handshake_status(200)


async def test_startup_faults_from_config() -> None:
    async with running(auto_tick=False, faults=Faults(ignore_json_ping=True)) as emu:
        c = await connect(emu, "linear")
        c.send_json({"op": "ping"})
        await c.no_reply(0.1)
        emu.faults.ignore_json_ping = False
        assert (await c.request({"op": "ping"}))["ret_msg"] == "pong"


async def test_malformed_input_never_hurts_others(live_emu: Emulator) -> None:
    good = await connect(live_emu, "linear")
    await good.subscribe("tickers.BTCUSDT")
    bad = await connect(live_emu, "linear")
    bad.transport.send(WSMsgType.BINARY, b"\x00\x01garbage")
    bad.send_text("[" * 100_000)
    bad.send_text('{"op":"subscribe","args":[' + '"x",' * 5000 + '"y"]}')
    bad.transport.send(WSMsgType.TEXT, b'{"op":', fin=False)
    bad.transport.send(WSMsgType.CONTINUATION, b'"ping","req_id":"frag"}', fin=True)
    bad.transport.send(WSMsgType.CONTINUATION, b"stray", fin=True)
    replies = [await bad.reply() for _ in range(4)]
    assert [r.get("ret_msg", "")[:6] for r in replies[:3]] == ["Failed", "Failed", "error:"]
    assert replies[3]["req_id"] == "frag" and replies[3]["ret_msg"] == "pong"
    bad.transport.send(WSMsgType.TEXT, b"x" * (2 << 20))  # above max_frame_size
    await bad.wait_closed()
    good.drain_data()
    assert (await good.data())["type"] == "delta"
    assert (await good.request({"op": "ping"}))["ret_msg"] == "pong"


async def test_client_close_is_echoed(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    c.transport.send_close(WSCloseCode.GOING_AWAY, b"later")
    await c.wait_closed()
    assert c.listener.close_code == 1001  # the server echoes the client's code
    await until(lambda: emu.connections[0].closed_at is not None)
    assert emu.connections[0].close_reason == "client_close:1001"
