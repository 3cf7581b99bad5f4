"""``hean replay``: serve recordings on the emulator's endpoints until Ctrl-C (or until played,
with ``--exit``). Exit codes: 0 served, 2 bad files or port."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import TextIO

from hean.core.waits import wait_set

__all__ = ["ReplayOptions", "run_replay"]


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    files: tuple[str, ...]
    speed: float | None = 1.0
    """``None``: as fast as the clients read."""
    host: str = "127.0.0.1"
    port: int = 9090
    wait: float = 10.0
    disconnects: bool = True
    exit_when_done: bool = False


async def run_replay(
    opts: ReplayOptions, *, stop_event: asyncio.Event | None = None, out: TextIO | None = None
) -> int:
    from hean.replay.server import ReplayServer

    out = out if out is not None else sys.stdout
    stop = stop_event if stop_event is not None else asyncio.Event()
    try:
        server = ReplayServer(
            opts.files,
            speed=opts.speed,
            host=opts.host,
            port=opts.port,
            wait=opts.wait,
            disconnects=opts.disconnects,
        )
        await server.start()
    except (OSError, ValueError) as exc:
        print(f"hean replay: {exc}", file=sys.stderr)
        return 2
    try:
        speed = "max" if opts.speed is None else f"x{opts.speed:g}"
        print(
            f"hean replay: serving {len(opts.files)} file(s) at {speed} on "
            f"ws://{opts.host}:{server.port} (public: /v5/public/<category>, private: "
            f"/v5/private, trade: /v5/trade); the clock starts when a client subscribes",
            file=out,
            flush=True,
        )
        while not stop.is_set():
            await wait_set(stop, 0.25)
            if server.done.is_set() and opts.exit_when_done:
                break
        s = server.stats
        print(
            f"hean replay: {s.frames} frames sent ({s.deliveries} deliveries, "
            f"{s.unsubscribed} without subscriber), {s.span:.3f}s recorded played in "
            f"{s.elapsed:.3f}s, {s.disconnects} replayed disconnects, {s.snapshots} snapshots "
            f"to late joiners, {s.trade_answered} trade requests answered from the recording "
            f"({s.trade_refused} refused)",
            file=out,
        )
    finally:
        await server.stop()
    return 0
