"""Trade-stream requests: frames, reqId matching, timeouts, error mapping, in-flight failure."""

from __future__ import annotations

import decimal
import json
from typing import Any

import pytest

from hean.exchange.bybit.protocol.auth import ClockOffset
from hean.exchange.bybit.protocol.trade import (
    Outcome,
    TradeConnectionLost,
    TradeDuplicateRequest,
    TradeError,
    TradeInsufficientBalance,
    TradeRateLimited,
    TradeRequests,
    TradeServiceRestarting,
    TradeTimeout,
    TradeTimestampError,
    TradeUnknownOrder,
    batch_limit,
    batch_results,
    check_batch,
    decode_response,
    encode_trade_request,
    to_api_number,
)
from tests.conftest import example, example_bytes

EPOCH = 1_711_001_595_000


def make(**kw: Any) -> tuple[TradeRequests, list[Outcome]]:
    outcomes: list[Outcome] = []
    requests = TradeRequests(
        outcomes.append,
        wall_ms=kw.pop("wall_ms", lambda now: EPOCH + round(now * 1000)),
        req_prefix=kw.pop("req_prefix", "t-"),
        **kw,
    )
    return requests, outcomes


def response(req_id: str | None, ret_code: int = 0, op: str = "order.create", **kw: Any) -> bytes:
    message = example("order_create_response")
    message["retCode"] = ret_code
    message["retMsg"] = kw.pop("ret_msg", "OK" if ret_code == 0 else "nope")
    message["op"] = op
    if req_id is None:
        message.pop("reqId")
    else:
        message["reqId"] = req_id
    message.update(kw)
    return json.dumps(message).encode()


def test_request_frame_has_the_documented_shape() -> None:
    fixture = example("order_create_request")
    payload = encode_trade_request(
        "order.create", fixture["args"][0], "test-005", 1711001595207, 8000, "bot-001"
    )
    assert json.loads(payload) == fixture
    assert list(json.loads(payload)) == list(fixture)  # reqId, header, op, args
    bare = json.loads(encode_trade_request("order.cancel", {"a": 1}, "r", 5))
    assert bare["header"] == {"X-BAPI-TIMESTAMP": "5"}  # strings; optional ones left out


def test_build_registers_and_response_resolves_by_req_id() -> None:
    requests, outcomes = make(recv_window=5000, referer="bot-001")
    rid, payload = requests.build("order.create", {"symbol": "ETHUSDT"}, 0.207)
    msg = json.loads(payload)
    assert rid == "t-1" and msg["reqId"] == rid and msg["op"] == "order.create"
    assert msg["header"] == {
        "X-BAPI-TIMESTAMP": str(EPOCH + 207),
        "X-BAPI-RECV-WINDOW": "5000",
        "Referer": "bot-001",
    }
    assert msg["args"] == [{"symbol": "ETHUSDT"}]
    rid2, _ = requests.build("order.create", {}, 0.3)
    assert rid2 == "t-2" and requests.in_flight == 2
    # responses may come in any order
    outcome = requests.on_response(response(rid2), 0.4)
    assert outcome is not None and outcome.req_id == rid2 and outcome.response is not None
    ack = outcome.response
    assert ack.ok and ack.order_id == "a4c1718e-fe53-4659-a118-1f6ecce04ad9"
    assert ack.order_link_id == "" and ack.latency == pytest.approx(0.1)
    assert ack.rate_limit == 10 and ack.rate_limit_status == 9
    assert ack.rate_limit_reset_ms == 1711001595208 and ack.server_time_ms == 1711001595209
    assert ack.trace_id == "38b7977b430f9bd228f4b19724794dfd"
    assert ack.conn_id == "cnt5leec0hvan15eukcg-2v" and ack.results == []
    assert requests.in_flight == 1 and outcomes == [outcome]
    assert requests.on_response(response("unknown-id"), 0.5) is None
    assert requests.stats.unmatched == 1 and requests.in_flight == 1


