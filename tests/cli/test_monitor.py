"""``hean monitor`` end to end (subprocess, against the in-process emulator) and its logic."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from rich.console import Console

from hean.cli.main import build_parser
from hean.cli.monitor import MonitorOptions, run_monitor
from hean.cli.report import MonitorTracker
from hean.core.events import ConnectionStateEvent, SubscriptionEvent, SubscriptionStatus, TickEvent
from hean.core.lifecycle import ConnectionState as S

HEAN = [sys.executable, "-m", "hean"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HEAN, *args], capture_output=True, text=True, timeout=timeout)


def test_monitor_sim_json_report_is_stable() -> None:
    proc = run(
        "monitor",
        "--sim",
        "--duration",
        "2",
        "--json",
        "--ping-interval",
        "0.3",
        "--pong-timeout",
        "0.3",
        "--sim-rate",
        "20",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["stable"] is True and report["reasons"] == []
    assert report["reconnects"] == 0
    assert set(report["symbols"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert report["symbols_seen"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    # about 20/s per symbol for 2 s, three symbols
    assert 60 <= report["ticks"] <= 200
    assert report["tick_rate"] == pytest.approx(report["ticks"] / report["duration_s"], rel=0.01)
    for s in report["symbols"].values():
        assert s["ticks"] > 20 and s["last_price"] > 0 and s["longest_gap_s"] < 1.0
    assert report["connection"]["pongs_received"] >= 3 and report["ping_rtt_ms"] is not None


def test_monitor_without_network_says_so_and_exits_nonzero() -> None:
    t0 = time.monotonic()
    proc = run(
        "monitor",
        "--url",
        "ws://127.0.0.1:9/v5/public/linear",
        "--connect-timeout",
        "0.5",
        "--duration",
        "5",
    )
    assert proc.returncode == 2
    assert "cannot connect" in proc.stderr and "connect_refused" in proc.stderr
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", ","], "at least one symbol"),
        (["--symbols", "BTC USDT"], "not a valid symbol"),
        (["--duration", "-1"], "must be 0 or more"),
        (["--ping-interval", "0"], "positive"),
        (["--category", "futures"], "invalid choice"),
        (["--url", "http://x"], "ws://"),
        (["--sim", "--mainnet"], "not allowed with"),
    ],
)
def test_bad_options_get_a_clear_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["monitor", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_ctrl_c_still_prints_the_report() -> None:
    proc = subprocess.Popen(
        [*HEAN, "monitor", "--sim", "--duration", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    report = json.loads(out)
    assert report["ticks"] > 0 and proc.returncode == 0, err


async def test_live_view_renders_and_report_printed() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=140)
    opts = MonitorOptions(
        url=None,
        testnet=True,
        sim=True,
        category="spot",
        symbols=["BTCUSDT", "ETHUSDT"],
        duration=1.0,
        json_output=False,
        live_view=True,
        ping_interval=0.2,
        pong_timeout=0.2,
        refresh=0.1,
    )
    out = io.StringIO()
    code = await run_monitor(opts, err_console=console, out=out)
    text = buf.getvalue()
    assert code == 0
    assert "BTCUSDT" in text and "ping rtt" in text and "connection stable" in out.getvalue()


async def test_stop_event_ends_an_endless_run() -> None:
    stop = asyncio.Event()
    opts = MonitorOptions(
        url=None,
        testnet=True,
        sim=True,
        category="linear",
        symbols=["BTCUSDT"],
        duration=0,
        json_output=True,
        live_view=False,
    )
    out = io.StringIO()
    task = asyncio.create_task(
        run_monitor(opts, out=out, err_console=Console(file=io.StringIO()), stop_event=stop)
    )
    await asyncio.sleep(1.0)
    stop.set()
    assert await asyncio.wait_for(task, 10) == 0
    assert json.loads(out.getvalue())["symbols"]["BTCUSDT"]["ticks"] > 0


def _tick(symbol: str, t: float) -> TickEvent:
    return TickEvent(symbol, "linear", 1.0, 0.9, 1.1, 0, t, 0, False, None)


def _state(new: S, reason: str = "", t: float = 0.0) -> ConnectionStateEvent:
    return ConnectionStateEvent("c", "u", S.LIVE, new, reason, 0, t)


def test_verdict_reasons() -> None:
    tr = MonitorTracker(["A", "B"], started_at=0.0, max_gap=2.0)
    tr.on_state(_state(S.LIVE, t=0.0))
    for i in range(10):
        tr.on_tick(_tick("A", i * 0.1))
    stable, reasons = tr.verdict(1.0)
    assert not stable and reasons == ["no ticks for B"]
    tr.on_tick(_tick("B", 1.0))
    assert tr.verdict(1.5) == (True, [])
    stable, reasons = tr.verdict(4.0)  # A silent since 0.9, B since 1.0
    assert not stable and any("A went 3.1s" in r for r in reasons)
    tr.on_tick(_tick("A", 4.0))
    tr.on_tick(_tick("B", 4.0))
    tr.on_state(_state(S.BACKOFF, "heartbeat_timeout", 4.1))
    tr.on_state(_state(S.LIVE, t=4.2))
    tr.on_subscription(SubscriptionEvent("c", "tickers.X", SubscriptionStatus.REJECTED, "no", 5))
    stable, reasons = tr.verdict(4.5)
    assert not stable
    assert "1 drop(s): heartbeat_timeout (0 reconnect attempt(s), 0 failed)" in reasons
    assert "subscription tickers.X rejected: no" in reasons
    report = tr.report(4.5, {"url": "u"})
    assert report["symbols"]["A"]["longest_gap_s"] == pytest.approx(3.1)
    assert report["ticks"] == 13 and report["url"] == "u"


def test_books_verdict_and_report_fields() -> None:
    from hean.core.events import OrderBookEvent

    tr = MonitorTracker(["A"], started_at=0.0, max_gap=5.0, books=True)
    tr.on_state(_state(S.LIVE, t=0.0))
    tr.on_tick(_tick("A", 0.5))
    stable, reasons = tr.verdict(1.0)
    assert not stable
    assert reasons == ["A order book never received at the end"]

    def book(valid: bool) -> OrderBookEvent:
        return OrderBookEvent(
            "A",
            "linear",
            "orderbook.50.A",
            50,
            False,
            [],
            [],
            2,
            2,
            0,
            0,
            0.6,
            0,
            valid,
            ("100.5", "1"),
            ("101", "2"),
            None,
        )

    tr.on_book(book(False))
    tr.on_subscription(
        SubscriptionEvent("c", "orderbook.50.A", SubscriptionStatus.RESYNC, "gap", 1)
    )
    assert tr.verdict(1.0)[1] == ["A order book invalid at the end"]
    tr.on_book(book(True))
    assert tr.verdict(1.0) == (True, [])
    row = tr.report(1.0, {})["symbols"]["A"]
    assert row["best_bid"] == 100.5 and row["best_ask"] == 101.0 and row["spread"] == 0.5
    assert row["book_resyncs"] == 1 and row["book_valid"] is True


def test_books_depth_is_validated(capsys: pytest.CaptureFixture[str]) -> None:
    from hean.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["monitor", "--sim", "--books", "30"])
    assert exc.value.code == 2
    assert "linear offers depths 1, 50, 200, 1000" in capsys.readouterr().err


def test_monitor_sim_with_books_reports_best_bid_ask_and_validity() -> None:
    proc = run(
        "monitor",
        "--sim",
        "--books",
        "50",
        "--duration",
        "2",
        "--json",
        "--symbols",
        "BTCUSDT,ETHUSDT",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["stable"] is True
    for s in report["symbols"].values():
        assert s["book_valid"] is True and s["book_updates"] > 10
        assert 0 < s["best_bid"] < s["best_ask"] and s["spread"] > 0
        assert s["book_resyncs"] == 0


# -- issue 13 -----------------------------------------------------------------------------------


def _popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HEAN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(stream: Any, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
        if text in line:
            return
    raise AssertionError(f"{text!r} not printed: {seen}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_connecting_stops_at_once_with_the_report(sig: signal.Signals) -> None:
    """Item 3: a venue that accepts TCP and never answers the handshake (no network) and a
    refused port (reconnect loop): the signal ends the run at once, with the report."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the handshake is never answered
        port = silent.getsockname()[1]
        url = (
            f"ws://127.0.0.1:{port}/v5/public/linear"
            if sig is signal.SIGINT
            else "ws://127.0.0.1:1/v5/public/linear"
        )
        proc = _popen("monitor", "--url", url, "--connect-timeout", "60", "--no-live")
        assert proc.stderr is not None
        _wait_for(proc.stderr, "connecting to")
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    assert took < 5.0, f"exited {took:.1f}s after the signal"
    assert proc.returncode == 2, err
    assert "NOT stable: interrupted while connecting" in out and "Report ws://" in out


