"""The rate limiter and the retry policy (sans-I/O, server-time milliseconds)."""

from __future__ import annotations

import random

import pytest

from hean.exchange.bybit.rest.errors import (
    RestAuthError,
    RestBusinessError,
    RestParamsError,
    RestPermissionError,
    RestRateLimitError,
    RestServerError,
    RestTimestampError,
    RestTransportError,
    error_for_code,
    error_for_http,
)
from hean.exchange.bybit.rest.limits import (
    DEFAULT_BLOCK_MS,
    RateLimiter,
    RateLimitInfo,
    RetryPolicy,
    endpoint_group,
    parse_limit_headers,
)
from tests.exchange.bybit.rest.conftest import example

RNG = random.Random(1)


def test_headers_from_the_example() -> None:
    info = parse_limit_headers(example("response_headers"))
    assert info == RateLimitInfo(10, 9, 1672738134824)
    lower = {k.lower(): v for k, v in example("response_headers").items()}
    assert parse_limit_headers(lower) == info
    assert parse_limit_headers({"Content-Type": "application/json"}) is None
    assert parse_limit_headers({"X-Bapi-Limit-Status": "x"}) == RateLimitInfo(None, None, None)


def test_groups() -> None:
    assert endpoint_group("GET", "/v5/market/kline") is None
    assert endpoint_group("GET", "/v5/order/realtime", "linear") == "/v5/order/realtime"
    assert endpoint_group("POST", "/v5/order/create", "linear") == (
        endpoint_group("POST", "/v5/order/create", "inverse")
    )
    assert endpoint_group("POST", "/v5/order/create", "spot") != (
        endpoint_group("POST", "/v5/order/create", "linear")
    )
    assert endpoint_group("POST", "/v5/order/create-batch", "linear") != (
        endpoint_group("POST", "/v5/order/create", "linear")
    )


def test_nothing_known_means_no_wait() -> None:
    lim = RateLimiter()
    assert lim.wait_ms("/v5/order/realtime", 1000) == 0
    assert lim.wait_ms(None, 1000) == 0


def test_exhausted_quota_waits_for_the_reset_time_in_the_future() -> None:
    lim = RateLimiter()
    g = "/v5/execution/list"
    lim.on_sent(g, 1000)
    lim.on_answer(g, RateLimitInfo(50, 0, 1700), 1000)
    assert lim.group(g) == RateLimitInfo(50, 0, 1700)
    assert lim.wait_ms(g, 1000) == 700
    assert lim.wait_ms(g, 1500) == 200
    assert lim.wait_ms(g, 1700) == 0
    assert lim.wait_ms("/v5/position/list", 1000) == 0  # other groups unaffected
    assert lim.waits == 2
    # once the window has passed, what is left is unknown until the next answer
    assert lim.group(g) == RateLimitInfo(50, None, 1700) and lim.group("/v5/position/list") is None


def test_exhausted_quota_with_reset_now_waits_one_window() -> None:
    lim = RateLimiter(window_ms=1000)
    g = "/v5/order/history"
    lim.on_sent(g, 5000)
    lim.on_answer(g, RateLimitInfo(50, 0, 5000), 5000)  # allowed: reset = now
    assert lim.wait_ms(g, 5000) == 1000
    assert lim.wait_ms(g, 6000) == 0


def test_requests_in_flight_count_against_what_is_left() -> None:
    lim = RateLimiter()
    g = "/v5/order/realtime"
    lim.on_sent(g, 0)
    lim.on_answer(g, RateLimitInfo(50, 2, 0), 0)
    lim.on_sent(g, 1)
    assert lim.wait_ms(g, 1) == 0
    lim.on_sent(g, 1)
    assert lim.wait_ms(g, 1) > 0  # 2 left, 2 in flight
    lim.on_lost(g)
    assert lim.wait_ms(g, 1) == 0


def test_10006_blocks_until_reset_or_two_seconds() -> None:
    lim = RateLimiter()
    g = "/v5/order/create:futures"
    lim.on_sent(g, 1000)
    lim.on_answer(g, RateLimitInfo(10, 0, 1800), 1000, blocked=True)
    assert lim.wait_ms(g, 1000) == 800
    h = "/v5/order/amend:futures"
    lim.on_sent(h, 1000)
    lim.on_answer(h, None, 1000, blocked=True)  # no header: now + 2 s
    assert lim.wait_ms(h, 1000) == DEFAULT_BLOCK_MS
    assert lim.wait_ms(h, 1000 + DEFAULT_BLOCK_MS) == 0