def test_timenow_feeds_the_clock_offset_and_the_next_timestamp() -> None:
    offset = ClockOffset()
    requests, _ = make(clock_offset=offset)
    rid, _ = requests.build("order.create", {}, 1.0)
    server_now = EPOCH + 1_050 + 2_000  # server 2 s ahead, stamped mid round trip
    requests.on_response(
        response(rid, header={"Timenow": str(server_now), "X-Bapi-Limit": "10"}), 1.1
    )
    assert offset.estimate_ms == pytest.approx(2_000)
    _, payload = requests.build("order.create", {}, 2.0)
    assert json.loads(payload)["header"]["X-BAPI-TIMESTAMP"] == str(EPOCH + 2_000 + 2_000)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (10006, TradeRateLimited),
        (10403, TradeRateLimited),
        (10429, TradeRateLimited),
        (20003, TradeRateLimited),
        (20006, TradeDuplicateRequest),
        (10016, TradeServiceRestarting),
        (10019, TradeServiceRestarting),
        (10002, TradeTimestampError),
        (110004, TradeInsufficientBalance),
        (110007, TradeInsufficientBalance),
        (170131, TradeInsufficientBalance),
        (110001, TradeUnknownOrder),
        (170213, TradeUnknownOrder),
        (10001, TradeError),
        (99999, TradeError),
    ],
)
def test_error_codes_map_to_typed_errors(code: int, cls: type[TradeError]) -> None:
    requests, _ = make()
    rid, _ = requests.build("order.create", {}, 0.0)
    outcome = requests.on_response(response(rid, code, ret_msg="why"), 0.1)
    assert outcome is not None and outcome.response is None
    error = outcome.error
    assert type(error) is cls and isinstance(error, TradeError)
    assert (error.ret_code, error.ret_msg, error.op, error.req_id) == (
        code,
        "why",
        "order.create",
        rid,
    )
    assert error.response is not None and error.response.rate_limit == 10
    assert str(code) in str(error) and rid in str(error)
    assert requests.restart_requested == (
        f"service_restarting:{code}" if code in (10016, 10019) else None
    )


def test_the_documented_error_example() -> None:
    requests, _ = make()
    requests.build("order.create", {}, 0.0, req_id="1")
    outcome = requests.on_response(example_bytes("order_create_error_response"), 0.1)
    assert outcome is not None
    assert isinstance(outcome.error, TradeInsufficientBalance)
    assert outcome.error.ret_msg == "Insufficient balance."


def test_batch_response_per_order_results() -> None:
    requests, _ = make()
    requests.build("order.create-batch", {"category": "linear", "request": []}, 0.0)
    # the documented example has no reqId: matched as the only batch create in flight
    outcome = requests.on_response(example_bytes("order_create_batch_response"), 0.1)
    assert outcome is not None and outcome.response is not None
    ack = outcome.response
    assert ack.ok and len(ack.results) == 3 and len(ack.failed) == 3
    first = ack.results[0]
    assert (first.index, first.code, first.msg) == (
        0,
        10001,
        "position idx not match position mode",
    )
    assert (first.symbol, first.order_link_id, first.create_at) == ("SOLUSDT", "batch-000", None)
    assert ack.rate_limit == 150 and ack.rate_limit_status == 147


def test_a_batch_order_without_a_code_is_not_taken_for_a_success() -> None:
    """The trade stream took a missing per-order code for 0 (placed) while REST said -1: one
    rule for both now, and it is the safe one."""
    [placed, unknown, garbled] = batch_results(
        {"list": [{"orderId": "a"}, {"orderId": "b"}, {"orderId": "c"}]},
        {"list": [{"code": 0, "msg": "OK"}, {}, {"code": "x"}]},
    )
    assert placed.ok and placed.order_id == "a"
    assert (unknown.code, unknown.ok, garbled.code, garbled.ok) == (-1, False, -1, False)


def test_missing_req_id_is_matched_only_when_unambiguous() -> None:
    requests, _ = make()
    requests.build("order.create", {}, 0.0)
    requests.build("order.create", {}, 0.0)
    assert requests.on_response(response(None, 10005), 0.1) is None
    assert requests.stats.unmatched == 1 and requests.in_flight == 2


