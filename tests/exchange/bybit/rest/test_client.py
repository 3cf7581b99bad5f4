"""BybitRestClient against a scripted local HTTP server: bytes on the wire, typed errors without
retry loops, rate limits and backoff (injected clock: no real waiting), pagination, decoding,
order entry, clock offset, and no secret in any log."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any

import msgspec
import pytest

from hean.core.bus import EventBus
from hean.core.clock import ManualClock
from hean.core.config import Settings
from hean.exchange.bybit import BybitPrivateWebSocket
from hean.exchange.bybit.protocol.auth import DEFAULT_WINDOW_MS, ClockOffset
from hean.exchange.bybit.rest import (
    BybitRestClient,
    RateLimitInfo,
    RestAuthError,
    RestParamsError,
    RestRateLimitError,
    RestServerError,
    RestTimestampError,
    RestTransportError,
    RestUnknownOrderError,
    RetryPolicy,
)
from hean.exchange.bybit.state.private import Execution, Order, Position
from tests.exchange.bybit.rest.conftest import (
    KEY,
    SECRET,
    Recorded,
    Server,
    envelope,
    example,
)

CURSOR_1 = "page_args%3Dfd4300ae-7847-404e-b947-b46980a4d140%26symbol%3D6%26"
CURSOR_2 = "132766%3A2%2C132766%3A2"


class RecordingClock(ManualClock):
    """A manual clock that records every sleep (and moves time by it)."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


def make(server: Server, **kw: Any) -> BybitRestClient:
    params: dict[str, Any] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "url": server.url,
        "retry": RetryPolicy(max_retries=3, base_delay=0.2, max_delay=1.0),
    }
    params.update(kw)
    clock = params.get("clock")
    if isinstance(clock, ManualClock):
        server.clock = clock
    return BybitRestClient(**params)


# -- bytes on the wire ------------------------------------------------------------------------


async def test_get_query_on_the_wire_is_what_was_signed(server: Server) -> None:
    server.push(envelope({"category": "linear", "list": [], "nextPageCursor": ""}))
    async with make(server) as rest:
        resp = await rest.request(
            "GET",
            "/v5/order/realtime",
            {"category": "linear", "cursor": CURSOR_1, "limit": 50, "settleCoin": "USDT"},
            auth=True,
        )
    [rec] = server.requests
    assert rec.method == "GET" and rec.body == b""
    assert rec.target == (
        f"/v5/order/realtime?category=linear&cursor={CURSOR_1}&limit=50&settleCoin=USDT"
    )
    assert rec.sig_ok is True
    assert rec.headers["X-BAPI-API-KEY"] == KEY
    assert rec.headers["X-BAPI-RECV-WINDOW"] == "5000"
    assert rec.headers["X-BAPI-SIGN-TYPE"] == "2"
    assert resp.ret_code == 0 and resp.path == "/v5/order/realtime" and resp.attempts == 1


async def test_unsafe_values_are_encoded_before_signing(server: Server) -> None:
    async with make(server) as rest:
        await rest.request(
            "GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "a b/é"}, auth=True
        )
    [rec] = server.requests
    assert rec.query == "category=linear&orderLinkId=a%20b%2F%C3%A9"
    assert rec.sig_ok is True


async def test_post_body_on_the_wire_is_what_was_signed(server: Server) -> None:
    server.push(envelope({"orderId": "1321003749386327552", "orderLinkId": "spot-test-postonly"}))
    async with make(server, recv_window=None) as rest:
        ack = await rest.create_order(
            category="spot",
            symbol="BTCUSDT",
            side="Buy",
            order_type="Limit",
            qty=0.1,
            price=15600,
            time_in_force="PostOnly",
            order_link_id="spot-test-postonly",
            isLeverage=0,
        )
    [rec] = server.requests
    assert rec.method == "POST" and rec.query == ""
    assert rec.body == (
        b'{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.1",'
        b'"price":"15600","timeInForce":"PostOnly","orderLinkId":"spot-test-postonly",'
        b'"isLeverage":0}'
    )
    assert rec.headers["Content-Type"] == "application/json"
    assert "X-BAPI-RECV-WINDOW" not in rec.headers  # left out: "" is signed
    assert rec.sig_ok is True
    assert ack.order_id == "1321003749386327552" and ack.order_link_id == "spot-test-postonly"


