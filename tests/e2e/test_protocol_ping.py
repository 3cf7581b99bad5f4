"""The shell answers RFC 6455 ping frames from the server with pong frames (same payload)."""

from __future__ import annotations

import asyncio

import picows

from hean.core.bus import EventBus
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from tests.e2e.conftest import FAST_BACKOFF


class _Pinger(picows.WSListener):
    def __init__(self, pongs: asyncio.Queue[bytes]) -> None:
        self.pongs = pongs

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        transport.send_ping(b"are-you-there")

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type is picows.WSMsgType.PONG:
            self.pongs.put_nowait(frame.get_payload_as_bytes())


async def test_server_ping_frames_are_answered(bus: EventBus) -> None:
    pongs: asyncio.Queue[bytes] = asyncio.Queue()
    server = await picows.ws_create_server(
        lambda request: _Pinger(pongs), "127.0.0.1", 0, enable_auto_pong=True
    )
    port = server.sockets[0].getsockname()[1]
    ws = BybitPublicWebSocket(
        bus, "linear", url=f"ws://127.0.0.1:{port}/v5/public/linear", backoff=FAST_BACKOFF
    )
    try:
        await ws.connect(timeout=2)
        assert await asyncio.wait_for(pongs.get(), 2) == b"are-you-there"
    finally:
        await ws.disconnect()
        server.close()
        await server.wait_closed()
