"""``/v5/private``: pongs, auth, subscribe rules, max_active_time, idle cut-off, faults."""

from __future__ import annotations

import asyncio
import time

import pytest
from picows import WSHandshakeError, ws_connect

from hean.emulator import AccountConfig, Emulator, Faults, shapes

from .accounts_helpers import KEY, SECRET, auth_msg, private_client, signature
from .conftest import RawListener, connect, example, running, same_shape


async def test_private_pong_shapes(emu: Emulator) -> None:
    c = await connect(emu, "private")
    before = emu.server_time_ms()
    bare = await c.request({"op": "ping"})
    assert list(bare) == ["op", "args", "conn_id"]  # no req_id when none was sent
    assert bare["op"] == "pong" and int(bare["args"][0]) >= before
    with_id = await c.request({"req_id": "test", "op": "ping"})
    same_shape(with_id, example("pong_private.json"))
    assert next(iter(with_id)) == "req_id" and with_id["req_id"] == "test"
    [info] = emu.live_connections("private")
    assert with_id["conn_id"] == info.conn_id and info.json_pings == 2
    assert info.auth_state == "none"


async def test_auth_success_shapes_and_state(emu: Emulator) -> None:
    c = await connect(emu, "private")
    reply = await c.request(auth_msg(emu))
    same_shape(reply, example("auth_ok.json"))
    assert reply["success"] is True and reply["ret_msg"] == ""
    [info] = emu.live_connections("private")
    assert info.auth_state == "authenticated" and info.api_key == KEY
    assert info.auth_attempts == 1 and info.last_auth_result == "ok"
    # the auth request as sent is kept (for tests), e.g. the signature
    assert info.last_auth_args is not None and len(info.last_auth_args) == 3
    # expires as a string of digits, and req_id echoed first
    c2 = await connect(emu, "private")
    reply = await c2.request(auth_msg(emu, as_string=True, req_id="a-1"))
    assert list(reply) == ["req_id", "success", "ret_msg", "op", "conn_id"]
    assert reply["req_id"] == "a-1" and reply["success"] is True
    # a second auth on an authenticated connection
    again = await c2.request(auth_msg(emu))
    assert again["success"] is False and again["ret_msg"] == shapes.REPEAT_AUTH_TEXT
    assert [r.result for r in emu.auth_log] == ["ok", "ok", "repeat"]
    assert emu.auth_attempts(KEY) == 3


@pytest.mark.parametrize(
    ("kwargs", "text", "result"),
    [
        ({"ahead_ms": -1}, shapes.PARAMS_ERROR_TEXT, "expired"),
        ({"ahead_ms": 0}, shapes.PARAMS_ERROR_TEXT, "expired"),
        ({"secret": SECRET + "x"}, shapes.INVALID_SIGN_TEXT, "bad_signature"),
        ({"key": "no-such-key"}, shapes.INVALID_KEY_TEXT, "bad_key"),
    ],
)
async def test_auth_failures(
    emu: Emulator, kwargs: dict[str, object], text: str, result: str
) -> None:
    c = await connect(emu, "private")
    reply = await c.request(auth_msg(emu, **kwargs))  # type: ignore[arg-type]
    same_shape(reply, example("auth_fail.json"))
    assert reply["success"] is False and reply["ret_msg"] == text
    [info] = emu.live_connections("private")
    assert info.auth_state == "failed" and info.api_key is None
    assert info.last_auth_result == result and emu.auth_log[-1].result == result
    # still open, and a correct auth afterwards works
    assert (await c.request(auth_msg(emu)))["success"] is True


async def test_malformed_auth_args(emu: Emulator) -> None:
    c = await connect(emu, "private")
    expires = emu.server_time_ms() + 10_000
    for args in (
        None,
        [KEY],
        [KEY, expires, signature(SECRET, expires), "x"],
        [KEY, float(expires), signature(SECRET, expires)],
        [KEY, "12ab", signature(SECRET, expires)],
        [KEY, True, signature(SECRET, expires)],
    ):
        reply = await c.request({"op": "auth", "args": args})
        assert reply["success"] is False and reply["ret_msg"] == shapes.PARAMS_ERROR_TEXT
    assert {r.result for r in emu.auth_log} == {"params"}


async def test_clock_skew_knob(emu: Emulator) -> None:
    c = await connect(emu, "private")
    expires = emu.clock.wall_ms() + 10_000  # a client whose clock is 15 s behind the server
    emu.set_clock_skew(15_000)
    msg = {"op": "auth", "args": [KEY, expires, signature(SECRET, expires)]}
    reply = await c.request(msg)
    assert reply["success"] is False and reply["ret_msg"] == shapes.PARAMS_ERROR_TEXT
    # the pong tells the client how far off it is
    pong = await c.request({"op": "ping"})
    offset = int(pong["args"][0]) - emu.clock.wall_ms()
    assert 14_000 < offset < 16_000
    expires = emu.clock.wall_ms() + offset + 10_000
    msg = {"op": "auth", "args": [KEY, expires, signature(SECRET, expires)]}
    assert (await c.request(msg))["success"] is True
    with pytest.raises(ValueError, match="int"):
        emu.set_clock_skew(1.5)  # type: ignore[arg-type]


