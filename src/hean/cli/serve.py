"""``hean serve``: run the market-data streams headless with ``/health``, ``/metrics`` and the
dashboard, until Ctrl-C.

It subscribes tickers (and, with ``--books``, order books) for ``--symbols`` on one public
connection (Bybit testnet by default, any ``--url``, or the built-in emulator with ``--sim``),
watches them with :class:`~hean.health.HealthMonitor` and serves
:class:`~hean.health.HealthServer` on 127.0.0.1 (``--http-host`` to bind elsewhere). It never
gives up on the connection: while the venue is unreachable it keeps retrying with backoff and
``/health`` answers 503 with the reason.

With ``--private`` (keys from ``BYBIT_API_KEY`` / ``BYBIT_API_SECRET``; with ``--sim`` the
emulator's account) it also opens what an account's trading needs, and shows each with its
auth state: the private stream, the account view kept in sync on it (in sync / reconciling,
when a REST URL is known: ``--sim``, testnet, mainnet, or ``--rest-url``), and the order-entry
connection (``/v5/trade``; ``--no-trade`` leaves it out, e.g. for demo trading, which has none).
A rejected key is shown as ``auth failed`` and not retried; anything else is retried.

Exit code 0 after Ctrl-C, 2 when the HTTP port cannot be bound or ``--private`` has no keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from hean.cli.common import UsageError, private_credentials, private_endpoints, start_sim
from hean.core.bus import EventBus
from hean.core.clock import Clock, SystemClock
from hean.core.loop import loop_name
from hean.core.secrets import Secret
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from hean.exchange.bybit.ws_trade import BybitTradeWebSocket
from hean.health import HealthMonitor, HealthServer, StalenessPolicy
from hean.health.staleness import DEFAULT_FIELD_THRESHOLDS, DEFAULT_THRESHOLDS

__all__ = [
    "DEFAULT_HTTP_PORT",
    "ServeOptions",
    "parse_stale_spec",
    "policy_from_specs",
    "run_serve",
]

log = logging.getLogger("hean.serve")

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9\-_]{1,40}$")

DEFAULT_HTTP_PORT = 9180
EXIT_OK = 0
EXIT_CANNOT_SERVE = 2


@dataclass(frozen=True, slots=True)
class ServeOptions:
    url: str | None = None
    testnet: bool = True
    sim: bool = False
    category: str = "linear"
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    books: int | None = None
    http_port: int = DEFAULT_HTTP_PORT
    http_host: str = "127.0.0.1"
    allow_remote: bool = False
    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    connect_timeout: float = 10.0
    sim_rate: float = 10.0
    duration: float = 0.0
    """Seconds to run; 0 runs until interrupted."""
    policy: StalenessPolicy = field(default_factory=StalenessPolicy)
    check_interval: float = 0.25
    private: bool = False
    """Also open the private stream, the account view and the order-entry connection (keys
    from the environment; ``--sim``: the emulator's account)."""
    trade: bool = True
    """With ``private``: open the order-entry connection (``/v5/trade``) too."""
    rest_url: str | None = None
    """REST base URL for the account view with ``--url`` (``--sim``, testnet and mainnet know
    theirs)."""
    sim_activity: float | None = None
    """With ``--sim --private``: steps per second of simulated activity on the demo account."""


def parse_stale_spec(text: str) -> tuple[str, str | None, float | None]:
    """Parse one ``--stale`` value into ``(scope, key, seconds)``.

    ``tickers=5`` (a kind), ``ETHUSDT=10`` (every kind of a symbol), ``ETHUSDT:tickers=10`` (one
    kind of a symbol), ``tickers.ETHUSDT=10`` (one topic); ``off`` instead of seconds disables
    the check. Returns ``("kind", kind, s)``, ``("symbol", "SYM:kind", s)`` or
    ``("topic", topic, s)``.

    Raises:
        ValueError: the text is not one of these forms.
    """
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"expected NAME=SECONDS (e.g. tickers=5), got {text!r}")
    seconds: float | None
    if value.strip().lower() in ("off", "none", "never"):
        seconds = None
    else:
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{text!r}: {value!r} is not a number of seconds") from None
        if not seconds > 0 or seconds == float("inf"):
            raise ValueError(f"{text!r}: seconds must be a positive number")
    if name in DEFAULT_THRESHOLDS:
        return "kind", name, seconds
    if "." in name:
        return "topic", name, seconds
    symbol, colon, kind = name.partition(":")
    if colon and kind not in DEFAULT_THRESHOLDS:
        raise ValueError(f"{text!r}: unknown topic kind {kind!r}")
    if not _SYMBOL.match(symbol):
        raise ValueError(f"{text!r}: {symbol!r} is not a symbol, topic kind or topic")
    return "symbol", f"{symbol}:{kind or '*'}", seconds


