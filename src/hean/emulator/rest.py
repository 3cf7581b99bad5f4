"""The emulator's REST API: Bybit V5 HTTP endpoints over the same venue as the WebSockets.

Served with ``aiohttp.web`` on its own port (``EmulatorConfig.rest_port``, 0 = a free one; same
host as the WebSockets, loopback by default), started and stopped with the
:class:`~hean.emulator.server.Emulator`; ``emu.rest_url()`` gives ``http://HOST:PORT``. Point
pybit at it with ``session.endpoint = emu.rest_url()``.

Endpoints (rest.md §10.1): ``GET /v5/market/{time,instruments-info,tickers,orderbook,
recent-trade,kline}`` (public, :mod:`hean.emulator.rest_market`), ``GET /v5/order/{realtime,
history}``, ``GET /v5/execution/list``, ``GET /v5/position/list``, ``GET
/v5/account/wallet-balance``, ``POST /v5/order/{create,amend,cancel,cancel-all,create-batch}``
(private, :mod:`hean.emulator.rest_account`). Anything else: HTTP 404 (plain text). A known
path with the other method, or a method other than GET/POST: ``10001 "method error"``. A GET
with a body: HTTP 403 (Bybit lists it as a cause).

Everything comes from the venue the WebSockets serve: instruments, tickers (the ticker state as
of its last push; spot ``bid1``/``ask1`` from the book), the order book (``u`` is the
``orderbook.1000`` topic's; ``seq``/``cts`` the book's), trades, klines (newest first; closed
candles plus the open one, gaps filled with flat candles), and the accounts of
:class:`~hean.emulator.trading.Trading`: a REST order goes through ``Trading.execute`` like a
``/v5/trade`` op, fills on the book and is pushed on the private stream (order, execution,
position, wallet) exactly like a WS-trade order (the pushes may reach the stream before the
HTTP response, as on Bybit).

Wire format (rest.md §1.3, §1.4): envelope ``{"retCode", "retMsg", "result", "retExtInfo",
"time"}`` (errors: ``result`` and ``retExtInfo`` are ``{}``, HTTP 200), compact JSON with Go's
escaping of ``&``/``<``/``>`` inside strings (``\\u0026``); headers ``Content-Type:
application/json; charset=utf-8``, ``Traceid``, ``Timenow`` (server ms) and, on private
endpoints, ``X-Bapi-Limit``, ``X-Bapi-Limit-Status``, ``X-Bapi-Limit-Reset-Timestamp``.

Auth of private endpoints (rest.md §2, §10.2), in this order:

1. missing headers: ``10001 "empty value: apiTimestamp[..] apiKey[..] apiSignature[..]"`` (the
   three forms of §2.1); a non-integer timestamp / recv window: ``10001 "openapi params error!
   req_timestamp invalid"`` / ``"... recv_window invalid"``;
2. timestamp window ``server - recv_window <= ts < server + 1000`` (server time includes
   ``emu.clock_skew_ms``; recv window 5000 when the header is absent): ``10002 "invalid
   request, please check your server timestamp or recv_window param.
   req_timestamp[..],server_timestamp[..],recv_window[..]"``;
3. unknown key: ``10003 "API key is invalid."``;
4. HMAC-SHA256 of ``timestamp + key + <raw X-BAPI-RECV-WINDOW text, "" if absent> + <raw query
   string from the request line | raw body bytes>``: ``10004 "error sign!
   origin_string[<payload>]"`` (nothing is re-built or sorted: pybit's sorted and other
   clients' unsorted queries both verify);
5. permission: a key with ``AccountConfig.read_only`` gets ``10005 "Permission denied, please
   check your API key permissions."`` on order entry;
6. per-UID rate limit (below): ``10006 "Too many visits. Exceeded the API Rate Limit."``.

Parameters (rest.md §10.3): query values percent-encoded or not (decoded once; a ``cursor`` is
decoded until it has no ``%`` left, so raw and double-encoded cursors both work); booleans
``true``/``True``/``1`` and ``false``/``False``/``0``; JSON ``null`` for an absent optional body
field; ``qty``/``price`` as JSON strings or numbers. Rejected with 10001: a body that is not a
JSON object, a non-integer ``limit``/``startTime``/``endTime``/``openOnly``, booleans or nested
objects where a number or string is expected, unknown enum values.

Rate limits (rest.md §3.2, rolling 1 s per UID and endpoint): order entry per category group
(``create`` 10/s linear+inverse, 10 option, 20 spot; ``amend`` 10/10/10; ``cancel`` 10/10/20;
``cancel-all`` 10/1/20; ``create-batch`` 10/10/20 *orders* per second on linear/inverse/spot and
requests on option, its own quota: a batch larger than what is left gets the first N orders
placed and the rest failed item by item with 10006; a batch refused as a whole, e.g. over 20
orders or 10 on spot, is answered 10001 and counts once), queries 50/s each. Scaled by
``EmulatorConfig.rest_rate_scale``, overridden per path by ``rest_rate_limits``. When blocked:
10006 with ``X-Bapi-Limit-Reset-Timestamp`` = when the window frees up. The REST quotas are
separate from the ``/v5/trade`` quota (``trade_rate_limit``).

Pagination (rest.md §4): opaque percent-encoded cursors (``page_args%3D…%26`` for open orders,
``page_token%3D…%26`` for history, ``<execTime>%3A<n>%2C…`` for executions,
``first%3D…%26last%3D…`` for instruments, ``<symbol>%2C<n>`` for positions). ``limit`` is capped
at ``EmulatorConfig.rest_page_size`` (``None``: Bybit's maximum per endpoint). Orders and
executions are newest first; orders, executions and instruments return a cursor with every
non-empty page (an empty page has ``""``), positions only when more remain; a client stops on an
empty list or an empty cursor. Order history lists closed orders only (open ones are in
``/v5/order/realtime``), each ``EmulatorConfig.rest_history_lag`` seconds after it closed;
never-filled ``Cancelled``/``Rejected`` orders for 24 h, others for 7 days (the emulator keeps
the account's most recent 10,000 orders). ``openOnly=1`` lists the most recent 500 closed orders
of the category; by ``orderId``/``orderLinkId`` realtime returns an order while it is open or in
those 500. Executions and history take ``startTime``/``endTime`` by Bybit's 7-day rules (a span
over 7 days, or an end before the start: 10001).

Failure switches (rest.md §10.7; Python API on the Emulator, control endpoint
``/control/rest_fail``): each answers the next ``count`` matching requests (optionally only on
one ``path``) instead of the normal processing, before auth:

* ``emu.inject_rest_error(code, count=1, *, path=None, reset_header=True)``: retCode 10002,
  10003, 10004, 10005, 10006 (with the ``X-Bapi-Limit*`` headers; ``reset_header=False`` leaves
  out ``X-Bapi-Limit-Reset-Timestamp``, as seen in captures), 10010, 10016, 10000 or 429,
  HTTP 200 with Bybit's text;
* ``emu.inject_rest_http(status, count=1, *, path=None)``: HTTP 403 (``access too frequent``,
  a non-JSON HTML body), 429, or 500/502/503/504 (non-JSON body);
* ``emu.inject_rest_delay(seconds, count=1, *, path=None)``: the request is processed at once
  and its response held back ``seconds`` (a slow exchange: an order is placed even if the client
  times out);
* ``emu.inject_batch_failure(items, code=10001, count=1)``: the next ``create-batch`` requests
  fail the items at those indexes with ``code`` (the rest are placed);
* ``emu.clear_rest_failures()``, ``emu.pending_rest_failures()``.

Funding: ``emu.charge_funding(api_key, category, symbol, rate) -> list[str]`` books a
``Funding`` execution (see :meth:`Trading.charge_funding`) on the account's open position.

The private-outage scenario is in :mod:`hean.emulator.rest_scenario`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hean.emulator import shapes
from hean.emulator.accounts import Account
from hean.emulator.trading import OpError, RateWindow, Trading

if TYPE_CHECKING:
    from hean.emulator.server import Emulator

__all__ = [
    "ERROR_TEXTS",
    "HTTP_FAILURES",
    "INJECTABLE_REST_CODES",
    "Call",
    "RestFailure",
    "RestRecord",
    "RestServer",
]

log = logging.getLogger("hean.emulator.rest")

#: retMsg per retCode for codes the REST side sends without more specific words
ERROR_TEXTS: dict[int, str] = {
    10000: "Server Timeout",
    10001: "Request parameter error.",
    10003: shapes.INVALID_KEY_TEXT,
    10004: shapes.INVALID_SIGN_TEXT,
    10005: "Permission denied, please check your API key permissions.",
    10006: shapes.TRADE_TEXTS[10006],
    10010: "Unmatched IP, please check your API key's bound IP addresses.",
    10016: "Server error.",
    429: shapes.TRADE_TEXTS[10429],
}
#: retCodes :meth:`Emulator.inject_rest_error` may inject
INJECTABLE_REST_CODES = frozenset({10000, 10002, 10003, 10004, 10005, 10006, 10010, 10016, 429})
#: HTTP statuses :meth:`Emulator.inject_rest_http` may inject, with their (non-JSON) bodies
HTTP_FAILURES: dict[int, str] = {
    403: "<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1>"
    "</center><p>access too frequent</p></body></html>",
    429: "<html><head><title>429 Too Many Requests</title></head><body><center>"
    "<h1>429 Too Many Requests</h1></center></body></html>",
    500: "<html><body><h1>500 Internal Server Error</h1></body></html>",
    502: "<html><body><h1>502 Bad Gateway</h1></body></html>",
    503: "<html><body><h1>503 Service Unavailable</h1></body></html>",
    504: "<html><body><h1>504 Gateway Time-out</h1></body></html>",
}
_JSON = "application/json; charset=utf-8"
_MAX_LOG = 10_000


@dataclass(slots=True)
class RestFailure:
    """One armed failure switch (see the module docstring)."""

    kind: str
    """``code`` (a retCode), ``http`` (an HTTP status), ``delay`` or ``batch``."""
    count: int
    path: str | None = None
    code: int = 0
    status: int = 0
    seconds: float = 0.0
    reset_header: bool = True
    items: tuple[int, ...] = ()

    def matches(self, path: str) -> bool:
        return self.path is None or self.path == path


@dataclass(frozen=True, slots=True)
class RestRecord:
    """One REST request as answered (see :attr:`Emulator.rest_log`)."""

    time: float
    """Monotonic time it was answered."""
    method: str
    path: str
    api_key: str | None
    """The key it named (private endpoints; never the signature)."""
    http_status: int
    ret_code: int | None
    """``None`` for non-JSON answers (404, injected HTTP failures)."""


@dataclass(slots=True)
class Call:
    """What an endpoint handler gets."""

    emu: Emulator
    server: RestServer
    method: str
    path: str
    params: dict[str, Any]
    """Query parameters (GET, strings) or the JSON body without ``null`` fields (POST)."""
    account: Account | None
    now_ms: int
    rate_units: int = 1
    """POST ``create-batch``: how many of its orders the rate limit allows (the rest fail)."""


Handler = Callable[[Call], tuple[object, object]]
"""Returns ``(result, retExtInfo)``; raises :class:`OpError` for a business error."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    private: bool
    handler: Handler