async def test_subscribe_rules(emu: Emulator) -> None:
    c = await connect(emu, "private")
    early = await c.subscribe("order", req_id="s0")
    assert early["success"] is False and early["ret_msg"] == shapes.NOT_AUTHORIZED_TEXT
    assert (await c.request(auth_msg(emu)))["success"] is True
    ok = await c.request({"op": "subscribe", "args": ["order"]})
    same_shape(ok, example("subscribe_ok_private.json"))
    assert ok["success"] is True and ok["ret_msg"] == "" and "req_id" not in ok
    ok = await c.subscribe("wallet", "execution.fast.linear", "position.inverse", req_id="s1")
    assert list(ok) == ["req_id", "success", "ret_msg", "op", "conn_id"]
    assert ok["req_id"] == "s1" and ok["success"] is True
    [info] = emu.live_connections("private")
    assert info.subscriptions == {"order", "wallet", "execution.fast.linear", "position.inverse"}
    # all-in-one and categorised form of one stream in one request: the request fails
    mixed = await c.subscribe("execution", "execution.linear", req_id="s2")
    assert mixed["success"] is False and mixed["ret_msg"] == shapes.PRIVATE_TOPIC_ERROR_TEXT
    # in separate requests they are allowed (each gets its own pushes)
    assert (await c.subscribe("order.linear"))["success"] is True
    # public and unknown topics fail the whole request
    for bad in ("tickers.BTCUSDT", "orderbook.50.BTCUSDT", "order.spread", "position.spot", "x"):
        reply = await c.subscribe("execution", bad)
        assert reply["success"] is False and reply["ret_msg"] == shapes.PRIVATE_TOPIC_ERROR_TEXT
    dup = await c.subscribe("order")
    assert dup["success"] is False and dup["ret_msg"] == "error:already subscribed,topic:order"
    assert "execution" not in info.subscriptions
    un = await c.request({"op": "unsubscribe", "args": ["order", "never"], "req_id": "u1"})
    assert un == {
        "req_id": "u1",
        "success": True,
        "ret_msg": "",
        "op": "unsubscribe",
        "conn_id": info.conn_id,
    }
    assert "order" not in info.subscriptions
    # greeks and dcp are accepted (no pushes from the emulator)
    assert (await c.subscribe("greeks", "dcp.future"))["success"] is True
    bad_op = await c.request({"op": "nope", "req_id": "n"})
    assert bad_op["success"] is False and bad_op["ret_msg"] == "error:invalid op"
    assert c.listener.all_data == []  # no snapshot of any private topic on subscribe


async def test_max_active_time_is_validated(emu: Emulator) -> None:
    for bad in ("29s", "601s", "11m", "0m", "1h", "abc", "", "30"):
        with pytest.raises(WSHandshakeError) as err:
            await ws_connect(RawListener, emu.url("private", max_active_time=bad))
        assert err.value.response is not None and err.value.response.status == 400
    assert emu.connection_log[-1][1] == "reject"
    for good, seconds in (("30s", 30.0), ("600s", 600.0), ("1m", 60.0), ("10m", 600.0)):
        await ws_connect(RawListener, emu.url("trade", max_active_time=good))
        info = emu.connections[-1]
        assert info.category == "trade" and info.max_active_time == seconds
    with pytest.raises(ValueError, match="private and trade"):
        emu.url("linear", max_active_time="1m")
    with pytest.raises(ValueError, match="unknown category"):
        emu.url("spread")


async def test_idle_cut_off_without_pings_or_data() -> None:
    async with running(auto_tick=False, private_idle_timeout=0.3) as emu:
        quiet = await private_client(emu)
        talker = await private_client(emu)
        for _ in range(8):  # pings keep a connection alive
            await talker.request({"op": "ping"})
            await asyncio.sleep(0.08)
        await quiet.wait_closed(1.0)
        assert quiet.listener.close_code is None  # TCP close without a close frame
        info = emu.connection(emu.connections[0].conn_id)
        assert info.close_reason == "idle_timeout" and info.closed_at is not None
        # cut 0.3 s after the last frame it was sent (its auth reply), give or take a scan
        assert 0.3 <= info.closed_at - info.last_data_at < 0.45
        assert [i.conn_id for i in emu.live_connections("private")] == [emu.connections[1].conn_id]


async def test_pushed_data_counts_as_activity() -> None:
    async with running(auto_tick=False, private_idle_timeout=0.3) as emu:
        c = await private_client(emu)
        await c.subscribe("wallet")
        for i in range(8):  # wallet pushes (no pings) keep it alive
            emu.set_balance(KEY, "USDT", 1000 + i)
            await asyncio.sleep(0.08)
        assert len(emu.live_connections("private")) == 1
        await c.wait_closed(1.0)