def test_timeouts_fail_with_trade_timeout_and_say_the_outcome_is_unknown() -> None:
    requests, outcomes = make(request_timeout=10.0)
    rid1, _ = requests.build("order.create", {}, 0.0)
    rid2, _ = requests.build("order.cancel", {}, 1.0, timeout=2.0)
    assert requests.next_deadline() == 3.0
    assert requests.tick(2.99) == []
    [late] = requests.tick(3.0)
    assert late.req_id == rid2 and isinstance(late.error, TradeTimeout)
    assert isinstance(late.error, TimeoutError) and "outcome is unknown" in str(late.error)
    assert requests.next_deadline() == 10.0
    [late] = requests.tick(10.0)
    assert late.req_id == rid1 and requests.next_deadline() is None
    # a response after the timeout is not matched to anything
    assert requests.on_response(response(rid1), 11.0) is None
    assert requests.stats.timeouts == 2 and len(outcomes) == 2


def test_in_flight_requests_fail_when_the_connection_drops_and_are_never_resent() -> None:
    requests, outcomes = make()
    rids = [requests.build("order.create", {}, 0.0)[0] for _ in range(3)]
    lost = requests.fail_all("server_close:1006")
    assert [o.req_id for o in lost] == rids and outcomes == lost
    for outcome in lost:
        assert isinstance(outcome.error, TradeConnectionLost)
        assert "server_close:1006" in str(outcome.error) and "outcome is unknown" in str(
            outcome.error
        )
    assert requests.in_flight == 0 and requests.next_deadline() is None
    assert requests.stats.lost == 3 and requests.stats.sent == 3


def test_request_validation() -> None:
    requests, _ = make()
    with pytest.raises(ValueError, match="unknown trade op"):
        requests.build("order.teleport", {}, 0.0)
    with pytest.raises(ValueError, match=r"1\.\.36"):
        requests.build("order.create", {}, 0.0, req_id="x" * 37)
    requests.build("order.create", {}, 0.0, req_id="mine")
    with pytest.raises(ValueError, match="already in flight"):
        requests.build("order.create", {}, 0.0, req_id="mine")
    with pytest.raises(ValueError):
        requests.build("order.create", {}, 0.0, timeout=0)
    with pytest.raises(ValueError):
        make(recv_window=0)
    with pytest.raises(ValueError):
        make(req_prefix="p" * 30)
    rid = TradeRequests(lambda o: None, wall_ms=lambda now: 0).next_req_id()
    assert rid.startswith("hean-") and len(rid) <= 36


def test_bad_responses_are_counted() -> None:
    requests, _ = make()
    assert requests.on_response(b"not json", 0.0) is None
    assert requests.on_response(b'{"op":"order.create"}', 0.0) is None
    assert requests.stats.bad_responses == 2
    with pytest.raises(ValueError):
        decode_response(b"[]")


def test_batch_limits() -> None:
    assert batch_limit("spot") == 10 and batch_limit("linear") == 20
    assert batch_limit("option") == 20 and batch_limit("inverse") == 20
    check_batch("spot", [{}] * 10)
    check_batch("linear", [{}] * 20)
    with pytest.raises(ValueError, match="at most 10"):
        check_batch("spot", [{}] * 11)
    with pytest.raises(ValueError, match="at most 20"):
        check_batch("linear", [{}] * 21)
    with pytest.raises(ValueError, match="at least one"):
        check_batch("linear", [])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.2", "0.2"),
        (" 2800 ", "2800"),
        (2800, "2800"),
        (0.1, "0.1"),
        (1e-05, "0.00001"),
        (2.50, "2.5"),
        (decimal.Decimal("1E+3"), "1000"),
        (decimal.Decimal("0.0010"), "0.001"),
    ],
)
def test_numbers_become_decimal_strings(value: Any, text: str) -> None:
    assert to_api_number(value) == text


@pytest.mark.parametrize("value", [True, None, [1], "", float("nan"), float("inf")])
def test_bad_numbers(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        to_api_number(value, "qty")
