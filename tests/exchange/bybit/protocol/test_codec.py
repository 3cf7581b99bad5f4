from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hean.exchange.bybit.protocol.codec import (
    FrameKind,
    classify,
    decode,
    encode_ping,
    encode_pong,
    encode_request,
    parse_float,
    parse_float_fast,
    server_time_ms,
)
from tests.conftest import example_bytes


@pytest.mark.parametrize(
    "name",
    [
        "pong_public",
        "pong_public_spot",
        "pong_public_option",
        "pong_private",
        "pong_trade",
        "pong_public_with_req_id",
    ],
)
def test_every_pong_shape_is_a_pong(name: str) -> None:
    assert classify(decode(example_bytes(name))) is FrameKind.PONG


def test_server_time_from_private_option_and_trade_pongs() -> None:
    assert server_time_ms(decode(example_bytes("pong_private"))) == 1675418560633
    assert server_time_ms(decode(example_bytes("pong_public_option"))) == 1672916271846
    assert server_time_ms(decode(example_bytes("pong_trade"))) == 1711002002529
    assert server_time_ms(decode(example_bytes("pong_public"))) is None


def test_server_ping_is_not_a_pong() -> None:
    assert classify(decode(b'{"op":"ping"}')) is FrameKind.SERVER_PING
    assert classify(decode(b'{"req_id":"1","op":"ping"}')) is FrameKind.SERVER_PING


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("subscribe_ok", FrameKind.SUBSCRIBE_ACK),
        ("subscribe_ok_spot", FrameKind.SUBSCRIBE_ACK),
        ("subscribe_ok_private", FrameKind.SUBSCRIBE_ACK),
        ("subscribe_ok_option", FrameKind.SUBSCRIBE_ACK),
        ("subscribe_fail", FrameKind.SUBSCRIBE_ACK),
        ("subscribe_fail_already_subscribed", FrameKind.SUBSCRIBE_ACK),
        ("subscribe_fail_spot_args", FrameKind.SUBSCRIBE_ACK),
        ("orderbook_rpi_subscribe_ok", FrameKind.SUBSCRIBE_ACK),
        ("unsubscribe_ok", FrameKind.UNSUBSCRIBE_ACK),
        ("auth_ok", FrameKind.AUTH_ACK),
        ("auth_fail", FrameKind.AUTH_ACK),
        ("trade_auth_ok", FrameKind.AUTH_ACK),
        ("order_create_response", FrameKind.OP_RESPONSE),
        ("order_create_error_response", FrameKind.OP_RESPONSE),
        ("tickers_linear_snapshot", FrameKind.DATA),
        ("tickers_linear_delta", FrameKind.DATA),
        ("tickers_spot", FrameKind.DATA),
        ("orderbook_delta", FrameKind.DATA),
        ("public_trade", FrameKind.DATA),
        ("order", FrameKind.DATA),
        ("wallet", FrameKind.DATA),
    ],
)
def test_classify_examples(name: str, kind: FrameKind) -> None:
    assert classify(decode(example_bytes(name))) is kind


def test_error_reply_and_unknown() -> None:
    bad = b'{"success":false,"ret_msg":"Failed to decode incoming data","conn_id":"x","op":""}'
    assert classify(decode(bad)) is FrameKind.ERROR
    assert classify(decode(b'{"hello":"world"}')) is FrameKind.UNKNOWN


def test_unknown_fields_ignored_and_string_ts_coerced() -> None:
    frame = decode(b'{"topic":"t","ts":"1772694601512","newField":{"x":1},"data":{}}')
    assert frame.ts == 1772694601512
    assert frame.topic == "t"


@pytest.mark.parametrize(
    "payload", [b"", b"not json", b"[1,2]", b'{"topic":5}', b'{"ts":"abc","topic":"x"}', b"\xff"]
)
def test_bad_input_raises_decode_error(payload: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode(payload)


def test_encoders() -> None:
    assert json.loads(encode_ping()) == {"op": "ping"}
    assert json.loads(encode_ping("7")) == {"req_id": "7", "op": "ping"}
    assert json.loads(encode_pong()) == {"op": "pong"}
    assert json.loads(encode_request("subscribe", ["a", "b"], "r1")) == {
        "req_id": "r1",
        "op": "subscribe",
        "args": ["a", "b"],
    }
    assert json.loads(encode_request("unsubscribe", ["a"])) == {"op": "unsubscribe", "args": ["a"]}


# -- prices ---------------------------------------------------------------------------------------


@given(
    st.integers(0, 12).flatmap(
        lambda places: st.decimals(
            min_value=-(10**9), max_value=10**12, places=places, allow_nan=False
        )
    )
)
@settings(max_examples=500)
def test_fast_float_parse_equals_float_for_every_decimal_string(value: Decimal) -> None:
    text = format(value, "f")
    assert parse_float_fast(text) == float(text)
    assert parse_float(text) == float(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("67234.5", 67234.5),
        ("0.00001234", 0.00001234),
        ("-0.0005", -0.0005),
        ("007", 7.0),  # not JSON: float()'s rules
        (".5", 0.5),
        ("1e-3", 0.001),
        (12, 12.0),  # a number where a string was expected
        (1.25, 1.25),
        ("", None),  # Bybit's empty bid/ask
        (None, None),
        ("abc", None),
        ([], None),
    ],
)
def test_parse_float_accepts_what_float_accepts_and_none_otherwise(
    raw: Any, expected: float | None
) -> None:
    assert parse_float(raw) == expected


def test_fast_float_parse_refuses_what_it_cannot_read_exactly() -> None:
    for raw in ("", ".5", "NaN", "1_0", "+1"):
        with pytest.raises(ValueError):
            parse_float_fast(raw)
    with pytest.raises(TypeError):
        parse_float_fast(None)
