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

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hean.account import Account, AccountError
from hean.cli.account import describe_run
from hean.cli.common import (
    UsageError,
    follow,
    private_credentials,
    private_endpoints,
    start_sim,
    until_stopped,
)
from hean.cli.report import MonitorTracker, PrivateStats, TradeStats, fmt_price
from hean.core.bus import EventBus
from hean.core.clock import Clock, SystemClock
from hean.core.events import AccountSyncEvent, EventType, ReconciledEvent
from hean.core.lifecycle import ConnectionState
from hean.core.loop import loop_name
from hean.core.secrets import Secret
from hean.exchange.bybit.protocol.auth import AuthError
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.rest import BybitRestClient, RestError
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_public import BybitPublicWebSocket, ConnectError
from hean.exchange.bybit.ws_trade import BybitTradeWebSocket
from hean.health import HealthMonitor, HealthServer
from hean.health.monitor import connection_reason
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
    trade: bool = True
    """With ``private``: also connect the order-entry connection (``/v5/trade``) and watch its
    auth and state (``--no-trade`` leaves it out)."""
    rest_url: str | None = None
    """REST base URL for the account view with ``--url`` (``--sim``, testnet and mainnet know
    theirs)."""
    """Also subscribe ``orderbook.<books>`` and watch best bid/ask, spread and validity."""
    http_port: int | None = None
    """Also serve ``/health``, ``/metrics`` and the dashboard on this port (``--http``)."""
    http_host: str = "127.0.0.1"
    allow_remote: bool = False
    """Permit a non-loopback ``http_host`` (the CLI sets it when ``--http-host`` is given)."""
    sim_activity: float | None = None
    """With ``--sim --private``: steps per second of simulated activity on the emulator's demo
    account (orders placed, filled, cancelled: :class:`hean.emulator.activity.DemoActivity`)."""


