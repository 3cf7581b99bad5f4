"""``hean monitor`` end to end (subprocess, against the in-process emulator) and its logic."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import time

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
    code = await run_monitor(opts, err_console=console, out=io.StringIO())
    text = buf.getvalue()
    assert code == 0
    assert "BTCUSDT" in text and "ping rtt" in text and "connection stable" in text


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
    assert "1 reconnect(s): heartbeat_timeout" in reasons
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