def test_ip_window() -> None:
    lim = RateLimiter(ip_limit=3, ip_window_ms=5000)
    for t in (0, 10, 20):
        assert lim.wait_ms(None, t) == 0
        lim.on_sent(None, t)
    assert lim.wait_ms(None, 30) == 4970
    assert lim.wait_ms(None, 5000) == 0


def _decide(policy: RetryPolicy, err: object, **kw: object) -> object:
    args: dict[str, object] = {
        "retries": 0,
        "resynced": False,
        "idempotent": True,
        "now_ms": 1000,
        "rng": RNG,
    }
    args.update(kw)
    return policy.decide(err, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "err",
    [
        error_for_code(10003, "API key is invalid.", "/p"),
        error_for_code(10004, "error sign!", "/p"),
        error_for_code(10005, "Permission denied", "/p"),
        error_for_code(10010, "Unmatched IP", "/p"),
        error_for_code(10001, "params error", "/p"),
        error_for_code(110001, "Order does not exist", "/p"),
        error_for_code(110007, "balance", "/p"),
        error_for_http(401, b"", "/p"),
        error_for_http(404, b"", "/p"),
    ],
)
def test_never_retried(err: object) -> None:
    assert isinstance(
        err, RestAuthError | RestPermissionError | RestParamsError | RestBusinessError
    )
    assert _decide(RetryPolicy(), err) is None
    assert _decide(RetryPolicy(), err, idempotent=False) is None


def test_timestamp_retried_once_with_resync() -> None:
    err = error_for_code(10002, "invalid request", "/p")
    assert isinstance(err, RestTimestampError)
    decision = _decide(RetryPolicy(), err)
    assert decision is not None and decision.resync and decision.delay == 0.0  # type: ignore[attr-defined]
    assert _decide(RetryPolicy(), err, resynced=True) is None
    assert _decide(RetryPolicy(), err, idempotent=False) is not None  # not processed: safe


def test_10006_waits_until_the_reset_time() -> None:
    policy = RetryPolicy(base_delay=0.1, jitter=0.5)
    err = error_for_code(10006, "Too many visits", "/p", limit=RateLimitInfo(10, 0, 2500))
    decision = _decide(policy, err, now_ms=1000, idempotent=False)
    assert decision is not None
    assert 1.5 < decision.delay <= 1.5 + 0.05 + 0.002  # type: ignore[attr-defined]
    no_header = error_for_code(10006, "Too many visits", "/p")
    decision = _decide(policy, no_header, now_ms=1000)
    assert decision is not None and 2.0 < decision.delay < 2.1  # type: ignore[attr-defined]
    far = error_for_code(10006, "x", "/p", limit=RateLimitInfo(10, 0, 1000 + 600_000))
    assert _decide(policy, far) is None  # more than max_rate_limit_wait away


def test_backoff_statuses_and_bounds() -> None:
    policy = RetryPolicy(max_retries=3, base_delay=0.5, max_delay=4.0, jitter=0.5)
    for err in (
        error_for_http(403, b"", "/p"),
        error_for_http(429, b"", "/p"),
        error_for_code(429, "high load", "/p"),
    ):
        assert isinstance(err, RestRateLimitError)
        delays = []
        for retries in range(3):
            d = _decide(policy, err, retries=retries, idempotent=False)
            assert d is not None
            delays.append(d.delay)  # type: ignore[attr-defined]
        assert all(0.25 <= x <= 6.0 for x in delays)
        assert _decide(policy, err, retries=3) is None
    for err in (
        error_for_http(503, b"", "/p"),
        error_for_code(10016, "Server error.", "/p"),
        RestTransportError("timeout", "/p"),
    ):
        assert isinstance(err, RestServerError | RestTransportError)
        assert _decide(policy, err) is not None
        assert _decide(policy, err, idempotent=False) is None  # order entry: outcome unknown
        assert _decide(policy, err, retries=3) is None


def test_backoff_grows_is_capped_and_never_zero() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=2.0, jitter=0.5)
    rng = random.Random(3)
    for retries in range(10):
        for _ in range(50):
            d = policy.backoff(retries, rng)
            cap = min(2.0, 0.5 * 2**retries)
            assert cap * 0.5 <= d <= cap * 1.5
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=0)
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    assert _decide(RetryPolicy(max_retries=0), error_for_http(503, b"", "/p")) is None
