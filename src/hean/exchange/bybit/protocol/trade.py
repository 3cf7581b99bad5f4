"""Order entry over the trade stream, sans-I/O (protocol.md §7).

:class:`TradeRequests` builds request frames, remembers every request until its response, and
matches responses by ``reqId``. It never reads a clock: callers pass ``now`` (monotonic seconds)
and it gets wall time from an injected ``wall_ms(now)``. Outcomes (a :class:`TradeResponse`, or a
:class:`TradeRequestError`) go to the ``on_outcome`` callback given at construction.

Request (header values are strings, the docs' form)::

    {"reqId": "hean-3f2a9c1e-17",
     "header": {"X-BAPI-TIMESTAMP": "1711001595207", "X-BAPI-RECV-WINDOW": "5000",
                "Referer": "bot-001"},
     "op": "order.create",
     "args": [{"category": "linear", "symbol": "ETHUSDT", ...}]}

``X-BAPI-TIMESTAMP`` is the local wall time plus the measured server clock offset (the server
accepts ``server_time - recv_window <= timestamp < server_time + 1000``). Batch ops put
``{"category": ..., "request": [...]}`` in ``args``: at most 20 orders (10 for spot).

Outcomes, and what they promise:

* ``retCode == 0``: a :class:`TradeResponse` (an *ack*: the order may still be rejected or filled
  later; the private ``order`` stream says which). A batch answers ``retCode`` 0 overall with a
  per-order ``code`` in :attr:`TradeResponse.results`; per-order failures are not raised.
* ``retCode != 0``: a :class:`TradeError` subclass picked by code (rate limit, duplicate reqId,
  service restarting, timestamp, insufficient balance, unknown order ...).
* no response within the timeout: :class:`TradeTimeout`; the connection dropped first:
  :class:`TradeConnectionLost`. In both cases **the outcome is unknown** (the order may or may not
  exist): reconcile through the ``order`` stream or REST. Nothing is ever re-sent automatically,
  so an order is never entered twice by this layer.
* ``10016`` / ``10019`` (service restarting): the error is raised to the caller and
  :attr:`TradeRequests.restart_requested` is set; the shell opens a fresh connection once no
  request is in flight on the old one (new requests are refused meanwhile).
"""

from __future__ import annotations

import decimal
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from hean.exchange.bybit.protocol.auth import ClockOffset

__all__ = [
    "BATCH_OPS",
    "OPS",
    "BatchResult",
    "Outcome",
    "PendingTrade",
    "TradeConnectionLost",
    "TradeDuplicateRequest",
    "TradeError",
    "TradeInsufficientBalance",
    "TradeNotReady",
    "TradeRateLimited",
    "TradeRequestError",
    "TradeRequestStats",
    "TradeRequests",
    "TradeResponse",
    "TradeServiceRestarting",
    "TradeTimeout",
    "TradeTimestampError",
    "TradeUnknownOrder",
    "batch_limit",
    "batch_results",
    "check_batch",
    "decode_response",
    "encode_trade_request",
    "error_for",
    "to_api_number",
]

log = logging.getLogger("hean.trade")

OPS = (
    "order.create",
    "order.amend",
    "order.cancel",
    "order.create-batch",
    "order.amend-batch",
    "order.cancel-batch",
)
BATCH_OPS = frozenset(op for op in OPS if op.endswith("-batch"))
MAX_REQ_ID = 36
"""Bybit's limit on ``reqId`` length."""

RATE_LIMIT_CODES = frozenset({10006, 10403, 10429, 20003})
DUPLICATE_CODES = frozenset({20006})
RESTART_CODES = frozenset({10016, 10019})
TIMESTAMP_CODES = frozenset({10002})
INSUFFICIENT_BALANCE_CODES = frozenset({110004, 110007, 110012, 110045, 170131})
UNKNOWN_ORDER_CODES = frozenset({110001, 170213})


# -- results ---------------------------------------------------------------------------------


class BatchResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one order of a batch (``data.list[i]`` with ``retExtInfo.list[i]``)."""

    index: int
    code: int
    msg: str
    category: str | None = None
    symbol: str | None = None
    order_id: str | None = None
    order_link_id: str | None = None
    create_at: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == 0


class TradeResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A trade-stream response, decoded (see :func:`decode_response`)."""

    op: str
    req_id: str | None
    ret_code: int
    ret_msg: str
    data: dict[str, Any]
    """The REST ``result`` (``{orderId, orderLinkId}``; batch: ``{"list": [...]}``)."""
    ret_ext_info: dict[str, Any]
    results: list[BatchResult]
    """Per-order outcomes of a batch op (empty for single ops)."""
    header: dict[str, str]
    """The response header as sent (values as strings)."""
    rate_limit: int | None
    """``X-Bapi-Limit``: the quota for this op."""
    rate_limit_status: int | None
    """``X-Bapi-Limit-Status``: requests left in the current window."""
    rate_limit_reset_ms: int | None
    """``X-Bapi-Limit-Reset-Timestamp``, Unix ms."""
    server_time_ms: int | None
    """``Timenow``, Unix ms."""
    trace_id: str | None
    """``Traceid`` (quote it to Bybit support)."""
    conn_id: str | None
    sent_at: float | None = None
    """Monotonic time the request was sent."""
    received_at: float | None = None
    """Monotonic time the response arrived."""

    @property
    def ok(self) -> bool:
        return self.ret_code == 0

    @property
    def latency(self) -> float | None:
        """Seconds from send to response."""
        if self.sent_at is None or self.received_at is None:
            return None
        return self.received_at - self.sent_at

    @property
    def order_id(self) -> str | None:
        value = self.data.get("orderId")
        return value if isinstance(value, str) else None

    @property
    def order_link_id(self) -> str | None:
        value = self.data.get("orderLinkId")
        return value if isinstance(value, str) else None

    @property
    def failed(self) -> list[BatchResult]:
        """The orders of a batch that were refused."""
        return [r for r in self.results if not r.ok]


class _WireResponse(msgspec.Struct):
    reqId: str | None = None
    retCode: int | None = None
    retMsg: str | None = None
    op: str | None = None
    data: Any = None
    retExtInfo: Any = None
    header: dict[str, Any] | None = None
    connId: str | None = None


_decoder = msgspec.json.Decoder(_WireResponse, strict=False)
_encoder = msgspec.json.Encoder()


