"""``AccountState``: the account as the exchange sees it, as a sans-I/O core.

Plain objects: no asyncio, no sockets, no clock reads (``now``, monotonic seconds, and
``wall_ms``, Unix ms on the venue's clock, are passed in: the shell adds the clock offset it
measured, so execution windows compare like with like with ``execTime``). The asyncio shell
:class:`hean.account.Account` feeds it private-stream events and REST answers and publishes
what it returns.

What it holds
-------------
* **Open orders** by ``orderId``, with an ``orderLinkId`` index. An order that reaches a terminal
  status moves to the *recent closed* store, which keeps the last ``max_closed_orders``
  (default 1,000) closed orders, oldest evicted first. (An update for an order evicted from it
  is treated as a new order.)
* **Positions** by ``(category, symbol, positionIdx)`` (flat ones too; one entry per position the
  account ever had, so bounded by the instruments traded).
* **Wallets** by account type (``UNIFIED``), each with its coins; :meth:`AccountState.balance`.
  A REST snapshot is a new baseline (coins it does not list are gone). A stream message counts
  only if its ``creationTime`` is later than the last REST snapshot's envelope ``time``; each coin
  it lists then replaces the held one unless a later message already set that coin (and likewise
  for the account-level fields), so a late message cannot undo a newer one.
* **Executions**, de-duplicated by ``execId``: the ids of the last ``max_exec_ids`` (default
  10,000) executions seen, first in first out, and the last ``max_recent_executions`` (default
  1,000) executions themselves. Exactly once holds for those 10,000 ids; beyond that it is at most
  once: an execution not in memory whose ``execTime`` is not later than that of the newest id
  already evicted is dropped (counted in ``stats.stale_executions``), and a run never asks REST
  for executions older than that. A fast execution (``execution.fast``) and the full one with the
  same ``execId`` count once: the full one, arriving second, enriches the stored copy but is not
  returned as a new fill.
* Which orders local code placed (:meth:`AccountState.mark_local`; the last 10,000 ids and 10,000
  link ids): every other order is *external* (:meth:`AccountState.is_external`).

Merge rules: :mod:`hean.account.merge`. Every ``apply_*`` / ``feed`` / ``rest_*`` method returns
only what changed (an empty list when nothing did), so the shell publishes each change once.

Reconciliation runs (rest.md §9)
--------------------------------
:meth:`AccountState.begin` (``trigger``: ``start``, ``gap``, ``manual``, ``timer``, ``retry``,
``recheck``) turns buffering on: stream events passed to :meth:`AccountState.feed` are held (in
arrival order) instead of applied. The shell then queries REST and hands each answer to the
``rest_*`` methods, in this order: executions since :meth:`AccountState.exec_windows` (windows of at
most 7 days), open orders per category (linear: per settle coin), the orders
:meth:`AccountState.missing_orders` names (held open locally, absent from every open set fetched),
each looked up by id (realtime, then history) and passed to
:meth:`AccountState.rest_order_lookup` (``None`` when found nowhere: history can lag, so the order
stays open, is marked *unconfirmed* and is looked up again by the next run, never given an
invented status), positions per category (linear: per settle coin), the positions
:meth:`AccountState.missing_positions` names fetched by symbol (a settle-coin query lists open
positions only, so one closed during the gap would otherwise stay open here), and the wallet
last. Everything REST changes is returned as the normal typed event with ``reconciled=True``.
:meth:`AccountState.finish` releases the held stream events through the same merge rules (the
wallet rule above drops the ones older than the snapshot) and returns the
:class:`~hean.core.events.ReconciledEvent`; :meth:`AccountState.fail` ends a failed run the same
way, with ``ok=False``.

In sync (:attr:`AccountState.in_sync`): ``False`` until the first run completes, from
:meth:`AccountState.link_down` (the private link was lost) or a gap until the run after it
completes, and after a failed run.

One run at a time: a gap (or any trigger) while a run is in progress queues exactly one more run,
which :meth:`AccountState.finish` begins at once (buffering stays on); more gaps meanwhile fold
into that one. The ``GAP`` events of one reconnect (one per private topic, all with the same
``down_since``) count as one gap.

Buffer bound: the held events are never dropped (account events must not be lost). Past
``max_buffer`` events (default 100,000) the buffer keeps growing, ``stats.buffer_overflows``
counts each event beyond the bound and :attr:`RunEnd.overflowed` tells the shell to raise an alarm.

Execution window of a run: from ``min(last execTime seen, start of the gap)`` (or, when neither is
known, the start of the run), but not before the start of the last successful run, minus
``margin_ms`` (default 10,000), and always after the ``execTime`` of the newest evicted
``execId``; up to the server time when the run reads executions, in windows of at most 7 days.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hean.account.merge import (
    is_terminal,
    merge_order,
    merge_position,
    merge_wallet,
    to_decimal,
    to_int_ms,
)
from hean.core.events import (
    EventType,
    ExecutionEvent,
    GapEvent,
    OrderUpdateEvent,
    PositionUpdateEvent,
    ReconciledEvent,
    WalletUpdateEvent,
)
from hean.exchange.bybit.state.private import (
    Execution,
    FastExecution,
    Order,
    Position,
    Wallet,
    WalletCoin,
)

__all__ = [
    "DAY_MS",
    "EXEC_WINDOW_MS",
    "AccountState",
    "AccountStats",
    "Output",
    "PositionKey",
    "RunEnd",
]

DAY_MS = 86_400_000
EXEC_WINDOW_MS = 7 * DAY_MS
"""Longest ``endTime - startTime`` Bybit accepts on ``/v5/execution/list`` (rest.md §6.3)."""

PositionKey = tuple[str, str, int]
"""``(category, symbol, positionIdx)``."""

Output = tuple[EventType, Any]
"""An event for the shell to publish: ``(event_type, event)``."""

_GAPS_REMEMBERED = 64


class AccountStats(msgspec.Struct, frozen=True):
    """Counters of an :class:`AccountState` (a snapshot)."""

    open_orders: int
    closed_orders: int
    positions: int
    exec_ids: int
    """execIds held for de-duplication (at most ``max_exec_ids``)."""
    executions_seen: int
    """Distinct executions delivered (stream and REST)."""
    duplicate_executions: int
    """Executions dropped as already delivered."""
    enriched_executions: int
    """Full executions that completed a fast one already delivered."""
    stale_executions: int
    """Executions dropped as older than the de-duplication memory (see the module docstring)."""
    stream_events: int
    """Stream events fed (buffered ones included)."""
    buffered: int
    """Stream events held right now."""
    buffer_overflows: int
    """Events held beyond ``max_buffer`` (never dropped)."""
    runs: int
    """Reconciliation runs begun."""
    runs_ok: int
    runs_failed: int
    in_run: bool
    queued: bool
    """Another run will begin when the current one ends."""
    unconfirmed: int
    """Orders held open locally but found neither open nor in history (re-checked next run)."""
    stale_wallet_messages: int
    """Stream wallet messages ignored as older than the wallet held."""
    unusable_events: int = 0
    """Held stream events that could not be applied when a run ended (malformed: dropped,
    counted; the rest of the held events are still applied and the run still ends)."""


@dataclass(slots=True)
class _Run:
    trigger: str
    started: float
    started_wall_ms: int
    gap_since_wall_ms: int | None
    buffer: list[Output] = field(default_factory=list)
    overflowed: bool = False
    seen_open: set[str] = field(default_factory=set)
    open_categories: set[str] = field(default_factory=set)
    seen_positions: set[PositionKey] = field(default_factory=set)
    exec_seq: dict[tuple[str, str], int] = field(default_factory=dict)
    position_categories: set[str] = field(default_factory=set)
    orders_changed: int = 0
    orders_closed: int = 0
    external_orders: int = 0
    executions_new: int = 0
    positions_changed: int = 0
    wallet_changed: bool = False


@dataclass(frozen=True, slots=True)
class RunEnd:
    """What :meth:`AccountState.finish` / :meth:`AccountState.fail` return."""

    event: ReconciledEvent
    """The run's summary (publish it after ``outputs``)."""
    outputs: list[Output]
    """Changes from the released buffer (stream events, ``reconciled=False``)."""
    next_run: bool
    """A queued run has begun (buffering is on again): query REST for it."""
    overflowed: bool
    """The buffer exceeded ``max_buffer`` during the run."""


