"""Replies to client ops, per endpoint, checked against captured Bybit messages."""

from __future__ import annotations

import time

import pytest

from hean.emulator import Emulator

from .conftest import connect, example, same_shape, until


@pytest.mark.parametrize("category", ["linear", "inverse"])
async def test_pong_linear_inverse(emu: Emulator, category: str) -> None:
    c = await connect(emu, category)
    pong = await c.request({"op": "ping"})
    same_shape(pong, example("pong_public.json"))
    assert pong["req_id"] == "" and pong["ret_msg"] == "pong" and pong["op"] == "ping"
    assert pong["success"] is True
    [info] = emu.live_connections(category)
    assert pong["conn_id"] == info.conn_id
    pong = await c.request({"req_id": "ping-pp", "op": "ping"})
    same_shape(pong, example("pong_public_with_req_id.json"))
    assert pong["req_id"] == "ping-pp"
    assert list(pong) == ["success", "ret_msg", "conn_id", "req_id", "op"]


async def test_pong_spot(emu: Emulator) -> None:
    c = await connect(emu, "spot")
    pong = await c.request({"op": "ping"})
    same_shape(pong, example("pong_public_spot.json"))
    assert "req_id" not in pong and pong["ret_msg"] == "pong" and pong["op"] == "ping"
    pong = await c.request({"op": "ping", "req_id": "100001"})
    assert pong["req_id"] == "100001"


async def test_pong_option(emu: Emulator) -> None:
    c = await connect(emu, "option")
    pong = await c.request({"op": "ping"})
    same_shape(pong, example("pong_public_option.json"))
    assert pong["op"] == "pong"
    assert abs(int(pong["args"][0]) - time.time() * 1000) < 60_000


