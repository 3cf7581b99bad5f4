"""What the account (``hean.account.Account``) costs: reconciliation after a gap, and the
private stream's per-message handling before and after it is attached.

1. **Reconciliation** against the emulator (real sockets on 127.0.0.1; the emulator, its REST
   server and the client share one process and one asyncio loop, so the wall time includes the
   emulator serving every request). Per repeat a fresh emulator with ``--symbols`` linear
   symbols: one market order per symbol (``--symbols`` open positions), resting limit orders
   placed through REST ``create-batch`` (buys below the bid, sells above the ask, ten lots each),
   then ``Account.start()`` (the ``start`` run: a snapshot). Then the private link goes down
   (``emu.private_link_down``) and, while it is down, ``emu.outage_events`` fills ``--closed``
   orders completely, cancels ``--cancels`` and places ``--placed`` orders as someone else, a
   funding charge hits every position, and simulated takers hit resting orders one lot at a time
   (``SymbolMarket.hit``) until exactly ``--executions`` executions were booked; ``--orders``
   orders are open at the end. The link comes back; the client reconnects by itself. Measured:
   wall time from the first private ``GAP`` (its sync subscriber on the private bus) to the
   ``RECONCILED`` event (a sync subscriber on the user's bus), ``ReconciledEvent.duration`` and
   ``rest_calls``, the emulator's own count of requests answered for the key
   (``emu.rest_calls``), and the budget of the Account module docstring for this run. Two
   limit settings, interleaved per repeat:

   * ``raised``: every per-UID REST quota x100 (``rest_rate_scale=100``);
   * ``bybit``: Bybit's default quotas for everything the run uses (queries 50/s per endpoint;
     only ``create`` / ``create-batch`` are raised, for the set-up).

   Each run checks what it measured: the account equals the venue's open orders afterwards and
   learned every execution of the gap exactly once (``executions_new``), else it stops.

2. **Per-message cost** on the private stream, in-process (no sockets): private frames recorded
   from the emulator (a second account trading: orders placed, filled in part and in full,
   amended, cancelled, market orders; the emulator's own order / execution / position / wallet
   frames in the proportions it pushes them, each ``creationTime`` moved past the wallet
   snapshot) are fed to ``Session.receive`` of a ``BybitPrivateWebSocket`` as memoryviews:

   * ``before``: the private WebSocket publishing on a bus with one sync subscriber per account
     event type;
   * ``after``: the WebSocket of a started ``Account`` (its internal bus ->
     ``AccountState.feed`` -> the user's bus -> the same sync subscribers). A fresh account for
     every pass, so every frame is news to it (the steady-state path: apply and publish).

   CPU time of the feeding thread (``time.thread_time``), the two variants alternating (which
   one goes first alternates too), best and median of ``--stream-repeats``; reported as CPU-µs
   per message, the absolute difference and the ratio after / before. Then, to show where the
   difference goes, ``AccountState.feed`` alone on the decoded events of each topic.

Run:  .venv/bin/python benchmarks/bench_account.py [--repeats 5] [--stream-repeats 15]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hean.account import Account
from hean.core.bus import EventBus
from hean.core.events import EventType, GapEvent, ReconciledEvent
from hean.emulator import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    AccountConfig,
    Emulator,
    EmulatorConfig,
)
from hean.exchange.bybit import BybitPrivateWebSocket
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.rest import BybitRestClient

KEY = DEFAULT_API_KEY
SECRET = DEFAULT_API_SECRET
REC_KEY = "bench-recorder-key"
REC_SECRET = "bench-recorder-secret"
BALANCES = {"USDT": "1000000000", "USDC": "100000"}
BASES = (
    "BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA", "AVAX", "LINK", "LTC",
    "DOT", "TRX", "TON", "SUI", "NEAR", "APT", "ARB", "OP", "ATOM", "BCH",
)  # fmt: skip
ORDER_LOTS = 10
POSITION_LOTS = 50
TOPICS = ("order", "execution", "position", "wallet")
STREAM_TYPES = (
    EventType.ORDER_UPDATE,
    EventType.EXECUTION,
    EventType.POSITION_UPDATE,
    EventType.WALLET_UPDATE,
)
FAST_BACKOFF = BackoffPolicy(
    first=0.02,
    cap=0.1,
    slow_floor=0.2,
    try_again_floor=0.1,
    failure_threshold=50,
    cooldown=0.5,
    max_cooldown=1.0,
    stable_after=0.1,
)
LIMITS = {
    "raised": {"rest_rate_scale": 100.0},
    "bybit": {
        "rest_rate_scale": 1.0,
        "rest_rate_limits": {"/v5/order/create": 1000, "/v5/order/create-batch": 1000},
    },
}


def symbols(n: int) -> tuple[str, ...]:
    if not 1 <= n <= len(BASES):
        raise SystemExit(f"--symbols must be 1..{len(BASES)}")
    return tuple(f"{b}USDT" for b in BASES[:n])


def private_options() -> dict[str, Any]:
    return {
        "ping_interval": 5.0,
        "pong_timeout": 5.0,
        "connect_timeout": 5.0,
        "ack_timeout": 5.0,
        "auth_timeout": 5.0,
        "backoff": FAST_BACKOFF,
        "rng": random.Random(7),
    }


def make_account(bus: EventBus, rest: BybitRestClient, emu: Emulator, **kw: Any) -> Account:
    return Account(
        bus,
        rest,
        api_key=kw.pop("api_key", KEY),
        api_secret=kw.pop("api_secret", SECRET),
        private_url=emu.url("private"),
        private_options=private_options(),
        subscribe_timeout=10.0,
        **kw,
    )


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark stuck: {what} not reached in {timeout} s")
        await asyncio.sleep(0.002)


# -- 1. reconciliation ----------------------------------------------------------------------


@dataclass
class RunResult:
    limits: str
    start_duration: float
    start_calls: int
    wall: float
    duration: float
    rest_calls: int
    emu_calls: int
    budget: int
    by_path: dict[str, int]
    executions_new: int
    open_orders: int
    positions: int
    orders_closed: int
    external: int
    shape: dict[str, int] = field(default_factory=dict)


async def place_resting(
    emu: Emulator, rest: BybitRestClient, names: tuple[str, ...], n: int
) -> None:
    """``n`` limit orders of ten lots spread over ``names``, through ``create-batch``."""
    per: dict[str, list[dict[str, Any]]] = {s: [] for s in names}
    for i in range(n):
        symbol = names[i % len(names)]
        market = emu.symbol_market("linear", symbol)
        spec = market.spec
        k = len(per[symbol])
        buy = k % 2 == 0
        bid, ask = market.book.best_bid(), market.book.best_ask()
        assert bid is not None and ask is not None, symbol
        ticks = bid - 3 - k if buy else ask + 3 + k
        per[symbol].append(
            {
                "symbol": symbol,
                "side": "Buy" if buy else "Sell",
                "orderType": "Limit",
                "qty": spec.qty_str(ORDER_LOTS),
                "price": spec.price_str(ticks),
                "timeInForce": "GTC",
            }
        )
    batch = [order for orders in per.values() for order in orders]
    for i in range(0, len(batch), 20):
        response = await rest.create_orders("linear", batch[i : i + 20])
        if response.failed:
            raise SystemExit(f"create-batch refused orders: {response.failed}")


async def reconcile_once(args: argparse.Namespace, limits: str, seed: int) -> RunResult:
    names = symbols(args.symbols)
    config = EmulatorConfig(
        symbols={"linear": names},
        auto_tick=False,
        seed=seed,
        trade_rate_limit=1000,
        accounts=(AccountConfig(api_key=KEY, api_secret=SECRET, balances=BALANCES),),
        **LIMITS[limits],  # type: ignore[arg-type]
    )
    bus = EventBus()
    await bus.start()
    async with (
        Emulator(config) as emu,
        BybitRestClient(api_key=KEY, api_secret=SECRET, url=emu.rest_url(), timeout=30) as rest,
    ):
        # the state: a position per symbol, resting orders (more than --orders: the gap closes
        # --closed + --cancels of them and someone else places --placed)
        for symbol in names:
            spec = emu.symbol_market("linear", symbol).spec
            await rest.create_order(
                category="linear",
                symbol=symbol,
                side="Buy",
                order_type="Market",
                qty=spec.qty_str(POSITION_LOTS),
            )
        resting = args.orders + args.closed + args.cancels - args.placed
        await place_resting(emu, rest, names, resting)
        truth = emu.account(KEY)
        assert len(truth.open_orders) == resting, (len(truth.open_orders), resting)

        runs: list[ReconciledEvent] = []
        marks: dict[str, float] = {}
        bus.subscribe(EventType.RECONCILED, runs.append, name="bench-runs")

        def on_reconciled(event: ReconciledEvent) -> None:
            if event.trigger == "gap":
                marks.setdefault("reconciled", time.perf_counter())

        bus.subscribe(EventType.RECONCILED, on_reconciled, name="bench-mark")
        account = make_account(bus, rest, emu)
        await account.start()
        [start] = runs

        def on_gap(event: GapEvent) -> None:
            marks.setdefault("gap", time.perf_counter())

        assert account.private.bus is not None
        account.private.bus.subscribe(EventType.GAP, on_gap, name="bench-gap")
        await asyncio.sleep(0.05)  # let the last stream messages of the set-up land
        held_open = {
            (p.category or "linear", p.symbol)
            for p in account.positions.values()
            if float(p.size or 0) != 0
        }
        last_exec_ms = account.state.last_exec_time_ms

        # the gap: link down, the account changes meanwhile, link up
        emu.private_link_down(KEY)
        for _ in range(3):
            await asyncio.sleep(0)
        acct = emu.trading.by_key(KEY)
        booked_before = acct.executions_total
        summary = emu.outage_events(
            KEY,
            fills=args.closed,
            partial_fills=0,
            cancels=args.cancels,
            new_orders=args.placed,
            funding_rate="0.0001",
            seed=seed,
        )
        hits = args.executions - (acct.executions_total - booked_before)
        if hits < 0:
            raise SystemExit("--executions is smaller than the fills and funding of the gap")
        traded: set[tuple[str, str]] = set()
        while hits:
            pool = [o for o in acct.orders.values() if o.is_open and o.book.leaves >= 2]
            if not pool:
                raise SystemExit("no resting order left to hit: raise --orders")
            for order in pool[:hits]:
                emu.symbol_market(order.category, order.symbol).hit(order.order_id, 1, "sim:bench")
                traded.add((order.category, order.symbol))
                hits -= 1
        gap_executions = acct.executions_total - booked_before
        assert gap_executions == args.executions, gap_executions
        calls_before = rest.calls_by_path
        emu_before = emu.rest_calls(api_key=KEY)
        emu.private_link_up(KEY)
        await until(lambda: "reconciled" in marks, 60.0, "the gap's RECONCILED event")
        [run] = [r for r in runs if r.trigger == "gap"]
        emu_calls = emu.rest_calls(api_key=KEY) - emu_before
        by_path = {
            path.removeprefix("/v5/"): n - calls_before.get(path, 0)
            for path, n in rest.calls_by_path.items()
            if n - calls_before.get(path, 0)
        }
        # what the run found, checked against the venue (a benchmark of a wrong answer is
        # worthless)
        truth = emu.account(KEY)
        open_truth = {str(o["orderId"]) for o in truth.open_orders}
        if not run.ok or set(account.orders) != open_truth:
            raise SystemExit(f"the account does not equal the venue after the run: {run}")
        if run.executions_new != args.executions:
            raise SystemExit(f"executions_new {run.executions_new} != {args.executions}")
        budget = run_budget(
            truth=truth,
            gap_since_ms=run.gap_since_wall_ms,
            last_exec_ms=last_exec_ms,
            margin_ms=account.state.margin_ms,
            missing=len(summary.filled) + len(summary.cancelled),
            touched=held_open | traded,
        )
        open_positions = sum(1 for p in truth.positions if float(str(p["size"])) != 0)
        await account.stop()
    await bus.stop()
    return RunResult(
        limits=limits,
        start_duration=start.duration,
        start_calls=start.rest_calls,
        wall=marks["reconciled"] - marks["gap"],
        duration=run.duration,
        rest_calls=run.rest_calls,
        emu_calls=emu_calls,
        budget=budget,
        by_path=by_path,
        executions_new=run.executions_new,
        open_orders=len(open_truth),
        positions=open_positions,
        orders_closed=run.orders_closed,
        external=run.external_orders,
    )


def run_budget(
    *,
    truth: Any,
    gap_since_ms: int | None,
    last_exec_ms: int | None,
    margin_ms: int,
    missing: int,
    touched: set[tuple[str, str]],
) -> int:
    """The budget formula of ``hean.account.account`` (linear, USDT, one 7-day window).

    ``E``: executions at the venue from ``min(last execTime seen, start of the gap) - margin``
    on (an upper bound of the window the run reads: the window rule may start it later);
    ``O`` open orders, ``P`` open positions at the venue; ``M`` orders held open that the gap
    closed; ``Q`` positions held open or traded in the gap that are flat now (fetched by
    symbol)."""
    known = [x for x in (last_exec_ms, gap_since_ms) if x is not None]
    start = (min(known) if known else 0) - margin_ms
    executions = sum(1 for x in truth.executions if int(str(x["execTime"])) >= start)
    open_orders = len(truth.open_orders)
    positions = [p for p in truth.positions if str(p["category"]) == "linear"]
    open_positions = sum(1 for p in positions if float(str(p["size"])) != 0)
    flat = {(str(p["category"]), str(p["symbol"])) for p in positions if float(str(p["size"])) == 0}
    by_symbol = len(flat & touched)
    return (
        math.ceil(executions / 100)
        + 1
        + math.ceil(open_orders / 50)
        + 1
        + 2 * missing
        + math.ceil(open_positions / 200)
        + 1
        + 2 * by_symbol
        + 1
    )


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-" + (
        f"{format(max(values), fmt)})"
    )


def report_reconciliation(args: argparse.Namespace, results: list[RunResult]) -> None:
    print(
        f"\n### Reconciliation: {args.orders} open orders, {args.executions} executions in the "
        f"gap, {args.symbols} positions ({args.repeats} repeats per row, median (min-max))\n"
    )
    print(
        "| limits | wall GAP→RECONCILED ms | ReconciledEvent.duration ms | rest_calls | "
        "emulator count | budget | start run ms | start run calls |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for limits in LIMITS:
        rows = [r for r in results if r.limits == limits]
        if not rows:
            continue
        calls = sorted({r.rest_calls for r in rows})
        emu_calls = sorted({r.emu_calls for r in rows})
        budgets = sorted({r.budget for r in rows})
        start_calls = sorted({r.start_calls for r in rows})
        print(
            f"| {limits} | {spread([r.wall * 1e3 for r in rows], ',.0f')} | "
            f"{spread([r.duration * 1e3 for r in rows], ',.0f')} | "
            f"{'/'.join(map(str, calls))} | {'/'.join(map(str, emu_calls))} | "
            f"{'/'.join(map(str, budgets))} | "
            f"{spread([r.start_duration * 1e3 for r in rows], ',.0f')} | "
            f"{'/'.join(map(str, start_calls))} |"
        )
    first = results[0]
    paths = ", ".join(f"{p} {n}" for p, n in sorted(first.by_path.items()))
    print(
        f"\nREST calls of one gap run by path: {paths}. Found: {first.open_orders} open orders, "
        f"{first.positions} open positions, {first.executions_new} new executions, "
        f"{first.orders_closed} orders closed, {first.external} external orders."
    )


# -- 2. per-message cost --------------------------------------------------------------------


async def record_frames(emu: Emulator, names: tuple[str, ...], fills: int) -> list[bytes]:
    """Private data frames the emulator pushes to an account that trades: orders placed (REST
    batches), filled in part and in full by simulated takers, amended, cancelled, and market
    orders."""
    frames: list[bytes] = []
    bus = EventBus()
    await bus.start()
    ws = BybitPrivateWebSocket(
        bus, api_key=REC_KEY, api_secret=REC_SECRET, url=emu.url("private"), **private_options()
    )
    receive = ws.session.receive

    def recording(payload: Any, now: float) -> Any:
        data = bytes(payload)
        if "topic" in json.loads(data):  # a data frame (acks and pongs have none)
            frames.append(data)
        return receive(payload, now)

    ws.session.receive = recording  # type: ignore[method-assign]
    try:
        await ws.connect(timeout=10)
        await ws.subscribe(list(TOPICS))
        await ws.wait_subscribed(list(TOPICS), timeout=10)
        await trade(emu, names, fills)
    finally:
        await ws.disconnect()
        await bus.stop()
    return frames


async def trade(emu: Emulator, names: tuple[str, ...], fills: int) -> None:
    """The recording account's activity (see :func:`record_frames`)."""
    rng = random.Random(3)
    async with BybitRestClient(
        api_key=REC_KEY, api_secret=REC_SECRET, url=emu.rest_url(), timeout=30
    ) as rest:
        acct = emu.trading.by_key(REC_KEY)
        done = 0
        while done < fills:
            await place_resting(emu, rest, names, 20)
            open_orders = [o for o in acct.orders.values() if o.is_open]
            rng.shuffle(open_orders)
            for order in open_orders[:12]:  # fills: one lot, or the rest
                lots = order.book.leaves if rng.random() < 0.3 else 1
                emu.symbol_market(order.category, order.symbol).hit(order.order_id, lots, "sim:b")
                done += 1
            for order in [o for o in open_orders[12:] if o.is_open][:2]:
                await rest.amend_order(
                    category="linear",
                    symbol=order.symbol,
                    order_id=order.order_id,
                    qty=order.spec.qty_str(order.spec.parse_qty(order.qty_text) + 1),
                )
            for order in [o for o in open_orders[14:] if o.is_open][:6]:
                await rest.cancel_order(
                    category="linear", symbol=order.symbol, order_id=order.order_id
                )
            symbol = names[rng.randrange(len(names))]
            spec = emu.symbol_market("linear", symbol).spec
            await rest.create_order(
                category="linear",
                symbol=symbol,
                side=rng.choice(("Buy", "Sell")),
                order_type="Market",
                qty=spec.qty_str(2),
            )
            done += 1
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)


