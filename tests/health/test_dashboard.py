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
  for (const tr of document.querySelectorAll('#symbols tbody tr[data-symbol]')) {
    const cell = (k) => tr.querySelector('td.' + k).textContent;
    const cls = (k) => tr.querySelector('td.' + k).className;
    const canvas = tr.querySelector('canvas.spark');
    let inked = 0;
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) inked += 1;
    rows[tr.dataset.symbol] = {price: cell('price'), bid: cell('bid'), ask: cell('ask'),
      spread: cell('spread'), book: cell('book'), book_class: cls('book'), age: cell('age'),
      age_class: cls('age'), rate: cell('rate'), state: cell('state'),
      state_class: cls('state'), reason: cell('reason'), inked};
  }
  const conns = {};
  for (const tr of document.querySelectorAll('#connections tbody tr[data-connection]')) {
    conns[tr.dataset.connection] = {state: tr.querySelector('td.state').textContent,
      detail: tr.querySelector('td.detail').textContent,
      auth: tr.querySelector('td.auth').textContent};
  }
  return JSON.stringify({
    status: document.getElementById('status').textContent,
    polls: Number(document.getElementById('updated').dataset.polls),
    clock: document.getElementById('clock').textContent,
    reasons: Array.from(document.querySelectorAll('#reasons li')).map((li) => li.textContent),
    history: document.querySelectorAll('#history tbody tr').length,
    history_hidden: document.getElementById('history-section').hidden,
    rows, conns, text: document.body.innerText,
  });
})()"""


async def read(browser: Browser) -> dict[str, Any]:
    value = await browser.evaluate(READ)
    assert isinstance(value, str)
    result: dict[str, Any] = json.loads(value)
    return result


def age_seconds(text: str) -> float:
    value, unit = text.split(" ")
    return float(value) * {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}[unit]


async def test_dashboard_tells_the_truth_in_every_state(
    bus: EventBus, emulator: Emulator, tmp_path: Path
) -> None:
    """Issue 13: one row per symbol with price, price sparkline, spread, book validity and
    depth, an age that grows while nothing arrives and the reason; times in UTC; checked in
    the states healthy, one symbol stale, book invalid, auth failed and venue down, with a
    screenshot of each (test-artifacts/dashboard-<state>.png)."""
    from hean.core.secrets import Secret
    from hean.exchange.bybit.protocol.auth import AuthError
    from hean.exchange.bybit.ws_private import BybitPrivateWebSocket

    ws = make_ws(bus, emulator, book_repair_timeout=ms(200))
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
    private: BybitPrivateWebSocket | None = None
    loop = asyncio.get_running_loop()

    async def wait_for(check: Any, what: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = loop.time() + timeout
        while True:
            page = await read(browser)
            if check(page):
                return page
            assert loop.time() < deadline, f"{what}: {page}"
            await asyncio.sleep(0.1)

    async def shot(state: str) -> None:
        path = ARTIFACTS / f"dashboard-{state}.png"
        await browser.screenshot(path)
        assert path.stat().st_size > 10_000

    try:
        await until(lambda: health.quality.ws_ok, timeout=3)
        await browser.start()
        await browser.goto(server.url)
        deadline = loop.time() + 15
        while not await browser.evaluate(
            "location.href.startsWith('http') && !!document.getElementById('updated')"
        ):
            assert loop.time() < deadline, "the dashboard never loaded"
            await asyncio.sleep(0.05)

        # -- healthy: one row per symbol (not per topic), every figure filled in --------------
        page = await wait_for(
            lambda p: (
                set(p["rows"]) == set(SYMBOLS)
                and p["status"] == "SAFE TO TRADE"
                and all(r["inked"] > 0 for r in p["rows"].values())
                and p["rows"]["BTCUSDT"]["book"] == "valid \u00b7 50"
            ),
            "never healthy and filled in",
        )
        await shot("healthy")
        assert page["reasons"] == [] and "HEAN test desk" in page["text"]
        assert page["conns"]["public/linear"]["state"] == "live"
        assert page["clock"].endswith(" UTC") and " UTC" in page["text"]
        for symbol, row in page["rows"].items():
            assert row["state"] == "fresh" and row["reason"] == "", symbol
            assert row["price"] not in ("", "-") and "." in row["price"], row
            assert age_seconds(row["age"]) < 0.5 and float(row["rate"]) > 0
        btc = page["rows"]["BTCUSDT"]
        decimals = len(btc["price"].rsplit(".", 1)[1])
        assert len(btc["spread"].rsplit(".", 1)[1]) == decimals  # the tick's decimals
        assert float(btc["ask"].replace(",", "")) > float(btc["bid"].replace(",", ""))
        assert "INVALID" not in page["text"] and page["history"] >= 1

        # -- one symbol stale: its row says so and why; the others stay fresh ----------------
        emulator.set_faults(paused_symbols={"ETHUSDT"})
        page = await wait_for(
            lambda p: p["status"] == "DEGRADED" and p["rows"]["ETHUSDT"]["state"] != "fresh",
            "the stale symbol never shown",
        )
        await shot("stale")
        eth = page["rows"]["ETHUSDT"]
        assert eth["state"] == "stale" and "bad" in eth["state_class"]
        assert eth["reason"].startswith("no update for") and "bad" in eth["age_class"]
        assert age_seconds(eth["age"]) > 0.5
        assert page["rows"]["BTCUSDT"]["state"] == "fresh"
        assert any("ETHUSDT: stale" in r for r in page["reasons"])
        emulator.set_faults(paused_symbols=set())
        await wait_for(lambda p: p["status"] == "SAFE TO TRADE", "never recovered")

        # -- book invalid: every snapshot that would repair it is lost ------------------------
        [conn] = emulator.live_connections("linear")
        topic = "orderbook.50.BTCUSDT"
        emulator.inject("lose_snapshot", conn_id=conn.conn_id, topic=topic, repeat=True)
        emulator.inject("u_gap", conn_id=conn.conn_id, topic=topic)
        page = await wait_for(
            lambda p: (
                p["rows"]["BTCUSDT"]["book"].startswith("INVALID")
                and p["rows"]["BTCUSDT"]["state"] != "fresh"
            ),
            "the invalid book never shown",
        )
        await shot("book-invalid")
        btc = page["rows"]["BTCUSDT"]
        assert "bad" in btc["book_class"] and btc["reason"].startswith("book invalid")
        assert page["status"] != "SAFE TO TRADE"
        emulator.clear_injections(conn.conn_id)

        # -- auth failed: a private connection with a wrong key -------------------------------
        private = BybitPrivateWebSocket(
            bus,
            api_key=Secret.api_key("WRONGKEY"),
            api_secret=Secret.of("wrong-secret"),
            url=emulator.url("private"),
            connect_timeout=ms(1000),
        )
        health.add(private)
        with pytest.raises(AuthError):
            await private.connect(timeout=2)
        page = await wait_for(
            lambda p: "private" in p["conns"] and p["conns"]["private"]["auth"] == "failed",
            "the failed auth never shown",
        )
        await shot("auth-failed")
        assert page["status"] in ("DOWN", "DEGRADED")
        assert any("authentication failed" in r for r in page["reasons"]), page["reasons"]
        assert page["conns"]["private"]["state"] != "live"
        assert "authentication failed" in page["conns"]["private"]["detail"]
        await private.disconnect()
        health.remove(private.name)

        # -- venue down: no row may call itself fresh; ages keep growing ----------------------
        await emulator.stop()
        page = await wait_for(
            lambda p: (
                p["status"] == "DOWN" and all(r["state"] != "fresh" for r in p["rows"].values())
            ),
            "the rows never escalated while the venue is down",
        )
        first_ages = {s: age_seconds(r["age"]) for s, r in page["rows"].items()}
        await asyncio.sleep(1.0)
        page = await read(browser)
        await shot("venue-down")
        assert page["conns"]["public/linear"]["state"] != "live"
        assert "backoff" in page["conns"]["public/linear"]["detail"] or (
            "circuit open" in page["conns"]["public/linear"]["detail"]
        )
        for symbol, row in page["rows"].items():
            assert row["state"] in ("stale", "down") and "bad" in row["state_class"], row
            assert row["reason"].startswith("connection "), row
            assert age_seconds(row["age"]) > first_ages[symbol] + 0.5, (symbol, row)
            assert row["book"] != "valid \u00b7 50"  # a book nobody updates is not "valid"
        assert page["rows"]["BTCUSDT"]["book"].startswith(("stale", "INVALID"))
        assert not page["history_hidden"] and page["history"] >= 2
        # self-contained: nothing was fetched from anywhere but this server
        urls = browser.requested_urls()
        assert urls and all(u.startswith(server.url) for u in urls), urls
        assert browser.console_errors() == []
    finally:
        await browser.stop()
        await server.stop()
        await health.stop()
        if private is not None:
            await private.disconnect()
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


CONNECTIONS = """(() => {
  const conns = {};
  for (const tr of document.querySelectorAll('#connections tbody tr[data-connection]')) {
    const td = (k) => tr.querySelector('td.' + k);
    conns[tr.dataset.connection] = {state: td('state').textContent,
      state_class: td('state').className, detail: td('detail').textContent,
      auth: td('auth').textContent, auth_class: td('auth').className,
      drops: td('reconnects').textContent, url: tr.lastElementChild.textContent};
  }
  const accounts = {};
  for (const tr of document.querySelectorAll('#accounts tbody tr[data-account]')) {
    accounts[tr.dataset.account] = tr.querySelector('td.sync').textContent;
  }
  return JSON.stringify({conns, accounts,
    status: document.getElementById('status').textContent,
    reasons: Array.from(document.querySelectorAll('#reasons li')).map((li) => li.textContent)});
})()"""


async def test_hean_serve_private_shows_private_and_trade_auth_on_the_dashboard(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: ``hean serve --private`` (keys from the environment) shows the private
    connection, the order-entry (trade) connection and the account, each with its auth or sync
    state; then the trade connection's authentication fails (the venue rejects the key on its
    reconnect) and the dashboard says so on the trade row, while the private row stays live.
    Screenshots: test-artifacts/dashboard-private-trade.png, dashboard-trade-auth-failed.png."""
    import io

    from hean.cli.serve import ServeOptions, run_serve
    from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET

    monkeypatch.setenv("BYBIT_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("BYBIT_API_SECRET", DEFAULT_API_SECRET)
    opts = ServeOptions(
        url=emulator.url("linear"),
        symbols=["BTCUSDT"],
        http_port=0,
        private=True,
        rest_url=emulator.rest_url(),
        ping_interval=0.5,
        pong_timeout=0.5,
        connect_timeout=3.0,
        check_interval=ms(50),
    )
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[HealthServer] = loop.create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(run_serve(opts, out=io.StringIO(), stop_event=stop, ready=ready))
    browser = Browser(tmp_path / "profile")

    async def wait_for(check: Any, what: str) -> dict[str, Any]:
        deadline = loop.time() + 15
        page: dict[str, Any] = {}
        while True:
            if await browser.evaluate(
                "location.href.startsWith('http') && !!document.getElementById('connections')"
            ):
                page = json.loads(await browser.evaluate(CONNECTIONS))
                if check(page):
                    return page
            assert loop.time() < deadline, f"{what}: {page}"
            await asyncio.sleep(0.1)

    try:
        server = await asyncio.wait_for(ready, 10)
        await browser.start()
        await browser.goto(server.url)
        page = await wait_for(
            lambda p: (
                p["status"] == "SAFE TO TRADE"
                and {"private", "trade"} <= set(p["conns"])
                and p["conns"]["trade"]["auth"] == "ok"
                and p["accounts"].get("account") == "in sync"
            ),
            "the private and trade connections never shown live and authenticated",
        )
        await browser.screenshot(ARTIFACTS / "dashboard-private-trade.png")
        trade, private = page["conns"]["trade"], page["conns"]["private"]
        assert trade["state"] == "live" and "good" in trade["state_class"]
        assert "good" in trade["auth_class"] and trade["url"].endswith("/v5/trade")
        assert private["state"] == "live" and private["auth"] == "ok"
        assert page["conns"]["public/linear"]["auth"] == "-"  # public: no auth to show

        # -- the venue rejects the key when the trade connection comes back ------------------
        emulator.set_faults(auth_reject="bad_key")
        [conn] = [c for c in emulator.live_connections() if c.path.startswith("/v5/trade")]
        emulator.drop_connections(conn.conn_id)
        # the connection rows and the ws_ok reasons refresh apart: wait for both
        page = await wait_for(
            lambda p: p["conns"]["trade"]["auth"] == "failed"
            and "connection trade: authentication failed (bad_key)" in p["reasons"],
            "the trade connection's failed auth never shown",
        )
        await browser.screenshot(ARTIFACTS / "dashboard-trade-auth-failed.png")
        trade, private = page["conns"]["trade"], page["conns"]["private"]
        assert "bad" in trade["auth_class"] and "bad" in trade["state_class"]
        assert trade["state"] != "live" and "authentication failed" in trade["detail"]
        assert trade["drops"] == "1 / 1", trade  # one link lost; the refused reconnect is not
        assert private["state"] == "live" and private["auth"] == "ok"  # only order entry
        assert page["status"] != "SAFE TO TRADE"
        trade_reasons = [r for r in page["reasons"] if "trade" in r]
        assert trade_reasons == ["connection trade: authentication failed (bad_key)"], page
        assert browser.console_errors() == []
    finally:
        await browser.stop()
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0


LAGS = """(() => JSON.stringify({
  rows: Object.fromEntries(Array.from(
    document.querySelectorAll('#symbols tbody tr[data-symbol]')).map((tr) => {
      const td = tr.querySelector('td.lag');
      return [tr.dataset.symbol, {text: td.textContent, cls: td.className, title: td.title}];
    })),
  meta: document.getElementById('meta').textContent,
}))()"""


async def test_a_negative_lag_is_shown_as_the_clock_skew_it_is(
    bus: EventBus, tmp_path: Path
) -> None:
    """Issue 13: the dashboard's lag could read -1.0 ms. A lag (receive time minus the venue's
    timestamp) cannot be negative: a negative one means the clocks disagree by at least that
    much, and the lag itself is not measurable. It is shown as that skew, marked, with the
    explanation in its tooltip; a positive lag is shown as before."""
    from hean.core.clock import ManualClock
    from tests.health.test_monitor import Harness

    h = Harness(bus, ManualClock(), check_interval=0.1)
    h.go_live()
    h.subscribe(["tickers.BTCUSDT", "tickers.ETHUSDT"])
    h.clock.advance(0.1)
    h.tick("BTCUSDT", lag_ms=-3)  # stamped 3 ms after it was received: the venue's clock ahead
    h.tick("ETHUSDT", lag_ms=4)
    h.health.step()
    server = HealthServer(h.health, title="HEAN lag")
    await server.start()
    browser = Browser(tmp_path / "profile")
    loop = asyncio.get_running_loop()
    try:
        await browser.start()
        await browser.goto(server.url)
        deadline = loop.time() + 15
        while True:
            if await browser.evaluate(
                "location.href.startsWith('http') && !!document.querySelector('td.lag')"
            ):
                page = json.loads(await browser.evaluate(LAGS))
                if set(page["rows"]) == {"BTCUSDT", "ETHUSDT"}:
                    break
            assert loop.time() < deadline, "the rows never shown"
            await asyncio.sleep(0.1)
        await browser.screenshot(ARTIFACTS / "dashboard-clock-skew.png")
        btc, eth = page["rows"]["BTCUSDT"], page["rows"]["ETHUSDT"]
        assert "-" not in btc["text"].replace("\u2265", ""), btc  # no negative lag shown
        assert btc["text"] == "skew \u22653.0 ms" and "warn" in btc["cls"], btc
        assert "clock" in btc["title"] and "3.0 ms" in btc["title"], btc
        assert eth["text"] == "4.0 ms" and eth["title"] == "", eth
        assert "lag 4.0 ms" in page["meta"]  # the worst lag, a real one
        assert browser.console_errors() == []
    finally:
        await browser.stop()
        await server.stop()
