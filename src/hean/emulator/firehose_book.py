"""Order-book firehose frames: pre-encoded ``orderbook.50`` / ``orderbook.200`` traffic.

The frames come from the real market model (:mod:`hean.emulator.market`) and the same publisher
the live emulator uses (:class:`~hean.emulator.publishers.BookPublisher`): one snapshot per
symbol, then ``messages`` deltas round-robin over the symbols. For each delta the symbol's market
moves one push interval of its depth (20 ms for 50 levels, 100 ms for 200), so deltas aggregate
what changed in that time, ``u`` is consecutive per topic, sizes of ``"0"`` delete and levels
leaving the window are deleted too. ``truth`` holds every symbol's published window after the
last frame: what a client applying every frame must hold.

Deltas cannot be replayed (``u`` would repeat), so the server refuses ``repeat`` > 1 for them.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence

from hean.emulator.config import DEFAULT_BOOK_INTERVALS
from hean.emulator.market import Market
from hean.emulator.publishers import BookPublisher
from hean.emulator.streamfaults import ws_text_frame

__all__ = ["BOOK_TOPICS", "build_book_frames"]

#: firehose topics with order-book traffic -> depth
BOOK_TOPICS: dict[str, int] = {"orderbook.50": 50, "orderbook.200": 200}


def build_book_frames(
    messages: int,
    names: Sequence[str],
    *,
    depth: int = 50,
    category: str = "linear",
    seed: int = 1,
    now_ms: int = 1_700_000_000_000,
) -> tuple[bytes, array[int], dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]]:
    """``(blob, offsets, truth)`` of snapshot + delta frames (see the module docstring)."""
    if messages < 0:
        raise ValueError(f"messages must be >= 0, got {messages}")
    if depth not in (1, 50, 200, 1000):
        raise ValueError(f"depth must be 1, 50, 200 or 1000, got {depth!r}")
    if category not in ("linear", "inverse", "spot"):
        raise ValueError(f"category must be linear, inverse or spot, got {category!r}")
    if not names:
        raise ValueError("need at least one symbol")
    market = Market({category: list(names)}, random.Random(seed), now_ms)
    markets = market.markets(category)
    dt = DEFAULT_BOOK_INTERVALS[depth]
    step_ms = max(1, round(dt * 1000))
    clocks = [now_ms] * len(markets)
    publishers = []
    blob = bytearray()
    offsets = array("Q", [0])
    for sym in markets:
        pub = BookPublisher(sym, depth)
        pub.prime(now_ms)
        publishers.append(pub)
        blob += ws_text_frame(pub.snapshot(now_ms))
        offsets.append(len(blob))
    m = len(markets)
    for i in range(messages):
        k = i % m
        sym, pub = markets[k], publishers[k]
        data: bytes | None = None
        while data is None:  # a quiet interval has no delta: move on until the book changed
            clocks[k] += step_ms
            sym.advance(clocks[k], dt)
            data = pub.refresh(clocks[k])
        blob += ws_text_frame(data)
        offsets.append(len(blob))
    truth = {}
    for sym, pub in zip(markets, publishers, strict=True):
        spec = sym.spec
        truth[sym.symbol] = (
            [(spec.price_str(p), spec.qty_str(q)) for p, q in pub.bids],
            [(spec.price_str(p), spec.qty_str(q)) for p, q in pub.asks],
        )
    return bytes(blob), offsets, truth
