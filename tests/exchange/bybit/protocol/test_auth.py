"""Auth signing, request shape, clock offset estimation and failure classification."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from hean.core.secrets import Secret
from hean.exchange.bybit.protocol.auth import (
    Authenticator,
    AuthError,
    AuthReason,
    ClockOffset,
    auth_request,
    classify_auth_failure,
    sign,
)
from hean.exchange.bybit.protocol.codec import decode
from tests.conftest import example, example_bytes

SECRET = "my-api-secret-0123456789"


def expected_signature(secret: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("expires", [1662350400000, 1711010121452, 1, 99999999999999])
def test_sign_matches_an_independent_hmac(expires: int) -> None:
    assert sign(SECRET, expires) == expected_signature(SECRET, expires)
    assert sign(Secret(SECRET), expires) == expected_signature(SECRET, expires)
    sig = sign(SECRET, expires)
    assert len(sig) == 64 and sig == sig.lower()


def test_known_vector() -> None:
    # Computed independently with `printf 'GET/realtime1000' | openssl dgst -sha256 -hmac secret`.
    assert sign("secret", 1000) == (
        "487e15e0f276b9bbe10b25a59032b1dd1fb6190abf4019af2b766f3a5d241f98"
    )
    assert sign("secret", 1000) != sign("secret", 1001)
    assert sign("secret", 1000) != sign("secreT", 1000)


def test_private_auth_request_has_the_documented_shape() -> None:
    fixture = example("auth_request")
    payload = auth_request("api_key", SECRET, 1662350390000, req_id="10001")
    msg = json.loads(payload)
    assert list(msg) == list(fixture)  # req_id, op, args
    assert msg["req_id"] == "10001" and msg["op"] == "auth"
    key, expires, sig = msg["args"]
    assert key == "api_key" and isinstance(expires, int) and expires == 1662350400000
    assert sig == expected_signature(SECRET, expires)


def test_trade_auth_request_has_the_documented_shape() -> None:
    fixture = example("trade_auth_request")
    payload = auth_request(Secret.api_key("XXXXXX"), Secret(SECRET), 1711010111452)
    msg = json.loads(payload)
    assert list(msg) == list(fixture)  # op, args (no request id)
    assert msg["args"][:2] == ["XXXXXX", 1711010121452]
    with_id = json.loads(auth_request("k", SECRET, 0, req_id="a1", req_id_key="reqId"))
    assert with_id["reqId"] == "a1"


def test_window_and_clock_offset_move_expires() -> None:
    msg = json.loads(auth_request("k", SECRET, 1_000_000, window_ms=5_000, clock_offset_ms=7_300))
    assert msg["args"][1] == 1_012_300
    with pytest.raises(ValueError):
        auth_request("k", SECRET, 0, window_ms=0)


def test_clock_offset_is_median_of_round_trip_midpoints() -> None:
    offset = ClockOffset(max_samples=5)
    assert offset.estimate_ms is None
    assert "unknown" in offset.describe()
    # server 7.3 s ahead; 100 ms round trips stamped at the midpoint
    for i in range(5):
        sent = 1_000_000 + i * 20_000
        sample = offset.add_round_trip(sent + 50 + 7_300, sent, sent + 100)
        assert sample == pytest.approx(7_300)
    assert offset.estimate_ms == pytest.approx(7_300)
    assert offset.last_rtt_ms == pytest.approx(100)
    # one wild sample (a stalled reply) does not move the median
    offset.add_round_trip(2_000_000 + 9_000, 2_000_000, 2_000_000 + 18_000)
    assert offset.estimate_ms == pytest.approx(7_300)
    assert offset.count == 5  # bounded
    assert offset.describe() == "local clock is 7.3 s behind the server (measured from pongs)"
    ahead = ClockOffset()
    ahead.add(-2_500)
    assert "2.5 s ahead of the server" in ahead.describe()


@pytest.mark.parametrize(
    ("ret_msg", "ret_code", "reason"),
    [
        ("API key is invalid", 10003, AuthReason.BAD_KEY),
        ("Invalid apikey", None, AuthReason.BAD_KEY),
        ("API key is invalid. Check whether the key and domain are matched", None, "bad_key"),
        ("Error sign, please check your signature generation algorithm.", 10004, "bad_signature"),
        ("invalid sign", 10004, AuthReason.BAD_SIGNATURE),
        ("error:verify signature fail", None, AuthReason.BAD_SIGNATURE),
        ("Params Error", None, AuthReason.EXPIRED),
        ("param error", 10001, AuthReason.EXPIRED),
        ("request expired", 10002, AuthReason.EXPIRED),
        ("error:request expired", None, AuthReason.EXPIRED),
        ("repeat auth", 20001, AuthReason.REPEAT_AUTH),
        ("Too many sessions under the same UID", 10003, AuthReason.TOO_MANY_SESSIONS),
        ("error:USVC1111", None, AuthReason.UNKNOWN),
        ("", None, AuthReason.UNKNOWN),
    ],
)
def test_failure_classification(ret_msg: str, ret_code: int | None, reason: str) -> None:
    failure = classify_auth_failure(ret_msg, ret_code)
    assert failure.reason == reason
    assert failure.retryable is (reason not in ("bad_key", "bad_signature"))
    assert failure.message.startswith("auth")


def test_expiry_with_a_measured_skew_says_so() -> None:
    failure = classify_auth_failure("Params Error", offset_ms=7_300, window_ms=10_000)
    assert failure.reason is AuthReason.CLOCK_SKEW
    assert failure.message.startswith(
        "auth rejected: request expired — local clock is 7.3 s behind the server "
        "(measured from pongs); expires window 10 s"
    )
    # the offset was already corrected for in the request: skew does not explain it
    corrected = classify_auth_failure(
        "Params Error", offset_ms=7_300, applied_offset_ms=7_250, window_ms=10_000
    )
    assert corrected.reason is AuthReason.EXPIRED
    assert "7.3 s behind" in corrected.message and "does not explain" in corrected.message
    unknown = classify_auth_failure("Params Error")
    assert unknown.reason is AuthReason.EXPIRED and "offset unknown" in unknown.message


def test_authenticator_builds_frames_and_judges_acks() -> None:
    sigs: list[str] = []
    auth = Authenticator(
        "api_key",
        SECRET,
        wall_ms=lambda now: 1_700_000_000_000 + int(now * 1000),
        on_signature=sigs.append,
    )
    msg = json.loads(auth.auth_request(1.0))
    assert msg["req_id"] == "auth-1" and msg["op"] == "auth"
    assert msg["args"][1] == 1_700_000_011_000
    assert sigs == [msg["args"][2]]
    assert auth.auth_result(decode(example_bytes("auth_ok")), 1.1) is None
    failure = auth.auth_result(decode(example_bytes("auth_fail")), 1.1)
    assert failure is not None and failure.reason is AuthReason.EXPIRED
    # a pong says the server is 12 s ahead: the next request corrects expires for it
    auth.on_server_time(1_700_000_000_000 + 2_050 + 12_000, 2.1, 0.1)
    assert auth.offset.estimate_ms == pytest.approx(12_000)
    msg = json.loads(auth.auth_request(3.0))
    assert msg["args"][1] == pytest.approx(1_700_000_000_000 + 3_000 + 12_000 + 10_000, abs=1)
    assert "api_key" not in repr(auth) and SECRET not in repr(auth)


def test_trade_authenticator_and_its_acks() -> None:
    auth = Authenticator("k", SECRET, wall_ms=lambda now: 0, stream="trade")
    assert list(json.loads(auth.auth_request(0.0))) == ["op", "args"]
    assert auth.auth_result(decode(example_bytes("trade_auth_ok")), 0.0) is None
    bad = decode(b'{"retCode":10004,"retMsg":"invalid sign","op":"auth","connId":"c"}')
    failure = auth.auth_result(bad, 0.0)
    assert failure is not None and failure.reason is AuthReason.BAD_SIGNATURE
    error = AuthError(failure)
    assert error.reason is AuthReason.BAD_SIGNATURE and str(error) == failure.message
    with pytest.raises(ValueError):
        Authenticator("k", SECRET, wall_ms=lambda now: 0, stream="public")  # type: ignore[arg-type]
