"""Exact reply and message shapes, per endpoint kind (protocol.md §2.2, §3.2, §3.3, §5.1).

Key order follows the captured examples (clients must not depend on it, but it costs nothing to
match). Functions return plain dicts; :func:`encode` turns them into JSON bytes with msgspec.

Endpoint kinds: ``spot``, ``linear``, ``inverse`` (public, "spot-style" or "futures-style"
replies) and ``option`` (the option/spread gateway: ``COMMAND_RESP`` acks, ``op:"pong"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

__all__ = [
    "MISSING",
    "all_liquidation",
    "already_subscribed_text",
    "decode_error",
    "decode_error_text",
    "encode",
    "handler_not_found_text",
    "invalid_op",
    "invalid_symbol_text",
    "kline",
    "option_ticker",
    "orderbook",
    "pong",
    "public_trade",
    "subscribe_ack",
    "ticker_delta",
    "ticker_snapshot",
    "ticker_spot",
]


class _Missing:
    """Marker for "the client sent no ``req_id``" (distinct from ``null`` or ``""``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

_encoder = msgspec.json.Encoder()
encode = _encoder.encode

ARGS_SIZE_TEXT: Final = "args size >10"
INVALID_OP_TEXT: Final = "error:invalid op"


def handler_not_found_text(topic: str) -> str:
    """Linear/inverse: unknown topic, symbol or depth."""
    return f"error:handler not found,topic:{topic}"


def already_subscribed_text(topic: str) -> str:
    return f"error:already subscribed,topic:{topic}"


def invalid_symbol_text(topic: str) -> str:
    """Spot: unknown symbol. Captures show the whole topic inside the brackets."""
    return f"Invalid symbol :[{topic}]"


def pong(kind: str, conn_id: str, req_id: object, now_ms: int) -> dict[str, object]:
    """Reply to ``{"op":"ping"}``."""
    if kind == "option":
        return {"args": [str(now_ms)], "op": "pong"}
    out: dict[str, object] = {"success": True, "ret_msg": "pong", "conn_id": conn_id}
    if kind == "spot":
        if req_id is not MISSING:
            out["req_id"] = req_id
    else:
        out["req_id"] = "" if req_id is MISSING else req_id
    out["op"] = "ping"
    return out


def subscribe_ack(
    kind: str,
    op: str,
    conn_id: str,
    req_id: object,
    *,
    success: bool,
    ret_msg: str = "",
    success_topics: Sequence[str] = (),
    fail_topics: Sequence[str] = (),
) -> dict[str, object]:
    """Ack of a subscribe/unsubscribe request (one per request)."""
    if kind == "option":
        return {
            "success": success,
            "conn_id": conn_id,
            "data": {"failTopics": list(fail_topics), "successTopics": list(success_topics)},
            "type": "COMMAND_RESP",
        }
    if kind == "spot":
        msg = op if success else ret_msg
        out: dict[str, object] = {"success": success, "ret_msg": msg, "conn_id": conn_id}
        if req_id is not MISSING:
            out["req_id"] = req_id
    else:
        out = {
            "success": success,
            "ret_msg": ret_msg if not success else "",
            "conn_id": conn_id,
            "req_id": "" if req_id is MISSING else req_id,
        }
    out["op"] = op
    return out


def invalid_op(kind: str, conn_id: str, req_id: object, op: object) -> dict[str, object]:
    """Reply to a JSON object whose ``op`` the endpoint does not know."""
    out: dict[str, object] = {"success": False, "ret_msg": INVALID_OP_TEXT, "conn_id": conn_id}
    if kind in ("linear", "inverse"):
        out["req_id"] = "" if req_id is MISSING else req_id
    elif req_id is not MISSING:
        out["req_id"] = req_id
    out["op"] = op if isinstance(op, str) else ""
    return out


def decode_error(conn_id: str, detail: str) -> dict[str, object]:
    """Reply to a text frame that is not a JSON object of the right shape (socket stays open)."""
    return {
        "success": False,
        "ret_msg": f"Failed to decode incoming data:{detail}",
        "conn_id": conn_id,
        "op": "",
    }


def decode_error_text(payload: bytes, reason: str | None = None) -> str:
    """A jsoniter-style description, e.g. ``readObjectStart: expect { or n, but found h, …``."""
    text = payload.decode("utf-8", "replace")
    stripped = text.lstrip()
    pos = len(text) - len(stripped) + 1
    context = text[:50]
    if reason is None:
        found = stripped[:1] if stripped else "\\x00"
        reason = f"readObjectStart: expect {{ or n, but found {found}"
    where = f"error found in #{pos} byte of ...|{context}|..."
    return f"{reason}, {where}, bigger context ...|{context}|..."


def ticker_snapshot(topic: str, data: dict[str, str], cs: int, ts: int) -> dict[str, object]:
    """Linear/inverse ticker snapshot: ``topic, type, data, cs, ts``."""
    return {"topic": topic, "type": "snapshot", "data": data, "cs": cs, "ts": ts}


def ticker_delta(topic: str, data: dict[str, str], cs: int, ts: int) -> dict[str, object]:
    """Linear/inverse ticker delta: ``data`` holds ``symbol`` plus the changed fields only."""
    return {"topic": topic, "type": "delta", "data": data, "cs": cs, "ts": ts}


def ticker_spot(topic: str, data: dict[str, str], cs: int, ts: int) -> dict[str, object]:
    """Spot ticker (always a full snapshot): ``topic, ts, type, cs, data``."""
    return {"topic": topic, "ts": ts, "type": "snapshot", "cs": cs, "data": data}


def option_ticker(topic: str, data: dict[str, str], seq: int, ts: int) -> dict[str, object]:
    """Option ticker (snapshot only): ``id, topic, ts, data, type``; ``id`` is topic-seq-ts."""
    return {"id": f"{topic}-{seq}-{ts}", "topic": topic, "ts": ts, "data": data, "type": "snapshot"}


def orderbook(
    topic: str,
    kind: str,
    ts: int,
    data: dict[str, object],
    cts: int,
    *,
    ts_first: bool,
) -> dict[str, object]:
    """Order-book message. Spot (all depths) and futures level 1 put ``ts`` before ``type``;
    futures' other depths put it after (protocol.md §5.2, cosmetic)."""
    if ts_first:
        return {"topic": topic, "ts": ts, "type": kind, "data": data, "cts": cts}
    return {"topic": topic, "type": kind, "ts": ts, "data": data, "cts": cts}


def public_trade(topic: str, ts: int, trades: Sequence[object]) -> dict[str, object]:
    """``publicTrade`` message: ``type`` is always ``snapshot``, ``data`` in match order."""
    return {"topic": topic, "type": "snapshot", "ts": ts, "data": list(trades)}


def kline(topic: str, ts: int, candles: Sequence[object]) -> dict[str, object]:
    """``kline`` message: ``topic, data, ts, type`` (as in the docs example)."""
    return {"topic": topic, "data": list(candles), "ts": ts, "type": "snapshot"}


def all_liquidation(topic: str, ts: int, items: Sequence[object]) -> dict[str, object]:
    """``allLiquidation`` message: ``data`` is an array of ``{T, s, S, v, p}``."""
    return {"topic": topic, "type": "snapshot", "ts": ts, "data": list(items)}
