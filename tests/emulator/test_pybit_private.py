"""Fidelity: pybit 5.17.0's private streams and WebSocketTrading work against the emulator with
only the URL constants patched (protocol.md §9.1)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hean.emulator import Emulator

from .accounts_helpers import KEY, SECRET
from .conftest import running

pybit_ut = pytest.importorskip("pybit.unified_trading")
pybit_trading = pytest.importorskip("pybit._websocket_trading")


@pytest.fixture
def local_pybit() -> Iterator[None]:
    saved = (pybit_ut.PRIVATE_WSS, pybit_trading.TRADE_WSS)
    yield
    pybit_ut.PRIVATE_WSS, pybit_trading.TRADE_WSS = saved


class Inbox:
    """Thread-safe collector of pybit callbacks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[dict[str, Any]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.items.append(message)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.items)


async def in_thread(fn: Callable[[], Any], timeout: float = 15.0) -> Any:
    return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, fn), timeout)


async def _open(emu: Emulator, streams: dict[str, Inbox]) -> tuple[Any, Any]:
    pybit_ut.PRIVATE_WSS = emu.url("private")
    pybit_trading.TRADE_WSS = emu.url("trade")

    def open_private() -> Any:
        ws = pybit_ut.WebSocket(
            testnet=False,
            channel_type="private",
            api_key=KEY,
            api_secret=SECRET,
            ping_interval=1,
            ping_timeout=0.5,
            retries=3,
        )
        ws.order_stream(streams["order"])
        ws.execution_stream(streams["execution"])
        ws.position_stream(streams["position"])
        ws.wallet_stream(streams["wallet"])
        return ws

    def open_trade() -> Any:
        return pybit_ut.WebSocketTrading(
            testnet=False, api_key=KEY, api_secret=SECRET, ping_interval=1, ping_timeout=0.5
        )

    return await in_thread(open_private), await in_thread(open_trade)


@pytest.mark.usefixtures("local_pybit")
async def test_pybit_places_an_order_and_sees_it_on_its_private_streams() -> None:
    async with running(auto_tick=True, ticker_interval=0.05, latency=0.002) as emu:
        streams = {name: Inbox() for name in ("order", "execution", "position", "wallet")}
        ws, trade = await _open(emu, streams)
        try:
            await emu.wait_for(
                lambda: (
                    len(emu.live_connections("private")) == 1
                    and emu.live_connections("private")[0].subscriptions
                    == {"order", "execution", "position", "wallet"}
                ),
                timeout=10,
            )
            [pinfo] = emu.live_connections("private")
            assert pinfo.auth_state == "authenticated"
            acks, errors = Inbox(), Inbox()
            await in_thread(
                lambda: trade.place_order(
                    acks,
                    errors,
                    category="linear",
                    symbol="BTCUSDT",
                    side="Buy",
                    orderType="Market",
                    qty="0.01",
                )
            )
            await emu.wait_for(lambda: acks.snapshot() or errors.snapshot(), timeout=10)
            assert errors.snapshot() == []
            [ack] = acks.snapshot()
            assert ack["retCode"] == 0 and ack["op"] == "order.create"
            order_id = ack["data"]["orderId"]
            await emu.wait_for(
                lambda: (
                    any(
                        o["orderId"] == order_id and o["orderStatus"] == "Filled"
                        for m in streams["order"].snapshot()
                        for o in m["data"]
                    )
                    and any(
                        e["orderId"] == order_id
                        for m in streams["execution"].snapshot()
                        for e in m["data"]
                    )
                    and streams["position"].snapshot()
                    and streams["wallet"].snapshot()
                ),
                timeout=10,
            )
            filled = sum(
                float(e["execQty"])
                for m in streams["execution"].snapshot()
                for e in m["data"]
                if e["orderId"] == order_id
            )
            assert filled == pytest.approx(0.01)
            assert all(m["topic"] == "order" for m in streams["order"].snapshot())
            # a resting order, amended and cancelled through pybit
            bids, _ = emu.book_truth("linear", "BTCUSDT", 1)
            await in_thread(
                lambda: trade.place_order(
                    acks,
                    errors,
                    category="linear",
                    symbol="BTCUSDT",
                    side="Buy",
                    orderType="Limit",
                    qty="0.01",
                    price="1000",
                    orderLinkId="pybit-1",
                )
            )
            await emu.wait_for(lambda: len(acks.snapshot()) == 2, timeout=10)
            await in_thread(
                lambda: trade.amend_order(
                    acks,
                    errors,
                    category="linear",
                    symbol="BTCUSDT",
                    orderLinkId="pybit-1",
                    price="1100",
                )
            )
            await in_thread(
                lambda: trade.cancel_order(
                    acks, errors, category="linear", symbol="BTCUSDT", orderLinkId="pybit-1"
                )
            )
            await emu.wait_for(lambda: len(acks.snapshot()) == 4, timeout=10)
            assert errors.snapshot() == []
            assert emu.account(KEY).open_orders == []
            statuses = [
                (o["price"], o["orderStatus"])
                for m in streams["order"].snapshot()
                for o in m["data"]
                if o["orderLinkId"] == "pybit-1"
            ]
            assert statuses == [("1000", "New"), ("1100", "New"), ("1100", "Cancelled")]
            # heartbeats flowed and nothing reconnected
            await emu.wait_for(
                lambda: pinfo.protocol_pings >= 2 and pinfo.json_pings >= 1, timeout=10
            )
            assert len(emu.connections) == 2 and ws.is_connected() and trade.is_connected()
            del bids
        finally:
            await in_thread(ws.exit)
            await in_thread(trade.exit)


@pytest.mark.usefixtures("local_pybit")
async def test_pybit_error_callback_gets_business_errors() -> None:
    async with running(auto_tick=False, latency=0.002) as emu:
        streams = {name: Inbox() for name in ("order", "execution", "position", "wallet")}
        ws, trade = await _open(emu, streams)
        try:
            acks, errors = Inbox(), Inbox()
            await in_thread(
                lambda: trade.place_order(
                    acks,
                    errors,
                    category="linear",
                    symbol="BTCUSDT",
                    side="Buy",
                    orderType="Limit",
                    qty="1000",
                    price="60000",
                )
            )
            await emu.wait_for(errors.snapshot, timeout=10)
            [error] = errors.snapshot()
            assert error["retCode"] == 110007 and acks.snapshot() == []
        finally:
            await in_thread(ws.exit)
            await in_thread(trade.exit)
