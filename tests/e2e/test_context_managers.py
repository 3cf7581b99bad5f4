"""``async with`` on every client (issue 13, item 10): connected (live) inside, closed after,
also when the block raises."""

from __future__ import annotations

import pytest

from hean.core.bus import EventBus
from hean.core.lifecycle import ConnectionState
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator
from hean.exchange.bybit import BybitPrivateWebSocket, BybitTradeWebSocket
from hean.exchange.bybit.rest import BybitRestClient
from hean.hub import StreamHub
from tests.e2e.conftest import make_ws


async def test_public_private_and_trade_clients_are_async_context_managers(
    bus: EventBus, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    async with ws as entered:
        assert entered is ws and ws.state is ConnectionState.LIVE
    assert ws.state is ConnectionState.CLOSED
    private = BybitPrivateWebSocket(
        bus, api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emulator.url("private")
    )
    with pytest.raises(RuntimeError, match="inside"):
        async with private:
            assert private.state is ConnectionState.LIVE
            assert private.auth_state.status == "authenticated"
            raise RuntimeError("inside")
    assert private.state is ConnectionState.CLOSED
    trade = BybitTradeWebSocket(
        api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emulator.url("trade")
    )
    async with trade:
        assert trade.state is ConnectionState.LIVE
    assert trade.state is ConnectionState.CLOSED
    async with BybitRestClient(
        api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emulator.rest_url()
    ) as rest:
        assert (await rest.server_time()) > 0
    async with StreamHub(bus, urls={"linear": emulator.url("linear")}) as hub:
        consumer = hub.consumer("ctx")
        await consumer.subscribe(["tickers.BTCUSDT"], category="linear", wait=2)
        [conn] = hub.connections("linear")
        assert conn.state is ConnectionState.LIVE
    assert conn.state is ConnectionState.CLOSED
