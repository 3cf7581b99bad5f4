"""The dashboard in a real headless Chromium: it loads, shows the symbols, and updates live.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; ``.ci/run`` installs it). A
screenshot is saved to ``test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.emulator import Emulator
from hean.health import HealthMonitor, HealthServer, StalenessPolicy
from tests.conftest import ms
from tests.e2e.conftest import make_ws
from tests.health.cdp import CHROMIUM, Browser
from tests.health.conftest import until

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK) and not os.environ.get("HEAN_REQUIRE_CHROMIUM"),
    reason=f"{CHROMIUM} not installed (apt-get install -y chromium); .ci/run installs it",
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]

READ = """(() => {
  const rows = {};
  for (const tr of document.querySelectorAll('#topics tbody tr[data-topic]')) {
    const cell = (k) => tr.querySelector('td.' + k).textContent;
    rows[tr.dataset.topic] = {symbol: tr.dataset.symbol, messages: Number(cell('messages')),
      age: cell('age'), price: cell('price'), state: cell('state'), book: cell('book'),
      rate: cell('rate')};
  }
  const conns = Array.from(document.querySelectorAll('#connections tbody tr[data-connection]'))
    .map((tr) => [tr.dataset.connection, tr.querySelector('td.state').textContent]);
  const spark = document.querySelector('#topics canvas.spark');
  let inked = 0;
  if (spark) {
    const d = spark.getContext('2d').getImageData(0, 0, spark.width, spark.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) inked += 1;
  }
  return JSON.stringify({
    status: document.getElementById('status').textContent,
    polls: Number(document.getElementById('updated').dataset.polls),
    reasons: Array.from(document.querySelectorAll('#reasons li')).map((li) => li.textContent),
    history: document.querySelectorAll('#history tbody tr').length,
    rows, conns, inked, text: document.body.innerText,
  });
})()"""


async def read(browser: Browser) -> dict[str, Any]:
    value = await browser.evaluate(READ)
    assert isinstance(value, str)
    result: dict[str, Any] = json.loads(value)
    return result


async def test_dashboard_loads_shows_symbols_and_updates_live(
    bus: EventBus, emulator: Emulator, tmp_path: Path
) -> None:
    ws = make_ws(bus, emulator)
    health = HealthMonitor(
        bus,
        [ws],
        policy=StalenessPolicy(thresholds={"tickers": ms(500), "orderbook": ms(500)}),
        check_interval=ms(50),
        sample_interval=0.25,
    )
    await health.start()
    await ws.connect(timeout=2)
    await ws.subscribe_tickers(SYMBOLS)
    await ws.subscribe_orderbook(["BTCUSDT"], 50)
    server = HealthServer(health, title="HEAN test desk")
    await server.start()
    browser = Browser(tmp_path / "profile")
    try:
        await until(lambda: health.quality.ws_ok, timeout=3)
        await browser.start()
        await browser.goto(server.url)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not await browser.evaluate(
            "location.href.startsWith('http') && !!document.getElementById('updated')"
        ):
            assert loop.time() < deadline, "the dashboard never loaded"
            await asyncio.sleep(0.05)
        while True:
            first = await read(browser)
            if len(first["rows"]) == 4 and first["polls"] >= 1 and first["inked"] > 0:
                break
            assert loop.time() < deadline, f"dashboard never filled in: {first}"
            await asyncio.sleep(0.1)
        # it shows the symbols, the connection and the verdict
        assert {r["symbol"] for r in first["rows"].values()} == set(SYMBOLS)
        assert first["status"] == "SAFE TO TRADE" and first["reasons"] == []
        assert first["conns"] == [["public/linear", "live"]]
        assert "HEAN test desk" in first["text"]
        assert first["rows"]["orderbook.50.BTCUSDT"]["book"] == "valid"
        for topic in (f"tickers.{s}" for s in SYMBOLS):
            assert first["rows"][topic]["messages"] > 0
            assert first["rows"][topic]["price"] not in ("", "-")
        # ... and it updates live: counts grow between two reads two seconds apart
        await asyncio.sleep(2.0)
        second = await read(browser)
        assert second["polls"] >= first["polls"] + 1
        for topic, row in first["rows"].items():
            assert second["rows"][topic]["messages"] > row["messages"], topic
            assert float(second["rows"][topic]["rate"]) > 0
        # a stale symbol shows up on the page
        emulator.set_faults(paused_symbols={"ETHUSDT"})
        deadline = loop.time() + 10
        while True:
            third = await read(browser)
            if third["status"] == "DEGRADED":
                break
            assert loop.time() < deadline, f"stale symbol never shown: {third}"
            await asyncio.sleep(0.1)
        assert third["rows"]["tickers.ETHUSDT"]["state"].startswith("stale")
        assert any("ETHUSDT: stale" in r for r in third["reasons"])
        assert third["history"] >= 2
        await browser.screenshot(ARTIFACTS / "dashboard.png")
        assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
        emulator.set_faults(paused_symbols=set())
        # self-contained: nothing was fetched from anywhere but this server
        urls = browser.requested_urls()
        assert urls and all(u.startswith(server.url) for u in urls), urls
        assert browser.console_errors() == []
    finally:
        await browser.stop()
        await server.stop()
        await health.stop()
        await ws.disconnect()


ACCOUNTS = """(() => JSON.stringify({
  hidden: document.getElementById('accounts-section').hidden,
  rows: Array.from(document.querySelectorAll('#accounts tbody tr[data-account]')).map((tr) => ({
    name: tr.dataset.account, sync: tr.querySelector('td.sync').textContent,
    runs: tr.querySelector('td.runs').textContent, last: tr.querySelector('td.last').textContent,
  })),
  status: document.getElementById('status').textContent,
  reasons: Array.from(document.querySelectorAll('#reasons li')).map((li) => li.textContent),
}))()"""


async def test_dashboard_shows_the_account_and_its_reconciliations(
    bus: EventBus, tmp_path: Path
) -> None:
    from hean.account import Account
    from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, EmulatorConfig
    from hean.exchange.bybit.rest import BybitRestClient

    config = EmulatorConfig(ticker_interval=ms(10), auto_tick=False, rest_rate_scale=100.0)
    async with (
        Emulator(config) as emu,
        BybitRestClient(
            api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emu.rest_url()
        ) as rest,
    ):
        account = Account(bus, rest, private_url=emu.url("private"), retry_first=ms(50))
        health = HealthMonitor(bus, check_interval=ms(50))
        health.add_account(account)
        await health.start()
        server = HealthServer(health, title="HEAN account desk")
        await server.start()
        browser = Browser(tmp_path / "profile")
        try:
            await browser.start()
            await browser.goto(server.url)
            await account.start()
            loop = asyncio.get_running_loop()

            async def wait_for(check: Any, what: str) -> dict[str, Any]:
                deadline = loop.time() + 15
                while True:
                    if await browser.evaluate(
                        "location.href.startsWith('http') && !!document.getElementById('accounts')"
                    ):
                        value = json.loads(await browser.evaluate(ACCOUNTS))
                        if check(value):
                            return value  # type: ignore[no-any-return]
                    assert loop.time() < deadline, f"{what}: {value}"
                    await asyncio.sleep(0.1)

            # the row reads the account directly; the verdict follows at the next health check
            first = await wait_for(
                lambda v: (
                    v["rows"]
                    and v["rows"][0]["sync"] == "in sync"
                    and v["status"] == "SAFE TO TRADE"
                ),
                "never in sync and safe to trade",
            )
            assert not first["hidden"] and first["rows"][0]["name"] == "account"
            assert first["rows"][0]["last"].startswith("start")
            await emu.private_outage(DEFAULT_API_KEY, fills=0, partial_fills=0, cancels=0)
            second = await wait_for(
                lambda v: v["rows"][0]["runs"] == "2" and v["rows"][0]["sync"] == "in sync",
                "the gap's run never shown",
            )
            assert second["rows"][0]["last"].startswith("gap")
            assert "external" in second["rows"][0]["last"]  # someone else's order, found
            await browser.screenshot(ARTIFACTS / "dashboard-account.png")
            assert browser.console_errors() == []
        finally:
            await browser.stop()
            await server.stop()
            await health.stop()
            await account.stop()
