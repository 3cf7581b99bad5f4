"""``PriceFeed``: last price, bid and ask per symbol, with age and a stale flag, from the hub.

Strategies, routers and risk checks read prices from one feed (or several feeds on one hub)
instead of opening sockets of their own::

    feed = PriceFeed(hub, category="linear", stale_after=5.0)
    await feed.track(["BTCUSDT", "ETHUSDT"])
    p = feed.price("BTCUSDT")          # Price(last, bid, ask, exchange_ts, age, stale) or None
    if p is None or p.stale:
        p = await feed.wait_fresh("BTCUSDT", timeout=2.0)

``price()`` reads the hub's merged state directly (no queue, no copy): it is as fresh as the
last message read from the socket. A price is **stale** when its newest input is older than
``stale_after`` seconds or when the connection carrying it is not live (a dropped connection
makes every price on it stale at once, not ``stale_after`` later).

Spot tickers carry no bid/ask, so on spot the feed also holds ``orderbook.1.<symbol>`` and takes
bid/ask from its top of book (``use_book``; default on for spot only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from hean.core.events import EventType
from hean.exchange.bybit.endpoints import validate_category
from hean.hub.hub import Consumer
from hean.hub.protocols import MarketDataHub

__all__ = ["Price", "PriceFeed"]


@dataclass(frozen=True, slots=True)
class Price:
    """One symbol's price as of a moment."""

    symbol: str
    category: str
    last: float | None
    bid: float | None
    ask: float | None
    exchange_ts: int
    """Exchange time of the newest input (``ts``), Unix ms."""
    received_at: float
    """Local monotonic time the *oldest* input used was received (bounds ``age``)."""
    age: float
    """Seconds since ``received_at``."""
    stale: bool
    """``age > stale_after``, or the connection is not live."""
    live: bool
    """The connection carrying the price is live."""

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2.0

    @property
    def spread(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return self.ask - self.bid


class PriceFeed:
    """Prices of one category's symbols, from a shared hub.

    Args:
        hub: the hub whose connections carry the data: a :class:`~hean.hub.StreamHub` in this
            process or a :class:`~hean.remote.RemoteHub` fed by a gateway (any
            :class:`~hean.hub.protocols.MarketDataHub`).
        category: ``linear``, ``inverse``, ``spot`` or ``option``.
        stale_after: seconds after which a price is stale.
        use_book: take bid/ask from ``orderbook.1`` (default: only on spot, whose tickers have
            no bid/ask).
        name: the feed's consumer name (default ``price-feed/<category>``).
    """

    def __init__(
        self,
        hub: MarketDataHub,
        *,
        category: str = "linear",
        stale_after: float = 5.0,
        use_book: bool | None = None,
        name: str | None = None,
    ) -> None:
        if not stale_after > 0:
            raise ValueError(f"stale_after must be > 0, got {stale_after!r}")
        self.hub = hub
        self.category = validate_category(category)
        self.stale_after = float(stale_after)
        self.use_book = (category == "spot") if use_book is None else use_book
        self.consumer: Consumer = hub.consumer(name or f"price-feed/{category}")
        self._symbols: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.consumer.on_inline(EventType.TICK, self._on_event, name=f"{self.consumer.name}:wake")
        if self.use_book:
            self.consumer.on_inline(
                EventType.ORDERBOOK, self._on_event, name=f"{self.consumer.name}:wake-book"
            )
        # a price can turn fresh without new data: its connection (or a remote hub's link)
        # going live
        self.consumer.on_inline(
            EventType.CONNECTION_STATE, self._on_state, name=f"{self.consumer.name}:wake-state"
        )

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._symbols)

    def _topics(self, symbol: str) -> list[str]:
        topics = [f"tickers.{symbol}"]
        if self.use_book:
            topics.append(f"orderbook.1.{symbol}")
        return topics

    async def track(self, symbols: Iterable[str], *, wait: float | None = None) -> dict[str, str]:
        """Start following ``symbols`` (returns topic statuses, see ``Consumer.subscribe``)."""
        if isinstance(symbols, str):
            symbols = [symbols]
        new = [s for s in dict.fromkeys(symbols) if s not in self._symbols]
        topics = [t for s in new for t in self._topics(s)]
        statuses = await self.consumer.subscribe(topics, category=self.category, wait=wait)
        self._symbols.update(new)
        return statuses

    async def untrack(self, symbols: Iterable[str]) -> None:
        if isinstance(symbols, str):
            symbols = [symbols]
        gone = [s for s in symbols if s in self._symbols]
        self._symbols.difference_update(gone)
        await self.consumer.unsubscribe(
            [t for s in gone for t in self._topics(s)], category=self.category
        )

    def price(self, symbol: str) -> Price | None:
        """The current price of ``symbol`` (``None`` if nothing has been received for it)."""
        if symbol not in self._symbols:
            return None
        hub = self.hub
        ticker = hub.ticker(symbol, category=self.category)
        book = hub.orderbook(symbol, 1, category=self.category) if self.use_book else None
        if book is not None and (not book.valid or book.recv_time is None):
            book = None
        if (ticker is None or ticker.updated_at is None) and book is None:
            return None
        times: list[float] = []
        last = bid = ask = None
        exchange_ts = 0
        if ticker is not None and ticker.updated_at is not None:
            times.append(ticker.updated_at)
            last, bid, ask = ticker.last_price, ticker.bid, ticker.ask
            exchange_ts = ticker.exchange_ts
        if book is not None:
            assert book.recv_time is not None
            times.append(book.recv_time)
            bid = float(book.best_bid[0]) if book.best_bid is not None else None
            ask = float(book.best_ask[0]) if book.best_ask is not None else None
            if book.exchange_ts is not None and book.exchange_ts > exchange_ts:
                exchange_ts = book.exchange_ts
        received_at = min(times)
        age = max(0.0, hub.clock.monotonic() - received_at)
        live = self._live(symbol)
        return Price(
            symbol=symbol,
            category=self.category,
            last=last,
            bid=bid,
            ask=ask,
            exchange_ts=exchange_ts,
            received_at=received_at,
            age=age,
            stale=age > self.stale_after or not live,
            live=live,
        )

    def is_fresh(self, symbol: str) -> bool:
        p = self.price(symbol)
        return p is not None and not p.stale

    def _live(self, symbol: str) -> bool:
        return self.hub.topic_live(f"tickers.{symbol}", category=self.category)

    async def wait_fresh(self, symbol: str, timeout: float = 10.0) -> Price:
        """Return ``symbol``'s price as soon as it is fresh (tracking it if needed).

        Raises:
            TimeoutError: no fresh price within ``timeout`` seconds.
        """
        if symbol not in self._symbols:
            await self.track([symbol])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            p = self.price(symbol)
            if p is not None and not p.stale:
                return p
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"no fresh price for {symbol} ({self.category}) within {timeout:g}s"
                    + ("" if p is None else f" (last one {p.age:.3f}s old, live={p.live})")
                )
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(symbol, []).append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                pass
            finally:
                waiting = self._waiters.get(symbol)
                if waiting is not None:
                    if fut in waiting:
                        waiting.remove(fut)
                    if not waiting:
                        del self._waiters[symbol]

    def _on_event(self, event: Any) -> None:
        waiting = self._waiters.get(event.symbol)
        if waiting:
            for fut in waiting:
                if not fut.done():
                    fut.set_result(None)

    def _on_state(self, event: Any) -> None:
        for waiting in self._waiters.values():
            for fut in waiting:
                if not fut.done():
                    fut.set_result(None)

    async def close(self) -> None:
        """Release the feed's topics (other consumers keep theirs)."""
        self._symbols.clear()
        await self.consumer.close()

    async def __aenter__(self) -> PriceFeed:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<PriceFeed {self.category} symbols={len(self._symbols)}>"
