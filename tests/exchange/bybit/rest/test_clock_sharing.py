"""One ClockOffset shared by the REST client and the private/trade WebSockets."""

from __future__ import annotations

import msgspec

from hean.core.bus import EventBus
from hean.core.clock import ManualClock
from hean.exchange.bybit.protocol.auth import DEFAULT_WINDOW_MS, ClockOffset
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_trade import BybitTradeWebSocket

KEY, SECRET = "shared-key-0001", "shared-secret-0001"


def _expires(frame: bytes) -> int:
    args = msgspec.json.decode(frame)["args"]
    return int(args[1])


def test_private_and_trade_use_the_given_offset() -> None:
    shared = ClockOffset()
    clock = ManualClock()
    private = BybitPrivateWebSocket(
        EventBus(),
        api_key=KEY,
        api_secret=SECRET,
        url="ws://127.0.0.1:9/v5/private",
        clock=clock,
        clock_offset=shared,
    )
    trade = BybitTradeWebSocket(
        api_key=KEY,
        api_secret=SECRET,
        url="ws://127.0.0.1:9/v5/trade",
        clock=clock,
        clock_offset=shared,
    )
    assert private.clock_offset is shared and private.authenticator.offset is shared
    assert trade.clock_offset is shared and trade.authenticator.offset is shared
    assert trade.requests.clock_offset is shared
    now = clock.monotonic()
    before = _expires(private.authenticator.auth_request(now))
    assert before == clock.wall_ms() + DEFAULT_WINDOW_MS
    # a measurement made elsewhere (e.g. REST /v5/market/time): server 7.5 s ahead
    shared.add(7_500.0)
    assert _expires(private.authenticator.auth_request(now)) == before + 7_500
    assert _expires(trade.authenticator.auth_request(now)) == before + 7_500
    assert private.auth_state.clock_offset_ms == 7_500.0


def test_default_is_a_private_offset_per_connection() -> None:
    a = BybitPrivateWebSocket(
        EventBus(), api_key=KEY, api_secret=SECRET, url="ws://127.0.0.1:9/v5/private"
    )
    b = BybitTradeWebSocket(api_key=KEY, api_secret=SECRET, url="ws://127.0.0.1:9/v5/trade")
    assert a.clock_offset is not b.clock_offset
    assert a.authenticator.offset is a.clock_offset
    a.clock_offset.add(100.0)
    assert b.clock_offset.estimate_ms is None