def retimed(frames: list[bytes], after_ms: int) -> list[memoryview]:
    """The frames with ``creationTime`` moved past ``after_ms`` (order kept), so that wallet
    messages count as newer than the account's REST wallet snapshot."""
    out = []
    for i, raw in enumerate(frames):
        message = json.loads(raw)
        message["creationTime"] = after_ms + 1 + i
        out.append(memoryview(json.dumps(message, separators=(",", ":")).encode()))
    return out


async def stream_cost(args: argparse.Namespace) -> None:
    names = symbols(min(args.symbols, 5))
    config = EmulatorConfig(
        symbols={"linear": names},
        auto_tick=False,
        trade_rate_limit=1000,
        rest_rate_scale=100.0,
        accounts=(
            AccountConfig(api_key=KEY, api_secret=SECRET, balances=BALANCES),
            AccountConfig(api_key=REC_KEY, api_secret=REC_SECRET, balances=BALANCES),
        ),
    )
    async with Emulator(config) as emu:
        raw = await record_frames(emu, names, args.stream_fills)
        kinds = Counter(json.loads(f)["topic"] for f in raw)
        items = sum(len(json.loads(f)["data"]) for f in raw)
        frames = retimed(raw, emu.server_time_ms() + 3_600_000)
        sizes = [len(f) for f in frames]

        seen = Counter[str]()

        def subscriber(name: str, attr: str) -> Callable[[Any], None]:
            def on_event(event: Any) -> None:
                seen[name] += len(getattr(event, attr))

            return on_event

        attrs = ("orders", "executions", "positions", "wallets")

        def subscribe(bus: EventBus) -> None:
            for event_type, attr in zip(STREAM_TYPES, attrs, strict=True):
                bus.subscribe(event_type, subscriber(event_type.value, attr), name=f"user-{attr}")

        # before: the private WebSocket, connected and subscribed, its bus with the subscribers
        plain_bus = EventBus()
        await plain_bus.start()
        subscribe(plain_bus)
        plain = BybitPrivateWebSocket(
            plain_bus, api_key=KEY, api_secret=SECRET, url=emu.url("private"), **private_options()
        )
        await plain.connect(timeout=10)
        await plain.subscribe(list(TOPICS))
        await plain.wait_subscribed(list(TOPICS), timeout=10)

        user_bus = EventBus()
        await user_bus.start()
        subscribe(user_bus)

        async with BybitRestClient(
            api_key=KEY, api_secret=SECRET, url=emu.rest_url(), timeout=30
        ) as rest:

            def feed(receive: Callable[[Any, float], Any]) -> float:
                gc.collect()
                now = time.monotonic()
                t0 = time.thread_time()
                for frame in frames:
                    receive(frame, now)
                return (time.thread_time() - t0) / len(frames) * 1e6

            before: list[float] = []
            after: list[float] = []
            published: list[int] = []
            for r in range(args.stream_repeats):
                account = make_account(user_bus, rest, emu)
                await account.start()
                seen.clear()
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for which in order:
                    if which == "before":
                        before.append(feed(plain.session.receive))
                    else:
                        after.append(feed(account.private.session.receive))
                published.append(account.state.stats.executions_seen)
                await account.stop()
            errors = plain.session.stats.data_errors + plain.session.stats.decode_errors
            if errors or plain.undecoded:
                raise SystemExit(f"frames not decoded cleanly: {errors} errors")
        await plain.disconnect()
        await plain_bus.stop()
        await user_bus.stop()

    executions = sum(
        len(json.loads(f)["data"]) for f in raw if json.loads(f)["topic"] == "execution"
    )
    if set(published) != {executions}:
        raise SystemExit(f"the account did not take every execution: {published} != {executions}")
    mix = ", ".join(f"{k} {v / len(raw):.0%}" for k, v in sorted(kinds.items()))
    print(
        f"\n### Private stream: CPU-µs per message, {len(frames):,} frames recorded from the "
        f"emulator ({mix}; {items:,} items, {statistics.median(sizes):,.0f} B median), "
        f"best / median of {args.stream_repeats}, interleaved\n"
    )
    print("| variant | best µs/msg | median µs/msg | range |")
    print("|---|---:|---:|---:|")
    for label, values in (
        ("before: private WS -> bus -> sync subscribers", before),
        ("after: + Account (internal bus -> AccountState.feed -> user bus)", after),
    ):
        print(
            f"| {label} | {min(values):.2f} | {statistics.median(values):.2f} | "
            f"{min(values):.2f}-{max(values):.2f} |"
        )
    pairs = [a / b for a, b in zip(after, before, strict=True)]
    added = [a - b for a, b in zip(after, before, strict=True)]
    print(
        f"\nafter / before: best {min(after) / min(before):.2f}x, median of per-pass ratios "
        f"{statistics.median(pairs):.2f}x ({min(pairs):.2f}-{max(pairs):.2f}); added "
        f"{min(after) - min(before):+.2f} µs/msg (best vs best), median per pass "
        f"{statistics.median(added):+.2f} µs ({min(added):+.2f}-{max(added):+.2f})."
    )
    feed_by_topic(frames, args.stream_repeats)