class _FifoSet:
    """Insertion-ordered keys with a bound (oldest evicted first)."""

    __slots__ = ("items", "limit")

    def __init__(self, limit: int) -> None:
        self.items: OrderedDict[str, None] = OrderedDict()
        self.limit = limit

    def add(self, key: str) -> None:
        items = self.items
        if key in items:
            return
        items[key] = None
        if len(items) > self.limit:
            items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self.items

    def __len__(self) -> int:
        return len(self.items)


class AccountState:
    """The account as the exchange sees it; see the module docstring for the rules.

    Args:
        name: label used in the events it builds (``connection`` / ``account``).
        margin_ms: safety margin subtracted from the start of a run's execution window.
        max_exec_ids: execIds remembered for de-duplication (>= 1).
        max_recent_executions: executions kept for :attr:`executions` (>= 0).
        max_closed_orders: closed orders kept (>= 1).
        max_buffer: held stream events before the overflow alarm (never dropped; >= 1).
        max_local_ids: order ids (and, separately, link ids) remembered by :meth:`mark_local`.
    """

    def __init__(
        self,
        name: str = "account",
        *,
        margin_ms: int = 10_000,
        max_exec_ids: int = 10_000,
        max_recent_executions: int = 1_000,
        max_closed_orders: int = 1_000,
        max_buffer: int = 100_000,
        max_local_ids: int = 10_000,
    ) -> None:
        for label, value, low in (
            ("margin_ms", margin_ms, 0),
            ("max_exec_ids", max_exec_ids, 1),
            ("max_recent_executions", max_recent_executions, 0),
            ("max_closed_orders", max_closed_orders, 1),
            ("max_buffer", max_buffer, 1),
            ("max_local_ids", max_local_ids, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
        self.name = name
        self.margin_ms = margin_ms
        self.max_exec_ids = max_exec_ids
        self.max_closed_orders = max_closed_orders
        self.max_buffer = max_buffer
        self._open: dict[str, Order] = {}
        self._closed: OrderedDict[str, Order] = OrderedDict()
        self._links: dict[str, str] = {}
        self._unconfirmed: set[str] = set()
        self._positions: dict[PositionKey, Position] = {}
        self._wallets: dict[str, Wallet] = {}
        self._wallet_time: dict[str, int] = {}
        self._coin_time: dict[str, dict[str, int]] = {}
        self._wallet_baseline: dict[str, int] = {}
        # execId -> (full execution seen (False: only the fast one), execTime ms)
        self._exec_ids: OrderedDict[str, tuple[bool, int]] = OrderedDict()
        self._exec_evicted_ms = 0
        self._recent: OrderedDict[str, Execution | FastExecution] = OrderedDict()
        self._max_recent = max_recent_executions
        self._last_exec_ms: int | None = None
        self._local_ids = _FifoSet(max_local_ids)
        self._local_links = _FifoSet(max_local_ids)
        self._run: _Run | None = None
        self._queued: str | None = None
        self._pending_gap_ms: int | None = None
        self._gaps: deque[tuple[str, float]] = deque(maxlen=_GAPS_REMEMBERED)
        self._synced_at_ms: int | None = None
        self._link_down = False
        self.in_sync = False
        """The view is trustworthy: a run completed and no gap happened since."""
        self.last_run: ReconciledEvent | None = None
        """The summary of the last run that ended."""
        self._executions_seen = 0
        self._duplicates = 0
        self._enriched = 0
        self._stale = 0
        self._stream_events = 0
        self._overflows = 0
        self._runs = 0
        self._runs_ok = 0
        self._runs_failed = 0
        self._stale_wallets = 0
        self._unusable = 0

    def __repr__(self) -> str:
        return (
            f"AccountState(name={self.name!r}, open_orders={len(self._open)}, "
            f"positions={len(self._positions)}, in_sync={self.in_sync}, "
            f"in_run={self._run is not None})"
        )

    # -- reading ------------------------------------------------------------------------------

    @property
    def orders(self) -> dict[str, Order]:
        """Open orders by ``orderId`` (a copy)."""
        return dict(self._open)

    @property
    def closed_orders(self) -> dict[str, Order]:
        """Recently closed orders by ``orderId``, oldest first (a copy)."""
        return dict(self._closed)

    def order(self, order_id: str | None = None, order_link_id: str | None = None) -> Order | None:
        """An open or recently closed order by ``orderId`` or ``orderLinkId``."""
        if order_id is None and order_link_id:
            order_id = self._links.get(order_link_id)
        if order_id is None:
            return None
        return self._open.get(order_id) or self._closed.get(order_id)

    @property
    def positions(self) -> dict[PositionKey, Position]:
        """Positions by ``(category, symbol, positionIdx)`` (a copy; flat ones included)."""
        return dict(self._positions)

    def position(self, category: str, symbol: str, idx: int = 0) -> Position | None:
        return self._positions.get((category, symbol, idx))

    @property
    def wallets(self) -> dict[str, Wallet]:
        """Wallets by account type (``UNIFIED``), a copy."""
        return dict(self._wallets)

    @property
    def wallet(self) -> Wallet | None:
        """The ``UNIFIED`` wallet (or the only one held), if known."""
        wallet = self._wallets.get("UNIFIED")
        if wallet is None and self._wallets:
            wallet = next(iter(self._wallets.values()))
        return wallet

    def balance(self, coin: str, account_type: str = "UNIFIED") -> WalletCoin | None:
        """One coin of a wallet, if known."""
        wallet = self._wallets.get(account_type)
        return None if wallet is None else wallet.coin_of(coin)

    @property
    def executions(self) -> list[Execution | FastExecution]:
        """The last ``max_recent_executions`` executions delivered, oldest first (a full
        execution replaces the fast one of the same ``execId``)."""
        return list(self._recent.values())

    @property
    def last_exec_time_ms(self) -> int | None:
        """The latest ``execTime`` seen (Unix ms)."""
        return self._last_exec_ms

    @property
    def unconfirmed(self) -> frozenset[str]:
        """Orders held open that the last run found neither open nor in history."""
        return frozenset(self._unconfirmed)

    @property
    def in_run(self) -> bool:
        return self._run is not None

    @property
    def run_trigger(self) -> str | None:
        return None if self._run is None else self._run.trigger

    @property
    def queued(self) -> bool:
        return self._queued is not None

    @property
    def stats(self) -> AccountStats:
        return AccountStats(
            open_orders=len(self._open),
            closed_orders=len(self._closed),
            positions=len(self._positions),
            exec_ids=len(self._exec_ids),
            executions_seen=self._executions_seen,
            duplicate_executions=self._duplicates,
            enriched_executions=self._enriched,
            stale_executions=self._stale,
            stream_events=self._stream_events,
            buffered=0 if self._run is None else len(self._run.buffer),
            buffer_overflows=self._overflows,
            runs=self._runs,
            runs_ok=self._runs_ok,
            runs_failed=self._runs_failed,
            in_run=self._run is not None,
            queued=self._queued is not None,
            unconfirmed=len(self._unconfirmed),
            stale_wallet_messages=self._stale_wallets,
            unusable_events=self._unusable,
        )

    # -- local / external orders --------------------------------------------------------------

    def mark_local(self, order_id: str | None = None, order_link_id: str | None = None) -> None:
        """Record that local code placed this order (call it before sending, with the link id,
        and again with the ``orderId`` from the acknowledgement)."""
        if order_id:
            self._local_ids.add(order_id)
        if order_link_id:
            self._local_links.add(order_link_id)

    def is_local(self, order_id: str | None = None, order_link_id: str | None = None) -> bool:
        if order_id and order_id in self._local_ids:
            return True
        if order_link_id and order_link_id in self._local_links:
            return True
        if order_id and not order_link_id:
            held = self._open.get(order_id) or self._closed.get(order_id)
            if held is not None and held.order_link_id:
                return held.order_link_id in self._local_links
        return False

    def is_external(self, order_id: str) -> bool:
        """No local code placed this order (not marked by :meth:`mark_local`, by id or by the
        ``orderLinkId`` of the copy held)."""
        return not self.is_local(order_id)

    # -- low level: apply items (return what changed) -----------------------------------------

    def apply_orders(self, orders: Iterable[Order], *, category: str | None = None) -> list[Order]:
        """Merge orders; returns the ones that changed (as held now)."""
        return [o for o in (self._apply_order(order, category, None) for order in orders) if o]

    def _apply_order(self, order: Order, category: str | None, run: _Run | None) -> Order | None:
        if order.category is None and category is not None:
            order = msgspec.structs.replace(order, category=category)
        oid = order.order_id
        held = self._open.get(oid)
        was_open = held is not None
        if held is None:
            held = self._closed.get(oid)
        stored, changed = merge_order(held, order)
        if self._unconfirmed and (run is not None or stored is not held):
            self._unconfirmed.discard(oid)  # REST listed it, or a newer copy says where it is
        if stored is held:
            return None
        if is_terminal(stored):
            if was_open:
                del self._open[oid]
            self._closed[oid] = stored
            self._closed.move_to_end(oid)
            while len(self._closed) > self.max_closed_orders:
                old_id, old = self._closed.popitem(last=False)
                link = old.order_link_id
                if link and self._links.get(link) == old_id:
                    del self._links[link]
        else:
            self._open[oid] = stored
        link = stored.order_link_id
        if link:
            self._links[link] = oid
        if not changed:
            return None
        if run is not None:
            run.orders_changed += 1
            if was_open and is_terminal(stored):
                run.orders_closed += 1
            if held is None and not self.is_local(oid, link):
                run.external_orders += 1
        return stored

    def apply_executions(
        self, executions: Iterable[Execution | FastExecution]
    ) -> list[Execution | FastExecution]:
        """De-duplicate executions by ``execId``; returns the new ones (never an execution
        already returned, see the module docstring for fast/full and the memory bound)."""
        out: list[Execution | FastExecution] = []
        ids = self._exec_ids
        for ex in executions:
            eid = ex.exec_id
            full = ex.__class__ is Execution
            seen = ids.get(eid)
            if seen is not None:
                if full and not seen[0]:
                    ids[eid] = (True, seen[1])
                    self._enriched += 1
                    if eid in self._recent:
                        self._recent[eid] = ex
                else:
                    self._duplicates += 1
                continue
            exec_ms = to_int_ms(ex.exec_time)
            if self._exec_evicted_ms and exec_ms and exec_ms <= self._exec_evicted_ms:
                self._stale += 1
                continue
            ids[eid] = (full, exec_ms)
            if len(ids) > self.max_exec_ids:
                _, (_, old_ms) = ids.popitem(last=False)
                if old_ms > self._exec_evicted_ms:
                    self._exec_evicted_ms = old_ms
            if self._max_recent:
                self._recent[eid] = ex
                if len(self._recent) > self._max_recent:
                    self._recent.popitem(last=False)
            if exec_ms and (self._last_exec_ms is None or exec_ms > self._last_exec_ms):
                self._last_exec_ms = exec_ms
            self._executions_seen += 1
            out.append(ex)
        return out

    def apply_positions(
        self, positions: Iterable[Position], *, category: str | None = None
    ) -> list[Position]:
        """Merge positions; returns the ones that changed."""
        out = []
        for position in positions:
            if position.category is None and category is not None:
                position = msgspec.structs.replace(position, category=category)
            key = (position.category or "", position.symbol, position.position_idx or 0)
            held = self._positions.get(key)
            stored, changed = merge_position(held, position)
            if stored is not held:
                self._positions[key] = stored
            if changed:
                out.append(stored)
        return out

    def apply_wallets(
        self, wallets: Iterable[Wallet], creation_time: int, *, baseline: bool = False
    ) -> list[Wallet]:
        """Merge wallets from a stream message created at ``creation_time`` (ms), or set them
        as the new baseline (a REST snapshot with envelope ``time`` ``creation_time``).

        A stream message counts only if ``creation_time`` is later than the last REST baseline
        of that account type; then each coin it lists replaces the held one unless that coin
        was last set by a later message, and likewise for the account-level fields (so a
        message that arrives late cannot undo a newer one). Returns the wallets (as held now)
        that changed.
        """
        out = []
        for wallet in wallets:
            kind = wallet.account_type or "UNIFIED"
            held = self._wallets.get(kind)
            if baseline:
                self._wallet_baseline[kind] = creation_time
                self._wallet_time[kind] = creation_time
                self._coin_time[kind] = {c.coin: creation_time for c in wallet.coin}
                merged, changed = merge_wallet(held, wallet, baseline=True)
            else:
                base = self._wallet_baseline.get(kind)
                if base is not None and creation_time <= base:
                    self._stale_wallets += 1
                    continue
                last = self._wallet_time.get(kind)
                account_fields = last is None or creation_time >= last
                times = self._coin_time.setdefault(kind, {})
                coins = [c for c in wallet.coin if creation_time >= times.get(c.coin, -1)]
                if not account_fields and not coins:
                    self._stale_wallets += 1
                    continue
                if len(coins) != len(wallet.coin):
                    wallet = msgspec.structs.replace(wallet, coin=coins)
                merged, changed = merge_wallet(
                    held, wallet, baseline=False, account_fields=account_fields
                )
                if account_fields:
                    self._wallet_time[kind] = creation_time
                for coin in coins:
                    times[coin.coin] = creation_time
            self._wallets[kind] = merged
            if changed:
                out.append(merged)
        return out

    # -- stream events ------------------------------------------------------------------------

    def feed(self, event_type: EventType, event: Any) -> list[Output]:
        """A private-stream event (``ORDER_UPDATE``, ``EXECUTION``, ``POSITION_UPDATE``,
        ``WALLET_UPDATE``). Held while a run is in progress (returns ``[]``), applied
        otherwise: returns the event to publish (the same object when every item changed,
        else a copy with only the changed items), or ``[]``."""
        self._stream_events += 1
        run = self._run
        if run is not None:
            run.buffer.append((event_type, event))
            if len(run.buffer) > self.max_buffer:
                self._overflows += 1
                run.overflowed = True
            return []
        return self._apply_event(event_type, event)

    def _apply_event(self, event_type: EventType, event: Any) -> list[Output]:
        changed: list[Any]
        if event_type is EventType.ORDER_UPDATE:
            items = event.orders
            changed = self.apply_orders(items)
            attr = "orders"
        elif event_type is EventType.EXECUTION:
            items = event.executions
            changed = self.apply_executions(items)
            attr = "executions"
        elif event_type is EventType.POSITION_UPDATE:
            items = event.positions
            changed = self.apply_positions(items)
            attr = "positions"
        elif event_type is EventType.WALLET_UPDATE:
            items = event.wallets
            changed = self.apply_wallets(items, event.creation_time)
            attr = "wallets"
        else:
            return []
        if not changed:
            return []
        if len(changed) == len(items) and all(a is b for a, b in zip(changed, items, strict=True)):
            return [(event_type, event)]
        return [(event_type, msgspec.structs.replace(event, **{attr: changed}))]

    # -- runs ---------------------------------------------------------------------------------

    def link_down(self) -> None:
        """The private link was lost: out of sync until the run after its ``GAP`` completes
        (a run that ends meanwhile does not mark the account in sync)."""
        self._link_down = True
        self.in_sync = False

    def on_gap(self, gap: GapEvent, now: float, wall_ms: int, *, offset_ms: int = 0) -> bool:
        """A private ``GAP`` event. Returns ``True`` when a run has begun (query REST now);
        ``False`` when it is part of a gap already handled (the other topics of the same
        reconnect) or a run is in progress (one more is queued). ``offset_ms``: the venue's
        clock minus the local one, added to the gap's local ``down_since_wall_ms`` to put it on
        the venue's clock like ``wall_ms``."""
        key = (gap.connection, gap.down_since)
        if key in self._gaps:
            return False
        self._gaps.append(key)
        self._link_down = False
        self.in_sync = False
        since = gap.down_since_wall_ms
        if since is not None:
            since += offset_ms
            pending = self._pending_gap_ms
            self._pending_gap_ms = since if pending is None else min(pending, since)
        return self.begin("gap", now, wall_ms)

    def begin(
        self, trigger: str, now: float, wall_ms: int, *, gap_since_wall_ms: int | None = None
    ) -> bool:
        """Begin a run (buffering on). Returns ``False`` if one is in progress: then exactly
        one more is queued (further calls fold into it)."""
        if gap_since_wall_ms is not None:
            pending = self._pending_gap_ms
            self._pending_gap_ms = (
                gap_since_wall_ms if pending is None else min(pending, gap_since_wall_ms)
            )
        if self._run is not None:
            if self._queued is None or trigger == "gap":
                self._queued = trigger
            return False
        self._start_run(trigger, now, wall_ms)
        return True

    def _start_run(self, trigger: str, now: float, wall_ms: int) -> None:
        self._run = _Run(trigger, now, wall_ms, self._pending_gap_ms)
        self._pending_gap_ms = None
        self._runs += 1

    def exec_windows(self, end_ms: int) -> list[tuple[int, int]]:
        """The ``(startTime, endTime)`` windows (ms, each at most 7 days) to fetch executions
        for in the current run, oldest first (see the module docstring)."""
        run = self._require_run()
        known = [x for x in (self._last_exec_ms, run.gap_since_wall_ms) if x is not None]
        start = min(known) if known else run.started_wall_ms
        if self._synced_at_ms is not None:
            start = max(start, self._synced_at_ms)
        start -= self.margin_ms
        if self._exec_evicted_ms:
            start = max(start, self._exec_evicted_ms + 1)
        end = max(end_ms, start)
        windows = []
        while True:
            stop = min(end, start + EXEC_WINDOW_MS)
            windows.append((start, stop))
            if stop >= end:
                return windows
            start = stop + 1

    def _require_run(self) -> _Run:
        run = self._run
        if run is None:
            raise RuntimeError("no reconciliation run in progress (call begin() first)")
        return run

    def _rest_output(
        self, event_type: EventType, items: list[Any], now: float, wall_ms: int
    ) -> list[Output]:
        """``items`` learned from REST as one ``reconciled`` event (none when empty)."""
        if not items:
            return []
        n = self.name
        event: Any
        if event_type is EventType.ORDER_UPDATE:
            event = OrderUpdateEvent(n, "order", items, None, wall_ms, now, wall_ms, True)
        elif event_type is EventType.EXECUTION:
            event = ExecutionEvent(n, "execution", False, items, None, wall_ms, now, wall_ms, True)
        elif event_type is EventType.POSITION_UPDATE:
            event = PositionUpdateEvent(n, "position", items, None, wall_ms, now, wall_ms, True)
        else:
            event = WalletUpdateEvent(n, "wallet", items, None, wall_ms, now, wall_ms, True)
        return [(event_type, event)]

    def rest_executions(
        self, executions: Sequence[Execution], *, now: float, wall_ms: int
    ) -> list[Output]:
        """Executions fetched for the run's windows (any order: applied by ``execTime``,
        ``seq``, ``execId``). Returns the new ones as one ``reconciled`` event."""
        run = self._require_run()
        ordered = sorted(
            executions,
            key=lambda e: (to_int_ms(e.exec_time), -1 if e.seq is None else e.seq, e.exec_id),
        )
        new = self.apply_executions(ordered)
        run.executions_new += len(new)
        exec_seq = run.exec_seq
        for ex in new:
            seq = ex.seq
            if seq is not None and ex.category:
                key = (ex.category, ex.symbol)
                if seq > exec_seq.get(key, -1):
                    exec_seq[key] = seq
        return self._rest_output(EventType.EXECUTION, new, now, wall_ms)

    def rest_open_orders(
        self, category: str, orders: Sequence[Order], *, now: float, wall_ms: int
    ) -> list[Output]:
        """One category's (or settle coin's) complete open-order set. Returns the orders it
        changed as one ``reconciled`` event."""
        run = self._require_run()
        run.open_categories.add(category)
        changed = []
        for order in orders:
            run.seen_open.add(order.order_id)
            result = self._apply_order(order, category, run)
            if result is not None:
                changed.append(result)
        return self._rest_output(EventType.ORDER_UPDATE, changed, now, wall_ms)

    def missing_orders(self) -> list[Order]:
        """Orders held open whose category's open set was fetched in this run but which were
        not in it: look each up by id (realtime, then history) and pass the answer to
        :meth:`rest_order_lookup`."""
        run = self._require_run()
        return [
            o
            for o in self._open.values()
            if (o.category or "") in run.open_categories and o.order_id not in run.seen_open
        ]

    def rest_order_lookup(
        self, order_id: str, found: Order | None, *, now: float, wall_ms: int, category: str | None
    ) -> list[Output]:
        """The answer of a look-up by id: the order, or ``None`` when it was in neither
        realtime nor history (it stays open, marked unconfirmed, and is looked up again next
        run). Returns the change as a ``reconciled`` event."""
        run = self._require_run()
        if found is None:
            if order_id in self._open:
                self._unconfirmed.add(order_id)
            return []
        result = self._apply_order(found, category, run)
        changed = [] if result is None else [result]
        return self._rest_output(EventType.ORDER_UPDATE, changed, now, wall_ms)

    def rest_positions(
        self, category: str, positions: Sequence[Position], *, now: float, wall_ms: int
    ) -> list[Output]:
        """One category's (or settle coin's, or symbol's) positions. Returns the changed ones as
        one ``reconciled`` event."""
        run = self._require_run()
        run.position_categories.add(category)
        for p in positions:
            run.seen_positions.add((p.category or category, p.symbol, p.position_idx or 0))
        changed = self.apply_positions(positions, category=category)
        run.positions_changed += len(changed)
        return self._rest_output(EventType.POSITION_UPDATE, changed, now, wall_ms)

    def missing_positions(self) -> list[tuple[str, str]]:
        """``(category, symbol)`` of positions whose category was fetched in this run but which
        were not in the answer, though they should have changed: held open (size not zero), or
        traded by an execution this run learned from REST whose ``seq`` is later than the one
        held (a query by ``settleCoin`` lists only open positions, so one that was closed during
        the gap is missing). Fetch each by symbol (that returns it, flat or not) and pass the
        answer to :meth:`rest_positions`."""
        run = self._require_run()
        fetched = run.position_categories
        seen = {(k[0], k[1]) for k in run.seen_positions}
        out = {
            (key[0], key[1])
            for key, p in self._positions.items()
            if key[0] in fetched and key not in run.seen_positions and to_decimal(p.size) != 0
        }
        for (category, symbol), seq in run.exec_seq.items():
            if category not in fetched or (category, symbol) in seen:
                continue
            held = [
                p.seq
                for key, p in self._positions.items()
                if key[0] == category and key[1] == symbol and p.seq is not None
            ]
            if not held or max(held) < seq:
                out.add((category, symbol))
        return sorted(out)

    def rest_wallet(
        self, wallets: Sequence[Wallet], time_ms: int, *, now: float, wall_ms: int
    ) -> list[Output]:
        """The wallet snapshot (envelope ``time`` ``time_ms``): the new baseline. Returns the
        wallets that changed as one ``reconciled`` event."""
        run = self._require_run()
        changed = self.apply_wallets(wallets, time_ms, baseline=True)
        run.wallet_changed = run.wallet_changed or bool(changed)
        return self._rest_output(EventType.WALLET_UPDATE, changed, now, wall_ms)

    def finish(self, now: float, wall_ms: int, *, rest_calls: int = 0) -> RunEnd:
        """End the run successfully: release the held events (same merge rules), mark the
        account in sync unless another run is queued (which then begins at once)."""
        return self._end(now, wall_ms, rest_calls, None)

    def fail(self, now: float, wall_ms: int, error: str, *, rest_calls: int = 0) -> RunEnd:
        """End the run as failed (``error`` says why): the held events are released, the
        account stays out of sync, and the window of the failed run is carried over to the
        next (a queued one begins at once; otherwise the shell retries later)."""
        return self._end(now, wall_ms, rest_calls, error)

    def _end(self, now: float, wall_ms: int, rest_calls: int, error: str | None) -> RunEnd:
        run = self._require_run()
        self._run = None
        outputs: list[Output] = []
        for event_type, event in run.buffer:
            try:
                outputs.extend(self._apply_event(event_type, event))
            except Exception:  # one bad message must not end the account's runs for good
                self._unusable += 1
        ok = error is None
        if ok:
            self._runs_ok += 1
            self._synced_at_ms = run.started_wall_ms
        else:
            self._runs_failed += 1
            since = run.gap_since_wall_ms
            if since is not None:
                pending = self._pending_gap_ms
                self._pending_gap_ms = since if pending is None else min(pending, since)
        summary = ReconciledEvent(
            account=self.name,
            trigger=run.trigger,
            ok=ok,
            error=error,
            started=run.started,
            duration=max(0.0, now - run.started),
            rest_calls=rest_calls,
            orders_changed=run.orders_changed,
            orders_closed=run.orders_closed,
            external_orders=run.external_orders,
            executions_new=run.executions_new,
            positions_changed=run.positions_changed,
            wallet_changed=run.wallet_changed,
            buffered=len(run.buffer),
            gap_since_wall_ms=run.gap_since_wall_ms,
        )
        self.last_run = summary
        queued = self._queued
        self._queued = None
        if queued is not None:
            self.in_sync = False
            self._start_run(queued, now, wall_ms)
        else:
            self.in_sync = ok and not self._link_down
        return RunEnd(summary, outputs, queued is not None, run.overflowed)