async def test_public_requests_carry_no_auth_headers(server: Server) -> None:
    async with BybitRestClient(url=server.url) as rest:
        await rest.server_time()
    [rec] = server.requests
    assert rec.target == "/v5/market/time" and rec.sig_ok is None
    assert not any(h.upper().startswith("X-BAPI") for h in rec.headers)
    with pytest.raises(ValueError, match="credentials"):
        await BybitRestClient(url=server.url).wallet_balance()


async def test_one_connection_is_reused(server: Server) -> None:
    async with make(server) as rest:
        for _ in range(5):
            await rest.server_time()
        await rest.request("GET", "/v5/position/list", {"category": "linear"}, auth=True)
    assert len(server.requests) == 6
    assert len({r.peer for r in server.requests}) == 1


# -- errors: typed, no retry loops ------------------------------------------------------------


def _strict_auth(secret: str = SECRET) -> Any:
    """Reply like Bybit's gateway: 10003 for an unknown key, 10004 for a bad signature."""

    def reply(rec: Recorded) -> dict[str, Any]:
        if rec.headers.get("X-BAPI-API-KEY") != KEY:
            return envelope(code=10003, msg="API key is invalid.")
        if not rec.sig_ok:
            payload = rec.headers["X-BAPI-TIMESTAMP"] + KEY + "5000" + rec.query
            return envelope(code=10004, msg=f"error sign! origin_string[{payload}]")
        return envelope({"list": []})

    return reply


async def test_wrong_secret_is_typed_and_sent_once(server: Server) -> None:
    server.on("/v5/position/list", _strict_auth())
    async with make(server, api_secret=SECRET + "-wrong") as rest:
        with pytest.raises(RestAuthError) as info:
            await rest.positions("linear", symbol="BTCUSDT").all()
    err = info.value
    assert err.ret_code == 10004 and err.http_status == 200 and err.path == "/v5/position/list"
    assert err.attempts == 1 and type(err) is RestAuthError
    assert len(server.requests) == 1
    assert KEY not in str(err) and KEY not in err.ret_msg  # the echoed key is masked
    assert "****" in err.ret_msg


async def test_a_signature_echoed_in_an_error_never_reaches_the_exception(server: Server) -> None:
    sign = "ab" * 32
    server.on(
        "/v5/position/list",
        lambda rec: envelope(code=10004, msg=f"error sign! sign[{sign}] key[{KEY}]"),
    )
    async with make(server) as rest:
        with pytest.raises(RestAuthError) as info:
            await rest.positions("linear", symbol="BTCUSDT").all()
    text = f"{info.value} {info.value.ret_msg} {info.value!r}"
    assert sign not in text and KEY not in text and "error sign!" in text


async def test_unknown_key_is_typed_and_sent_once(server: Server) -> None:
    server.on("/v5/position/list", _strict_auth())
    async with make(server, api_key="some-other-key-9999") as rest:
        with pytest.raises(RestAuthError) as info:
            await rest.positions("linear", symbol="BTCUSDT").all()
    assert info.value.ret_code == 10003 and len(server.requests) == 1
    assert "environment" in str(info.value)


async def test_expired_timestamp_resyncs_the_clock_once_then_gives_up(server: Server) -> None:
    clock = RecordingClock()
    server.server_offset_ms = 9_000  # the server is 9 s ahead of us
    expired = example("error_timestamp_expired")
    server.on("/v5/account/wallet-balance", lambda rec: expired)
    async with make(server, clock=clock) as rest:
        with pytest.raises(RestTimestampError) as info:
            await rest.wallet_balance()
        assert rest.clock_offset.estimate_ms == pytest.approx(9_000, abs=1)
    assert info.value.ret_code == 10002 and info.value.attempts == 2
    assert [r.path for r in server.requests] == [
        "/v5/account/wallet-balance",
        "/v5/market/time",
        "/v5/account/wallet-balance",
    ]
    first, _, second = server.requests
    assert int(second.headers["X-BAPI-TIMESTAMP"]) - int(first.headers["X-BAPI-TIMESTAMP"]) == (
        pytest.approx(9_000, abs=2)
    )