def feed_by_topic(frames: list[memoryview], repeats: int) -> None:
    """``AccountState.feed`` alone on the decoded events, per topic (where the added cost goes)."""
    from hean.account.core import AccountState
    from hean.exchange.bybit.protocol.codec import decode
    from hean.exchange.bybit.state.private import private_event

    events = [private_event(decode(f), "private", 1.0, 1) for f in frames]
    decoded = [e for e in events if e is not None]
    print("\n| topic | messages | best AccountState.feed µs/msg |")
    print("|---|---:|---:|")
    for event_type in STREAM_TYPES:
        mine = [(t, e) for t, e in decoded if t is event_type]
        if not mine:
            continue
        runs = []
        for _ in range(repeats):
            state = AccountState()
            feed = state.feed
            t0 = time.thread_time()
            for kind, event in mine:
                feed(kind, event)
            runs.append((time.thread_time() - t0) / len(mine) * 1e6)
        print(f"| {event_type.value} | {len(mine):,} | {min(runs):.2f} |")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--orders", type=int, default=200, help="open orders when the run starts")
    p.add_argument("--executions", type=int, default=1000, help="executions during the gap")
    p.add_argument("--symbols", type=int, default=20, help="symbols = open positions")
    p.add_argument("--closed", type=int, default=10, help="orders filled completely in the gap")
    p.add_argument("--cancels", type=int, default=5, help="orders cancelled in the gap")
    p.add_argument("--placed", type=int, default=5, help="orders placed by someone else")
    p.add_argument("--repeats", type=int, default=5, help="reconciliation runs per limit setting")
    p.add_argument("--limits", choices=("both", *LIMITS), default="both")
    p.add_argument("--stream-repeats", type=int, default=15)
    p.add_argument("--stream-fills", type=int, default=600, help="fills in the recording")
    p.add_argument("--skip-reconcile", action="store_true")
    p.add_argument("--skip-stream", action="store_true")
    args = p.parse_args()
    if min(args.orders, args.executions, args.repeats, args.stream_repeats) < 1:
        raise SystemExit("sizes and repeats must be >= 1")

    print(
        f"# bench_account: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, asyncio; client and emulator in one "
        "process and one event loop"
    )
    if not args.skip_reconcile:
        order = list(LIMITS) if args.limits == "both" else [args.limits]
        results = []
        for r in range(args.repeats):
            for limits in order if r % 2 == 0 else order[::-1]:
                results.append(await reconcile_once(args, limits, seed=r + 1))
        report_reconciliation(args, results)
    if not args.skip_stream:
        await stream_cost(args)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
