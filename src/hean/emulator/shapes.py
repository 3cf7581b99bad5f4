"""Exact reply and message shapes, per endpoint kind (protocol.md §2.2, §3.2, §3.3, §5.1).

Key order follows the captured examples (clients must not depend on it, but it costs nothing to
match). Functions return plain dicts; :func:`encode` turns them into JSON bytes with msgspec.

Endpoint kinds: ``spot``, ``linear``, ``inverse`` (public, "spot-style" or "futures-style"
replies) and ``option`` (the option/spread gateway: ``COMMAND_RESP`` acks, ``op:"pong"``).
The private and trade streams' replies and pushes are at the end, with the failure texts the
emulator chose where Bybit documents none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

__all__ = [
    "ARGS_LENGTH_TEXT",
    "ARGS_SIZE_TEXT",
    "INVALID_KEY_TEXT",
    "INVALID_SIGN_TEXT",
    "MISSING",
    "NOT_AUTHORIZED_TEXT",
    "OP_NOT_FOUND_TEXT",
    "PARAMS_ERROR_TEXT",
    "PRIVATE_TOPIC_ERROR_TEXT",
    "REPEAT_AUTH_TEXT",
    "TOO_MANY_SESSIONS_TEXT",
    "TRADE_TEXTS",
    "adl_alert",
    "all_liquidation",
    "already_subscribed_text",
    "decode_error",
    "decode_error_text",
    "encode",
    "handler_not_found_text",
    "insurance",
    "invalid_op",
    "invalid_symbol_text",
    "kline",
    "option_ticker",
    "orderbook",
    "pong",
    "price_limit",
    "private_message",
    "private_pong",
    "private_reply",
    "public_trade",
    "recv_window_text",
    "subscribe_ack",
    "system_status",
    "ticker_delta",
    "ticker_lt",
    "ticker_snapshot",
    "ticker_spot",
    "trade_auth_reply",
    "trade_pong",
    "trade_reply",
    "trade_text",
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
#: A subscribe that would take the total length of a public connection's ``args`` above 21,000
#: characters (protocol.md §3.4). Bybit documents the limit but not its failure text: this text
#: is the emulator's choice (not observed), in the style of the other ``error:`` texts.
ARGS_LENGTH_TEXT: Final = "error:args length exceeds 21000 characters per connection"
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


def insurance(topic: str, kind: str, ts: int, items: Sequence[object]) -> dict[str, object]:
    """``insurance.{pool}``: ``data`` is an array of ``{coin, symbols, balance, updateTime}``."""
    return {"topic": topic, "type": kind, "ts": ts, "data": list(items)}


def adl_alert(topic: str, ts: int, items: Sequence[object]) -> dict[str, object]:
    """``adlAlert.{pool}``: always ``snapshot``; items ``{c, s, b, mb, i_pr, pr, adl_tt, adl_sr}``
    with JSON numbers, as in Bybit's example."""
    return {"topic": topic, "type": "snapshot", "ts": ts, "data": list(items)}


def price_limit(topic: str, data: dict[str, str], ts: int) -> dict[str, object]:
    """``priceLimit.{symbol}``: no ``type`` field; ``data`` is ``{symbol, buyLmt, sellLmt}``."""
    return {"topic": topic, "data": data, "ts": ts}


def system_status(ts: int, items: Sequence[object]) -> dict[str, object]:
    """``system.status``: no ``type``; ``data`` is an array of maintenance windows."""
    return {"topic": "system.status", "ts": ts, "data": list(items)}


def ticker_lt(topic: str, ts: int, data: dict[str, str]) -> dict[str, object]:
    """``tickers_lt.{token}`` (deprecated leveraged-token ticker): always a ``snapshot``."""
    return {"topic": topic, "ts": ts, "type": "snapshot", "data": data}


# -- private and trade streams (protocol.md §2.2, §3.2, §3.5, §4, §6, §7) -------------------------
#
# Bybit documents only the success shapes of the private and trade streams. The failure texts
# below are the emulator's choices, picked as the most plausible (each comment says why);
# clients should key on ``success`` / ``retCode``, never on these texts.

#: Private auth with an ``expires`` in the server's past, or malformed auth ``args``: observed
#: (pybit #152/#300, api-usage-examples #70). Trade stream: ``retCode`` 10001 with this text.
PARAMS_ERROR_TEXT: Final = "Params Error"
#: Unknown API key. Not documented for the WebSocket gateways; Bybit's REST text for 10003.
INVALID_KEY_TEXT: Final = "API key is invalid."
#: Signature does not verify. Not documented for the WebSocket gateways; Bybit's REST text for
#: 10004.
INVALID_SIGN_TEXT: Final = "Error sign, please check your signature generation algorithm."
#: A second ``auth`` on an authenticated connection (trade: ``retCode`` 20001; the private text is
#: the emulator's choice, in the same words).
REPEAT_AUTH_TEXT: Final = "Repeat auth"
#: Trade 10003 "too many sessions under the same UID" (code documented, text chosen; only sent
#: when the ``auth_reject=too_many_sessions`` fault is set).
TOO_MANY_SESSIONS_TEXT: Final = "Too many sessions under the same UID"
#: A private subscribe, or a trade request, before a successful auth (emulator's choice; trade
#: answers ``retCode`` 10003 with it).
NOT_AUTHORIZED_TEXT: Final = "Request not authorized, please auth first"
#: Private subscribe with a public or unknown topic, or with the all-in-one and the categorised
#: form of one stream (``order`` and ``order.linear``) in one request: the whole request fails.
#: ``Params Error`` is what a public topic on a private (demo) endpoint got (bybit-api #411); the
#: mixed-forms rule is documented without a text, and the same words are used for it.
PRIVATE_TOPIC_ERROR_TEXT: Final = PARAMS_ERROR_TEXT
#: Trade op not known (code 10404 documented; text chosen).
OP_NOT_FOUND_TEXT: Final = "op type not found"

