"""``hean record``: record a session (public topics, optionally the private stream) to zstd files.

Exit codes: 0 recorded without loss, 1 frames were lost (write errors, disk full, size cap), 2 it
could not start (bad directory, no connection, missing keys).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TextIO

from hean.core.bus import EventBus
from hean.core.waits import wait_set
from hean.record import Recorder, RecordingError
from hean.record.writer import DEFAULT_LEVEL

__all__ = [
    "RecordOptions",
    "add_record_arguments",
    "add_replay_arguments",
    "run_command",
    "run_record",
]

PROGRESS_EVERY = 10.0
"""Seconds between progress lines when stderr is not a terminal."""


@dataclass(frozen=True, slots=True)
class RecordOptions:
    directory: str = "recordings"
    url: str | None = None
    testnet: bool = True
    sim: bool = False
    category: str = "linear"
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    books: int | None = None
    trades: bool = False
    private: bool = False
    private_url: str | None = None
    duration: float = 0.0
    level: int = DEFAULT_LEVEL
    max_file_bytes: int = 256 << 20
    max_file_seconds: float = 3600.0
    max_total_bytes: int | None = None
    sim_rate: float = 10.0
    connect_timeout: float = 10.0
    quiet: bool = False


async def run_record(
    opts: RecordOptions, *, stop_event: asyncio.Event | None = None, out: TextIO | None = None
) -> int:
    """Record until ``stop_event`` (Ctrl-C) or ``duration``; returns the exit code."""
    out = out if out is not None else sys.stdout
    stop = stop_event if stop_event is not None else asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        from hean.exchange.bybit.endpoints import private_url, public_url
        from hean.exchange.bybit.ws_public import BybitPublicWebSocket, ConnectError

        url = opts.url
        purl = opts.private_url
        key: Any = None
        secret: Any = None
        if opts.sim:
            from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig

            emu = Emulator(EmulatorConfig(ticker_interval=1.0 / opts.sim_rate))
            await stack.enter_async_context(emu)
            url, purl = emu.url(opts.category), emu.url("private")
            key, secret = DEFAULT_API_KEY, DEFAULT_API_SECRET
            print(f"hean record: emulator at ws://{emu.host}:{emu.port}", file=sys.stderr)
        if url is None:
            url = public_url(opts.category, testnet=opts.testnet)
        if opts.private and not opts.sim:
            from hean.core.config import ConfigError, Settings

            try:
                creds = Settings().credentials()
            except (ConfigError, ValueError) as exc:
                print(f"hean record: --private needs keys: {exc}", file=sys.stderr)
                return 2
            key, secret = creds.api_key, creds.api_secret
            purl = purl or private_url(testnet=opts.testnet)
        rec = Recorder(
            opts.directory,
            endpoint=url,
            level=opts.level,
            max_file_bytes=opts.max_file_bytes,
            max_file_seconds=opts.max_file_seconds,
            max_total_bytes=opts.max_total_bytes,
        )
        try:
            rec.start()
        except RecordingError as exc:
            print(f"hean record: {exc}", file=sys.stderr)
            return 2
        stack.push_async_callback(rec.close)
        bus = EventBus()
        await bus.start()
        stack.push_async_callback(bus.stop)
        ws = BybitPublicWebSocket(bus, opts.category, url=url, connect_timeout=opts.connect_timeout)
        rec.attach(ws)
        ws.subscribe([f"tickers.{s}" for s in opts.symbols])
        if opts.books is not None:
            ws.subscribe([f"orderbook.{opts.books}.{s}" for s in opts.symbols])
        if opts.trades:
            ws.subscribe([f"publicTrade.{s}" for s in opts.symbols])
        private = None
        try:
            await ws.connect(timeout=opts.connect_timeout)
            stack.push_async_callback(ws.disconnect)
            if opts.private:
                from hean.exchange.bybit.ws_private import BybitPrivateWebSocket

                assert key is not None and secret is not None and purl is not None
                private = BybitPrivateWebSocket(
                    bus, api_key=key, api_secret=secret, url=purl,
                    connect_timeout=opts.connect_timeout,
                )  # fmt: skip
                rec.attach(private)
                await private.connect(timeout=opts.connect_timeout)
                stack.push_async_callback(private.disconnect)
                await private.subscribe(["order", "execution", "position", "wallet"])
        except (ConnectError, OSError) as exc:
            print(f"hean record: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # AuthError and friends: one line, no traceback
            print(f"hean record: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        loop = asyncio.get_running_loop()
        end = None if not opts.duration else loop.time() + opts.duration
        # on a terminal one line rewritten every second; to a file or a pipe (a log) a whole
        # line every PROGRESS_EVERY seconds, never a carriage return
        tty = sys.stderr.isatty()
        every = 1.0 if tty else PROGRESS_EVERY
        next_line = loop.time() + every
        while not stop.is_set():
            remaining = None if end is None else end - loop.time()
            if remaining is not None and remaining <= 0:
                break
            await wait_set(stop, 1.0 if remaining is None else min(1.0, remaining))
            if not opts.quiet and loop.time() >= next_line:
                next_line += every
                s = rec.stats
                print(
                    ("\r" if tty else "")
                    + f"recording: {s.frames} records, {s.bytes_in >> 10} KiB -> "
                    f"{s.bytes_out >> 10} KiB, {len(s.files)} file(s), lost {s.lost_frames}, "
                    f"{s.state}",
                    end="" if tty else "\n",
                    file=sys.stderr,
                    flush=True,
                )
    stats = rec.stats
    if not opts.quiet and tty:
        print(file=sys.stderr)
    for name in stats.files:
        print(name, file=out)
    if stats.lost_frames:
        print(
            f"hean record: {stats.lost_frames} records lost ({stats.last_error})", file=sys.stderr
        )
        return 1
    return 0


# -- command line (registered by hean.cli.main) -------------------------------------------------


def add_record_arguments(
    rec: argparse.ArgumentParser,
    *,
    url: Callable[[str], str],
    symbols: Callable[[str], list[str]],
    seconds: Callable[[str], float],
    positive: Callable[[str], float],
    megabytes: Callable[[str], int],
) -> None:
    """The arguments of ``hean record`` (the type checkers come from ``hean.cli.main``)."""
    from hean.exchange.bybit.endpoints import CATEGORIES

    where = rec.add_mutually_exclusive_group()
    where.add_argument("--testnet", action="store_true", help="Bybit testnet (the default)")
    where.add_argument("--mainnet", action="store_true", help="Bybit mainnet")
    where.add_argument("--url", type=url, help="any public endpoint URL (e.g. a replay)")
    where.add_argument("--sim", action="store_true", help="start the built-in emulator in-process")
    rec.add_argument("--dir", default="recordings", help="directory (default ./recordings)")
    rec.add_argument("--category", default="linear", choices=CATEGORIES)
    rec.add_argument(
        "--symbols",
        type=symbols,
        default=["BTCUSDT", "ETHUSDT", "SOLUSDT"],
        help="comma-separated symbols (tickers; default BTCUSDT,ETHUSDT,SOLUSDT)",
    )
    rec.add_argument("--books", type=int, default=None, metavar="DEPTH", help="also order books")
    rec.add_argument("--trades", action="store_true", help="also public trades")
    rec.add_argument(
        "--private",
        action="store_true",
        help="also the private stream (keys from BYBIT_API_KEY / BYBIT_API_SECRET; with --sim "
        "the emulator's account)",
    )
    rec.add_argument("--private-url", type=url, default=None, metavar="URL")
    rec.add_argument(
        "--duration", type=seconds, default=0.0, help="seconds to record (default 0: Ctrl-C)"
    )
    rec.add_argument(
        "--level",
        type=int,
        default=DEFAULT_LEVEL,
        choices=[*range(-7, 0), *range(1, 23)],
        metavar="LEVEL",
        help=f"zstd level: 1..22, or -7..-1 for zstd's faster levels (default {DEFAULT_LEVEL}; "
        "1 writes ~40%% smaller files for ~10%% more recording CPU)",
    )
    rec.add_argument(
        "--max-file-mb",
        type=megabytes,
        default=256 << 20,
        metavar="MB",
        help="rotate after this many uncompressed MB (default 256)",
    )
    rec.add_argument(
        "--max-file-minutes",
        type=positive,
        default=60.0,
        metavar="MIN",
        help="rotate after this many minutes (default 60)",
    )
    rec.add_argument(
        "--max-total-mb",
        type=megabytes,
        default=None,
        metavar="MB",
        help="stop writing once the files reach this size (default: no cap)",
    )
    rec.add_argument("--sim-rate", type=positive, default=10.0, metavar="PER_SECOND")
    rec.add_argument("--connect-timeout", type=positive, default=10.0, metavar="SECONDS")
    rec.add_argument("--quiet", action="store_true", help="no progress line on stderr")


def add_replay_arguments(
    rep: argparse.ArgumentParser,
    *,
    speed: Callable[[str], float | None],
    port: Callable[[str], int],
    seconds: Callable[[str], float],
) -> None:
    """The arguments of ``hean replay``."""
    rep.add_argument("files", nargs="+", metavar="FILE", help="recording files (.rec.zst)")
    rep.add_argument(
        "--speed", type=speed, default=1.0, help="1 (as recorded), 10 (ten times faster) or max"
    )
    rep.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    rep.add_argument("--port", type=port, default=9090, help="TCP port (default 9090; 0 = any)")
    rep.add_argument(
        "--wait",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="seconds to wait for clients to (re)subscribe (default 10)",
    )
    rep.add_argument(
        "--no-disconnects", action="store_true", help="do not replay the recorded disconnects"
    )
    rep.add_argument("--exit", action="store_true", help="exit once the recording is played")


def run_command(
    args: argparse.Namespace, parser: argparse.ArgumentParser, stop: asyncio.Event
) -> Coroutine[Any, Any, int]:
    """The coroutine of ``hean record`` / ``hean replay`` for parsed ``args``."""
    if args.command == "replay":
        from hean.cli.replay import ReplayOptions, run_replay

        return run_replay(
            ReplayOptions(
                files=tuple(args.files),
                speed=args.speed,
                host=args.host,
                port=args.port,
                wait=args.wait,
                disconnects=not args.no_disconnects,
                exit_when_done=args.exit,
            ),
            stop_event=stop,
        )
    if args.books is not None:
        from hean.exchange.bybit.ws_public import BOOK_DEPTHS

        if args.books not in BOOK_DEPTHS[args.category]:
            depths = ", ".join(map(str, BOOK_DEPTHS[args.category]))
            parser.error(f"--books {args.books}: {args.category} offers depths {depths}")
    opts = RecordOptions(
        directory=args.dir,
        url=args.url,
        testnet=not args.mainnet,
        sim=args.sim,
        category=args.category,
        symbols=tuple(args.symbols),
        books=args.books,
        trades=args.trades,
        private=args.private,
        private_url=args.private_url,
        duration=args.duration,
        level=args.level,
        max_file_bytes=args.max_file_mb,
        max_file_seconds=args.max_file_minutes * 60.0,
        max_total_bytes=args.max_total_mb,
        sim_rate=args.sim_rate,
        connect_timeout=args.connect_timeout,
        quiet=args.quiet,
    )
    return run_record(opts, stop_event=stop)
