"""Health end to end: the client against the emulator, real sockets, scaled-down time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hean.core.bus import EventBus
from hean.core.events import EventType, StalenessEvent, SubscriptionStatus
from hean.core.lifecycle import ConnectionState as S
from hean.emulator import Emulator
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from hean.health import HealthMonitor, HealthServer, Stage, StalenessPolicy
from tests.conftest import ms
from tests.e2e.conftest import Recorder, make_ws
from tests.health.conftest import http, until

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
THRESHOLD = ms(300)
CHECK = ms(20)


@pytest.fixture
def recorder(bus: EventBus) -> Recorder:
    return Recorder(bus)


@pytest.fixture
async def ws(bus: EventBus, emulator: Emulator) -> AsyncIterator[BybitPublicWebSocket]:
    client = make_ws(bus, emulator)
    yield client
    await client.disconnect()


async def start(bus: EventBus, ws: BybitPublicWebSocket, **policy: Any) -> HealthMonitor:
    settings: dict[str, Any] = {
        "thresholds": {"tickers": THRESHOLD, "orderbook": THRESHOLD},
        "recycle_after": 30.0,
        "down_after": 30.0,
    }
    settings.update(policy)
    health = HealthMonitor(bus, [ws], policy=StalenessPolicy(**settings), check_interval=CHECK)
    await health.start()
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(SYMBOLS)
    await until(lambda: health.quality.ws_ok, timeout=3)
    return health


def anomaly_lines(caplog: pytest.LogCaptureFixture, symbol: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("[ANOMALY] Stale price detected for " + symbol)
    ]


async def test_paused_symbol_goes_stale_once_is_resubscribed_and_recovers(
    bus: EventBus,
    recorder: Recorder,
    emulator: Emulator,
    ws: BybitPublicWebSocket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "hean.health")
    health = await start(bus, ws)
    eth = health.staleness.get(ws.name, "tickers.ETHUSDT")
    assert eth is not None and eth.messages > 0
    emulator.set_faults(paused_symbols={"ETHUSDT"})
    await until(lambda: bool(recorder.events[EventType.STALENESS]), timeout=3)
    [event] = recorder.events[EventType.STALENESS]
    assert isinstance(event, StalenessEvent)
    assert (event.topic, event.symbol, event.status) == ("tickers.ETHUSDT", "ETHUSDT", "stale")
    last_eth = recorder.ticks("ETHUSDT")[-1].recv_time
    # flagged within its threshold (plus one check period and scheduling slack)
    assert THRESHOLD < event.time - last_eth <= THRESHOLD + CHECK + ms(100)
    # ws_ok false, with the reason, published as an event
    q = health.quality
    assert not q.ws_ok
    assert any(r.startswith("ETHUSDT: stale, no tickers.ETHUSDT update") for r in q.reasons)
    assert not recorder.events[EventType.EXECUTION_QUALITY][-1].ws_ok
    # other symbols stay fresh
    assert not health.staleness.get(ws.name, "tickers.BTCUSDT").stale  # type: ignore[union-attr]
    # the topic was resubscribed (that topic alone), and the emulator confirmed it
    resyncs = [
        e for e in recorder.events[EventType.SUBSCRIPTION] if e.status is SubscriptionStatus.RESYNC
    ]
    assert [e.topic for e in resyncs] == ["tickers.ETHUSDT"]
    await until(lambda: ws.session.subscriptions.status("tickers.ETHUSDT") == "confirmed")
    # many thresholds later: still one anomaly line, still stale, no second resubscribe
    await asyncio.sleep(THRESHOLD * 4)
    assert len(anomaly_lines(caplog, "ETHUSDT")) == 1
    line = anomaly_lines(caplog, "ETHUSDT")[0]
    assert "(topic tickers.ETHUSDT, threshold " in line and "no update for " in line
    assert eth.stage is Stage.STALE and eth.resubscribes == 1
    assert not health.quality.ws_ok
    # resume: the episode ends, ws_ok again
    emulator.set_faults(paused_symbols=set())
    await until(lambda: health.quality.ws_ok, timeout=3)
    assert [e.status for e in recorder.events[EventType.STALENESS]] == ["stale", "recovered"]
    assert any("[RECOVERED] Price updates resumed for ETHUSDT" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert recorder.events[EventType.EXECUTION_QUALITY][-1].ws_ok
    assert ws.stats.reconnects == 0
    await health.stop()


async def test_still_stale_recycles_the_connection_then_marks_the_feed_down(
    bus: EventBus, recorder: Recorder, emulator: Emulator, ws: BybitPublicWebSocket
) -> None:
    health = await start(bus, ws, recycle_after=ms(300), down_after=ms(600))
    [first] = emulator.live_connections("linear")
    emulator.set_faults(paused_symbols={"ETHUSDT"})
    await until(lambda: health.status() == "down" and ws.state is S.LIVE, timeout=5)
    statuses = [e.status for e in recorder.events[EventType.STALENESS]]
    assert statuses == ["stale", "recycled", "down"]
    assert ws.stats.disconnect_reasons == {"stale_data": 1}
    [second] = emulator.live_connections("linear")
    assert second.conn_id != first.conn_id
    assert any("feed down" in r for r in health.quality.reasons)
    emulator.set_faults(paused_symbols=set())
    await until(lambda: health.quality.ws_ok, timeout=3)
    assert recorder.events[EventType.STALENESS][-1].status == "recovered"
    await health.stop()


async def test_health_flips_200_503_200_across_a_blackhole(
    bus: EventBus, recorder: Recorder, emulator: Emulator, ws: BybitPublicWebSocket
) -> None:
    health = await start(bus, ws)
    async with HealthServer(health) as server:

        async def status() -> int:
            return (await http(server.port, "/health")).status

        assert await status() == 200
        emulator.set_faults(blackhole=True)
        t0 = time.monotonic()
        while await status() != 503:
            assert time.monotonic() - t0 < 3, "never went unhealthy"
            await asyncio.sleep(ms(20))
        doc = (await http(server.port, "/health")).json()
        assert doc["ws_ok"] is False and doc["reasons"]
        await until(lambda: ws.stats.reconnects >= 1, timeout=3)
        doc = (await http(server.port, "/health")).json()
        # down while reconnecting; degraded once a new (still blackholed) connection is open
        assert doc["status"] in ("down", "degraded") and doc["ws_ok"] is False
        assert doc["connections"][ws.name]["reconnects"] >= 1
        assert "heartbeat_timeout" in (await http(server.port, "/metrics")).text
        emulator.set_faults(blackhole=False)
        t0 = time.monotonic()
        while await status() != 200:
            assert time.monotonic() - t0 < 10, "never recovered"
            await asyncio.sleep(ms(20))
        doc = (await http(server.port, "/health")).json()
        assert doc["ws_ok"] is True and doc["connections"][ws.name]["state"] == "live"
    await health.stop()


async def test_metrics_match_what_the_emulator_sent(
    bus: EventBus, emulator: Emulator, ws: BybitPublicWebSocket
) -> None:
    health = await start(bus, ws, thresholds={"tickers": 30.0, "orderbook": 30.0})
    await ws.subscribe_orderbook(["BTCUSDT"], 50)
    await ws.wait_subscribed(["orderbook.50.BTCUSDT"], timeout=2)
    await asyncio.sleep(ms(300))
    emulator.set_faults(paused_symbols=set(SYMBOLS))
    [conn] = emulator.live_connections("linear")
    sent = emulator.sent_by_topic(conn.conn_id)
    await until(
        lambda: all(
            (w := health.staleness.get(ws.name, t)) is not None and w.messages == n
            for t, n in sent.items()
        ),
        timeout=3,
    )
    async with HealthServer(health) as server:
        text = (await http(server.port, "/metrics")).text
    counted: dict[str, float] = {}
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for smp in families["hean_ws_messages"].samples:
        assert smp.name == "hean_ws_messages_total" and smp.labels["connection"] == ws.name
        counted[smp.labels["topic"]] = smp.value
    assert set(sent) == {*(f"tickers.{s}" for s in SYMBOLS), "orderbook.50.BTCUSDT"}
    assert counted == {topic: float(n) for topic, n in sent.items()}
    assert all(n > 5 for n in sent.values())
    lag = {s.labels["kind"] for s in families["hean_ws_lag_seconds"].samples}
    assert lag == {"tickers", "orderbook"}
    [up] = families["hean_ws_connection_up"].samples
    assert up.value == 1.0
    rtt_count = [s for s in families["hean_ws_ping_rtt_seconds"].samples
                 if s.name.endswith("_count")]  # fmt: skip
    assert rtt_count[0].value >= 1
    await health.stop()
