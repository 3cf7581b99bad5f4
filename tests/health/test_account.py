"""An account under the health monitor, against the emulator: ``ws_ok`` and ``/health`` say
"account reconciling" from the private gap until the reconciliation completes, the account's own
private connection is listed with its auth state, and /metrics carries the account's figures."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hean.account import Account
from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.rest import BybitRestClient, RetryPolicy
from hean.health import HealthMonitor, HealthServer
from tests.conftest import ms
from tests.health.conftest import http, until

BACKOFF = BackoffPolicy(
    first=ms(20),
    cap=ms(100),
    slow_floor=ms(200),
    try_again_floor=ms(100),
    failure_threshold=50,
    cooldown=ms(500),
    max_cooldown=ms(1000),
    stable_after=ms(100),
)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(
        ticker_interval=ms(10), auto_tick=False, trade_rate_limit=1000, rest_rate_scale=100.0
    )
    async with Emulator(config) as e:
        yield e


@pytest.fixture
async def account(emu: Emulator, bus: EventBus) -> AsyncIterator[Account]:
    async with BybitRestClient(
        api_key=DEFAULT_API_KEY,
        api_secret=DEFAULT_API_SECRET,
        url=emu.rest_url(),
        retry=RetryPolicy(max_retries=1, base_delay=ms(20), max_delay=ms(50)),
    ) as rest:
        acct = Account(
            bus,
            rest,
            api_key=DEFAULT_API_KEY,
            api_secret=DEFAULT_API_SECRET,
            private_url=emu.url("private"),
            private_options={
                "ping_interval": ms(100),
                "pong_timeout": ms(150),
                "connect_timeout": ms(1000),
                "auth_timeout": ms(1000),
                "backoff": BACKOFF,
                "rng": random.Random(3),
            },
            subscribe_timeout=ms(3000),
            retry_first=ms(50),
            retry_max=ms(200),
        )
        yield acct
        await acct.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


async def test_ws_ok_is_false_while_the_account_reconciles(
    emu: Emulator, bus: EventBus, account: Account
) -> None:
    health = HealthMonitor(bus, check_interval=0.02)
    health.add_account(account)
    quality: list[Any] = []
    bus.subscribe(EventType.EXECUTION_QUALITY, quality.append, name="test")
    await health.start()
    server = HealthServer(health, port=0)
    await server.start()
    try:
        assert not health.quality.ws_ok
        assert "account account reconciling" in health.quality.reasons
        await account.start()
        await until(lambda: health.quality.ws_ok)
        ok, doc = health.health()
        assert ok and doc["accounts"]["account"]["sync"] == "in_sync"
        assert doc["accounts"]["account"]["last_run"]["trigger"] == "start"
        private = doc["connections"][account.private.name]
        assert private["state"] == "live" and private["auth"] == "ok"
        # the link drops: not ws_ok (connection down, then account reconciling) until healed
        await emu.private_outage(DEFAULT_API_KEY, fills=0, partial_fills=0, cancels=0, hold=ms(200))
        await until(lambda: health.quality.ws_ok, timeout=5)
        reasons = [r for ev in quality for r in ev.reasons]
        assert any(r.startswith(f"connection {account.private.name} is ") for r in reasons)
        assert "account account reconciling" in reasons
        doc = (await http(server.port, "/health")).json()
        assert doc["accounts"]["account"]["last_run"]["trigger"] == "gap"
        assert doc["accounts"]["account"]["runs"] == 2
        metrics = samples((await http(server.port, "/metrics")).text)
        assert metrics[("hean_account_in_sync", (("account", "account"),))] == 1.0
        key = ("hean_account_reconciliations_total", (("account", "account"), ("result", "ok")))
        assert metrics[key] == 2.0
        assert metrics[("hean_account_last_reconcile_rest_calls", (("account", "account"),))] > 0
    finally:
        await server.stop()
        await health.stop()


async def test_a_failing_reconciliation_marks_the_account_failing(
    emu: Emulator, bus: EventBus, account: Account
) -> None:
    health = HealthMonitor(bus, check_interval=0.02)
    health.add_account(account)
    await health.start()
    try:
        await account.start()
        await until(lambda: health.quality.ws_ok)
        emu.inject_rest_error(10016, count=1000)
        await emu.private_outage(DEFAULT_API_KEY, fills=0, partial_fills=0, cancels=0)
        failing = "account account reconciling (last run failed, retrying)"
        await until(lambda: failing in health.quality.reasons, timeout=5)
        assert health.accounts["account"].sync_state() == "failing"
        assert health.status() == "down"
        emu.clear_rest_failures()
        await until(lambda: health.quality.ws_ok, timeout=5)
    finally:
        await health.stop()