#: ``retCode`` -> ``retMsg`` for codes the emulator sends without more specific words.
TRADE_TEXTS: Final[dict[int, str]] = {
    0: "OK",
    10001: PARAMS_ERROR_TEXT,
    10003: INVALID_KEY_TEXT,
    10004: INVALID_SIGN_TEXT,
    10006: "Too many visits. Exceeded the API Rate Limit.",
    10016: "Internal server error.",
    10019: "ws trade service is restarting, do not send new request",
    10404: OP_NOT_FOUND_TEXT,
    10429: "System level frequency protection.",
    20001: REPEAT_AUTH_TEXT,
    20003: "Too frequent requests under the same session.",
    20006: "reqId is duplicate",
    110001: "order not exists or too late to cancel",
    110007: "ab not enough for new order",
    110017: "Reduce-only rule not satisfied",
    110072: "OrderLinkedID is duplicate",
    170131: "Insufficient balance.",
    170213: "Order does not exist.",
}


def trade_text(code: int) -> str:
    """The emulator's ``retMsg`` for ``code`` (a generic text for codes it has no words for)."""
    return TRADE_TEXTS.get(code, f"error {code}")


def recv_window_text(timestamp: int, server_ms: int, recv_window: int) -> str:
    """``retMsg`` of 10002 (REST's wording, which the trade stream passes through)."""
    return (
        "invalid request, please check your server timestamp or recv_window param. "
        f"req_timestamp[{timestamp}],server_timestamp[{server_ms}],recv_window[{recv_window}]"
    )


def private_pong(conn_id: str, req_id: object, now_ms: int) -> dict[str, object]:
    """Private pong: ``{"req_id"?, "op": "pong", "args": ["<ms>"], "conn_id"}`` (``req_id`` only
    when the ping had one)."""
    out: dict[str, object] = {}
    if req_id is not MISSING:
        out["req_id"] = req_id
    out["op"] = "pong"
    out["args"] = [str(now_ms)]
    out["conn_id"] = conn_id
    return out


def private_reply(
    op: str, conn_id: str, req_id: object, *, success: bool, ret_msg: str = ""
) -> dict[str, object]:
    """Private ``auth`` / ``subscribe`` / ``unsubscribe`` reply:
    ``{"req_id"?, "success", "ret_msg", "op", "conn_id"}``."""
    out: dict[str, object] = {}
    if req_id is not MISSING:
        out["req_id"] = req_id
    out["success"] = success
    out["ret_msg"] = ret_msg
    out["op"] = op
    out["conn_id"] = conn_id
    return out


def trade_pong(conn_id: str, req_id: object, now_ms: int) -> dict[str, object]:
    """Trade pong: ``{"reqId"?, "retCode": 0, "retMsg": "OK", "op": "pong", "data": ["<ms>"],
    "connId"}``."""
    out: dict[str, object] = {}
    if req_id is not MISSING:
        out["reqId"] = req_id
    out.update(retCode=0, retMsg="OK", op="pong", data=[str(now_ms)], connId=conn_id)
    return out


def trade_auth_reply(conn_id: str, req_id: object, code: int, msg: str) -> dict[str, object]:
    """Trade auth reply: ``{"reqId"?, "retCode", "retMsg", "op": "auth", "connId"}``."""
    out: dict[str, object] = {}
    if req_id is not MISSING:
        out["reqId"] = req_id
    out.update(retCode=code, retMsg=msg, op="auth", connId=conn_id)
    return out


def trade_reply(
    op: object,
    conn_id: str,
    req_id: object,
    code: int,
    msg: str,
    *,
    data: object = None,
    ret_ext_info: object = None,
    header: dict[str, str] | None = None,
) -> dict[str, object]:
    """Trade op reply: ``{"reqId"?, "retCode", "retMsg", "op", "data", "retExtInfo"?, "header"?,
    "connId"}`` (``retExtInfo`` on success, as in the docs' samples; errors leave it out)."""
    out: dict[str, object] = {}
    if req_id is not MISSING:
        out["reqId"] = req_id
    out["retCode"] = code
    out["retMsg"] = msg
    out["op"] = op if isinstance(op, str) else ""
    out["data"] = {} if data is None else data
    if ret_ext_info is not None:
        out["retExtInfo"] = ret_ext_info
    if header is not None:
        out["header"] = header
    out["connId"] = conn_id
    return out


def private_message(
    stream: str, topic: str, msg_id: str, creation_ms: int, items: Sequence[object]
) -> dict[str, object]:
    """A private push. Key order as in the docs' examples: ``execution`` puts ``topic`` first,
    the other streams ``id``; ``execution.fast`` has no ``id``."""
    if stream == "execution.fast":
        return {"topic": topic, "creationTime": creation_ms, "data": list(items)}
    if stream == "execution":
        return {"topic": topic, "id": msg_id, "creationTime": creation_ms, "data": list(items)}
    return {"id": msg_id, "topic": topic, "creationTime": creation_ms, "data": list(items)}