async def test_max_active_time_and_fault_override() -> None:
    async with running(auto_tick=False, max_active_time_scale=0.01) as emu:
        # "30s" scaled: 0.3 s
        from picows import ws_connect as _connect

        _, slow = await _connect(RawListener, emu.url("private", max_active_time="30s"))
        started = time.monotonic()
        await asyncio.wait_for(slow.disconnected.wait(), 2.0)
        assert 0.25 < time.monotonic() - started < 1.0
        # the idle_timeout fault overrides max_active_time
        await _connect(RawListener, emu.url("trade", max_active_time="30s"))
        conn_id = emu.connections[-1].conn_id
        emu.set_faults(conn_id, idle_timeout=float("inf"))
        await asyncio.sleep(0.6)
        assert emu.connection(conn_id).is_open


async def test_drop_close_reset_work_on_private_and_trade(emu: Emulator) -> None:
    p = await private_client(emu)
    t = await connect(emu, "trade")
    p_id, t_id = (i.conn_id for i in emu.live_connections())
    assert emu.drop_connections(p_id) == 1
    await p.wait_closed()
    assert p.listener.close_code is None
    assert emu.close_connections(1001, "bye", conn_id=t_id) == 1
    await t.wait_closed()
    assert t.listener.close_code == 1001
    r = await connect(emu, "trade")
    assert emu.reset_connections(emu.live_connections("trade")[0].conn_id) == 1
    await r.wait_closed()
    assert emu.connection(p_id).close_reason == "dropped"


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("expired", shapes.PARAMS_ERROR_TEXT),
        ("bad_key", shapes.INVALID_KEY_TEXT),
        ("bad_signature", shapes.INVALID_SIGN_TEXT),
        ("too_many_sessions", shapes.TOO_MANY_SESSIONS_TEXT),
    ],
)
async def test_auth_reject_fault(emu: Emulator, reason: str, text: str) -> None:
    emu.set_faults(auth_reject=reason)
    c = await connect(emu, "private")
    reply = await c.request(auth_msg(emu))
    assert reply["success"] is False and reply["ret_msg"] == text
    emu.set_faults(auth_reject=None)
    assert (await c.request(auth_msg(emu)))["success"] is True


async def test_auth_reject_fault_per_connection_and_validation(emu: Emulator) -> None:
    a = await connect(emu, "private")
    b = await connect(emu, "private")
    a_id = emu.live_connections()[0].conn_id
    emu.set_faults(a_id, auth_reject="bad_signature")
    assert (await a.request(auth_msg(emu)))["success"] is False
    assert (await b.request(auth_msg(emu)))["success"] is True
    with pytest.raises(ValueError, match="auth_reject"):
        emu.set_faults(auth_reject="nope")
    with pytest.raises(ValueError, match="ack_delay"):
        emu.set_faults(ack_delay=-1)


async def test_ignore_json_ping_on_private(emu: Emulator) -> None:
    c = await private_client(emu)
    emu.set_faults(emu.live_connections()[0].conn_id, ignore_json_ping=True)
    c.send_json({"op": "ping"})
    await c.no_reply(0.1)
    c.ping_frame(b"x")
    assert await c.pong() == b"x"  # protocol pings are still answered


async def test_configured_accounts_and_runtime_account() -> None:
    accounts = (
        AccountConfig(api_key="k-one", api_secret="s-one", balances={"USDT": "5"}),
        AccountConfig(api_key="k-two", api_secret="s-two", uid=42),
    )
    async with running(auto_tick=False, accounts=accounts) as emu:
        c = await connect(emu, "private")
        reply = await c.request(auth_msg(emu))  # the default pair is not there
        assert reply["ret_msg"] == shapes.INVALID_KEY_TEXT
        reply = await c.request(auth_msg(emu, key="k-two", secret="s-two"))
        assert reply["success"] is True
        assert emu.account("k-one").balances == {"USDT": "5"}
        assert emu.account("k-two").uid == 42
        view = emu.add_account(AccountConfig(api_key="k-3", api_secret="s-3"))
        assert view.balances["USDT"] == "100000"
        with pytest.raises(ValueError, match="exists"):
            emu.add_account(AccountConfig(api_key="k-3", api_secret="x"))
        with pytest.raises(KeyError):
            emu.account("nobody")
        assert "s-one" not in repr(accounts[0])


def test_account_config_validation() -> None:
    from hean.emulator import EmulatorConfig

    with pytest.raises(ValueError, match="api_key"):
        AccountConfig(api_key="")
    with pytest.raises(ValueError, match="coin"):
        AccountConfig(balances={"usdt": "1"})
    with pytest.raises(ValueError, match=">= 0"):
        AccountConfig(balances={"USDT": "-1"})
    with pytest.raises(ValueError, match="leverage"):
        AccountConfig(leverage=0)
    with pytest.raises(ValueError, match="share an API key"):
        EmulatorConfig(accounts=(AccountConfig(), AccountConfig()))
    with pytest.raises(ValueError, match="ack_latency"):
        EmulatorConfig(ack_latency=-1)
    with pytest.raises(ValueError, match="trade_rate_limit"):
        EmulatorConfig(trade_rate_limit=0)
    assert EmulatorConfig().account_configs[0].api_key == KEY
    assert Faults(auth_reject="expired").copy().auth_reject == "expired"
