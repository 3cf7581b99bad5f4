"""The private-outage scenario (hean.emulator.rest_scenario): while an account's private link is
down its orders fill, partly fill, are cancelled and are placed by someone else; REST shows all
of it, the dropped private stream none of it."""

from __future__ import annotations

from typing import Any

import pytest
from picows import WSHandshakeError

from hean.emulator import AccountConfig, Emulator, control

from .accounts_helpers import KEY, SECRET, auth_msg, private_client, trade_client
from .conftest import connect, running
from .rest_helpers import get, limit_order, post


async def _setup(emu: Emulator) -> list[str]:
    """A long position (for funding) and five resting buys of five lots each."""
    buy = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market"}
    assert (await post(emu, "/v5/order/create", {**buy, "qty": "0.1"})).code == 0
    bids, _ = emu.book_truth("linear", "BTCUSDT", 1)
    best = float(bids[0][0])
    ids = []
    for i in range(5):
        price = f"{best - 10 * (i + 1):.2f}"
        reply = await post(
            emu, "/v5/order/create", limit_order(price, "0.005", orderLinkId=f"o{i}")
        )
        assert reply.code == 0, reply.body
        ids.append(reply.result["orderId"])
    return ids


def _pushed(ws: Any, topic: str, field: str) -> set[str]:
    return {
        str(item[field]) for m in ws.listener.all_data if m["topic"] == topic for item in m["data"]
    }


async def test_outage_changes_what_rest_shows_and_the_dropped_stream_never_sees() -> None:
    async with running(auto_tick=False) as emu:
        ws = await private_client(emu)
        assert (await ws.subscribe("order", "execution", "position", "wallet"))["success"]
        ids = await _setup(emu)
        await emu.wait_for(lambda: set(ids) <= _pushed(ws, "order", "orderId"))
        [conn] = emu.live_connections("private")
        summary = await emu.private_outage(
            KEY,
            fills=1,
            partial_fills=1,
            cancels=1,
            new_orders=2,
            funding_rate="0.0001",
            seed=7,
            restore=False,
        )
        await ws.wait_closed()
        assert summary.dropped == (conn.conn_id,)
        assert len(summary.filled) == len(summary.partially_filled) == 1
        assert len(summary.cancelled) == 1 and len(summary.placed) == 2
        assert set(summary.filled + summary.partially_filled + summary.cancelled) <= set(ids)
        assert len(summary.funding_exec_ids) == 1
        assert set(summary.funding_exec_ids) < set(summary.exec_ids)
        # none of it reached the private stream that was dropped
        assert not set(summary.exec_ids) & _pushed(ws, "execution", "execId")
        assert not set(summary.placed) & _pushed(ws, "order", "orderId")
        # while down, new private connections are refused; public and trade are not
        with pytest.raises(WSHandshakeError) as refused:
            await connect(emu, "private")
        assert refused.value.response is not None and refused.value.response.status == 503
        await connect(emu, "linear")
        await connect(emu, "trade")
        # REST shows all of it
        expected = {
            summary.filled[0]: "Filled",
            summary.partially_filled[0]: "PartiallyFilled",
            summary.cancelled[0]: "Cancelled",
            summary.placed[0]: "New",
            summary.placed[1]: "New",
        }
        assert summary.statuses == expected
        for order_id, status in expected.items():
            reply = await get(emu, "/v5/order/realtime", f"category=linear&orderId={order_id}")
            [item] = reply.result["list"]
            assert item["orderStatus"] == status
        [partial] = (
            await get(
                emu, "/v5/order/realtime", f"category=linear&orderId={summary.partially_filled[0]}"
            )
        ).result["list"]
        assert (partial["cumExecQty"], partial["leavesQty"]) == ("0.002", "0.003")
        listed = await get(emu, "/v5/execution/list", "category=linear&limit=100")
        assert set(summary.exec_ids) <= {e["execId"] for e in listed.result["list"]}
        funding = await get(emu, "/v5/execution/list", "category=linear&execType=Funding")
        assert [e["execId"] for e in funding.result["list"]] == list(summary.funding_exec_ids)
        truth = emu.account(KEY)
        opened = await get(emu, "/v5/order/realtime", "category=linear&settleCoin=USDT")
        assert {o["orderId"] for o in opened.result["list"]} == {
            o["orderId"] for o in truth.open_orders
        }
        [pos] = (await get(emu, "/v5/position/list", "category=linear&symbol=BTCUSDT")).result[
            "list"
        ]
        true_pos = truth.position("linear", "BTCUSDT")
        assert (
            true_pos is not None and pos["size"] == true_pos["size"] == "0.107"
        )  # 0.1 + 0.005 + 0.002
        wallet = await get(emu, "/v5/account/wallet-balance", "accountType=UNIFIED&coin=USDT")
        assert wallet.result["list"][0]["coin"][0]["walletBalance"] == truth.balances["USDT"]
        # the link comes back: a new private connection authenticates again
        emu.private_link_up(KEY)
        again = await private_client(emu)
        assert (await again.subscribe("order"))["success"]
        again.close()