def _int(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _get(header: Mapping[str, str], name: str) -> str | None:
    value = header.get(name)
    if value is not None:
        return value
    low = name.lower()
    for key, val in header.items():
        if key.lower() == low:
            return val
    return None


def decode_response(
    payload: bytes | memoryview | str,
    sent_at: float | None = None,
    received_at: float | None = None,
) -> TradeResponse:
    """Decode a trade-stream response frame.

    Raises:
        ValueError: not a JSON object with a ``retCode``.
    """
    try:
        wire = _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(f"bad trade response: {exc}") from None
    if wire.retCode is None:
        raise ValueError("bad trade response: no retCode")
    header = {str(k): str(v) for k, v in (wire.header or {}).items()}
    data = wire.data if isinstance(wire.data, dict) else {}
    ext = wire.retExtInfo if isinstance(wire.retExtInfo, dict) else {}
    op = wire.op or ""
    return TradeResponse(
        op=op,
        req_id=wire.reqId or None,
        ret_code=wire.retCode,
        ret_msg=wire.retMsg or "",
        data=data,
        ret_ext_info=ext,
        results=batch_results(data, ext) if op in BATCH_OPS else [],
        header=header,
        rate_limit=_int(_get(header, "X-Bapi-Limit")),
        rate_limit_status=_int(_get(header, "X-Bapi-Limit-Status")),
        rate_limit_reset_ms=_int(_get(header, "X-Bapi-Limit-Reset-Timestamp")),
        server_time_ms=_int(_get(header, "Timenow")),
        trace_id=_get(header, "Traceid"),
        conn_id=wire.connId,
        sent_at=sent_at,
        received_at=received_at,
    )


def batch_results(data: dict[str, Any], ext: dict[str, Any]) -> list[BatchResult]:
    """Pair a batch answer's ``list`` (``data`` on the trade stream, ``result`` on REST) with
    ``retExtInfo.list`` (parallel lists in request order). An order whose code is missing or
    not a number gets ``code=-1``: never taken for a success."""
    items = data.get("list")
    codes = ext.get("list")
    items = items if isinstance(items, list) else []
    codes = codes if isinstance(codes, list) else []
    out = []
    for i in range(max(len(items), len(codes))):
        item = items[i] if i < len(items) and isinstance(items[i], dict) else {}
        code = codes[i] if i < len(codes) and isinstance(codes[i], dict) else {}
        parsed = _int(code.get("code"))
        out.append(
            BatchResult(
                index=i,
                code=-1 if parsed is None else parsed,
                msg=str(code.get("msg") or ""),
                category=item.get("category"),
                symbol=item.get("symbol"),
                order_id=item.get("orderId") or None,
                order_link_id=item.get("orderLinkId") or None,
                create_at=item.get("createAt") or None,
            )
        )
    return out


# -- errors ----------------------------------------------------------------------------------


class TradeRequestError(Exception):
    """Base of every failure of a trade request."""

    def __init__(self, message: str, *, op: str = "", req_id: str | None = None) -> None:
        super().__init__(message)
        self.op = op
        self.req_id = req_id


class TradeError(TradeRequestError):
    """The exchange answered with ``retCode != 0``.

    Attributes:
        ret_code: Bybit's code.
        ret_msg: Bybit's message.
        op: the request's op.
        req_id: the request's ``reqId``.
        response: the full response (rate-limit header values included).
    """

    def __init__(
        self,
        ret_code: int,
        ret_msg: str,
        op: str,
        req_id: str | None,
        response: TradeResponse | None = None,
    ) -> None:
        super().__init__(
            f"{op or 'trade request'} {req_id or '?'} rejected: {ret_code} {ret_msg}".rstrip(),
            op=op,
            req_id=req_id,
        )
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        self.response = response


class TradeRateLimited(TradeError):
    """Rate limit hit (10006 per UID, 10403 per IP, 10429 system, 20003 per session)."""


class TradeDuplicateRequest(TradeError):
    """The ``reqId`` was already used (20006)."""


class TradeServiceRestarting(TradeError):
    """The trade service is restarting (10016 / 10019); a fresh connection is opened."""


class TradeTimestampError(TradeError):
    """``X-BAPI-TIMESTAMP`` outside the receive window (10002): check the clock."""


class TradeInsufficientBalance(TradeError):
    """Not enough balance or margin (110004, 110007, 110012, 110045, 170131)."""


class TradeUnknownOrder(TradeError):
    """The order to amend or cancel does not exist (any more) (110001, 170213)."""


class TradeTimeout(TradeRequestError, TimeoutError):
    """No response within the timeout. The outcome is unknown: reconcile before retrying."""


class TradeConnectionLost(TradeRequestError, ConnectionError):
    """The connection dropped before the response. The outcome is unknown: reconcile."""


class TradeNotReady(TradeRequestError):
    """The trade connection is not live and authenticated (or is being replaced); nothing was
    sent."""


_ERROR_CLASSES: tuple[tuple[frozenset[int], type[TradeError]], ...] = (
    (RATE_LIMIT_CODES, TradeRateLimited),
    (DUPLICATE_CODES, TradeDuplicateRequest),
    (RESTART_CODES, TradeServiceRestarting),
    (TIMESTAMP_CODES, TradeTimestampError),
    (INSUFFICIENT_BALANCE_CODES, TradeInsufficientBalance),
    (UNKNOWN_ORDER_CODES, TradeUnknownOrder),
)


def error_for(response: TradeResponse) -> TradeError:
    """The :class:`TradeError` (subclass) for a ``retCode != 0`` response."""
    cls: type[TradeError] = TradeError
    for codes, kind in _ERROR_CLASSES:
        if response.ret_code in codes:
            cls = kind
            break
    return cls(response.ret_code, response.ret_msg, response.op, response.req_id, response)


# -- requests --------------------------------------------------------------------------------


def batch_limit(category: str) -> int:
    """Orders allowed in one batch request: 10 for spot, 20 for linear / inverse / option."""
    return 10 if category == "spot" else 20


def to_api_number(value: Any, name: str = "value") -> str:
    """A quantity or price as the decimal string the API expects.

    Strings are passed through (stripped); ``Decimal`` and ``int`` are formatted without an
    exponent; floats go through their shortest ``repr`` (``0.1`` -> ``"0.1"``, ``1e-05`` ->
    ``"0.00001"``).

    Raises:
        TypeError: not a str / int / float / Decimal (``bool`` is refused).
        ValueError: empty, not a number, or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | decimal.Decimal):
        raise TypeError(f"{name} must be a str, int, float or Decimal, not {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError(f"{name} must not be empty")
        return text
    number = decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def encode_trade_request(
    op: str,
    args: Mapping[str, Any],
    req_id: str,
    timestamp_ms: int,
    recv_window: int | None = None,
    referer: str | None = None,
) -> bytes:
    """The request frame (header values as strings, the docs' form)."""
    header: dict[str, str] = {"X-BAPI-TIMESTAMP": str(int(timestamp_ms))}
    if recv_window is not None:
        header["X-BAPI-RECV-WINDOW"] = str(int(recv_window))
    if referer:
        header["Referer"] = referer
    return _encoder.encode({"reqId": req_id, "header": header, "op": op, "args": [dict(args)]})


@dataclass(slots=True)
class PendingTrade:
    """A request waiting for its response."""

    req_id: str
    op: str
    sent_at: float
    deadline: float
    sent_wall_ms: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request ended: ``response`` (success) or ``error``."""

    req_id: str
    op: str
    response: TradeResponse | None = None
    error: TradeRequestError | None = None


@dataclass(slots=True)
class TradeRequestStats:
    """Counters of a :class:`TradeRequests` (cumulative)."""

    sent: int = 0
    succeeded: int = 0
    rejected: int = 0
    timeouts: int = 0
    lost: int = 0
    unmatched: int = 0
    """Responses that matched no request in flight (late after a timeout, or unknown)."""
    bad_responses: int = 0


class TradeRequests:
    """Request building, ``reqId`` matching, timeouts and in-flight failure for one trade stream.

    Args:
        on_outcome: called with every :class:`Outcome` (success, rejection, timeout, loss).
        wall_ms: maps a monotonic ``now`` to Unix ms.
        recv_window: ``X-BAPI-RECV-WINDOW`` in ms (``None``: not sent; the server uses 5000).
        request_timeout: seconds to wait for a response.
        referer: optional broker id sent as the ``Referer`` header.
        clock_offset: the server clock estimate (shared with the authenticator); fed from every
            response's ``Timenow``.
        apply_offset: add the measured offset to ``X-BAPI-TIMESTAMP``.
        req_prefix: prefix of generated ``reqId`` values (default: ``hean-`` + 8 random hex, so
            ids are unique across restarts and processes).
    """

    def __init__(
        self,
        on_outcome: Callable[[Outcome], None],
        *,
        wall_ms: Callable[[float], int],
        recv_window: int | None = 5000,
        request_timeout: float = 10.0,
        referer: str | None = None,
        clock_offset: ClockOffset | None = None,
        apply_offset: bool = True,
        req_prefix: str | None = None,
    ) -> None:
        if recv_window is not None and recv_window <= 0:
            raise ValueError(f"recv_window must be > 0, got {recv_window}")
        if not request_timeout > 0:
            raise ValueError(f"request_timeout must be > 0, got {request_timeout}")
        self.on_outcome = on_outcome
        self.wall_ms = wall_ms
        self.recv_window = recv_window
        self.request_timeout = request_timeout
        self.referer = referer
        self.clock_offset = clock_offset if clock_offset is not None else ClockOffset()
        self.apply_offset = apply_offset
        self.req_prefix = req_prefix if req_prefix is not None else f"hean-{secrets.token_hex(4)}-"
        if len(self.req_prefix) > MAX_REQ_ID - 8:
            raise ValueError(f"req_prefix is too long (max {MAX_REQ_ID - 8} characters)")
        self.pending: dict[str, PendingTrade] = {}
        self.stats = TradeRequestStats()
        self.restart_requested: str | None = None
        """Set (to a reason) after a 10016/10019: replace the connection once idle."""
        self._seq = 0

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    def next_req_id(self) -> str:
        self._seq += 1
        return f"{self.req_prefix}{self._seq}"

    def build(
        self,
        op: str,
        args: Mapping[str, Any],
        now: float,
        *,
        req_id: str | None = None,
        timeout: float | None = None,
    ) -> tuple[str, bytes]:
        """Register a request and return ``(req_id, frame)``; send the frame right away.

        Raises:
            ValueError: unknown op, or a bad / duplicate ``req_id``, or a bad timeout.
        """
        if op not in OPS:
            raise ValueError(f"unknown trade op {op!r}: expected one of {', '.join(OPS)}")
        if req_id is None:
            req_id = self.next_req_id()
        elif not isinstance(req_id, str) or not 0 < len(req_id) <= MAX_REQ_ID:
            raise ValueError(f"req_id must be 1..{MAX_REQ_ID} characters, got {req_id!r}")
        if req_id in self.pending:
            raise ValueError(f"req_id {req_id!r} is already in flight")
        wait = self.request_timeout if timeout is None else timeout
        if not wait > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        wall = self.wall_ms(now)
        offset = self.clock_offset.estimate_ms if self.apply_offset else None
        timestamp = round(wall + (offset or 0.0))
        payload = encode_trade_request(op, args, req_id, timestamp, self.recv_window, self.referer)
        self.pending[req_id] = PendingTrade(req_id, op, now, now + wait, wall)
        self.stats.sent += 1
        return req_id, payload

    def on_response(self, payload: bytes | memoryview | str, now: float) -> Outcome | None:
        """A response frame arrived: resolve its request (``None`` if it matches none)."""
        try:
            response = decode_response(payload, received_at=now)
        except ValueError as exc:
            self.stats.bad_responses += 1
            log.warning("trade: %s", exc)
            return None
        pending = self._match(response)
        if pending is None:
            self.stats.unmatched += 1
            log.warning(
                "trade: response %s %s (%s %s) matches no request in flight",
                response.op,
                response.req_id or "(no reqId)",
                response.ret_code,
                response.ret_msg[:80],
            )
            return None
        del self.pending[pending.req_id]
        response = msgspec.structs.replace(response, sent_at=pending.sent_at, req_id=pending.req_id)
        if response.server_time_ms is not None:
            self.clock_offset.add_round_trip(
                response.server_time_ms, pending.sent_wall_ms, self.wall_ms(now)
            )
        if response.ret_code == 0:
            self.stats.succeeded += 1
            outcome = Outcome(pending.req_id, pending.op, response=response)
        else:
            self.stats.rejected += 1
            error = error_for(response)
            if isinstance(error, TradeServiceRestarting) and self.restart_requested is None:
                self.restart_requested = f"service_restarting:{response.ret_code}"
                log.warning(
                    "trade: service restarting (%s %s): opening a fresh connection",
                    response.ret_code,
                    response.ret_msg,
                )
            outcome = Outcome(pending.req_id, pending.op, error=error)
        self.on_outcome(outcome)
        return outcome

    def _match(self, response: TradeResponse) -> PendingTrade | None:
        if response.req_id is not None:
            return self.pending.get(response.req_id)
        # Bybit sometimes leaves reqId out (e.g. permission rejections). Attribute the response
        # only when exactly one request of that op is in flight; otherwise it cannot be known.
        same = [p for p in self.pending.values() if p.op == response.op]
        return same[0] if len(same) == 1 else None

    def next_deadline(self) -> float | None:
        """The earliest request deadline, or ``None``."""
        if not self.pending:
            return None
        return min(p.deadline for p in self.pending.values())

    def tick(self, now: float) -> list[Outcome]:
        """Fail requests whose deadline has passed with :class:`TradeTimeout`."""
        late = [p for p in self.pending.values() if now >= p.deadline]
        outcomes = []
        for p in late:
            del self.pending[p.req_id]
            self.stats.timeouts += 1
            error = TradeTimeout(
                f"{p.op} {p.req_id}: no response within {p.deadline - p.sent_at:g}s; the outcome "
                "is unknown (the order may or may not exist): reconcile via the order stream or "
                "REST before retrying",
                op=p.op,
                req_id=p.req_id,
            )
            outcome = Outcome(p.req_id, p.op, error=error)
            outcomes.append(outcome)
            self.on_outcome(outcome)
        return outcomes

    def fail_all(self, reason: str) -> list[Outcome]:
        """The connection is gone: fail every request in flight with
        :class:`TradeConnectionLost` (nothing is re-sent)."""
        outcomes = []
        for p in list(self.pending.values()):
            self.stats.lost += 1
            error = TradeConnectionLost(
                f"{p.op} {p.req_id}: connection lost ({reason}) before the response; the "
                "outcome is unknown (the order may or may not exist): reconcile via the order "
                "stream or REST before retrying",
                op=p.op,
                req_id=p.req_id,
            )
            outcome = Outcome(p.req_id, p.op, error=error)
            outcomes.append(outcome)
        self.pending.clear()
        for outcome in outcomes:
            self.on_outcome(outcome)
        return outcomes


def check_batch(category: str, orders: Sequence[Mapping[str, Any]]) -> None:
    """Validate a batch's size for its category.

    Raises:
        ValueError: empty, or more orders than :func:`batch_limit` allows.
    """
    limit = batch_limit(category)
    if not orders:
        raise ValueError("a batch needs at least one order")
    if len(orders) > limit:
        raise ValueError(
            f"{len(orders)} orders in one batch: {category} allows at most {limit} per request"
        )