async def test_expired_timestamp_heals_after_the_resync(server: Server) -> None:
    clock = ManualClock()
    server.server_offset_ms = 9_000

    def check_window(rec: Recorded) -> dict[str, Any]:
        ts = int(rec.headers["X-BAPI-TIMESTAMP"])
        now = server.now_ms()
        if not now - 5000 <= ts < now + 1000:
            return example("error_timestamp_expired")
        return envelope({"list": []}, time=now)

    server.on("/v5/account/wallet-balance", check_window)
    async with make(server, clock=clock) as rest:
        snapshot = await rest.wallet_balance()
        assert snapshot.wallets == [] and snapshot.time == server.now_ms()
        await rest.wallet_balance()  # now corrected from the start
    assert [r.path for r in server.requests] == [
        "/v5/account/wallet-balance",
        "/v5/market/time",
        "/v5/account/wallet-balance",
        "/v5/account/wallet-balance",
    ]
    assert rest.stats.clock_syncs == 1 and rest.stats.retries == 1


async def test_a_clock_jump_heals_though_the_offset_holds_many_old_samples(
    server: Server,
) -> None:
    """The shared offset holds 15 samples of 0 ms (pongs, earlier syncs); then the server's
    clock is 9 s ahead: the re-sync after ``10002`` starts the estimate afresh (one new sample
    among 15 old ones would not move the median, and the retry would fail the same way)."""
    clock = ManualClock()

    def check_window(rec: Recorded) -> dict[str, Any]:
        ts = int(rec.headers["X-BAPI-TIMESTAMP"])
        now = server.now_ms()
        if not now - 5000 <= ts < now + 1000:
            return example("error_timestamp_expired")
        return envelope({"list": []}, time=now)

    server.on("/v5/account/wallet-balance", check_window)
    offset = ClockOffset()
    for _ in range(15):
        offset.add(0.0)
    async with make(server, clock=clock, clock_offset=offset) as rest:
        server.server_offset_ms = 9_000
        await rest.wallet_balance()
        assert offset.estimate_ms == pytest.approx(9_000, abs=2) and offset.count == 1
        assert rest.stats.clock_syncs == 1 and rest.stats.retries == 1
        # a re-sync that fails keeps the estimate it had
        server.server_offset_ms = 30_000
        server.on("/v5/market/time", lambda rec: example("error_params_order_id_required"))
        with pytest.raises(RestTimestampError):
            await rest.wallet_balance()
        assert offset.estimate_ms == pytest.approx(9_000, abs=2) and offset.count == 1


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("error_permission_denied", RestAuthError.__base__),
        ("error_params_order_id_required", RestParamsError),
        ("error_order_not_exist", RestUnknownOrderError),
    ],
)
async def test_business_and_params_errors_are_not_retried(
    server: Server, name: str, cls: type[Exception]
) -> None:
    server.on("/v5/order/cancel", lambda rec: example(name))
    async with make(server) as rest:
        with pytest.raises(cls) as info:
            await rest.cancel_order(category="linear", symbol="BTCUSDT", order_id="x")
    assert len(server.requests) == 1
    assert info.value.ret_msg == example(name)["retMsg"]  # type: ignore[attr-defined]


# -- rate limits and backoff ------------------------------------------------------------------


def _limited(rec: Recorded, server: Server, reset: int | None) -> tuple[int, Any, dict[str, str]]:
    headers = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0"}
    if reset is not None:
        headers["X-Bapi-Limit-Reset-Timestamp"] = str(reset)
    return 200, example("error_rate_limit"), headers


async def test_10006_waits_until_the_reset_timestamp(server: Server) -> None:
    clock = RecordingClock()
    start = clock.wall_ms()
    server.push(lambda rec: _limited(rec, server, start + 1_500))
    async with make(server, clock=clock) as rest:
        ack = await rest.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="0.001"
        )
    assert ack.attempts == 2 and len(server.requests) == 2
    second = server.requests[1]
    assert second.sig_ok and int(second.headers["X-BAPI-TIMESTAMP"]) >= start + 1_500
    assert 1.5 <= sum(clock.sleeps) <= 1.5 + 0.2
    assert rest.calls == 2 and rest.calls_by_path == {"/v5/order/create": 2}


