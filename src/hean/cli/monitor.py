"""``hean monitor``: connect, subscribe tickers, watch tick rates and stability, report.

It is the tool that answers "is the live data flowing, and is the connection stable?". It runs
against Bybit (testnet by default), any URL, or the built-in emulator (``--sim``), shows a live
view while it runs, and ends with a report and a verdict. Exit code: 0 stable, 1 not stable,
2 could not connect or bad usage.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from hean.account import Account, AccountError
from hean.cli.account import describe_run
from hean.cli.common import follow, start_sim
from hean.cli.report import MonitorTracker, PrivateStats
from hean.core.bus import EventBus
from hean.core.clock import Clock, SystemClock
from hean.core.config import ConfigError, Settings
from hean.core.events import AccountSyncEvent, EventType, ReconciledEvent
from hean.core.lifecycle import ConnectionState
from hean.core.secrets import Secret
from hean.exchange.bybit.protocol.auth import AuthError
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.rest import BybitRestClient, RestError
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_public import BybitPublicWebSocket, ConnectError
from hean.health import HealthMonitor, HealthServer
from hean.hub import ConnectionOptions, StreamHub

__all__ = ["MonitorOptions", "run_monitor"]

log = logging.getLogger("hean.monitor")

EXIT_STABLE = 0
EXIT_UNSTABLE = 1
EXIT_NO_CONNECTION = 2


@dataclass(frozen=True, slots=True)
class MonitorOptions:
    url: str | None
    testnet: bool
    sim: bool
    category: str
    symbols: list[str]
    duration: float
    """Seconds to run; 0 runs until interrupted."""
    json_output: bool
    live_view: bool
    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    connect_timeout: float = 10.0
    max_gap: float = 10.0
    sim_rate: float = 10.0
    """Emulator ticker messages per second per symbol (``--sim`` only)."""
    refresh: float = 0.5
    books: int | None = None
    private: bool = False
    """Also connect the private stream (keys from the environment; ``--sim``: the emulator's)
    and, when a REST URL is known, keep the account view in sync (``hean.account.Account``)."""
    rest_url: str | None = None
    """REST base URL for the account view with ``--url`` (``--sim``, testnet and mainnet know
    theirs)."""
    """Also subscribe ``orderbook.<books>`` and watch best bid/ask, spread and validity."""
    http_port: int | None = None
    """Also serve ``/health``, ``/metrics`` and the dashboard on this port (``--http``)."""
    http_host: str = "127.0.0.1"
    allow_remote: bool = False
    """Permit a non-loopback ``http_host`` (the CLI sets it when ``--http-host`` is given)."""


async def run_monitor(
    opts: MonitorOptions,
    *,
    out: TextIO | None = None,
    err_console: Console | None = None,
    clock: Clock | None = None,
    stop_event: asyncio.Event | None = None,
) -> int:
    """Run the monitor; returns the process exit code."""
    out = out if out is not None else sys.stdout
    console = err_console if err_console is not None else Console(stderr=True)
    clock = clock if clock is not None else SystemClock()
    stop = stop_event if stop_event is not None else asyncio.Event()

    credentials: tuple[Secret, Secret] | None = None
    if opts.private and not opts.sim:
        try:
            settings = Settings()
        except ConfigError as exc:
            console.print(f"[bold red]--private:[/] {exc}")
            return EXIT_NO_CONNECTION
        if not settings.has_credentials:
            console.print(
                "[bold red]--private needs API keys:[/] set BYBIT_API_KEY and BYBIT_API_SECRET "
                "(or use --sim, which uses the emulator's account)"
            )
            return EXIT_NO_CONNECTION
        creds = settings.credentials()
        credentials = (creds.api_key, creds.api_secret)

    emulator: Any = None
    url = opts.url
    if opts.sim:
        emulator, url = await start_sim(opts.category, list(opts.symbols), opts.sim_rate)

    bus = EventBus()
    await bus.start()
    # The monitor is one consumer of a StreamHub, like any strategy or router: the connection
    # is the shared one a process would use, opened on the first subscription.
    hub = StreamHub(
        bus,
        testnet=opts.testnet,
        urls={opts.category: url} if url is not None else None,
        clock=clock,
        options=ConnectionOptions(
            ping_interval=opts.ping_interval,
            pong_timeout=opts.pong_timeout,
            connect_timeout=opts.connect_timeout,
            backoff=BackoffPolicy(),
        ),
    )
    consumer = hub.consumer("monitor")
    target = hub.public_url(opts.category)
    tracker = MonitorTracker(
        list(opts.symbols), clock.monotonic(), opts.max_gap, books=opts.books is not None
    )
    bus.subscribe(EventType.TICK, tracker.on_tick, name="monitor")
    bus.subscribe(EventType.ORDERBOOK, tracker.on_book, name="monitor")
    bus.subscribe(EventType.CONNECTION_STATE, tracker.on_state, name="monitor")
    bus.subscribe(EventType.SUBSCRIPTION, tracker.on_subscription, name="monitor")
    health: HealthMonitor | None = None
    server: HealthServer | None = None
    if opts.http_port is not None:
        health = HealthMonitor(bus, clock=clock, discover=hub.connections)
        try:
            server = HealthServer(
                health, opts.http_host, opts.http_port, allow_remote=opts.allow_remote
            )
            await server.start()
        except (OSError, ValueError) as exc:
            console.print(f"[bold red]cannot serve health on port {opts.http_port}:[/] {exc}")
            await bus.stop()
            if emulator is not None:
                await emulator.stop()
            return EXIT_NO_CONNECTION
        await health.start()
        console.print(
            f"[bold]hean monitor[/] dashboard {server.url}  health {server.url}health  "
            f"metrics {server.url}metrics"
        )
    private_ws: BybitPrivateWebSocket | None = None
    account: Account | None = None
    private_bus: EventBus | None = None
    rest: BybitRestClient | None = None
    console.print(f"[bold]hean monitor[/] connecting to {target} ({opts.category}) ...")
    try:
        topics = [f"tickers.{s}" for s in opts.symbols]
        if opts.books is not None:
            topics += [f"orderbook.{opts.books}.{s}" for s in opts.symbols]
        await consumer.subscribe(topics, category=opts.category, wait=opts.connect_timeout)
        [ws] = hub.connections(opts.category)
        if ws.state is not ConnectionState.LIVE:
            reason = ws.stats.last_disconnect_reason or "no answer"
            error = (
                f"could not connect to {target} within {opts.connect_timeout:g}s "
                f"({ws.stats.reconnects + 1} attempt(s), last failure: {reason})"
            )
            console.print(f"[bold red]cannot connect:[/] {error}")
            if not opts.sim and opts.url is None:
                console.print(
                    "This machine may have no network access to Bybit. "
                    "Run [bold]hean monitor --sim[/] to use the built-in emulator."
                )
            if opts.json_output:
                out.write(json.dumps({"stable": False, "error": error, "url": target}) + "\n")
            return EXIT_NO_CONNECTION
        if opts.private:
            private_bus = EventBus()
            await private_bus.start()
            private_ws, account, rest = await _start_private(
                opts, bus, private_bus, tracker, clock, console, emulator, url, credentials
            )
            if health is not None and account is not None:
                health.add_account(account)  # /health and the dashboard list it
        tracker.started_at = clock.monotonic()
        await _watch(opts, ws, tracker, clock, stop, console)
        now = clock.monotonic()
        stats = ws.stats
        if private_ws is not None:
            _note_private(tracker, private_ws, account)
        report = tracker.report(
            now,
            {
                "url": ws.url,
                "category": opts.category,
                "ping_rtt_ms": None if stats.ping_rtt is None else round(stats.ping_rtt * 1e3, 3),
                "connection": {
                    "state": stats.state.value,
                    "connects": stats.connects,
                    "messages": stats.messages,
                    "decode_errors": stats.decode_errors,
                    "data_errors": stats.data_errors,
                    "pings_sent": stats.pings_sent,
                    "pongs_received": stats.pongs_received,
                    "disconnect_reasons": stats.disconnect_reasons,
                },
            },
        )
    finally:
        if private_ws is not None:
            _note_private(tracker, private_ws, account)
            if account is not None:
                await account.stop()
            await private_ws.disconnect()
        if rest is not None:
            await rest.close()
        if private_bus is not None:
            await private_bus.stop()
        if server is not None:
            await server.stop()
        if health is not None:
            await health.stop()
        await hub.close()
        await bus.stop()
        if emulator is not None:
            await emulator.stop()
    if opts.json_output:
        out.write(json.dumps(report) + "\n")
    else:
        _print_report(console, report)
    return EXIT_STABLE if report["stable"] else EXIT_UNSTABLE


async def _watch(
    opts: MonitorOptions,
    ws: BybitPublicWebSocket,
    tracker: MonitorTracker,
    clock: Clock,
    stop: asyncio.Event,
    console: Console,
) -> None:
    await follow(
        lambda: _view(ws, tracker, clock.monotonic()),
        console=console,
        clock=clock,
        stop=stop,
        end=None if opts.duration <= 0 else tracker.started_at + opts.duration,
        refresh=opts.refresh,
        live_view=opts.live_view,
    )


def _view(ws: BybitPublicWebSocket, tracker: MonitorTracker, now: float) -> Table:
    stats = ws.stats
    rtt = "-" if stats.ping_rtt is None else f"{stats.ping_rtt * 1e3:.1f} ms"
    table = Table(
        title=(
            f"{ws.url}  state={stats.state.value}  reconnects={stats.reconnects}  "
            f"ping rtt={rtt}  ticks={tracker.ticks}"
        ),
        title_justify="left",
        caption=_private_caption(tracker),
        caption_justify="left",
    )
    columns = ["symbol", "ticks", "rate/s", "last price", "bid", "ask", "age s", "max gap s"]
    if tracker.books:
        columns += ["book bid", "book ask", "spread", "book", "resyncs"]
    for column in columns:
        table.add_column(column, justify="right" if column != "symbol" else "left")
    for symbol, s in tracker.per_symbol.items():
        age = "-" if s.last_at is None else f"{now - s.last_at:.2f}"
        row = [
            symbol,
            str(s.ticks),
            f"{tracker.rate(symbol, now):.1f}",
            _fmt(s.last_price),
            _fmt(s.bid),
            _fmt(s.ask),
            age,
            f"{tracker.gap_now(symbol, now):.2f}",
        ]
        if tracker.books:
            bid = s.book_bid[0] if s.book_bid else "-"
            ask = s.book_ask[0] if s.book_ask else "-"
            spread = (
                "-"
                if not (s.book_bid and s.book_ask)
                else (f"{float(s.book_ask[0]) - float(s.book_bid[0]):g}")
            )
            valid = {None: "-", True: "[green]valid[/]", False: "[red]INVALID[/]"}[s.book_valid]
            row += [bid, ask, spread, valid, str(s.book_resyncs)]
        table.add_row(*row)
    return table


PRIVATE_TOPICS = ["order", "execution", "position", "wallet"]


async def _start_private(
    opts: MonitorOptions,
    bus: EventBus,
    private_bus: EventBus,
    tracker: MonitorTracker,
    clock: Clock,
    console: Console,
    emulator: Any,
    public_url: str | None,
    credentials: tuple[Secret, Secret] | None,
) -> tuple[BybitPrivateWebSocket, Account | None, BybitRestClient | None]:
    """Connect and subscribe the private stream and, with a REST URL, start the account view
    on it (one private connection for both); failures are reported, not raised."""
    rest_url: str | None
    if emulator is not None:
        from hean.emulator.accounts import DEFAULT_API_KEY, DEFAULT_API_SECRET

        url: str | None = emulator.url("private")
        key, secret = Secret.api_key(DEFAULT_API_KEY), Secret.of(DEFAULT_API_SECRET)
        rest_url = emulator.rest_url()
    else:
        assert credentials is not None
        key, secret = credentials
        url = public_url.split("/v5/", 1)[0] + "/v5/private" if public_url else None
        rest_url = opts.rest_url
    private = BybitPrivateWebSocket(
        private_bus,
        api_key=key,
        api_secret=secret,
        testnet=opts.testnet,
        url=url,
        clock=clock,
        ping_interval=opts.ping_interval,
        pong_timeout=opts.pong_timeout,
        connect_timeout=opts.connect_timeout,
    )
    stats = tracker.private = PrivateStats(url=private.url)
    kinds = {
        EventType.ORDER_UPDATE: "order",
        EventType.EXECUTION: "execution",
        EventType.POSITION_UPDATE: "position",
        EventType.WALLET_UPDATE: "wallet",
    }
    for event_type, kind in kinds.items():
        private_bus.subscribe(event_type, functools.partial(_count, stats, kind), name="monitor")
    private_bus.subscribe(EventType.GAP, functools.partial(_count, stats, "gap"), name="monitor")
    account: Account | None = None
    rest: BybitRestClient | None = None
    if rest_url is not None or (emulator is None and opts.url is None):
        rest = BybitRestClient(
            api_key=key,
            api_secret=secret,
            testnet=opts.testnet,
            url=rest_url,
            timeout=opts.connect_timeout,
        )
        account = Account(bus, rest, private, clock=clock, subscribe_timeout=opts.connect_timeout)

        def on_run(event: ReconciledEvent) -> None:
            stats.reconciliations += 1
            stats.last_run = describe_run(event)

        def on_sync(event: AccountSyncEvent) -> None:
            if event.reason != "stopped" and account is not None:
                stats.account = account.sync_state

        bus.subscribe(EventType.RECONCILED, on_run, name="monitor")
        bus.subscribe(EventType.ACCOUNT_SYNC, on_sync, name="monitor")
        stats.account = "not_started"
    where = f" + account via {rest.url}" if rest is not None else ""
    console.print(f"[bold]hean monitor[/] private stream {private.url}{where} ...")
    try:
        if account is not None:
            await account.start()
        else:
            await private.connect(timeout=opts.connect_timeout)
            await private.subscribe(PRIVATE_TOPICS)
    except (AuthError, ConnectError, AccountError, RestError, TimeoutError) as exc:
        stats.auth_detail = str(exc) or type(exc).__name__
        console.print(f"[bold red]private stream:[/] {stats.auth_detail}")
    _note_private(tracker, private, account)
    return private, account, rest


def _count(stats: PrivateStats, kind: str, _event: object) -> None:
    if kind == "gap":
        stats.gaps += 1
    else:
        stats.on_event(kind)


def _note_private(
    tracker: MonitorTracker, private: BybitPrivateWebSocket, account: Account | None
) -> None:
    stats = tracker.private
    if stats is None:
        return
    if account is not None and account.stats.state.runs:  # it ran: its state means something
        stats.account = account.sync_state
    auth = private.auth_state
    stats.auth = auth.status
    stats.state = private.state.value
    if auth.last_failure is not None:
        stats.auth_detail = auth.last_failure.message


def _private_caption(tracker: MonitorTracker) -> str | None:
    p = tracker.private
    if p is None:
        return None
    counts = "  ".join(f"{k}={v}" for k, v in p.events.items())
    account = "" if p.account == "not_watched" else f"  account {p.account.replace('_', ' ')}"
    return f"private {p.url}: {p.auth} ({p.state})  {counts}  gaps={p.gaps}{account}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _print_report(console: Console, report: dict[str, Any]) -> None:
    console.print(
        f"\n[bold]Report[/] {report['url']}: {report['ticks']} ticks in "
        f"{report['duration_s']:.1f}s ({report['tick_rate']:.1f}/s), "
        f"symbols seen: {', '.join(report['symbols_seen']) or 'none'}, "
        f"reconnects: {report['reconnects']}, ping rtt: {report['ping_rtt_ms']} ms"
    )
    for symbol, s in report["symbols"].items():
        console.print(
            f"  {symbol:<12} ticks={s['ticks']:<7} rate={s['rate']:<8} "
            f"last={s['last_price']}  longest gap={s['longest_gap_s']}s"
        )
    if report["stable"]:
        console.print("[bold green]connection stable[/]")
    else:
        console.print("[bold red]NOT stable:[/] " + "; ".join(report["reasons"]))
