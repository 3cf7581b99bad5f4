"""The ``hean`` command's argument handling (issue 13, items 4, 5 and 8): help, version, log
level after the command, one-line usage errors with exit code 2, defaults per category, the
category from the URL, and the HTTP port bound before anything connects."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time

import pytest

from hean.cli.main import build_parser, main

HEAN = [sys.executable, "-m", "hean"]


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HEAN, *args], capture_output=True, text=True, timeout=timeout)


def test_no_arguments_prints_help_and_version_is_known() -> None:
    proc = run()
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: hean") and "monitor" in proc.stdout
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("hean ")


def test_log_level_is_accepted_after_the_command() -> None:
    args = build_parser().parse_args(["monitor", "--log-level", "INFO"])
    assert args.log_level == "INFO"
    assert build_parser().parse_args(["monitor"]).log_level == "WARNING"
    assert build_parser().parse_args(["--log-level", "DEBUG", "serve"]).log_level == "DEBUG"


@pytest.mark.parametrize("command", ["monitor", "serve"])
def test_every_option_has_a_description_and_its_default(command: str) -> None:
    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[-1]
        assert action.help, f"{command} {name} has no description"
        default = action.default
        if default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in action.help, f"{command} {name}: default not said"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["monitor", "--category", "option"], "--category option needs --symbols"),
        (["serve", "--category", "option", "--symbols", "BTCUSDT"], "not an option symbol"),
        (["monitor", "--symbols", "BTC-26JUN26-60000-C"], "use --category option"),
        (
            ["monitor", "--url", "ws://127.0.0.1:9/v5/public/option", "--category", "linear"],
            "does not match --url, which serves option",
        ),
        (["serve", "--stale", "NOPE=5"], "NOPE is not one of the symbols watched"),
        (["serve", "--stale", "tickers.NOPE=5"], "NOPE is not one of the symbols watched"),
        (["serve", "--stale-field", "nosuchfield=5"], "'nosuchfield' is not a linear ticker"),
        (["serve", "--category", "spot", "--stale-field", "markPrice=5"], "not a spot ticker"),
        (["monitor", "--books", "30"], "linear offers depths 1, 50, 200, 1000"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and said in err, err
    assert out == ""


def test_a_user_error_in_the_real_process_is_one_line_exit_2() -> None:
    proc = run("monitor", "--sim", "--category", "option", "--symbols", "BTCUSDT")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not an option symbol: BTCUSDT" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_defaults_per_category_and_the_category_from_the_url() -> None:
    from hean.cli.common import UsageError, category_from_url, resolve_market

    assert resolve_market(None, None, None, sim=False) == (
        "linear",
        ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
    )
    assert resolve_market(None, "inverse", None, sim=False) == ("inverse", ["BTCUSD", "ETHUSD"])
    category, symbols = resolve_market(None, "option", None, sim=True)
    assert category == "option" and symbols and all("-" in s for s in symbols)
    url = "ws://127.0.0.1:9/v5/public/option"
    assert category_from_url(url) == "option"
    assert category_from_url("wss://stream.bybit.com/v5/public/spot/") == "spot"
    assert category_from_url("ws://127.0.0.1:9/somewhere") is None
    assert resolve_market(url, None, ["BTC-26JUN26-60000-C-USDT"], sim=False)[0] == "option"
    assert resolve_market(url, "option", ["BTC-26JUN26-60000-C-USDT"], sim=False)[0] == "option"
    with pytest.raises(UsageError):
        resolve_market(url, "linear", None, sim=False)


def test_serve_binds_before_connecting_and_names_the_host() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        t0 = time.monotonic()
        # nothing listens at :1: were it connecting first, connect_refused would be logged
        proc = run("serve", "--url", "ws://127.0.0.1:1/v5/public/linear", "--http", port,
                   "--log-level", "INFO")  # fmt: skip
        assert proc.returncode == 2 and time.monotonic() - t0 < 10
        assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
        assert "connect" not in proc.stderr.replace("cannot listen", "")
        assert proc.stdout == ""
    # an address of no local interface (TEST-NET-1): the error names the host
    for command in ("serve", "monitor"):
        proc = run(command, "--sim", "--http-host", "192.0.2.1", "--http", "0", "--duration", "1")
        assert proc.returncode == 2
        assert "192.0.2.1:0" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_monitor_serve_and_gateway_say_which_event_loop_they_run_on() -> None:
    """Issue 12, item 4: uvloop when installed (the ``fast`` extra), and each command says so."""
    pytest.importorskip("uvloop")
    mon = run("monitor", "--sim", "--duration", "1", "--json", "--log-level", "INFO")
    assert mon.returncode == 0, mon.stderr
    assert json.loads(mon.stdout)["event_loop"] == "uvloop"
    assert "event loop: uvloop" in mon.stderr  # the start-up log line
    text = run("monitor", "--sim", "--duration", "1")
    assert "event loop uvloop" in text.stdout
    serve = run("serve", "--sim", "--http", "0", "--duration", "1")
    assert serve.returncode == 0 and "(event loop uvloop)" in serve.stdout, serve.stderr
    gateway = run("gateway", "--sim", "--no-publish", "--duration", "1")
    assert gateway.returncode == 0 and "event loop uvloop" in gateway.stdout, gateway.stderr


def test_without_uvloop_the_commands_run_on_asyncio_and_say_so() -> None:
    code = (
        "import sys; sys.modules['uvloop'] = None\n"  # importing it raises ImportError
        "from hean.cli.main import main\n"
        "sys.exit(main(['monitor', '--sim', '--duration', '1', '--json']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["event_loop"] == "asyncio"
