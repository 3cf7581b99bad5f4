"""Public backfill after a reconnect, sans-I/O: which trades and closed candles were missed.

While a public connection is down, trades and candle closes happen without us. After the
reconnect (the session's :class:`~hean.core.events.GapEvent` for the topic) the shell fetches
``GET /v5/market/recent-trade`` and ``GET /v5/market/kline`` and gives the results to these
trackers, which say what to publish (``backfilled=True``) and whether anything is lost for good:

* :class:`TradeTracker` remembers, per ``publicTrade`` topic, the ids of the most recent trades
  received live (bounded: ``max_ids`` per topic, FIFO) and the newest trade time. A fetched trade
  is published if its id was not seen and it is newer than the last live trade before the gap
  (minus nothing: ids settle ties). The endpoint keeps only the latest ``limit`` trades (1000 for
  contracts, 60 for spot): if all of them are newer than the last trade seen, older ones may
  be missing, and the outcome says so with the time range that is lost
  (``complete=False``, ``missing_from_ms..missing_to_ms``).
* :class:`KlineTracker` remembers, per ``kline`` topic, the start of the newest candle received
  live and which closed candles were seen. Fetched candles that closed after that and were not
  seen confirmed are published as confirmed (``confirm=True``); the still-open candle is left to
  the live stream. A candle range longer than one request returns is fetched in further pages by
  the shell (``KlineTracker.next_start``).

Both are plain objects: the shell feeds them every live message (``observe``) and the REST
results (``merge``), and never decides anything itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from hean.exchange.bybit.state.public import Kline, Trade

__all__ = [
    "INTERVAL_MS",
    "KlineTracker",
    "Outcome",
    "TradeTracker",
    "interval_ms",
]

INTERVAL_MS: dict[str, int] = {
    **{str(m): m * 60_000 for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    "D": 86_400_000,
    "W": 7 * 86_400_000,
}
"""Candle length per interval (``M`` varies with the month and is not backfilled)."""


def interval_ms(interval: str) -> int | None:
    """Length of a candle in ms, ``None`` for ``M`` or an unknown interval."""
    return INTERVAL_MS.get(interval)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one backfill recovered for one topic."""

    recovered: int
    duplicates: int
    complete: bool
    reason: str
    missing_from_ms: int | None = None
    missing_to_ms: int | None = None


class _Seen:
    """Bounded FIFO set."""

    __slots__ = ("_order", "_set", "max")

    def __init__(self, max_items: int) -> None:
        self.max = max_items
        self._order: deque[str] = deque()
        self._set: set[str] = set()

    def add(self, key: str) -> bool:
        if key in self._set:
            return False
        self._set.add(key)
        self._order.append(key)
        if len(self._order) > self.max:
            self._set.discard(self._order.popleft())
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._set

    def __len__(self) -> int:
        return len(self._set)


def _trade_key(trade: Trade) -> str:
    if trade.trade_id:
        return trade.trade_id
    return f"{trade.time}:{trade.price}:{trade.size}:{trade.side}"


