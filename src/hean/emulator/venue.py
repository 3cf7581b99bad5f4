"""The venue without sockets: every category's market and feed, plus ground-truth views.

:class:`Venue` is what :class:`~hean.emulator.server.Emulator` delegates market work to. The
"truth" methods read the *true* market, which wire faults never touch: compare a client's state
with them at a quiet point (``auto_tick=False``, after :meth:`Venue.flush`).
"""

from __future__ import annotations

import random

from hean.core.clock import Clock
from hean.emulator.config import EmulatorConfig
from hean.emulator.feeds import CategoryFeed, FeedHub
from hean.emulator.market import Market, SymbolMarket

__all__ = ["BookSide", "MarketAPI", "Venue"]

#: one side of a book: ``(price, size)`` strings, best first
BookSide = list[tuple[str, str]]


class Venue:
    """Markets and feeds of every category of a config."""

    def __init__(self, hub: FeedHub, config: EmulatorConfig, clock: Clock) -> None:
        start_ms = clock.wall_ms()
        self.market = Market(
            config.symbols, random.Random(config.seed), start_ms, config.market, lazy=True
        )
        self.feeds: dict[str, CategoryFeed] = {
            category: CategoryFeed(hub, category, self.market, config, start_ms)
            for category in self.market.categories()
        }

    def feed(self, category: str) -> CategoryFeed:
        try:
            return self.feeds[category]
        except KeyError:
            known = ", ".join(self.feeds) or "none"
            raise KeyError(f"no market data for category {category!r}; have: {known}") from None

    def _chosen(self, category: str | None) -> list[CategoryFeed]:
        return list(self.feeds.values()) if category is None else [self.feed(category)]

    def tick(self, category: str | None = None, steps: int = 1) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        for feed in self._chosen(category):
            feed.tick(steps)

    def step(self, category: str | None = None, quanta: int = 1) -> None:
        if isinstance(quanta, bool) or not isinstance(quanta, int) or quanta < 0:
            raise ValueError(f"quanta must be an int >= 0, got {quanta!r}")
        for feed in self._chosen(category):
            for _ in range(quanta):
                feed.step()

    def flush(self, category: str | None = None) -> None:
        for feed in self._chosen(category):
            feed.flush()

    def symbol(self, category: str, symbol: str) -> SymbolMarket:
        """A symbol's market (started now if it was not in use yet)."""
        return self.feed(category).activate(symbol)

    # -- ground truth -------------------------------------------------------------------------

    def ticker_truth(self, category: str, symbol: str) -> dict[str, str]:
        feed = self.feed(category)
        feed.activate(symbol)
        return feed.tickers[symbol].snapshot()

    def book_truth(
        self, category: str, symbol: str, depth: int | None = None
    ) -> tuple[BookSide, BookSide]:
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or depth < 1
        ):
            raise ValueError(f"depth must be an int >= 1 or None, got {depth!r}")
        return self.symbol(category, symbol).book_levels(depth)

    def trades_truth(
        self, category: str, symbol: str, limit: int | None = None
    ) -> list[dict[str, object]]:
        return self.symbol(category, symbol).recent_trades(limit)

    def liquidations_truth(self, category: str, symbol: str) -> list[dict[str, object]]:
        return [dict(x) for x in self.symbol(category, symbol).liquidations]

    def published_book(self, category: str, topic: str) -> tuple[BookSide, BookSide, int] | None:
        """``(bids, asks, u)`` as last published on a subscribed book topic (None if idle)."""
        book = self.feed(category).books.get(topic)
        if book is None:
            return None
        spec = book.market.spec
        bids = [(spec.price_str(p), spec.qty_str(q)) for p, q in book.bids]
        asks = [(spec.price_str(p), spec.qty_str(q)) for p, q in book.asks]
        return bids, asks, book.u

    def snapshot_bytes(self, category: str, topic: str, u: int | None = None) -> bytes | None:
        feed = self.feeds.get(category)
        if feed is None or (topic not in feed.books and not topic.startswith("tickers.")):
            return None
        try:
            return feed.snapshot(topic, u)[0]
        except KeyError:
            return None

    def delta_bytes(self, category: str, topic: str) -> bytes | None:
        feed = self.feeds.get(category)
        return None if feed is None else feed.delta_like(topic)


class MarketAPI:
    """The market half of :class:`~hean.emulator.server.Emulator`'s API (delegates to
    :attr:`venue`)."""

    venue: Venue

    def tick(self, category: str | None = None, steps: int = 1) -> None:
        """Move the market ``steps`` ticker intervals and send what is due (sync).

        Each step runs market quanta until the category's next ticker push, so every step sends
        exactly one ticker message per subscribed ticker topic.
        """
        self.venue.tick(category, steps)

    def step(self, category: str | None = None, quanta: int = 1) -> None:
        """Move the market ``quanta`` market steps (``config.market_step`` each)."""
        self.venue.step(category, quanta)

    def flush(self, category: str | None = None) -> None:
        """Publish pending book changes, trades and liquidations now (ignores cadences)."""
        self.venue.flush(category)

    def symbol_market(self, category: str, symbol: str) -> SymbolMarket:
        """The live market of one symbol (its ``book``, ``submit``/``cancel``/``amend``)."""
        return self.venue.symbol(category, symbol)

    def ticker_truth(self, category: str, symbol: str) -> dict[str, str]:
        """The ground-truth ticker (what a client merging snapshot + deltas must hold)."""
        return self.venue.ticker_truth(category, symbol)

    def book_truth(
        self, category: str, symbol: str, depth: int | None = None
    ) -> tuple[BookSide, BookSide]:
        """The true order book now: ``(bids, asks)`` of ``(price, size)`` strings, best first."""
        return self.venue.book_truth(category, symbol, depth)

    def trades_truth(
        self, category: str, symbol: str, limit: int | None = None
    ) -> list[dict[str, object]]:
        """The most recent trades (up to 10,000) as published in ``publicTrade``, oldest first."""
        return self.venue.trades_truth(category, symbol, limit)
