"""``Account``: the asyncio shell around :class:`~hean.account.core.AccountState`.

Usage::

    bus = EventBus()
    await bus.start()
    rest = BybitRestClient(api_key=key, api_secret=secret, testnet=True)
    account = Account(bus, rest)                 # creates its own private WebSocket
    await account.start()                        # connect, subscribe, REST snapshot: in sync
    account.orders / account.positions / account.balance("USDT") / account.in_sync
    await account.create_order(category="linear", symbol="BTCUSDT", side="Buy",
                               order_type="Limit", qty="0.01", price="60000")
    await account.stop()

What reaches the user's bus: ``ORDER_UPDATE``, ``EXECUTION``, ``POSITION_UPDATE`` and
``WALLET_UPDATE`` events carrying only what changed (each change once, whether it came from the
stream, from REST, or both; ``reconciled=True`` when learned from REST), ``ACCOUNT_SYNC`` on every
change of :attr:`Account.in_sync` and ``RECONCILED`` at the end of every reconciliation run. The
raw private stream stays on an internal bus (the account's own, when it creates the private
WebSocket), so a consumer of the user's bus never sees a duplicate.

When the account runs a reconciliation (rest.md §9; :mod:`hean.account.core` has the rules):

* ``start``: :meth:`Account.start` (after the private topics are confirmed);
* ``gap``: a private ``GAP`` event (the topics are confirmed again after a reconnect). From the
  moment the link drops (``CONNECTION_STATE`` leaving ``live``) the account is out of sync;
* ``manual``: :meth:`Account.reconcile`;
* ``timer``: every ``audit_interval`` seconds, if set (skipped while a run is in progress);
* ``retry``: after a failed run (REST errors), with backoff from ``retry_first`` doubling up to
  ``retry_max`` seconds, until one succeeds; never a tight loop;
* ``recheck``: ``recheck_delay`` seconds after a run that left orders *unconfirmed* (held open,
  found neither open nor in the lagging order history), at most ``max_rechecks`` times in a row.

REST calls of one run (the budget). Per paginated query of ``n`` items with page size ``L`` at
most ``ceil(n / L) + 1`` requests: Bybit returns a cursor even after a page that was not full,
and the client stops on an empty page or an empty cursor. With ``W`` execution windows
(``ceil(window / 7 days)``, usually 1), ``E`` executions, ``O`` open orders, ``P`` open
positions, ``M`` orders held open but missing from the open set, ``Q`` positions to fetch by
symbol (held open but not listed, or traded by a fill the run learned)::

    sum over categories and windows of  ceil(E / 100) + 1        executions
  + sum over order scopes of            ceil(O / 50) + 1         open orders
  + L(M)                                                       orders missing (below)
  + sum over position scopes of         ceil(P / 200) + 1        positions
  + 2 * Q                                                      positions by symbol
  + 1                                                          wallet

where ``L(M) = 2M`` for ``M <= 5`` (each looked up by id: realtime, then history) and, for more,
the recently closed list (``openOnly=1``, newest first) read a page of 50 at a time until all are
found (usually ``ceil(M / 50)`` pages: orders closed in a gap are the newest; at most 10 per
order scope, Bybit keeps 500), plus ``2`` for each one not in it. A scope is a category, except
linear, which is one scope per settle coin; spot has no positions. For the defaults (linear,
USDT) and a short gap with fewer than 50 open orders and 100 executions: at most
``7 + L(M) + 2Q`` (``4`` when nothing is missing and there is nothing to
page over). Retries of the REST client come on top. ``ReconciledEvent.rest_calls`` reports what a
run used (the client's ``calls`` counter over the run, so requests made by other code at the
same time are included); a periodic audit (``audit_interval``) spends one such run per
interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import msgspec

from hean.account.core import AccountState, AccountStats, Output, PositionKey, RunEnd
from hean.core.bus import EventBus, Subscription
from hean.core.clock import Clock, SystemClock
from hean.core.events import (
    AccountSyncEvent,
    ConnectionStateEvent,
    EventType,
    GapEvent,
    ReconciledEvent,
)
from hean.core.lifecycle import ConnectionState
from hean.core.secrets import Secret
from hean.exchange.bybit.protocol.auth import ClockOffset
from hean.exchange.bybit.state.private import (
    Execution,
    FastExecution,
    Order,
    Position,
    Wallet,
    WalletCoin,
)
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket

__all__ = ["ACCOUNT_TOPICS", "Account", "AccountError", "AccountInfo", "RestAccountClient"]

log = logging.getLogger("hean.account")

BATCH_LOOKUP_AFTER = 5
"""More orders than this missing from the open set are looked for in the recently closed list
(pages of 50) before any is looked up by id."""

ACCOUNT_TOPICS: tuple[str, ...] = ("order", "execution", "position", "wallet")
"""The private topics the account subscribes to."""

_STREAM_TYPES = (
    EventType.ORDER_UPDATE,
    EventType.EXECUTION,
    EventType.POSITION_UPDATE,
    EventType.WALLET_UPDATE,
)


class _WalletSnapshot(Protocol):
    @property
    def wallets(self) -> list[Wallet]: ...

    @property
    def time(self) -> int | None: ...


class RestAccountClient(Protocol):
    """What the account needs of a REST client (``hean.exchange.bybit.BybitRestClient``)."""

    @property
    def calls(self) -> int: ...

    def executions(
        self,
        category: str,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = 100,
    ) -> AsyncIterator[Execution]: ...

    def open_orders(
        self,
        category: str,
        *,
        settle_coin: str | None = None,
        order_id: str | None = None,
        open_only: int | None = None,
        limit: int | None = 50,
    ) -> AsyncIterator[Order]: ...

    def order_history(
        self, category: str, *, order_id: str | None = None, limit: int | None = 50
    ) -> AsyncIterator[Order]: ...

    def positions(
        self,
        category: str,
        *,
        symbol: str | None = None,
        settle_coin: str | None = None,
        limit: int | None = 200,
    ) -> AsyncIterator[Position]: ...

    async def wallet_balance(self, account_type: str = "UNIFIED") -> _WalletSnapshot: ...

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
    ) -> Any: ...

    async def cancel_order(
        self,
        *,
        category: str,
        symbol: str,
        order_id: str | None = None,
        order_link_id: str | None = None,
        **extra: Any,
    ) -> Any: ...


if TYPE_CHECKING:  # the REST client fulfils the protocol (checked by mypy, free at run time)
    from hean.exchange.bybit.rest import BybitRestClient

    def _fits(client: BybitRestClient) -> RestAccountClient:
        return client


class AccountError(RuntimeError):
    """The account could not start (the first snapshot failed, a topic was rejected)."""


class AccountInfo(msgspec.Struct, frozen=True):
    """:attr:`Account.stats`: the core's counters plus the shell's."""

    name: str
    in_sync: bool
    state: AccountStats
    last_run: ReconciledEvent | None
    rest_calls: int
    """REST requests made by reconciliation runs so far."""
    retry_in: float | None
    """Seconds until the retry of a failed run, if one is scheduled."""
    consecutive_failures: int


class Account:
    """The account as the exchange sees it, kept in sync with the private stream and REST.

    Args:
        bus: the user's bus: de-duplicated account events, ``ACCOUNT_SYNC`` and ``RECONCILED``.
        rest: the REST client (``BybitRestClient`` or anything with its account methods).
        private: a private WebSocket on a bus *other than* ``bus``; ``None`` creates one on an
            internal bus (credentials ``api_key`` / ``api_secret``, else the REST client's).
        categories: the categories to reconcile (``linear``, ``inverse``, ``spot``,
            ``option``).
        settle_coins: the settle coins to query linear orders and positions by.
        clock: time source (inject a ``ManualClock`` in tests).
        margin_ms: safety margin of the execution window of a run.
        audit_interval: seconds between periodic runs (``None``: none).
        name: label in events and logs.
        private_url: the private WebSocket URL for the one created here (default: Bybit's, per
            ``testnet``); pass it when the REST client points at another host.
        api_key, api_secret: credentials of the private WebSocket created here.
        testnet: which Bybit host that WebSocket uses when ``private_url`` is not given.
        private_options: extra keyword arguments for that WebSocket (timeouts, backoff ...).
        trade: a ``BybitTradeWebSocket``; order helpers then go through it instead of REST.
        topics: the private topics to subscribe.
        subscribe_timeout: seconds :meth:`start` waits for the connection and the acks.
        retry_first, retry_max: backoff of retries after a failed run (seconds).
        recheck_delay, max_rechecks: re-runs for orders the order history did not show yet.
        core_options: bounds of the core (``max_exec_ids``, ``max_closed_orders``,
            ``max_buffer`` ...; see :class:`~hean.account.core.AccountState`).
    """

    def __init__(
        self,
        bus: EventBus,
        rest: RestAccountClient,
        private: BybitPrivateWebSocket | None = None,
        *,
        categories: Sequence[str] = ("linear",),
        settle_coins: Sequence[str] = ("USDT",),
        clock: Clock | None = None,
        margin_ms: int = 10_000,
        audit_interval: float | None = None,
        name: str = "account",
        private_url: str | None = None,
        api_key: Secret | str | None = None,
        api_secret: Secret | str | None = None,
        testnet: bool = True,
        private_options: dict[str, Any] | None = None,
        trade: Any | None = None,
        topics: Sequence[str] = ACCOUNT_TOPICS,
        subscribe_timeout: float = 10.0,
        retry_first: float = 0.5,
        retry_max: float = 30.0,
        recheck_delay: float = 2.0,
        max_rechecks: int = 5,
        core_options: dict[str, Any] | None = None,
    ) -> None:
        known = {"linear", "inverse", "spot", "option"}
        bad = [c for c in categories if c not in known]
        if bad or not categories:
            raise ValueError(f"categories must be some of {sorted(known)}, got {list(categories)}")
        if audit_interval is not None and audit_interval <= 0:
            raise ValueError(f"audit_interval must be > 0 or None, got {audit_interval!r}")
        if not 0 < retry_first <= retry_max:
            raise ValueError("need 0 < retry_first <= retry_max")
        self.bus = bus
        self.rest = rest
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.name = name
        self.categories = tuple(categories)
        self.settle_coins = tuple(settle_coins)
        self.audit_interval = audit_interval
        self.trade = trade
        self.topics = tuple(topics)
        self.subscribe_timeout = subscribe_timeout
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.recheck_delay = recheck_delay
        self.max_rechecks = max_rechecks
        self.state = AccountState(name, margin_ms=margin_ms, **(core_options or {}))
        """The sans-I/O core (read it; feed it only through this shell)."""
        self._owns_private = private is None
        if private is None:
            key = api_key if api_key is not None else getattr(rest, "api_key", None)
            secret = api_secret if api_secret is not None else getattr(rest, "api_secret", None)
            if key is None or secret is None:
                raise ValueError(
                    "Account needs api_key/api_secret (or a REST client that has them) to open "
                    "its private WebSocket, or pass private="
                )
            internal = EventBus()
            options = dict(private_options or {})
            offset = getattr(rest, "clock_offset", None)
            if isinstance(offset, ClockOffset):
                options.setdefault("clock_offset", offset)  # one measurement for both
            private = BybitPrivateWebSocket(
                internal,
                api_key=key,
                api_secret=secret,
                testnet=testnet,
                url=private_url,
                clock=self.clock,
                **options,
            )
            self._private_bus = internal
        else:
            private_bus = private.bus
            if private_bus is bus:
                raise ValueError(
                    "the private WebSocket must publish on its own bus, not on the account's "
                    "bus: the account republishes its events de-duplicated"
                )
            if not isinstance(private_bus, EventBus):
                raise TypeError("the private WebSocket's bus must be an EventBus")
            self._private_bus = private_bus
        self.private = private
        self._subs: list[Subscription] = []
        self._runner: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._started = False
        self._stopping = False
        self._published_sync: bool | None = None
        self._rest_calls = 0
        self._failures = 0
        self._rechecks = 0
        self._retry_at: float | None = None
        self._runs_ended = 0
        self._run_waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return (
            f"Account(name={self.name!r}, in_sync={self.in_sync}, "
            f"open_orders={len(self.state.orders)}, private={self.private!r})"
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the private WebSocket, subscribe the account topics, wait for the acks, take
        the REST snapshot (a run with trigger ``start``). In sync when it returns.

        Raises:
            AccountError: a topic was rejected, or the snapshot failed (the account is stopped
                again; the error says why).
            ConnectError, AuthError: from the private WebSocket.
            TimeoutError: not connected and subscribed within ``subscribe_timeout``.
        """
        if self._started:
            return
        self._started = True
        self._stopping = False
        try:  # the venue's clock first: the run's window is placed on it
            await self._sync_clock()
        except BaseException:
            self._started = False
            raise
        now, wall = self._now()
        self.state.begin("start", now, wall)  # hold stream events until the snapshot is in
        self._sync_changed("start")
        for event_type in _STREAM_TYPES:
            self._subs.append(
                self._private_bus.subscribe(
                    event_type, self._stream_handler(event_type), name=f"{self.name}:{event_type}"
                )
            )
        self._subs.append(
            self._private_bus.subscribe(EventType.GAP, self._on_gap, name=f"{self.name}:gap")
        )
        self._subs.append(
            self._private_bus.subscribe(
                EventType.CONNECTION_STATE, self._on_state, name=f"{self.name}:state"
            )
        )
        try:
            if self._owns_private:
                await self._private_bus.start()
            if self.private.state is not ConnectionState.LIVE:
                await self.private.connect(timeout=self.subscribe_timeout)
            await self.private.subscribe(list(self.topics))
            statuses = await self.private.wait_subscribed(
                list(self.topics), timeout=self.subscribe_timeout
            )
            rejected = sorted(t for t, s in statuses.items() if s != "confirmed")
            if rejected:
                raise AccountError(f"private topics rejected: {', '.join(rejected)}")
            self._runner = asyncio.create_task(self._run_loop(), name=f"{self.name}:runs")
            self._wake.set()
            while True:  # the start run, and any run queued meanwhile (a gap during start-up)
                summary = await self._wait_runs(self._runs_ended + 1)
                if not summary.ok:
                    raise AccountError(f"account snapshot failed: {summary.error}")
                if self.state.in_sync:
                    break  # else a queued run follows, or the link dropped: wait for its run
        except BaseException:
            await self.stop()
            raise
        if self.audit_interval is not None:
            self._spawn(self._audit_loop(self.audit_interval), "audit")

    async def _sync_clock(self) -> None:
        """Measure the server clock once over REST (``/v5/market/time``) before the private
        stream authenticates, when the shared offset has no sample yet: the first auth then
        succeeds even on a skewed local clock. A failure is logged, not raised (the stream
        measures the offset from its own pongs too)."""
        offset = getattr(self.rest, "clock_offset", None)
        sync = getattr(self.rest, "sync_clock", None)
        if sync is None or not isinstance(offset, ClockOffset) or offset.count:
            return
        if getattr(self.private, "clock_offset", None) is not offset:
            return  # the stream keeps its own estimate: nothing to share
        try:
            estimate = await sync()
        except Exception as exc:  # the REST error is reported; the stream can still measure
            log.warning("%s: clock offset not measured over REST: %s", self.name, exc)
            return
        log.info("%s: server clock offset %+.0f ms (REST /v5/market/time)", self.name, estimate)

    async def stop(self) -> None:
        """Stop runs and timers, unsubscribe, and disconnect the private WebSocket if the
        account created it. Out of sync afterwards."""
        if not self._started:
            return
        self._stopping = True
        tasks = [t for t in (self._runner, *self._timers) if t is not None]
        self._runner = None
        self._timers.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sub in self._subs:
            sub.unsubscribe()
        self._subs.clear()
        while self.state.in_run:  # a run cut short (and any queued one) ends as failed
            now, wall = self._now()
            self._publish_end(self.state.fail(now, wall, "stopped"), "stopped")
        if self._owns_private:
            await self.private.disconnect()
            await self._private_bus.stop()
        self.state.link_down()
        self._sync_changed("stopped")
        self._started = False

    async def reconcile(self) -> ReconciledEvent:
        """Run a reconciliation now (trigger ``manual``) and return its summary. If a run is in
        progress, one more is queued (or the queued one covers this request) and this waits
        for it."""
        if not self._started:
            raise AccountError("the account is not started")
        now, wall = self._now()
        began = self.state.begin("manual", now, wall)
        self._wake.set()
        return await self._wait_runs(self._runs_ended + (1 if began else 2))

    async def _wait_runs(self, target: int) -> ReconciledEvent:
        """Wait until ``target`` runs have ended; the summary of the last one."""
        while self._runs_ended < target:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._run_waiters.append(waiter)
            await waiter
        summary = self.state.last_run
        assert summary is not None
        return summary

    # -- reading --------------------------------------------------------------------------------

    @property
    def in_sync(self) -> bool:
        """The view is trustworthy: the last run completed and no gap happened since."""
        return self.state.in_sync

    @property
    def sync_state(self) -> str:
        """``in_sync``, ``reconciling``, or ``failing`` (the last run failed; retrying)."""
        if self.state.in_sync:
            return "in_sync"
        return "failing" if self._failures else "reconciling"

    @property
    def orders(self) -> dict[str, Order]:
        """Open orders by ``orderId``."""
        return self.state.orders

    def order(self, order_id: str | None = None, order_link_id: str | None = None) -> Order | None:
        """An open or recently closed order by ``orderId`` or ``orderLinkId``."""
        return self.state.order(order_id, order_link_id)

    @property
    def positions(self) -> dict[PositionKey, Position]:
        """Positions by ``(category, symbol, positionIdx)``."""
        return self.state.positions

    def position(self, category: str, symbol: str, idx: int = 0) -> Position | None:
        return self.state.position(category, symbol, idx)

    @property
    def wallet(self) -> Wallet | None:
        return self.state.wallet

    def balance(self, coin: str, account_type: str = "UNIFIED") -> WalletCoin | None:
        return self.state.balance(coin, account_type)

    @property
    def executions(self) -> list[Execution | FastExecution]:
        """The most recent executions, oldest first (bounded; see the core)."""
        return self.state.executions

    def is_external(self, order_id: str) -> bool:
        """No local code placed this order (see :meth:`mark_local`)."""
        return self.state.is_external(order_id)

    def mark_local(self, order_id: str | None = None, order_link_id: str | None = None) -> None:
        """Record an order placed by local code outside the helpers below."""
        self.state.mark_local(order_id, order_link_id)

    @property
    def stats(self) -> AccountInfo:
        retry_in = None
        if self._retry_at is not None:
            retry_in = max(0.0, self._retry_at - self.clock.monotonic())
        return AccountInfo(
            name=self.name,
            in_sync=self.state.in_sync,
            state=self.state.stats,
            last_run=self.state.last_run,
            rest_calls=self._rest_calls,
            retry_in=retry_in,
            consecutive_failures=self._failures,
        )

    # -- order helpers --------------------------------------------------------------------------

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
    ) -> Any:
        """Place an order through the trade WebSocket (if given) or REST, marked local (an
        ``orderLinkId`` is generated when none is given). Returns the client's response."""
        link = order_link_id or f"hean-{uuid.uuid4().hex[:24]}"
        self.state.mark_local(order_link_id=link)
        sender = self.trade if self.trade is not None else self.rest
        response = await sender.create_order(
            category=category,
            symbol=symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            time_in_force=time_in_force,
            order_link_id=link,
            reduce_only=reduce_only,
            **extra,
        )
        self.state.mark_local(order_id=_order_id_of(response), order_link_id=link)
        return response

    async def cancel_order(
        self,
        *,
        category: str,
        symbol: str,
        order_id: str | None = None,
        order_link_id: str | None = None,
        **extra: Any,
    ) -> Any:
        """Cancel an order through the trade WebSocket (if given) or REST."""
        sender = self.trade if self.trade is not None else self.rest
        return await sender.cancel_order(
            category=category,
            symbol=symbol,
            order_id=order_id,
            order_link_id=order_link_id,
            **extra,
        )

    # -- stream ---------------------------------------------------------------------------------

    def _stream_handler(self, event_type: EventType) -> Any:
        feed = self.state.feed
        publish = self.bus.publisher(event_type)

        def on_event(event: Any) -> None:
            for _, out in feed(event_type, event):
                publish(out)

        return on_event

    def _on_gap(self, gap: GapEvent) -> None:
        now, wall = self._now()
        if self.state.on_gap(gap, now, wall, offset_ms=self._offset_ms()):
            log.info(
                "%s: private gap of %.3f s on %s (%s): reconciling",
                self.name,
                gap.duration,
                gap.topic,
                gap.reason,
            )
            self._wake.set()
        self._sync_changed("gap")

    def _on_state(self, event: ConnectionStateEvent) -> None:
        if event.old is ConnectionState.LIVE and event.new is not ConnectionState.LIVE:
            self.state.link_down()
            self._sync_changed("disconnected")

    # -- runs -----------------------------------------------------------------------------------

    async def _run_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.state.in_run:
                await self._one_run()

    async def _one_run(self) -> None:
        calls_before = self.rest.calls
        trigger = self.state.run_trigger
        try:
            await self._fetch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            used = self.rest.calls - calls_before
            self._rest_calls += used
            now, wall = self._now()
            end = self.state.fail(now, wall, f"{type(exc).__name__}: {exc}", rest_calls=used)
            self._failures += 1
            delay = min(self.retry_max, self.retry_first * 2 ** (self._failures - 1))
            log.warning(
                "%s: reconciliation (%s) failed: %s; %s",
                self.name,
                trigger,
                end.event.error,
                "running the queued one"
                if end.next_run
                else f"retrying in {delay:.3g} s (failure {self._failures})",
            )
            self._publish_end(end, "reconcile_failed")
            if not end.next_run and not self._stopping:
                self._retry_at = self.clock.monotonic() + delay
                self._spawn(self._later(delay, "retry"), "retry")
            return
        used = self.rest.calls - calls_before
        self._rest_calls += used
        now, wall = self._now()
        end = self.state.finish(now, wall, rest_calls=used)
        self._failures = 0
        self._retry_at = None
        summary = end.event
        log.info(
            "%s: reconciled (%s) in %.3f s, %d REST calls: %d orders changed (%d closed, "
            "%d external), %d executions, %d positions%s, %d buffered",
            self.name,
            summary.trigger,
            summary.duration,
            summary.rest_calls,
            summary.orders_changed,
            summary.orders_closed,
            summary.external_orders,
            summary.executions_new,
            summary.positions_changed,
            ", wallet" if summary.wallet_changed else "",
            summary.buffered,
        )
        self._publish_end(end, "reconciled")
        if self.state.unconfirmed and not end.next_run:
            if summary.trigger != "recheck":
                self._rechecks = 0
            if self._rechecks < self.max_rechecks:
                self._rechecks += 1
                self._spawn(self._later(self.recheck_delay, "recheck"), "recheck")
            else:
                log.warning(
                    "%s: %d order(s) still found neither open nor in history after %d re-checks: "
                    "%s (kept open, unconfirmed)",
                    self.name,
                    len(self.state.unconfirmed),
                    self._rechecks,
                    ", ".join(sorted(self.state.unconfirmed)),
                )

    def _publish_end(self, end: RunEnd, reason: str) -> None:
        if end.overflowed:
            log.error(
                "%s: more than %d stream events held during one reconciliation run (none "
                "dropped); the REST queries are too slow for the stream's rate",
                self.name,
                self.state.max_buffer,
            )
        self._publish(end.outputs)
        self.bus.publish(EventType.RECONCILED, end.event)
        self._sync_changed(reason)
        self._runs_ended += 1
        waiters, self._run_waiters = self._run_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _fetch(self) -> None:
        """The REST half of one run, in rest.md §9's order; every answer goes to the core and
        what it returns is published at once."""
        rest, state = self.rest, self.state
        # 1. executions since the last seen (windows of at most 7 days), every page
        executions: list[Execution] = []
        for category in self.categories:
            for start, end in state.exec_windows(self._server_ms()):
                async for ex in rest.executions(
                    category, start_time=start, end_time=end, limit=100
                ):
                    executions.append(_with_category(ex, category))
        now, wall = self._now()
        self._publish(state.rest_executions(executions, now=now, wall_ms=wall))
        # 2. open orders per category (linear: per settle coin)
        for category, settle in self._scopes(with_spot=True):
            orders = [o async for o in rest.open_orders(category, settle_coin=settle, limit=50)]
            now, wall = self._now()
            self._publish(state.rest_open_orders(category, orders, now=now, wall_ms=wall))
        # 3. orders held open but not in the open set: many at once from the recently closed
        #    list, the rest by id (realtime, then history)
        missing = state.missing_orders()
        closed: dict[str, Order] = {}
        if len(missing) > BATCH_LOOKUP_AFTER:
            closed = await self._recently_closed({o.order_id for o in missing})
        for order in missing:
            category = order.category or self.categories[0]
            found = closed.get(order.order_id)
            if found is None:
                found = await self._lookup(category, order.order_id)
            now, wall = self._now()
            self._publish(
                state.rest_order_lookup(
                    order.order_id, found, now=now, wall_ms=wall, category=category
                )
            )
        # 4. positions per category (linear: per settle coin), then by symbol where needed
        for category, settle in self._scopes(with_spot=False):
            positions = [p async for p in rest.positions(category, settle_coin=settle, limit=200)]
            now, wall = self._now()
            self._publish(state.rest_positions(category, positions, now=now, wall_ms=wall))
        for category, symbol in state.missing_positions():
            positions = [p async for p in rest.positions(category, symbol=symbol)]
            now, wall = self._now()
            self._publish(state.rest_positions(category, positions, now=now, wall_ms=wall))
        # 5. the wallet last (it reflects the fills)
        snapshot = await rest.wallet_balance("UNIFIED")
        now, wall = self._now()
        at = snapshot.time if snapshot.time is not None else self._server_ms()
        self._publish(state.rest_wallet(snapshot.wallets, at, now=now, wall_ms=wall))

    async def _recently_closed(self, wanted: set[str]) -> dict[str, Order]:
        """The ``wanted`` orders found in ``/v5/order/realtime?openOnly=1`` (the last 500 closed
        orders per category, newest first: the ones closed during a gap come first), read page by
        page until all are found or the list ends. One call per 50 orders instead of one or two
        per order, which matters under Bybit's 50 requests/s per endpoint."""
        found: dict[str, Order] = {}
        for category, settle in self._scopes(with_spot=True):
            if len(found) == len(wanted):
                break
            async for order in self.rest.open_orders(
                category, settle_coin=settle, open_only=1, limit=50
            ):
                if order.order_id in wanted:
                    found[order.order_id] = _with_category(order, category)
                    if len(found) == len(wanted):
                        break
        return found

    async def _lookup(self, category: str, order_id: str) -> Order | None:
        async for order in self.rest.open_orders(category, order_id=order_id):
            if order.order_id == order_id:
                return _with_category(order, category)
        async for order in self.rest.order_history(category, order_id=order_id):
            if order.order_id == order_id:
                return _with_category(order, category)
        return None

    def _scopes(self, *, with_spot: bool) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for category in self.categories:
            if category == "spot" and not with_spot:
                continue
            if category == "linear":
                out.extend((category, coin) for coin in self.settle_coins)
            else:
                out.append((category, None))
        return out

    # -- timers ---------------------------------------------------------------------------------

    def _spawn(self, coro: Any, label: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.name}:{label}")
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _later(self, delay: float, trigger: str) -> None:
        await self.clock.sleep(delay)
        if self._stopping:
            return
        if trigger == "retry":
            self._retry_at = None
            if self.state.in_sync or self.state.in_run:
                return  # another run already covered it
        elif trigger == "recheck" and (not self.state.unconfirmed or self.state.in_run):
            return
        self._begin(trigger)

    async def _audit_loop(self, interval: float) -> None:
        while True:
            await self.clock.sleep(interval)
            if not self.state.in_run:
                self._begin("timer")

    def _begin(self, trigger: str) -> None:
        now, wall = self._now()
        if self.state.begin(trigger, now, wall):
            self._wake.set()

    # -- helpers --------------------------------------------------------------------------------

    def _now(self) -> tuple[float, int]:
        """Monotonic seconds and the venue's wall clock (ms): the core compares wall times
        with ``execTime`` and ``updatedTime``, which are the venue's."""
        return self.clock.monotonic(), self._server_ms()

    def _offset_ms(self) -> int:
        """The venue's clock minus the local one (ms), as the REST client measured it (0 when
        it has no estimate)."""
        offset = getattr(getattr(self.rest, "clock_offset", None), "estimate_ms", None)
        return int(offset) if isinstance(offset, int | float) else 0

    def _server_ms(self) -> int:
        """Server time estimate: local wall time corrected by :meth:`_offset_ms`."""
        return self.clock.wall_ms() + self._offset_ms()

    def _publish(self, outputs: list[Output]) -> None:
        publish = self.bus.publish
        for event_type, event in outputs:
            publish(event_type, event)

    def _sync_changed(self, reason: str) -> None:
        now = self.state.in_sync
        if now is self._published_sync:
            return
        self._published_sync = now
        self.bus.publish(
            EventType.ACCOUNT_SYNC,
            AccountSyncEvent(self.name, now, reason, self.clock.monotonic()),
        )


_T = TypeVar("_T", Execution, Order)


def _with_category(item: _T, category: str) -> _T:
    if getattr(item, "category", None) is None:
        return msgspec.structs.replace(item, category=category)
    return item


def _order_id_of(response: Any) -> str | None:
    """``orderId`` from a REST response (``result``) or a trade ack (``data`` / ``order_id``)."""
    order_id = getattr(response, "order_id", None)
    if isinstance(order_id, str) and order_id:
        return order_id
    for attr in ("result", "data"):
        body = getattr(response, attr, None)
        if isinstance(body, dict):
            value = body.get("orderId")
            if isinstance(value, str) and value:
                return value
    return None
