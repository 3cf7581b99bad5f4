"""The replay's merged topic state: the snapshot a late joiner gets is the venue's state."""

from __future__ import annotations

import msgspec

from hean.replay.state import TopicStates

PATH = "/v5/public/linear"
BOOK = "orderbook.50.BTCUSDT"


def book(kind: str, u: int, bids: list[list[str]], asks: list[list[str]]) -> bytes:
    return msgspec.json.encode(
        {"topic": BOOK, "type": kind, "ts": 1000 + u, "cts": 900 + u,
         "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": 50 + u}}
    )  # fmt: skip


def test_book_snapshot_then_deltas_merge_exactly() -> None:
    states = TopicStates()
    assert states.snapshot(PATH, BOOK) is None
    states.apply(PATH, BOOK, book("delta", 1, [["1", "1"]], []))  # before any snapshot: no state
    assert states.snapshot(PATH, BOOK) is None
    states.apply(PATH, BOOK, book("snapshot", 5, [["100.5", "1"], ["100", "2"]], [["101", "3"]]))
    states.apply(PATH, BOOK, book("delta", 6, [["100.50", "0"], ["99.5", "4"]], [["102", "1"]]))
    states.apply(PATH, BOOK, book("delta", 7, [["100.2", "7"]], [["101", "0.000"]]))
    snap = msgspec.json.decode(states.snapshot(PATH, BOOK))
    assert snap == {
        "topic": BOOK, "type": "snapshot", "ts": 1007, "cts": 907,
        "data": {"s": "BTCUSDT", "b": [["100.2", "7"], ["100", "2"], ["99.5", "4"]],
                 "a": [["102", "1"]], "u": 7, "seq": 57},
    }  # fmt: skip
    states.apply(PATH, BOOK, book("snapshot", 1, [["10", "1"]], [["11", "1"]]))  # a reset
    assert msgspec.json.decode(states.snapshot(PATH, BOOK))["data"]["b"] == [["10", "1"]]
    assert states.snapshot("/v5/public/spot", BOOK) is None  # per endpoint path


def test_ticker_deltas_merge_into_the_snapshot() -> None:
    states = TopicStates()
    topic = "tickers.BTCUSDT"
    frames = [
        {"topic": topic, "type": "snapshot", "cs": 1, "ts": 10,
         "data": {"symbol": "BTCUSDT", "lastPrice": "1", "bid1Price": "0.9", "volume24h": "5"}},
        {"topic": topic, "type": "delta", "cs": 2, "ts": 11, "data": {"symbol": "BTCUSDT",
                                                                    "bid1Price": "0.95"}},
        {"topic": topic, "type": "delta", "cs": 3, "ts": 12, "data": {"symbol": "BTCUSDT",
                                                                    "lastPrice": "2"}},
    ]  # fmt: skip
    for frame in frames:
        states.apply(PATH, topic, msgspec.json.encode(frame))
    assert msgspec.json.decode(states.snapshot(PATH, topic)) == {
        "topic": topic, "type": "snapshot", "cs": 3, "ts": 12,
        "data": {"symbol": "BTCUSDT", "lastPrice": "2", "bid1Price": "0.95", "volume24h": "5"},
    }  # fmt: skip
    states.forget(PATH, [topic])
    assert states.snapshot(PATH, topic) is None and len(states) == 0


def test_bad_frames_are_counted_and_drop_the_state() -> None:
    states = TopicStates()
    states.apply(PATH, BOOK, book("snapshot", 5, [["100", "2"]], [["101", "3"]]))
    states.apply(PATH, BOOK, b'{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{"u":"x"}}')
    assert states.snapshot(PATH, BOOK) is None
    states.apply(PATH, BOOK, book("snapshot", 6, [["100", "2"]], [["101", "3"]]))
    states.apply(PATH, BOOK, book("delta", 7, [["1e5", "1"]], []))
    states.apply(PATH, "publicTrade.BTCUSDT", b"not json")  # not followed: ignored
    assert states.malformed == 2 and states.snapshot(PATH, BOOK) is None
