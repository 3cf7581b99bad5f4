"""``BybitRestClient``: Bybit V5 REST over one keep-alive aiohttp session (the asyncio shell).

Usage::

    async with BybitRestClient(api_key=key, api_secret=secret, testnet=True) as rest:
        await rest.sync_clock()                          # offset from /v5/market/time
        async for order in rest.open_orders("linear", settle_coin="USDT"):
            ...                                          # the same Order the private stream gives
        snapshot = await rest.wallet_balance()
        ack = await rest.create_order(category="linear", symbol="BTCUSDT", side="Buy",
                                      order_type="Limit", qty="0.001", price="30000")
        ack.order_id, ack.limit                          # X-Bapi-Limit* of every answer
        rest.calls, rest.calls_by_path                   # REST budget used (retries included)

What it does (rest.md):

* **Signing** (§2): the query string or JSON body is built once, signed, and sent exactly as
  signed (``yarl.URL(..., encoded=True)``: aiohttp does not re-encode it); cursors go back
  verbatim. ``X-BAPI-TIMESTAMP`` is local wall time corrected by :attr:`clock_offset`, a
  :class:`~hean.exchange.bybit.protocol.auth.ClockOffset` measured from ``/v5/market/time``
  (:meth:`sync_clock`) that the private and trade WebSockets can share (``clock_offset=``).
* **Errors** (§2.4): typed by ``retCode`` / HTTP status (:mod:`.errors`), with ``retCode``,
  ``retMsg``, HTTP status and path; the API key in a ``retMsg`` is masked; the secret and
  signatures appear nowhere (not in logs at DEBUG, reprs, exceptions or counters).
* **Rate limits and retries** (§3, :mod:`.limits`): the ``X-Bapi-Limit*`` headers of every
  answer are on :attr:`RestResponse.limit` and feed a per-endpoint-group limiter; ``10006``,
  HTTP 403 / 429 / 5xx, ``10000`` / ``10016`` and transport errors are retried a bounded number
  of times after a jittered backoff (a ``10006`` waits until ``X-Bapi-Limit-Reset-Timestamp``,
  ``now + 2 s`` when missing); ``10002`` is retried once after re-measuring the clock afresh; auth,
  permission, parameter and business errors are raised at once. Order entry is never re-sent
  when its outcome is unknown (server error, lost answer): reconcile instead.
* **Pagination** (§4): :meth:`open_orders`, :meth:`order_history`, :meth:`executions` and
  :meth:`positions` are async iterators over every page (stop on an empty cursor or an empty
  page; a repeated cursor raises instead of looping).
* **Connections**: one ``aiohttp.ClientSession`` (HTTP keep-alive, a bounded pool), TLS always
  verified (pass an ``ssl.SSLContext`` for your own CA; a non-verifying one is refused).
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import yarl

from hean.core.clock import Clock, SystemClock
from hean.core.config import Settings
from hean.core.secrets import RedactingFilter, Secret, install_redaction
from hean.exchange.bybit.endpoints import validate_category
from hean.exchange.bybit.instruments import InstrumentCheck
from hean.exchange.bybit.protocol.auth import ClockOffset
from hean.exchange.bybit.protocol.orders import (
    CANCEL_ALL_NAMED,
    TARGET_NAMED,
    add_extra,
    amend_args,
    api_params,
    create_args,
    target_args,
    with_numbers,
)
from hean.exchange.bybit.protocol.trade import check_batch
from hean.exchange.bybit.rest.decode import (
    RestOrderBook,
    WalletSnapshot,
    decode_executions,
    decode_klines,
    decode_orderbook,
    decode_orders,
    decode_positions,
    decode_trades,
    decode_wallets,
)
from hean.exchange.bybit.rest.errors import (
    RestError,
    RestTransportError,
    error_for_code,
    error_for_http,
)
from hean.exchange.bybit.rest.limits import (
    RateLimiter,
    RetryPolicy,
    endpoint_group,
    parse_limit_headers,
)
from hean.exchange.bybit.rest.pagination import Paginator
from hean.exchange.bybit.rest.response import RestResponse, decode_envelope
from hean.exchange.bybit.rest.signing import PreparedRequest, prepare
from hean.exchange.bybit.state.private import Execution, Order, Position
from hean.exchange.bybit.state.public import Kline, Trade

__all__ = [
    "DEMO_URL",
    "MAINNET_URL",
    "TESTNET_URL",
    "BybitRestClient",
    "InstrumentCheck",
    "RestStats",
    "rest_url",
]

log = logging.getLogger("hean.rest")

MAINNET_URL = "https://api.bybit.com"
TESTNET_URL = "https://api-testnet.bybit.com"
DEMO_URL = "https://api-demo.bybit.com"


T = TypeVar("T")


def rest_url(*, testnet: bool = True) -> str:
    """The REST base URL: ``https://api-testnet.bybit.com`` or ``https://api.bybit.com``."""
    return TESTNET_URL if testnet else MAINNET_URL


