"""``hean sim``: run the built-in Bybit V5 emulator standalone until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from hean.cli.argtypes import positive_float
from hean.emulator import Emulator, EmulatorConfig
from hean.emulator.accounts import DEFAULT_API_KEY, DEFAULT_API_SECRET, AccountConfig
from hean.emulator.config import DEFAULT_SYMBOLS, PUBLIC_CATEGORIES

if TYPE_CHECKING:
    from hean.emulator.activity import DemoActivity

__all__ = ["ENV_API_KEY", "ENV_API_SECRET", "SimOptions", "add_account_arguments", "run_sim"]

ENV_API_KEY = "HEAN_SIM_API_KEY"
"""Environment variable read for the account's API key when ``--api-key`` is not given."""
ENV_API_SECRET = "HEAN_SIM_API_SECRET"  # noqa: S105 - a variable name, not a secret

log = logging.getLogger("hean.sim")


@dataclass(frozen=True, slots=True)
class SimOptions:
    host: str = "127.0.0.1"
    port: int = 9090
    symbols: list[str] | None = None
    """Symbols for linear and spot (inverse keeps its defaults); ``None`` = the defaults."""
    rate: float = 10.0
    """Ticker messages per second per symbol."""
    seed: int = 1
    idle_timeout: float | None = None
    api_key: str | None = None
    """API key of the emulator's account (``None``: ``$HEAN_SIM_API_KEY``, else the default
    pair, printed at start-up)."""
    api_secret: str | None = None
    """Its secret (``None``: ``$HEAN_SIM_API_SECRET``)."""
    rest_port: int | None = None
    """TCP port of the REST API (``None``: ``port + 1``, or any free one when ``port`` is 0)."""
    activity: float | None = None
    """Steps per second of simulated activity on the account (orders placed, filled, partly
    filled, cancelled: :class:`hean.emulator.activity.DemoActivity`); ``None``: none, the
    account changes only when a client trades."""


def add_account_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--api-key`` / ``--api-secret`` and ``--activity`` to the ``hean sim`` parser."""
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"API key of the emulated account (default: ${ENV_API_KEY}, else a default pair "
        "printed at start-up)",
    )
    parser.add_argument(
        "--api-secret",
        default=None,
        help=f"its API secret (default: ${ENV_API_SECRET}); prefer the variable: arguments are "
        "visible to other users of the machine",
    )
    parser.add_argument(
        "--activity",
        type=positive_float,
        default=None,
        metavar="PER_SECOND",
        help="simulated activity on the account, steps per second: orders placed, filled, "
        "partly filled and cancelled, pushed on its private streams (default: none)",
    )


def _credentials(opts: SimOptions) -> tuple[str, str] | None:
    key = opts.api_key if opts.api_key is not None else os.environ.get(ENV_API_KEY)
    secret = opts.api_secret if opts.api_secret is not None else os.environ.get(ENV_API_SECRET)
    if not key and not secret:
        return None
    if not key or not secret:
        raise ValueError(
            "give both an API key and an API secret (--api-key/--api-secret or "
            f"${ENV_API_KEY}/${ENV_API_SECRET}), or neither for the default pair"
        )
    return key, secret


def build_config(opts: SimOptions) -> EmulatorConfig:
    """The emulator configuration for these options (raises ValueError on bad values)."""
    symbols = {k: tuple(v) for k, v in DEFAULT_SYMBOLS.items()}
    if opts.symbols:
        symbols["linear"] = tuple(opts.symbols)
        symbols["spot"] = tuple(opts.symbols)
    creds = _credentials(opts)
    accounts = () if creds is None else (AccountConfig(api_key=creds[0], api_secret=creds[1]),)
    rest_port = opts.rest_port
    if rest_port is None:
        rest_port = opts.port + 1 if 0 < opts.port < 65535 else 0
    return EmulatorConfig(
        host=opts.host,
        port=opts.port,
        rest_port=rest_port,
        symbols=symbols,
        ticker_interval=1.0 / opts.rate,
        seed=opts.seed,
        idle_timeout=opts.idle_timeout,
        accounts=accounts,
    )


async def run_sim(
    opts: SimOptions, *, stop_event: asyncio.Event | None = None, out: TextIO | None = None
) -> int:
    """Serve until ``stop_event`` is set (Ctrl-C); returns the exit code."""
    out = out if out is not None else sys.stdout
    config = build_config(opts)
    stop = stop_event if stop_event is not None else asyncio.Event()
    emulator = Emulator(config)
    activity: DemoActivity | None = None
    try:
        await emulator.start()
    except OSError as exc:
        print(
            f"hean sim: cannot listen on {opts.host}:{opts.port}: {exc.strerror}", file=sys.stderr
        )
        return 2
    try:
        if opts.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("listening on %s: reachable from other machines", opts.host)
        lines = [f"HEAN Bybit V5 emulator listening on {emulator.host}:{emulator.port}"]
        for category in (*PUBLIC_CATEGORIES, "private", "trade"):
            lines.append(f"  {category:<8} {emulator.url(category)}")
        lines.append(f"  {'rest':<8} {emulator.rest_url()}")
        for account in config.account_configs:
            if account.api_key == DEFAULT_API_KEY and account.api_secret == DEFAULT_API_SECRET:
                # the default pair protects nothing but this simulation: print it in full
                lines.append(
                    f"  account  API key {account.api_key}  API secret {account.api_secret}"
                    "  (default pair)"
                )
            else:
                lines.append(f"  account  API key {account.api_key}  (secret as configured)")
        for category, names in config.symbols.items():
            lines.append(f"  symbols {category}: {', '.join(names)}")
        lines.append(f"  tickers: {opts.rate:g}/s per symbol, seed {opts.seed}")
        if opts.activity is not None:
            from hean.emulator.activity import DemoActivity

            # the account printed above: the one a client logs in with
            account = config.account_configs[0]
            activity = DemoActivity(emulator, account.api_key, rate=opts.activity, seed=opts.seed)
            activity.start()
            lines.append(
                f"  activity: {opts.activity:g}/s on the account (orders placed, filled, "
                "partly filled, cancelled)"
            )
        lines.append("Ctrl-C to stop.")
        print("\n".join(lines), file=out, flush=True)
        await stop.wait()
    finally:
        if activity is not None:
            await activity.stop()
        await emulator.stop()
        print("emulator stopped", file=out, flush=True)
    return 0
