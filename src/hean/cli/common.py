"""Pieces shared by the CLI commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hean.emulator import Emulator

__all__ = ["start_sim"]


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
