"""``hean sim``: run the built-in Bybit V5 emulator standalone until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from typing import TextIO

from hean.emulator import Emulator, EmulatorConfig
from hean.emulator.config import DEFAULT_SYMBOLS, PUBLIC_CATEGORIES

__all__ = ["SimOptions", "run_sim"]

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


def build_config(opts: SimOptions) -> EmulatorConfig:
    """The emulator configuration for these options (raises ValueError on bad values)."""
    symbols = {k: tuple(v) for k, v in DEFAULT_SYMBOLS.items()}
    if opts.symbols:
        symbols["linear"] = tuple(opts.symbols)
        symbols["spot"] = tuple(opts.symbols)
    return EmulatorConfig(
        host=opts.host,
        port=opts.port,
        symbols=symbols,
        ticker_interval=1.0 / opts.rate,
        seed=opts.seed,
        idle_timeout=opts.idle_timeout,
    )


async def run_sim(
    opts: SimOptions, *, stop_event: asyncio.Event | None = None, out: TextIO | None = None
) -> int:
    """Serve until ``stop_event`` is set (Ctrl-C); returns the exit code."""
    out = out if out is not None else sys.stdout
    config = build_config(opts)
    stop = stop_event if stop_event is not None else asyncio.Event()
    emulator = Emulator(config)
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
        for category in PUBLIC_CATEGORIES:
            lines.append(f"  {category:<8} {emulator.url(category)}")
        for category, names in config.symbols.items():
            lines.append(f"  symbols {category}: {', '.join(names)}")
        lines.append(f"  tickers: {opts.rate:g}/s per symbol, seed {opts.seed}")
        lines.append("Ctrl-C to stop.")
        print("\n".join(lines), file=out, flush=True)
        await stop.wait()
    finally:
        await emulator.stop()
        print("emulator stopped", file=out, flush=True)
    return 0