def test_the_text_report_is_on_stdout_unwrapped_with_tick_prices_and_books() -> None:
    """Item 7: ``> report.txt`` holds the report (lines longer than 80 columns are not
    wrapped), books figures are in it, prices have the tick's decimals, no ``None``."""
    proc = run("monitor", "--sim", "--duration", "1.5", "--books", "50", "--symbols",
               "BTCUSDT,ETHUSDT")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Report ws://") and lines[-1] == "connection stable"
    assert "Report" not in proc.stderr and "None" not in proc.stdout
    assert "connection: drops 0, reconnects 0, connect attempts 1 (0 failed)" in lines[1]
    rows = [line for line in lines if line.lstrip().startswith(("BTCUSDT", "ETHUSDT"))]
    assert len(rows) == 2 and all(len(r) > 80 for r in rows)  # one line each, unwrapped
    for row in rows:
        assert re.search(r"last=\d+\.\d{2} ", row), row  # the tick's two decimals
        assert re.search(r"spread \d+\.\d{2} valid updates=\d+ resyncs=0", row), row


def test_drops_and_attempts_are_counted_apart() -> None:
    """Item 7: one drop followed by four failed attempts is one drop, not five reconnects."""
    tr = MonitorTracker(["A"], started_at=0.0)
    seq = [S.CONNECTING, S.LIVE, S.BACKOFF] + [S.CONNECTING, S.BACKOFF] * 4 + [S.CONNECTING, S.LIVE]
    for i, new in enumerate(seq):
        tr.on_state(ConnectionStateEvent("c", "u", tr.state, new, "server_close:1006", 0, i))
    report = tr.report(20.0, {})
    assert report["drops"] == 1 and report["reconnects"] == 1
    assert report["connect_attempts"] == 6 and report["failed_attempts"] == 4
    assert "1 drop(s): server_close:1006 (5 reconnect attempt(s), 4 failed)" in report["reasons"]