TICKER_FIELDS: dict[str, frozenset[str]] = {
    "linear": frozenset(
        [
            "tickDirection",
            "price24hPcnt",
            "lastPrice",
            "prevPrice24h",
            "highPrice24h",
            "lowPrice24h",
            "prevPrice1h",
            "markPrice",
            "indexPrice",
            "openInterest",
            "openInterestValue",
            "singleOpenInterest",
            "singleOpenInterestValue",
            "turnover24h",
            "volume24h",
            "nextFundingTime",
            "fundingRate",
            "bid1Price",
            "bid1Size",
            "ask1Price",
            "ask1Size",
            "deliveryTime",
            "basisRate",
            "deliveryFeeRate",
            "predictedDeliveryPrice",
            "preOpenPrice",
            "preQty",
            "curPreListingPhase",
            "fundingIntervalHour",
            "fundingCap",
            "basisRateYear",
            "basis",
        ]
    ),
    "spot": frozenset(
        [
            "lastPrice",
            "highPrice24h",
            "lowPrice24h",
            "prevPrice24h",
            "volume24h",
            "turnover24h",
            "price24hPcnt",
            "usdIndexPrice",
        ]
    ),
    "option": frozenset(
        [
            "bidPrice",
            "bidSize",
            "bidIv",
            "askPrice",
            "askSize",
            "askIv",
            "lastPrice",
            "highPrice24h",
            "lowPrice24h",
            "markPrice",
            "indexPrice",
            "markPriceIv",
            "underlyingPrice",
            "openInterest",
            "turnover24h",
            "volume24h",
            "totalVolume",
            "totalTurnover",
            "delta",
            "gamma",
            "vega",
            "theta",
            "predictedDeliveryPrice",
            "change24h",
        ]
    ),
}
"""The ticker fields Bybit sends per category (``--stale-field`` names one of them)."""
TICKER_FIELDS["inverse"] = TICKER_FIELDS["linear"]


def policy_from_specs(
    stale: Iterable[str] = (),
    fields: Iterable[str] = (),
    *,
    recycle_after: float | None = 30.0,
    down_after: float | None = 60.0,
    symbols: Iterable[str] | None = None,
    category: str | None = None,
) -> StalenessPolicy:
    """A :class:`StalenessPolicy` from ``--stale`` and ``--stale-field`` values.

    With ``symbols``, a ``--stale`` naming a symbol (or topic) outside them is refused; with
    ``category``, a ``--stale-field`` that is not a ticker field of that category is refused
    (both would otherwise be accepted and never apply).
    """
    watched = None if symbols is None else set(symbols)
    kinds: dict[str, float | None] = dict(DEFAULT_THRESHOLDS)
    per_symbol: dict[str, dict[str, float | None]] = {}
    topics: dict[str, float | None] = {}
    for text in stale:
        scope, key, seconds = parse_stale_spec(text)
        assert key is not None
        if scope == "kind":
            kinds[key] = seconds
            continue
        named = key.partition(":")[0] if scope == "symbol" else key.rsplit(".", 1)[-1]
        if watched is not None and named not in watched:
            raise ValueError(
                f"--stale {text}: {named} is not one of the symbols watched "
                f"({', '.join(sorted(watched))}) nor a topic kind ({', '.join(DEFAULT_THRESHOLDS)})"
            )
        if scope == "topic":
            if key.split(".", 1)[0] not in DEFAULT_THRESHOLDS:
                raise ValueError(f"--stale {text}: unknown topic kind in {key!r}")
            topics[key] = seconds
        else:
            symbol, _, kind = key.partition(":")
            per_symbol.setdefault(symbol, {})[kind] = seconds
    known = None if category is None else TICKER_FIELDS.get(category)
    field_thresholds: dict[str, float] = dict(DEFAULT_FIELD_THRESHOLDS)
    if known is not None:
        field_thresholds = {k: v for k, v in field_thresholds.items() if k in known}
    for text in fields:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected FIELD=SECONDS (e.g. markPrice=30), got {text!r}")
        if known is not None and name.strip() not in known:
            raise ValueError(
                f"--stale-field {text}: {name.strip()!r} is not a {category} ticker field "
                "(e.g. markPrice, indexPrice, lastPrice)"
            )
        if value.strip().lower() in ("off", "none", "never"):
            field_thresholds.pop(name.strip(), None)
            continue
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{text!r}: {value!r} is not a number of seconds") from None
        field_thresholds[name.strip()] = seconds
    return StalenessPolicy(
        thresholds=kinds,
        symbol_thresholds=per_symbol,
        topic_thresholds=topics,
        fields=field_thresholds,
        recycle_after=recycle_after,
        down_after=down_after,
    )


