"""BybitPublicWebSocket against the built-in emulator: heartbeats, merging, faults, reconnects."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from hean.core.bus import EventBus
from hean.core.events import EventType, SubscriptionStatus
from hean.core.lifecycle import ConnectionState as S
from hean.emulator import Emulator
from hean.exchange.bybit.ws_public import BybitPublicWebSocket, ConnectError
from tests.conftest import ms
from tests.e2e.conftest import FAST_BACKOFF, Recorder, make_ws

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


async def until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def reasons(recorder: Recorder) -> list[str]:
    return [r for _, new, r in recorder.states() if new == "backoff"]


@pytest.mark.emulator(idle_timeout=ms(300))
async def test_pinging_client_outlives_many_idle_cutoffs(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(["BTCUSDT"])
    await asyncio.sleep(ms(300) * 8)  # eight cut-off periods
    assert ws.state is S.LIVE
    assert ws.stats.reconnects == 0 and ws.stats.connects == 1
    assert ws.stats.pongs_received >= 10
    [conn] = emulator.live_connections("linear")
    assert conn.json_pings >= 10
    await ws.disconnect()


@pytest.mark.emulator(idle_timeout=ms(300))
async def test_client_that_does_not_ping_is_cut_and_reconnects(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    """The contrast: with pings far apart the emulator cuts us, and we notice and come back."""
    ws = make_ws(bus, emulator, ping_interval=60.0, pong_timeout=10.0)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(["BTCUSDT"])
    await until(lambda: ws.stats.reconnects >= 1, timeout=3)
    assert reasons(recorder)[0] == "server_close:1006"
    await until(lambda: ws.state is S.LIVE)
    await ws.disconnect()


@pytest.mark.emulator(auto_tick=False)
async def test_every_ticker_message_is_a_tick_and_merged_state_matches(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(SYMBOLS)
    await ws.wait_subscribed([f"tickers.{s}" for s in SYMBOLS], timeout=2)
    await until(lambda: len(recorder.ticks()) == len(SYMBOLS))  # the snapshots
    for _ in range(50):
        emulator.tick("linear", steps=10)
        await asyncio.sleep(0)
    [conn] = emulator.live_connections("linear")
    sent = emulator.sent_by_topic(conn.conn_id)
    total = sum(sent[f"tickers.{s}"] for s in SYMBOLS)
    await until(lambda: len(recorder.ticks()) == total)
    assert total == len(SYMBOLS) * 501
    for symbol in SYMBOLS:
        assert len(recorder.ticks(symbol)) == sent[f"tickers.{symbol}"]
        assert ws.ticker(symbol).fields == emulator.ticker_truth("linear", symbol)  # type: ignore[union-attr]
        assert ws.ticker(symbol).last_price == float(  # type: ignore[union-attr]
            emulator.ticker_truth("linear", symbol)["lastPrice"]
        )
    await ws.disconnect()


@pytest.mark.parametrize("field_times", [False, ["markPrice", "lastPrice"]])
@pytest.mark.emulator(auto_tick=False)
async def test_field_times_option_keeps_only_what_is_asked_and_merges_everything(
    bus: EventBus, recorder: Recorder, emulator: Emulator, field_times: bool | list[str]
) -> None:
    ws = make_ws(bus, emulator, field_times=field_times)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(SYMBOLS)
    await until(lambda: len(recorder.ticks()) == len(SYMBOLS))
    for _ in range(20):
        emulator.tick("linear", steps=10)
        await asyncio.sleep(0)
    [conn] = emulator.live_connections("linear")
    sent = emulator.sent_by_topic(conn.conn_id)
    await until(lambda: len(recorder.ticks()) == sum(sent[f"tickers.{s}"] for s in SYMBOLS))
    allowed = set() if field_times is False else set(field_times)
    for symbol in SYMBOLS:
        ticker = ws.ticker(symbol)
        assert ticker is not None
        assert ticker.fields == emulator.ticker_truth("linear", symbol)
        assert ticker.field_times.keys() == allowed  # the snapshot carried both
    await ws.disconnect()


@pytest.mark.emulator(auto_tick=False)
async def test_most_deltas_carry_no_price_and_none_is_dropped(
    bus: EventBus, emulator: Emulator
) -> None:
    raw: list[bool] = []  # per delta: did it carry lastPrice?
    ws = make_ws(bus, emulator)

    def spy(frame, now):  # type: ignore[no-untyped-def]
        if frame.type == "delta":
            raw.append("lastPrice" in frame.data)
        ws.tickers.apply(frame, now)

    ws.session.routes["tickers.BTCUSDT"] = spy
    ticks: list[object] = []
    bus.subscribe(EventType.TICK, ticks.append)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(["BTCUSDT"])
    await ws.wait_subscribed(["tickers.BTCUSDT"], timeout=2)
    emulator.tick("linear", steps=300)
    await until(lambda: len(ticks) == 301)
    assert len(raw) == 300
    assert sum(raw) / len(raw) < 0.5  # most deltas have no lastPrice ...
    assert len(ticks) == 301  # ... and every one became a TICK
    await ws.disconnect()


async def _detect(
    bus: EventBus, recorder: Recorder, emulator: Emulator, fault: str, expect: str
) -> float:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(SYMBOLS)
    await ws.wait_subscribed([f"tickers.{s}" for s in SYMBOLS], timeout=2)
    [conn] = emulator.live_connections("linear")
    t0 = time.monotonic()
    emulator.set_faults(conn.conn_id, **{fault: True})
    await until(lambda: ws.stats.reconnects >= 1, timeout=3)
    detected = recorder.events[EventType.CONNECTION_STATE][-1].time - t0
    assert reasons(recorder) == [expect]
    # reconnected, resubscribed, and ticks flow again on the new connection
    await until(lambda: ws.state is S.LIVE)
    await ws.wait_subscribed([f"tickers.{s}" for s in SYMBOLS], timeout=2)
    new = [c for c in emulator.live_connections("linear") if c.conn_id != conn.conn_id]
    assert len(new) == 1 and new[0].subscriptions == {f"tickers.{s}" for s in SYMBOLS}
    before = len(recorder.ticks())
    await until(lambda: all(len(recorder.ticks(s)) > 0 for s in SYMBOLS))
    await until(lambda: len(recorder.ticks()) > before + 10)
    await ws.disconnect()
    return detected


async def test_silent_connection_detected_within_ping_interval_plus_pong_timeout(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    detected = await _detect(bus, recorder, emulator, "blackhole", "heartbeat_timeout")
    assert detected <= ms(100) + ms(100) + ms(60)


async def test_unanswered_json_pings_are_detected_even_while_data_flows(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    detected = await _detect(bus, recorder, emulator, "ignore_json_ping", "heartbeat_timeout")
    assert detected <= ms(100) + ms(100) + ms(60)


async def test_slow_dripping_link_is_replaced_and_no_frame_is_garbled(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    """Issue 12, slow drips: the venue sends a frame's bytes a few at a time and everything
    queues behind it, the pong too. Data alone does not keep the link: the late pong does not
    come within pong_timeout, so the link is declared dead and replaced; what did arrive was
    whole and in order (no decode error), and the new link's state equals the venue's."""
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(SYMBOLS)
    await ws.subscribe_orderbook(["BTCUSDT"], 50)
    await ws.wait_subscribed([f"tickers.{s}" for s in SYMBOLS], timeout=2)
    [conn] = emulator.live_connections("linear")
    emulator.set_faults(conn.conn_id, drip=50)  # 50 bytes/s: one ticker frame takes seconds
    await until(lambda: ws.stats.reconnects >= 1, timeout=3)
    assert reasons(recorder) == ["heartbeat_timeout"]
    await until(lambda: ws.state is S.LIVE)
    await ws.wait_subscribed([f"tickers.{s}" for s in SYMBOLS], timeout=2)
    await until(lambda: (b := ws.orderbook("BTCUSDT", 50)) is not None and b.valid)
    before = len(recorder.ticks())
    await until(lambda: len(recorder.ticks()) > before + 10)
    assert ws.stats.decode_errors == 0 and ws.stats.data_errors == 0
    assert ws.stats.reconnects == 1  # replaced once; the new link does not drip
    await ws.disconnect()


@pytest.mark.parametrize(
    ("action", "expect"),
    [
        ("drop", "server_close:1006"),
        ("close1001", "server_close:1001"),
        ("close1012", "server_close:1012"),
        ("reset", "server_close:1006"),
    ],
)
async def test_server_close_and_dropped_tcp_reconnect_and_resubscribe(
    bus: EventBus, recorder: Recorder, emulator: Emulator, action: str, expect: str
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(SYMBOLS)
    await ws.wait_subscribed([f"tickers.{s}" for s in SYMBOLS], timeout=2)
    t0 = time.monotonic()
    if action == "drop":
        assert emulator.drop_connections() == 1
    elif action == "reset":
        assert emulator.reset_connections() == 1
    else:
        assert emulator.close_connections(int(action[5:]), "bye") == 1
    await until(lambda: ws.stats.reconnects >= 1, timeout=2)
    assert time.monotonic() - t0 < 0.5  # noticed at once, not at the next ping
    assert reasons(recorder) == [expect]
    await until(lambda: ws.state is S.LIVE)
    await ws.wait_subscribed([f"tickers.{s}" for s in SYMBOLS], timeout=2)
    before = len(recorder.ticks())
    await until(lambda: len(recorder.ticks()) > before + 10)
    for symbol in SYMBOLS:
        assert ws.ticker(symbol).has_snapshot  # type: ignore[union-attr]
    await ws.disconnect()


async def test_rejected_topic_is_reported_once_and_not_retried(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(["BTCUSDT", "NOPEUSDT", "ETHUSDT"])
    statuses = await ws.wait_subscribed(
        ["tickers.BTCUSDT", "tickers.NOPEUSDT", "tickers.ETHUSDT"], timeout=2
    )
    assert statuses == {
        "tickers.BTCUSDT": "confirmed",
        "tickers.NOPEUSDT": "rejected",
        "tickers.ETHUSDT": "confirmed",
    }
    [rejected] = [
        e
        for e in recorder.events[EventType.SUBSCRIPTION]
        if e.status is SubscriptionStatus.REJECTED
    ]
    assert rejected.topic == "tickers.NOPEUSDT"
    assert rejected.reason == "error:handler not found,topic:tickers.NOPEUSDT"
    [conn] = emulator.live_connections("linear")
    received, pings = conn.frames_received, conn.json_pings
    await asyncio.sleep(ms(500))
    # nothing but pings went out since: no retry loop
    assert conn.json_pings - pings >= 3
    assert conn.frames_received - received == conn.json_pings - pings
    assert all(t.symbol != "NOPEUSDT" for t in recorder.ticks())
    await ws.disconnect()


async def test_delta_before_snapshot_resubscribes_only_that_topic(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(["BTCUSDT", "ETHUSDT"])
    await ws.wait_subscribed(["tickers.BTCUSDT", "tickers.ETHUSDT"], timeout=2)
    await until(lambda: len(recorder.ticks("BTCUSDT")) > 5)
    ws.tickers.reset("tickers.BTCUSDT")  # as if the snapshot had been lost
    await until(
        lambda: any(
            e.status is SubscriptionStatus.RESYNC for e in recorder.events[EventType.SUBSCRIPTION]
        )
    )
    await until(lambda: ws.ticker("BTCUSDT").has_snapshot)  # type: ignore[union-attr]
    resyncs = [
        e.topic
        for e in recorder.events[EventType.SUBSCRIPTION]
        if e.status is SubscriptionStatus.RESYNC
    ]
    assert resyncs == ["tickers.BTCUSDT"]
    assert ws.stats.reconnects == 0  # the connection was not touched
    await until(lambda: len(recorder.ticks("BTCUSDT")) > 30)
    assert ws.ticker("BTCUSDT").fields == emulator.ticker_truth("linear", "BTCUSDT")  # type: ignore[union-attr]
    await ws.disconnect()


@pytest.mark.emulator(auto_tick=False)
async def test_ticker_whose_resubscribe_snapshot_is_lost_is_asked_for_again(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    """Issue 12, defect 1 for tickers: the snapshot of a new subscription is lost, deltas flow
    (one resubscribe), and that resubscribe's snapshot is lost too. The topic must not stay
    without a snapshot while its deltas keep coming: it is asked for again until one comes."""
    topic = "tickers.BTCUSDT"
    ws = make_ws(bus, emulator, book_resync_interval=ms(20), book_repair_timeout=ms(200))
    await ws.connect(timeout=2)
    [conn] = emulator.live_connections("linear")
    lost = [emulator.inject("lose_snapshot", conn_id=conn.conn_id, topic=topic) for _ in "ab"]
    await ws.subscribe_tickers(["BTCUSDT"])
    await ws.wait_subscribed([topic], timeout=2)

    def resyncs() -> list[str]:
        return [
            e.topic
            for e in recorder.events[EventType.SUBSCRIPTION]
            if e.status is SubscriptionStatus.RESYNC
        ]

    while not resyncs():
        emulator.step("linear", quanta=1)  # deltas without a snapshot
        await asyncio.sleep(0.005)
    deadline = time.monotonic() + 3.0
    while not (t := ws.ticker("BTCUSDT")) or not t.has_snapshot:
        if time.monotonic() > deadline:
            break
        emulator.step("linear", quanta=1)  # data keeps flowing all along
        await asyncio.sleep(0.01)
    assert [f.fired for f in lost] == [1, 1]
    ticker = ws.ticker("BTCUSDT")
    assert ticker is not None and ticker.has_snapshot, "ticker left without a snapshot"
    assert resyncs().count(topic) == 2  # asked once more, not in a loop
    emulator.step("linear", quanta=3)
    await until(lambda: ws.ticker("BTCUSDT").fields == emulator.ticker_truth("linear", "BTCUSDT"))  # type: ignore[union-attr]
    assert ws.stats.reconnects == 0
    await ws.disconnect()


@pytest.mark.emulator(auto_tick=False)
@pytest.mark.parametrize(("category", "symbol"), [("spot", "BTCUSDT"), ("inverse", "BTCUSD")])
async def test_spot_and_inverse_tickers(
    bus: EventBus, recorder: Recorder, emulator: Emulator, category: str, symbol: str
) -> None:
    ws = make_ws(bus, emulator, category=category)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers([symbol])
    await ws.wait_subscribed([f"tickers.{symbol}"], timeout=2)
    emulator.tick(category, steps=40)
    await until(lambda: len(recorder.ticks(symbol)) == 41)
    ticks = recorder.ticks(symbol)
    if category == "spot":
        assert all(t.is_snapshot for t in ticks) and ticks[-1].bid is None
    else:
        assert not all(t.is_snapshot for t in ticks) and ticks[-1].bid is not None
    assert ticks[-1].last_price is not None and ticks[-1].category == category
    assert ws.ticker(symbol).fields == emulator.ticker_truth(category, symbol)  # type: ignore[union-attr]
    await ws.disconnect()


async def test_stop_wins_over_reconnect(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    emulator.set_handshake_status(503)
    emulator.drop_connections()
    await until(lambda: ws.state is S.BACKOFF)
    await ws.disconnect()
    assert ws.state is S.CLOSED
    attempts = len([e for e in emulator.connection_log if e[1] == "attempt"])
    await asyncio.sleep(ms(400))
    assert len([e for e in emulator.connection_log if e[1] == "attempt"]) == attempts
    assert recorder.states()[-1][1] == "closed"


async def test_breaker_opens_and_bounds_attempts_while_venue_refuses(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    emulator.set_handshake_status(503)
    emulator.drop_connections()
    await asyncio.sleep(ms(1500))
    attempts = [e[0] for e in emulator.connection_log if e[1] == "attempt"][1:]
    # 5 failures open the breaker for 1 s: a tight loop would have made hundreds
    assert 4 <= len(attempts) <= 8
    assert ws.session.breaker.state.value in ("open", "half_open")
    emulator.set_handshake_status(None)
    await until(lambda: ws.state is S.LIVE, timeout=3)
    assert ws.session.breaker.state.value in ("closed", "half_open")
    await ws.disconnect()


async def test_http_429_retries_slowly(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    emulator.set_handshake_status(429)
    emulator.drop_connections()
    await asyncio.sleep(ms(1200))
    attempts = [e[0] for e in emulator.connection_log if e[1] == "attempt"][1:]
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert 2 <= len(attempts) <= 3  # 1.2 s at >= 0.5 s apart
    assert all(g >= FAST_BACKOFF.slow_floor * 0.95 for g in gaps)
    assert "http_429" in reasons(recorder)
    await ws.disconnect()


async def test_connect_to_nothing_fails_plainly_and_cleanly(bus: EventBus) -> None:
    ws = BybitPublicWebSocket(
        bus, "linear", url="ws://127.0.0.1:9/v5/public/linear", backoff=FAST_BACKOFF
    )
    t0 = time.monotonic()
    with pytest.raises(ConnectError, match="connect_refused"):
        await ws.connect(timeout=ms(500))
    assert time.monotonic() - t0 < 1.5
    assert ws.state is S.CLOSED


async def test_slow_subscriber_never_blocks_the_reader(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    slept = []

    async def sleepy(event: object) -> None:
        slept.append(event)
        await asyncio.sleep(0.05)

    sub = bus.subscribe_async(EventType.TICK, sleepy, maxsize=10)
    ws = make_ws(bus, emulator)
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(SYMBOLS)
    await asyncio.sleep(ms(800))
    assert ws.stats.reconnects == 0  # heartbeats kept flowing
    published = len(recorder.ticks())
    assert published > 100
    assert sub.dropped > 0 and sub.depth <= 10
    assert published == sub.delivered + sub.dropped + sub.depth
    await ws.disconnect()


def test_bad_user_input_is_refused_clearly() -> None:
    bus = EventBus()
    with pytest.raises(ValueError, match="unknown category"):
        BybitPublicWebSocket(bus, "futures")
    with pytest.raises(ValueError, match="ws://"):
        BybitPublicWebSocket(bus, "linear", url="http://x")
    with pytest.raises(ValueError, match="ping interval"):
        BybitPublicWebSocket(bus, "linear", ping_interval=0)
    assert BybitPublicWebSocket(bus, "spot", testnet=False).url == (
        "wss://stream.bybit.com/v5/public/spot"
    )
    assert BybitPublicWebSocket(bus, "linear").url == (
        "wss://stream-testnet.bybit.com/v5/public/linear"
    )


async def test_recycle_drops_reconnects_and_resubscribes_with_the_reason(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    ws = make_ws(bus, emulator)
    ws.recycle("stale_data")  # not live yet: nothing to do
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(["BTCUSDT"])
    await ws.wait_subscribed(["tickers.BTCUSDT"], timeout=2)
    [first] = emulator.live_connections("linear")
    ws.recycle("stale_data")
    await until(lambda: ws.stats.reconnects == 1)
    assert reasons(recorder) == ["stale_data"]
    await until(lambda: ws.state is S.LIVE)
    await ws.wait_subscribed(["tickers.BTCUSDT"], timeout=2)
    [second] = emulator.live_connections("linear")
    assert second.conn_id != first.conn_id and second.subscriptions == {"tickers.BTCUSDT"}
    await ws.disconnect()


async def test_oversized_frame_is_reported_as_our_close_without_a_stray_traceback(
    bus: EventBus, recorder: Recorder, emulator: Emulator
) -> None:
    """Issue 12, defect 3: HEAN closes a connection whose frame is over its size limit. The
    reason says so (not server_close:1009 / 1006) and no 'Future exception was never
    retrieved ... WSProtocolError' is logged."""
    import gc

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        ws = make_ws(bus, emulator, max_message_size=64 * 1024)
        await ws.connect(timeout=2)
        await ws.subscribe_tickers(SYMBOLS)
        await ws.wait_subscribed([f"tickers.{s}" for s in SYMBOLS], timeout=2)
        for _ in range(2):
            live = ws.stats.connects
            emulator.inject("oversized", size=256 * 1024)
            await until(lambda live=live: ws.stats.connects > live and ws.state is S.LIVE)
        assert reasons(recorder) == ["local_close:message_too_big"] * 2
        assert ws.session.stats.disconnect_reasons == {"local_close:message_too_big": 2}
        await ws.disconnect()
        gc.collect()  # an unretrieved future exception is reported when the future is freed
        await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("message") for c in unhandled] == []
