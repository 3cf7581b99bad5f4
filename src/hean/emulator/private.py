"""The ``/v5/private`` and ``/v5/trade`` connections (protocol.md §1.2, §2, §3.5, §4, §6, §7).

:class:`PrivateSession` and :class:`TradeSession` are siblings of the public
:class:`~hean.emulator.connection.PublicSession` (same frame handling, latency, faults, close /
drop / reset) with their own ops:

* private: ``ping`` -> ``{"req_id"?, "op": "pong", "args": ["<ms>"], "conn_id"}``; ``auth``;
  ``subscribe`` / ``unsubscribe`` of private topics (acks
  ``{"req_id"?, "success", "ret_msg", "op", "conn_id"}``). Pushes come from
  :class:`~hean.emulator.trading.Trading`.
* trade: ``ping`` -> ``{"reqId"?, "retCode": 0, "retMsg": "OK", "op": "pong", "data": ["<ms>"],
  "connId"}``; ``auth``; the ``order.*`` ops, checked at the gateway (auth, injected error codes,
  ``reqId`` length and uniqueness on the connection, ``header`` with ``X-BAPI-TIMESTAMP`` inside
  ``server_time - recv_window <= ts < server_time + 1000``, the per-account rate limit), then
  executed and answered after the ack latency (``EmulatorConfig.ack_latency``, fault
  ``ack_delay``). A request accepted at the gateway is executed even if its connection drops
  before the ack: its outcome is then unknown to the client, as on the real exchange.

Auth: ``args = [key, expires_ms, hex(HMAC_SHA256(secret, "GET/realtime" + expires))]`` with
``expires`` a JSON number or a string of digits, accepted iff the key is known, the signature
verifies and ``expires`` is after the server's now (``Emulator.server_time_ms``, which includes
the clock-skew knob). Reply texts for failures are in :mod:`hean.emulator.shapes`.

``max_active_time`` (``30s`` ... ``600s`` or ``1m`` ... ``10m``) sets the idle cut-off: the
connection is dropped (TCP close without a close frame) when nothing was received as a ping and
nothing was sent for that long; without it, ``EmulatorConfig.private_idle_timeout`` (600 s).
Bybit does not document what it does with an invalid value; the emulator refuses the upgrade with
HTTP 400 (body: what is wrong), so a client finds out at once. In tests,
``EmulatorConfig.max_active_time_scale`` shrinks the parsed value.
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import msgspec
from picows import WSTransport

from hean.emulator import shapes
from hean.emulator.accounts import Account
from hean.emulator.connection import EffectiveFaults, Hub, PublicSession
from hean.emulator.trading import (
    PRIVATE_STREAMS,
    TRADE_OPS,
    OpResult,
    Trading,
    private_stream_of,
)

__all__ = [
    "ACCOUNT_KINDS",
    "AccountHub",
    "AccountSession",
    "PrivateSession",
    "TradeSession",
    "parse_max_active_time",
]

log = logging.getLogger("hean.emulator")

#: connection kinds (``ConnectionInfo.category``) of the account side
ACCOUNT_KINDS = ("private", "trade")
_MAX_ACTIVE_RE = re.compile(r"^(\d{1,4})([sm])$")
_MAX_REQ_ID = 36
_REMEMBERED_REQ_IDS = 100_000


def parse_max_active_time(query: str) -> float | None:
    """Seconds of the ``max_active_time`` URL parameter in ``query`` (``None`` if absent).

    Accepted like Bybit documents it: ``30s`` ... ``600s`` or ``1m`` ... ``10m``.

    Raises:
        ValueError: present but empty, repeated, malformed or outside 30 s ... 600 s.
    """
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("max_active_time")
    if values is None:
        return None
    if len(values) != 1:
        raise ValueError("max_active_time given more than once")
    match = _MAX_ACTIVE_RE.match(values[0])
    if match is None:
        raise ValueError(f"max_active_time {values[0]!r} must look like 30s ... 600s or 1m ... 10m")
    seconds = int(match[1]) * (60 if match[2] == "m" else 1)
    if not 30 <= seconds <= 600:
        raise ValueError(f"max_active_time {values[0]!r} is outside 30s ... 600s")
    return float(seconds)


class AccountHub(Hub, Protocol):
    """What the private and trade sessions need from the emulator, beyond :class:`Hub`."""

    @property
    def trading(self) -> Trading: ...

    @property
    def running(self) -> bool: ...

    def server_time_ms(self) -> int: ...

    def take_trade_error(self, conn_id: str) -> int | None: ...

    def record_auth(self, session: AccountSession, result: str) -> None: ...

    def trace_id(self) -> str: ...

    def private_link_is_down(self, api_key: str) -> bool: ...


class AccountSession(PublicSession):
    """Common part of the private and trade listeners."""

    kind: ClassVar[str] = "private"

    def __init__(self, hub: AccountHub, path: str, max_active_time: float | None) -> None:
        super().__init__(hub, self.kind, path)
        self.account_hub = hub
        self.max_active_time = max_active_time
        self.account: Account | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        info = self.info
        assert info is not None
        info.auth_state = "none"
        info.max_active_time = self.max_active_time
        info.last_data_at = info.opened_at

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        super().on_ws_disconnected(transport)
        self.account_hub.trading.detach(self)

    def send_raw(self, data: bytes) -> bool:
        sent = super().send_raw(data)
        if sent and self.info is not None:
            self.info.last_data_at = self.hub.clock.monotonic()
        return sent

    # -- inbound ------------------------------------------------------------------------------

    def _on_message(self, payload: bytes, faults: EffectiveFaults) -> None:
        try:
            msg = msgspec.json.decode(payload)
        except (msgspec.DecodeError, RecursionError, ValueError) as exc:
            reason = None if not payload.strip() or payload.lstrip()[:1] not in b"{[" else str(exc)
            self._decode_error(shapes.decode_error_text(payload, reason))
            return
        if msg is None:
            msg = {}
        if not isinstance(msg, dict):
            self._decode_error(shapes.decode_error_text(payload))
            return
        op = msg.get("op", "")
        if not isinstance(op, str):
            detail = f'ReadString: expects " or n, but found {str(op)[:1]}'
            self._decode_error(shapes.decode_error_text(payload, detail))
            return
        self._dispatch(op, msg, faults)

    def _decode_error(self, detail: str) -> None:
        self._reply(shapes.decode_error(self.conn_id, detail))

    def _dispatch(self, op: str, msg: dict[str, Any], faults: EffectiveFaults) -> None:
        raise NotImplementedError

    def _json_ping(self) -> None:
        assert self.info is not None
        self.info.json_pings += 1
        self.info.last_ping_at = self.hub.clock.monotonic()

    def _authenticate(self, args: object, faults: EffectiveFaults) -> str:
        """Judge an auth request; returns ``ok``, ``repeat`` or the failure reason."""
        info = self.info
        assert info is not None
        hub = self.account_hub
        info.auth_attempts += 1
        info.last_auth_args = tuple(args) if isinstance(args, list) else (args,)
        if info.auth_state == "authenticated":
            result = "repeat"
        elif faults.auth_reject is not None:
            result = faults.auth_reject
        else:
            check = hub.trading.check_auth(args, hub.server_time_ms())
            result = check.reason
            if check.ok and check.account is not None and self._link_down(check.account):
                result = "link_down"  # judged here: no session is attached
            elif check.ok and check.account is not None:
                self.account = check.account
                info.auth_state = "authenticated"
                info.api_key = check.account.api_key
                hub.trading.attach(self, check.account)
        if result not in ("ok", "repeat"):
            info.auth_state = "failed"
            info.auth_failures += 1
        info.last_auth_result = result
        hub.record_auth(self, result)
        return result

    def _link_down(self, account: Account) -> bool:
        """Whether an auth as ``account`` is refused because its link is down."""
        return False


_PRIVATE_AUTH_TEXT = {
    "repeat": shapes.REPEAT_AUTH_TEXT,
    "params": shapes.PARAMS_ERROR_TEXT,
    "expired": shapes.PARAMS_ERROR_TEXT,
    "bad_key": shapes.INVALID_KEY_TEXT,
    "bad_signature": shapes.INVALID_SIGN_TEXT,
    "too_many_sessions": shapes.TOO_MANY_SESSIONS_TEXT,
}
_TRADE_AUTH_CODE = {
    "ok": (0, "OK"),
    "repeat": (20001, shapes.REPEAT_AUTH_TEXT),
    "params": (10001, shapes.PARAMS_ERROR_TEXT),
    "expired": (10001, shapes.PARAMS_ERROR_TEXT),
    "bad_key": (10003, shapes.INVALID_KEY_TEXT),
    "bad_signature": (10004, shapes.INVALID_SIGN_TEXT),
    "too_many_sessions": (10003, shapes.TOO_MANY_SESSIONS_TEXT),
}


class PrivateSession(AccountSession):
    """Listener for ``/v5/private``."""

    kind: ClassVar[str] = "private"

    def _link_down(self, account: Account) -> bool:
        return self.account_hub.private_link_is_down(account.api_key)

    def _dispatch(self, op: str, msg: dict[str, Any], faults: EffectiveFaults) -> None:
        req_id = msg.get("req_id", shapes.MISSING)
        if op == "ping":
            self._json_ping()
            if not faults.ignore_json_ping:
                now = self.account_hub.server_time_ms()
                self._reply(shapes.private_pong(self.conn_id, req_id, now))
        elif op == "auth":
            result = self._authenticate(msg.get("args"), faults)
            if result == "link_down":
                self.abort("private_outage")  # the account's private link is down
                return
            self._reply(
                shapes.private_reply(
                    "auth",
                    self.conn_id,
                    req_id,
                    success=result == "ok",
                    ret_msg=_PRIVATE_AUTH_TEXT.get(result, ""),
                )
            )
        elif op in ("subscribe", "unsubscribe"):
            args = msg.get("args", [])
            if args is None:
                args = []
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                self._decode_error('[]string: ReadString: expects " or n')
                return
            self._subscription(op, args, req_id, faults)
        else:
            self._reply(shapes.invalid_op("private", self.conn_id, req_id, op))

    def _subscription(
        self, op: str, args: list[str], req_id: object, faults: EffectiveFaults
    ) -> None:
        info = self.info
        assert info is not None
        error = ""
        if info.auth_state != "authenticated":
            error = shapes.NOT_AUTHORIZED_TEXT
        elif op == "subscribe":
            error = _judge_private_topics(args, info.subscriptions, faults)
            if not error:
                info.subscriptions.update(args)
        else:
            info.subscriptions.difference_update(args)
        self._reply(
            shapes.private_reply(op, self.conn_id, req_id, success=not error, ret_msg=error)
        )


def _judge_private_topics(args: list[str], current: set[str], faults: EffectiveFaults) -> str:
    """``""`` if the subscribe request is fine, else the failure text (one bad topic fails the
    whole request)."""
    forms: dict[str, set[bool]] = {}
    seen: set[str] = set()
    for name in args:
        stream = private_stream_of(name)
        if stream is None or faults.reject_all_subscriptions or name in faults.reject_topics:
            return shapes.PRIVATE_TOPIC_ERROR_TEXT
        forms.setdefault(stream, set()).add(name == stream)
        if len(forms[stream]) == 2 and PRIVATE_STREAMS[stream]:
            return shapes.PRIVATE_TOPIC_ERROR_TEXT
        if name in current or name in seen:
            return shapes.already_subscribed_text(name)
        seen.add(name)
    return ""


def _header_int(value: object) -> int | None:
    """A header value sent as a JSON number or a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


