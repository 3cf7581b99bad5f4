"""Typed errors from the example error bodies and from HTTP statuses."""

from __future__ import annotations

import pytest

from hean.exchange.bybit.rest.errors import (
    RestAuthError,
    RestBusinessError,
    RestDuplicateOrderError,
    RestError,
    RestInsufficientBalanceError,
    RestParamsError,
    RestPermissionError,
    RestRateLimitError,
    RestServerError,
    RestTimestampError,
    RestTransportError,
    RestUnknownOrderError,
    error_for_code,
    error_for_http,
)
from hean.exchange.bybit.rest.limits import RateLimitInfo
from hean.exchange.bybit.rest.response import decode_envelope
from tests.exchange.bybit.rest.conftest import example_bytes

EXPECTED = {
    "error_bad_signature": RestAuthError,
    "error_bad_signature_2026": RestAuthError,
    "error_invalid_api_key": RestAuthError,
    "error_timestamp_expired": RestTimestampError,
    "error_permission_denied": RestPermissionError,
    "error_unmatched_ip": RestPermissionError,
    "error_rate_limit": RestRateLimitError,
    "error_rate_limit_docs_text": RestRateLimitError,
    "error_missing_auth_headers": RestParamsError,
    "error_params_order_id_required": RestParamsError,
    "error_not_supported_symbols": RestParamsError,
    "error_order_not_exist": RestUnknownOrderError,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_error_body_gets_its_class(name: str) -> None:
    code, msg, result, ext, time = decode_envelope(example_bytes(name))
    assert code != 0 and result == {} and ext == {} and time
    limit = RateLimitInfo(10, 0, 1)
    err = error_for_code(code, msg, "/v5/order/create", method="POST", limit=limit)
    assert type(err) is EXPECTED[name]
    assert err.ret_code == code and err.ret_msg == msg
    assert err.http_status == 200 and err.path == "/v5/order/create" and err.limit is limit
    assert str(code) in str(err) and "POST /v5/order/create" in str(err)
    assert err.retryable is (EXPECTED[name] is RestRateLimitError)


def test_timestamp_is_an_auth_error() -> None:
    assert issubclass(RestTimestampError, RestAuthError)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (10000, RestServerError),
        (10016, RestServerError),
        (10017, RestParamsError),
        (10007, RestAuthError),
        (33004, RestAuthError),
        (10024, RestPermissionError),
        (10018, RestRateLimitError),
        (429, RestRateLimitError),
        (110007, RestInsufficientBalanceError),
        (170213, RestUnknownOrderError),
        (110072, RestDuplicateOrderError),
        (110094, RestBusinessError),
        (170136, RestBusinessError),
        (999999, RestBusinessError),
    ],
)
def test_codes(code: int, cls: type[RestError]) -> None:
    err = error_for_code(code, "x", "/p")
    assert type(err) is cls


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (403, RestRateLimitError),
        (429, RestRateLimitError),
        (401, RestAuthError),
        (400, RestParamsError),
        (404, RestParamsError),
        (500, RestServerError),
        (502, RestServerError),
        (503, RestServerError),
        (418, RestTransportError),
    ],
)
def test_http_statuses(status: int, cls: type[RestError]) -> None:
    err = error_for_http(status, b"<html>\n<body>access too frequent</body></html>", "/v5/x")
    assert type(err) is cls
    assert err.http_status == status and err.ret_code is None
    assert "\n" not in str(err) and f"HTTP {status}" in str(err)


def test_http_body_is_truncated_and_empty_403_explained() -> None:
    err = error_for_http(403, b"x" * 10_000, "/v5/x")
    assert len(str(err)) < 600
    assert "access denied" in str(error_for_http(403, b"", "/v5/x"))


def test_non_json_body_is_a_transport_error() -> None:
    with pytest.raises(ValueError):
        decode_envelope(b"<html>")
    with pytest.raises(ValueError):
        decode_envelope(b'{"retMsg": "no code"}')
    code, _, result, ext, _ = decode_envelope(
        b'{"retCode":10001,"retMsg":"empty value","result":null,"retExtInfo":null}'
    )
    assert code == 10001 and result == {} and ext == {}
