"""``hean gateway``: own the exchange connections and publish every event to Redis Streams.

Runs a :class:`~hean.hub.StreamHub` for the configured symbols and topics, a
:class:`~hean.gateway.Gateway` writing to ``--redis``, optionally the account (``--account``:
keys from ``BYBIT_API_KEY`` / ``BYBIT_API_SECRET``, or the emulator's with ``--sim``), and serves
``/health`` / ``/metrics`` (with the Redis link, publish lag and stream lengths) on 127.0.0.1.
``--sim`` runs against the built-in emulator. Remote consumers: :class:`hean.remote.RemoteHub`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from hean.core.bus import EventBus
from hean.core.loop import loop_name
from hean.core.secrets import Secret

__all__ = ["GatewayOptions", "add_arguments", "options_from_args", "run_gateway"]

EXIT_OK = 0
EXIT_CANNOT_START = 2


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    redis: str
    redis_ca: str | None
    prefix: str
    sim: bool
    url: str | None
    testnet: bool
    category: str
    symbols: tuple[str, ...]
    books: int | None
    trades: bool
    klines: str | None
    liquidations: bool
    account: bool
    snapshot_every: int
    maxlen: int | None
    max_pending: int
    http_port: int | None
    http_host: str
    allow_remote: bool
    duration: float
    sim_rate: float
    publish: bool


def add_arguments(p: argparse.ArgumentParser, parse: dict[str, Any]) -> None:
    """The options of ``hean gateway`` (``parse``: the main module's argument types)."""
    p.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/0",
        metavar="URL",
        help="redis://[user:password@]host:port/db, rediss:// for TLS, unix:///path/redis.sock"
        "[?db=N] for a Unix socket on this host (default redis://127.0.0.1:6379/0); the "
        "password may come from HEAN_REDIS_PASSWORD instead",
    )
    p.add_argument("--redis-ca", default=None, metavar="FILE", help="CA bundle for rediss://")
    p.add_argument("--prefix", default="hean", help="key prefix (default hean)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sim", action="store_true", help="run the built-in emulator in-process")
    where.add_argument("--url", type=parse["ws_url"], default=None, help="exchange host URL")
    where.add_argument("--mainnet", action="store_true", help="Bybit mainnet (default testnet)")
    p.add_argument("--category", choices=parse["categories"], default="linear")
    p.add_argument(
        "--symbols", type=parse["symbols"], default=["BTCUSDT", "ETHUSDT"], help="comma-separated"
    )
    p.add_argument("--books", type=int, default=None, metavar="DEPTH", help="order books too")
    p.add_argument("--trades", action="store_true", help="public trades too")
    p.add_argument("--klines", default=None, metavar="INTERVAL", help="klines too (e.g. 1)")
    p.add_argument("--liquidations", action="store_true", help="liquidations too")
    p.add_argument(
        "--account",
        action="store_true",
        help="publish the account too (keys from BYBIT_API_KEY / BYBIT_API_SECRET; --sim: the "
        "emulator's account)",
    )
    p.add_argument("--snapshot-every", type=int, default=100, metavar="N")
    p.add_argument("--maxlen", type=int, default=None, metavar="N", help="entries per stream")
    p.add_argument("--max-pending", type=int, default=100_000, metavar="N")
    p.add_argument("--no-publish", action="store_true", help="run the hub, write nothing")
    p.add_argument("--duration", type=parse["non_negative"], default=0.0, metavar="SECONDS")
    p.add_argument("--sim-rate", type=parse["positive"], default=10.0, metavar="PER_SECOND")


def options_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> GatewayOptions:
    from hean.gateway.redis_target import RedisTarget
    from hean.gateway.wire import Layout

    try:
        RedisTarget.parse(args.redis)
        Layout(args.prefix)
    except ValueError as exc:
        parser.error(str(exc))
    if args.snapshot_every < 1:
        parser.error("--snapshot-every must be >= 1")
    if args.max_pending < 1:
        parser.error("--max-pending must be >= 1")
    if args.maxlen is not None and args.maxlen < 2 * args.snapshot_every:
        parser.error("--maxlen must be at least twice --snapshot-every")
    if args.books is not None:
        from hean.exchange.bybit.ws_public import BOOK_DEPTHS

        if args.books not in BOOK_DEPTHS[args.category]:
            depths = ", ".join(map(str, BOOK_DEPTHS[args.category]))
            parser.error(f"--books {args.books}: {args.category} offers depths {depths}")
    return GatewayOptions(
        redis=args.redis,
        redis_ca=args.redis_ca,
        prefix=args.prefix,
        sim=args.sim,
        url=args.url,
        testnet=not args.mainnet,
        category=args.category,
        symbols=tuple(args.symbols),
        books=args.books,
        trades=args.trades,
        klines=args.klines,
        liquidations=args.liquidations,
        account=args.account,
        snapshot_every=args.snapshot_every,
        maxlen=args.maxlen,
        max_pending=args.max_pending,
        http_port=args.http,
        http_host=args.http_host or "127.0.0.1",
        allow_remote=args.http_host is not None,
        duration=args.duration,
        sim_rate=args.sim_rate,
        publish=not args.no_publish,
    )