class TradeSession(AccountSession):
    """Listener for ``/v5/trade``."""

    kind: ClassVar[str] = "trade"

    def __init__(self, hub: AccountHub, path: str, max_active_time: float | None) -> None:
        super().__init__(hub, path, max_active_time)
        self._req_ids: set[str] = set()
        self._req_order: deque[str] = deque()
        self._acks: deque[tuple[float, Callable[[], None]]] = deque()
        self._ack_handle: asyncio.TimerHandle | None = None
        self._last_due = 0.0

    def _decode_error(self, detail: str) -> None:
        self._reply(
            shapes.trade_reply(
                "", self.conn_id, shapes.MISSING, 10001, f"Failed to decode incoming data:{detail}"
            )
        )

    def _dispatch(self, op: str, msg: dict[str, Any], faults: EffectiveFaults) -> None:
        req_id = msg.get("reqId", shapes.MISSING)
        if op == "ping":
            self._json_ping()
            if not faults.ignore_json_ping:
                now = self.account_hub.server_time_ms()
                self._reply(shapes.trade_pong(self.conn_id, req_id, now))
        elif op == "auth":
            result = self._authenticate(msg.get("args"), faults)
            code, text = _TRADE_AUTH_CODE.get(result, (10001, shapes.PARAMS_ERROR_TEXT))
            self._reply(shapes.trade_auth_reply(self.conn_id, req_id, code, text))
        elif op in TRADE_OPS:
            self._request(op, msg, req_id, faults)
        else:
            self._reply(
                shapes.trade_reply(op, self.conn_id, req_id, 10404, shapes.OP_NOT_FOUND_TEXT)
            )

    # -- requests -----------------------------------------------------------------------------

    def _header(self, limits: dict[str, str] | None = None) -> dict[str, str]:
        out = dict(limits or {})
        out["Traceid"] = self.account_hub.trace_id()
        out["Timenow"] = str(self.account_hub.server_time_ms())
        return out

    def _request(
        self, op: str, msg: dict[str, Any], req_id: object, faults: EffectiveFaults
    ) -> None:
        info = self.info
        assert info is not None
        info.requests += 1
        hub = self.account_hub
        now_ms = hub.server_time_ms()

        def refuse(
            code: int, text: str | None = None, limits: dict[str, str] | None = None
        ) -> None:
            message = text if text is not None else shapes.trade_text(code)

            def send() -> None:
                self._reply(
                    shapes.trade_reply(
                        op, self.conn_id, req_id, code, message, header=self._header(limits)
                    )
                )

            self._enqueue(send, faults)

        account = self.account
        if info.auth_state != "authenticated" or account is None:
            refuse(10003, shapes.NOT_AUTHORIZED_TEXT)
            return
        injected = hub.take_trade_error(self.conn_id)
        if injected is not None:
            refuse(injected)
            return
        if req_id is not shapes.MISSING:
            if not isinstance(req_id, str) or len(req_id) > _MAX_REQ_ID:
                refuse(10001, f"params error: reqId must be a string of at most {_MAX_REQ_ID}")
                return
            if req_id in self._req_ids:
                refuse(20006)
                return
            self._remember(req_id)
        header = msg.get("header")
        if not isinstance(header, dict):
            refuse(10001, "params error: header with X-BAPI-TIMESTAMP is required")
            return
        timestamp = _header_int(header.get("X-BAPI-TIMESTAMP"))
        if timestamp is None:
            refuse(10001, "params error: X-BAPI-TIMESTAMP is required")
            return
        raw_window = header.get("X-BAPI-RECV-WINDOW")
        window = 5000 if raw_window is None or raw_window == "" else _header_int(raw_window)
        if window is None or window <= 0:
            refuse(10001, "params error: X-BAPI-RECV-WINDOW invalid")
            return
        if not now_ms - window <= timestamp < now_ms + 1000:
            refuse(10002, shapes.recv_window_text(timestamp, now_ms, window))
            return
        args = msg.get("args")
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict):
            refuse(10001, "params error: args must hold exactly one request object")
            return
        allowed, limits = hub.trading.take_rate(account, op, now_ms)
        if not allowed:
            refuse(10006, limits=limits)
            return
        request: dict[str, Any] = args[0]

        def execute() -> None:
            with hub.trading.deferred():  # the ack first, then the private pushes
                self._answer(op, req_id, limits, hub.trading.execute(account, op, request))

        self._enqueue(execute, faults)

    def _answer(self, op: str, req_id: object, limits: dict[str, str], result: OpResult) -> None:
        self._reply(
            shapes.trade_reply(
                op,
                self.conn_id,
                req_id,
                result.code,
                result.msg,
                data=result.data,
                ret_ext_info=result.ext,
                header=self._header(limits),
            )
        )

    def _remember(self, req_id: str) -> None:
        self._req_ids.add(req_id)
        self._req_order.append(req_id)
        if len(self._req_order) > _REMEMBERED_REQ_IDS:
            self._req_ids.discard(self._req_order.popleft())

    # -- the ack queue ------------------------------------------------------------------------

    def _enqueue(self, action: Callable[[], None], faults: EffectiveFaults) -> None:
        """Run ``action`` after the ack latency, in arrival order (even if the connection is
        gone by then: the request reached the exchange)."""
        delay = faults.ack_delay if faults.ack_delay is not None else self.hub.config.ack_latency
        loop = asyncio.get_running_loop()
        due = max(loop.time() + delay, self._last_due)
        self._last_due = due
        self._acks.append((due, action))
        if self._ack_handle is None:
            self._ack_handle = loop.call_at(due, self._run_acks)

    def _run_acks(self) -> None:
        self._ack_handle = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._acks and self._acks[0][0] <= now:
            _, action = self._acks.popleft()
            if not self.account_hub.running:
                continue
            try:
                action()
            except Exception:  # a bug must not kill the connection or the server
                log.exception("emulator: error answering a trade request on %s", self.conn_id)
        if self._acks:
            self._ack_handle = loop.call_at(self._acks[0][0], self._run_acks)

    @property
    def pending_acks(self) -> int:
        """Requests accepted and not yet executed / answered."""
        return len(self._acks)
