"""The in-process async event bus: cheap synchronous ``publish``, isolated subscribers.

The WebSocket reader calls :meth:`EventBus.publish` synchronously for every message, so publish
never awaits, never blocks and never raises because of a subscriber. It does three things: one
"is the bus running" attribute test, calls the *sync* callbacks inline (each in its own
``try``), and appends the event to the bounded in-memory queue of every *async* subscriber.

Kinds of subscriber
-------------------
``subscribe``
    A plain callback invoked inline inside ``publish()``. For the hot path: it must be fast and
    must not block. An exception is logged (rate-limited) and counted; the others still run.
``subscribe_async``
    A coroutine handler awaited by the subscription's own task (started by :meth:`EventBus.start`).
    Events wait in a per-subscriber queue whose overflow behaviour is an :class:`OverflowPolicy`.
    A burst of publishes in one event-loop iteration (one socket read) wakes the task once; with
    ``batch=True`` the handler receives the whole burst as one list.
``stream``
    An async iterator over a queue of the same kind (``async for ev in bus.stream(...)``); the
    iterating code is the consumer, so it needs no task and works whether or not the bus runs.

Overflow policies: which one for which stream
---------------------------------------------
Every queue is bounded by ``maxsize`` (``default_maxsize`` if not given) except ``NEVER_DROP``.

* ``CONFLATE``: keep only the latest event per key (``key(event)``, e.g. the symbol). Use it for
  **tickers and order books**, where only the newest value matters: a slow consumer sees fewer,
  fresher updates instead of a growing backlog of stale ones. Replaced events are counted as
  ``conflated`` (not drops); if more than ``maxsize`` distinct keys are waiting, the oldest key's
  event is dropped and counted.
* ``DROP_OLDEST``: when full, discard the oldest queued event (counted in ``dropped``). Use it for
  **public trades** and other streams where each event matters but, if the consumer has fallen
  behind, recent data is worth more than old data. This is the default.
* ``DROP_NEWEST``: when full, discard the event being published (counted). Use it where the
  earliest events matter most (e.g. a consumer that only needs the first N of a burst).
* ``NEVER_DROP``: nothing is ever discarded. Use it for **private account streams** (orders,
  executions, positions, wallet) where losing an event means a wrong view of the account. When the
  backlog exceeds ``maxsize`` an ERROR alarm is logged once and counted in ``alarms``; it re-arms
  when the backlog falls below ``maxsize / 2``. Memory grows until the consumer catches up.

For every queued subscriber the counters satisfy, exactly and at every moment::

    events published to it == delivered + dropped + conflated + depth

where ``delivered`` counts events handed to the handler/iterator (including ones whose handler
raised, which are also counted in ``errors``).

Threading: the bus is single-threaded. ``publish`` must be called from the thread that runs the
bus's event loop (or, before the loop exists, from any code outside a loop: sync callbacks run and
async subscribers just queue until :meth:`EventBus.start`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from types import TracebackType
from typing import Any, Literal, cast

import msgspec

from hean.core.events import EventType

__all__ = [
    "BusNotStarted",
    "EventBus",
    "EventStream",
    "OverflowPolicy",
    "StreamClosed",
    "SubscriberKind",
    "SubscriberStats",
    "Subscription",
]

SubscriberKind = Literal["sync", "async", "stream"]

ERROR_LOG_INTERVAL = 10.0
"""At most one "subscriber raised" log line per subscriber per this many seconds."""

_log = logging.getLogger(__name__)


class OverflowPolicy(enum.StrEnum):
    """What a subscriber's queue does when its consumer falls behind (see the module docstring)."""

    DROP_OLDEST = "drop_oldest"
    """Bounded; when full, the oldest queued event is discarded and counted in ``dropped``."""
    DROP_NEWEST = "drop_newest"
    """Bounded; when full, the new event is discarded and counted in ``dropped``."""
    CONFLATE = "conflate"
    """Latest value per ``key(event)``; a replaced event is counted in ``conflated``."""
    NEVER_DROP = "never_drop"
    """Unbounded; past ``maxsize`` an ERROR alarm is logged once per crossing (``alarms``)."""