def test_the_in_process_emulator_lists_what_hean_sim_lists() -> None:
    """Item 9: a symbol the emulator does not list is rejected, as by ``hean sim``: no prices
    invented, not stable. Item 4: option has default symbols with --sim."""
    proc = run("monitor", "--sim", "--symbols", "BTCUSDT,NOPE", "--duration", "1", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["symbols"]["NOPE"]["ticks"] == 0 and "tickers.NOPE" in report["rejected_topics"]
    assert report["symbols"]["BTCUSDT"]["ticks"] > 0
    proc = run("monitor", "--sim", "--category", "option", "--duration", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["category"] == "option" and report["stable"] is True
    assert all(s["bid"] is not None for s in report["symbols"].values())


async def test_the_category_comes_from_the_url() -> None:
    """Item 5: ``--url .../v5/public/option`` is option, with its bid and ask."""
    from hean.emulator import Emulator, EmulatorConfig

    async with Emulator(EmulatorConfig(ticker_interval=0.05)) as emu:
        symbol = emu.config.symbols["option"][0]
        proc = await asyncio.create_subprocess_exec(
            *HEAN, "monitor", "--url", emu.url("option"), "--symbols", symbol, "--duration",
            "1", "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["category"] == "option"
    row = report["symbols"][symbol]
    assert row["bid"] is not None and row["ask"] is not None and row["ticks"] > 0


async def test_logs_print_above_the_live_view_which_says_why_it_is_not_live() -> None:
    """Item 6: while the live view runs, log records go through rich's handler on the view's
    console (never straight to stderr, which tears the view into stacked copies)."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    raw = io.StringIO()
    root = logging.getLogger()
    plain = logging.StreamHandler(raw)
    root.addHandler(plain)
    opts = MonitorOptions(url=None, testnet=True, sim=True, category="linear",
                          symbols=["BTCUSDT"], duration=1.0, json_output=False, live_view=True,
                          refresh=0.1)  # fmt: skip
    loop = asyncio.get_running_loop()
    loop.call_later(0.6, logging.getLogger("hean.test").warning, "a reconnect happened")
    try:
        assert await run_monitor(opts, err_console=console, out=io.StringIO()) == 0
    finally:
        root.removeHandler(plain)
    assert "a reconnect happened" in buf.getvalue()
    assert "a reconnect happened" not in raw.getvalue()


async def test_the_view_says_why_it_is_not_live() -> None:
    from hean.cli.monitor import _view
    from hean.core.bus import EventBus
    from hean.core.clock import ManualClock
    from hean.exchange.bybit.ws_public import BybitPublicWebSocket

    clock = ManualClock()
    ws = BybitPublicWebSocket(EventBus(), "linear", url="ws://127.0.0.1:9/v5/public/linear",
                              clock=clock)  # fmt: skip
    now = clock.monotonic()
    ws.session.start(now)
    ws.session.connected(now)
    ws.session.disconnected("heartbeat_timeout", now)
    tr = MonitorTracker(["BTCUSDT"], started_at=now)
    buf = io.StringIO()
    Console(file=buf, width=200).print(_view(ws, tr, now))
    assert re.search(r"backoff: retry in \d+\.\ds \(heartbeat_timeout\)", buf.getvalue())
