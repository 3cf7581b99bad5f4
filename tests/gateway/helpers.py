"""Shared set-up of the gateway and remote tests: emulator + hub + gateway + remote hubs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from hean.emulator import Emulator
from hean.gateway import Gateway
from hean.hub import StreamHub
from hean.remote import RemoteHub
from tests.hub.conftest import make_hub

__all__ = ["make_gateway", "make_remote", "settle", "until"]


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def make_gateway(emu: Emulator, redis_url: str, **kw: Any) -> tuple[StreamHub, Gateway]:
    hub = make_hub(emu)
    params: dict[str, Any] = {"heartbeat": 0.1, "stats_interval": 0.2, "backoff_cap": 0.2}
    params.update(kw)
    return hub, Gateway(hub, redis_url, **params)


def make_remote(redis_url: str, **kw: Any) -> RemoteHub:
    params: dict[str, Any] = {"gateway_timeout": 1.0, "block_ms": 20, "backoff_cap": 0.2}
    params.update(kw)
    return RemoteHub(redis_url, **params)


def book_levels(book: Any) -> tuple[list[Any], list[Any]]:
    return book.bids(), book.asks()


async def settle(emu: Emulator, n: int, category: str = "linear") -> None:
    """``n`` market steps, each flushed to the clients."""
    for _ in range(n):
        emu.tick(category)
        emu.flush(category)
        await asyncio.sleep(0)
