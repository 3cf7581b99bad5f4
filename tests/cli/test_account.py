"""``hean account``: the account followed live with its reconciliation runs, as a user runs it."""

from __future__ import annotations

import asyncio
import io
import json
from decimal import Decimal

import pytest
from rich.console import Console

from hean.cli.account import AccountOptions, run_account
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.rest import BybitRestClient
from tests.cli.test_monitor import run


def test_sim_shows_the_account_heal_after_an_outage() -> None:
    proc = run("account", "--sim", "--duration", "3", "--no-live", "--sim-outage", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("reconciled (start) in ")
    gap = [line for line in lines if line.startswith("reconciled (gap) in ")]
    assert gap and "closed" in gap[0] and "executions" in gap[0]
    assert any(line.startswith("account IN SYNC") for line in lines)
    assert "Traceback" not in proc.stderr
    assert all(len(line) <= 200 for line in lines)  # not wrapped at 80 when piped


def test_sim_json_is_the_final_account() -> None:
    proc = run("account", "--sim", "--duration", "1", "--json", "--sim-outage", "0")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["in_sync"] is True and doc["runs"] == 1
    assert len(doc["open_orders"]) == 12  # the demo account's resting orders
    assert all(o["external"] for o in doc["open_orders"])  # placed before HEAN started
    [btc] = [p for p in doc["positions"] if p["symbol"] == "BTCUSDT"]
    assert btc["side"] == "Buy" and Decimal(btc["size"]) > 0
    assert Decimal(doc["balances"]["USDT"]["wallet_balance"]) > 0


def test_without_keys_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYBIT_API_KEY", raising=False)
    monkeypatch.delenv("BYBIT_API_SECRET", raising=False)
    proc = run("account", "--duration", "1")
    assert proc.returncode == 2
    assert "BYBIT_API_KEY" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--categories", "futures"], "--categories"),
        (["--settle-coins", "u$dt"], "--settle-coins"),
        (["--rest-url", "ftp://x"], "--rest-url"),
        (["--sim", "--rest-url", "http://127.0.0.1:1"], "leave out --rest-url"),
        (["--duration", "-1"], "--duration"),
    ],
)
def test_bad_options_one_line_exit_2(args: list[str], said: str) -> None:
    proc = run("account", *args)
    assert proc.returncode == 2 and said in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_wrong_key_cannot_start_and_keeps_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with Emulator(EmulatorConfig(ticker_interval=0.05)) as emu:
        monkeypatch.setenv("BYBIT_API_KEY", "NOTAKEY12345")
        monkeypatch.setenv("BYBIT_API_SECRET", "not-the-secret-0042")
        out, err = io.StringIO(), io.StringIO()
        code = await run_account(
            AccountOptions(
                sim=False,
                rest_url=emu.rest_url(),
                private_url=emu.url("private"),
                json_output=True,
                live_view=False,
                connect_timeout=3.0,
            ),
            out=out,
            err_console=Console(file=err, width=200),
        )
        assert code == 2
        assert json.loads(out.getvalue())["in_sync"] is False
        assert "cannot start the account" in err.getvalue()
        assert "not-the-secret-0042" not in out.getvalue() + err.getvalue()


async def test_the_final_account_equals_the_venue(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Emulator(EmulatorConfig(ticker_interval=0.05)) as emu:
        async with BybitRestClient(
            api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emu.rest_url()
        ) as rest:
            await rest.create_order(
                category="linear", symbol="ETHUSDT", side="Buy", order_type="Limit",
                qty="0.1", price="1000", order_link_id="cli-1",
            )  # fmt: skip
        monkeypatch.setenv("BYBIT_API_KEY", DEFAULT_API_KEY)
        monkeypatch.setenv("BYBIT_API_SECRET", DEFAULT_API_SECRET)
        out = io.StringIO()
        code = await run_account(
            AccountOptions(
                sim=False,
                rest_url=emu.rest_url(),
                private_url=emu.url("private"),
                duration=0.3,
                json_output=True,
                live_view=False,
            ),
            out=out,
            err_console=Console(file=io.StringIO()),
        )
        assert code == 0
        doc = json.loads(out.getvalue())
        truth = emu.account(DEFAULT_API_KEY)
        assert {o["order_id"] for o in doc["open_orders"]} == {
            str(o["orderId"]) for o in truth.open_orders
        }
        [order] = doc["open_orders"]
        assert order["order_link_id"] == "cli-1" and order["external"] is True
        assert doc["balances"]["USDT"]["wallet_balance"] == truth.balances["USDT"]


async def test_ctrl_c_while_connecting_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens: the private stream would retry until --connect-timeout (30 s); the
    stop event (what Ctrl-C and SIGTERM set) ends the run at once, with one line."""
    monkeypatch.setenv("BYBIT_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("BYBIT_API_SECRET", DEFAULT_API_SECRET)
    stop = asyncio.Event()
    out, err = io.StringIO(), io.StringIO()
    task = asyncio.create_task(
        run_account(
            AccountOptions(
                sim=False,
                rest_url="http://127.0.0.1:1",
                private_url="ws://127.0.0.1:1/v5/private",
                json_output=True,
                live_view=False,
                connect_timeout=30.0,
            ),
            out=out,
            err_console=Console(file=err, width=200),
            stop_event=stop,
        )
    )
    await asyncio.sleep(0.3)
    assert not task.done()
    stop.set()
    code = await asyncio.wait_for(task, 3.0)
    assert code == 1
    assert json.loads(out.getvalue()) == {"in_sync": False, "error": "interrupted"}
    assert "stopped before the account was in sync" in err.getvalue()


async def test_sim_starts_the_emulator_every_sim_command_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``hean account --sim`` had its own emulator start-up (three linear symbols) beside the
    one ``hean monitor --sim`` and ``hean serve --sim`` share: one start-up now, listing what
    ``hean sim`` lists, with the demo account seeded on it."""
    from hean.cli import common
    from hean.cli.sim import SimOptions, build_config

    started: list[Emulator] = []

    async def spy(category: str, rate: float, **kw: object) -> tuple[Emulator, str]:
        emulator, url = await common.start_sim(category, rate, **kw)  # type: ignore[arg-type]
        started.append(emulator)
        return emulator, url

    monkeypatch.setattr("hean.cli.account.start_sim", spy)
    out = io.StringIO()
    opts = AccountOptions(sim=True, duration=0.3, live_view=False, json_output=True,
                          sim_outage=None)  # fmt: skip
    assert await run_account(opts, out=out, err_console=Console(file=io.StringIO())) == 0
    [emulator] = started
    assert dict(emulator.config.symbols) == dict(build_config(SimOptions()).symbols)
    doc = json.loads(out.getvalue())
    assert doc["in_sync"] and len(doc["open_orders"]) == 12 and doc["positions"]