async def run_monitor(
    opts: MonitorOptions,
    *,
    out: TextIO | None = None,
    err_console: Console | None = None,
    clock: Clock | None = None,
    stop_event: asyncio.Event | None = None,
) -> int:
    """Run the monitor; returns the process exit code.

    The report goes to ``out`` (stdout); progress, the live view and logs to stderr. Setting
    ``stop_event`` (Ctrl-C, SIGTERM) ends the run at once at any stage, with the report.
    """
    out = out if out is not None else sys.stdout
    console = err_console if err_console is not None else Console(stderr=True)
    clock = clock if clock is not None else SystemClock()
    stop = stop_event if stop_event is not None else asyncio.Event()

    credentials: tuple[Secret, Secret] | None = None
    if opts.private and not opts.sim:
        try:
            credentials = private_credentials()
        except UsageError as exc:
            console.print(f"[bold red]{escape(str(exc))}[/]", soft_wrap=True)
            return EXIT_NO_CONNECTION

    bus = EventBus()
    hubs: list[StreamHub] = []
    health: HealthMonitor | None = None
    server: HealthServer | None = None
    if opts.http_port is not None:  # bind first: a taken port is reported before connecting
        health = HealthMonitor(
            bus, clock=clock, discover=lambda: hubs[0].connections() if hubs else ()
        )
        try:
            server = HealthServer(
                health, opts.http_host, opts.http_port, allow_remote=opts.allow_remote
            )
            await server.start()
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            console.print(
                f"[bold red]cannot serve health on {opts.http_host}:{opts.http_port}:[/] {why}",
                soft_wrap=True,
            )
            return EXIT_NO_CONNECTION
    emulator: Any = None
    await bus.start()
    tracker = MonitorTracker(
        list(opts.symbols), clock.monotonic(), opts.max_gap, books=opts.books is not None
    )
    private_ws: BybitPrivateWebSocket | None = None
    trade_ws: BybitTradeWebSocket | None = None
    account: Account | None = None
    private_bus: EventBus | None = None
    rest: BybitRestClient | None = None
    ws: BybitPublicWebSocket | None = None
    activity: Any = None
    target = ""
    interrupted = ""
    try:
        url = opts.url
        if opts.sim:
            emulator, url = await start_sim(opts.category, opts.sim_rate)
        # The monitor is one consumer of a StreamHub, like any strategy or router: the
        # connection is the shared one a process would use, opened on the first subscription.
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
        hubs.append(hub)
        consumer = hub.consumer("monitor")
        target = hub.public_url(opts.category)
        bus.subscribe(EventType.TICK, tracker.on_tick, name="monitor")
        bus.subscribe(EventType.ORDERBOOK, tracker.on_book, name="monitor")
        bus.subscribe(EventType.CONNECTION_STATE, tracker.on_state, name="monitor")
        bus.subscribe(EventType.SUBSCRIPTION, tracker.on_subscription, name="monitor")
        if health is not None and server is not None:
            await health.start()
            console.print(
                f"[bold]hean monitor[/] dashboard {server.url}  health {server.url}health  "
                f"metrics {server.url}metrics",
                soft_wrap=True,
            )
        console.print(
            f"[bold]hean monitor[/] connecting to {target} ({opts.category}) ...", soft_wrap=True
        )
        topics = [f"tickers.{s}" for s in opts.symbols]
        if opts.books is not None:
            topics += [f"orderbook.{opts.books}.{s}" for s in opts.symbols]
        done, _ = await until_stopped(
            consumer.subscribe(topics, category=opts.category, wait=opts.connect_timeout), stop
        )
        conns = hub.connections(opts.category)
        ws = conns[0] if conns else None
        if not done:
            interrupted = "interrupted while connecting"
        elif ws is None or ws.state is not ConnectionState.LIVE:
            reason = (ws.stats.last_disconnect_reason if ws else "") or "no answer"
            attempts = ws.stats.reconnects + 1 if ws else 1
            error = (
                f"could not connect to {target} within {opts.connect_timeout:g}s "
                f"({attempts} attempt(s), last failure: {reason})"
            )
            console.print(f"[bold red]cannot connect:[/] {error}", soft_wrap=True)
            if not opts.sim and opts.url is None:
                console.print(
                    "This machine may have no network access to Bybit. "
                    "Run [bold]hean monitor --sim[/] to use the built-in emulator.",
                    soft_wrap=True,
                )
            if opts.json_output:
                out.write(json.dumps({"stable": False, "error": error, "url": target}) + "\n")
            return EXIT_NO_CONNECTION
        if not interrupted and opts.private:
            private_bus = EventBus()
            await private_bus.start()
            started, result = await until_stopped(
                _start_private(
                    opts, bus, private_bus, tracker, clock, console, emulator, url, credentials
                ),
                stop,
            )
            if result is not None:
                private_ws, account, rest, trade_ws = result
                if health is not None:
                    if account is not None:
                        health.add_account(account)  # /health and the dashboard list it
                    elif private_ws.name not in health.feeds:
                        health.add(private_ws)
                    if trade_ws is not None and trade_ws.name not in health.feeds:
                        health.add(trade_ws)
            if not started:
                interrupted = "interrupted while connecting the private stream"
            elif emulator is not None and opts.sim_activity is not None:
                from hean.emulator import DEFAULT_API_KEY
                from hean.emulator.activity import DemoActivity

                activity = DemoActivity(emulator, DEFAULT_API_KEY, rate=opts.sim_activity)
                activity.start()
        tracker.started_at = clock.monotonic()
        if not interrupted and ws is not None:
            await _watch(opts, ws, tracker, clock, stop, console)
        if private_ws is not None:
            _note_private(tracker, private_ws, account, trade_ws)
        report = _report(tracker, clock.monotonic(), opts, ws, target, interrupted)
    finally:
        if activity is not None:
            await activity.stop()
        await _close(
            private_ws, account, rest, private_bus, trade_ws, server, health, hubs, bus, emulator
        )
    if opts.json_output:
        out.write(json.dumps(report) + "\n")
    else:
        _print_report(out, report)
    out.flush()
    if interrupted:
        return EXIT_NO_CONNECTION
    return EXIT_STABLE if report["stable"] else EXIT_UNSTABLE


async def _close(
    private_ws: BybitPrivateWebSocket | None,
    account: Account | None,
    rest: BybitRestClient | None,
    private_bus: EventBus | None,
    trade: BybitTradeWebSocket | None,
    server: HealthServer | None,
    health: HealthMonitor | None,
    hubs: list[StreamHub],
    bus: EventBus,
    emulator: Any,
) -> None:
    if account is not None:
        await account.stop()
    if private_ws is not None:
        await private_ws.disconnect()
    if rest is not None:
        await rest.close()
    if private_bus is not None:
        await private_bus.stop()
    if trade is not None:
        await trade.disconnect()
    if server is not None:
        await server.stop()
    if health is not None:
        await health.stop()
    for hub in hubs:
        await hub.close()
    await bus.stop()
    if emulator is not None:
        await emulator.stop()


