"""A tiny HTTP/JSON control API on the emulator's own port, and a CLI to call it.

Another process can drive a running emulator with plain ``GET`` requests (picows answers them on
the WebSocket port with a non-101 response; enabled by default only when the emulator listens on
loopback, see ``EmulatorConfig.control``)::

    GET /control/faults                         current global switches
    GET /control/faults?blackhole=true&conn_id=ID   set switches (bools, comma lists, seconds)
    GET /control/inject?kind=u_gap&topic=orderbook.50.BTCUSDT&repeat=false
    GET /control/clear[?conn_id=ID]             disarm wire faults (global or one connection)
    GET /control/drop[?conn_id=ID]              TCP close without a close frame (1006)
    GET /control/close?code=1001[&reason=bye][&conn_id=ID]
    GET /control/reset[?conn_id=ID]             TCP RST
    GET /control/handshake?status=503[&retry_after=5]   (status=none: accept again)
    GET /control/stall?seconds=2                stop answering upgrades (none: resume)
    GET /control/connections                    live connections
    GET /control/tick?category=linear&steps=1   move the market (also /control/flush)
    GET /control/book?category=linear&symbol=BTCUSDT&depth=5   true book
    GET /control/ticker?category=linear&symbol=BTCUSDT          true ticker
    GET /control/faults?auth_reject=bad_signature   reject private/trade auth (none: judge it)
    GET /control/faults?ack_delay=0.5           delay trade acks (none: EmulatorConfig.ack_latency)
    GET /control/faults?drip=200[&conn_id=ID]   slow-dripping link: 200 bytes/s out (none: off)
    GET /control/trade_error?code=10016&count=2[&conn_id=ID]   next N trade requests fail
    GET /control/trade_error?clear=true[&conn_id=ID]           forget injected trade errors
    GET /control/skew?ms=15000                  server clock ahead of the emulator's (no ms: read)
    GET /control/account?key=API_KEY            an account's ground truth (orders, positions…)
    GET /control/balance?key=API_KEY&coin=USDT&amount=1000     set a wallet balance
    GET /control/auth_log                       auth requests judged so far
    GET /control/rest                           the REST API's base URL and armed failures
    GET /control/rest_fail?kind=code&code=10006[&count=1][&path=…][&reset_header=false]
    GET /control/rest_fail?kind=http&status=403[&count=1][&path=…]   (403, 429, 500, 502-504)
    GET /control/rest_fail?kind=delay&seconds=0.5[&count=1][&path=…]  slow REST responses
    GET /control/rest_fail?kind=batch&items=0,2[&code=10001][&count=1] partial batch failure
    GET /control/rest_fail?clear=true           disarm every REST failure switch
    GET /control/funding?key=API_KEY&category=linear&symbol=BTCUSDT&rate=0.0001   funding
    GET /control/link?key=API_KEY&state=down[&mode=refuse|auth]   private link down (up: back)
    GET /control/outage?key=API_KEY[&fills=1&partial_fills=1&cancels=1&new_orders=1]
        [&funding_rate=0.0001&funding_symbol=BTCUSDT][&seed=0][&hold=0.5][&restore=true]
        [&mode=refuse]   the private-outage scenario (hean.emulator.rest_scenario): link down,
        events at once, link back after ``hold`` seconds; returns what it did

Replies are JSON: ``{"ok": true, "result": …}`` (200) or ``{"ok": false, "error": "…"}`` (4xx).
While a handshake stall is in force the port accepts no requests at all, control included; use a
timed stall to get it back.

CLI::

    python -m hean.emulator.control http://127.0.0.1:PORT ACTION [key=value ...]

(a ``ws://`` URL of the emulator works too). Prints the JSON reply; exit code 0 if ``ok``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from picows import WSUpgradeResponse, WSUpgradeResponseWithListener

from hean.emulator.faults import FAULT_NAMES

if TYPE_CHECKING:
    from hean.emulator.server import Emulator

__all__ = ["PREFIX", "call", "handle", "main", "response"]

PREFIX = "/control/"
_MAX_STEPS = 10_000  # one request must not stall the emulator for long
_SETS = ("reject_topics", "paused_symbols")


class _BadRequest(ValueError):
    pass


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise _BadRequest(f"not a boolean: {text!r}")


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _BadRequest(f"{name} must be a number, got {text!r}") from None
    if math.isnan(value):
        raise _BadRequest(f"{name} must be a number, got {text!r}")
    return value


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer, got {text!r}") from None


def _none(text: str) -> bool:
    return text.strip().lower() in ("", "none", "null", "off")


def _fault_value(name: str, text: str) -> object:
    if name in _SETS:
        return {part for part in text.split(",") if part}
    if name in ("idle_timeout", "ack_delay", "drip"):
        return None if _none(text) else _number(text, name)
    if name == "auth_reject":
        return None if _none(text) else text.strip()
    return _bool(text)


def _faults(emu: Emulator, q: dict[str, str]) -> object:
    conn_id = q.pop("conn_id", None)
    changes: dict[str, object] = {}
    for name, text in q.items():
        if name not in FAULT_NAMES:
            raise _BadRequest(
                f"unknown fault switch {name!r}; known: {', '.join(sorted(FAULT_NAMES))}"
            )
        changes[name] = _fault_value(name, text)
    if changes:
        emu.set_faults(conn_id, **changes)
    target = emu.faults if conn_id is None else emu.connection_faults(conn_id)
    out: dict[str, object] = {}
    for name in sorted(FAULT_NAMES):
        value = getattr(target, name)
        if isinstance(value, set):
            value = sorted(value)
        elif isinstance(value, float) and math.isinf(value):
            value = "inf"
        out[name] = value
    return out


def _inject(emu: Emulator, q: dict[str, str]) -> object:
    kind = q.pop("kind", "")
    fault = emu.inject(
        kind,
        conn_id=q.pop("conn_id", None),
        topic=q.pop("topic", None) or None,
        repeat=_bool(q.pop("repeat", "false")),
        count=_int(q.pop("count", "10"), "count"),
        size=_int(q.pop("size", str(2 << 20)), "size"),
    )
    if q:
        raise _BadRequest(f"unknown parameters: {', '.join(sorted(q))}")
    return {"kind": fault.kind, "topic": fault.topic, "repeat": fault.repeat}


def _close(emu: Emulator, q: dict[str, str]) -> object:
    code = _int(q.get("code", "1000"), "code")
    return emu.close_connections(code, q.get("reason", ""), conn_id=q.get("conn_id"))


def _handshake(emu: Emulator, q: dict[str, str]) -> object:
    text = q.get("status", "none")
    status = None if _none(text) else _int(text, "status")
    retry = q.get("retry_after")
    emu.set_handshake_status(
        status, retry_after=None if retry is None else _number(retry, "retry_after")
    )
    return status


def _stall(emu: Emulator, q: dict[str, str]) -> object:
    text = q.get("seconds", "none")
    seconds = None if _none(text) else _number(text, "seconds")
    emu.set_handshake_stall(seconds)
    return seconds if seconds is None or math.isfinite(seconds) else "inf"


def _connections(emu: Emulator, q: dict[str, str]) -> object:
    return [
        {
            "conn_id": info.conn_id,
            "category": info.category,
            "path": info.path,
            "subscriptions": sorted(info.subscriptions),
            "frames_sent": info.frames_sent,
            "sent_by_topic": dict(info.sent_by_topic),
            "auth_state": info.auth_state,
            "api_key": info.api_key,
            "auth_attempts": info.auth_attempts,
        }
        for info in emu.live_connections(q.get("category"))
    ]


def _tick(emu: Emulator, q: dict[str, str]) -> object:
    steps = _int(q.get("steps", "1"), "steps")
    if not 0 <= steps <= _MAX_STEPS:
        raise _BadRequest(f"steps must be in 0..{_MAX_STEPS}, got {steps}")
    emu.tick(q.get("category"), steps)
    return True


def _flush(emu: Emulator, q: dict[str, str]) -> object:
    emu.flush(q.get("category"))
    return True


def _book(emu: Emulator, q: dict[str, str]) -> object:
    depth = q.get("depth")
    bids, asks = emu.book_truth(
        q.get("category", "linear"),
        q.get("symbol", ""),
        None if depth is None else _int(depth, "depth"),
    )
    return {"b": [list(x) for x in bids], "a": [list(x) for x in asks]}


def _ticker(emu: Emulator, q: dict[str, str]) -> object:
    return emu.ticker_truth(q.get("category", "linear"), q.get("symbol", ""))


def _trade_error(emu: Emulator, q: dict[str, str]) -> object:
    conn_id = q.pop("conn_id", None) or None
    if _bool(q.pop("clear", "false")):
        if q:
            raise _BadRequest(f"unknown parameters: {', '.join(sorted(q))}")
        return emu.clear_trade_errors(conn_id)
    code = _int(q.pop("code", ""), "code")
    count = _int(q.pop("count", "1"), "count")
    if q:
        raise _BadRequest(f"unknown parameters: {', '.join(sorted(q))}")
    emu.inject_trade_error(code, count, conn_id=conn_id)
    return emu.pending_trade_errors(conn_id)


def _skew(emu: Emulator, q: dict[str, str]) -> object:
    text = q.get("ms")
    if text is not None:
        emu.set_clock_skew(_int(text, "ms"))
    return emu.clock_skew_ms


def _account(emu: Emulator, q: dict[str, str]) -> object:
    view = emu.account(q.get("key", ""))
    return dataclasses.asdict(view)


def _balance(emu: Emulator, q: dict[str, str]) -> object:
    key = q.get("key", "")
    emu.set_balance(key, q.get("coin", ""), q.get("amount", ""))
    return emu.account(key).balances


def _auth_log(emu: Emulator, q: dict[str, str]) -> object:
    return [
        {
            "time": r.time,
            "conn_id": r.conn_id,
            "kind": r.kind,
            "api_key": r.api_key,
            "result": r.result,
        }
        for r in emu.auth_log
    ]


def _rest(emu: Emulator, q: dict[str, str]) -> object:
    return {
        "url": emu.rest_url(),
        "failures": [dataclasses.asdict(f) for f in emu.pending_rest_failures()],
    }


def _rest_fail(emu: Emulator, q: dict[str, str]) -> object:
    if _bool(q.pop("clear", "false")):
        return emu.clear_rest_failures()
    kind = q.pop("kind", "")
    count = _int(q.pop("count", "1"), "count")
    path = q.pop("path", None) or None
    if kind == "code":
        emu.inject_rest_error(
            _int(q.pop("code", ""), "code"),
            count,
            path=path,
            reset_header=_bool(q.pop("reset_header", "true")),
        )
    elif kind == "http":
        emu.inject_rest_http(_int(q.pop("status", ""), "status"), count, path=path)
    elif kind == "delay":
        emu.inject_rest_delay(_number(q.pop("seconds", ""), "seconds"), count, path=path)
    elif kind == "batch":
        items = [_int(x, "items") for x in q.pop("items", "").split(",") if x.strip()]
        emu.inject_batch_failure(items, _int(q.pop("code", "10001"), "code"), count)
    else:
        raise _BadRequest(f"kind must be code, http, delay or batch, got {kind!r}")
    if q:
        raise _BadRequest(f"unknown parameters: {', '.join(sorted(q))}")
    return len(emu.pending_rest_failures())


def _funding(emu: Emulator, q: dict[str, str]) -> object:
    return emu.charge_funding(
        q.get("key", ""), q.get("category", "linear"), q.get("symbol", ""), q.get("rate", "")
    )


def _link(emu: Emulator, q: dict[str, str]) -> object:
    key = q.get("key", "")
    state = q.get("state", "")
    if state == "down":
        return emu.private_link_down(key, mode=q.get("mode", "refuse"))
    if state == "up":
        emu.trading.by_key(key)
        emu.private_link_up(key)
        return []
    raise _BadRequest(f"state must be down or up, got {state!r}")


def _outage(emu: Emulator, q: dict[str, str]) -> object:
    from hean.emulator.rest_scenario import LINK_MODES

    # every parameter is checked before the link goes down: a bad request changes nothing
    key = q.pop("key", "")
    emu.trading.by_key(key)  # KeyError (404) if unknown
    hold = _number(q.pop("hold", "0"), "hold")
    if hold < 0:
        raise _BadRequest(f"hold must be >= 0, got {hold}")
    restore = _bool(q.pop("restore", "true"))
    mode = q.pop("mode", "refuse")
    if mode not in LINK_MODES:
        raise _BadRequest(f"mode must be one of {', '.join(LINK_MODES)}, got {mode!r}")
    counts = {
        name: _int(q.pop(name, "1"), name)
        for name in ("fills", "partial_fills", "cancels", "new_orders")
    }
    for name, value in counts.items():
        if value < 0:
            raise _BadRequest(f"{name} must be >= 0, got {value}")
    rate = q.pop("funding_rate", None) or None
    symbol = q.pop("funding_symbol", None) or None
    seed = _int(q.pop("seed", "0"), "seed")
    if q:
        raise _BadRequest(f"unknown parameters: {', '.join(sorted(q))}")
    dropped = emu.private_link_down(key, mode=mode)
    try:
        summary = emu.outage_events(
            key, funding_rate=rate, funding_symbol=symbol, seed=seed, **counts
        )
    except BaseException:
        emu.private_link_up(key)
        raise
    if restore:
        if hold:
            asyncio.get_running_loop().call_later(hold, emu.private_link_up, key)
        else:
            emu.private_link_up(key)
    out = summary.as_dict()
    out["dropped"] = dropped
    return out


_ACTIONS: dict[str, Callable[[Emulator, dict[str, str]], object]] = {
    "faults": _faults,
    "inject": _inject,
    "clear": lambda emu, q: emu.clear_injections(q.get("conn_id")),
    "drop": lambda emu, q: emu.drop_connections(q.get("conn_id")),
    "close": _close,
    "reset": lambda emu, q: emu.reset_connections(q.get("conn_id")),
    "handshake": _handshake,
    "stall": _stall,
    "connections": _connections,
    "tick": _tick,
    "flush": _flush,
    "book": _book,
    "ticker": _ticker,
    "trade_error": _trade_error,
    "skew": _skew,
    "account": _account,
    "balance": _balance,
    "auth_log": _auth_log,
    "rest": _rest,
    "rest_fail": _rest_fail,
    "funding": _funding,
    "link": _link,
    "outage": _outage,
}


def handle(emu: Emulator, raw_path: str, method: bytes = b"GET") -> tuple[int, dict[str, Any]]:
    """Run one control request; returns ``(HTTP status, JSON body)``. Never raises."""
    try:
        if not emu.control_enabled:
            return 403, {"ok": False, "error": "control API disabled (EmulatorConfig.control)"}
        if method != b"GET":
            return 405, {"ok": False, "error": "use GET"}
        parsed = urllib.parse.urlsplit(raw_path)
        action = parsed.path[len(PREFIX) :].strip("/")
        fn = _ACTIONS.get(action)
        if fn is None:
            return 404, {
                "ok": False,
                "error": f"unknown action {action!r}; known: {', '.join(_ACTIONS)}",
            }
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        return 200, {"ok": True, "result": fn(emu, query)}
    except (_BadRequest, ValueError, TypeError) as exc:
        return 400, {"ok": False, "error": str(exc)}
    except KeyError as exc:
        return 404, {"ok": False, "error": str(exc.args[0] if exc.args else exc)}
    except Exception as exc:  # network input must never take the emulator down
        return 500, {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def response(status: int, body: dict[str, Any]) -> WSUpgradeResponseWithListener:
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if status == 200:
        reply = WSUpgradeResponse.create_ok_response(payload, headers)
    else:
        reply = WSUpgradeResponse.create_error_response(status, payload, headers)
    return WSUpgradeResponseWithListener(reply, None)


# -- client side ------------------------------------------------------------------------------


def _base(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "ws", "https", "wss") or not parts.netloc:
        raise ValueError(f"expected http://HOST:PORT or the emulator's ws:// URL, got {url!r}")
    scheme = "https" if parts.scheme in ("https", "wss") else "http"
    return f"{scheme}://{parts.netloc}"


def call(
    url: str, action: str, params: dict[str, str] | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """GET ``/control/<action>?params`` on the emulator at ``url``; returns the JSON reply."""
    query = urllib.parse.urlencode(params or {})
    target = f"{_base(url)}{PREFIX}{urllib.parse.quote(action)}" + (f"?{query}" if query else "")
    request = urllib.request.Request(target, method="GET")  # noqa: S310 - http(s) only, checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
            body: dict[str, Any] = json.loads(reply.read())
    except urllib.error.HTTPError as err:
        body = json.loads(err.read() or b"{}")
    return body


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    url, action, *pairs = args
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            print(f"control: expected key=value, got {pair!r}", file=sys.stderr)
            return 2
        params[key] = value
    try:
        body = call(url, action, params)
    except (OSError, ValueError) as exc:
        print(f"control: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(body))
    return 0 if body.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
