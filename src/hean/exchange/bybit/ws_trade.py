"""``BybitTradeWebSocket``: order entry over Bybit's trade stream (``/v5/trade``).

Usage::

    trade = BybitTradeWebSocket(api_key=key, api_secret=secret, testnet=True)
    await trade.connect()                       # connected and authenticated
    ack = await trade.create_order(category="linear", symbol="BTCUSDT", side="Buy",
                                   order_type="Limit", qty="0.001", price="30000",
                                   time_in_force="PostOnly", order_link_id="my-1")
    ack.order_id, ack.rate_limit_status, ack.latency
    await trade.cancel_order(category="linear", symbol="BTCUSDT", order_link_id="my-1")
    await trade.disconnect()

Each call sends one request and resolves with its :class:`TradeResponse` (matched by ``reqId``),
or raises:

* :class:`TradeError` (and subclasses by ``retCode``: :class:`TradeRateLimited`,
  :class:`TradeDuplicateRequest`, :class:`TradeServiceRestarting`, :class:`TradeTimestampError`,
  :class:`TradeInsufficientBalance`, :class:`TradeUnknownOrder`): the exchange said no;
* :class:`TradeTimeout`: no response within ``request_timeout``;
* :class:`TradeConnectionLost`: the connection dropped first;
* :class:`TradeNotReady`: the connection is not live and authenticated (or is being replaced
  after a ``10016`` / ``10019``): **fail fast**, nothing was sent. (Order entry does not queue:
  an order placed late is often worse than one not placed, and the caller decides.)

After a timeout or a lost connection the outcome is unknown: the order may exist. Nothing is
ever re-sent automatically (no double orders); reconcile through the private ``order`` stream or
REST. An ack (``retCode`` 0) means accepted for processing, not filled: the ``order`` stream tells
the rest. Batch calls (``create_orders`` ...) resolve with ``retCode`` 0 and per-order results in
:attr:`TradeResponse.results`; check :attr:`TradeResponse.failed`.

Headers: ``X-BAPI-TIMESTAMP`` (local wall time corrected by the measured server clock offset),
``X-BAPI-RECV-WINDOW`` (``recv_window``) and optional ``Referer``, all sent as strings.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from hean.core.clock import Clock
from hean.core.config import Settings
from hean.core.lifecycle import ConnectionState
from hean.core.secrets import Secret
from hean.exchange.bybit.endpoints import trade_url, validate_category
from hean.exchange.bybit.instruments import InstrumentCheck
from hean.exchange.bybit.protocol.auth import DEFAULT_WINDOW_MS, ClockOffset
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.protocol.codec import Frame
from hean.exchange.bybit.protocol.orders import (
    TARGET_NAMED,
    add_extra,
    amend_args,
    create_args,
    target_args,
    with_numbers,
)
from hean.exchange.bybit.protocol.session import Send
from hean.exchange.bybit.protocol.trade import (
    Outcome,
    TradeConnectionLost,
    TradeDuplicateRequest,
    TradeError,
    TradeInsufficientBalance,
    TradeNotReady,
    TradeRateLimited,
    TradeRequestError,
    TradeRequests,
    TradeRequestStats,
    TradeResponse,
    TradeServiceRestarting,
    TradeTimeout,
    TradeTimestampError,
    TradeUnknownOrder,
    check_batch,
)
from hean.exchange.bybit.transport import DEFAULT_MAX_MESSAGE
from hean.exchange.bybit.ws_private import AuthenticatedStream
from hean.exchange.bybit.ws_public import EventSink

__all__ = [
    "BybitTradeWebSocket",
    "TradeConnectionLost",
    "TradeDuplicateRequest",
    "TradeError",
    "TradeInsufficientBalance",
    "TradeNotReady",
    "TradeRateLimited",
    "TradeRequestError",
    "TradeResponse",
    "TradeServiceRestarting",
    "TradeTimeout",
    "TradeTimestampError",
    "TradeUnknownOrder",
]

log = logging.getLogger("hean.trade")


class _RequestTimer:
    """Feeds the trade requests' deadlines into the session's timer (see ``Session.timers``)."""

    __slots__ = ("owner",)

    def __init__(self, owner: BybitTradeWebSocket) -> None:
        self.owner = owner

    def next_deadline(self) -> float | None:
        return self.owner.requests.next_deadline()

    def tick(self, now: float) -> None:
        if self.owner.requests.tick(now):
            self.owner._schedule_restart_check()


class BybitTradeWebSocket(AuthenticatedStream):
    """Order entry over the trade stream.

    Args:
        bus: optional event sink for ``CONNECTION_STATE`` / ``AUTH`` events.
        api_key: the API key (``str`` or :class:`~hean.core.secrets.Secret`).
        api_secret: the API secret.
        testnet: use the testnet host (ignored when ``url`` is given).
        url: any endpoint URL (mainnet, regional hosts, the emulator). Demo trading has no
            trade stream.
        clock: time source.
        recv_window: ``X-BAPI-RECV-WINDOW`` in ms (``None``: header left out; Bybit uses 5000).
        request_timeout: seconds a request may wait for its response (:class:`TradeTimeout`).
        referer: broker id sent as the ``Referer`` header.
        ping_interval: seconds between JSON pings.
        pong_timeout: seconds a pong may be late before the link is declared dead.
        max_active_time: Bybit's ``max_active_time`` URL parameter (see the private client).
        backoff: reconnect timing.
        connect_timeout: seconds for the opening handshake.
        auth_timeout: seconds to wait for the auth ack.
        auth_window_ms: ``expires`` is this many ms after (server) now.
        auth_retry_interval: seconds between auth retries after a retryable rejection.
        max_message_size: largest accepted message in bytes.
        ssl_context: TLS settings for ``wss://`` (always verifying).
        name: label for logs/events (default ``trade``).
        rng: random source for jitter.
        req_prefix: prefix of generated ``reqId`` values (default ``hean-<8 random hex>-``).
        clock_offset: a :class:`~hean.exchange.bybit.protocol.auth.ClockOffset` shared with
            other clients (e.g. ``BybitRestClient.clock_offset``); auth ``expires`` and
            ``X-BAPI-TIMESTAMP`` are corrected by its estimate. Default: this connection's own.
        instruments: an :class:`~hean.exchange.bybit.instruments.InstrumentRegistry`: creates,
            amends and batches are checked against the symbol's tick size, lot step, limits and
            status before they are sent; an order Bybit would refuse raises
            :class:`~hean.exchange.bybit.instruments.OrderRuleError` (naming the rule) instead.
    """

    kind: ClassVar[Literal["private", "trade"]] = "trade"

    def __init__(
        self,
        bus: EventSink | None = None,
        *,
        api_key: Secret | str,
        api_secret: Secret | str,
        testnet: bool = True,
        url: str | None = None,
        clock: Clock | None = None,
        recv_window: int | None = 5000,
        request_timeout: float = 10.0,
        referer: str | None = None,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        max_active_time: str | float | None = None,
        backoff: BackoffPolicy | None = None,
        connect_timeout: float = 10.0,
        auth_timeout: float = 10.0,
        auth_window_ms: int = DEFAULT_WINDOW_MS,
        auth_retry_interval: float = 60.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE,
        ssl_context: ssl.SSLContext | None = None,
        name: str | None = None,
        rng: random.Random | None = None,
        req_prefix: str | None = None,
        clock_offset: ClockOffset | None = None,
        instruments: InstrumentCheck | None = None,
    ) -> None:
        super().__init__(
            bus,
            api_key=api_key,
            api_secret=api_secret,
            url=url if url is not None else trade_url(testnet=testnet),
            clock=clock,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            max_active_time=max_active_time,
            backoff=backoff,
            connect_timeout=connect_timeout,
            ack_timeout=10.0,
            auth_timeout=auth_timeout,
            auth_window_ms=auth_window_ms,
            auth_retry_interval=auth_retry_interval,
            max_message_size=max_message_size,
            ssl_context=ssl_context,
            name=name or "trade",
            rng=rng,
            ping_req_id=False,
            report_gaps=False,
            clock_offset=clock_offset,
        )
        self.requests = TradeRequests(
            self._on_outcome,
            wall_ms=self._wall_now,
            recv_window=recv_window,
            request_timeout=request_timeout,
            referer=referer,
            clock_offset=self.clock_offset,
            req_prefix=req_prefix,
        )
        self._futures: dict[str, asyncio.Future[TradeResponse]] = {}
        self.instruments = instruments
        """The instrument registry orders are checked against before sending (or ``None``)."""
        self._restart_check_scheduled = False
        self.session.on_response = self._on_response
        self.session.timers.append(_RequestTimer(self))

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, bus: EventSink | None = None, **kwargs: Any
    ) -> BybitTradeWebSocket:
        """A client with the credentials and environment of ``settings`` (default: read from
        the ``BYBIT_*`` environment); ``kwargs`` as for the constructor.

        Raises:
            ConfigError: the credentials are missing or invalid.
        """
        settings = settings if settings is not None else Settings()
        creds = settings.credentials()
        kwargs.setdefault("testnet", settings.testnet)
        return cls(bus, api_key=creds.api_key, api_secret=creds.api_secret, **kwargs)

    # -- single orders ----------------------------------------------------------------------

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
        timeout: float | None = None,
        req_id: str | None = None,
        **extra: Any,
    ) -> TradeResponse:
        """``order.create``. Resolves with the ack (``order_id``, ``order_link_id``).

        Args:
            category: ``spot``, ``linear``, ``inverse`` or ``option``.
            symbol: e.g. ``BTCUSDT``.
            side: ``Buy`` or ``Sell``.
            order_type: ``Market`` or ``Limit``.
            qty: order quantity (str, int, float or Decimal; sent as a decimal string).
            price: limit price.
            time_in_force: ``GTC``, ``IOC``, ``FOK``, ``PostOnly`` ...
            order_link_id: your id for the order (unique, ≤ 36 characters).
            reduce_only: only reduce a position.
            timeout: seconds to wait for the response (default ``request_timeout``).
            req_id: the request id (default: generated, unique).
            **extra: any other API field, by its API name (``positionIdx``, ``takeProfit``,
                ``triggerPrice`` ...), sent as given (numbers in the numeric fields are
                converted to decimal strings).

        Raises:
            TradeError: rejected by the exchange (a subclass says why).
            TradeTimeout: no response in time (outcome unknown).
            TradeConnectionLost: connection lost first (outcome unknown).
            TradeNotReady: not live and authenticated; nothing sent.
            ValueError / TypeError: bad arguments; nothing sent.
        """
        args = create_args(
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
        if self.instruments is not None:
            await self.instruments.check_request("create", args["category"], args)
        return await self.request("order.create", args, timeout=timeout, req_id=req_id)

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
        timeout: float | None = None,
        req_id: str | None = None,
        **extra: Any,
    ) -> TradeResponse:
        """``order.amend`` (by ``order_id`` or ``order_link_id``); other fields via ``extra``.

        Raises:
            As :meth:`create_order`; :class:`TradeUnknownOrder` if the order is gone.
        """
        args = amend_args(
            category=category,
            symbol=symbol,
            order_id=order_id,
            order_link_id=order_link_id,
            qty=qty,
            price=price,
            trigger_price=trigger_price,
            extra=extra,
        )
        if self.instruments is not None:
            await self.instruments.check_request("amend", args["category"], args)
        return await self.request("order.amend", args, timeout=timeout, req_id=req_id)

    async def cancel_order(
        self,
        *,
        category: str,
        symbol: str,
        order_id: str | None = None,
        order_link_id: str | None = None,
        timeout: float | None = None,
        req_id: str | None = None,
        **extra: Any,
    ) -> TradeResponse:
        """``order.cancel`` (by ``order_id`` or ``order_link_id``).

        Raises:
            As :meth:`create_order`; :class:`TradeUnknownOrder` if the order is gone.
        """
        args = add_extra(
            target_args(category, symbol, order_id, order_link_id), extra, TARGET_NAMED
        )
        return await self.request("order.cancel", args, timeout=timeout, req_id=req_id)

    # -- batches ----------------------------------------------------------------------------

    async def create_orders(
        self,
        category: str,
        orders: Sequence[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        req_id: str | None = None,
    ) -> TradeResponse:
        """``order.create-batch``: up to 20 orders (10 for spot), each a mapping with API field
        names (``symbol``, ``side``, ``orderType``, ``qty``, ``price`` ...).

        Resolves with ``retCode`` 0 and one :class:`BatchResult` per order in ``results``
        (``failed`` lists the refused ones); raises only when the whole request is refused.

        Raises:
            ValueError: empty batch, or more orders than the category allows.
        """
        return await self._batch("order.create-batch", category, orders, timeout, req_id)

    async def amend_orders(
        self,
        category: str,
        orders: Sequence[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        req_id: str | None = None,
    ) -> TradeResponse:
        """``order.amend-batch`` (each order needs ``symbol`` and ``orderId`` or
        ``orderLinkId``); limits as :meth:`create_orders`."""
        return await self._batch("order.amend-batch", category, orders, timeout, req_id)

    async def cancel_orders(
        self,
        category: str,
        orders: Sequence[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        req_id: str | None = None,
    ) -> TradeResponse:
        """``order.cancel-batch`` (each order needs ``symbol`` and ``orderId`` or
        ``orderLinkId``); limits as :meth:`create_orders`."""
        return await self._batch("order.cancel-batch", category, orders, timeout, req_id)

    async def _batch(
        self,
        op: str,
        category: str,
        orders: Sequence[Mapping[str, Any]],
        timeout: float | None,
        req_id: str | None,
    ) -> TradeResponse:
        category = validate_category(category)
        if isinstance(orders, Mapping):
            raise TypeError("orders must be a sequence of mappings, not one mapping")
        check_batch(category, orders)
        request = []
        for i, order in enumerate(orders):
            if not isinstance(order, Mapping):
                raise TypeError(f"order {i} must be a mapping, not {type(order).__name__}")
            request.append(with_numbers(dict(order)))
        if self.instruments is not None:
            await self.instruments.check_request(
                op.split(".")[1].split("-")[0], category, orders=orders
            )
        args = {"category": category, "request": request}
        return await self.request(op, args, timeout=timeout, req_id=req_id)

    # -- generic ----------------------------------------------------------------------------

    async def request(
        self,
        op: str,
        args: Mapping[str, Any],
        *,
        timeout: float | None = None,
        req_id: str | None = None,
    ) -> TradeResponse:
        """Send any trade op with ``args`` (the REST body) and await its response.

        Raises:
            TradeNotReady: not live and authenticated, or the connection is being replaced.
            TradeError / TradeTimeout / TradeConnectionLost: see the module docstring.
            ValueError: unknown op, bad or duplicate ``req_id``, bad timeout.
        """
        state = self.session.state
        if state is not ConnectionState.LIVE:
            raise TradeNotReady(
                f"{self.name} is {state.value}, not live and authenticated: {op} not sent",
                op=op,
                req_id=req_id,
            )
        transport = self.connection.transport
        if transport is None or transport.is_disconnected:
            raise TradeNotReady(
                f"{self.name}: the connection is closing: {op} not sent", op=op, req_id=req_id
            )
        if self.requests.restart_requested is not None:
            raise TradeNotReady(
                f"{self.name} is being replaced ({self.requests.restart_requested}): {op} not "
                "sent; retry once it is live again",
                op=op,
                req_id=req_id,
            )
        loop = asyncio.get_running_loop()
        rid, payload = self.requests.build(
            op, args, self.clock.monotonic(), req_id=req_id, timeout=timeout
        )
        future: asyncio.Future[TradeResponse] = loop.create_future()
        self._futures[rid] = future  # registered before sending: the ack cannot overtake it
        self.connection.run_actions([Send(payload)])
        return await future

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return self.requests.in_flight

    @property
    def request_stats(self) -> TradeRequestStats:
        """Request counters (sent, succeeded, rejected, timeouts, lost, unmatched)."""
        return self.requests.stats

    # -- internals --------------------------------------------------------------------------

    def _on_data(self, frame: Frame, now: float) -> None:
        log.debug("%s: unexpected data frame for %s dropped", self.name, frame.topic)

    def _on_response(self, frame: Frame, payload: bytes | memoryview | str, now: float) -> None:
        self.requests.on_response(payload, now)
        if self.requests.restart_requested is not None:
            self._schedule_restart_check()

    def _on_outcome(self, outcome: Outcome) -> None:
        future = self._futures.pop(outcome.req_id, None)
        if future is None or future.done():
            return
        if outcome.error is not None:
            future.set_exception(outcome.error)
        elif outcome.response is not None:
            future.set_result(outcome.response)

    def _on_state(self, event: Any) -> None:
        if event.old is ConnectionState.LIVE and event.new is not ConnectionState.LIVE:
            self.requests.restart_requested = None
            lost = self.requests.fail_all(event.reason or event.new.value)
            if lost:
                log.warning(
                    "%s: %d request(s) in flight lost with the connection (%s): outcome unknown",
                    self.name,
                    len(lost),
                    event.reason,
                )

    def _schedule_restart_check(self) -> None:
        if self._restart_check_scheduled or self.requests.restart_requested is None:
            return
        self._restart_check_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self._restart_if_idle)
        except RuntimeError:  # no loop (driven by hand in tests): check now
            self._restart_if_idle()

    def _restart_if_idle(self) -> None:
        self._restart_check_scheduled = False
        reason = self.requests.restart_requested
        if reason is None or self.requests.in_flight:
            return  # checked again as each in-flight request resolves
        self.connection.run_actions(self.session.drop(reason, self.clock.monotonic()))