class BusNotStarted(RuntimeError):
    """``publish()`` on a bus that is not running, with ``on_unstarted="raise"``."""


class StreamClosed(RuntimeError):
    """``EventStream.get()`` on a stream that was closed (or unsubscribed)."""


class SubscriberStats(msgspec.Struct, frozen=True):
    """A snapshot of one subscription's counters (see :meth:`EventBus.stats`)."""

    name: str
    event_type: EventType
    kind: SubscriberKind
    policy: OverflowPolicy | None
    """``None`` for sync callbacks (they are called inline and never queue)."""
    maxsize: int
    """Queue bound (the alarm threshold for ``NEVER_DROP``); 0 for sync callbacks."""
    delivered: int
    dropped: int
    conflated: int
    errors: int
    alarms: int
    depth: int
    max_depth: int


class _Route:
    """Subscribers of one event type, as one tuple that ``deliver`` calls without copying.

    ``targets`` holds the sync callbacks (in subscription order) and then the queue pushes of
    the async subscribers; a push never raises, a callback's exception is caught, counted and
    logged. Up to three targets are called unrolled (no iterator, no loop): that is the common
    case and measurably cheaper per event (docs/benchmarks.md).
    """

    __slots__ = ("arity", "bus", "count", "event_type", "subs", "sync", "targets")

    def __init__(self, bus: EventBus, event_type: EventType) -> None:
        self.bus = bus
        self.event_type = event_type
        # Events published with this type (sync subscribers derive ``delivered`` from it).
        self.count = 0
        self.subs: list[Subscription] = []
        self.sync: tuple[_SyncSubscription, ...] = ()
        self.targets: tuple[Callable[[Any], None], ...] = ()
        self.arity = 0

    def deliver(self, event: Any) -> None:
        """Publish ``event`` to this route's subscribers (the body of ``EventBus.publish``)."""
        if not self.bus._running:
            self.bus._publish_not_running(self.event_type)
        self.count += 1
        arity = self.arity
        if arity == 1:
            (a,) = self.targets
            try:
                a(event)
            except Exception as exc:
                self._callback_failed(a, exc)
        elif arity == 2:
            a, b = self.targets
            try:
                a(event)
            except Exception as exc:
                self._callback_failed(a, exc)
            try:
                b(event)
            except Exception as exc:
                self._callback_failed(b, exc)
        elif arity == 3:
            a, b, c = self.targets
            try:
                a(event)
            except Exception as exc:
                self._callback_failed(a, exc)
            try:
                b(event)
            except Exception as exc:
                self._callback_failed(b, exc)
            try:
                c(event)
            except Exception as exc:
                self._callback_failed(c, exc)
        elif arity:
            for target in self.targets:
                try:
                    target(event)
                except Exception as exc:
                    self._callback_failed(target, exc)

    def _callback_failed(self, target: Callable[[Any], None], exc: Exception) -> None:
        for sub in self.sync:  # the error path only: find whose callback raised
            if sub.callback is target:
                self.bus._report_error(sub, exc, "callback")
                return
        # A queue push raised: a bug in the bus, never the subscriber's doing. Keep the reader
        # alive and say so.
        self.bus._logger.error(
            "EventBus: internal error delivering %s", self.event_type, exc_info=exc
        )

    def rebuild(self) -> None:
        self.sync = tuple(s for s in self.subs if isinstance(s, _SyncSubscription))
        pushes = tuple(s._push for s in self.subs if isinstance(s, _QueuedSubscription))
        self.targets = tuple(s.callback for s in self.sync) + pushes
        self.arity = len(self.targets)


def _wake(waiter: asyncio.Future[None]) -> None:
    """Resolve a consumer's waiter (once); never raises into ``publish``."""
    if not waiter.done():
        try:
            waiter.set_result(None)
        except RuntimeError:  # its loop is closed: nothing is waiting any more
            pass


