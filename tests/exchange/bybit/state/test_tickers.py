from __future__ import annotations

import json

import pytest

from hean.exchange.bybit.protocol.codec import decode
from hean.exchange.bybit.state.tickers import TickerCache
from tests.conftest import example, example_bytes


def test_snapshot_then_partial_deltas_merge_without_a_price() -> None:
    cache = TickerCache("linear")
    snap = example("tickers_linear_snapshot")
    state = cache.apply(decode(example_bytes("tickers_linear_snapshot")), 1.0)
    assert not state.needs_resync and state.has_snapshot
    assert state.fields == snap["data"]
    assert state.last_price == float(snap["data"]["lastPrice"])
    assert state.bid == float(snap["data"]["bid1Price"])
    assert state.exchange_ts == snap["ts"] and state.cs == snap["cs"]
    delta = {
        "topic": "tickers.BTCUSDT",
        "type": "delta",
        "cs": 2,
        "ts": 5,
        "data": {"symbol": "BTCUSDT", "markPrice": "1.5", "ask1Price": "66667.00"},
    }
    state = cache.apply(decode(json.dumps(delta)), 2.0)
    assert not state.needs_resync
    assert state.get("markPrice") == "1.5"
    assert state.get("lastPrice") == snap["data"]["lastPrice"]  # unchanged, kept
    assert state.ask == 66667.0 and state.last_price == float(snap["data"]["lastPrice"])
    assert state.field_age("markPrice", 3.0) == pytest.approx(1.0)
    assert state.field_age("lastPrice", 3.0) == pytest.approx(2.0)
    assert state.field_age("nope", 3.0) is None
    assert cache.get("BTCUSDT") is state and state.deltas == 1


def test_snapshot_marks_only_changed_fields_as_changed() -> None:
    cache = TickerCache("linear")
    cache.apply(decode(example_bytes("tickers_linear_snapshot")), 1.0)
    snap = example("tickers_linear_snapshot")
    snap["data"]["markPrice"] = "1.0"
    state = cache.apply(decode(json.dumps(snap)), 5.0)
    assert state.field_times["markPrice"] == 5.0
    assert state.field_times["lastPrice"] == 1.0


def test_delta_before_snapshot_is_merged_and_asks_for_one_resync() -> None:
    cache = TickerCache("linear")
    frame = decode(example_bytes("tickers_linear_delta"))
    state = cache.apply(frame, 1.0)
    assert state.needs_resync and not state.has_snapshot
    state.needs_resync = False  # the caller resubscribes and clears it
    assert state.get("markPrice") == example("tickers_linear_delta")["data"]["markPrice"]
    state = cache.apply(frame, 1.1)
    assert not state.needs_resync  # asked once, not per delta
    cache.apply(decode(example_bytes("tickers_linear_snapshot")), 1.2)
    cache.reset("tickers.BTCUSDT")
    state = cache.apply(frame, 1.3)
    assert state.needs_resync


def test_repair_is_asked_per_snapshotless_run_and_its_end_reported() -> None:
    asked: list[tuple[str, float]] = []
    repaired: list[tuple[str, float]] = []
    cache = TickerCache(
        "linear", on_resync=lambda t, now: asked.append((t, now)),
        on_repaired=lambda t, now: repaired.append((t, now)),
    )  # fmt: skip
    delta = decode(example_bytes("tickers_linear_delta"))
    snapshot = decode(example_bytes("tickers_linear_snapshot"))
    cache.apply(delta, 1.0)
    cache.apply(delta, 1.1)
    assert asked == [("tickers.BTCUSDT", 1.0)] and repaired == []
    cache.apply(snapshot, 2.0)
    cache.apply(snapshot, 2.1)  # a snapshot with no repair under way reports nothing
    assert repaired == [("tickers.BTCUSDT", 2.0)]
    cache.apply(delta, 3.0)
    cache.reset("tickers.BTCUSDT")  # unsubscribed before (or while) a repair was asked
    cache.apply(delta, 4.0)
    cache.reset("tickers.BTCUSDT")
    cache.apply(delta, 5.0)  # each snapshot-less run after a reset asks again
    assert asked[1:] == [("tickers.BTCUSDT", 4.0), ("tickers.BTCUSDT", 5.0)]


def test_spot_snapshot_only_has_no_bid_ask() -> None:
    cache = TickerCache("spot")
    state = cache.apply(decode(example_bytes("tickers_spot")), 1.0)
    assert state.last_price == float(example("tickers_spot")["data"]["lastPrice"])
    assert state.bid is None and state.ask is None


def test_option_bid_ask_keys() -> None:
    cache = TickerCache("option")
    state = cache.apply(decode(example_bytes("tickers_option")), 1.0)
    data = example("tickers_option")["data"]
    assert state.bid == float(data["bidPrice"]) and state.ask == float(data["askPrice"])


