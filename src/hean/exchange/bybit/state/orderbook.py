"""Order books that are provably right or visibly invalid (Bybit ``orderbook.{depth}.{symbol}``).

Rules (protocol.md §5.2), all enforced here:

* A ``snapshot`` replaces the book; the book is valid from then on. Level-1 books re-push the same
  snapshot (same ``u``) every 3 s when idle; that is just another snapshot.
* a snapshot with ``u == 1`` means the service restarted: it replaces the book like any
  snapshot. A *delta* with ``u == 1`` cannot rebuild a book (it carries only some levels), so it
  marks the book invalid and asks for a resync rather than pretending to be a reset.
* A delta's levels are absolute: size ``"0"`` deletes the level (deleting an unknown price is
  harmless), an unknown price is inserted, a known one gets the new size.
* A delta must carry ``u == previous u + 1``. A gap, a duplicate, an out-of-order ``u``, a delta
  before any snapshot, a malformed frame, or a book that ends up crossed (best bid >= best ask)
  makes the book INVALID at once: the reason is recorded, ``needs_resync`` is set once (the caller
  resubscribes that one topic and clears the flag), and later deltas are counted in ``ignored``
  but not applied. The next snapshot makes the book valid again. An invalid book keeps its last
  levels (``bids()``, ``best_bid`` ... still answer) but ``valid`` is ``False``.

Prices are never binary floats: each price string maps to an exact integer key (the decimal value
times ``10**PRICE_DECIMALS``, built by string manipulation), so ``"16493.50"`` and ``"16493.5"``
are the same level. The strings Bybit sent are kept for output; sizes are kept exactly as received.

Each side is a sorted ``list`` of keys plus a ``dict`` key -> ``(price, size)``. Bids are stored
under the *negated* key, so both lists are ascending and index 0 is the best level. A delta level
costs a dict lookup plus, only when a level appears or disappears, a ``bisect`` and a list
insert/delete (a memmove of at most a few thousand pointers: faster in practice than a balanced
tree in pure Python; see ``benchmarks/bench_orderbook_apply.py``). Top of book is cached after every
message, so ``best_bid`` / ``best_ask`` / ``spread`` are O(1).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import TYPE_CHECKING, Any

from hean.core.events import OrderBookEvent
from hean.exchange.bybit.protocol.codec import Frame

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "PRICE_DECIMALS",
    "Level",
    "OrderBook",
    "OrderBookCache",
    "book_event",
    "parse_orderbook_topic",
    "price_key",
]

Level = tuple[str, str]
"""One level as Bybit sent it: ``(price, size)`` strings."""

PRICE_DECIMALS = 18
"""Price keys are ``price * 10**PRICE_DECIMALS`` as exact ints (a price with more significant
decimals than this is rejected as malformed)."""

_SCALE: int = 10**PRICE_DECIMALS
_PAD = tuple("0" * (PRICE_DECIMALS - n) for n in range(PRICE_DECIMALS + 1))
_CATEGORIES = frozenset({"linear", "inverse", "spot", "option", "spread"})
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError)


def price_key(price: str) -> int:
    """The exact integer key of a decimal price string: ``price * 10**PRICE_DECIMALS``.

    ``price_key("16493.5") == price_key("16493.50") == 16493500000000000000000``.

    Raises:
        ValueError: not a plain decimal number (optional sign, ASCII digits, at most one dot; no
            exponent, spaces or underscores), or more significant decimals than
            :data:`PRICE_DECIMALS`.
        TypeError: not a string.
    """
    sign = price[:1]
    body = price[1:] if sign == "-" or sign == "+" else price
    dot = body.find(".")
    if dot < 0:
        whole, frac = body, ""
    else:
        whole, frac = body[:dot], body[dot + 1 :]
    digits = whole + frac
    if not digits or not digits.isdigit() or not digits.isascii():
        raise ValueError(f"bad price {price!r}")
    decimals = len(frac)
    if decimals > PRICE_DECIMALS:
        frac = frac.rstrip("0")
        decimals = len(frac)
        if decimals > PRICE_DECIMALS:
            raise ValueError(f"price {price!r} has more than {PRICE_DECIMALS} decimals")
        digits = whole + frac
    key = int(digits + _PAD[decimals])
    return -key if sign == "-" else key


def parse_orderbook_topic(topic: str) -> tuple[int, str]:
    """``"orderbook.50.BTCUSDT"`` -> ``(50, "BTCUSDT")``.

    Raises:
        ValueError: not an ``orderbook.{depth}.{symbol}`` topic with a numeric depth (the RPI
            ``orderbook.rpi.*`` and delta-only ``orderbook.full.*`` books are not supported).
    """
    parts = topic.split(".", 2)
    if len(parts) != 3 or parts[0] != "orderbook" or not parts[1].isdigit() or not parts[2]:
        raise ValueError(f"not an orderbook.{{depth}}.{{symbol}} topic: {topic!r}")
    depth = int(parts[1])
    if depth < 1:
        raise ValueError(f"bad orderbook depth in {topic!r}")
    return depth, parts[2]


class OrderBook:
    """The book of one ``orderbook.{depth}.{symbol}`` topic. Shared with subscribers: read-only.

    Attributes:
        topic / symbol / category / depth: what this book is (``depth`` = N from the topic).
        valid: the book is exactly Bybit's book as of update ``u``. ``False`` before the first
            snapshot, after any integrity failure (see ``invalid_reason``) and after
            :meth:`OrderBookCache.reset`.
        invalid_reason: why it is invalid (``None`` while valid), e.g. ``gap u=12 expected 11``,
            ``duplicate u=11``, ``out-of-order u=9 expected 11``, ``delta before snapshot``,
            ``crossed book bid=101 ask=100``, ``malformed frame: ...``.
        needs_resync: set once when the book turns invalid; the caller resubscribes this topic
            and clears the flag.
        best_bid / best_ask: top of book ``(price, size)`` strings, or ``None`` (cached, O(1)).
        u / seq / exchange_ts / cts: update id, cross sequence, ``ts`` and ``cts`` of the last
            message applied.
        recv_time: monotonic time of the last message received for this topic (applied or not).
        snapshots / deltas: messages applied.
        ignored: deltas not applied (the offending one and those that follow while invalid).
        resyncs: times ``needs_resync`` was raised. restarts: ``u == 1`` snapshots after the first.
        repeats: snapshots re-pushed with the same ``u`` (level-1 idle heartbeat).
        sequence_errors / crossings / malformed: integrity failures by kind.
        overflows: messages after which a side held more than ``depth`` levels (Bybit deletes
            levels leaving the window with size ``"0"``, so this should stay 0).
    """

    __slots__ = (
        "_ask_cache",
        "_ask_keys",
        "_ask_levels",
        "_bid_cache",
        "_bid_keys",
        "_bid_levels",
        "_cache_limit",
        "best_ask",
        "best_bid",
        "category",
        "crossings",
        "cts",
        "deltas",
        "depth",
        "exchange_ts",
        "ignored",
        "invalid_reason",
        "malformed",
        "needs_resync",
        "overflows",
        "recv_time",
        "repeats",
        "restarts",
        "resync_requested",
        "resyncs",
        "seq",
        "sequence_errors",
        "snapshots",
        "symbol",
        "topic",
        "u",
        "valid",
    )

    def __init__(self, topic: str, category: str = "linear") -> None:
        self.depth, self.symbol = parse_orderbook_topic(topic)
        self.topic = topic
        self.category = category
        # Sides: ascending key lists (bid keys negated) + key -> (price, size).
        self._bid_keys: list[int] = []
        self._ask_keys: list[int] = []
        self._bid_levels: dict[int, Level] = {}
        self._ask_levels: dict[int, Level] = {}
        # price string -> signed key (bounded; cleared wholesale when full).
        self._bid_cache: dict[str, int] = {}
        self._ask_cache: dict[str, int] = {}
        self._cache_limit = max(1024, 16 * self.depth)
        self.best_bid: Level | None = None
        self.best_ask: Level | None = None
        self.valid = False
        self.invalid_reason: str | None = "no snapshot yet"
        self.needs_resync = False
        self.resync_requested = False
        self.u = 0
        self.seq: int | None = None
        self.exchange_ts: int | None = None
        self.cts: int | None = None
        self.recv_time: float | None = None
        self.snapshots = 0
        self.deltas = 0
        self.ignored = 0
        self.resyncs = 0
        self.restarts = 0
        self.repeats = 0
        self.sequence_errors = 0
        self.crossings = 0
        self.malformed = 0
        self.overflows = 0

    # -- reading ----------------------------------------------------------------------------

    def bids(self, n: int | None = None) -> list[Level]:
        """The best ``n`` bids (all when ``None``), best (highest) first."""
        levels = self._bid_levels
        return [levels[k] for k in self._bid_keys[:n]]

    def asks(self, n: int | None = None) -> list[Level]:
        """The best ``n`` asks (all when ``None``), best (lowest) first."""
        levels = self._ask_levels
        return [levels[k] for k in self._ask_keys[:n]]

    def bids_float(self, n: int | None = None) -> list[tuple[float, float]]:
        """:meth:`bids` as ``(price, size)`` floats."""
        levels = self._bid_levels
        return [(float(levels[k][0]), float(levels[k][1])) for k in self._bid_keys[:n]]

    def asks_float(self, n: int | None = None) -> list[tuple[float, float]]:
        """:meth:`asks` as ``(price, size)`` floats."""
        levels = self._ask_levels
        return [(float(levels[k][0]), float(levels[k][1])) for k in self._ask_keys[:n]]

    def bid_size(self, price: str) -> str | None:
        """Size at bid ``price`` (any spelling: ``"1.5"`` == ``"1.50"``), ``None`` if no level."""
        level = self._bid_levels.get(-price_key(price))
        return None if level is None else level[1]

    def ask_size(self, price: str) -> str | None:
        """Size at ask ``price`` (any spelling), ``None`` if no level."""
        level = self._ask_levels.get(price_key(price))
        return None if level is None else level[1]

    @property
    def bid_count(self) -> int:
        return len(self._bid_keys)

    @property
    def ask_count(self) -> int:
        return len(self._ask_keys)

    @property
    def best_bid_price(self) -> float | None:
        best = self.best_bid
        return None if best is None else float(best[0])

    @property
    def best_ask_price(self) -> float | None:
        best = self.best_ask
        return None if best is None else float(best[0])

    @property
    def spread(self) -> float | None:
        """Best ask minus best bid (computed from the exact keys), ``None`` if a side is empty."""
        if not self._bid_keys or not self._ask_keys:
            return None
        return (self._ask_keys[0] + self._bid_keys[0]) / _SCALE  # bid keys are negated

    @property
    def mid(self) -> float | None:
        """(best bid + best ask) / 2, ``None`` if a side is empty."""
        if not self._bid_keys or not self._ask_keys:
            return None
        return (self._ask_keys[0] - self._bid_keys[0]) / (2 * _SCALE)

    def __repr__(self) -> str:
        state = "valid" if self.valid else f"INVALID ({self.invalid_reason})"
        return (
            f"OrderBook({self.topic!r}, u={self.u}, bids={len(self._bid_keys)}, "
            f"asks={len(self._ask_keys)}, best_bid={self.best_bid}, best_ask={self.best_ask}, "
            f"{state})"
        )

    # -- state changes ----------------------------------------------------------------------

    def invalidate(self, reason: str) -> None:
        """Mark the book invalid. The first failure of an invalid run records ``reason`` and
        raises ``needs_resync``; later ones (until the next snapshot) change nothing."""
        self.valid = False
        if not self.resync_requested:
            self.invalid_reason = reason
            self.resync_requested = True
            self.needs_resync = True
            self.resyncs += 1

    def reset(self, reason: str = "awaiting snapshot") -> None:
        """Mark the book stale until the next snapshot (a reconnect): invalid, no resync asked
        (the fresh subscription brings a snapshot; a delta before it will ask for one)."""
        self.valid = False
        self.invalid_reason = reason
        self.resync_requested = False
        self.needs_resync = False


def _key(cache: dict[str, int], price: str, negate: bool, limit: int) -> int:
    """Parse (cache miss path) and remember the signed key of ``price``."""
    key = price_key(price)
    if negate:
        key = -key
    if len(cache) >= limit:
        cache.clear()
    cache[price] = key
    return key


def _merge(
    keys: list[int],
    levels: dict[int, Level],
    items: Sequence[Any],
    cache: dict[str, int],
    negate: bool,
    limit: int,
) -> None:
    """Apply delta levels to one side (absolute sizes; ``"0"`` deletes)."""
    get = cache.get
    for price, size in items:
        key = get(price)
        if key is None:
            key = _key(cache, price, negate, limit)
        if size == "0" or (size[0] == "0" and not size.strip("0.")):
            if levels.pop(key, None) is not None:
                del keys[bisect_left(keys, key)]
        else:
            if key not in levels:
                insort(keys, key)
            levels[key] = (price, size)


def _load(
    items: Sequence[Any], cache: dict[str, int], negate: bool, limit: int
) -> tuple[list[int], dict[int, Level]]:
    """Build one side from snapshot levels (zero sizes skipped, duplicates: last wins)."""
    levels: dict[int, Level] = {}
    get = cache.get
    for price, size in items:
        key = get(price)
        if key is None:
            key = _key(cache, price, negate, limit)
        if size == "0" or (size[0] == "0" and not size.strip("0.")):
            levels.pop(key, None)
        else:
            levels[key] = (price, size)
    return sorted(levels), levels  # already ascending: timsort makes this O(n)


class OrderBookCache:
    """All order books of one connection (one category), keyed by topic."""

    __slots__ = ("by_topic", "category")

    def __init__(self, category: str) -> None:
        if category not in _CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        self.category = category
        self.by_topic: dict[str, OrderBook] = {}

    def get(self, symbol: str, depth: int | None = None) -> OrderBook | None:
        """The book of ``symbol`` at ``depth`` (the deepest one held when ``depth`` is None)."""
        if depth is not None:
            return self.by_topic.get(f"orderbook.{depth}.{symbol}")
        found = [b for b in self.by_topic.values() if b.symbol == symbol]
        return max(found, key=lambda b: b.depth) if found else None

    def invalid(self) -> list[OrderBook]:
        """Books currently not valid."""
        return [b for b in self.by_topic.values() if not b.valid]

    def reset(self, topic: str, reason: str = "awaiting snapshot") -> None:
        """Mark one book stale until its next snapshot (see :meth:`OrderBook.reset`)."""
        book = self.by_topic.get(topic)
        if book is not None:
            book.reset(reason)

    def reset_all(self, reason: str = "awaiting snapshot (reconnect)") -> None:
        """Mark every book stale until its next snapshot (call on disconnect / reconnect)."""
        for book in self.by_topic.values():
            book.reset(reason)

    def remove(self, topic: str) -> None:
        """Forget a book (after an unsubscribe)."""
        self.by_topic.pop(topic, None)

    def apply(self, frame: Frame, now: float) -> OrderBook:
        """Apply one orderbook frame and return its book.

        Never raises for bad content of a known-shaped topic: a malformed frame invalidates the
        book (``invalid_reason`` starts with ``malformed frame``) and the book is returned with
        ``needs_resync`` set, like any other integrity failure. The caller should, after every
        call: if ``book.needs_resync``, clear it and resubscribe ``book.topic``.

        Raises:
            ValueError: the topic is not ``orderbook.{depth}.{symbol}`` (no book can be made).
        """
        # Hot path: one call per book message. Kept flat (only the per-side loops are helpers).
        topic: str = frame.topic  # type: ignore[assignment]  # data frames always have a topic
        book = self.by_topic.get(topic)
        if book is None:
            book = OrderBook(topic, self.category)
            self.by_topic[topic] = book
        book.recv_time = now
        data = frame.data
        try:
            if data.__class__ is not dict:
                raise ValueError("data is not an object")
            u = data["u"]
            if u.__class__ is not int:
                u = int(u)
            kind = frame.type
            if kind == "delta":
                if not book.valid:
                    book.ignored += 1
                    if not book.resync_requested:
                        book.invalidate("delta before snapshot")
                    return book
                last = book.u
                if u != last + 1:
                    book.ignored += 1
                    book.sequence_errors += 1
                    if u == 1:
                        # A restart is announced by a *snapshot* with u=1; a delta with u=1
                        # carries only some levels, so it cannot rebuild the book.
                        book.invalidate("delta with u=1 (restart without a snapshot)")
                    elif u == last:
                        book.invalidate(f"duplicate u={u}")
                    elif u > last:
                        book.invalidate(f"gap u={u} expected {last + 1}")
                    else:
                        book.invalidate(f"out-of-order u={u} expected {last + 1}")
                    return book
                limit = book._cache_limit
                bids = data.get("b")
                if bids:
                    _merge(book._bid_keys, book._bid_levels, bids, book._bid_cache, True, limit)
                asks = data.get("a")
                if asks:
                    _merge(book._ask_keys, book._ask_levels, asks, book._ask_cache, False, limit)
                book.deltas += 1
            elif kind == "snapshot":
                limit = book._cache_limit
                bid_keys, bid_levels = _load(data.get("b") or (), book._bid_cache, True, limit)
                ask_keys, ask_levels = _load(data.get("a") or (), book._ask_cache, False, limit)
                book._bid_keys = bid_keys
                book._bid_levels = bid_levels
                book._ask_keys = ask_keys
                book._ask_levels = ask_levels
                if u == 1 and book.snapshots:
                    book.restarts += 1
                elif u == book.u and book.snapshots:
                    book.repeats += 1
                book.snapshots += 1
                book.valid = True
                book.invalid_reason = None
                book.resync_requested = False
                book.needs_resync = False  # a snapshot is what a resync would have fetched
            else:
                raise ValueError(f"unknown message type {kind!r}")
        except _MALFORMED as exc:
            book.malformed += 1
            book.invalidate(f"malformed frame: {type(exc).__name__}: {exc}")
            return book
        book.u = u
        book.seq = data.get("seq")
        book.exchange_ts = frame.ts
        book.cts = frame.cts
        bid_keys = book._bid_keys
        ask_keys = book._ask_keys
        if bid_keys:
            best_bid = book.best_bid = book._bid_levels[bid_keys[0]]
            if ask_keys:
                best_ask = book.best_ask = book._ask_levels[ask_keys[0]]
                if -bid_keys[0] >= ask_keys[0]:
                    book.crossings += 1
                    book.invalidate(f"crossed book bid={best_bid[0]} ask={best_ask[0]}")
            else:
                book.best_ask = None
        else:
            book.best_bid = None
            book.best_ask = book._ask_levels[ask_keys[0]] if ask_keys else None
        depth = book.depth
        if len(bid_keys) > depth or len(ask_keys) > depth:
            book.overflows += 1
        return book


def book_event(book: OrderBook, frame: Frame, recv_wall_ms: int) -> OrderBookEvent:
    """The :class:`OrderBookEvent` for ``frame``, just applied to ``book``.

    ``bids`` / ``asks`` / ``u`` / ``seq`` / ``exchange_ts`` / ``cts`` describe the message as
    received (even when it was not applied: check ``valid``); ``best_bid`` / ``best_ask`` are the
    book's top of book after it.
    """
    data = frame.data
    if data.__class__ is dict:
        bids = data.get("b") or []
        asks = data.get("a") or []
        u = data.get("u", book.u)
        seq = data.get("seq")
    else:
        bids = asks = []
        u = book.u
        seq = None
    return OrderBookEvent(
        book.symbol,
        book.category,
        book.topic,
        book.depth,
        frame.type == "snapshot",
        bids,
        asks,
        u if u.__class__ is int else book.u,
        seq if seq.__class__ is int else None,
        frame.ts if frame.ts is not None else 0,
        frame.cts,
        book.recv_time if book.recv_time is not None else 0.0,
        recv_wall_ms,
        book.valid,
        book.best_bid,
        book.best_ask,
        book,
    )