class Subscription:
    """One subscriber of one event type; returned by the ``subscribe*`` methods of the bus.

    Attributes:
        name: label used in logs and stats.
        event_type: the event type subscribed to.
        policy: overflow policy of the queue (``None`` for sync callbacks).
        maxsize: queue bound (alarm threshold for ``NEVER_DROP``; 0 for sync callbacks).
        kind: ``"sync"``, ``"async"`` or ``"stream"``.
        dropped: events discarded by the overflow policy (or, on unsubscribe, still queued).
        conflated: events replaced by a newer one with the same key (``CONFLATE``).
        errors: exceptions raised by the callback/handler (or by ``key``).
        alarms: times a ``NEVER_DROP`` backlog crossed ``maxsize``.
        max_depth: highest queue depth seen.
    """

    __slots__ = (
        "_active",
        "_bus",
        "_delivered",
        "_err_logged_at",
        "_err_suppressed",
        "alarms",
        "conflated",
        "dropped",
        "errors",
        "event_type",
        "kind",
        "max_depth",
        "maxsize",
        "name",
        "policy",
    )

    def __init__(
        self,
        bus: EventBus,
        event_type: EventType,
        name: str,
        kind: SubscriberKind,
        policy: OverflowPolicy | None,
        maxsize: int,
    ) -> None:
        self._bus = bus
        self._active = True
        self._delivered = 0
        self._err_logged_at: float | None = None
        self._err_suppressed = 0
        self.name = name
        self.event_type = event_type
        self.kind: SubscriberKind = kind
        self.policy = policy
        self.maxsize = maxsize
        self.dropped = 0
        self.conflated = 0
        self.errors = 0
        self.alarms = 0
        self.max_depth = 0

    @property
    def delivered(self) -> int:
        """Events handed to the callback/handler/iterator (including ones that raised)."""
        return self._delivered

    @property
    def depth(self) -> int:
        """Events queued now (always 0 for sync callbacks)."""
        return 0

    @property
    def active(self) -> bool:
        """``False`` once unsubscribed (or, for a stream, closed)."""
        return self._active

    def unsubscribe(self) -> None:
        """Same as ``bus.unsubscribe(self)``."""
        self._bus.unsubscribe(self)

    def snapshot(self) -> SubscriberStats:
        """The current counters, as an immutable :class:`SubscriberStats`."""
        return SubscriberStats(
            name=self.name,
            event_type=self.event_type,
            kind=self.kind,
            policy=self.policy,
            maxsize=self.maxsize,
            delivered=self.delivered,
            dropped=self.dropped,
            conflated=self.conflated,
            errors=self.errors,
            alarms=self.alarms,
            depth=self.depth,
            max_depth=self.max_depth,
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self.event_type.value} {self.kind}"
            f"{'' if self._active else ' inactive'} delivered={self.delivered}"
            f" dropped={self.dropped} depth={self.depth}>"
        )


class _SyncSubscription(Subscription):
    """A callback run inline in ``publish``.

    ``delivered`` is derived from the route's publish count, so the hot path does no per-callback
    bookkeeping.
    """

    __slots__ = ("_base", "_route", "callback")

    def __init__(
        self, bus: EventBus, event_type: EventType, name: str, callback: Callable[[Any], None]
    ) -> None:
        super().__init__(bus, event_type, name, "sync", None, 0)
        self.callback = callback
        self._route: _Route | None = None
        self._base = 0

    def _attach(self, route: _Route) -> None:
        self._route = route
        self._base = route.count

    def _detach(self) -> None:
        route = self._route
        if route is not None:
            self._delivered += route.count - self._base
            self._route = None

    @property
    def delivered(self) -> int:
        route = self._route
        if route is None:
            return self._delivered
        return self._delivered + route.count - self._base