async def test_10006_without_reset_header_waits_two_seconds(server: Server) -> None:
    clock = RecordingClock()
    server.push(lambda rec: _limited(rec, server, None))
    async with make(server, clock=clock) as rest:
        await rest.executions("linear").all()
    assert len(server.requests) == 2
    assert 2.0 <= sum(clock.sleeps) <= 2.0 + 0.2


async def test_10006_retries_are_bounded(server: Server) -> None:
    clock = RecordingClock()
    server.on("/v5/order/history", lambda rec: _limited(rec, server, server.now_ms() + 500))
    async with make(server, clock=clock, retry=RetryPolicy(max_retries=2, base_delay=0.1)) as rest:
        with pytest.raises(RestRateLimitError) as info:
            await rest.order_history("linear").all()
    assert len(server.requests) == 3 and info.value.attempts == 3
    assert info.value.limit == RateLimitInfo(10, 0, info.value.limit.reset_ms)  # type: ignore[union-attr]
    assert all(s >= 0.5 for s in clock.sleeps)


async def test_limiter_waits_before_sending_when_the_quota_is_used_up(server: Server) -> None:
    clock = RecordingClock()
    reset = clock.wall_ms() + 800

    def exhausted(rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        headers = {
            "X-Bapi-Limit": "50",
            "X-Bapi-Limit-Status": "0",
            "X-Bapi-Limit-Reset-Timestamp": str(reset),
        }
        return 200, envelope({"list": [], "nextPageCursor": ""}), headers

    server.push(exhausted)
    async with make(server, clock=clock) as rest:
        first = await rest.request("GET", "/v5/position/list", {"category": "linear"}, auth=True)
        assert first.limit == RateLimitInfo(50, 0, reset)
        await rest.request("GET", "/v5/position/list", {"category": "linear"}, auth=True)
        await rest.request("GET", "/v5/order/realtime", {"category": "linear"}, auth=True)
    assert clock.sleeps == [pytest.approx(0.8)]  # only the exhausted group waited
    assert int(server.requests[1].headers["X-BAPI-TIMESTAMP"]) >= reset
    assert rest.stats.rate_limit_waits == 1


@pytest.mark.parametrize("status", [403, 429, 500, 502, 503])
async def test_http_errors_back_off_bounded(server: Server, status: int) -> None:
    clock = RecordingClock()
    server.on("/v5/market/tickers", lambda rec: (status, "<html>blocked</html>", {}))
    retry = RetryPolicy(max_retries=3, base_delay=0.2, max_delay=1.0, jitter=0.5)
    async with make(server, clock=clock, retry=retry) as rest:
        with pytest.raises(RestRateLimitError if status in (403, 429) else RestServerError) as info:
            await rest.tickers("linear")
    assert info.value.http_status == status and info.value.ret_code is None
    assert len(server.requests) == 4
    assert len(clock.sleeps) == 3 and all(0.1 <= s <= 1.5 for s in clock.sleeps)
    assert clock.sleeps[2] > clock.sleeps[0]  # exponential (jitter is ±50%: 0.8±0.4 > 0.2±0.1)


async def test_server_error_then_success(server: Server) -> None:
    clock = RecordingClock()
    server.push((503, "", {}), (200, "not json", {}))
    async with make(server, clock=clock) as rest:
        resp = await rest.request("GET", "/v5/position/list", {"category": "linear"}, auth=True)
    assert resp.attempts == 3 and len(server.requests) == 3
    assert all(r.sig_ok for r in server.requests)
    timestamps = [r.headers["X-BAPI-TIMESTAMP"] for r in server.requests]
    assert len(set(timestamps)) == 3  # every retry freshly signed


async def test_order_entry_is_not_resent_when_the_outcome_is_unknown(server: Server) -> None:
    clock = RecordingClock()
    server.push((502, "bad gateway", {}))
    async with make(server, clock=clock) as rest:
        with pytest.raises(RestServerError):
            await rest.create_order(
                category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="1"
            )
        server.push(envelope(code=10016, msg="Server error."))
        with pytest.raises(RestServerError):
            await rest.cancel_all_orders("linear", settle_coin="USDT")
    assert len(server.requests) == 2 and clock.sleeps == []


async def test_transport_errors_are_typed(server: Server) -> None:
    clock = RecordingClock()
    rest = BybitRestClient(
        url="http://127.0.0.1:9",  # nothing listens there
        clock=clock,
        retry=RetryPolicy(max_retries=1, base_delay=0.01),
    )
    async with rest:
        with pytest.raises(RestTransportError) as info:
            await rest.server_time()
    assert info.value.attempts == 2 and rest.calls == 2 and len(clock.sleeps) == 1
    server.push((200, "{", {}))
    async with make(server, clock=clock, retry=RetryPolicy(max_retries=0)) as rest2:
        with pytest.raises(RestTransportError, match="not a JSON envelope"):
            await rest2.server_time()


async def test_timeout_is_a_transport_error(server: Server) -> None:
    async def slow() -> dict[str, Any]:
        await asyncio.sleep(2)
        return envelope()

    server.push(lambda rec: slow())
    retry = RetryPolicy(max_retries=0)
    async with BybitRestClient(url=server.url, timeout=0.2, retry=retry) as rest:
        with pytest.raises(RestTransportError, match=r"no answer within 0\.2 s"):
            await rest.server_time()
    assert len(server.requests) == 1


# -- pagination -------------------------------------------------------------------------------


def _page(items: list[dict[str, Any]], cursor: str, category: str = "linear") -> dict[str, Any]:
    return envelope({"category": category, "list": items, "nextPageCursor": cursor}, time=7)


async def test_pagination_follows_cursors_byte_for_byte(server: Server) -> None:
    orders = [{"orderId": str(i), "symbol": "BTCUSDT", "orderStatus": "New"} for i in range(5)]
    server.push(
        _page(orders[:2], CURSOR_1),
        _page(orders[2:4], CURSOR_2),
        _page(orders[4:], ""),
    )
    async with make(server) as rest:
        pages = rest.open_orders("linear", settle_coin="USDT", limit=2)
        got = [o async for o in pages]
    assert [o.order_id for o in got] == ["0", "1", "2", "3", "4"]
    assert all(isinstance(o, Order) and o.category == "linear" for o in got)
    assert pages.pages == 3 and pages.time == 7
    queries = [r.query for r in server.requests]
    assert queries == [
        "category=linear&settleCoin=USDT&limit=2",
        f"category=linear&settleCoin=USDT&limit=2&cursor={CURSOR_1}",
        f"category=linear&settleCoin=USDT&limit=2&cursor={CURSOR_2}",
    ]
    assert all(r.sig_ok for r in server.requests)
    assert rest.calls == 3


async def test_pagination_stops_on_an_empty_page_even_with_a_cursor(server: Server) -> None:
    execs = [{"execId": "e1", "symbol": "BTCUSDT", "orderId": "o1", "seq": 5}]
    server.push(_page(execs, CURSOR_1), _page([], CURSOR_2))
    async with make(server) as rest:
        got = await rest.executions("linear", start_time=1, end_time=2).all()
    assert len(got) == 1 and isinstance(got[0], Execution) and len(server.requests) == 2
    # filters are kept on every page
    assert server.requests[1].query.startswith("category=linear&startTime=1&endTime=2&limit=100")


async def test_pagination_refuses_a_repeated_cursor(server: Server) -> None:
    item = [{"symbol": "BTCUSDT", "positionIdx": 0, "avgPrice": "1"}]
    server.on("/v5/position/list", lambda rec: _page(item, CURSOR_1))
    async with make(server) as rest:
        pages = rest.positions("linear", settle_coin="USDT")
        got: list[Position] = []
        with pytest.raises(RestTransportError, match="twice"):
            async for p in pages:
                got.append(p)
    assert len(server.requests) == 2 and len(got) == 2 and got[0].entry_price == "1"


async def test_bad_items_are_counted_and_dropped(server: Server) -> None:
    server.push(_page([{"orderId": "1", "symbol": "A"}, {"symbol": "no id"}], ""))
    async with make(server) as rest:
        pages = rest.order_history("linear")
        got = await pages.all()
    assert [o.order_id for o in got] == ["1"] and pages.bad == 1 and rest.stats.bad_items == 1


# -- endpoints --------------------------------------------------------------------------------


async def test_market_endpoints_decode(server: Server) -> None:
    server.on("/v5/market/kline", lambda rec: example("market_kline_inverse"))
    server.on("/v5/market/orderbook", lambda rec: example("market_orderbook_spot"))
    server.on("/v5/market/recent-trade", lambda rec: example("market_recent_trade_spot"))
    server.on("/v5/market/tickers", lambda rec: example("market_tickers_linear"))
    pages = [
        example("market_instruments_info_linear_prelisting"),
        example("market_instruments_info_linear"),
    ]
    server.on("/v5/market/instruments-info", lambda rec: pages.pop(0))
    async with BybitRestClient(url=server.url) as rest:
        klines = await rest.klines("inverse", "BTCUSD", "60", start=1, end=2)
        book = await rest.orderbook("spot", "BTCUSDT", limit=1)
        trades = await rest.recent_trades("spot", "BTCUSDT", limit=1)
        tickers = await rest.tickers("linear", "BTCUSDT")
        instruments = await rest.instruments_info("linear", status="PreLaunch")
    assert [k.start for k in klines] == [1670601600000, 1670605200000, 1670608800000]
    assert book.symbol == "BTCUSDT" and book.u == 230704
    assert trades[0].seq == 123456 and tickers[0]["fundingRate"] == "-0.005"
    assert [i["symbol"] for i in instruments] == ["BIOUSDT", "BTCUSDT"]
    by_path = {r.path: r.query for r in server.requests}
    assert by_path["/v5/market/kline"] == "category=inverse&symbol=BTCUSD&interval=60&start=1&end=2"
    assert by_path["/v5/market/orderbook"] == "category=spot&symbol=BTCUSDT&limit=1"
    assert server.requests[-1].query == (
        "category=linear&status=PreLaunch&cursor=first%3DBIOUSDT%26last%3DBIOUSDT"
    )


async def test_account_endpoints_decode_examples(server: Server) -> None:
    server.on("/v5/order/realtime", lambda rec: example("order_realtime") | {})
    server.on("/v5/account/wallet-balance", lambda rec: example("account_wallet_balance"))
    server.on("/v5/position/list", lambda rec: example("position_list_inverse"))
    calls = {"n": 0}

    def realtime(rec: Recorded) -> dict[str, Any]:
        calls["n"] += 1
        body = example("order_realtime")
        if calls["n"] > 1:
            body["result"]["nextPageCursor"] = ""
            body["result"]["list"] = []
        return body

    server.on("/v5/order/realtime", realtime)
    async with make(server) as rest:
        orders = await rest.open_orders("linear", symbol="ETHUSDT").all()
        wallet = await rest.wallet_balance(coin=["BTC", "USDT"])
        positions = await rest.positions("inverse").all()
    assert orders[0].cum_fee_detail == {"MNT": "0.00242968"} and orders[0].category == "linear"
    assert wallet.time == 1690872862481 and wallet.wallets[0].coin_of("BTC") is not None
    assert positions[0].entry_price == "27464.50441675" and positions[0].category == "inverse"
    wallet_req = next(r for r in server.requests if r.path == "/v5/account/wallet-balance")
    assert wallet_req.query == "accountType=UNIFIED&coin=BTC,USDT" and wallet_req.sig_ok


async def test_batch_exposes_per_item_codes(server: Server) -> None:
    server.push(example("order_create_batch_response_partial"))
    async with make(server) as rest:
        resp = await rest.create_orders(
            "linear",
            [
                {"symbol": "SOLUSDT", "side": "Buy", "orderType": "Limit", "qty": 1, "price": 10},
                {"symbol": "SOLUSDT", "side": "Buy", "orderType": "Limit", "qty": "1"},
            ],
        )
    [failed] = resp.failed
    assert failed.code == 10001 and failed.index == 0
    assert json.loads(server.requests[0].body) == {
        "category": "linear",
        "request": [
            {"symbol": "SOLUSDT", "side": "Buy", "orderType": "Limit", "qty": "1", "price": "10"},
            {"symbol": "SOLUSDT", "side": "Buy", "orderType": "Limit", "qty": "1"},
        ],
    }
    with pytest.raises(ValueError):
        await rest.create_orders("linear", [])
    with pytest.raises(ValueError):
        await rest.create_orders("spot", [{"symbol": "A", "side": "Buy", "orderType": "Market"}])


async def test_amend_cancel_and_cancel_all_bodies(server: Server) -> None:
    async with make(server) as rest:
        await rest.amend_order(
            category="linear", symbol="ETHPERP", order_link_id="x", qty="0.15", takeProfit="0"
        )
        await rest.cancel_order(category="linear", symbol="BTCPERP", order_id="c6f0")
        await rest.cancel_all_orders("linear", settle_coin="USDT")
        with pytest.raises(ValueError):
            await rest.cancel_order(category="linear", symbol="BTCPERP")
        with pytest.raises(ValueError):
            await rest.create_order(
                category="linear", symbol="X", side="buy", order_type="Limit", qty="1"
            )
    bodies = [r.body for r in server.requests]
    assert bodies == [
        b'{"category":"linear","symbol":"ETHPERP","orderLinkId":"x","qty":"0.15","takeProfit":"0"}',
        b'{"category":"linear","symbol":"BTCPERP","orderId":"c6f0"}',
        b'{"category":"linear","settleCoin":"USDT"}',
    ]
    assert all(r.sig_ok for r in server.requests)


class _Registry:
    """An instrument check in the registry form (async check_request)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def check_request(self, op: str, category: str, args: Any, orders: Any) -> None:
        self.calls.append((op, category, dict(args) if args else None, orders))
        if args is not None and args.get("price") == "1.23":
            raise ValueError("price 1.23 is not a multiple of the tick 0.1")


async def test_instrument_check_runs_before_sending(server: Server) -> None:
    from hean.exchange.bybit.instruments import InstrumentRegistry, OrderRuleError
    from tests.exchange.bybit.test_instruments import _items

    category, items = _items("linear")  # BTCUSDT: tick 0.10, step 0.001

    async def loader(cat: str) -> list[dict[str, Any]]:
        assert cat == category
        return items

    async with make(server, instruments=InstrumentRegistry(loader)) as rest:
        order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit"}
        with pytest.raises(OrderRuleError) as err:
            await rest.create_order(**order, qty="0.0015", price="30000")
        assert err.value.rule == "qty_step"
        await rest.create_order(**order, qty="0.002", price="30000")
        with pytest.raises(OrderRuleError) as err:
            await rest.amend_order(category="linear", symbol="BTCUSDT", order_id="1", price="1.23")
        assert err.value.rule == "tick_size"
        with pytest.raises(OrderRuleError, match="batch order 0"):
            await rest.create_orders(
                "linear",
                [{"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.0001"}],
            )
        await rest.cancel_order(category="linear", symbol="BTCUSDT", order_id="1")
    assert [r.path for r in server.requests] == ["/v5/order/create", "/v5/order/cancel"]

    registry = _Registry()
    server.requests.clear()
    async with make(server, instruments=registry) as rest:
        with pytest.raises(ValueError, match="tick"):
            await rest.amend_order(category="linear", symbol="BTCUSDT", order_id="1", price=1.23)
        await rest.create_orders(
            "linear", [{"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": 1}]
        )
    assert [c[0] for c in registry.calls] == ["amend", "create"]
    assert registry.calls[1][3][0]["qty"] == "1"
    assert [r.path for r in server.requests] == ["/v5/order/create-batch"]


# -- clock offset -----------------------------------------------------------------------------


async def test_clock_offset_is_measured_and_shared_with_the_private_ws(server: Server) -> None:
    clock = ManualClock()
    server.server_offset_ms = -4_200  # the server is 4.2 s behind us
    shared = ClockOffset()
    async with make(server, clock=clock, clock_offset=shared) as rest:
        assert rest.clock_offset is shared
        offset = await rest.sync_clock(samples=3)
        assert offset == pytest.approx(-4_200, abs=1)
        assert await rest.server_time() == pytest.approx(clock.wall_ms() - 4_200, abs=1)
        await rest.request("GET", "/v5/position/list", {"category": "linear"}, auth=True)
    signed = server.requests[-1]
    assert int(signed.headers["X-BAPI-TIMESTAMP"]) == pytest.approx(server.now_ms(), abs=1)
    ws = BybitPrivateWebSocket(
        EventBus(),
        api_key=KEY,
        api_secret=SECRET,
        url="ws://127.0.0.1:9/v5/private",
        clock=clock,
        clock_offset=rest.clock_offset,
    )
    frame = ws.authenticator.auth_request(clock.monotonic())
    expires = msgspec.json.decode(frame)["args"][1]
    assert expires == pytest.approx(clock.wall_ms() - 4_200 + DEFAULT_WINDOW_MS, abs=1)
    assert ws.auth_state.clock_offset_ms == pytest.approx(-4_200, abs=1)


# -- construction, secrets --------------------------------------------------------------------


def test_construction_rules() -> None:
    assert BybitRestClient().url == "https://api-testnet.bybit.com"
    assert BybitRestClient(testnet=False).url == "https://api.bybit.com"
    assert BybitRestClient(url="http://127.0.0.1:5/").url == "http://127.0.0.1:5"
    with pytest.raises(ValueError):
        BybitRestClient(url="ws://x")
    with pytest.raises(ValueError):
        BybitRestClient(api_key="k")
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="verification"):
        BybitRestClient(ssl_context=insecure)


def test_from_settings() -> None:
    rest = BybitRestClient.from_settings(
        Settings(api_key=KEY, api_secret=SECRET, testnet=False), timeout=3.0
    )
    assert rest.url == "https://api.bybit.com" and rest.has_credentials and rest.timeout == 3.0
    assert KEY not in repr(rest) and SECRET not in repr(rest) and "0001" in repr(rest)
    public = BybitRestClient.from_settings(Settings(api_key=None, api_secret=None))
    assert not public.has_credentials and public.url == "https://api-testnet.bybit.com"


async def test_no_secret_or_signature_in_any_log_record_or_error(server: Server) -> None:
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler = Capture(level=1)
    names = ("", "hean", "aiohttp", "aiohttp.client", "aiohttp.access", "aiohttp.server")
    saved = {name: logging.getLogger(name or None).level for name in names}
    root.addHandler(handler)
    for name in names:
        logging.getLogger(name or None).setLevel(1)
    errors: list[BaseException] = []
    clock = RecordingClock()
    try:
        server.on("/v5/position/list", _strict_auth())
        async with make(server, clock=clock) as rest:
            await rest.sync_clock()
            await rest.positions("linear", symbol="BTCUSDT").all()
            server.push(lambda rec: _limited(rec, server, None))
            await rest.create_order(
                category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="1"
            )
            server.push((500, "oops", {}), (403, "<html>banned</html>", {}))
            await rest.request("GET", "/v5/execution/list", {"category": "linear"}, auth=True)
        async with make(server, api_secret=SECRET + "-wrong", clock=clock) as bad:
            try:
                await bad.positions("linear", symbol="BTCUSDT").all()
            except RestAuthError as exc:
                errors.append(exc)
                logging.getLogger("hean.test").exception("failed: %s", exc)
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name or None).setLevel(level)
    signatures = [r.headers["X-BAPI-SIGN"] for r in server.requests if "X-BAPI-SIGN" in r.headers]
    assert len(signatures) >= 5 and all(len(s) == 64 for s in signatures)
    assert len(records) >= 8  # DEBUG really was on
    texts = [r.getMessage() + (r.exc_text or "") + (r.stack_info or "") for r in records]
    texts += [str(e) + repr(e) + repr(getattr(e, "response", None)) for e in errors]
    texts += [repr(rest), repr(rest.stats), repr(bad), repr(rest.last_response)]
    for text in texts:
        assert SECRET not in text and KEY not in text, text
        for signature in signatures:
            assert signature not in text, text