async def run_gateway(
    opts: GatewayOptions,
    *,
    out: TextIO | None = None,
    stop_event: asyncio.Event | None = None,
    ready: asyncio.Future[Any] | None = None,
) -> int:
    """Run until ``stop_event`` is set (or ``duration`` passes); returns the exit code."""
    from hean.gateway import Gateway, RedisTarget
    from hean.gateway.health import GatewayHealth
    from hean.health import HealthServer
    from hean.hub import StreamHub

    out = out if out is not None else sys.stdout
    stop = stop_event if stop_event is not None else asyncio.Event()
    target = RedisTarget.parse(opts.redis, ca_file=opts.redis_ca)
    emulator: Any = None
    host: str | None = None
    secrets: list[Any] = [target.password] if target.password is not None else []
    if opts.sim:
        from hean.emulator import Emulator, EmulatorConfig

        emulator = Emulator(
            EmulatorConfig(
                symbols={opts.category: opts.symbols},
                ticker_interval=1.0 / opts.sim_rate,
                rest=opts.account,
            )
        )
        await emulator.start()
        host = f"ws://127.0.0.1:{emulator.port}"
    elif opts.url is not None:
        host = opts.url
    bus = EventBus()
    await bus.start()
    hub = StreamHub(bus, testnet=opts.testnet, host=host)
    gw = Gateway(
        hub,
        target,
        prefix=opts.prefix,
        snapshot_every=opts.snapshot_every,
        maxlen=opts.maxlen,
        max_pending=opts.max_pending,
        publish=opts.publish,
    )
    account: Any = None
    rest: Any = None
    health = GatewayHealth(bus, gateway=gw, discover=hub.connections)
    server: Any = None
    try:
        if opts.account:
            account, rest, acct_secrets = await _start_account(opts, emulator, bus)
            if account is None:
                return EXIT_CANNOT_START
            secrets += acct_secrets
            gw.add_account(account, bus)
            health.add_account(account)
        if opts.http_port is not None:
            server = HealthServer(
                health,
                opts.http_host,
                opts.http_port,
                allow_remote=opts.allow_remote,
                secrets=secrets,
                title="HEAN gateway",
            )
            try:
                await server.start()
            except OSError as exc:
                print(
                    f"hean gateway: cannot listen on {opts.http_host}:{opts.http_port}: "
                    f"{exc.strerror or exc}",
                    file=sys.stderr,
                )
                return EXIT_CANNOT_START
        await health.start()
        await gw.start()
        await gw.subscribe_tickers(opts.symbols, category=opts.category)
        if opts.books is not None:
            await gw.subscribe_orderbook(opts.symbols, opts.books, category=opts.category)
        if opts.trades:
            await gw.subscribe_trades(opts.symbols, category=opts.category)
        if opts.klines is not None:
            await gw.subscribe_klines(opts.symbols, opts.klines, category=opts.category)
        if opts.liquidations:
            await gw.subscribe_liquidations(opts.symbols, category=opts.category)
        if account is not None:
            await account.start()
        lines = [
            f"hean gateway: {opts.category} {', '.join(opts.symbols)} -> {target} "
            f"prefix {opts.prefix!r}" + ("" if opts.publish else " (publishing off)")
            + f", event loop {loop_name()}",
        ]
        if server is not None:
            lines.append(f"  health    {server.url}health\n  metrics   {server.url}metrics")
        lines.append("Ctrl-C to stop.")
        print("\n".join(lines), file=out, flush=True)
        if ready is not None and not ready.done():
            ready.set_result((gw, server))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), opts.duration if opts.duration > 0 else None)
    finally:
        if server is not None:
            await server.stop()
        await health.stop()
        if account is not None:
            await account.stop()
        await gw.close()
        await hub.close()
        if rest is not None:
            await rest.close()
        await bus.stop()
        if emulator is not None:
            await emulator.stop()
    s = gw.stats()
    print(
        f"hean gateway: stopped; {s.written} entries written, {s.lost} lost, "
        f"{s.disconnects} Redis disconnects",
        file=out,
        flush=True,
    )
    return EXIT_OK


async def _start_account(
    opts: GatewayOptions, emulator: Any, bus: EventBus
) -> tuple[Any, Any, list[Any]]:
    from hean.account import Account
    from hean.core.config import ConfigError, Settings
    from hean.exchange.bybit.endpoints import private_url
    from hean.exchange.bybit.rest import BybitRestClient

    if emulator is not None:
        from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET

        key, secret = Secret.api_key(DEFAULT_API_KEY), Secret.of(DEFAULT_API_SECRET)
        rest_url: str | None = emulator.rest_url()
        ws_private = emulator.url("private")
    else:
        try:
            settings = Settings()
        except ConfigError as exc:
            print(f"hean gateway: {exc}", file=sys.stderr)
            return None, None, []
        if not settings.has_credentials:
            print(
                "hean gateway --account needs BYBIT_API_KEY and BYBIT_API_SECRET "
                "(or --sim for the emulator's account)",
                file=sys.stderr,
            )
            return None, None, []
        creds = settings.credentials()
        key, secret = creds.api_key, creds.api_secret
        rest_url = None
        ws_private = private_url(testnet=opts.testnet)
    rest = BybitRestClient(api_key=key, api_secret=secret, testnet=opts.testnet, url=rest_url)
    account = Account(
        bus, rest, private_url=ws_private, api_key=key, api_secret=secret, testnet=opts.testnet
    )
    return account, rest, [key, secret]
