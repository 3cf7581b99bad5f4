"""V5 REST signing: the reference vectors, and the exact strings that get signed."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from hean.core.secrets import Secret
from hean.exchange.bybit.rest.signing import (
    build_query,
    encode_body,
    prepare,
    sign,
    sign_payload,
)
from tests.exchange.bybit.rest.conftest import example

VECTORS = example("signing_vectors")
CASES = VECTORS["cases"]


def _window(case: dict[str, Any]) -> str | None:
    return case["recv_window"] if "recv_window" in case else VECTORS["recv_window"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reference_vectors(case: dict[str, Any]) -> None:
    payload = case["query"] if case["method"] == "GET" else case["body"]
    window = _window(case)
    if "sign_payload" in case:
        assert (
            sign_payload(VECTORS["timestamp"], VECTORS["api_key"], window, payload)
            == (case["sign_payload"])
        )
    got = sign(VECTORS["api_secret"], VECTORS["timestamp"], VECTORS["api_key"], window, payload)
    assert got == case["X-BAPI-SIGN"]
    # the same with masked Secret values
    secret, key = Secret(VECTORS["api_secret"]), Secret.api_key(VECTORS["api_key"])
    assert sign(secret, int(VECTORS["timestamp"]), key, window, payload) == case["X-BAPI-SIGN"]


def _params_of_query(query: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in query.split("&") if query else []:
        key, _, value = part.partition("=")
        out[key] = value
    return out


# HEAN sends compact JSON, so a vector whose body has pybit-style ", " spacing cannot be sent
# byte-for-byte by ``prepare``; its signature is still checked by test_reference_vectors.
SENDABLE = [c for c in CASES if c["method"] == "GET" or ", " not in c["body"]]


def test_every_method_has_a_sendable_vector() -> None:
    assert {c["method"] for c in SENDABLE} == {"GET", "POST"}


@pytest.mark.parametrize("case", SENDABLE, ids=[c["name"] for c in SENDABLE])
def test_prepare_reproduces_each_vector_byte_for_byte(case: dict[str, Any]) -> None:
    window = _window(case)
    if case["method"] == "GET":
        params = _params_of_query(case["query"])
    else:
        params = json.loads(case["body"])
    req = prepare(
        case["method"],
        case["path"],
        params,
        api_key=VECTORS["api_key"],
        api_secret=Secret(VECTORS["api_secret"]),
        timestamp_ms=int(VECTORS["timestamp"]),
        recv_window=None if window is None else int(window),
    )
    if case["method"] == "GET":
        assert req.query == case["query"]
        assert req.body is None
        assert "Content-Type" not in req.headers
    else:
        assert req.body == case["body"].encode()
        assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-BAPI-SIGN"] == case["X-BAPI-SIGN"]
    assert req.headers["X-BAPI-API-KEY"] == VECTORS["api_key"]
    assert req.headers["X-BAPI-TIMESTAMP"] == VECTORS["timestamp"]
    assert req.headers.get("X-BAPI-RECV-WINDOW") == window


def test_query_keeps_order_drops_none_and_formats_values() -> None:
    query = build_query(
        {
            "category": "linear",
            "symbol": None,
            "limit": 50,
            "openOnly": 0,
            "reduceOnly": True,
            "flag": False,
            "qty": Decimal("0.00100"),
            "price": 1e-05,
            "coin": ["USDT", "USDC"],
            "baseCoin": "BTC",
        }
    )
    assert query == (
        "category=linear&limit=50&openOnly=0&reduceOnly=true&flag=false&qty=0.001"
        "&price=0.00001&coin=USDT,USDC&baseCoin=BTC"
    )
    assert build_query(None) == "" and build_query({}) == ""


def test_cursor_is_sent_verbatim_other_values_are_url_safe() -> None:
    cursor = "page_args%3Dfd4300ae-7847-404e-b947-b46980a4d140%26symbol%3D6%26"
    query = build_query({"category": "linear", "cursor": cursor, "orderLinkId": "a b&c+d/é"})
    assert query == f"category=linear&cursor={cursor}&orderLinkId=a%20b%26c%2Bd%2F%C3%A9"
    # a value can never inject a parameter
    assert build_query({"symbol": "BTCUSDT&category=spot"}) == "symbol=BTCUSDT%26category%3Dspot"
    # list items are encoded once, like a single value (not "a%2520b")
    assert build_query({"coin": ["a b", "USDT&x", 5]}) == "coin=a%20b,USDT%26x,5"


def test_query_refuses_bad_names_and_types() -> None:
    with pytest.raises(ValueError):
        build_query({"a&b": "x"})
    with pytest.raises(TypeError):
        build_query({"x": object()})
    with pytest.raises(ValueError):
        build_query({"qty": float("nan")})


def test_body_is_compact_with_numbers_as_strings() -> None:
    body = encode_body(
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "qty": 0.001,
            "price": Decimal("30000.0"),
            "orderLinkId": None,
            "positionIdx": 0,
            "reduceOnly": True,
        }
    )
    assert body == (
        b'{"category":"linear","symbol":"BTCUSDT","qty":"0.001","price":"30000",'
        b'"positionIdx":0,"reduceOnly":true}'
    )
    batch = encode_body(
        {"category": "spot", "request": [{"symbol": "BTCUSDT", "qty": 1, "price": None}]}
    )
    assert batch == b'{"category":"spot","request":[{"symbol":"BTCUSDT","qty":"1"}]}'


def test_prepare_public_and_errors() -> None:
    req = prepare("get", "/v5/market/time")
    assert req.method == "GET" and req.query == "" and req.headers == {} and not req.signed
    assert req.target == "/v5/market/time"
    with pytest.raises(ValueError):
        prepare("PUT", "/v5/x")
    with pytest.raises(ValueError):
        prepare("GET", "/v5/x?a=1")
    with pytest.raises(ValueError):
        prepare("GET", "/v5/x", api_key="k")  # half the credentials
    with pytest.raises(ValueError):
        prepare("GET", "/v5/x", api_key="k", api_secret="s")  # no timestamp


def test_prepared_request_repr_shows_no_key_or_signature() -> None:
    req = prepare(
        "POST",
        "/v5/order/create",
        {"category": "linear", "symbol": "BTCUSDT"},
        api_key=VECTORS["api_key"],
        api_secret=VECTORS["api_secret"],
        timestamp_ms=1,
        referer="broker-1",
    )
    text = repr(req)
    assert VECTORS["api_key"] not in text
    assert req.headers["X-BAPI-SIGN"] not in text
    assert VECTORS["api_secret"] not in text
    assert req.headers["Referer"] == "broker-1"
    assert req.headers["X-BAPI-SIGN-TYPE"] == "2"
