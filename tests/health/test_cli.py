"""``hean serve`` and ``hean monitor --http`` end to end (subprocesses), and their options."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import IO

import pytest

from hean.cli.main import build_parser
from hean.cli.serve import parse_stale_spec, policy_from_specs

HEAN = [sys.executable, "-m", "hean"]
URL = re.compile(r"(http://127\.0\.0\.1:\d+/)")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for_url(stream: IO[str], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        m = URL.search(line)
        if m:
            return m.group(1)
    raise AssertionError(f"no URL printed: {''.join(seen)}")


def wait_status(url: str, want: int, timeout: float = 15.0) -> bytes:
    deadline = time.monotonic() + timeout
    status, body = get(url)
    while status != want:
        assert time.monotonic() < deadline, f"{url}: {status} {body[:300]!r}"
        time.sleep(0.1)
        status, body = get(url)
    return body


def test_serve_runs_headless_until_ctrl_c() -> None:
    proc = subprocess.Popen(
        [*HEAN, "serve", "--sim", "--http", "0", "--symbols", "BTCUSDT,ETHUSDT",
         "--sim-rate", "20", "--ping-interval", "0.5", "--pong-timeout", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base = wait_for_url(proc.stdout)
        doc = json.loads(wait_status(base + "health", 200))
        assert doc["ws_ok"] is True and set(doc["topics"]["public/linear"]) == {
            "tickers.BTCUSDT",
            "tickers.ETHUSDT",
        }
        status, metrics = get(base + "metrics")
        assert status == 200 and b'hean_ws_messages_total{connection="public/linear"' in metrics
        status, page = get(base)
        assert status == 200 and b"{{TITLE}}" not in page and b"api/state" in page
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "hean serve: stopped" in out


def test_monitor_with_http_serves_while_it_runs_and_still_reports() -> None:
    proc = subprocess.Popen(
        [*HEAN, "monitor", "--sim", "--duration", "4", "--json", "--http", "0",
         "--ping-interval", "0.3", "--pong-timeout", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    base = wait_for_url(proc.stderr)
    doc = json.loads(wait_status(base + "health", 200))
    assert doc["connections"]["public/linear"]["state"] == "live"
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["stable"] is True and report["ticks"] > 0


def test_http_port_in_use_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        proc = subprocess.run(
            [*HEAN, "serve", "--sim", "--http", port, "--duration", "1"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 2 and "cannot listen on 127.0.0.1:" + port in proc.stderr
        proc = subprocess.run(
            [*HEAN, "monitor", "--sim", "--http", port, "--duration", "1"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 2 and "cannot serve health" in proc.stderr


def test_serve_and_monitor_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve"])
    assert args.http == 9180 and args.http_host is None and args.stale == []
    assert args.recycle_after == 30.0 and args.down_after == 60.0
    args = parser.parse_args(
        ["serve", "--http-host", "0.0.0.0", "--http", "0", "--stale", "tickers=2",
         "--stale", "ETHUSDT:orderbook=off", "--recycle-after", "0", "--stale-field",
         "markPrice=off"]
    )  # fmt: skip
    assert args.http_host == "0.0.0.0" and args.recycle_after is None
    args = parser.parse_args(["monitor"])
    assert args.http is None and args.http_host is None
    assert parser.parse_args(["monitor", "--http", "9000"]).http == 9000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--http", "70000"], "port must be 0..65535"),
        (["serve", "--http", "x"], "expected a TCP port number"),
        (["monitor", "--http", "-1"], "port must be 0..65535"),
        (["serve", "--stale", "tickers=0"], "positive"),
        (["serve", "--stale", "bogus=1"], "not a symbol, topic kind or topic"),
        (["serve", "--stale", "ETHUSDT:nope=1"], "unknown topic kind"),
        (["serve", "--stale", "tickers"], "NAME=SECONDS"),
        (["serve", "--stale-field", "markPrice=x"], "expected a number"),
        (["serve", "--sim", "--url", "ws://x"], "not allowed with"),
    ],
)
def test_bad_options_get_a_clear_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_policy_from_specs() -> None:
    assert parse_stale_spec("kline=120") == ("kind", "kline", 120.0)
    assert parse_stale_spec("tickers.ETHUSDT=off") == ("topic", "tickers.ETHUSDT", None)
    assert parse_stale_spec("ETHUSDT=10") == ("symbol", "ETHUSDT:*", 10.0)
    policy = policy_from_specs(
        ["tickers=2", "ETHUSDT=10", "SOLUSDT:orderbook=off", "tickers.XRPUSDT=1"],
        ["markPrice=off", "indexPrice=20"],
        recycle_after=None,
        down_after=5.0,
    )
    assert policy.threshold("tickers.BTCUSDT") == 2.0
    assert policy.threshold("tickers.ETHUSDT") == 10.0
    assert policy.threshold("orderbook.50.ETHUSDT") == 10.0
    assert policy.threshold("orderbook.50.SOLUSDT") is None
    assert policy.threshold("tickers.SOLUSDT") == 2.0
    assert policy.threshold("tickers.XRPUSDT") == 1.0
    assert policy.threshold("kline.1.BTCUSDT") == 90.0
    assert dict(policy.fields) == {"indexPrice": 20.0}
    assert policy.recycle_after is None and policy.down_after == 5.0


def test_monitor_private_connection_auth_and_account_are_on_health() -> None:
    """Issue 13, item 2: the private stream of ``hean monitor --sim --private --http`` is on
    /health and the dashboard's state: its connection, auth state and the account's sync."""
    proc = subprocess.Popen(
        [*HEAN, "monitor", "--sim", "--private", "--duration", "4", "--json", "--http", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    base = wait_for_url(proc.stderr)
    deadline = time.monotonic() + 15
    doc: dict[str, object] = {}
    while time.monotonic() < deadline:
        doc = json.loads(get(base + "health")[1])
        conns = doc["connections"]
        assert isinstance(conns, dict)
        if doc["accounts"] and all(
            n in conns and conns[n]["state"] == "live" for n in ("private", "trade")
        ):
            break
        time.sleep(0.1)
    conns = doc["connections"]
    assert isinstance(conns, dict) and set(conns) == {"public/linear", "private", "trade"}, doc
    assert conns["private"]["auth"] == "ok" and conns["public/linear"]["auth"] == "not_required"
    assert conns["trade"]["auth"] == "ok"  # order entry is opened with --private too
    state = json.loads(get(base + "api/state")[1])
    assert state["connections"]["private"]["auth"] == "ok"
    assert state["accounts"]["account"]["sync"] == "in_sync"
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def _without_keys() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_API_")}


def test_serve_private_shows_the_private_and_trade_connections_and_the_account() -> None:
    """Issue 13: ``hean serve`` had no ``--private``: the dashboard could not show the private
    connection, its auth state, the account's sync state, nor the order-entry connection.
    ``--sim --private`` uses the emulator's account and opens all three."""
    proc = subprocess.Popen(
        [*HEAN, "serve", "--sim", "--private", "--http", "0", "--symbols", "BTCUSDT",
         "--ping-interval", "0.5", "--pong-timeout", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_without_keys(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = ""
        while "Ctrl-C" not in banner:
            line = proc.stdout.readline()
            assert line, banner
            banner += line
        assert re.search(r"private\s+ws://127\.0\.0\.1:\d+/v5/private \+ account", banner)
        assert re.search(r"trade\s+ws://127\.0\.0\.1:\d+/v5/trade", banner), banner
        base = URL.search(banner)[1]  # type: ignore[index]
        deadline = time.monotonic() + 15
        while True:
            doc = json.loads(get(base + "health")[1])
            conns = doc["connections"]
            if doc["ws_ok"] and {"private", "trade"} <= set(conns):
                break
            assert time.monotonic() < deadline, doc
            time.sleep(0.1)
        assert set(conns) == {"public/linear", "private", "trade"}
        assert conns["private"]["auth"] == "ok" and conns["trade"]["auth"] == "ok"
        assert conns["trade"]["state"] == "live" and conns["trade"]["url"].endswith("/v5/trade")
        assert doc["accounts"]["account"]["sync"] == "in_sync"
        state = json.loads(get(base + "api/state")[1])
        assert state["connections"]["trade"]["auth"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_serve_private_no_trade_leaves_order_entry_out() -> None:
    proc = subprocess.Popen(
        [*HEAN, "serve", "--sim", "--private", "--no-trade", "--http", "0", "--symbols",
         "BTCUSDT"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_without_keys(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base = wait_for_url(proc.stdout)
        deadline = time.monotonic() + 15
        while True:
            doc = json.loads(get(base + "health")[1])
            if doc["ws_ok"] and "private" in doc["connections"]:
                break
            assert time.monotonic() < deadline, doc
            time.sleep(0.1)
        assert set(doc["connections"]) == {"public/linear", "private"}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


@pytest.mark.parametrize("command", ["serve", "monitor"])
def test_private_without_keys_is_the_same_one_line_error(command: str) -> None:
    proc = subprocess.run(
        [*HEAN, command, "--private", "--url", "ws://127.0.0.1:9/v5/public/linear",
         "--http", "0"],
        capture_output=True, text=True, timeout=30, env=_without_keys(),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("--private needs API keys:"), proc.stderr
    assert "BYBIT_API_KEY" in lines[0]


def test_no_trade_needs_private(capsys: pytest.CaptureFixture[str]) -> None:
    from hean.cli.main import main

    for command in ("serve", "monitor"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--sim", "--no-trade"])
        assert exc.value.code == 2 and "--no-trade needs --private" in capsys.readouterr().err