class TradeTracker:
    """Live trades seen per topic, and the merge of a REST ``recent-trade`` fetch.

    Args:
        max_ids: trade ids remembered per topic (memory: about 100 bytes each).
    """

    def __init__(self, max_ids: int = 5_000) -> None:
        self.max_ids = max_ids
        self._seen: dict[str, _Seen] = {}
        self.last_time: dict[str, int] = {}
        """Newest trade time (ms) received per topic, live or backfilled."""

    def observe(self, topic: str, trades: Iterable[Trade]) -> None:
        """Remember the trades of one live message."""
        seen = self._seen.get(topic)
        if seen is None:
            seen = self._seen[topic] = _Seen(self.max_ids)
        last = self.last_time.get(topic, 0)
        for trade in trades:
            seen.add(_trade_key(trade))
            if trade.time > last:
                last = trade.time
        self.last_time[topic] = last

    def merge(
        self,
        topic: str,
        fetched: Sequence[Trade],
        *,
        since_ms: int | None,
        limit: int,
        until_ms: int | None = None,
    ) -> tuple[list[Trade], Outcome]:
        """Which fetched trades to publish (oldest first), and the outcome.

        Args:
            topic: the ``publicTrade`` topic.
            fetched: the REST result (any order).
            since_ms: the newest trade time known before the gap (``None``: never received
                any; then everything fetched up to ``until_ms`` that was not seen is new).
            limit: the ``limit`` the request asked for (the endpoint's maximum).
            until_ms: ignore trades after this time (the live stream has them), if given.
        """
        seen = self._seen.get(topic)
        if seen is None:
            seen = self._seen[topic] = _Seen(self.max_ids)
        ordered = sorted(fetched, key=lambda t: (t.time, t.seq or 0, _trade_key(t)))
        out: list[Trade] = []
        duplicates = 0
        for trade in ordered:
            if since_ms is not None and trade.time < since_ms:
                continue
            if until_ms is not None and trade.time > until_ms:
                continue
            if not seen.add(_trade_key(trade)):
                duplicates += 1
                continue
            out.append(trade)
        if out:
            newest = out[-1].time
            if newest > self.last_time.get(topic, 0):
                self.last_time[topic] = newest
        oldest = ordered[0].time if ordered else None
        truncated = (
            len(fetched) >= limit and oldest is not None and (since_ms is None or oldest > since_ms)
        )
        if truncated:
            return out, Outcome(len(out), duplicates, False, "truncated", since_ms, oldest)
        return out, Outcome(len(out), duplicates, True, "ok")


class KlineTracker:
    """Closed candles seen per ``kline`` topic, and the merge of REST ``kline`` fetches.

    Args:
        max_seen: confirmed candle starts remembered per topic.
    """

    def __init__(self, max_seen: int = 2_000) -> None:
        self.max_seen = max_seen
        self._confirmed: dict[str, _Seen] = {}
        self.last_start: dict[str, int] = {}
        """Start (ms) of the newest candle received per topic (open or closed)."""

    def observe(self, topic: str, klines: Iterable[Kline]) -> None:
        """Remember the candles of one live message."""
        confirmed = self._confirmed.get(topic)
        if confirmed is None:
            confirmed = self._confirmed[topic] = _Seen(self.max_seen)
        last = self.last_start.get(topic, -1)
        for kline in klines:
            if kline.confirm:
                confirmed.add(str(kline.start))
            if kline.start > last:
                last = kline.start
        self.last_start[topic] = last

    def window(self, topic: str, gap_from_ms: int | None) -> int | None:
        """The first candle start to fetch: the newest candle seen before the gap (it may have
        closed unseen), else the gap's start; ``None`` if neither is known."""
        last = self.last_start.get(topic)
        if last is not None and last >= 0:
            return last
        return gap_from_ms

    def merge(
        self, topic: str, interval: str, fetched: Sequence[Kline], *, now_ms: int
    ) -> tuple[list[Kline], Outcome]:
        """Which fetched candles to publish as confirmed (oldest first), and the outcome.

        A candle counts as closed when a newer one was fetched (Bybit always includes the open
        candle) or when ``start + interval <= now_ms``; the open one is left to the live stream.
        """
        length = interval_ms(interval)
        if length is None:
            return [], Outcome(0, 0, False, f"interval {interval} is not backfilled")
        confirmed = self._confirmed.get(topic)
        if confirmed is None:
            confirmed = self._confirmed[topic] = _Seen(self.max_seen)
        newest = max((k.start for k in fetched), default=None)
        out: list[Kline] = []
        duplicates = 0
        for kline in sorted(fetched, key=lambda k: k.start):
            if kline.start == newest and kline.start + length > now_ms:
                continue  # still open: the live stream carries it
            if not confirmed.add(str(kline.start)):
                duplicates += 1
                continue
            end = kline.end if kline.end > kline.start else kline.start + length - 1
            out.append(msgspec.structs.replace(kline, confirm=True, end=end, interval=interval))
        if out and out[-1].start > self.last_start.get(topic, -1):
            self.last_start[topic] = out[-1].start
        return out, Outcome(len(out), duplicates, True, "ok")
