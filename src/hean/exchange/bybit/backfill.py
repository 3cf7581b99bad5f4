"""Public backfill shell: after a reconnect, fetch the trades and closed candles missed.

Owned by :class:`~hean.exchange.bybit.ws_public.BybitPublicWebSocket` when it is given a REST
client (``rest=``). The connection reports a :class:`~hean.core.events.GapEvent` for every topic
that comes back after a loss; for ``publicTrade.*`` and ``kline.*`` topics this fetches
``recent-trade`` / ``kline`` over REST, lets the trackers of
:mod:`hean.exchange.bybit.state.backfill` decide what was missed, publishes it as normal
:class:`~hean.core.events.TradeEvent` / :class:`~hean.core.events.KlineEvent` with
``backfilled=True``, and always ends with one :class:`~hean.core.events.BackfillEvent` saying what
was recovered and what, if anything, is lost for good. A failed fetch is reported the same way
(``reason="error: ..."``), never retried in a loop and never raised into the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from hean.core.clock import Clock
from hean.core.events import BackfillEvent, EventType, GapEvent, KlineEvent, TradeEvent
from hean.exchange.bybit.state.backfill import KlineTracker, Outcome, TradeTracker, interval_ms
from hean.exchange.bybit.state.public import Kline, Trade, topic_symbol

__all__ = ["PublicBackfill", "trade_fetch_limit"]

log = logging.getLogger("hean.backfill")

_KLINE_PAGE = 1000
_MAX_KLINE_PAGES = 10


def trade_fetch_limit(category: str) -> int:
    """The most trades ``recent-trade`` returns: 60 for spot, 1000 for the others."""
    return 60 if category == "spot" else 1000


class PublicBackfill:
    """Trade and kline backfill for one public connection.

    Args:
        rest: a :class:`~hean.exchange.bybit.rest.BybitRestClient` (``recent_trades``,
            ``klines``).
        category: the connection's category.
        publish: ``publish(event_type, event)`` of the connection's bus.
        clock: the connection's clock.
        name: the connection's label (for events and logs).
        max_trade_ids: trade ids remembered per topic to de-duplicate against.
    """

    def __init__(
        self,
        rest: Any,
        category: str,
        publish: Callable[[EventType, Any], None],
        clock: Clock,
        name: str,
        *,
        max_trade_ids: int = 5_000,
    ) -> None:
        self.rest = rest
        self.category = category
        self._publish = publish
        self._clock = clock
        self.name = name
        self.trades = TradeTracker(max_trade_ids)
        self.klines = KlineTracker()
        self._tasks: set[asyncio.Task[None]] = set()
        self._calls: dict[str, int] = {}
        self.runs = 0
        self.recovered = 0
        self.incomplete = 0
        self.errors = 0

    # -- fed by the connection: ``trades.observe`` / ``klines.observe`` with each live message
    #    (on the reader's path), and the gaps

    def on_gap(self, gap: GapEvent) -> None:
        """Start a backfill for ``gap.topic`` if it is a trade or kline topic."""
        kind = gap.topic.split(".", 1)[0]
        if kind not in ("publicTrade", "kline"):
            return
        task = asyncio.get_running_loop().create_task(
            self._run(gap), name=f"hean-backfill-{gap.topic}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait until every backfill in progress has ended."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel backfills in progress."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the runs ---------------------------------------------------------------------------

    async def _run(self, gap: GapEvent) -> None:
        self.runs += 1
        self._calls[gap.topic] = 0
        try:
            if gap.topic.startswith("publicTrade."):
                outcome = await self._trades(gap)
            else:
                outcome = await self._klines(gap)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a REST failure must never reach the connection
            self.errors += 1
            log.warning("%s: backfill of %s failed: %s", self.name, gap.topic, exc)
            outcome = Outcome(0, 0, False, f"error: {type(exc).__name__}: {exc}")
        self.recovered += outcome.recovered
        if not outcome.complete:
            self.incomplete += 1
            if outcome.reason == "truncated":
                log.warning(
                    "%s: %s: more was missed than REST keeps; lost between %s and %s ms",
                    self.name,
                    gap.topic,
                    outcome.missing_from_ms,
                    outcome.missing_to_ms,
                )
        self._publish(
            EventType.BACKFILL,
            BackfillEvent(
                connection=self.name,
                topic=gap.topic,
                recovered=outcome.recovered,
                duplicates=outcome.duplicates,
                complete=outcome.complete,
                reason=outcome.reason,
                gap_from_ms=gap.down_since_wall_ms,
                gap_to_ms=gap.up_at_wall_ms,
                missing_from_ms=outcome.missing_from_ms,
                missing_to_ms=outcome.missing_to_ms,
                rest_calls=self._calls.pop(gap.topic, 0),
                time=self._clock.monotonic(),
            ),
        )

    async def _trades(self, gap: GapEvent) -> Outcome:
        symbol = topic_symbol(gap.topic)
        if self.category == "option":
            return Outcome(0, 0, False, "option trades are not backfilled")
        since = self.trades.last_time.get(gap.topic)
        if since is None:
            since = gap.down_since_wall_ms
        limit = trade_fetch_limit(self.category)
        self._calls[gap.topic] += 1
        fetched: Sequence[Trade] = await self.rest.recent_trades(self.category, symbol, limit=limit)
        out, outcome = self.trades.merge(gap.topic, fetched, since_ms=since, limit=limit)
        if out:
            now = self._clock.monotonic()
            wall = self._clock.wall_ms()
            self._publish(
                EventType.TRADE,
                TradeEvent(symbol, self.category, out, out[-1].time, now, wall, backfilled=True),
            )
        return outcome

    async def _klines(self, gap: GapEvent) -> Outcome:
        _, interval, symbol = gap.topic.split(".", 2)
        length = interval_ms(interval)
        if length is None:
            return Outcome(0, 0, False, f"interval {interval} is not backfilled")
        start = self.klines.window(gap.topic, gap.down_since_wall_ms)
        if start is None:
            return Outcome(0, 0, True, "ok")
        recovered = duplicates = 0
        now_ms = self._clock.wall_ms()
        for _ in range(_MAX_KLINE_PAGES):
            self._calls[gap.topic] += 1
            fetched: Sequence[Kline] = await self.rest.klines(
                self.category, symbol, interval, start=start, end=now_ms, limit=_KLINE_PAGE
            )
            out, outcome = self.klines.merge(gap.topic, interval, fetched, now_ms=now_ms)
            recovered += outcome.recovered
            duplicates += outcome.duplicates
            if out:
                self._publish(
                    EventType.KLINE,
                    KlineEvent(
                        symbol,
                        self.category,
                        interval,
                        out,
                        out[-1].end,
                        self._clock.monotonic(),
                        self._clock.wall_ms(),
                        backfilled=True,
                    ),
                )
            if len(fetched) < _KLINE_PAGE:
                return Outcome(recovered, duplicates, True, "ok")
            start = max(k.start for k in fetched) + length
        return Outcome(recovered, duplicates, False, "truncated", start, now_ms)
