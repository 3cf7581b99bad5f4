"""A connect gate for :class:`BybitPublicWebSocket`, until the exchange layer has its own hook.

The hub needs every connection attempt (the first connect and every reconnect the session
schedules) to wait for a slot of the process-wide :class:`~hean.hub.ratelimit.ConnectionRateLimiter`
first. The hook it is written against is::

    WsConnection(..., connect_gate: Callable[[], Awaitable[None]] | None = None)
    BybitPublicWebSocket(..., connect_gate: Callable[[], Awaitable[None]] | None = None)

``connect_gate`` is awaited at the start of each connection attempt, before the TCP connect and
the handshake, and outside ``connect_timeout``; if the attempt is cancelled while waiting (a
``disconnect()``), the session is told ``connect_failed("stop")`` exactly as when a handshake is
cancelled; if the gate raises, the attempt fails with reason ``connect_gate``.

Until that parameter exists in ``hean.exchange``, :class:`GatedPublicWebSocket` provides it by
composition: it builds the normal facade, then swaps in a :class:`GatedWsConnection` (a
:class:`WsConnection` whose ``_connect`` awaits the gate first). Nothing has been started at that
point, so the swap is free. Once the exchange layer takes the parameter this module reduces to
``GatedPublicWebSocket = BybitPublicWebSocket``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hean.core.clock import Clock
from hean.exchange.bybit.transport import WsConnection
from hean.exchange.bybit.ws_public import BybitPublicWebSocket, EventSink

if TYPE_CHECKING:
    from hean.hub.ratelimit import ConnectionRateLimiter

__all__ = ["ConnectGate", "GatedPublicWebSocket", "GatedWsConnection", "RateGate"]

log = logging.getLogger("hean.hub")

ConnectGate = Callable[[], Awaitable[None]]
"""Awaited before every connection attempt (waits for a rate-limit slot)."""


class GatedWsConnection(WsConnection):
    """A :class:`WsConnection` that awaits ``connect_gate`` before each connection attempt."""

    def __init__(self, *args: Any, connect_gate: ConnectGate | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connect_gate = connect_gate

    async def _connect(self, url: str) -> None:
        gate = self.connect_gate
        if gate is not None:
            try:
                await gate()
            except asyncio.CancelledError:
                self.run_actions(self.session.connect_failed("stop", self._monotonic()))
                raise
            except Exception as exc:
                log.warning("%s: connect gate failed: %r", self.name, exc)
                self.run_actions(self.session.connect_failed("connect_gate", self._monotonic()))
                return
        await super()._connect(url)


_NATIVE_GATE = "connect_gate" in inspect.signature(BybitPublicWebSocket.__init__).parameters


class GatedPublicWebSocket(BybitPublicWebSocket):
    """:class:`BybitPublicWebSocket` with a ``connect_gate`` (see the module docstring)."""

    def __init__(
        self,
        bus: EventSink,
        category: str = "linear",
        *,
        connect_gate: ConnectGate | None = None,
        **kwargs: Any,
    ) -> None:
        if _NATIVE_GATE:  # the exchange layer has the hook: use it as is
            native_init: Any = super().__init__
            native_init(bus, category, connect_gate=connect_gate, **kwargs)
            return
        super().__init__(bus, category, **kwargs)
        if connect_gate is None:
            return
        old = self.connection
        self.connection = GatedWsConnection(
            old.session,
            old.publish,
            old.clock,
            connect_timeout=old.connect_timeout,
            close_timeout=old.close_timeout,
            max_message_size=old.max_message_size,
            ssl_context=old.ssl_context,
            connect_gate=connect_gate,
        )


class RateGate:
    """The asyncio side of a :class:`~hean.hub.ratelimit.ConnectionRateLimiter`.

    Waiters go through one at a time (FIFO): each reserves its slot at the moment it reaches
    the front, sleeps until the slot, and lets the next one in. Reserving at the front, not on
    arrival, matters when the event loop stalls: slots reserved on arrival would all fall due
    together after the stall and go out at once; here, after a stall, at most the bucket's burst
    (plus the one that was already sleeping) goes out together.
    """

    __slots__ = ("_lock", "clock", "limiter", "waits")

    def __init__(self, limiter: ConnectionRateLimiter, clock: Clock) -> None:
        self.limiter = limiter
        self.clock = clock
        self.waits = 0
        self._lock: asyncio.Lock | None = None

    async def wait(self) -> float:
        """Wait for a slot; returns the seconds waited after reaching the front."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            delay = self.limiter.reserve(self.clock.monotonic())
            if delay > 0:
                self.waits += 1
                await self.clock.sleep(delay)
            return delay
