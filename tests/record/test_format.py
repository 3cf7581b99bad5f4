"""The line format: records round-trip, frames with a newline stay one line, auth is masked."""

from __future__ import annotations

import msgspec
import pytest

from hean.record.format import encode_event, encode_frame_b64, mask_auth, parse_line


def test_event_line_round_trips() -> None:
    line = encode_event(1_700_000_000_123_456_789, 3, "closed", {"reason": "x\ty", "code": 1006})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    rec = parse_line(line)
    assert (rec.t, rec.conn, rec.kind) == (1_700_000_000_123_456_789, 3, "closed")
    assert rec.json() == {"reason": "x\ty", "code": 1006}


def test_frame_with_tabs_is_kept_verbatim() -> None:
    payload = b'{"topic":"tickers.BTCUSDT","data":{"a":"\t"}}'
    rec = parse_line(b"5\t1\trecv\t" + payload + b"\n")
    assert rec.payload == payload and rec.kind == "recv"


def test_frame_with_a_newline_is_base64() -> None:
    payload = b'{"op":"pong",\n"x":1}'
    line = encode_frame_b64(7, 2, "recv", payload)
    assert line.count(b"\n") == 1 and b"\trecv64\t" in line
    rec = parse_line(line)
    assert (rec.kind, rec.payload) == ("recv", payload)


def test_bad_line_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_line(b"not a record\n")


def test_auth_key_and_signature_are_masked() -> None:
    frame = b'{"req_id":"a1","op":"auth","args":["MYKEY123",1700000000000,"deadbeefsig"]}'
    masked = mask_auth(frame)
    assert b"MYKEY123" not in masked and b"deadbeefsig" not in masked
    assert msgspec.json.decode(masked) == {
        "req_id": "a1",
        "op": "auth",
        "args": ["***", 1700000000000, "***"],
    }
    assert mask_auth(b'{"op": "auth", garbage MYKEY') == b'{"op":"auth","args":"***"}'
    other = b'{"op":"subscribe","args":["order"]}'
    assert mask_auth(other) is other
