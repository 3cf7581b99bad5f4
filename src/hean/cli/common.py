"""Pieces shared by the CLI commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.live import Live

from hean.core.clock import Clock
from hean.core.waits import wait_set

if TYPE_CHECKING:
    from hean.emulator import Emulator

__all__ = ["follow", "logs_above_live", "start_sim"]


async def start_sim(category: str, symbols: list[str], rate: float) -> tuple[Emulator, str]:
    """Start the built-in emulator in-process for ``--sim``; returns it and the endpoint URL.

    Only ``symbols`` are listed for ``category``, pushing tickers ``rate`` times a second.
    """
    from hean.emulator import Emulator, EmulatorConfig  # only when --sim is used

    emulator = Emulator(
        EmulatorConfig(symbols={category: tuple(symbols)}, ticker_interval=1.0 / rate)
    )
    await emulator.start()
    return emulator, emulator.url(category)


@contextlib.contextmanager
def logs_above_live(console: Console) -> Iterator[None]:
    """While a rich ``Live`` view runs on ``console``, send log records through rich's handler
    on that same console, so they print above the view instead of tearing it (stacked copies).
    The root logger's own stream handlers are set aside meanwhile and restored after."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    aside = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    level = min((h.level for h in aside), default=logging.NOTSET)
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    handler.setLevel(level)
    if aside:
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    for h in aside:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for h in aside:
            root.addHandler(h)


async def follow(
    render: Callable[[], RenderableType],
    *,
    console: Console,
    clock: Clock,
    stop: asyncio.Event,
    end: float | None,
    refresh: float,
    live_view: bool,
    logs_above: bool = False,
) -> None:
    """Wait until ``stop`` is set or the monotonic time ``end`` (``None``: no end), showing
    ``render()`` as a rich live view refreshed every ``refresh`` seconds when ``live_view``
    (with log records printed above it when ``logs_above``)."""
    live: Live | None = None
    logs = contextlib.ExitStack()
    if live_view:
        if logs_above:
            logs.enter_context(logs_above_live(console))
        live = Live(render(), console=console, auto_refresh=False)
        live.start()
    try:
        while not stop.is_set():
            now = clock.monotonic()
            if end is not None and now >= end:
                break
            wait = refresh if end is None else min(refresh, end - now)
            await wait_set(stop, max(wait, 0.0))
            if live is not None:
                live.update(render(), refresh=True)
    finally:
        if live is not None:
            live.stop()
        logs.close()
