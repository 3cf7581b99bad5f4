"""Private streams under the health monitor: auth state on /health and /metrics, no secret shown.

Uses the stand-in private server of tests/exchange/bybit/protocol/test_auth_streams_socket.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hean.core.bus import EventBus
from hean.core.config import Settings
from hean.exchange.bybit.protocol.auth import AuthError
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.health import HealthMonitor, HealthServer
from tests.exchange.bybit.protocol.test_auth_streams_socket import FAST, KEY, SECRET, FakeBybit
from tests.health.conftest import http, until


@pytest.fixture
async def fake() -> AsyncIterator[FakeBybit]:
    async with FakeBybit() as server:
        yield server


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


async def pages(port: int) -> list[str]:
    return [(await http(port, p)).text for p in ("/health", "/api/state", "/", "/metrics")]


async def test_authenticated_private_stream_is_healthy_and_nothing_secret_is_shown(
    fake: FakeBybit, bus: EventBus
) -> None:
    settings = Settings(api_key=KEY, api_secret=SECRET)  # the configuration marked secret
    creds = settings.credentials()
    ws = BybitPrivateWebSocket(
        bus, api_key=creds.api_key, api_secret=creds.api_secret,
        url=fake.url("/v5/private"), backoff=FAST,
    )  # fmt: skip
    health = HealthMonitor(bus, [ws], check_interval=0.02)
    await health.start()
    async with HealthServer(health, secrets=[settings]) as server:
        await ws.connect(timeout=3)
        await ws.subscribe(["order", "wallet"])
        await until(lambda: health.quality.ws_ok, timeout=3)
        r = await http(server.port, "/health")
        doc = r.json()
        assert r.status == 200 and doc["connections"][ws.name]["auth"] == "ok"
        assert doc["topics"] == {
            ws.name: {}
        }  # private topics are not market data: not judged for age
        m = samples((await http(server.port, "/metrics")).text)
        assert m[("hean_auth_state", (("connection", ws.name), ("state", "ok")))] == 1.0
        assert m[("hean_auth_state", (("connection", ws.name), ("state", "failed")))] == 0.0
        for body in await pages(server.port):
            assert KEY not in body and SECRET not in body
    await ws.disconnect()
    await health.stop()


async def test_rejected_auth_is_unhealthy_with_the_reason(fake: FakeBybit, bus: EventBus) -> None:
    ws = BybitPrivateWebSocket(
        bus, api_key=KEY, api_secret=SECRET + "-wrong", url=fake.url("/v5/private"),
        backoff=FAST, auth_retry_interval=30.0,
    )  # fmt: skip
    health = HealthMonitor(bus, [ws], check_interval=0.02)
    await health.start()
    async with HealthServer(health) as server:
        with pytest.raises(AuthError):
            await ws.connect(timeout=3)
        await until(lambda: any("authentication failed" in r for r in health.quality.reasons))
        r = await http(server.port, "/health")
        doc = r.json()
        assert r.status == 503 and doc["status"] == "down"
        assert doc["connections"][ws.name]["auth"] == "failed"
        assert f"connection {ws.name}: authentication failed (bad_signature)" in doc["reasons"]
        m = samples((await http(server.port, "/metrics")).text)
        name = ws.name
        assert m[("hean_auth_state", (("connection", name), ("state", "failed")))] == 1.0
        key = ("hean_auth_failures_total", (("connection", name), ("reason", "bad_signature")))
        assert m[key] == 1.0
        for body in await pages(server.port):
            assert KEY not in body and SECRET not in body
    await ws.disconnect()
    await health.stop()
