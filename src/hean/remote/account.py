"""Account events from a gateway, for other processes: a consumer group per consuming service,
and a mirror of the gateway's account state.

::

    events = AccountEvents("redis://gw:6379/0", service="risk", consumer="risk-1", bus=bus)
    bus.subscribe(EventType.EXECUTION, on_fill)            # or events.on(EventType.EXECUTION, h)
    await events.start()

Delivery: entries are read with ``XREADGROUP`` in the group ``service``; an entry is acknowledged
(``XACK``) only after every handler returned, so a process killed before that gets it again
after its restart (its own pending entries are read first, with the same ``consumer`` name), and
entries left pending by a consumer of the group that never came back are claimed after
``claim_idle`` seconds. Within one process an event is handled at most once
(:class:`~hean.remote.core.AccountDedup`: by entry id, by ``execId``, by order version): at
least once across restarts, at most once per process. A handler that raises leaves the entry
unacknowledged (it comes back on the next start).

``AccountMirror`` follows the gateway's account: it loads the state key, then applies the
stream's entries after it (orders, positions, wallet, in sync); a hole reloads the state key.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from hean.core.events import (
    AccountSyncEvent,
    EventType,
    ExecutionEvent,
    OrderUpdateEvent,
    PositionUpdateEvent,
    WalletUpdateEvent,
)
from hean.exchange.bybit.state.private import Order, Position, Wallet, WalletCoin
from hean.gateway.gateway import backoff_delay
from hean.gateway.redis_target import RedisTarget
from hean.gateway.wire import AccountSnapshot, AcctEntry, Layout, decode_items, parse_id
from hean.remote.core import AccountDedup, StreamTracker, Verdict

__all__ = ["AccountEvents", "AccountMirror", "account_event"]

log = logging.getLogger("hean.remote")

_acct = msgspec.msgpack.Decoder(AcctEntry).decode
_snapshot = msgspec.msgpack.Decoder(AccountSnapshot).decode

TERMINAL = frozenset({"Filled", "Cancelled", "Rejected", "PartiallyFilledCanceled", "Deactivated"})

_TYPES = {
    "order": EventType.ORDER_UPDATE,
    "execution": EventType.EXECUTION,
    "fast": EventType.EXECUTION,
    "position": EventType.POSITION_UPDATE,
    "wallet": EventType.WALLET_UPDATE,
    "sync": EventType.ACCOUNT_SYNC,
}


def account_event(
    name: str, e: AcctEntry, items: list[Any], now: float
) -> tuple[EventType, Any] | None:
    """The bus event of an account entry (``None`` for kinds without one)."""
    conn = f"remote/{name}"
    k = e.kind
    if k == "order":
        return EventType.ORDER_UPDATE, OrderUpdateEvent(
            conn, e.topic, items, e.msg_id, e.ct, now, e.w, e.reconciled
        )
    if k in ("execution", "fast"):
        return EventType.EXECUTION, ExecutionEvent(
            conn, e.topic, k == "fast", items, e.msg_id, e.ct, now, e.w, e.reconciled
        )
    if k == "position":
        return EventType.POSITION_UPDATE, PositionUpdateEvent(
            conn, e.topic, items, e.msg_id, e.ct, now, e.w, e.reconciled
        )
    if k == "wallet":
        return EventType.WALLET_UPDATE, WalletUpdateEvent(
            conn, e.topic, items, e.msg_id, e.ct, now, e.w, e.reconciled
        )
    if k == "sync":
        return EventType.ACCOUNT_SYNC, AccountSyncEvent(
            name, bool(e.data.get("in_sync")), str(e.data.get("reason", "")), now
        )
    return None


Handler = Callable[[Any], Awaitable[None] | None]


class AccountEvents:
    """Account events of one gateway account through a consumer group (module docstring).

    Args:
        redis: the gateway's Redis.
        service: the consumer group (one per consuming service: every service sees every event).
        consumer: this process's name in the group; keep it across restarts so its unacknowledged
            entries come back to it.
        account: the account label the gateway publishes under.
        bus: events are also published there (sync callbacks; acknowledged after they return).
        start_id: where a new group starts: ``$`` (new events) or ``0`` (the kept history).
        claim_idle: seconds after which entries pending on another consumer are claimed (looked
            for at start and every ``claim_idle / 2`` seconds).
    """

    def __init__(
        self,
        redis: RedisTarget | str,
        *,
        service: str,
        consumer: str,
        account: str = "account",
        prefix: str = "hean",
        bus: Any = None,
        start_id: str = "$",
        claim_idle: float = 30.0,
        block_ms: int = 100,
        max_ids: int = 50_000,
        rng: random.Random | None = None,
    ) -> None:
        if not service or not consumer:
            raise ValueError("service and consumer names are required")
        self.target = redis if isinstance(redis, RedisTarget) else RedisTarget.parse(redis)
        self.layout = Layout(prefix)
        self.key = self.layout.acct(account)
        self.account = account
        self.service = service
        self.consumer = consumer
        self.bus = bus
        self.start_id = start_id
        self.claim_idle = claim_idle
        self.claim_every = max(0.05, claim_idle / 2)
        """Seconds between looks for entries another consumer left pending (so one left by a
        consumer that died is handled within ``1.5 * claim_idle``)."""
        self.block_ms = block_ms
        self.dedup = AccountDedup(max_ids)
        self.rng = rng if rng is not None else random.Random()
        self._handlers: dict[EventType, list[Handler]] = {}
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        self._closed = False
        self.handled = 0
        self.acked = 0
        self.errors = 0
        self.decode_errors = 0
        """Entries that could not be decoded (another writer's, another version's): counted,
        logged (the first five, then every 1,000th), acknowledged and skipped."""
        self.redelivered = 0
        self.claimed = 0

    def on(self, event_type: EventType, handler: Handler) -> None:
        """Call ``handler(event)`` (sync or async) for each new event of ``event_type``."""
        self._handlers.setdefault(EventType(event_type), []).append(handler)

    async def start(self) -> None:
        if self._task is None:
            client = self.target.client()
            try:
                await client.xgroup_create(self.key, self.service, id=self.start_id, mkstream=True)
            except Exception as exc:
                if "BUSYGROUP" not in str(exc):
                    await client.aclose()
                    raise
            self._client = client
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"hean-account-events-{self.service}"
            )

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def __aenter__(self) -> AccountEvents:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self) -> None:
        attempt = 0
        backlog = True  # first our own pending entries (a restart after a crash)
        loop = asyncio.get_running_loop()
        next_claim = 0.0
        while not self._closed:
            try:
                if self._client is None:
                    self._client = self.target.client()
                    await self._client.ping()
                    backlog = True
                client = self._client
                if backlog:
                    resp = await client.xreadgroup(
                        self.service, self.consumer, {self.key: "0"}, count=100
                    )
                    entries = resp[0][1] if resp else []
                    if not entries:
                        backlog = False
                        await self._claim()
                        next_claim = loop.time() + self.claim_every
                        continue
                    self.redelivered += len(entries)
                else:
                    if loop.time() >= next_claim:
                        # a consumer of the group may have died since: its entries idle past
                        # claim_idle are ours now
                        await self._claim()
                        next_claim = loop.time() + self.claim_every
                    resp = await client.xreadgroup(
                        self.service, self.consumer, {self.key: ">"}, count=100,
                        block=self.block_ms,
                    )  # fmt: skip
                    entries = resp[0][1] if resp else []
                    if not entries:
                        continue
                for entry_id, fields in entries:
                    await self._handle(entry_id, fields)
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("account events %s: Redis error (%s); retrying", self.service, exc)
                client, self._client = self._client, None
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()
                await asyncio.sleep(backoff_delay(attempt, 0.05, 5.0, self.rng))
                attempt += 1

    async def _claim(self) -> None:
        """Take over the group's entries pending on any consumer for ``claim_idle`` or longer
        (all of them: ``XAUTOCLAIM``'s cursor is followed to its end)."""
        start: bytes | str = "0-0"
        while True:
            res = await self._client.xautoclaim(
                self.key, self.service, self.consumer, int(self.claim_idle * 1000), start,
                count=100,
            )  # fmt: skip
            if not res:
                return
            for entry_id, fields in res[1]:
                if fields:
                    self.claimed += 1
                    await self._handle(entry_id, fields)
            start = res[0]
            if start in (b"0-0", "0-0"):
                return

    async def _handle(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> None:
        eid = entry_id.decode()
        try:
            if not fields:
                raise ValueError("entry deleted")
            e = _acct(fields[b"d"])
            items = decode_items(e.kind, e.items)
        except Exception as exc:
            self.decode_errors += 1
            if self.decode_errors <= 5 or self.decode_errors % 1000 == 0:
                log.warning(
                    "account events: undecodable entry %s (%s): acknowledged (%d so far)",
                    eid,
                    exc,
                    self.decode_errors,
                )
            await self._client.xack(self.key, self.service, entry_id)
            return
        if self.dedup.is_duplicate(eid, e.kind, items):
            await self._client.xack(self.key, self.service, entry_id)
            self.acked += 1
            return
        fresh = self.dedup.fresh(e.kind, items)
        ev = account_event(self.account, e, fresh, asyncio.get_running_loop().time())
        if ev is not None:
            etype, event = ev
            try:
                for h in self._handlers.get(etype, ()):
                    r = h(event)
                    if inspect.isawaitable(r):
                        await r
                if self.bus is not None:
                    self.bus.publish(etype, event)
            except Exception as exc:
                self.errors += 1
                log.warning(
                    "account events %s: handler raised %s: %s; %s stays unacknowledged",
                    self.service,
                    type(exc).__name__,
                    exc,
                    eid,
                )
                return
            self.handled += 1
        self.dedup.handled(eid, e.kind, fresh)
        await self._client.xack(self.key, self.service, entry_id)
        self.acked += 1


class AccountMirror:
    """A read-only copy of the gateway's account state (open orders, positions, wallet, sync)."""

    def __init__(
        self,
        redis: RedisTarget | str,
        *,
        account: str = "account",
        prefix: str = "hean",
        block_ms: int = 100,
    ) -> None:
        self.target = redis if isinstance(redis, RedisTarget) else RedisTarget.parse(redis)
        self.layout = Layout(prefix)
        self.name = account
        self.key = self.layout.acct(account)
        self.state_key = self.layout.acct_state(account)
        self.block_ms = block_ms
        self.orders: dict[str, Order] = {}
        self.positions: dict[tuple[str | None, str, int], Position] = {}
        self.wallet: Wallet | None = None
        self.in_sync = False
        self.sync_state = "reconciling"
        self.loaded = asyncio.Event()
        self.reloads = 0
        self._tracker = StreamTracker(snapshots=False)
        self._cursor = "0-0"
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None

    def order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def position(self, category: str, symbol: str, idx: int = 0) -> Position | None:
        return self.positions.get((category, symbol, idx))

    def balance(self, coin: str) -> WalletCoin | None:
        return None if self.wallet is None else self.wallet.coin_of(coin)

    async def start(self) -> None:
        if self._task is None:
            self._client = self.target.client()
            await self._load()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hean-mirror")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    async def _load(self) -> None:
        raw = await self._client.get(self.state_key)
        if raw is None:
            return
        snap = _snapshot(raw)
        self.orders = {o.order_id: o for o in snap.orders}
        self.positions = {_pos_key(p): p for p in snap.positions}
        self.wallet = snap.wallets[0] if snap.wallets else None
        self.in_sync = snap.in_sync
        self.sync_state = snap.sync_state
        if snap.id:
            self._cursor = snap.id
            self._tracker = StreamTracker(snapshots=False)
            self._tracker.start_at(*parse_id(snap.id))
        self.reloads += 1
        self.loaded.set()

    async def _run(self) -> None:
        while True:
            try:
                resp = await self._client.xread({self.key: self._cursor}, block=self.block_ms)
                if not resp:
                    if not self.loaded.is_set():
                        await self._load()
                    continue
                for entry_id, fields in resp[0][1]:
                    self._cursor = entry_id.decode()
                    epoch, g = parse_id(entry_id)
                    if self._tracker.on_entry(epoch, g, False) is Verdict.GAP:
                        log.warning("account mirror %s: hole in the stream; reloading", self.name)
                        await self._load()
                        break
                    self._apply(_acct(fields[b"d"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("account mirror %s: %s; retrying", self.name, exc)
                await asyncio.sleep(0.2)

    def _apply(self, e: AcctEntry) -> None:
        items = decode_items(e.kind, e.items)
        if e.kind == "order":
            for o in items:
                if o.order_status in TERMINAL:
                    self.orders.pop(o.order_id, None)
                else:
                    self.orders[o.order_id] = o
        elif e.kind == "position":
            for p in items:
                self.positions[_pos_key(p)] = p
        elif e.kind == "wallet" and items:
            self.wallet = items[-1]
        elif e.kind == "sync":
            self.in_sync = bool(e.data.get("in_sync"))
            self.sync_state = "in_sync" if self.in_sync else "reconciling"
        self.loaded.set()


def _pos_key(p: Position) -> tuple[str | None, str, int]:
    return (p.category, p.symbol, p.position_idx or 0)