@dataclass(frozen=True, slots=True)
class RestStats:
    """Counters of a client (all since construction)."""

    calls: int
    """Requests sent (every page and every retry)."""
    calls_by_path: dict[str, int]
    retries: int
    """Requests sent again after a retryable failure."""
    errors: int
    """Calls that ended in a raised :class:`RestError`."""
    rate_limit_waits: int
    """Times the client-side limiter made a request wait."""
    bad_items: int
    """List items that could not be decoded and were dropped (logged)."""
    clock_syncs: int


class BybitRestClient:
    """Bybit V5 REST client (see the module docstring).

    Args:
        api_key: the API key (``str`` or :class:`~hean.core.secrets.Secret`); ``None`` for a
            public-only client (market endpoints).
        api_secret: the API secret.
        testnet: use ``https://api-testnet.bybit.com`` (ignored when ``url`` is given).
        url: any base URL (mainnet ``https://api.bybit.com``, demo, regional hosts, the
            emulator's ``http://127.0.0.1:PORT``).
        recv_window: ``X-BAPI-RECV-WINDOW`` in ms (``None``: header left out, Bybit uses 5000).
        timeout: seconds per request (connect + answer).
        max_retries: retries per call (see :class:`~.limits.RetryPolicy`).
        clock: time source (``sleep`` for waits and backoff, ``wall_ms`` for timestamps); inject
            a :class:`~hean.core.clock.ManualClock` in tests.
        clock_offset: a shared :class:`ClockOffset` (e.g. with the private/trade WebSockets);
            default: a new one.
        rate_limits: follow the rate-limit headers with a client-side limiter (waits before
            sending); ``False`` sends at once (retries still wait).
        retry: the full retry policy (overrides ``max_retries``).
        ssl_context: TLS settings for ``https://`` (always verifying; give one with your CA).
        referer: broker id, sent as ``Referer``.
        instruments: the instrument rules, asked before every create / amend / batch is sent
            (an :class:`~hean.exchange.bybit.instruments.InstrumentRegistry`, or any
            :class:`~hean.exchange.bybit.instruments.InstrumentCheck`, the same as the trade
            WebSocket takes); a ``ValueError`` it raises propagates and nothing is sent.
        pool_size: most connections kept open at once.
        rng: random source for backoff jitter.
        name: label for logs.

    Raises:
        ValueError: a bad URL, half the credentials, or a non-verifying ``ssl_context``.
    """

    def __init__(
        self,
        api_key: Secret | str | None = None,
        api_secret: Secret | str | None = None,
        *,
        testnet: bool = True,
        url: str | None = None,
        recv_window: int | None = 5000,
        timeout: float = 10.0,
        max_retries: int = 3,
        clock: Clock | None = None,
        clock_offset: ClockOffset | None = None,
        rate_limits: bool = True,
        retry: RetryPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
        referer: str | None = None,
        instruments: InstrumentCheck | None = None,
        pool_size: int = 16,
        rng: random.Random | None = None,
        name: str = "rest",
    ) -> None:
        base = (url if url is not None else rest_url(testnet=testnet)).rstrip("/")
        if not base.startswith(("http://", "https://")) or "?" in base or "#" in base:
            raise ValueError(f"url must be an http:// or https:// base URL, got {base!r}")
        if (api_key is None) != (api_secret is None):
            raise ValueError("give both api_key and api_secret, or neither")
        if ssl_context is not None and ssl_context.verify_mode == ssl.CERT_NONE:
            raise ValueError("TLS certificate verification cannot be turned off")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if recv_window is not None and recv_window <= 0:
            raise ValueError("recv_window must be > 0 ms or None")
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self._url = base
        self._key = Secret.api_key(api_key) if api_key is not None else None
        self._secret = Secret.of(api_secret) if api_secret is not None else None
        self._redactor = RedactingFilter(s for s in (self._key, self._secret) if s is not None)
        self.recv_window = recv_window
        self.timeout = timeout
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.clock_offset = clock_offset if clock_offset is not None else ClockOffset()
        self.limiter = RateLimiter() if rate_limits else None
        self.retry = retry if retry is not None else RetryPolicy(max_retries=max_retries)
        self.ssl_context = ssl_context
        self.referer = referer
        self.instruments = instruments
        self.pool_size = pool_size
        self.name = name
        self._rng = rng if rng is not None else random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._calls = 0
        self._calls_by_path: dict[str, int] = {}
        self._retries = 0
        self._errors = 0
        self._bad = 0
        self._syncs = 0
        self.last_response: RestResponse | None = None
        """The latest successful answer (its ``limit`` and ``time``)."""

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> BybitRestClient:
        """A client with the credentials and environment of ``settings`` (default: read from
        ``BYBIT_API_KEY`` / ``BYBIT_API_SECRET`` / ``BYBIT_TESTNET``); without credentials, a
        public-only client. ``kwargs`` as for the constructor.

        Raises:
            ConfigError: the settings are invalid.
        """
        settings = settings if settings is not None else Settings()
        kwargs.setdefault("testnet", settings.testnet)
        if settings.has_credentials:
            creds = settings.credentials()
            kwargs.setdefault("api_key", creds.api_key)
            kwargs.setdefault("api_secret", creds.api_secret)
        return cls(**kwargs)

    async def __aenter__(self) -> BybitRestClient:
        self._ensure_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections (the client can be used again: a new session is opened)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            secrets = [s for s in (self._key, self._secret) if s is not None]
            install_redaction(secrets, loggers=("hean", "aiohttp"))
            connector = aiohttp.TCPConnector(
                limit=self.pool_size,
                ssl=self.ssl_context if self.ssl_context is not None else True,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Accept": "application/json", "User-Agent": "hean"},
                raise_for_status=False,
            )
            self._session = session
        return session

    # -- properties -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL (e.g. ``https://api-testnet.bybit.com``, ``http://127.0.0.1:PORT``)."""
        return self._url

    @property
    def api_key(self) -> Secret | None:
        """The API key (masked when printed), or ``None`` for a public-only client."""
        return self._key

    @property
    def api_secret(self) -> Secret | None:
        """The API secret as a :class:`~hean.core.secrets.Secret` (masked in every repr, log
        and message; ``reveal()`` is the only way to the text), so other clients of the same
        account (e.g. :class:`hean.account.Account`'s private WebSocket) can share it."""
        return self._secret

    @property
    def has_credentials(self) -> bool:
        return self._key is not None

    @property
    def calls(self) -> int:
        """Requests sent so far (every page and every retry included)."""
        return self._calls

    @property
    def calls_by_path(self) -> dict[str, int]:
        """Requests sent so far, by path (a copy)."""
        return dict(self._calls_by_path)

    @property
    def stats(self) -> RestStats:
        return RestStats(
            calls=self._calls,
            calls_by_path=dict(self._calls_by_path),
            retries=self._retries,
            errors=self._errors,
            rate_limit_waits=self.limiter.waits if self.limiter is not None else 0,
            bad_items=self._bad,
            clock_syncs=self._syncs,
        )

    def __repr__(self) -> str:
        key = self._key.masked if self._key is not None else None
        return f"BybitRestClient(url={self._url!r}, api_key={key!r}, calls={self._calls})"

    def server_now_ms(self) -> int:
        """Estimated server time now, ms (local wall time plus the measured offset)."""
        return round(self.clock.wall_ms() + (self.clock_offset.estimate_ms or 0.0))

    # -- the request loop -------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        auth: bool,
        idempotent: bool | None = None,
    ) -> RestResponse:
        """Send one request (signed when ``auth``), retrying as the policy allows.

        Args:
            method: ``GET`` or ``POST``.
            path: e.g. ``/v5/order/realtime``.
            params: API parameters by their API names (query for GET, JSON body for POST).
            auth: sign the request (private endpoints).
            idempotent: whether it may be re-sent after an unknown outcome (default: GET yes,
                POST no).

        Returns:
            The answer (``retCode`` 0).

        Raises:
            RestError: a subclass per failure (see :mod:`hean.exchange.bybit.rest.errors`).
            ValueError: ``auth`` without credentials, or bad parameters (nothing sent).
        """
        method = method.upper()
        if auth and (self._key is None or self._secret is None):
            raise ValueError(
                f"{path} needs API credentials: give api_key/api_secret "
                "(or set BYBIT_API_KEY and BYBIT_API_SECRET)"
            )
        if idempotent is None:
            idempotent = method == "GET"
        category = params.get("category") if params else None
        group = endpoint_group(method, path, category if isinstance(category, str) else None)
        retries = 0
        resynced = False
        while True:
            await self._wait_for_limit(group)
            prepared = self._prepare(method, path, params, auth)
            try:
                response = await self._send(prepared, group)
            except RestError as error:
                error.attempts = retries + 1
                decision = self.retry.decide(
                    error,
                    retries=retries,
                    resynced=resynced,
                    idempotent=idempotent,
                    now_ms=self.server_now_ms(),
                    rng=self._rng,
                )
                if decision is None:
                    self._errors += 1
                    log.debug("%s: %s", self.name, error)
                    raise
                retries += 1
                self._retries += 1
                log.warning(
                    "%s: %s; retry %d/%d in %.2f s%s",
                    self.name,
                    error,
                    retries,
                    self.retry.max_retries,
                    decision.delay,
                    " after re-syncing the clock" if decision.resync else "",
                )
                if decision.resync:
                    try:
                        await self.sync_clock(fresh=True)
                    except RestError:
                        self._errors += 1
                        raise error from None
                    resynced = True
                if decision.delay > 0:
                    await self.clock.sleep(decision.delay)
                continue
            if retries:
                response = RestResponse(
                    ret_code=response.ret_code,
                    ret_msg=response.ret_msg,
                    result=response.result,
                    ret_ext_info=response.ret_ext_info,
                    time=response.time,
                    http_status=response.http_status,
                    limit=response.limit,
                    path=response.path,
                    method=response.method,
                    attempts=retries + 1,
                )
            self.last_response = response
            return response

    async def _wait_for_limit(self, group: str | None) -> None:
        limiter = self.limiter
        if limiter is None:
            return
        while True:
            wait = limiter.wait_ms(group, self.server_now_ms())
            if wait <= 0:
                return
            log.debug("%s: rate limit of %s: waiting %d ms", self.name, group or "IP", wait)
            await self.clock.sleep(wait / 1000.0)

    def _prepare(
        self, method: str, path: str, params: Mapping[str, Any] | None, auth: bool
    ) -> PreparedRequest:
        if not auth:
            return prepare(method, path, params, referer=self.referer)
        return prepare(
            method,
            path,
            params,
            api_key=self._key,
            api_secret=self._secret,
            timestamp_ms=self.server_now_ms(),
            recv_window=self.recv_window,
            referer=self.referer,
        )

    def _count(self, path: str) -> None:
        self._calls += 1
        self._calls_by_path[path] = self._calls_by_path.get(path, 0) + 1

    def _redact(self, text: str) -> str:
        """``text`` (an error message or body for an exception) without the key, the secret
        or a signature: the log filter's rules, applied where no logger is involved."""
        return self._redactor.redact(text)

    async def _send(self, prepared: PreparedRequest, group: str | None) -> RestResponse:
        session = self._ensure_session()
        method, path = prepared.method, prepared.path
        url = yarl.URL(self._url + prepared.target, encoded=True)
        self._count(path)
        limiter = self.limiter
        if limiter is not None:
            limiter.on_sent(group, self.server_now_ms())
        try:
            async with session.request(
                method, url, data=prepared.body, headers=prepared.headers, allow_redirects=False
            ) as resp:
                body = await resp.read()
                status = resp.status
                headers = resp.headers
        except TimeoutError:
            if limiter is not None:
                limiter.on_lost(group)
            raise RestTransportError(
                f"no answer within {self.timeout:g} s", path, method=method
            ) from None
        except aiohttp.ClientError as exc:
            if limiter is not None:
                limiter.on_lost(group)
            raise RestTransportError(
                self._redact(f"{type(exc).__name__}: {exc}"), path, method=method
            ) from None
        info = parse_limit_headers(headers)
        if status != 200:
            if limiter is not None:
                limiter.on_answer(group, info, self.server_now_ms())
            log.debug("%s: %s %s -> HTTP %d", self.name, method, path, status)
            raise error_for_http(
                status,
                self._redact(body.decode("utf-8", "replace")),
                path,
                method=method,
                limit=info,
            )
        try:
            code, msg, result, ext, time = decode_envelope(body)
        except ValueError as exc:
            if limiter is not None:
                limiter.on_answer(group, info, self.server_now_ms())
            raise RestTransportError(
                f"HTTP 200 but {exc}", path, method=method, http_status=status, limit=info
            ) from None
        if limiter is not None:
            limiter.on_answer(group, info, self.server_now_ms(), blocked=code == 10006)
        log.debug("%s: %s %s -> %d", self.name, method, path, code)
        if code != 0:
            raise error_for_code(
                code,
                self._redact(msg),
                path,
                method=method,
                http_status=status,
                limit=info,
                response=RestResponse(
                    ret_code=code,
                    ret_msg=self._redact(msg),
                    result=result,
                    ret_ext_info=ext,
                    time=time,
                    http_status=status,
                    limit=info,
                    path=path,
                    method=method,
                ),
            )
        return RestResponse(
            ret_code=code,
            ret_msg=msg,
            result=result,
            ret_ext_info=ext,
            time=time,
            http_status=status,
            limit=info,
            path=path,
            method=method,
        )

    def _bad_items(self, count: int, path: str) -> None:
        self._bad += count
        log.warning(
            "%s: %d item(s) of %s could not be decoded and were dropped", self.name, count, path
        )

    def _decoded(self, decoded: tuple[list[T], int], path: str) -> list[T]:
        items, bad = decoded
        if bad:
            self._bad_items(bad, path)
        return items

    # -- clock ------------------------------------------------------------------------------

    async def server_time(self) -> int:
        """``GET /v5/market/time``: the server time in ms. Each answer that was not retried
        also adds a sample to :attr:`clock_offset` (``time - (t_send + t_recv) / 2``)."""
        server, trip = await self._time_sample()
        if trip is not None:
            self.clock_offset.add_round_trip(server, *trip)
        return round(server)

    async def _time_sample(self) -> tuple[float, tuple[float, float] | None]:
        """The server time and the local send and receive times around it (``None`` for a
        retried answer, whose round trip is unknown)."""
        sent = self.clock.wall_ms()
        resp = await self.request("GET", "/v5/market/time", auth=False)
        recv = self.clock.wall_ms()
        server = _server_ms(resp)
        if server is None:
            raise RestTransportError("no server time in the answer", resp.path, method="GET")
        return server, ((sent, recv) if resp.attempts == 1 else None)

    async def sync_clock(self, samples: int = 1, *, fresh: bool = False) -> float:
        """Measure the clock offset from ``samples`` calls of ``/v5/market/time``.

        ``fresh=True`` forgets the samples kept so far first (what a ``10002`` answer does: the
        clock jumped, and one new sample would not move the median of many old ones).

        Returns:
            The offset estimate in ms (``server - local``; median of the kept samples, which
            may include samples other clients sharing :attr:`clock_offset` added).
        """
        if samples < 1:
            raise ValueError("samples must be >= 1")
        self._syncs += 1
        if fresh:  # measured first: a failed sync keeps the old estimate
            measured = [await self._time_sample() for _ in range(samples)]
            self.clock_offset.clear()
            for at, trip in measured:
                if trip is not None:
                    self.clock_offset.add_round_trip(at, *trip)
        else:
            for _ in range(samples):
                await self.server_time()
        estimate = self.clock_offset.estimate_ms
        if estimate is None:  # every answer was a retry: take the last one as it is
            server = _server_ms(self.last_response) if self.last_response else None
            if server is not None:
                self.clock_offset.add(server - self.clock.wall_ms())
            estimate = self.clock_offset.estimate_ms or 0.0
        log.info("%s: %s", self.name, self.clock_offset.describe("/v5/market/time"))
        return estimate

    # -- market -----------------------------------------------------------------------------

    async def instruments_info(
        self,
        category: str,
        symbol: str | None = None,
        *,
        status: str | None = None,
        base_coin: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /v5/market/instruments-info``, every page: the raw instrument objects."""
        params = api_params(
            category,
            symbol=symbol,
            status=status,
            base_coin=base_coin,
            limit=limit,
        )
        pages: Paginator[dict[str, Any]] = Paginator(
            self, "/v5/market/instruments-info", params, _raw_items, auth=False
        )
        return await pages.all()

    async def tickers(
        self,
        category: str,
        symbol: str | None = None,
        *,
        base_coin: str | None = None,
        exp_date: str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /v5/market/tickers``: the raw ticker objects (all strings)."""
        params = api_params(
            category,
            symbol=symbol,
            base_coin=base_coin,
            exp_date=exp_date,
        )
        resp = await self.request("GET", "/v5/market/tickers", params, auth=False)
        items, bad = _raw_items(resp.result.get("list"), None)
        if bad:
            self._bad_items(bad, resp.path)
        return items

    async def orderbook(
        self, category: str, symbol: str, limit: int | None = None
    ) -> RestOrderBook:
        """``GET /v5/market/orderbook``: a snapshot (bids descending, asks ascending)."""
        params = api_params(category, symbol=symbol, limit=limit)
        resp = await self.request("GET", "/v5/market/orderbook", params, auth=False)
        try:
            return decode_orderbook(resp.result)
        except ValueError as exc:
            raise RestTransportError(str(exc), resp.path, method="GET") from None

    async def recent_trades(
        self,
        category: str,
        symbol: str | None,
        limit: int | None = None,
        *,
        base_coin: str | None = None,
        option_type: str | None = None,
    ) -> list[Trade]:
        """``GET /v5/market/recent-trade``: public trades as stream :class:`Trade`, oldest
        first."""
        params = api_params(
            category,
            symbol=symbol,
            base_coin=base_coin,
            option_type=option_type,
            limit=limit,
        )
        resp = await self.request("GET", "/v5/market/recent-trade", params, auth=False)
        return self._decoded(decode_trades(resp.result.get("list")), resp.path)

    async def klines(
        self,
        category: str,
        symbol: str,
        interval: str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
    ) -> list[Kline]:
        """``GET /v5/market/kline``: candles as stream :class:`Kline`, **oldest first**;
        ``confirm`` is true for candles closed by the answer's server time."""
        interval = str(interval)
        params = api_params(
            category, symbol=symbol, interval=interval, start=start, end=end, limit=limit
        )
        resp = await self.request("GET", "/v5/market/kline", params, auth=False)
        now = resp.time if resp.time is not None else self.server_now_ms()
        return self._decoded(decode_klines(resp.result.get("list"), interval, now), resp.path)

    # -- account (paginated) ----------------------------------------------------------------

    def open_orders(
        self,
        category: str,
        *,
        symbol: str | None = None,
        base_coin: str | None = None,
        settle_coin: str | None = None,
        order_id: str | None = None,
        order_link_id: str | None = None,
        open_only: int | None = None,
        order_filter: str | None = None,
        limit: int | None = 50,
    ) -> Paginator[Order]:
        """``GET /v5/order/realtime``, every page: open orders (``open_only=1``: recently
        closed ones) as the private stream's :class:`Order`."""
        params = api_params(
            category,
            symbol=symbol,
            base_coin=base_coin,
            settle_coin=settle_coin,
            order_id=order_id,
            order_link_id=order_link_id,
            open_only=open_only,
            order_filter=order_filter,
            limit=limit,
        )
        return Paginator(self, "/v5/order/realtime", params, decode_orders)

    def order_history(
        self,
        category: str,
        *,
        symbol: str | None = None,
        base_coin: str | None = None,
        settle_coin: str | None = None,
        order_id: str | None = None,
        order_link_id: str | None = None,
        order_status: str | None = None,
        order_filter: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = 50,
    ) -> Paginator[Order]:
        """``GET /v5/order/history``, every page (span ≤ 7 days; history may lag the
        stream)."""
        params = api_params(
            category,
            symbol=symbol,
            base_coin=base_coin,
            settle_coin=settle_coin,
            order_id=order_id,
            order_link_id=order_link_id,
            order_status=order_status,
            order_filter=order_filter,
            start_time=start_time,
            end_time=end_time,
            limit=limit,
        )
        return Paginator(self, "/v5/order/history", params, decode_orders)

    def executions(
        self,
        category: str,
        *,
        symbol: str | None = None,
        base_coin: str | None = None,
        settle_coin: str | None = None,
        order_id: str | None = None,
        order_link_id: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        exec_type: str | None = None,
        limit: int | None = 100,
    ) -> Paginator[Execution]:
        """``GET /v5/execution/list``, every page (newest first; span ≤ 7 days) as the
        private stream's :class:`Execution`."""
        params = api_params(
            category,
            symbol=symbol,
            base_coin=base_coin,
            settle_coin=settle_coin,
            order_id=order_id,
            order_link_id=order_link_id,
            start_time=start_time,
            end_time=end_time,
            exec_type=exec_type,
            limit=limit,
        )
        return Paginator(self, "/v5/execution/list", params, decode_executions)

    def positions(
        self,
        category: str,
        *,
        symbol: str | None = None,
        settle_coin: str | None = None,
        base_coin: str | None = None,
        limit: int | None = 200,
    ) -> Paginator[Position]:
        """``GET /v5/position/list``, every page, as the private stream's :class:`Position`
        (``avgPrice`` -> ``entry_price``)."""
        params = api_params(
            category,
            symbol=symbol,
            settle_coin=settle_coin,
            base_coin=base_coin,
            limit=limit,
        )
        return Paginator(self, "/v5/position/list", params, decode_positions)

    async def wallet_balance(
        self, account_type: str = "UNIFIED", coin: str | Sequence[str] | None = None
    ) -> WalletSnapshot:
        """``GET /v5/account/wallet-balance``: the wallets and the answer's server time."""
        params: dict[str, Any] = {"accountType": account_type}
        if coin is not None:
            params["coin"] = coin if isinstance(coin, str) else ",".join(coin)
        resp = await self.request("GET", "/v5/account/wallet-balance", params, auth=True)
        wallets = self._decoded(decode_wallets(resp.result.get("list")), resp.path)
        return WalletSnapshot(wallets, resp.time)

    # -- order entry ------------------------------------------------------------------------

    async def _check(
        self,
        op: str,
        category: str,
        args: Mapping[str, Any] | None = None,
        orders: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Ask the instrument rules before sending (see the ``instruments`` argument)."""
        if self.instruments is not None:
            await self.instruments.check_request(op, category, args, orders)

    async def create_order(
        self,
        *,
        category: str,
        symbol: str,
        side: str,
        order_type: str,
        qty: Any,
        price: Any | None = None,
        time_in_force: str | None = None,
        order_link_id: str | None = None,
        reduce_only: bool | None = None,
        **extra: Any,
    ) -> RestResponse:
        """``POST /v5/order/create``. The answer is an ack (``order_id``, ``order_link_id``):
        the private ``order`` stream says what became of the order.

        ``extra``: any other API field by its API name (``positionIdx``, ``takeProfit`` ...).

        Raises:
            ValueError: bad arguments, or the instrument check refused the order (nothing
                sent).
            RestError: refused by the exchange; :class:`RestServerError` /
                :class:`RestTransportError`: outcome unknown (not re-sent; reconcile).
        """
        params = create_args(
            category=category,
            symbol=symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            time_in_force=time_in_force,
            order_link_id=order_link_id,
            reduce_only=reduce_only,
            extra=extra,
        )
        await self._check("create", params["category"], params)
        return await self.request("POST", "/v5/order/create", params, auth=True)

    async def amend_order(
        self,
        *,
        category: str,
        symbol: str,
        order_id: str | None = None,
        order_link_id: str | None = None,
        qty: Any | None = None,
        price: Any | None = None,
        trigger_price: Any | None = None,
        **extra: Any,
    ) -> RestResponse:
        """``POST /v5/order/amend`` (by ``order_id`` or ``order_link_id``).

        Raises:
            As :meth:`create_order`; :class:`RestUnknownOrderError` if the order is gone.
        """
        params = amend_args(
            category=category,
            symbol=symbol,
            order_id=order_id,
            order_link_id=order_link_id,
            qty=qty,
            price=price,
            trigger_price=trigger_price,
            extra=extra,
        )
        await self._check("amend", params["category"], params)
        return await self.request("POST", "/v5/order/amend", params, auth=True)

    async def cancel_order(
        self,
        *,
        category: str,
        symbol: str,
        order_id: str | None = None,
        order_link_id: str | None = None,
        **extra: Any,
    ) -> RestResponse:
        """``POST /v5/order/cancel`` (by ``order_id`` or ``order_link_id``).

        Raises:
            As :meth:`create_order`; :class:`RestUnknownOrderError` if the order is gone.
        """
        params = add_extra(
            target_args(category, symbol, order_id, order_link_id), extra, TARGET_NAMED
        )
        return await self.request("POST", "/v5/order/cancel", params, auth=True)

    async def cancel_all_orders(
        self,
        category: str,
        *,
        symbol: str | None = None,
        settle_coin: str | None = None,
        base_coin: str | None = None,
        **extra: Any,
    ) -> RestResponse:
        """``POST /v5/order/cancel-all``. ``result.list`` names the cancelled orders,
        ``result.success`` is ``"1"`` on success. Linear and inverse need one of ``symbol``,
        ``base_coin``, ``settle_coin``."""
        params = api_params(
            category,
            symbol=symbol,
            base_coin=base_coin,
            settle_coin=settle_coin,
        )
        add_extra(params, extra, CANCEL_ALL_NAMED)
        return await self.request("POST", "/v5/order/cancel-all", params, auth=True)

    async def create_orders(
        self, category: str, orders: Sequence[Mapping[str, Any]]
    ) -> RestResponse:
        """``POST /v5/order/create-batch``: up to 20 orders (10 for spot), each a mapping with
        API field names. The call succeeds as a whole; :attr:`RestResponse.results` pairs each
        order with its ``retExtInfo`` code, :attr:`RestResponse.failed` lists the refused ones.

        Raises:
            ValueError / TypeError: an empty or too large batch, a bad order, or an order the
                instrument check refused (nothing sent).
        """
        category = validate_category(category)
        if isinstance(orders, Mapping):
            raise TypeError("orders must be a sequence of mappings, not one mapping")
        check_batch(category, orders)
        request = []
        for i, order in enumerate(orders):
            if not isinstance(order, Mapping):
                raise TypeError(f"order {i} must be a mapping, not {type(order).__name__}")
            item = with_numbers(dict(order))
            for key in ("symbol", "side", "orderType", "qty"):
                if item.get(key) is None:
                    raise ValueError(f"order {i} has no {key!r}")
            request.append(item)
        await self._check("create", category, orders=request)
        params = {"category": category, "request": request}
        return await self.request("POST", "/v5/order/create-batch", params, auth=True)


def _raw_items(items: Any, category: str | None) -> tuple[list[dict[str, Any]], int]:
    if not isinstance(items, list):
        return [], 0 if items is None else 1
    good = [i for i in items if isinstance(i, dict)]
    return good, len(items) - len(good)


def _server_ms(resp: RestResponse | None) -> float | None:
    """The server time of a ``/v5/market/time`` answer: ``timeNano`` when it agrees with the
    envelope's ``time`` (sub-ms), else ``time``, else ``timeSecond``."""
    if resp is None:
        return None
    nano = resp.result.get("timeNano")
    precise: float | None = None
    if isinstance(nano, str) and nano.isdigit():
        precise = int(nano) / 1e6
    if resp.time is not None:
        if precise is not None and abs(precise - resp.time) < 1000:
            return precise
        return float(resp.time)
    if precise is not None:
        return precise
    second = resp.result.get("timeSecond")
    if isinstance(second, str) and second.isdigit():
        return int(second) * 1000.0
    return None