async def test_req_id_echoed_verbatim(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    for req_id in ("a b/ü", "", "0" * 64):
        assert (await c.request({"op": "ping", "req_id": req_id}))["req_id"] == req_id
    ack = await c.subscribe("tickers.BTCUSDT", req_id="7fe03a9c-ab")
    assert ack["req_id"] == "7fe03a9c-ab"


async def test_subscribe_ok_linear(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    ack = await c.subscribe("tickers.BTCUSDT")
    same_shape(ack, example("subscribe_ok.json"))
    assert ack["success"] is True and ack["ret_msg"] == "" and ack["req_id"] == ""
    assert ack["op"] == "subscribe"
    assert list(ack) == ["success", "ret_msg", "conn_id", "req_id", "op"]


async def test_subscribe_ok_spot(emu: Emulator) -> None:
    c = await connect(emu, "spot")
    ack = await c.subscribe("tickers.BTCUSDT", req_id="10001")
    same_shape(ack, example("subscribe_ok_spot.json"))
    assert ack["ret_msg"] == "subscribe" and ack["req_id"] == "10001"
    ack = await c.subscribe("tickers.ETHUSDT")
    assert "req_id" not in ack and ack["success"] is True


async def test_subscribe_option_command_resp(emu: Emulator) -> None:
    c = await connect(emu, "option")
    ack = await c.subscribe("tickers.BTC-6JAN23-18000-C", "orderbook.100.BTC-6JAN23-18000-C")
    # no option market data yet: every topic is refused, per topic
    expected = example("subscribe_ok_option.json")
    assert set(ack) == set(expected) and ack["type"] == "COMMAND_RESP"
    assert ack["success"] is False
    assert ack["data"] == {
        "failTopics": ["tickers.BTC-6JAN23-18000-C", "orderbook.100.BTC-6JAN23-18000-C"],
        "successTopics": [],
    }
    ack = await c.subscribe()
    same_shape(ack, expected)
    assert ack["success"] is True


async def test_unknown_topic_linear(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    ack = await c.subscribe("orderbook.50.NOPEUSDT", req_id="e1")
    same_shape(ack, example("subscribe_fail.json"))
    assert ack["success"] is False
    assert ack["ret_msg"] == "error:handler not found,topic:orderbook.50.NOPEUSDT"
    ack = await c.subscribe("tickers.btcusdt")  # topics are case-sensitive
    assert ack["ret_msg"] == "error:handler not found,topic:tickers.btcusdt"


async def test_already_subscribed(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    assert (await c.subscribe("tickers.ETHUSDT"))["success"] is True
    ack = await c.subscribe("tickers.ETHUSDT", req_id="e6")
    same_shape(ack, example("subscribe_fail_already_subscribed.json"))
    assert ack["ret_msg"] == "error:already subscribed,topic:tickers.ETHUSDT"
    # the same topic twice in one request
    ack = await c.subscribe("tickers.SOLUSDT", "tickers.SOLUSDT")
    assert ack["ret_msg"] == "error:already subscribed,topic:tickers.SOLUSDT"


async def test_spot_args_limit_and_invalid_symbol(emu: Emulator) -> None:
    c = await connect(emu, "spot")
    ack = await c.subscribe(*[f"tickers.X{i}USDT" for i in range(11)])
    same_shape(ack, example("subscribe_fail_spot_args.json"))
    assert ack["ret_msg"] == "args size >10" and "req_id" not in ack
    ack = await c.subscribe("tickers.NOPEUSDT")
    assert ack["success"] is False and ack["ret_msg"] == "Invalid symbol :[tickers.NOPEUSDT]"
    ten = ["tickers.BTCUSDT"] + [f"tickers.NOPE{i}USDT" for i in range(9)]
    ack = await c.subscribe(*ten)
    assert ack["ret_msg"] == "Invalid symbol :[tickers.NOPE0USDT]"


async def test_one_bad_topic_fails_whole_request(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    ack = await c.subscribe("tickers.BTCUSDT", "tickers.NOPE", "tickers.ALSO_BAD", req_id="x")
    assert ack["success"] is False
    assert ack["ret_msg"] == "error:handler not found,topic:tickers.NOPE"
    [info] = emu.live_connections("linear")
    assert info.subscriptions == set()
    emu.tick("linear", steps=3)
    await c.no_reply(0.05)
    assert c.drain_data() == []
    assert (await c.subscribe("tickers.BTCUSDT"))["success"] is True


async def test_one_ack_per_request(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    topics = [f"tickers.{s}" for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")]
    ack = await c.subscribe(*topics, req_id="seven")
    assert ack["success"] is True
    snapshots = [await c.data() for _ in topics]
    assert [m["topic"] for m in snapshots] == topics
    assert all(m["type"] == "snapshot" for m in snapshots)
    await c.no_reply()


async def test_unsubscribe(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    await c.subscribe("tickers.BTCUSDT")
    await c.data()
    ack = await c.request({"op": "unsubscribe", "args": ["tickers.BTCUSDT"], "req_id": "3"})
    same_shape(ack, example("unsubscribe_ok.json"))
    assert ack["success"] is True and ack["op"] == "unsubscribe" and ack["req_id"] == "3"
    emu.tick("linear", steps=3)
    await c.no_reply(0.05)
    assert c.drain_data() == []
    # subscribing again starts with a snapshot
    await c.subscribe("tickers.BTCUSDT")
    assert (await c.data())["type"] == "snapshot"
    s = await connect(emu, "spot")
    await s.subscribe("tickers.BTCUSDT")
    ack = await s.request({"op": "unsubscribe", "args": ["tickers.BTCUSDT"]})
    assert ack["ret_msg"] == "unsubscribe" and ack["success"] is True


@pytest.mark.parametrize("category", ["linear", "spot", "option"])
async def test_unknown_op_and_garbage_keep_socket_open(emu: Emulator, category: str) -> None:
    c = await connect(emu, category)
    bad = await c.request({"op": "dance", "req_id": "r"})
    assert bad["success"] is False and bad["ret_msg"] == "error:invalid op" and bad["op"] == "dance"
    c.send_text("hello")
    reply = await c.reply()
    assert reply["success"] is False and reply["op"] == ""
    assert reply["ret_msg"].startswith(
        "Failed to decode incoming data:readObjectStart: expect { or n, but found h"
    )
    assert set(reply) == {"success", "ret_msg", "conn_id", "op"}
    for junk in ("[1,2]", '{"op":', '{"op": 5}', '{"op":"subscribe","args":"tickers.X"}', " "):
        c.send_text(junk)
        reply = await c.reply()
        assert reply["success"] is False and reply["ret_msg"].startswith("Failed to decode")
    c.send_text(b"\xff\xfe\x00")
    assert (await c.reply())["success"] is False
    pong = await c.request({"op": "ping"})
    assert pong.get("ret_msg") == "pong" or pong.get("op") == "pong"
    assert emu.live_connections(category)


async def test_frames_processed_in_order(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    for i in range(50):
        c.send_json({"op": "ping", "req_id": f"p{i}"})
        c.send_json({"op": "subscribe", "req_id": f"s{i}", "args": [f"tickers.NOPE{i}"]})
    got = [(await c.reply())["req_id"] for _ in range(100)]
    assert got == [x for i in range(50) for x in (f"p{i}", f"s{i}")]


async def test_latency_keeps_order(emu: Emulator) -> None:
    from .conftest import running

    async with running(auto_tick=False, latency=0.02) as slow:
        c = await connect(slow, "linear")
        t0 = time.monotonic()
        c.send_json({"op": "subscribe", "req_id": "s", "args": ["tickers.BTCUSDT"]})
        c.send_json({"op": "ping", "req_id": "p"})
        ack = await c.reply()
        assert time.monotonic() - t0 >= 0.015
        snap = await c.data()
        pong = await c.reply()
        assert ack["req_id"] == "s" and snap["type"] == "snapshot" and pong["req_id"] == "p"


async def test_counters(emu: Emulator) -> None:
    c = await connect(emu, "linear")
    await c.request({"op": "ping"})
    c.ping_frame(b"x")
    await c.pong()
    await c.subscribe("tickers.BTCUSDT")
    await c.data()
    emu.tick("linear", steps=4)
    for _ in range(4):
        await c.data()
    [info] = emu.live_connections("linear")
    assert info.json_pings == 1 and info.protocol_pings == 1
    assert info.frames_received == 3
    assert info.frames_sent == 7  # pong, ack, snapshot, 4 deltas (pong frames not counted)
    assert emu.sent_by_topic(info.conn_id) == {"tickers.BTCUSDT": 5}
    c.close()
    await until(lambda: info.closed_at is not None)
    events = [e for _, e, cid, _ in emu.connection_log if cid in (None, info.conn_id)]
    assert events == ["attempt", "accept", "close"]
    assert emu.connections == [info] and emu.live_connections() == []


async def test_unsubscribe_request_fixture(emu: Emulator) -> None:
    request = example("unsubscribe_request.json")
    [topic] = request["args"]
    assert topic == "publicTrade.ETHUSD"  # an inverse symbol
    c = await connect(emu, "inverse")
    assert (await c.subscribe(topic, req_id="s"))["success"] is True
    [info] = emu.live_connections("inverse")
    assert info.subscriptions == {topic}
    ack = await c.request(request)
    same_shape(ack, example("unsubscribe_ok.json"))
    assert ack == {
        "success": True,
        "ret_msg": "",
        "conn_id": info.conn_id,
        "req_id": "customised_id",
        "op": "unsubscribe",
    }
    assert info.subscriptions == set()
    emu.tick("inverse", steps=3)
    await c.no_reply(0.05)
    c.drain_data()
    emu.tick("inverse", steps=3)
    await c.no_reply(0.05)
    assert c.drain_data() == []