class _QueuedSubscription(Subscription):
    """A subscriber with its own queue: a deque, or an ordered dict by key for ``CONFLATE``."""

    __slots__ = ("_alarmed", "_conflate", "_dq", "_key", "_od", "_push", "_waiter")

    def __init__(
        self,
        bus: EventBus,
        event_type: EventType,
        name: str,
        kind: SubscriberKind,
        policy: OverflowPolicy,
        maxsize: int,
        key: Callable[[Any], Hashable] | None,
    ) -> None:
        super().__init__(bus, event_type, name, kind, policy, maxsize)
        self._conflate = policy is OverflowPolicy.CONFLATE
        self._key: Callable[[Any], Hashable] = key if key is not None else _no_key
        self._alarmed = False
        self._waiter: asyncio.Future[None] | None = None
        self._od: OrderedDict[Hashable, Any] = OrderedDict()
        bound = maxsize if policy is OverflowPolicy.DROP_OLDEST else None
        self._dq: deque[Any] = deque(maxlen=bound)
        push: Callable[[Any], None]
        if policy is OverflowPolicy.DROP_OLDEST:
            push = self._push_drop_oldest
        elif policy is OverflowPolicy.DROP_NEWEST:
            push = self._push_drop_newest
        elif policy is OverflowPolicy.CONFLATE:
            push = self._push_conflate
        else:
            push = self._push_never_drop
        self._push = push

    # -- producer side (called from publish; must never raise) --------------------------------

    def _push_drop_oldest(self, event: Any) -> None:
        dq = self._dq
        n = len(dq)
        if n >= self.maxsize:
            self.dropped += 1  # the deque's maxlen discards the oldest on append
        elif n >= self.max_depth:
            self.max_depth = n + 1
        dq.append(event)
        w = self._waiter
        if w is not None:
            self._waiter = None
            _wake(w)

    def _push_drop_newest(self, event: Any) -> None:
        dq = self._dq
        n = len(dq)
        if n >= self.maxsize:
            self.dropped += 1
            return
        if n >= self.max_depth:
            self.max_depth = n + 1
        dq.append(event)
        w = self._waiter
        if w is not None:
            self._waiter = None
            _wake(w)

    def _push_conflate(self, event: Any) -> None:
        od = self._od
        try:
            k = self._key(event)
            if k in od:
                od[k] = event  # keeps the key's place in the queue
                self.conflated += 1
                return
        except Exception as exc:
            self.dropped += 1
            self._bus._report_error(self, exc, "key")
            return
        n = len(od)
        if n >= self.maxsize:
            od.popitem(last=False)
            self.dropped += 1
        elif n >= self.max_depth:
            self.max_depth = n + 1
        od[k] = event
        w = self._waiter
        if w is not None:
            self._waiter = None
            _wake(w)

    def _push_never_drop(self, event: Any) -> None:
        dq = self._dq
        dq.append(event)
        n = len(dq)
        if n > self.max_depth:
            self.max_depth = n
        if n > self.maxsize and not self._alarmed:
            self._alarm(n)
        w = self._waiter
        if w is not None:
            self._waiter = None
            _wake(w)

    def _alarm(self, depth: int) -> None:
        self._alarmed = True
        self.alarms += 1
        self._bus._logger.error(
            "EventBus: NEVER_DROP subscriber %r (%s) is %d events behind (maxsize %d): its "
            "consumer is too slow; nothing is dropped, memory grows until it catches up",
            self.name,
            self.event_type.value,
            depth,
            self.maxsize,
        )

    # -- consumer side -------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._od) if self._conflate else len(self._dq)

    def _pop(self) -> Any:
        ev = self._od.popitem(last=False)[1] if self._conflate else self._dq.popleft()
        self._delivered += 1
        if self._alarmed:
            self._maybe_rearm()
        return ev

    def _take_all(self) -> list[Any]:
        if self._conflate:
            items = list(self._od.values())
            self._od.clear()
        else:
            items = list(self._dq)
            self._dq.clear()
        self._delivered += len(items)
        if self._alarmed:
            self._maybe_rearm()
        return items

    def _maybe_rearm(self) -> None:
        depth = self.depth
        if depth * 2 < self.maxsize:
            self._alarmed = False
            self._bus._logger.info(
                "EventBus: NEVER_DROP subscriber %r (%s) caught up (depth %d)",
                self.name,
                self.event_type.value,
                depth,
            )

    def _discard_queued(self) -> None:
        """On unsubscribe: what is still queued will never be delivered, so count it dropped."""
        self.dropped += self.depth
        self._od.clear()
        self._dq.clear()
        w = self._waiter
        if w is not None:
            self._waiter = None
            _wake(w)