async def run_serve(
    opts: ServeOptions,
    *,
    out: TextIO | None = None,
    clock: Clock | None = None,
    stop_event: asyncio.Event | None = None,
    ready: asyncio.Future[HealthServer] | None = None,
) -> int:
    """Serve until ``stop_event`` is set (or ``duration`` passes); returns the exit code.

    Args:
        ready: resolved with the started server (tests read its port from it).
    """
    out = out if out is not None else sys.stdout
    clock = clock if clock is not None else SystemClock()
    stop = stop_event if stop_event is not None else asyncio.Event()
    credentials: tuple[Secret, Secret] | None = None
    if opts.private and not opts.sim:
        try:  # before binding or connecting anything: the same one line as hean monitor
            credentials = private_credentials()
        except UsageError as exc:
            print(exc, file=sys.stderr)
            return EXIT_CANNOT_SERVE
    bus = EventBus()
    health = HealthMonitor(bus, clock=clock, policy=opts.policy, check_interval=opts.check_interval)
    server = HealthServer(
        health, opts.http_host, opts.http_port, allow_remote=opts.allow_remote, title="HEAN"
    )
    try:  # bind first: a taken port is reported before anything connects
        await server.start()
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"hean serve: cannot listen on {opts.http_host}:{opts.http_port}: {why}",
              file=sys.stderr)  # fmt: skip
        return EXIT_CANNOT_SERVE
    emulator: Any = None
    ws: BybitPublicWebSocket | None = None
    connecting: asyncio.Task[None] | None = None
    private: _PrivateSide | None = None
    await bus.start()
    try:
        url = opts.url
        if opts.sim:
            emulator, url = await start_sim(opts.category, opts.sim_rate)
        ws = BybitPublicWebSocket(
            bus,
            opts.category,
            testnet=opts.testnet,
            url=url,
            clock=clock,
            ping_interval=opts.ping_interval,
            pong_timeout=opts.pong_timeout,
            connect_timeout=opts.connect_timeout,
            backoff=BackoffPolicy(),
        )
        health.add(ws)
        await health.start()
        await ws.subscribe_tickers(opts.symbols)
        if opts.books is not None:
            await ws.subscribe_orderbook(opts.symbols, opts.books)
        connecting = asyncio.get_running_loop().create_task(ws.connect(), name="hean-serve-connect")
        lines = ""
        if opts.private:
            private = _PrivateSide(opts, bus, health, clock, emulator, url, credentials)
            private.start()
            lines = private.describe()
        base = server.url
        print(
            f"hean serve: {opts.category} {', '.join(opts.symbols)} from {ws.url} "
            f"(event loop {loop_name()})\n{lines}"
            f"  dashboard {base}\n  health    {base}health\n  metrics   {base}metrics\n"
            "Ctrl-C to stop.",
            file=out,
            flush=True,
        )
        if ready is not None and not ready.done():
            ready.set_result(server)
        timeout = opts.duration if opts.duration > 0 else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout)
    finally:
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
        await server.stop()
        await health.stop()
        if private is not None:
            await private.close()
        if ws is not None:
            await ws.disconnect()
        await bus.stop()
        if emulator is not None:
            await emulator.stop()
    print("hean serve: stopped", file=out, flush=True)
    return EXIT_OK


PRIVATE_TOPICS = ["order", "execution", "position", "wallet"]


