"""The merged state of the topics a replay has played, per endpoint path, sans-I/O.

A client that subscribes to a book or ticker topic on the real venue gets a snapshot of the
current state first, then deltas. A replay served by :class:`~hean.replay.server.ReplayServer`
does the same for a client that joins in the middle: :class:`TopicStates` follows every
``orderbook.*`` and ``tickers.*`` frame played and builds that snapshot from it.

* Books: a snapshot replaces the levels, a delta sets each level (size ``"0"`` deletes it);
  prices are compared exactly (``"100.50"`` is ``"100.5"``), the strings as recorded are kept.
  The snapshot built carries the last frame's ``u``, ``seq``, ``ts`` and ``cts``, so the next
  recorded delta (``u + 1``) follows it exactly as on the venue. Bids best (highest) first,
  asks lowest first.
* Tickers: a snapshot replaces the fields, a delta updates them (linear / inverse send deltas;
  spot and option always full snapshots); the snapshot built has every field merged so far and
  the last frame's ``cs`` and ``ts``.

A topic's state starts with its first recorded snapshot (a delta before any is not merged) and
is forgotten when the recorded connection that carried it closed (its next frames start with a
new snapshot). Memory: one state per topic played, as large as the venue's book for its depth.
Frames that cannot be decoded are counted in :attr:`TopicStates.malformed` and skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from hean.exchange.bybit.state.orderbook import price_key

__all__ = ["TopicStates"]


class _BookData(msgspec.Struct):
    s: str
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    u: int
    seq: int | None = None


class _BookFrame(msgspec.Struct):
    type: str
    data: _BookData
    ts: int | None = None
    cts: int | None = None


class _TickerFrame(msgspec.Struct):
    type: str
    data: dict[str, Any]
    cs: int | None = None
    ts: int | None = None


_decode_book = msgspec.json.Decoder(_BookFrame).decode
_decode_ticker = msgspec.json.Decoder(_TickerFrame).decode
_encode = msgspec.json.Encoder().encode


class _Book:
    __slots__ = ("asks", "bids", "cts", "seq", "symbol", "ts", "u")

    def __init__(self, frame: _BookFrame) -> None:
        data = frame.data
        self.symbol = data.s
        self.bids: dict[int, tuple[str, str]] = {}
        self.asks: dict[int, tuple[str, str]] = {}
        self.u = data.u
        self.seq = data.seq
        self.ts = frame.ts
        self.cts = frame.cts
        self.merge(frame)

    def merge(self, frame: _BookFrame) -> None:
        data = frame.data
        for side, levels in ((self.bids, data.b), (self.asks, data.a)):
            for price, size in levels:
                key = price_key(price)
                if price_key(size) == 0:
                    side.pop(key, None)
                else:
                    side[key] = (price, size)
        self.u = data.u
        self.seq = data.seq
        self.ts = frame.ts
        self.cts = frame.cts

    def snapshot(self, topic: str) -> bytes:
        data: dict[str, Any] = {
            "s": self.symbol,
            "b": [list(self.bids[k]) for k in sorted(self.bids, reverse=True)],
            "a": [list(self.asks[k]) for k in sorted(self.asks)],
            "u": self.u,
        }
        if self.seq is not None:
            data["seq"] = self.seq
        msg: dict[str, Any] = {"topic": topic, "type": "snapshot"}
        if self.ts is not None:
            msg["ts"] = self.ts
        msg["data"] = data
        if self.cts is not None:
            msg["cts"] = self.cts
        return _encode(msg)


class _Ticker:
    __slots__ = ("cs", "fields", "ts")

    def __init__(self, frame: _TickerFrame) -> None:
        self.fields: dict[str, Any] = dict(frame.data)
        self.cs = frame.cs
        self.ts = frame.ts

    def merge(self, frame: _TickerFrame) -> None:
        self.fields.update(frame.data)
        self.cs = frame.cs
        self.ts = frame.ts

    def snapshot(self, topic: str) -> bytes:
        msg: dict[str, Any] = {"topic": topic, "type": "snapshot", "data": self.fields}
        if self.cs is not None:
            msg["cs"] = self.cs
        if self.ts is not None:
            msg["ts"] = self.ts
        return _encode(msg)


class TopicStates:
    """Book and ticker state per ``(path, topic)`` of the frames played (module docstring)."""

    __slots__ = ("_books", "_tickers", "malformed")

    def __init__(self) -> None:
        self._books: dict[tuple[str, str], _Book] = {}
        self._tickers: dict[tuple[str, str], _Ticker] = {}
        self.malformed = 0
        """Book / ticker frames that could not be decoded (skipped)."""

    @staticmethod
    def follows(topic: str) -> bool:
        """Whether ``topic`` has a state (books and tickers)."""
        return topic.startswith("orderbook.") or topic.startswith("tickers.")

    def apply(self, path: str, topic: str, payload: bytes) -> None:
        """Merge one played frame of ``topic`` (any other topic is ignored)."""
        key = (path, topic)
        try:
            if topic.startswith("orderbook."):
                book_frame = _decode_book(payload)
                book = self._books.get(key)
                if book_frame.type == "snapshot":
                    self._books[key] = _Book(book_frame)
                elif book is not None:
                    book.merge(book_frame)
            elif topic.startswith("tickers."):
                ticker_frame = _decode_ticker(payload)
                ticker = self._tickers.get(key)
                if ticker_frame.type == "snapshot" or ticker is None:
                    if ticker_frame.type == "snapshot":
                        self._tickers[key] = _Ticker(ticker_frame)
                else:
                    ticker.merge(ticker_frame)
        except (msgspec.DecodeError, ValueError, TypeError):
            self.malformed += 1
            self._books.pop(key, None)  # a book that missed a frame is not the venue's any more
            self._tickers.pop(key, None)

    def snapshot(self, path: str, topic: str) -> bytes | None:
        """The snapshot frame a client subscribing to ``topic`` now gets, or ``None`` (no state:
        the recorded snapshot is still to come)."""
        key = (path, topic)
        book = self._books.get(key)
        if book is not None:
            return book.snapshot(topic)
        ticker = self._tickers.get(key)
        if ticker is not None:
            return ticker.snapshot(topic)
        return None

    def forget(self, path: str, topics: Iterable[str]) -> None:
        """Drop the state of ``topics`` (their recorded connection closed)."""
        for topic in topics:
            self._books.pop((path, topic), None)
            self._tickers.pop((path, topic), None)

    def __len__(self) -> int:
        return len(self._books) + len(self._tickers)
