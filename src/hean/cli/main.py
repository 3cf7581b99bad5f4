"""The ``hean`` command: ``hean monitor``, ``hean serve``, ``hean account``, ``hean sim`` and
``hean gateway``, ``hean record`` and ``hean replay``, ``hean chaos``.

Every command runs on uvloop when it is installed (the ``fast`` extra), else on asyncio's loop,
and says which: a start-up log line, and the reports and start-up lines of monitor, serve and
gateway."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, NoReturn

from hean.cli.argtypes import non_negative_float as _non_negative_float
from hean.cli.argtypes import positive_float as _positive_float
from hean.core.loop import loop_name
from hean.core.loop import run as run_on_fastest_loop
from hean.exchange.bybit.endpoints import CATEGORIES

__all__ = ["build_parser", "main"]

log = logging.getLogger("hean.cli")

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9\-_]{1,40}$")


def _symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError("give at least one symbol, e.g. BTCUSDT,ETHUSDT")
    bad = [s for s in symbols if not _SYMBOL.match(s)]
    if bad:
        raise argparse.ArgumentTypeError(f"not a valid symbol: {', '.join(bad)}")
    return list(dict.fromkeys(symbols))


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {text!r}")
    return value


def _stale_spec(text: str) -> str:
    from hean.cli.serve import parse_stale_spec

    try:
        parse_stale_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _field_spec(text: str) -> str:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(
            f"expected FIELD=SECONDS (e.g. markPrice=30), got {text!r}"
        )
    if value.strip().lower() not in ("off", "none", "never"):
        _positive_float(value)
    return text


def _optional_seconds(text: str) -> float | None:
    """A positive number of seconds, or 0 / ``off`` for "never"."""
    if text.strip().lower() in ("0", "off", "none", "never"):
        return None
    return _positive_float(text)


def _add_http_options(p: argparse.ArgumentParser, default_port: int | None) -> None:
    if default_port is None:
        p.add_argument(
            "--http",
            type=_port,
            default=None,
            metavar="PORT",
            help="also serve /health, /metrics and a live dashboard on this port (0 = any)",
        )
    else:
        p.add_argument(
            "--http",
            type=_port,
            default=default_port,
            metavar="PORT",
            help=f"port for /health, /metrics and the dashboard (default {default_port}; 0 = any)",
        )
    p.add_argument(
        "--http-host",
        default=None,
        metavar="HOST",
        help="address for the HTTP server (default 127.0.0.1; giving one allows a "
        "non-loopback address: health and metrics then reach other machines)",
    )


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"URL must start with http:// or https://, got {text!r}")
    return text.rstrip("/")


def _categories(text: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(c.strip().lower() for c in text.split(",") if c.strip()))
    bad = [c for c in items if c not in CATEGORIES]
    if not items or bad:
        raise argparse.ArgumentTypeError(
            f"expected some of {', '.join(CATEGORIES)} (comma-separated), got {text!r}"
        )
    return items


def _coins(text: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(c.strip().upper() for c in text.split(",") if c.strip()))
    if not items or not all(re.fullmatch(r"[A-Z0-9]{2,10}", c) for c in items):
        raise argparse.ArgumentTypeError(f"expected coins such as USDT,USDC, got {text!r}")
    return items


def _url(text: str) -> str:
    if not text.startswith(("ws://", "wss://")):
        raise argparse.ArgumentTypeError(f"URL must start with ws:// or wss://, got {text!r}")
    return text


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr (which option, what is wrong) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hean")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hean", description="HEAN: Bybit V5 WebSocket exchange layer tools.")
    parser.add_argument("--version", action="version", version=f"hean {_version()}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=_LOG_LEVELS,
        help="log level for messages on stderr (default WARNING); also accepted after the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    mon = sub.add_parser(
        "monitor",
        help="connect, subscribe tickers, watch tick rates and stability, report",
        description=(
            "Connect to Bybit (testnet by default), subscribe tickers, show a live view and end "
            "with a report. Exit code 0 when stable, 1 when not, 2 when it cannot connect."
        ),
    )
    where = mon.add_mutually_exclusive_group()
    where.add_argument("--testnet", action="store_true", help="Bybit testnet (the default)")
    where.add_argument("--mainnet", action="store_true", help="Bybit mainnet")
    where.add_argument("--url", type=_url, help="any endpoint URL (regional host, emulator)")
    where.add_argument("--sim", action="store_true", help="start the built-in emulator in-process")
    _add_market_options(mon)
    mon.add_argument(
        "--duration",
        type=_non_negative_float,
        default=120.0,
        help="seconds to run (default 120; 0 runs until Ctrl-C)",
    )
    mon.add_argument("--json", action="store_true", help="print the report as one JSON object")
    mon.add_argument("--no-live", action="store_true", help="no live view while running")
    _add_timing_options(mon)
    mon.add_argument(
        "--max-gap",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="longest silence per symbol still called stable (default 10)",
    )
    mon.add_argument(
        "--books",
        type=int,
        default=None,
        metavar="DEPTH",
        help="also watch order books of this depth (1, 50, 200, 1000; option 25, 100)",
    )
    mon.add_argument(
        "--private",
        action="store_true",
        help="also connect the private stream (keys from BYBIT_API_KEY / BYBIT_API_SECRET; "
        "with --sim, the emulator's account) and count order/execution/position/wallet events, "
        "and the order-entry connection (/v5/trade)",
    )
    _add_no_trade(mon)
    mon.add_argument(
        "--rest-url",
        type=_http_url,
        default=None,
        metavar="URL",
        help="with --private and --url: the REST base URL, so the account view (in sync / "
        "reconciling) is kept too (--sim, --testnet and --mainnet know theirs)",
    )
    mon.add_argument(
        "--sim-rate",
        type=_positive_float,
        default=10.0,
        metavar="PER_SECOND",
        help="with --sim: ticker messages per second per symbol (default 10)",
    )
    mon.add_argument(
        "--sim-activity",
        type=_positive_float,
        default=None,
        metavar="PER_SECOND",
        help="with --sim --private: simulated activity on the demo account, steps per second "
        "(orders placed, filled, cancelled; default: none)",
    )
    _add_http_options(mon, None)

    srv = sub.add_parser(
        "serve",
        help="run the streams headless with /health, /metrics and a live dashboard",
        description=(
            "Subscribe tickers on one public connection and serve /health (200 when safe to "
            "trade, 503 when not), /metrics (Prometheus) and a live dashboard on 127.0.0.1, "
            "until Ctrl-C. Staleness thresholds: --stale tickers=5 (a kind), ETHUSDT=10 (a "
            "symbol), ETHUSDT:tickers=10, tickers.ETHUSDT=10 (a topic); 'off' disables."
        ),
    )
    swhere = srv.add_mutually_exclusive_group()
    swhere.add_argument("--testnet", action="store_true", help="Bybit testnet (the default)")
    swhere.add_argument("--mainnet", action="store_true", help="Bybit mainnet")
    swhere.add_argument("--url", type=_url, help="any endpoint URL (regional host, emulator)")
    swhere.add_argument("--sim", action="store_true", help="start the built-in emulator in-process")
    _add_market_options(srv)
    srv.add_argument(
        "--books",
        type=int,
        default=None,
        metavar="DEPTH",
        help="also subscribe order books of this depth (1, 50, 200, 1000; option 25, 100)",
    )
    srv.add_argument(
        "--private",
        action="store_true",
        help="also open the private stream with the account view (in sync / reconciling) and "
        "the order-entry connection (/v5/trade), each shown with its auth state (keys from "
        "BYBIT_API_KEY / BYBIT_API_SECRET; with --sim, the emulator's account)",
    )
    _add_no_trade(srv)
    srv.add_argument(
        "--rest-url",
        type=_http_url,
        default=None,
        metavar="URL",
        help="with --private and --url: the REST base URL, so the account view is kept too "
        "(--sim, --testnet and --mainnet know theirs)",
    )
    srv.add_argument(
        "--sim-activity",
        type=_positive_float,
        default=None,
        metavar="PER_SECOND",
        help="with --sim --private: simulated activity on the demo account, steps per second "
        "(orders placed, filled, cancelled; default: none)",
    )
    _add_http_options(srv, 9180)
    srv.add_argument(
        "--stale",
        type=_stale_spec,
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="staleness threshold (repeatable; defaults: tickers 5, orderbook 5, "
        "publicTrade 60, kline 90)",
    )
    srv.add_argument(
        "--stale-field",
        type=_field_spec,
        action="append",
        default=[],
        metavar="FIELD=SECONDS",
        help="ticker field frozen while lastPrice moves (default markPrice=30; 'off' disables)",
    )
    srv.add_argument(
        "--recycle-after",
        type=_optional_seconds,
        default=30.0,
        metavar="SECONDS",
        help="recycle the connection when a topic is still stale this long after its "
        "resubscribe (default 30; 0 = never)",
    )
    srv.add_argument(
        "--down-after",
        type=_optional_seconds,
        default=60.0,
        metavar="SECONDS",
        help="mark the feed down when still stale this long after that (default 60; 0 = never)",
    )
    srv.add_argument(
        "--check-interval",
        type=_positive_float,
        default=0.25,
        metavar="SECONDS",
        help="seconds between staleness checks (default 0.25)",
    )
    srv.add_argument(
        "--duration",
        type=_non_negative_float,
        default=0.0,
        help="seconds to run (default 0: until Ctrl-C)",
    )
    _add_timing_options(srv)
    srv.add_argument(
        "--sim-rate",
        type=_positive_float,
        default=10.0,
        metavar="PER_SECOND",
        help="with --sim: ticker messages per second per symbol (default 10)",
    )

    acc = sub.add_parser(
        "account",
        help="show balances, positions and open orders, then follow them with reconciliation",
        description=(
            "Start HEAN's account view (private stream + REST snapshot), print balances, "
            "positions and open orders, then follow them live; every reconciliation run (start, "
            "after a private-link gap, on a timer) is shown with what it changed. Keys from "
            "BYBIT_API_KEY / BYBIT_API_SECRET, or --sim for the built-in emulator's account. "
            "Exit code 0 when the account ended in sync, 1 when not, 2 when it could not start."
        ),
    )
    awhere = acc.add_mutually_exclusive_group()
    awhere.add_argument("--testnet", action="store_true", help="Bybit testnet (the default)")
    awhere.add_argument("--mainnet", action="store_true", help="Bybit mainnet")
    awhere.add_argument(
        "--sim",
        action="store_true",
        help="start the built-in emulator with a demo account (orders and a position)",
    )
    acc.add_argument(
        "--rest-url",
        type=_http_url,
        default=None,
        metavar="URL",
        help="REST base URL (default: Bybit's, per --testnet / --mainnet)",
    )
    acc.add_argument(
        "--private-url",
        type=_url,
        default=None,
        metavar="URL",
        help="private WebSocket URL (default: Bybit's, per --testnet / --mainnet)",
    )
    acc.add_argument(
        "--categories",
        type=_categories,
        default=("linear",),
        help="comma-separated categories to reconcile (default linear)",
    )
    acc.add_argument(
        "--settle-coins",
        type=_coins,
        default=("USDT",),
        help="comma-separated settle coins for linear (default USDT)",
    )
    acc.add_argument(
        "--duration",
        type=_non_negative_float,
        default=0.0,
        help="seconds to follow the account (default 0: until Ctrl-C)",
    )
    acc.add_argument("--json", action="store_true", help="print the final account as JSON")
    acc.add_argument("--no-live", action="store_true", help="no live view: one line per run")
    acc.add_argument(
        "--audit-interval",
        type=_optional_seconds,
        default=None,
        metavar="SECONDS",
        help="also reconcile every SECONDS (default: only at start and after gaps)",
    )
    acc.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="SECONDS")
    acc.add_argument(
        "--sim-outage",
        type=_optional_seconds,
        default=10.0,
        metavar="SECONDS",
        help="with --sim: drop the private link every SECONDS while orders fill, are cancelled "
        "and are placed elsewhere (default 10; 0 = never)",
    )

    sim = sub.add_parser(
        "sim",
        help="run the built-in Bybit V5 emulator",
        description="Run the built-in Bybit V5 exchange emulator until Ctrl-C.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=9090, help="TCP port (default 9090; 0 = any)")
    sim.add_argument(
        "--symbols",
        type=_symbols,
        default=None,
        help="comma-separated symbols for linear and spot (default: five majors)",
    )
    sim.add_argument(
        "--rate",
        type=_positive_float,
        default=10.0,
        metavar="PER_SECOND",
        help="ticker messages per second per symbol (default 10)",
    )
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="cut public clients that send no ping for this long",
    )
    from hean.cli.sim import add_account_arguments

    add_account_arguments(sim)
    _add_record_parsers(sub)
    from hean.cli.chaos import add_chaos_parser

    add_chaos_parser(sub)
    gw = sub.add_parser(
        "gateway",
        help="own the exchange connections and publish every event to Redis Streams",
        description=(
            "Run the exchange connections once (StreamHub) and publish tickers, books, trades, "
            "klines, liquidations and the account to Redis Streams for remote consumers "
            "(hean.remote.RemoteHub). See docs/gateway.md."
        ),
    )
    from hean.cli.gateway import add_arguments as add_gateway_arguments

    add_gateway_arguments(
        gw,
        {
            "ws_url": _url,
            "categories": CATEGORIES,
            "symbols": _symbols,
            "non_negative": _non_negative_float,
            "positive": _positive_float,
        },
    )
    _add_http_options(gw, 9181)
    for command in sub.choices.values():  # `hean monitor --log-level INFO` works too
        if "--log-level" not in command._option_string_actions:
            command.add_argument(
                "--log-level",
                default=argparse.SUPPRESS,
                choices=_LOG_LEVELS,
                help="log level for messages on stderr (default WARNING)",
            )
    return parser


def _add_market_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--category",
        default=None,
        choices=CATEGORIES,
        help="market category (default: from the --url path, else linear)",
    )
    p.add_argument(
        "--symbols",
        type=_symbols,
        default=None,
        help="comma-separated symbols (default: linear and spot BTCUSDT,ETHUSDT,SOLUSDT; "
        "inverse BTCUSD,ETHUSD; option: required, except with --sim)",
    )


def _add_no_trade(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-trade",
        action="store_true",
        help="with --private: leave out the order-entry connection (e.g. demo trading has none)",
    )


def _add_timing_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ping-interval",
        type=_positive_float,
        default=20.0,
        metavar="SECONDS",
        help="seconds between pings (default 20)",
    )
    p.add_argument(
        "--pong-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="seconds to wait for a pong before the link is called dead (default 10)",
    )
    p.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="seconds to wait for the first connection (default 10)",
    )


def _speed(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    return _positive_float(text)


def _megabytes(text: str) -> int:
    return max(1, int(_positive_float(text) * (1 << 20)))


def _add_record_parsers(sub: Any) -> None:
    from hean.cli.record import add_record_arguments, add_replay_arguments

    rec = sub.add_parser(
        "record",
        help="record a session (raw frames and connection events) to zstd files",
        description=(
            "Record every frame received and sent and every connection event into rotating "
            "zstd-compressed files (format: docs/recording.md). Exit code 0 when nothing was "
            "lost, 1 when frames were lost (disk full, write errors), 2 when it cannot start."
        ),
    )
    add_record_arguments(rec, url=_url, symbols=_symbols, seconds=_non_negative_float,
                         positive=_positive_float, megabytes=_megabytes)  # fmt: skip
    rep = sub.add_parser(
        "replay",
        help="serve recordings on the emulator's endpoints for any client",
        description=(
            "Serve recordings (hean record) on the emulator's endpoints: any client (HEAN, "
            "pybit ...) connects, subscribes and receives the recorded frames of its topics "
            "with the recorded spacing divided by --speed; pings are answered. Several files "
            "replay on one clock."
        ),
    )
    add_replay_arguments(rep, speed=_speed, port=_port, seconds=_non_negative_float)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _setup_logging(args.log_level)
    if args.command in ("monitor", "serve"):
        from hean.cli.common import UsageError, resolve_market

        try:
            args.category, args.symbols = resolve_market(
                args.url, args.category, args.symbols, sim=args.sim
            )
        except UsageError as exc:
            parser.error(str(exc))
    if args.command in ("monitor", "serve"):
        if args.sim_activity is not None and not (args.sim and args.private):
            parser.error("--sim-activity needs --sim and --private (it acts on the demo account)")
        if args.no_trade and not args.private:
            parser.error("--no-trade needs --private (only --private opens order entry)")
    if args.command == "monitor":
        from hean.cli.monitor import MonitorOptions, run_monitor

        opts = MonitorOptions(
            url=args.url,
            testnet=not args.mainnet,
            sim=args.sim,
            category=args.category,
            symbols=args.symbols,
            duration=args.duration,
            json_output=args.json,
            live_view=not args.no_live and not args.json and sys.stderr.isatty(),
            ping_interval=args.ping_interval,
            pong_timeout=args.pong_timeout,
            connect_timeout=args.connect_timeout,
            max_gap=args.max_gap,
            sim_rate=args.sim_rate,
            books=args.books,
            private=args.private,
            trade=not args.no_trade,
            rest_url=args.rest_url,
            http_port=args.http,
            http_host=args.http_host or "127.0.0.1",
            allow_remote=args.http_host is not None,
            sim_activity=args.sim_activity,
        )
        if args.books is not None:
            from hean.exchange.bybit.ws_public import BOOK_DEPTHS

            if args.books not in BOOK_DEPTHS[args.category]:
                depths = ", ".join(map(str, BOOK_DEPTHS[args.category]))
                parser.error(f"--books {args.books}: {args.category} offers depths {depths}")
        return _run(lambda stop: run_monitor(opts, stop_event=stop))
    if args.command == "serve":
        from hean.cli.serve import ServeOptions, policy_from_specs, run_serve

        if args.books is not None:
            from hean.exchange.bybit.ws_public import BOOK_DEPTHS

            if args.books not in BOOK_DEPTHS[args.category]:
                depths = ", ".join(map(str, BOOK_DEPTHS[args.category]))
                parser.error(f"--books {args.books}: {args.category} offers depths {depths}")
        try:
            policy = policy_from_specs(
                args.stale,
                args.stale_field,
                recycle_after=args.recycle_after,
                down_after=args.down_after,
                symbols=args.symbols,
                category=args.category,
            )
        except ValueError as exc:
            parser.error(str(exc))
        serve_opts = ServeOptions(
            url=args.url,
            testnet=not args.mainnet,
            sim=args.sim,
            category=args.category,
            symbols=args.symbols,
            books=args.books,
            http_port=args.http,
            http_host=args.http_host or "127.0.0.1",
            allow_remote=args.http_host is not None,
            ping_interval=args.ping_interval,
            pong_timeout=args.pong_timeout,
            connect_timeout=args.connect_timeout,
            sim_rate=args.sim_rate,
            duration=args.duration,
            policy=policy,
            check_interval=args.check_interval,
            private=args.private,
            trade=not args.no_trade,
            rest_url=args.rest_url,
            sim_activity=args.sim_activity,
        )
        return _run(lambda stop: run_serve(serve_opts, stop_event=stop))
    if args.command == "account":
        from hean.cli.account import AccountOptions, run_account

        account_opts = AccountOptions(
            sim=args.sim,
            testnet=not args.mainnet,
            rest_url=args.rest_url,
            private_url=args.private_url,
            categories=args.categories,
            settle_coins=args.settle_coins,
            duration=args.duration,
            json_output=args.json,
            live_view=not args.no_live and not args.json and sys.stderr.isatty(),
            audit_interval=args.audit_interval,
            connect_timeout=args.connect_timeout,
            sim_outage=args.sim_outage,
        )
        if args.sim and (args.rest_url or args.private_url):
            parser.error("--sim runs its own emulator: leave out --rest-url / --private-url")
        return _run(lambda stop: run_account(account_opts, stop_event=stop))
    if args.command == "sim":
        from hean.cli.sim import SimOptions, run_sim

        if not 0 <= args.port <= 65535:
            parser.error(f"--port must be 0..65535, got {args.port}")
        sim_opts = SimOptions(
            host=args.host,
            port=args.port,
            symbols=args.symbols,
            rate=args.rate,
            seed=args.seed,
            idle_timeout=args.idle_timeout,
            api_key=args.api_key,
            api_secret=args.api_secret,
            activity=args.activity,
        )
        try:
            return _run(lambda stop: run_sim(sim_opts, stop_event=stop))
        except ValueError as exc:
            parser.error(str(exc))
    if args.command == "gateway":
        from hean.cli.gateway import options_from_args, run_gateway

        gw_opts = options_from_args(args, parser)
        return _run(lambda stop: run_gateway(gw_opts, stop_event=stop))
    if args.command in ("record", "replay"):
        from hean.cli.record import run_command

        return _run(lambda stop: run_command(args, parser, stop))
    if args.command == "chaos":
        from hean.cli.chaos import run_command as run_chaos

        return _run(lambda stop: run_chaos(args, parser, stop))
    parser.error(f"unknown command {args.command!r}")


def _run(make: Any) -> int:
    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        log.info("event loop: %s", loop_name())
        coro: Coroutine[Any, Any, int] = make(stop)
        return await coro

    try:
        return run_on_fastest_loop(runner()).result
    except KeyboardInterrupt:  # pragma: no cover - signal handlers normally catch it
        return 130


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
