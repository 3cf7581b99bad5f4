"""The one value-type rule (issue 13, item 10; stated in hean.core.events): exchange values are
the exact strings Bybit sent; floats only as named price conveniences."""

from __future__ import annotations

from decimal import Decimal

from hean.core.bus import EventBus
from hean.core.events import EventType, OrderBookEvent, TickEvent, TradeEvent
from hean.emulator import Emulator
from tests.e2e.conftest import make_ws
from tests.health.conftest import until


async def test_strings_from_the_exchange_floats_only_as_named_conveniences(
    bus: EventBus, emulator: Emulator
) -> None:
    ticks: list[TickEvent] = []
    books: list[OrderBookEvent] = []
    trades: list[TradeEvent] = []
    bus.subscribe(EventType.TICK, ticks.append, name="t")
    bus.subscribe(EventType.ORDERBOOK, books.append, name="t")
    bus.subscribe(EventType.TRADE, trades.append, name="t")
    async with make_ws(bus, emulator) as ws:
        await ws.subscribe_tickers(["BTCUSDT"])
        await ws.subscribe_orderbook(["BTCUSDT"], 50)
        await ws.subscribe_trades(["BTCUSDT"])
        await until(lambda: ticks and books and trades, timeout=10)
        tick = ticks[-1]
        assert isinstance(tick.last_price, float)
        assert isinstance(tick.ticker.fields["lastPrice"], str)
        assert float(tick.ticker.fields["lastPrice"]) == tick.last_price
        book = books[-1]
        assert book.best_bid is not None and book.best_ask is not None
        assert all(isinstance(v, str) for v in (*book.best_bid, *book.best_ask))
        assert book.best_bid_price == float(book.best_bid[0])
        assert book.best_ask_price == float(book.best_ask[0])
        assert book.spread == float(book.best_ask[0]) - float(book.best_bid[0])
        assert isinstance(book.book.bids(1)[0][0], str)
        assert isinstance(book.book.best_bid_price, float)
        trade = trades[-1].trades[0]
        assert isinstance(trade.price, str) and Decimal(trade.price) > 0
