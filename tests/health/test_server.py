"""HealthServer: routes, status codes, loopback-only by default, and no secret in any page."""

from __future__ import annotations

import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, SecretStr

from hean.core.bus import EventBus
from hean.core.clock import ManualClock
from hean.core.events import EventType, SubscriptionEvent, SubscriptionStatus
from hean.health import HealthMonitor, HealthServer, StalenessPolicy, is_loopback
from tests.health.conftest import http
from tests.health.test_monitor import SYMBOLS, Harness


@pytest.fixture
async def harness() -> Harness:
    bus = EventBus()
    await bus.start()
    return Harness(bus, ManualClock(), policy=StalenessPolicy(), check_interval=0.1)


def test_is_loopback() -> None:
    for host in ("127.0.0.1", "127.5.6.7", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "10.1.2.3", "192.168.0.1", "example.com"):
        assert not is_loopback(host), host


async def test_non_loopback_bind_is_refused_unless_allowed(harness: Harness) -> None:
    for host in ("0.0.0.0", "::", "", "10.0.0.1", "example.com"):
        with pytest.raises(ValueError, match="not a loopback address"):
            HealthServer(harness.health, host)
    server = HealthServer(harness.health, "0.0.0.0", 0, allow_remote=True)
    await server.start()
    try:
        assert server.port > 0
        assert (await http(server.port, "/health")).status == 503
    finally:
        await server.stop()


async def test_default_bind_is_loopback(harness: Harness) -> None:
    async with HealthServer(harness.health) as server:
        assert server.host == "127.0.0.1" and server.url == f"http://127.0.0.1:{server.port}/"
        assert server._server is not None
        for sock in server._server.sockets:
            assert sock.getsockname()[0] == "127.0.0.1"
        # not reachable on another address of this machine
        other = _non_loopback_address()
        if other is not None:
            with pytest.raises(OSError):
                await http(server.port, "/health", host=other, timeout=1.0)


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent for a UDP connect
            addr = str(s.getsockname()[0])
    except OSError:
        return None
    return None if is_loopback(addr) else addr


async def test_routes_methods_and_status_codes(harness: Harness) -> None:
    h = harness
    async with HealthServer(h.health, title="Desk <1>") as server:
        port = server.port
        r = await http(port, "/health")
        assert r.status == 503 and r.headers["content-type"] == "application/json"
        assert r.json()["status"] == "down" and r.json()["ws_ok"] is False
        h.go_live()
        h.subscribe([f"tickers.{s}" for s in SYMBOLS])
        h.advance(1.0)
        r = await http(port, "/health")
        doc = r.json()
        assert r.status == 200 and doc["status"] == "ok" and doc["reasons"] == []
        assert doc["connections"]["public/linear"]["state"] == "live"
        assert doc["connections"]["public/linear"]["circuit_breaker"] == "closed"
        assert set(doc["topics"]["public/linear"]) == {"tickers.BTCUSDT", "tickers.ETHUSDT"}
        assert r.headers["cache-control"] == "no-store"
        r = await http(port, "/health", method="HEAD")
        assert r.status == 200 and r.body == b"" and int(r.headers["content-length"]) > 10
        r = await http(port, "/metrics")
        assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(r.text)}
        assert {"hean_ws_ok", "hean_ws_messages", "hean_ws_reconnects", "hean_topic_stale"} <= (
            names
        )
        r = await http(port, "/api/state")
        assert r.status == 200 and r.json()["title"] == "Desk <1>"
        r = await http(port, "/")
        assert r.status == 200 and r.headers["content-type"].startswith("text/html")
        assert "Desk &lt;1&gt;" in r.text and "Desk <1>" not in r.text
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "http://" not in r.text and "https://" not in r.text  # self-contained
        assert (await http(port, "/nope")).status == 404
        r = await http(port, "/health", method="POST")
        assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
        assert (await http(port, "/", raw=b"garbage\r\n\r\n")).status == 400
        big = b"GET / HTTP/1.1\r\nX: " + b"a" * 40_000 + b"\r\n\r\n"
        assert (await http(port, "/", raw=big)).status == 400
        assert server.requests == 8  # the two malformed ones are not requests
        # stale: 503 again, with the reason
        h.advance(6.0, symbols=["BTCUSDT"])
        r = await http(port, "/health")
        assert r.status == 503 and r.json()["status"] == "degraded"
        assert any("ETHUSDT: stale" in reason for reason in r.json()["reasons"])


class ApiConfig(BaseModel):
    """Stands for any configuration with fields marked secret."""

    api_key: SecretStr
    api_secret: SecretStr
    account_id: SecretStr
    testnet: bool = True


async def test_no_secret_in_any_page_or_label() -> None:
    config = ApiConfig(
        api_key=SecretStr("KEYkeyKEY123456"),
        api_secret=SecretStr("s3cr3tS3CR3Ts3cr3t"),
        account_id=SecretStr("UID-987654321"),
    )
    bus = EventBus()
    await bus.start()
    clock = ManualClock()
    h = Harness(bus, clock)
    # A careless URL (credentials in user info and query) and an exchange message echoing them.
    h.ws.url = "wss://UID-987654321:s3cr3tS3CR3Ts3cr3t@host/v5/private?api_key=KEYkeyKEY123456"
    h.go_live()
    h.subscribe(["tickers.BTCUSDT", "tickers.X"])
    topics = h.ws.session.subscriptions.topics
    topics["tickers.X"] = topics["tickers.X"].__class__("rejected")
    bus.publish(
        EventType.SUBSCRIPTION,
        SubscriptionEvent("public/linear", "tickers.X", SubscriptionStatus.REJECTED,
                          "bad key KEYkeyKEY123456 for UID-987654321", 0.0),
    )  # fmt: skip
    h.advance(0.5, symbols=["BTCUSDT"])
    secrets = ["KEYkeyKEY123456", "s3cr3tS3CR3Ts3cr3t", "UID-987654321"]
    async with HealthServer(h.health, secrets=[config]) as server:
        paths = ("/health", "/api/state", "/", "/metrics")
        bodies = [(await http(server.port, p)).text for p in paths]
        assert "****" in bodies[0]  # the rejection reason is shown, masked
        for body in bodies:
            for secret in secrets:
                assert secret not in body
        text = (await http(server.port, "/metrics")).text
        for family in text_string_to_metric_families(text):
            for smp in family.samples:
                for value in smp.labels.values():
                    assert not any(s in value for s in secrets)
    await bus.stop()


async def test_monitor_and_server_with_real_clock_start_and_stop() -> None:
    bus = EventBus()
    await bus.start()
    health = HealthMonitor(bus, check_interval=0.01)
    await health.start()
    assert health.running
    async with HealthServer(health) as server:
        r = await http(server.port, "/health")
        assert r.status == 503 and r.json()["reasons"] == ["no connections"]
    await health.stop()
    assert not health.running
    await bus.stop()
