"""The trade stream (order entry, /v5/trade) is recorded and replayed: what the client sent
(auth masked) and the acks it got are in the recording; a client on the replay that sends the
recorded requests gets the recorded acks by reqId, and a different request is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.ws_trade import BybitTradeWebSocket, TradeError, TradeUnknownOrder
from hean.record import Recorder, RecordingReader, read_records
from hean.replay.server import ReplayServer

ORDER: dict[str, Any] = {
    "category": "linear", "symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit",
    "qty": "0.001", "price": "20000", "time_in_force": "GTC", "order_link_id": "rec-1",
}  # fmt: skip


def trade_client(url: str) -> BybitTradeWebSocket:
    return BybitTradeWebSocket(
        api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=url, req_prefix="t-",
        request_timeout=5.0, connect_timeout=3.0,
    )  # fmt: skip


def summary(response: Any) -> tuple[Any, ...]:
    return (response.req_id, response.op, response.ret_code, response.ret_msg, response.data,
            response.header, response.conn_id)  # fmt: skip


async def session(trade: BybitTradeWebSocket) -> list[tuple[Any, ...]]:
    """Create an order, cancel one that does not exist (refused), cancel the first."""
    out = [summary(await trade.create_order(**ORDER))]
    with pytest.raises(TradeUnknownOrder) as refused:
        await trade.cancel_order(category="linear", symbol="BTCUSDT", order_link_id="nope")
    out.append(summary(refused.value.response))
    out.append(
        summary(await trade.cancel_order(category="linear", symbol="BTCUSDT",
                                         order_link_id="rec-1"))
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[Any], list[str]]:
    import asyncio

    async def run() -> tuple[list[str], list[Any], list[str]]:
        directory: Path = tmp_path_factory.mktemp("trade")
        async with Emulator(EmulatorConfig(ticker_interval=1.0)) as emu:
            trade = trade_client(emu.url("trade"))
            async with Recorder(directory) as rec:
                rec.attach(trade)
                await trade.connect(timeout=3.0)
                live = await session(trade)
                await trade.disconnect()
            signatures = [str(i.last_auth_args[2]) for i in emu.connections if i.last_auth_args]
        return list(rec.stats.files), live, signatures

    return asyncio.run(run())


def test_the_trade_stream_is_recorded_with_the_auth_masked(
    recorded: tuple[list[str], list[Any], list[str]],
) -> None:
    files, live, signatures = recorded
    streams = {s.name: s.endpoint for _, s in RecordingReader(files) if s is not None}
    assert streams == {"trade": "trade"}
    records = read_records(files[0])
    sent = [r.json() for r in records if r.kind == "send"]
    got = [r.json() for r in records if r.kind == "recv"]
    requests = [m for m in sent if m.get("op", "").startswith("order.")]
    assert [(m["op"], m["reqId"]) for m in requests] == [
        ("order.create", "t-1"), ("order.cancel", "t-2"), ("order.cancel", "t-3")
    ]  # fmt: skip
    assert requests[0]["args"][0]["orderLinkId"] == "rec-1"
    assert "X-BAPI-TIMESTAMP" in requests[0]["header"]
    acks = [m for m in got if m.get("op", "").startswith("order.")]
    assert [(m["reqId"], m["retCode"]) for m in acks] == [(r[0], r[2]) for r in live]
    [auth] = [m for m in sent if m.get("op") == "auth"]
    assert auth["args"][0] == auth["args"][2] == "***"
    raw = b"".join(r.payload for r in records)
    for secret in (DEFAULT_API_KEY, DEFAULT_API_SECRET, *signatures):
        assert secret.encode() not in raw


@pytest.mark.parametrize("speed", [None, 1.0])
async def test_recorded_requests_get_the_recorded_acks(
    recorded: tuple[list[str], list[Any], list[str]], speed: float | None
) -> None:
    files, live, _ = recorded
    async with ReplayServer(files, speed=speed, wait=5.0) as server:
        trade = trade_client(server.url("trade"))
        await trade.connect(timeout=3.0)
        replayed = await session(trade)
        # beyond the recording: refused (once the recording has ended)
        with pytest.raises(TradeError) as beyond:
            await trade.create_order(**{**ORDER, "order_link_id": "rec-2"})
        await trade.disconnect()
    assert replayed == live  # the recorded acks, byte for byte (conn ids and headers included)
    assert beyond.value.ret_code == 10001
    assert beyond.value.ret_msg == "replay: no request t-4 in the recording"
    assert server.stats.trade_answered == 3 and server.stats.trade_refused == 1


async def test_a_different_request_under_a_recorded_req_id_is_refused(
    recorded: tuple[list[str], list[Any], list[str]],
) -> None:
    files, _, _ = recorded
    async with ReplayServer(files, speed=None, wait=5.0) as server:
        trade = trade_client(server.url("trade"))
        await trade.connect(timeout=3.0)
        with pytest.raises(TradeError) as differs:
            await trade.create_order(**{**ORDER, "price": "20001"})
        await trade.disconnect()
    assert differs.value.ret_code == 10001 and differs.value.req_id == "t-1"
    assert differs.value.ret_msg == "replay: request t-1 differs from the recorded one: args"