class _AsyncSubscription(_QueuedSubscription):
    """A queue drained by its own task, which awaits the handler."""

    __slots__ = ("_batch", "_drained", "_handler", "_task")

    def __init__(
        self,
        bus: EventBus,
        event_type: EventType,
        name: str,
        handler: Callable[[Any], Awaitable[None]],
        policy: OverflowPolicy,
        maxsize: int,
        key: Callable[[Any], Hashable] | None,
        batch: bool,
    ) -> None:
        super().__init__(bus, event_type, name, "async", policy, maxsize, key)
        self._handler = handler
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    @property
    def idle(self) -> bool:
        """The consumer is waiting for events with an empty queue."""
        return self._waiter is not None and not self.depth

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        handler = self._handler
        while self._active:
            if not self.depth:
                d = self._drained
                if d is not None:
                    self._drained = None
                    _wake(d)
                w = loop.create_future()
                self._waiter = w
                try:
                    await w
                finally:
                    if self._waiter is w:
                        self._waiter = None
                continue
            if self._batch:
                await self._call(handler, self._take_all())
            else:
                # Deliver what is queued now, then yield once if more arrived meanwhile, so a
                # handler that never suspends (or republishes) cannot starve the loop.
                for _ in range(self.depth):
                    if not self.depth:
                        break
                    await self._call(handler, self._pop())
            if self.depth:
                await asyncio.sleep(0)

    async def _call(self, handler: Callable[[Any], Awaitable[None]], arg: Any) -> None:
        try:
            await handler(arg)
        except Exception as exc:
            self._bus._report_error(self, exc, "handler")
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise
            # The handler itself raised CancelledError (e.g. from a cancelled inner future):
            # an error of that handler, not a request to stop this consumer.
            self._bus._report_error(self, exc, "handler")