async def test_auth_mode_and_context_manager_and_determinism() -> None:
    summaries = []
    for _ in range(2):
        async with running(auto_tick=False) as emu:
            await _setup(emu)
            summaries.append(
                emu.outage_events(KEY, fills=2, partial_fills=1, cancels=1, new_orders=1, seed=3)
            )
    assert summaries[0] == summaries[1]  # same seed, same story
    async with running(auto_tick=False) as emu:
        ws = await private_client(emu)
        async with emu.private_link_lost(KEY, mode="auth") as dropped:
            assert len(dropped) == 1
            await ws.wait_closed()
            c = await connect(emu, "private")  # the upgrade works ...
            c.send_json(auth_msg(emu))
            await c.wait_closed()  # ... an auth with the key is dropped
            assert emu.private_link_is_down(KEY)
        assert not emu.private_link_is_down(KEY)
        again = await private_client(emu)
        again.close()


async def test_control_endpoints_for_outage_link_funding_and_failures() -> None:
    async with running(auto_tick=False) as emu:
        ids = await _setup(emu)
        code, reply = control.handle(
            emu,
            f"/control/outage?key={KEY}&fills=1&partial_fills=0&cancels=2&new_orders=0"
            "&funding_rate=0.0002&seed=1&hold=0",
        )
        assert code == 200, reply
        result = reply["result"]
        assert len(result["filled"]) == 1 and len(result["cancelled"]) == 2
        assert set(result["cancelled"]) <= set(ids) and len(result["funding_exec_ids"]) == 1
        assert not emu.private_link_is_down(KEY)  # restored at once (hold=0)
        code, reply = control.handle(emu, f"/control/link?key={KEY}&state=down&mode=auth")
        assert code == 200 and emu.private_link_is_down(KEY)
        control.handle(emu, f"/control/link?key={KEY}&state=up")
        assert not emu.private_link_is_down(KEY)
        code, reply = control.handle(
            emu, f"/control/funding?key={KEY}&category=linear&symbol=BTCUSDT&rate=0.0001"
        )
        assert code == 200 and len(reply["result"]) == 1
        code, reply = control.handle(
            emu, "/control/rest_fail?kind=code&code=10006&reset_header=false&path=/v5/order/create"
        )
        assert code == 200 and reply["result"] == 1
        control.handle(emu, "/control/rest_fail?kind=http&status=503")
        control.handle(emu, "/control/rest_fail?kind=delay&seconds=0.01")
        control.handle(emu, "/control/rest_fail?kind=batch&items=0,1")
        code, reply = control.handle(emu, "/control/rest")
        assert reply["result"]["url"] == emu.rest_url() and len(reply["result"]["failures"]) == 4
        code, reply = control.handle(emu, "/control/rest_fail?kind=nope")
        assert code == 400
        code, reply = control.handle(emu, "/control/rest_fail?clear=true")
        assert reply["result"] == 4 and emu.pending_rest_failures() == []
        code, reply = control.handle(emu, "/control/outage?key=nobody")
        assert code == 404


