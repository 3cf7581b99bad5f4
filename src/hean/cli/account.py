"""``hean account``: the account as HEAN sees it, followed live, with every reconciliation shown.

It starts an :class:`~hean.account.Account` (private stream + REST snapshot), prints balances,
positions and open orders, then follows them: a live view on a terminal, or one line per
reconciliation run when piped. ``--sim`` runs against the built-in emulator with a seeded demo
account and (``--sim-outage``) drops the private link every few seconds while orders fill, are
cancelled and are placed by someone else, so you can watch HEAN heal. Exit code: 0 when the
account ended in sync, 1 when it did not, 2 when it could not start (bad keys, no connection,
bad options).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from hean.account import Account, AccountError
from hean.cli.common import follow, start_sim
from hean.core.bus import EventBus
from hean.core.clock import Clock, SystemClock
from hean.core.config import ConfigError, Settings
from hean.core.events import AccountSyncEvent, EventType, ReconciledEvent
from hean.core.secrets import Secret
from hean.core.waits import wait_set
from hean.exchange.bybit.endpoints import private_url
from hean.exchange.bybit.instruments import Instrument, InstrumentRegistry
from hean.exchange.bybit.protocol.auth import AuthError
from hean.exchange.bybit.rest import BybitRestClient, RestError
from hean.exchange.bybit.ws_public import ConnectError

__all__ = ["AccountOptions", "describe_run", "run_account", "snapshot"]

log = logging.getLogger("hean.cli.account")

EXIT_IN_SYNC = 0
EXIT_NOT_IN_SYNC = 1
EXIT_CANNOT_START = 2

SIM_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@dataclass(frozen=True, slots=True)
class AccountOptions:
    sim: bool
    testnet: bool = True
    rest_url: str | None = None
    private_url: str | None = None
    categories: tuple[str, ...] = ("linear",)
    settle_coins: tuple[str, ...] = ("USDT",)
    duration: float = 0.0
    """Seconds to follow the account; 0 follows until Ctrl-C."""
    json_output: bool = False
    live_view: bool = True
    audit_interval: float | None = None
    connect_timeout: float = 10.0
    sim_outage: float | None = 10.0
    """``--sim``: seconds between private-link outages (``None``: none)."""
    sim_seed: int = 1
    refresh: float = 0.5


async def run_account(
    opts: AccountOptions,
    *,
    out: TextIO | None = None,
    err_console: Console | None = None,
    clock: Clock | None = None,
    stop_event: asyncio.Event | None = None,
) -> int:
    """Run ``hean account``; returns the exit code."""
    out = out if out is not None else sys.stdout
    console = err_console if err_console is not None else Console(stderr=True)
    # the runs and the final account go to stdout (``> account.txt`` keeps them), unwrapped
    report = Console(file=out, width=None if out.isatty() else 200, soft_wrap=True)
    clock = clock if clock is not None else SystemClock()
    stop = stop_event if stop_event is not None else asyncio.Event()

    emulator: Any = None
    key: Secret
    secret: Secret
    if opts.sim:
        from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET

        emulator = await _start_sim(opts)
        key, secret = Secret.api_key(DEFAULT_API_KEY), Secret.of(DEFAULT_API_SECRET)
        rest_url: str | None = emulator.rest_url()
        ws_private: str | None = emulator.url("private")
    else:
        try:
            settings = Settings()
        except ConfigError as exc:
            console.print(f"[bold red]hean account:[/] {exc}")
            return EXIT_CANNOT_START
        if not settings.has_credentials:
            console.print(
                "[bold red]hean account needs API keys:[/] set BYBIT_API_KEY and "
                "BYBIT_API_SECRET (or use --sim for the built-in emulator's account)"
            )
            return EXIT_CANNOT_START
        creds = settings.credentials()
        key, secret = creds.api_key, creds.api_secret
        rest_url = opts.rest_url
        ws_private = opts.private_url or private_url(testnet=opts.testnet)

    bus = EventBus()
    await bus.start()
    runs: deque[ReconciledEvent] = deque(maxlen=8)
    bus.subscribe(EventType.RECONCILED, runs.append, name="hean-account")
    synced = asyncio.Event()

    def on_sync(event: AccountSyncEvent) -> None:
        if event.in_sync:
            synced.set()
        else:
            synced.clear()

    bus.subscribe(EventType.ACCOUNT_SYNC, on_sync, name="hean-account")
    if not opts.live_view and not opts.json_output:

        def print_run(event: ReconciledEvent) -> None:
            report.print(describe_run(event), highlight=False)

        bus.subscribe(EventType.RECONCILED, print_run, name="hean-account-log")
    rest = BybitRestClient(
        api_key=key,
        api_secret=secret,
        testnet=opts.testnet,
        url=rest_url,
        timeout=opts.connect_timeout,
    )
    account = Account(
        bus,
        rest,
        categories=opts.categories,
        settle_coins=opts.settle_coins,
        clock=clock,
        audit_interval=opts.audit_interval,
        private_url=ws_private,
        api_key=key,
        api_secret=secret,
        testnet=opts.testnet,
        subscribe_timeout=opts.connect_timeout,
        private_options={"connect_timeout": opts.connect_timeout},
    )
    outages: asyncio.Task[None] | None = None
    code = EXIT_CANNOT_START
    try:
        console.print(
            f"[bold]hean account[/] REST {rest.url}  private {account.private.url} ...",
            highlight=False,
        )
        try:
            if not await _until_stopped(account.start(), stop):
                console.print("[bold yellow]stopped before the account was in sync[/]")
                if opts.json_output:
                    out.write(json.dumps({"in_sync": False, "error": "interrupted"}) + "\n")
                return EXIT_NOT_IN_SYNC
        except (AuthError, ConnectError, AccountError, RestError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            console.print(f"[bold red]cannot start the account:[/] {reason}", highlight=False)
            if opts.json_output:
                out.write(json.dumps({"in_sync": False, "error": reason}) + "\n")
            return EXIT_CANNOT_START
        if emulator is not None and opts.sim_outage is not None:
            outages = asyncio.create_task(_outages(emulator, opts, console))
        await follow(
            lambda: _view(account, runs, clock.monotonic()),
            console=console,
            clock=clock,
            stop=stop,
            end=None if opts.duration <= 0 else clock.monotonic() + opts.duration,
            refresh=opts.refresh,
            live_view=opts.live_view and not opts.json_output,
            logs_above=True,
        )
        if outages is not None:
            outages.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await outages
            outages = None
        if not account.in_sync and not stop.is_set():
            # the run ended mid-gap: give the reconciliation in progress a chance to finish
            await _until_stopped(_wait_synced(synced, opts.connect_timeout), stop)
        doc = snapshot(account)
        if opts.json_output:
            out.write(json.dumps(doc) + "\n")
        else:
            report.print(_view(account, runs, clock.monotonic()))
        code = EXIT_IN_SYNC if account.in_sync else EXIT_NOT_IN_SYNC
        return code
    finally:
        if outages is not None:
            outages.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await outages
        await account.stop()
        await rest.close()
        await bus.stop()
        if emulator is not None:
            await emulator.stop()


async def _wait_synced(event: asyncio.Event, timeout: float) -> None:
    await wait_set(event, timeout)


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` is set first (Ctrl-C, SIGTERM): then it is cancelled at
    once, whatever stage it is at. True when ``work`` finished."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        task.result()  # raises what start() raised
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


# -- the demo account of --sim ----------------------------------------------------------------


async def _start_sim(opts: AccountOptions) -> Any:
    """The emulator every ``--sim`` command starts, with the demo account seeded on it."""
    from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET

    emulator, _ = await start_sim("linear", 5.0, seed=opts.sim_seed)
    async with BybitRestClient(
        api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emulator.rest_url()
    ) as rest:
        rest.instruments = InstrumentRegistry(rest=rest)
        # a position, and resting orders on both sides near the touch
        btc = await rest.instruments.get("linear", "BTCUSDT")
        await rest.create_order(
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            order_type="Market",
            qty=str(_qty(btc) * 5),
        )
        for symbol in SIM_SYMBOLS:
            await _rest_near_touch(emulator, rest, symbol, "Buy", 2, f"demo-{symbol}-b")
            await _rest_near_touch(emulator, rest, symbol, "Sell", 2, f"demo-{symbol}-s")
    return emulator


def _qty(inst: Instrument) -> Decimal:
    """A small valid quantity: ten lot steps, at least the minimum."""
    step = inst.qty_step or Decimal(1)
    return max(step * 10, inst.min_qty or step)


async def _rest_near_touch(
    emulator: Any, rest: BybitRestClient, symbol: str, side: str, count: int, link: str | None
) -> None:
    """``count`` limit orders a few ticks behind the touch on ``side``."""
    registry = rest.instruments
    assert isinstance(registry, InstrumentRegistry)  # set by _start_sim and _outages
    inst = await registry.get("linear", symbol)
    tick = inst.tick_size or Decimal("0.01")
    bids, asks = emulator.book_truth("linear", symbol, 1)
    for i in range(1, count + 1):
        if side == "Buy":
            price = Decimal(bids[0][0]) - tick * 5 * i
        else:
            price = Decimal(asks[0][0]) + tick * 5 * i
        await rest.create_order(
            category="linear",
            symbol=symbol,
            side=side,
            order_type="Limit",
            qty=str(_qty(inst)),
            price=str(price),
            order_link_id=None if link is None else f"{link}{i}",
        )


async def _outages(emulator: Any, opts: AccountOptions, console: Console) -> None:
    from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET

    assert opts.sim_outage is not None
    seed = opts.sim_seed
    async with BybitRestClient(
        api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emulator.rest_url()
    ) as rest:
        rest.instruments = InstrumentRegistry(rest=rest)
        while True:
            await asyncio.sleep(opts.sim_outage)
            seed += 1
            summary = await emulator.private_outage(
                DEFAULT_API_KEY,
                fills=1,
                partial_fills=1,
                cancels=1,
                new_orders=1,
                seed=seed,
                hold=1.0,
            )
            log.info(
                "sim: private link was down: %d filled, %d partly filled, %d cancelled, %d placed",
                len(summary.filled),
                len(summary.partially_filled),
                len(summary.cancelled),
                len(summary.placed),
            )
            # keep some resting orders for the next outage to work on
            if len(emulator.account(DEFAULT_API_KEY).open_orders) < 6:
                symbol = SIM_SYMBOLS[seed % len(SIM_SYMBOLS)]
                await _rest_near_touch(emulator, rest, symbol, "Buy", 1, None)
                await _rest_near_touch(emulator, rest, symbol, "Sell", 1, None)


# -- output -----------------------------------------------------------------------------------


def describe_run(event: ReconciledEvent) -> str:
    """One line about a reconciliation run."""
    if not event.ok:
        return (
            f"reconciliation ({event.trigger}) FAILED after {event.duration * 1e3:.0f} ms, "
            f"{event.rest_calls} REST calls: {event.error}"
        )
    changes = []
    if event.orders_changed:
        closed = f" ({event.orders_closed} closed)" if event.orders_closed else ""
        changes.append(f"{event.orders_changed} orders changed{closed}")
    if event.external_orders:
        changes.append(f"{event.external_orders} external")
    if event.executions_new:
        changes.append(f"{event.executions_new} executions")
    if event.positions_changed:
        changes.append(f"{event.positions_changed} positions")
    if event.wallet_changed:
        changes.append("wallet")
    if event.buffered:
        changes.append(f"{event.buffered} stream events held and released")
    what = ", ".join(changes) if changes else "nothing had changed"
    return (
        f"reconciled ({event.trigger}) in {event.duration * 1e3:.0f} ms, "
        f"{event.rest_calls} REST calls: {what}"
    )


def snapshot(account: Account) -> dict[str, Any]:
    """The account as one JSON-ready document."""
    wallet = account.wallet
    last = account.stats.last_run
    return {
        "in_sync": account.in_sync,
        "balances": {
            c.coin: {
                "wallet_balance": c.wallet_balance,
                "equity": c.equity,
                "unrealised_pnl": c.unrealised_pnl,
                "locked": c.locked,
            }
            for c in (wallet.coin if wallet is not None else [])
        },
        "positions": [
            {
                "category": cat,
                "symbol": sym,
                "position_idx": idx,
                "side": p.side,
                "size": p.size,
                "entry_price": p.entry_price,
                "unrealised_pnl": p.unrealised_pnl,
                "seq": p.seq,
            }
            for (cat, sym, idx), p in sorted(account.positions.items())
        ],
        "open_orders": [
            {
                "order_id": o.order_id,
                "order_link_id": o.order_link_id,
                "symbol": o.symbol,
                "side": o.side,
                "order_type": o.order_type,
                "price": o.price,
                "qty": o.qty,
                "cum_exec_qty": o.cum_exec_qty,
                "status": o.order_status,
                "external": account.is_external(o.order_id),
            }
            for o in sorted(account.orders.values(), key=lambda o: (o.symbol, o.created_time or ""))
        ],
        "runs": account.stats.state.runs,
        "rest_calls": account.stats.rest_calls,
        "last_run": None if last is None else describe_run(last),
    }


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def _view(account: Account, runs: deque[ReconciledEvent], now: float) -> Group:
    doc = snapshot(account)
    status = {
        "in_sync": Text("IN SYNC", style="bold green"),
        "failing": Text("RECONCILING (last run failed, retrying)", style="bold red"),
    }.get(account.sync_state, Text("RECONCILING", style="bold yellow"))
    header = Text.assemble(
        "account ", status, f"  runs {doc['runs']}  REST calls {doc['rest_calls']}"
    )
    balances = _table("balances", ["coin", "wallet balance", "equity", "uPnL", "locked"])
    for coin, b in doc["balances"].items():
        balances.add_row(
            coin,
            b["wallet_balance"] or "-",
            b["equity"] or "-",
            b["unrealised_pnl"] or "-",
            b["locked"] or "-",
        )
    positions = _table("positions", ["symbol", "side", "size", "entry", "uPnL", "seq"])
    for p in doc["positions"]:
        if p["size"] in (None, "0", ""):
            continue
        positions.add_row(
            p["symbol"], p["side"] or "-", p["size"], p["entry_price"] or "-",
            p["unrealised_pnl"] or "-", str(p["seq"]),
        )  # fmt: skip
    orders = _table("open orders", ["symbol", "side", "price", "qty", "filled", "status", "origin"])
    for o in doc["open_orders"]:
        orders.add_row(
            o["symbol"], o["side"] or "-", o["price"] or "-", o["qty"] or "-",
            o["cum_exec_qty"] or "0", o["status"] or "-",
            "[magenta]external[/]" if o["external"] else "local",
        )  # fmt: skip
    log_lines = [Text(describe_run(r), style="green" if r.ok else "red") for r in runs]
    return Group(header, balances, positions, orders, Text("reconciliations:"), *log_lines)