class EventStream(_QueuedSubscription):
    """An async-iterator subscription: ``async for ev in bus.stream(EventType.TICK): ...``.

    The iterating code is the consumer; no task is needed and the bus need not be running.
    ``close()`` unsubscribes: any iteration in progress ends, and ``get()`` raises
    :class:`StreamClosed`. Usable as a (sync or async) context manager that closes on exit.
    """

    __slots__ = ()

    async def get(self) -> Any:
        """Wait for and return the next event.

        Raises:
            StreamClosed: the stream is closed and nothing is left to return.
        """
        while True:
            if self.depth:
                return self._pop()
            if not self._active:
                raise StreamClosed(f"stream {self.name!r} is closed")
            w = self._waiter
            if w is None:
                w = asyncio.get_running_loop().create_future()
                self._waiter = w
                try:
                    await w
                finally:
                    if self._waiter is w:
                        self._waiter = None
            else:
                # Another task is already waiting on this stream: share its waiter without
                # letting our cancellation cancel it (and vice versa).
                try:
                    await asyncio.shield(w)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is None or task.cancelling() or not w.cancelled():
                        raise

    def get_nowait(self) -> Any:
        """Return the next queued event without waiting.

        Raises:
            asyncio.QueueEmpty: nothing is queued.
        """
        if not self.depth:
            raise asyncio.QueueEmpty
        return self._pop()

    def close(self) -> None:
        """Unsubscribe; idempotent. Events still queued are discarded (counted in ``dropped``)."""
        self._bus.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Any]:
        """``async for ev in stream``: the stream is closed (unsubscribed) when the loop ends,
        by ``break``, ``return`` or an exception as well as by the stream closing, so a
        forgotten stream does not keep queueing events (one iterating consumer per stream)."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        try:
            while True:
                try:
                    event = await self.get()
                except StreamClosed:
                    return
                yield event
        finally:
            self.close()

    async def __anext__(self) -> Any:
        try:
            return await self.get()
        except StreamClosed:
            raise StopAsyncIteration from None

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _no_key(event: Any) -> Hashable:
    raise TypeError("no key function")  # only CONFLATE uses the key, and it requires one


def _callable_name(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


class EventBus:
    """Routes published events to sync callbacks, async handlers and streams.

    Args:
        on_unstarted: what ``publish()`` does while the bus is not running (never started, or
            stopped): ``"warn"`` logs one WARNING and emits one :class:`RuntimeWarning` per
            not-running period, then delivers anyway (sync callbacks run; async subscribers
            queue, bounded by their policy, and receive the events once :meth:`start` runs);
            ``"raise"`` raises :class:`BusNotStarted` and delivers nothing.
        default_maxsize: queue bound for subscriptions that do not give ``maxsize``.
        logger: where subscriber errors, alarms and warnings are logged.
        monotonic: clock used to rate-limit error logs (injectable for tests).
    """

    __slots__ = (
        "_default_maxsize",
        "_logger",
        "_loop",
        "_monotonic",
        "_on_unstarted",
        "_routes",
        "_running",
        "_started_once",
        "_stopping",
        "_subs",
        "_warned",
    )

    def __init__(
        self,
        *,
        on_unstarted: Literal["warn", "raise"] = "warn",
        default_maxsize: int = 1024,
        logger: logging.Logger | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if on_unstarted not in ("warn", "raise"):
            raise ValueError(f"on_unstarted must be 'warn' or 'raise', not {on_unstarted!r}")
        if default_maxsize < 1:
            raise ValueError(f"default_maxsize must be >= 1, not {default_maxsize}")
        self._on_unstarted = on_unstarted
        self._default_maxsize = default_maxsize
        self._logger = logger if logger is not None else _log
        self._monotonic = monotonic
        self._routes: dict[EventType, _Route] = {}
        self._subs: list[Subscription] = []
        self._running = False
        self._started_once = False
        self._warned = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Future[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """``True`` between :meth:`start` and :meth:`stop`."""
        return self._running

    async def start(self) -> None:
        """Start one consumer task per async subscription (and for ones added later).

        Events queued while the bus was not running are delivered now. Idempotent.
        """
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._started_once = True
        self._warned = False
        for sub in self._subs:
            if isinstance(sub, _AsyncSubscription):
                self._start_task(sub)

    async def stop(self, *, drain_timeout: float = 1.0) -> None:
        """Let consumers drain their queues (for up to ``drain_timeout`` s), then cancel them.

        Events still queued after the timeout stay queued (and are delivered after a later
        :meth:`start`). Streams are not closed. Idempotent; concurrent calls wait for the first.
        """
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        if not self._running:
            return
        loop = asyncio.get_running_loop()
        stopping: asyncio.Future[None] = loop.create_future()
        self._stopping = stopping
        subs = [s for s in self._subs if isinstance(s, _AsyncSubscription) and s._task is not None]
        try:
            drained: list[asyncio.Future[None]] = []
            for s in subs:
                if not s.idle:
                    f: asyncio.Future[None] = loop.create_future()
                    s._drained = f
                    drained.append(f)
            if drained:
                _, pending = await asyncio.wait(drained, timeout=max(0.0, drain_timeout))
                if pending:
                    self._logger.warning(
                        "EventBus.stop(): %d consumer(s) did not drain within %.3g s; "
                        "cancelling them (undelivered events stay queued)",
                        len(pending),
                        drain_timeout,
                    )
        finally:
            self._running = False
            self._warned = False
            tasks: list[asyncio.Task[None]] = []
            for s in subs:
                s._drained = None
                task, s._task = s._task, None
                if task is not None and not task.done():
                    task.cancel()
                    tasks.append(task)
            try:
                if tasks:
                    _, stuck = await asyncio.wait(tasks, timeout=max(0.1, drain_timeout))
                    if stuck:
                        self._logger.warning(
                            "EventBus.stop(): %d consumer task(s) ignored cancellation",
                            len(stuck),
                        )
            finally:
                self._stopping = None
                stopping.set_result(None)

    def _start_task(self, sub: _AsyncSubscription) -> None:
        loop = self._loop
        assert loop is not None
        if sub._task is None or sub._task.done():
            sub._task = loop.create_task(sub._run(), name=f"EventBus:{sub.name}")

    # -- subscribing ---------------------------------------------------------------------------

    def subscribe(
        self, event_type: EventType, callback: Callable[[Any], None], *, name: str | None = None
    ) -> Subscription:
        """Call ``callback(event)`` inline inside every ``publish(event_type, ...)``.

        For the hot path: the callback must be fast and must not block. If it raises, the error
        is counted and logged (at most once per 10 s per subscriber) and the other subscribers
        still run.

        Args:
            event_type: the event type to receive.
            callback: a plain (non-async) callable.
            name: label for logs and stats (default: the callback's qualified name).

        Returns:
            The subscription (pass it to :meth:`unsubscribe`).
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        sub = _SyncSubscription(self, event_type, name or _callable_name(callback), callback)
        route = self._route(event_type)
        sub._attach(route)
        self._add(route, sub)
        return sub

    def subscribe_async(
        self,
        event_type: EventType,
        handler: Callable[[Any], Awaitable[None]] | Callable[[list[Any]], Awaitable[None]],
        *,
        maxsize: int | None = None,
        policy: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
        key: Callable[[Any], Hashable] | None = None,
        batch: bool = False,
        name: str | None = None,
    ) -> Subscription:
        """Await ``handler`` from the subscription's own task for events of ``event_type``.

        Events wait in a queue bounded by ``maxsize`` and managed by ``policy``; ``publish``
        never waits for the handler. The task runs while the bus runs; events published before
        :meth:`start` are queued and delivered once it starts.

        Args:
            event_type: the event type to receive.
            handler: ``async def handler(event)``, or with ``batch=True``
                ``async def handler(events: list)``. Exceptions are counted and logged; the task
                keeps running.
            maxsize: queue bound (alarm threshold for ``NEVER_DROP``); default
                ``default_maxsize``.
            policy: what to do when the queue is full (see :class:`OverflowPolicy`).
            key: ``key(event)`` for ``CONFLATE`` (required there, rejected elsewhere).
            batch: if true the handler gets a list of everything queued when it wakes (one call
                per burst/socket read) instead of one call per event; an exception counts as
                one error for the batch.
            name: label for logs and stats (default: the handler's qualified name).

        Returns:
            The subscription (pass it to :meth:`unsubscribe`).

        Raises:
            ValueError: bad ``maxsize``, or ``key`` missing for ``CONFLATE`` / given otherwise.
        """
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        policy, size = self._check_queue_args(policy, maxsize, key)
        sub = _AsyncSubscription(
            self,
            event_type,
            name or _callable_name(handler),
            cast(Callable[[Any], Awaitable[None]], handler),
            policy,
            size,
            key,
            batch,
        )
        self._add(self._route(event_type), sub)
        if self._running:
            self._start_task(sub)
        return sub

    def stream(
        self,
        event_type: EventType,
        *,
        maxsize: int | None = None,
        policy: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
        key: Callable[[Any], Hashable] | None = None,
        name: str | None = None,
    ) -> EventStream:
        """Subscribe with a queue that the caller consumes by iterating.

        Example::

            async with bus.stream(EventType.TICK, policy=OverflowPolicy.CONFLATE,
                                  key=lambda ev: ev.symbol) as ticks:
                async for tick in ticks:
                    ...

        Args:
            event_type: the event type to receive.
            maxsize: queue bound; default ``default_maxsize``.
            policy: what to do when the queue is full (see :class:`OverflowPolicy`).
            key: ``key(event)`` for ``CONFLATE`` (required there, rejected elsewhere).
            name: label for logs and stats (default ``stream:<event_type>``).

        Returns:
            The stream; ``close()`` it (or use it as a context manager) when done.
        """
        policy, size = self._check_queue_args(policy, maxsize, key)
        sub = EventStream(
            self, event_type, name or f"stream:{event_type.value}", "stream", policy, size, key
        )
        self._add(self._route(event_type), sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``; idempotent.

        An async subscription's task is cancelled; events still queued for it are discarded and
        counted in ``dropped``. A stream is closed (its iteration ends).
        """
        if not sub._active or sub._bus is not self:
            return
        sub._active = False
        route = self._routes.get(sub.event_type)
        if route is not None and sub in route.subs:
            route.subs.remove(sub)
            route.rebuild()
        if sub in self._subs:
            self._subs.remove(sub)
        if isinstance(sub, _SyncSubscription):
            sub._detach()
        elif isinstance(sub, _QueuedSubscription):
            sub._discard_queued()
            if isinstance(sub, _AsyncSubscription):
                d, sub._drained = sub._drained, None
                if d is not None:
                    _wake(d)
                task, sub._task = sub._task, None
                if task is not None:
                    task.cancel()

    def _check_queue_args(
        self,
        policy: OverflowPolicy,
        maxsize: int | None,
        key: Callable[[Any], Hashable] | None,
    ) -> tuple[OverflowPolicy, int]:
        policy = OverflowPolicy(policy)
        size = self._default_maxsize if maxsize is None else maxsize
        if size < 1:
            raise ValueError(f"maxsize must be >= 1, not {size}")
        if policy is OverflowPolicy.CONFLATE:
            if key is None:
                raise ValueError("OverflowPolicy.CONFLATE needs key= (e.g. lambda ev: ev.symbol)")
            if not callable(key):
                raise TypeError(f"key must be callable, not {key!r}")
        elif key is not None:
            raise ValueError(f"key= is only used with OverflowPolicy.CONFLATE, not {policy}")
        return policy, size

    def _route(self, event_type: EventType) -> _Route:
        route = self._routes.get(event_type)
        if route is None:
            event_type = EventType(event_type)
            route = self._routes[event_type] = _Route(self, event_type)
        return route

    def _add(self, route: _Route, sub: Subscription) -> None:
        route.subs.append(sub)
        route.rebuild()
        self._subs.append(sub)

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, event_type: EventType, event: Any) -> None:
        """Deliver ``event`` to every subscriber of ``event_type``; never blocks or awaits.

        Sync callbacks run inline (an exception is logged and counted, never raised); async
        subscribers and streams get the event appended to their queue (by their policy) and
        their consumer is woken at most once per event-loop iteration.

        Raises:
            BusNotStarted: the bus is not running and ``on_unstarted="raise"``.
        """
        route = self._routes.get(event_type)
        if route is None:
            if not self._running:
                self._publish_not_running(event_type)
            return
        route.deliver(event)

    def publisher(self, event_type: EventType) -> Callable[[Any], None]:
        """A function that publishes events of ``event_type``: ``publisher(t)(ev)`` is
        ``publish(t, ev)`` with the routing done once, for producers on the hot path.

        Subscriptions added or removed later are seen by the returned function.
        """
        return self._route(event_type).deliver

    def _publish_not_running(self, event_type: EventType) -> None:
        when = "after stop()" if self._started_once else "before start()"
        if self._on_unstarted == "raise":
            raise BusNotStarted(
                f"EventBus.publish({event_type}) {when}: the bus is not running; "
                "call `await bus.start()` first"
            )
        if self._warned:
            return
        self._warned = True
        msg = (
            f"EventBus.publish({event_type}) {when}: async subscribers will receive nothing "
            "until start() is called; events are queued (bounded by each subscriber's policy) "
            "and sync callbacks still run. Call `await bus.start()`."
        )
        self._logger.warning("%s", msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def _report_error(self, sub: Subscription, exc: BaseException, what: str) -> None:
        sub.errors += 1
        now = self._monotonic()
        last = sub._err_logged_at
        if last is not None and now - last < ERROR_LOG_INTERVAL:
            sub._err_suppressed += 1
            return
        suppressed = sub._err_suppressed
        sub._err_suppressed = 0
        sub._err_logged_at = now
        self._logger.warning(
            "EventBus: %s subscriber %r (%s) %s raised %s: %s (errors=%d%s)",
            sub.kind,
            sub.name,
            sub.event_type.value,
            what,
            type(exc).__name__,
            exc,
            sub.errors,
            f", {suppressed} not logged in the last {ERROR_LOG_INTERVAL:g} s" if suppressed else "",
        )
        if self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug("EventBus: traceback for %r", sub.name, exc_info=exc)

    # -- introspection -------------------------------------------------------------------------

    def stats(self) -> list[SubscriberStats]:
        """A snapshot of every current subscription's counters, in subscription order."""
        return [s.snapshot() for s in self._subs]

    def __repr__(self) -> str:
        return f"<EventBus running={self._running} subscriptions={len(self._subs)}>"