#: per-UID quotas: path -> (linear/inverse, option, spot) for order entry, or one value
_ORDER_QUOTAS: dict[str, tuple[int, int, int]] = {
    "/v5/order/create": (10, 10, 20),
    "/v5/order/amend": (10, 10, 10),
    "/v5/order/cancel": (10, 10, 20),
    "/v5/order/cancel-all": (10, 1, 20),
    "/v5/order/create-batch": (10, 10, 20),
}
_QUERY_QUOTA = 50


def _empty_value_text(ts: str, key: str, sign: str) -> str:
    if not key:
        return f"empty value: apiTimestamp[{ts}] apiKey[] apiSignature[]"
    if not ts:
        return f"empty value: apiTimestamp[] apiKey[{key}]"
    return f"empty value: apiTimestamp[{ts}] apiKey[{key}] apiSignature[{sign}]"


def go_json(obj: object) -> bytes:
    """Compact JSON as Bybit's Go encoder writes it (``&``, ``<``, ``>`` escaped)."""
    raw = shapes.encode(obj)
    return raw.replace(b"&", b"\\u0026").replace(b"<", b"\\u003c").replace(b">", b"\\u003e")


def parse_query(query: str) -> dict[str, str]:
    """Query parameters, percent-decoded once (first value wins); ``cursor`` fully decoded."""
    out: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        out.setdefault(name, value)
    cursor = out.get("cursor")
    if cursor:
        for _ in range(3):
            if "%" not in cursor:
                break
            cursor = urllib.parse.unquote(cursor)
        out["cursor"] = cursor
    return out