async def test_outage_without_the_rest_server() -> None:
    async with running(auto_tick=False, rest=False) as emu:
        with pytest.raises(RuntimeError):
            emu.rest_url()
        placed = emu.trading.execute(emu.trading.by_key(KEY), "order.create", limit_order())
        assert placed.code == 0
        summary = emu.outage_events(KEY, fills=0, partial_fills=0, cancels=1, new_orders=1)
        assert summary.cancelled == (placed.data["orderId"],)
        assert sorted(summary.statuses.values()) == ["Cancelled", "New"]


@pytest.mark.parametrize(
    "bad",
    [
        "fills=x",
        "partial_fills=1.5",
        "cancels=-1",
        "new_orders=",
        "seed=s",
        "hold=-1",
        "hold=soon",
        "mode=nope",
        "unknown=1",
    ],
)
async def test_control_outage_checks_every_parameter_before_the_link_goes_down(bad: str) -> None:
    async with running(auto_tick=False) as emu:
        ws = await private_client(emu)
        code, reply = control.handle(emu, f"/control/outage?key={KEY}&{bad}")
        assert code == 400 and not reply["ok"], reply
        assert not emu.private_link_is_down(KEY)
        assert emu.live_connections("private")  # nothing was dropped either
        assert (await ws.subscribe("order"))["success"]
        ws.close()


async def test_control_outage_holds_the_link_down_for_hold_seconds() -> None:
    async with running(auto_tick=False) as emu:
        await _setup(emu)
        start = emu.clock.monotonic()
        code, reply = control.handle(
            emu,
            f"/control/outage?key={KEY}&fills=0&partial_fills=0&cancels=1&new_orders=0&hold=0.2",
        )
        assert code == 200 and len(reply["result"]["cancelled"]) == 1, reply
        assert emu.private_link_is_down(KEY)  # still down: held
        with pytest.raises(WSHandshakeError):
            await connect(emu, "private")
        await emu.wait_for(lambda: not emu.private_link_is_down(KEY), timeout=5)
        assert emu.clock.monotonic() - start >= 0.2
        again = await private_client(emu)
        again.close()
        # restore=false: stays down until told
        code, reply = control.handle(
            emu,
            f"/control/outage?key={KEY}&fills=0&partial_fills=0&cancels=0&new_orders=0"
            "&restore=false",
        )
        assert code == 200 and emu.private_link_is_down(KEY)


async def test_auth_mode_refuses_the_key_before_authenticating_it() -> None:
    """A down link (mode="auth") is judged with the auth: no session is attached, the auth log
    says ``link_down``; other keys on /v5/private and the key on /v5/trade authenticate."""
    other = AccountConfig(api_key="OTHERKEY", api_secret="OTHERSECRET")
    mine = AccountConfig(api_key=KEY, api_secret=SECRET)
    async with running(auto_tick=False, accounts=(mine, other)) as emu:
        attached: list[str] = []
        attach = emu.trading.attach

        def spy(session: Any, account: Any) -> None:
            attached.append(account.api_key)
            attach(session, account)

        emu.trading.attach = spy  # type: ignore[method-assign]
        emu.private_link_down(KEY, mode="auth")
        c = await connect(emu, "private")
        c.send_json(auth_msg(emu))
        await c.wait_closed()  # dropped instead of a reply
        assert attached == []
        assert emu.auth_log[-1].api_key == KEY and emu.auth_log[-1].result == "link_down"
        [info] = [i for i in emu.connections if i.category == "private"]
        assert info.auth_state != "authenticated" and info.last_auth_result == "link_down"
        # another key authenticates on /v5/private; the key itself on /v5/trade
        c2 = await connect(emu, "private")
        reply = await c2.request(auth_msg(emu, key="OTHERKEY", secret="OTHERSECRET"))
        assert reply["success"] is True, reply
        assert (await c2.subscribe("order"))["success"]
        trade = await trade_client(emu)
        assert attached == ["OTHERKEY", KEY]
        assert [r.result for r in emu.auth_log] == ["link_down", "ok", "ok"]
        c2.close()
        trade.close()
        emu.private_link_up(KEY)
        again = await private_client(emu)
        again.close()
