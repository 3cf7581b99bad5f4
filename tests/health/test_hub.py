"""The monitor over a StreamHub: connections are discovered as the hub opens them."""

from __future__ import annotations

from hean.core.bus import EventBus
from hean.emulator import Emulator
from hean.health import HealthMonitor, HealthServer, StalenessPolicy
from tests.conftest import ms
from tests.health.conftest import http, until
from tests.hub.conftest import make_hub


async def test_hub_connections_are_discovered_and_judged(bus: EventBus, emulator: Emulator) -> None:
    hub = make_hub(emulator, bus=bus)
    health = HealthMonitor(
        bus,
        discover=hub.connections,
        policy=StalenessPolicy(thresholds={"tickers": ms(300)}),
        check_interval=ms(20),
    )
    await health.start()
    assert health.quality.reasons == ("no connections",)
    consumer = hub.consumer("strategy")
    await consumer.subscribe_tickers(["BTCUSDT", "ETHUSDT"])
    await consumer.subscribe_tickers(["BTCUSDT"], category="spot")
    await until(lambda: health.quality.ws_ok, timeout=5)
    assert set(health.feeds) == {"public/linear", "public/spot"}
    [conn] = emulator.live_connections("linear")
    sent = emulator.sent_by_topic(conn.conn_id)
    assert sent["tickers.ETHUSDT"] > 0
    emulator.set_faults(paused_symbols={"ETHUSDT"})
    await until(lambda: not health.quality.ws_ok, timeout=3)
    assert any(r.startswith("ETHUSDT: stale") for r in health.quality.reasons)
    async with HealthServer(health) as server:
        doc = (await http(server.port, "/health")).json()
        assert doc["status"] == "degraded"
        assert set(doc["connections"]) == {"public/linear", "public/spot"}
        assert doc["topics"]["public/linear"]["tickers.ETHUSDT"]["stale"] is True
    emulator.set_faults(paused_symbols=set())
    await until(lambda: health.quality.ws_ok, timeout=3)
    await consumer.close()
    await hub.close()
    await until(lambda: not health.feeds, timeout=5)
    await until(lambda: health.quality.reasons == ("no connections",), timeout=2)
    await health.stop()