class RestServer:
    """The REST API of one emulator (see the module docstring)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._windows: dict[tuple[int, str, str], RateWindow] = {}
        self.failures: list[RestFailure] = []
        self.log: deque[RestRecord] = deque(maxlen=_MAX_LOG)
        from hean.emulator import rest_account, rest_market  # here: they import this module

        self.endpoints: dict[str, Endpoint] = {}
        for path, handler in rest_market.ENDPOINTS.items():
            self.endpoints[path] = Endpoint("GET", False, handler)
        for path, handler in rest_account.QUERIES.items():
            self.endpoints[path] = Endpoint("GET", True, handler)
        for path, handler in rest_account.ORDER_ENTRY.items():
            self.endpoints[path] = Endpoint("POST", True, handler)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError("the REST API is not running")
        return self._port

    async def start(self, host: str, port: int) -> None:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1024)
            sock.setblocking(False)
            self._port = sock.getsockname()[1]
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- failure switches ---------------------------------------------------------------------

    def arm(self, failure: RestFailure) -> None:
        self.failures.append(failure)

    def _take_failure(self, path: str, kinds: tuple[str, ...]) -> RestFailure | None:
        for failure in self.failures:
            if failure.kind in kinds and failure.matches(path):
                failure.count -= 1
                if failure.count <= 0:
                    self.failures.remove(failure)
                return failure
        return None

    def take_batch_failure(self) -> RestFailure | None:
        return self._take_failure("/v5/order/create-batch", ("batch",))

    # -- rate limits --------------------------------------------------------------------------

    def quota(self, path: str, category: object) -> tuple[str, int]:
        """``(group, per-second quota)`` of a path for a category."""
        cfg = self.emu.config
        override = cfg.rest_rate_limits.get(path)
        quotas = _ORDER_QUOTAS.get(path)
        if quotas is None:
            group, base = "all", _QUERY_QUOTA
        elif category == "option":
            group, base = "option", quotas[1]
        elif category == "spot":
            group, base = "spot", quotas[2]
        else:
            group, base = "futures", quotas[0]
        if override is not None:
            return group, override
        return group, max(1, round(base * cfg.rest_rate_scale))

    def take_rate(
        self, uid: int, path: str, category: object, units: int, now_ms: int
    ) -> tuple[int, dict[str, str]]:
        """Count up to ``units`` requests (rolling 1 s); returns how many were allowed and the
        ``X-Bapi-Limit*`` headers."""
        group, quota = self.quota(path, category)
        return self._windows.setdefault((uid, path, group), RateWindow()).take(units, quota, now_ms)

    def limit_headers(self, uid: int, path: str, category: object, now_ms: int) -> dict[str, str]:
        """The ``X-Bapi-Limit*`` headers as they stand (nothing counted)."""
        group, quota = self.quota(path, category)
        return self._windows.setdefault((uid, path, group), RateWindow()).headers(quota, now_ms)

    # -- responses ----------------------------------------------------------------------------

    def _headers(self, now_ms: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Traceid": self.emu.trace_id(), "Timenow": str(now_ms)}
        if extra:
            headers.update(extra)
        return headers

    def envelope(
        self,
        code: int,
        msg: str,
        result: object,
        ext: object,
        now_ms: int,
        extra: Mapping[str, str] | None = None,
    ) -> web.Response:
        body = go_json(
            {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": ext, "time": now_ms}
        )
        headers = self._headers(now_ms, extra)
        headers["Content-Type"] = _JSON
        return web.Response(body=body, status=200, headers=headers)

    def _plain(self, status: int, text: str, now_ms: int, content_type: str) -> web.Response:
        headers = self._headers(now_ms)
        headers["Content-Type"] = content_type
        return web.Response(body=text.encode(), status=status, headers=headers)

    def _record(
        self, method: str, path: str, key: str | None, status: int, code: int | None
    ) -> None:
        self.log.append(RestRecord(self.emu.clock.monotonic(), method, path, key, status, code))

    # -- requests -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path
        path, _, query = raw.partition("?")
        body = await request.read() if request.can_read_body else b""
        delay = 0.0
        try:
            response, key, code, delay = self.respond(
                request.method, path, query, request.headers, body
            )
        except Exception:  # a bug must never take the server down
            log.exception("emulator: REST %s %s failed", request.method, path)
            now = self.emu.server_time_ms()
            response, key, code = self.envelope(10016, "Server error.", {}, {}, now), None, 10016
        self._record(request.method, path, key, response.status, code)
        if delay:
            await asyncio.sleep(delay)
        return response

    def respond(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[web.Response, str | None, int | None, float]:
        """Answer one request at once; returns ``(response, api key named, retCode or None,
        seconds to hold the response back)``."""
        now = self.emu.server_time_ms()
        endpoint = self.endpoints.get(path)
        if endpoint is None:
            return (
                self._plain(404, "404 page not found", now, "text/plain; charset=utf-8"),
                None,
                None,
                0.0,
            )
        if method not in ("GET", "POST") or method != endpoint.method:
            return self.envelope(10001, "method error", {}, {}, now), None, 10001, 0.0
        if method == "GET" and body:
            return self._plain(403, HTTP_FAILURES[403], now, "text/html"), None, None, 0.0
        delay = self._take_failure(path, ("delay",))  # routed: the switches apply
        response, key, code = self._answer(endpoint, method, path, query, headers, body, now)
        return response, key, code, delay.seconds if delay is not None else 0.0

    def _answer(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        now: int,
    ) -> tuple[web.Response, str | None, int | None]:
        emu = self.emu
        key = headers.get("X-BAPI-API-KEY") if endpoint.private else None
        failure = self._take_failure(path, ("code", "http"))
        if failure is not None:
            return self._injected(failure, path, key, now), key, failure.code or None
        try:
            params = self._params(method, query, body)
        except OpError as err:
            params = None
            param_error: OpError | None = err
        else:
            param_error = None
        account: Account | None = None
        limits: dict[str, str] = {}
        units = 1
        if endpoint.private:
            try:
                account = self._authenticate(method, query, headers, body, now)
            except OpError as err:
                return self.envelope(err.code, err.msg, {}, {}, now), key, err.code
            if method == "POST" and account.config.read_only:
                return self.envelope(10005, ERROR_TEXTS[10005], {}, {}, now), key, 10005
            category = params.get("category") if params else None
            units = 1
            if path == "/v5/order/create-batch" and category != "option" and params:
                try:  # a batch counts its orders; one refused as a whole counts once
                    units = len(Trading.check_batch(params)[1])
                except OpError:
                    units = 1
            allowed, limits = self.take_rate(account.uid, path, category, units, now)
            if allowed == 0:
                return self.envelope(10006, ERROR_TEXTS[10006], {}, {}, now, limits), key, 10006
            units = allowed
        if param_error is not None or params is None:
            bad = param_error or OpError(10001, ERROR_TEXTS[10001])
            return self.envelope(bad.code, bad.msg, {}, {}, now, limits), key, bad.code
        call = Call(emu, self, method, path, params, account, now, units)
        try:
            result, ext = endpoint.handler(call)
        except OpError as failed:
            code = failed.code
            return self.envelope(code, failed.msg, {}, {}, now, limits), key, code
        return self.envelope(0, "OK", result, ext, now, limits), key, 0

    def _injected(self, failure: RestFailure, path: str, key: str | None, now: int) -> web.Response:
        if failure.kind == "http":
            return self._plain(failure.status, HTTP_FAILURES[failure.status], now, "text/html")
        code = failure.code
        if code == 10002:
            msg = shapes.recv_window_text(now - 30_000, now, 5000)
        else:
            msg = ERROR_TEXTS.get(code, f"error {code}")
        extra: dict[str, str] = {}
        endpoint = self.endpoints[path]
        if endpoint.private or code == 10006:
            account = self.emu.trading.find(key) if key else None
            uid = account.uid if account is not None else 0
            extra = self.limit_headers(uid, path, None, now)
            if code == 10006:
                extra["X-Bapi-Limit-Status"] = "0"
                extra["X-Bapi-Limit-Reset-Timestamp"] = str(now + 1000)
                if not failure.reset_header:
                    del extra["X-Bapi-Limit-Reset-Timestamp"]
        return self.envelope(code, msg, {}, {}, now, extra)

    @staticmethod
    def _params(method: str, query: str, body: bytes) -> dict[str, Any]:
        if method == "GET":
            return dict(parse_query(query))
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise OpError(10001, "Request parameter error.") from None
        if not isinstance(data, dict):
            raise OpError(10001, "Request parameter error.")
        out = {k: v for k, v in data.items() if v is not None}
        request_list = out.get("request")
        if isinstance(request_list, list):
            out["request"] = [
                {k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item
                for item in request_list
            ]
        return out

    def _authenticate(
        self, method: str, query: str, headers: Mapping[str, str], body: bytes, now: int
    ) -> Account:
        key = headers.get("X-BAPI-API-KEY", "")
        ts_text = headers.get("X-BAPI-TIMESTAMP", "")
        sign = headers.get("X-BAPI-SIGN", "")
        window_text = headers.get("X-BAPI-RECV-WINDOW")
        if not key or not ts_text or not sign:
            raise OpError(10001, _empty_value_text(ts_text, key, sign))
        if not (ts_text.isascii() and ts_text.isdigit()):
            raise OpError(10001, "openapi params error! req_timestamp invalid")
        timestamp = int(ts_text)
        if window_text is None or window_text == "":
            window = 5000
        elif window_text.isascii() and window_text.isdigit():
            window = int(window_text)
        else:
            raise OpError(10001, "openapi params error! recv_window invalid")
        if not now - window <= timestamp < now + 1000:
            raise OpError(10002, shapes.recv_window_text(timestamp, now, window))
        account = self.emu.trading.find(key)
        if account is None:
            raise OpError(10003, ERROR_TEXTS[10003])
        prefix = f"{ts_text}{key}{window_text or ''}"
        payload = prefix.encode() + (
            query.encode("utf-8", "surrogateescape") if method == "GET" else body
        )
        if not account.verify(payload, sign):
            origin = payload.decode("utf-8", "replace")
            raise OpError(10004, f"error sign! origin_string[{origin}]")
        return account


# -- parameters ---------------------------------------------------------------------------------


def text_param(params: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """A string parameter (numbers accepted and turned into text); ``None`` if absent/empty."""
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise OpError(10001, f"params error: {name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise OpError(10001, f"params error: {name} invalid")
    return str(value)


def int_param(params: Mapping[str, Any], name: str) -> int | None:
    """An integer parameter (``"50"``, ``50``, ``"50.0"``); ``None`` if absent/empty."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise OpError(10001, f"params error: {name} invalid")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(".0"):
            text = text[:-2]
        if text.lstrip("-").isdigit() and text.isascii():
            return int(text)
    raise OpError(10001, f"params error: {name} invalid")


def category_param(
    params: Mapping[str, Any], allowed: tuple[str, ...], *, default: str | None = None
) -> str:
    value = params.get("category")
    if value is None or value == "":
        if default is not None:
            return default
        raise OpError(10001, "params error: category is required")
    if value not in allowed:
        raise OpError(10001, f"params error: category {value!r} is not supported here")
    return str(value)


def limit_param(params: Mapping[str, Any], default: int, most: int, page_size: int | None) -> int:
    """``limit`` within ``1..most`` (bigger is cut to ``most``), then capped at ``page_size``."""
    value = int_param(params, "limit")
    limit = default if value is None else value
    if limit < 1:
        raise OpError(10001, "params error: limit invalid")
    limit = min(limit, most)
    return limit if page_size is None else min(limit, page_size)


def encode_cursor(text: str) -> str:
    """An opaque cursor, percent-encoded like Bybit's (``page_args%3D…%26``)."""
    return urllib.parse.quote(text, safe="")