class _PrivateSide:
    """What ``--private`` opens: the private stream (on its own bus), the account view on it
    when a REST URL is known, and the order-entry connection; all watched by ``health``.

    They are opened in the background and kept, like the public connection: an unreachable
    venue is retried with backoff, a failed account snapshot is retried, and a rejected key is
    logged once and left in ``auth failed`` (shown on ``/health``), as the clients do.
    """

    def __init__(
        self,
        opts: ServeOptions,
        bus: EventBus,
        health: HealthMonitor,
        clock: Clock,
        emulator: Any,
        public: str | None,
        credentials: tuple[Secret, Secret] | None,
    ) -> None:
        from hean.account import Account
        from hean.exchange.bybit.rest import BybitRestClient

        self.opts = opts
        self.emulator = emulator
        ends = private_endpoints(
            emulator=emulator,
            public_url=public,
            credentials=credentials,
            testnet=opts.testnet,
            rest_url=opts.rest_url,
            custom_url=opts.url is not None,
        )
        key, secret = ends.api_key, ends.api_secret
        timing: dict[str, Any] = dict(
            clock=clock,
            ping_interval=opts.ping_interval,
            pong_timeout=opts.pong_timeout,
            connect_timeout=opts.connect_timeout,
        )
        self.private_bus = EventBus()  # an account republishes its stream de-duplicated
        self.private = BybitPrivateWebSocket(
            self.private_bus, api_key=key, api_secret=secret, url=ends.private, **timing
        )
        self.rest: BybitRestClient | None = None
        self.account: Account | None = None
        if ends.rest is not None:
            self.rest = BybitRestClient(
                api_key=key,
                api_secret=secret,
                url=ends.rest,
                timeout=opts.connect_timeout,
            )
            self.account = Account(
                bus, self.rest, self.private, clock=clock, subscribe_timeout=opts.connect_timeout
            )
            health.add_account(self.account)  # its private connection is watched with it
        else:
            health.add(self.private)
        self.trade: BybitTradeWebSocket | None = None
        if opts.trade:
            self.trade = BybitTradeWebSocket(
                bus, api_key=key, api_secret=secret, url=ends.trade, **timing
            )
            health.add(self.trade)
        self.activity: Any = None
        self.tasks: list[asyncio.Task[None]] = []

    def describe(self) -> str:
        """The start-up lines: where each connection goes."""
        where = f" + account via REST {self.rest.url}" if self.rest is not None else ""
        lines = f"  private   {self.private.url}{where}\n"
        if self.trade is not None:
            lines += f"  trade     {self.trade.url}\n"
        if self.activity is not None:
            lines += f"  activity  {self.activity.rate:g}/s on the demo account\n"
        return lines

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self._keep_private(), name="hean-serve-private"))
        if self.trade is not None:
            self.tasks.append(loop.create_task(self._keep_trade(), name="hean-serve-trade"))
        if self.emulator is not None and self.opts.sim_activity is not None:
            from hean.emulator import DEFAULT_API_KEY
            from hean.emulator.activity import DemoActivity

            self.activity = DemoActivity(
                self.emulator, DEFAULT_API_KEY, rate=self.opts.sim_activity
            )
            self.activity.start()

    async def _keep_private(self) -> None:
        from hean.account import AccountError
        from hean.exchange.bybit.protocol.auth import AuthError
        from hean.exchange.bybit.rest import RestError
        from hean.exchange.bybit.ws_public import ConnectError

        await self.private_bus.start()
        delay = 1.0
        while True:
            try:
                await self.private.connect()  # as long as it takes; a rejected key raises
                if self.account is None:
                    await self.private.subscribe(PRIVATE_TOPICS)
                else:
                    await self.account.start()
                return
            except AuthError as exc:  # waits in auth_failed, shown on /health: no retry loop
                log.warning("private stream: %s", exc)
                return
            except (AccountError, RestError, ConnectError, TimeoutError) as exc:
                log.warning("account: %s (trying again in %.0fs)", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2.0, 30.0)

    async def _keep_trade(self) -> None:
        from hean.exchange.bybit.protocol.auth import AuthError

        assert self.trade is not None
        try:
            await self.trade.connect()  # as long as it takes; a rejected key raises
        except AuthError as exc:  # waits in auth_failed, shown on /health
            log.warning("trade connection: %s", exc)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.activity is not None:
            await self.activity.stop()
        if self.account is not None:
            await self.account.stop()
        await self.private.disconnect()
        if self.trade is not None:
            await self.trade.disconnect()
        if self.rest is not None:
            await self.rest.close()
        await self.private_bus.stop()