def _report(
    tracker: MonitorTracker,
    now: float,
    opts: MonitorOptions,
    ws: BybitPublicWebSocket | None,
    target: str,
    interrupted: str,
) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "url": target,
        "category": opts.category,
        "ping_rtt_ms": None,
        "event_loop": loop_name(),
    }
    if ws is not None:
        stats = ws.stats
        extra.update(
            url=ws.url,
            ping_rtt_ms=None if stats.ping_rtt is None else round(stats.ping_rtt * 1e3, 3),
            connection={
                "state": stats.state.value,
                "connects": stats.connects,
                "messages": stats.messages,
                "decode_errors": stats.decode_errors,
                "data_errors": stats.data_errors,
                "pings_sent": stats.pings_sent,
                "pongs_received": stats.pongs_received,
                "disconnect_reasons": stats.disconnect_reasons,
            },
        )
    report = tracker.report(now, extra)
    if interrupted:
        report["interrupted"] = interrupted
        report["stable"] = False
        report["reasons"] = [interrupted, *report["reasons"]]
    return report


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
        logs_above=True,  # log lines print above the view instead of tearing it
    )


def _view(ws: BybitPublicWebSocket, tracker: MonitorTracker, now: float) -> Group:
    stats = ws.stats
    rtt = "-" if stats.ping_rtt is None else f"{stats.ping_rtt * 1e3:.1f} ms"
    state = connection_reason(ws.session, now)
    if stats.state is ConnectionState.LIVE:
        state = "[green]live[/]"
    else:  # say why it is not live: backoff and the next try, circuit open and how long ...
        state = f"[bold red]{escape(state)}[/]"
    header = Text.from_markup(
        f"{escape(ws.url)}  {state}  drops={tracker.drops}  reconnects={tracker.reconnects}"
        f"  ping rtt={rtt}  ticks={tracker.ticks}",
        overflow="fold",
    )
    table = Table(caption=_private_caption(tracker), caption_justify="left")
    columns = ["symbol", "ticks", "rate/s", "last price", "bid", "ask", "age s", "max gap s"]
    if tracker.books:
        columns += ["book bid", "book ask", "spread", "book", "resyncs"]
    for column in columns:
        table.add_column(column, justify="right" if column != "symbol" else "left")
    for symbol, s in tracker.per_symbol.items():
        since = s.last_at if s.last_at is not None else tracker.started_at
        silent = now - since
        age = f"{silent:.2f}" if s.last_at is not None else f"never ({silent:.0f})"
        if silent > tracker.max_gap:
            age = f"[bold red]{age}[/]"
        d = s.decimals
        row = [
            symbol,
            str(s.ticks),
            f"{tracker.rate(symbol, now):.1f}",
            fmt_price(s.last_price, d),
            fmt_price(s.bid, d),
            fmt_price(s.ask, d),
            age,
            f"{tracker.gap_now(symbol, now):.2f}",
        ]
        if tracker.books:
            bid = None if s.book_bid is None else float(s.book_bid[0])
            ask = None if s.book_ask is None else float(s.book_ask[0])
            spread = None if bid is None or ask is None else ask - bid
            if s.book_valid is None:
                valid = "-"
            elif not s.book_valid:
                valid = "[red]INVALID[/]"
            elif silent > tracker.max_gap or stats.state is not ConnectionState.LIVE:
                valid = "[yellow]stale[/]"  # valid when last seen, but nothing arrives now
            else:
                valid = "[green]valid[/]"
            row += [
                fmt_price(bid, d),
                fmt_price(ask, d),
                fmt_price(spread, d),
                valid,
                str(s.book_resyncs),
            ]
        table.add_row(*row)
    return Group(header, table)


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
) -> tuple[
    BybitPrivateWebSocket, Account | None, BybitRestClient | None, BybitTradeWebSocket | None
]:
    """Connect and subscribe the private stream and, with a REST URL, start the account view
    on it (one private connection for both), then the order-entry connection; failures are
    reported, not raised."""
    ends = private_endpoints(
        emulator=emulator,
        public_url=public_url,
        credentials=credentials,
        testnet=opts.testnet,
        rest_url=opts.rest_url,
        custom_url=opts.url is not None,
    )
    key, secret = ends.api_key, ends.api_secret
    private = BybitPrivateWebSocket(
        private_bus,
        api_key=key,
        api_secret=secret,
        url=ends.private,
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
    if ends.rest is not None:
        rest = BybitRestClient(
            api_key=key,
            api_secret=secret,
            url=ends.rest,
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
    console.print(f"[bold]hean monitor[/] private stream {private.url}{where} ...", soft_wrap=True)
    try:
        if account is not None:
            await account.start()
        else:
            await private.connect(timeout=opts.connect_timeout)
            await private.subscribe(PRIVATE_TOPICS)
    except (AuthError, ConnectError, AccountError, RestError, TimeoutError) as exc:
        stats.auth_detail = str(exc) or type(exc).__name__
        console.print(f"[bold red]private stream:[/] {escape(stats.auth_detail)}", soft_wrap=True)
    trade: BybitTradeWebSocket | None = None
    if opts.trade:
        trade = BybitTradeWebSocket(
            bus,
            api_key=key,
            api_secret=secret,
            url=ends.trade,
            clock=clock,
            ping_interval=opts.ping_interval,
            pong_timeout=opts.pong_timeout,
            connect_timeout=opts.connect_timeout,
        )
        tracker.trade = TradeStats(url=trade.url)
        tracker.others.add(trade.name)  # its state events are on the public connection's bus
        console.print(f"[bold]hean monitor[/] order entry {trade.url} ...", soft_wrap=True)
        try:
            await trade.connect(timeout=opts.connect_timeout)
        except asyncio.CancelledError:  # Ctrl-C meanwhile: close it, the caller never gets it
            await trade.disconnect()
            raise
        except (AuthError, ConnectError, TimeoutError) as exc:
            tracker.trade.auth_detail = str(exc) or type(exc).__name__
            console.print(
                f"[bold red]trade connection:[/] {escape(tracker.trade.auth_detail)}",
                soft_wrap=True,
            )
    _note_private(tracker, private, account, trade)
    return private, account, rest, trade


def _count(stats: PrivateStats, kind: str, _event: object) -> None:
    if kind == "gap":
        stats.gaps += 1
    else:
        stats.on_event(kind)


def _note_private(
    tracker: MonitorTracker,
    private: BybitPrivateWebSocket,
    account: Account | None,
    trade: BybitTradeWebSocket | None = None,
) -> None:
    if trade is not None and tracker.trade is not None:
        t = tracker.trade
        t.auth, t.state = trade.auth_state.status, trade.state.value
        failure = trade.auth_state.last_failure
        if failure is not None:
            t.auth_detail = failure.message
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
    t = tracker.trade
    trade = "" if t is None else f"\ntrade {t.url}: {t.auth} ({t.state})"
    return f"private {p.url}: {p.auth} ({p.state})  {counts}  gaps={p.gaps}{account}{trade}"


def _print_report(out: TextIO, report: dict[str, Any]) -> None:
    """The text report, on ``out`` (stdout): plain lines, never wrapped (``> report.txt``)."""
    lines = [
        f"Report {report['url']} ({report['category']}): {report['ticks']} ticks in "
        f"{report['duration_s']:.1f}s ({report['tick_rate']:.1f}/s), symbols seen: "
        f"{', '.join(report['symbols_seen']) or 'none'}",
        f"  connection: drops {report['drops']}, reconnects {report['reconnects']}, "
        f"connect attempts {report['connect_attempts']} ({report['failed_attempts']} failed), "
        "ping rtt " + ("-" if report["ping_rtt_ms"] is None else f"{report['ping_rtt_ms']:.1f} ms")
        + f", event loop {report['event_loop']}",
    ]
    for symbol, s in report["symbols"].items():
        d = s["decimals"]
        line = (
            f"  {symbol:<12} ticks={s['ticks']:<7} rate={s['rate']:<8} "
            f"last={fmt_price(s['last_price'], d)}  bid={fmt_price(s['bid'], d)}  "
            f"ask={fmt_price(s['ask'], d)}  longest gap={s['longest_gap_s']}s"
        )
        if "book_valid" in s:
            valid = {None: "never received", True: "valid", False: "INVALID"}[s["book_valid"]]
            line += (
                f"  book {fmt_price(s['best_bid'], d)} / {fmt_price(s['best_ask'], d)} "
                f"spread {fmt_price(s['spread'], d)} {valid} updates={s['book_updates']} "
                f"resyncs={s['book_resyncs']}"
            )
        lines.append(line)
    p = report.get("private")
    if p is not None:
        counts = " ".join(f"{k}={v}" for k, v in p["events"].items())
        detail = f" ({p['auth_detail']})" if p["auth_detail"] else ""
        lines.append(
            f"  private {p['url']}: {p['auth']}{detail}, {p['state']}; {counts} gaps={p['gaps']}"
        )
        if p["account"] != "not_watched":
            last = f", last run: {p['last_run']}" if p["last_run"] else ""
            lines.append(
                f"  account: {p['account'].replace('_', ' ')}, "
                f"{p['reconciliations']} reconciliation(s){last}"
            )
    t = report.get("trade")
    if t is not None:
        detail = f" ({t['auth_detail']})" if t["auth_detail"] else ""
        lines.append(f"  trade {t['url']}: {t['auth']}{detail}, {t['state']}")
    if report["stable"]:
        lines.append("connection stable")
    else:
        lines.append("NOT stable: " + "; ".join(report["reasons"]))
    out.write("\n".join(lines) + "\n")
