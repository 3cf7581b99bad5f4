"""``hean monitor --private``: auth status and account event counts, in the view and the JSON."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

import pytest
from rich.console import Console

from hean.cli.monitor import MonitorOptions, run_monitor
from hean.emulator import Emulator, EmulatorConfig
from hean.emulator.accounts import DEFAULT_API_KEY, DEFAULT_API_SECRET
from hean.exchange.bybit import BybitTradeWebSocket
from tests.cli.test_monitor import run


def opts(url: str, **kw: object) -> MonitorOptions:
    base: dict[str, object] = dict(
        url=url,
        testnet=True,
        sim=False,
        category="linear",
        symbols=["BTCUSDT"],
        duration=0,
        json_output=True,
        live_view=False,
        ping_interval=0.3,
        pong_timeout=0.3,
        connect_timeout=3.0,
        private=True,
    )
    base.update(kw)
    return MonitorOptions(**base)  # type: ignore[arg-type]


def test_sim_private_is_authenticated_and_reported() -> None:
    proc = run("monitor", "--sim", "--private", "--duration", "1.5", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    private = report["private"]
    assert private["auth"] == "authenticated" and private["state"] == "live"
    assert set(private["events"]) == {"order", "execution", "position", "wallet"}
    # the order-entry connection is opened with --private too, and is not the public one
    trade = report["trade"]
    assert trade["auth"] == "authenticated" and trade["state"] == "live"
    assert trade["url"].endswith("/v5/trade") and report["drops"] == 0


def test_sim_private_no_trade_and_the_text_report() -> None:
    proc = run("monitor", "--sim", "--private", "--duration", "1", "--symbols", "BTCUSDT")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^  trade ws://\S+/v5/trade: authenticated, live$", proc.stdout, re.M)
    proc = run("monitor", "--sim", "--private", "--no-trade", "--duration", "1", "--json",
               "--symbols", "BTCUSDT")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "trade" not in json.loads(proc.stdout)


def test_private_without_keys_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYBIT_API_KEY", raising=False)
    monkeypatch.delenv("BYBIT_API_SECRET", raising=False)
    proc = run("monitor", "--private", "--url", "ws://127.0.0.1:9/v5/public/linear")
    assert proc.returncode == 2
    assert "BYBIT_API_KEY" in proc.stderr


async def test_account_activity_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Emulator(EmulatorConfig(ticker_interval=0.05)) as emu:
        monkeypatch.setenv("BYBIT_API_KEY", DEFAULT_API_KEY)
        monkeypatch.setenv("BYBIT_API_SECRET", DEFAULT_API_SECRET)
        stop = asyncio.Event()
        out = io.StringIO()
        task = asyncio.create_task(
            run_monitor(
                opts(emu.url("linear")),
                out=out,
                stop_event=stop,
                err_console=Console(file=io.StringIO()),
            )
        )
        await emu.wait_for(
            lambda: any(
                c.path.startswith("/v5/private") and c.subscriptions for c in emu.live_connections()
            ),
            timeout=10,
        )
        trade = BybitTradeWebSocket(
            api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emu.url("trade")
        )
        await trade.connect(timeout=5)
        await trade.create_order(
            category="linear", symbol="BTCUSDT", side="Buy", order_type="Market", qty="0.01"
        )
        await trade.disconnect()
        await asyncio.sleep(0.5)
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0
        private = json.loads(out.getvalue())["private"]
        assert private["auth"] == "authenticated"
        events = private["events"]
        assert events["order"] >= 1 and events["execution"] >= 1 and events["position"] >= 1
        assert events["wallet"] >= 1


async def test_wrong_key_makes_the_run_unstable(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Emulator(EmulatorConfig(ticker_interval=0.05)) as emu:
        monkeypatch.setenv("BYBIT_API_KEY", "NOTAKEY12345")
        monkeypatch.setenv("BYBIT_API_SECRET", "nope")
        out = io.StringIO()
        code = await run_monitor(
            opts(emu.url("linear"), duration=1.0), out=out, err_console=Console(file=io.StringIO())
        )
        report = json.loads(out.getvalue())
        assert code == 1 and report["stable"] is False
        assert report["private"]["auth"] == "failed" and report["trade"]["auth"] == "failed"
        assert any("private stream not authenticated" in r for r in report["reasons"])
        assert any("trade connection not authenticated" in r for r in report["reasons"])
        assert "nope" not in out.getvalue()


def test_sim_private_keeps_the_account_in_sync() -> None:
    proc = run("monitor", "--sim", "--private", "--duration", "1.5", "--json")
    assert proc.returncode == 0, proc.stderr
    private = json.loads(proc.stdout)["private"]
    assert private["account"] == "in_sync" and private["reconciliations"] >= 1
    assert private["last_run"].startswith("reconciled (start)")


async def test_account_heals_after_an_outage_with_rest_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.health.conftest import http

    async with Emulator(EmulatorConfig(ticker_interval=0.05)) as emu:
        monkeypatch.setenv("BYBIT_API_KEY", DEFAULT_API_KEY)
        monkeypatch.setenv("BYBIT_API_SECRET", DEFAULT_API_SECRET)
        stop = asyncio.Event()
        out, err = io.StringIO(), io.StringIO()
        task = asyncio.create_task(
            run_monitor(
                opts(emu.url("linear"), rest_url=emu.rest_url(), http_port=0),
                out=out,
                stop_event=stop,
                err_console=Console(file=err, width=300),
            )
        )
        await emu.wait_for(
            lambda: any(
                c.path.startswith("/v5/private") and c.subscriptions for c in emu.live_connections()
            ),
            timeout=10,
        )
        port = int(re.search(r"dashboard http://127\.0\.0\.1:(\d+)/", err.getvalue())[1])  # type: ignore[index]

        async def account_is(runs: int) -> dict[str, Any]:
            for _ in range(200):
                doc: dict[str, Any] = (await http(port, "/health")).json()
                acct = doc["accounts"].get("account")
                if acct and acct["sync"] == "in_sync" and acct["runs"] == runs:
                    return doc
                await asyncio.sleep(0.05)
            raise AssertionError(f"account never in sync after {runs} run(s): {doc}")

        await account_is(1)  # the start-up snapshot is in
        await emu.private_outage(DEFAULT_API_KEY, fills=0, partial_fills=0, cancels=0, hold=0.2)
        health = await account_is(2)  # healed by the gap's run
        assert health["connections"]["private"]["auth"] == "ok"
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0
        private = json.loads(out.getvalue())["private"]
        assert private["account"] == "in_sync" and private["reconciliations"] == 2
        assert private["last_run"].startswith("reconciled (gap)")
        assert private["gaps"] == 4  # order, execution, position, wallet


def test_sim_activity_makes_the_private_counts_move() -> None:
    """Issue 13, item 11: ``--sim --private`` showed all counts at 0 (the demo account never
    trades); with ``--sim-activity`` orders are placed, filled and cancelled, and watched live."""
    proc = run("monitor", "--sim", "--private", "--sim-activity", "10", "--duration", "2",
               "--json", "--symbols", "BTCUSDT")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    private = json.loads(proc.stdout)["private"]
    events = private["events"]
    assert events["order"] >= 10 and events["execution"] >= 2, private
    assert events["position"] > 0 and events["wallet"] > 0, private
    assert private["account"] == "in_sync"
