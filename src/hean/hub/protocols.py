"""The two interfaces a hub offers, implemented by :class:`~hean.hub.StreamHub` (in process) and
:class:`~hean.remote.RemoteHub` (fed by a ``hean gateway`` through Redis).

* :class:`MarketDataHub` is what application code uses: ``consumer()``, ``ticker()``,
  ``orderbook()``, ``connections()`` (for the health layer), ``topic_live()``, ``clock``.
  :class:`~hean.hub.PriceFeed` takes one; code typed against it moves from in-process to remote by
  changing the one constructor (``StreamHub(...)`` -> ``RemoteHub(...)``), nothing else.
* :class:`ConsumerHost` is what a :class:`~hean.hub.Consumer` asks of the hub that made it:
  holding and releasing topics, their statuses, waiting for answers, leaving. Applications call
  the consumer's methods, not these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hean.core.clock import Clock
    from hean.exchange.bybit.state.orderbook import OrderBook
    from hean.exchange.bybit.state.tickers import TickerState
    from hean.hub.hub import Consumer

__all__ = ["ConsumerHost", "MarketDataHub"]


class ConsumerHost(Protocol):
    """The hub side of a :class:`~hean.hub.Consumer` (see the module docstring)."""

    @property
    def clock(self) -> Clock: ...

    def hold(self, consumer: Consumer, category: str, topics: list[str]) -> None:
        """``consumer`` holds ``topics`` of ``category`` (the first holder subscribes them; a
        later one gets the current state replayed).

        Raises:
            ValueError: a topic this hub cannot carry.
        """
        ...

    async def release(self, consumer: Consumer, category: str, topics: list[str]) -> None:
        """``consumer`` no longer holds ``topics`` (the last holder's release unsubscribes)."""
        ...

    async def detach(self, consumer: Consumer) -> None:
        """``consumer`` closes: release everything it holds and forget it."""
        ...

    async def wait_answered(self, category: str, topics: list[str], timeout: float) -> None:
        """Until every topic is confirmed or rejected, at most ``timeout`` seconds."""
        ...

    def topic_statuses(self, category: str, topics: list[str]) -> dict[str, str]:
        """``pending``, ``confirmed``, ``rejected`` or ``unsubscribed`` per topic."""
        ...

    def held_by(self, consumer: Consumer) -> dict[str, frozenset[str]]:
        """The topics ``consumer`` holds, per category."""
        ...

    def ticker(self, symbol: str, *, category: str = "linear") -> TickerState | None: ...

    def orderbook(
        self, symbol: str, depth: int | None = None, *, category: str = "linear"
    ) -> OrderBook | None: ...


class MarketDataHub(ConsumerHost, Protocol):
    """A hub as application code sees it (see the module docstring)."""

    def consumer(self, name: str, *, maxsize: int | None = None) -> Consumer:
        """A new consumer named ``name`` (raises ``ValueError`` if one is open)."""
        ...

    def connections(self, category: str | None = None) -> Sequence[Any]:
        """The connections (or links) carrying data, for ``HealthMonitor(discover=...)``."""
        ...

    def topic_live(self, topic: str, *, category: str = "linear") -> bool:
        """Whether the connection carrying ``topic`` is live now (its prices are current)."""
        ...

    async def close(self) -> None: ...