def test_bad_values_do_not_raise_and_bad_shapes_do() -> None:
    cache = TickerCache("linear")
    frame = decode(
        b'{"topic":"tickers.X","type":"snapshot","ts":1,'
        b'"data":{"symbol":"X","lastPrice":"","bid1Price":null}}'
    )
    state = cache.apply(frame, 1.0)
    assert state.last_price is None and state.bid is None
    with pytest.raises(ValueError):
        cache.apply(decode(b'{"topic":"tickers.X","type":"delta","data":[1]}'), 1.0)
    with pytest.raises(ValueError):
        TickerCache("futures")


def test_prices_parse_every_form_bybit_might_send() -> None:
    cache = TickerCache("linear")
    cache.apply(
        decode(
            b'{"topic":"tickers.X","type":"snapshot","ts":1,"data":{"symbol":"X",'
            b'"lastPrice":"67234.50","bid1Price":"0.00001234","ask1Price":"67235"}}'
        ),
        1.0,
    )
    state = cache.get("X")
    assert state is not None
    assert (state.last_price, state.bid, state.ask) == (67234.5, 0.00001234, 67235.0)
    assert state.get("lastPrice") == "67234.50"  # the exact string is kept
    # numbers instead of strings, and a form JSON does not allow, still parse
    cache.apply(
        decode(b'{"topic":"tickers.X","type":"delta","data":{"lastPrice":12,"bid1Price":".5"}}'),
        2.0,
    )
    assert (state.last_price, state.bid, state.ask) == (12.0, 0.5, 67235.0)
    # an emptied ask becomes None; the others keep their last value
    cache.apply(decode(b'{"topic":"tickers.X","type":"delta","data":{"ask1Price":""}}'), 3.0)
    assert (state.last_price, state.bid, state.ask) == (12.0, 0.5, None)


def test_field_times_follow_each_read() -> None:
    cache = TickerCache("linear")
    cache.apply(decode(example_bytes("tickers_linear_snapshot")), 1.0)
    state = cache.get("BTCUSDT")
    assert state is not None
    first = dict(state.field_times)
    for now, fields in (
        (2.0, {"markPrice": "1"}),
        (2.0, {"bid1Price": "2"}),
        (3.0, {"markPrice": "3"}),
    ):
        data = {"symbol": "BTCUSDT", **fields}
        frame = {"topic": "tickers.BTCUSDT", "type": "delta", "ts": 9, "data": data}
        cache.apply(decode(json.dumps(frame)), now)
    assert state.field_times["markPrice"] == 3.0
    assert state.field_times["bid1Price"] == 2.0
    assert state.field_times["lastPrice"] == first["lastPrice"] == 1.0
    assert state.field_age("markPrice", 4.5) == 1.5
    assert state.field_age("nope", 4.5) is None


@pytest.mark.parametrize("track", [None, ()])
def test_last_message_is_what_the_last_message_carried(track: tuple[str, ...] | None) -> None:
    # a publisher forwarding deltas as deltas (the gateway) reads it; two messages of one read
    # (the same `now`) must not be mixed, whatever field times are kept
    cache = TickerCache("linear", track_fields=track)
    snap = example("tickers_linear_snapshot")
    state = cache.apply(decode(example_bytes("tickers_linear_snapshot")), 1.0)
    assert state.last_message == snap["data"]
    for fields in ({"markPrice": "1"}, {"bid1Price": "2"}):
        data = {"symbol": "BTCUSDT", **fields}
        frame = {"topic": "tickers.BTCUSDT", "type": "delta", "ts": 9, "data": data}
        cache.apply(decode(json.dumps(frame)), 2.0)
        assert state.last_message == data
    assert state.fields["markPrice"] == "1" and state.fields["bid1Price"] == "2"


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        (None, {"symbol", "markPrice", "bid1Price", "lastPrice"}),
        (("markPrice", "lastPrice"), {"markPrice", "lastPrice"}),
        ((), set()),
    ],
)
def test_track_fields_limits_which_change_times_are_kept(
    track: tuple[str, ...] | None, expected: set[str]
) -> None:
    cache = TickerCache("linear", track_fields=track)
    snap = b'{"topic":"tickers.X","type":"snapshot","data":{"symbol":"X","lastPrice":"1"}}'
    cache.apply(decode(snap), 1.0)
    delta = (
        b'{"topic":"tickers.X","type":"delta",'
        b'"data":{"symbol":"X","markPrice":"2","bid1Price":"3"}}'
    )
    state = cache.apply(decode(delta), 2.0)
    assert set(state.field_times) == expected
    # merging, prices and events do not depend on it
    assert state.fields == {"symbol": "X", "lastPrice": "1", "markPrice": "2", "bid1Price": "3"}
    assert (state.last_price, state.bid) == (1.0, 3.0)
    assert state.tracks("markPrice") is (track is None or "markPrice" in track)
    assert state.field_age("bid1Price", 3.0) == (1.0 if "bid1Price" in expected else None)


def test_track_fields_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError, match="collection of field names"):
        TickerCache("linear", track_fields="markPrice")
