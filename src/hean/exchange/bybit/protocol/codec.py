"""Decode Bybit V5 WebSocket frames and classify them; encode client requests.

One :class:`msgspec.Struct` (:class:`Frame`) covers every text frame any V5 endpoint sends:
data pushes (``topic``), pongs, subscribe/auth acks, trade-stream responses and error replies.
Unknown fields are ignored and every field is optional, so a new field or a missing one never
breaks decoding. Timestamps that arrive as strings (the docs show ``"ts": "1772694601512"`` once)
are coerced to ``int`` (``strict=False``).

Pong shapes differ per endpoint (protocol.md §2.2), and all are recognised:

* public spot / linear / inverse: ``{"success": true, "ret_msg": "pong", "op": "ping", ...}``
* public option / spread and private: ``{"op": "pong", "args": ["<server ms>"], ...}``
* trade: ``{"retCode": 0, "retMsg": "OK", "op": "pong", "data": ["<server ms>"], ...}``

so a frame is a pong when ``ret_msg == "pong"`` or ``op == "pong"``. A frame with ``op: "ping"``
that is *not* a pong reply is a ping from the server, answered with ``{"op": "pong"}``.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = [
    "Frame",
    "FrameKind",
    "classify",
    "decode",
    "encode_ping",
    "encode_pong",
    "encode_request",
    "parse_float",
    "parse_float_fast",
    "server_time_ms",
]


class Frame(msgspec.Struct, gc=False):
    """Any text frame from a Bybit V5 WebSocket endpoint (all fields optional)."""

    topic: str | None = None
    type: str | None = None
    ts: int | None = None
    cs: int | None = None
    data: dict[str, Any] | list[Any] | None = None
    cts: int | None = None
    id: str | None = None
    creationTime: int | None = None
    # control replies (snake_case: public and private endpoints)
    op: str | None = None
    success: bool | None = None
    ret_msg: str | None = None
    req_id: str | None = None
    conn_id: str | None = None
    args: list[Any] | None = None
    # control replies (camelCase: trade endpoint)
    retCode: int | None = None
    retMsg: str | None = None
    reqId: str | None = None
    connId: str | None = None


_decoder = msgspec.json.Decoder(Frame, strict=False)
_encoder = msgspec.json.Encoder()

decode = _decoder.decode
"""Decode one frame payload (bytes or str). Raises :class:`msgspec.DecodeError` on bad input."""

parse_float_fast = msgspec.json.Decoder(float).decode
"""A decimal string such as ``"67234.5"`` to a float, ~10x faster than ``float()`` (msgspec's
correctly rounded parser; measured in docs/benchmarks.md). Takes exactly the JSON number
syntax: raises ``ValueError`` on anything else (``""``, ``"NaN"``, ``".5"``) and ``TypeError``
on a non-string. Hot paths call this in ``try`` and fall back to :func:`parse_float`."""


def parse_float(value: Any) -> float | None:
    """A price or size field to a float, whatever Bybit sent: ``None`` when it is not a number
    (``""`` for an empty bid, ``None``); anything ``float()`` accepts is accepted."""
    try:
        return parse_float_fast(value)
    except (TypeError, ValueError):
        pass
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class FrameKind(enum.IntEnum):
    DATA = 0
    """A push for a topic (``topic`` present)."""
    PONG = 1
    """A reply to our ``op: ping`` (any endpoint's shape)."""
    SERVER_PING = 2
    """The server pinging us with ``op: ping``; answer with :func:`encode_pong`."""
    SUBSCRIBE_ACK = 3
    """Ack of a subscribe (including option's ``COMMAND_RESP``)."""
    UNSUBSCRIBE_ACK = 4
    AUTH_ACK = 5
    OP_RESPONSE = 6
    """A trade-stream response (``order.create`` ...)."""
    ERROR = 7
    """``success: false`` with no op we know (e.g. ``Failed to decode incoming data``)."""
    UNKNOWN = 8


def classify(frame: Frame) -> FrameKind:
    """Say what a decoded frame is (see the module docstring for the pong shapes)."""
    if frame.topic is not None:
        return FrameKind.DATA
    op = frame.op
    if frame.ret_msg == "pong" or op == "pong":
        return FrameKind.PONG
    if op == "subscribe" or frame.type == "COMMAND_RESP":
        return FrameKind.SUBSCRIBE_ACK
    if op == "unsubscribe":
        return FrameKind.UNSUBSCRIBE_ACK
    if op == "auth":
        return FrameKind.AUTH_ACK
    if op == "ping":
        return FrameKind.SERVER_PING
    if op is not None and (frame.retCode is not None or frame.reqId is not None):
        return FrameKind.OP_RESPONSE
    if frame.success is False or (frame.retCode is not None and frame.retCode != 0):
        return FrameKind.ERROR
    return FrameKind.UNKNOWN


def server_time_ms(frame: Frame) -> int | None:
    """Server time carried by a private/option (``args``) or trade (``data``) pong, if any."""
    carrier: Any = frame.args if frame.args else frame.data
    if isinstance(carrier, list) and carrier:
        try:
            return int(carrier[0])
        except (TypeError, ValueError):
            return None
    return None


def encode_ping(req_id: str | None = None) -> bytes:
    """``{"req_id": ..., "op": "ping"}`` (``req_id`` left out when ``None``)."""
    if req_id is None:
        return b'{"op":"ping"}'
    return _encoder.encode({"req_id": req_id, "op": "ping"})


def encode_pong() -> bytes:
    """The answer to a server ``op: ping``."""
    return b'{"op":"pong"}'


def encode_request(op: str, args: list[Any], req_id: str | None = None) -> bytes:
    """``{"req_id": ..., "op": op, "args": [...]}`` for subscribe / unsubscribe / auth."""
    if req_id is None:
        return _encoder.encode({"op": op, "args": args})
    return _encoder.encode({"req_id": req_id, "op": op, "args": args})
