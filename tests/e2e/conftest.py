"""Fixtures for client-against-emulator tests (real sockets on 127.0.0.1, scaled-down time)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.emulator import Emulator, EmulatorConfig
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from tests.conftest import ms

FAST_BACKOFF = BackoffPolicy(
    first=ms(50),
    cap=ms(200),
    slow_floor=ms(500),
    try_again_floor=ms(300),
    failure_threshold=5,
    cooldown=ms(1000),
    max_cooldown=ms(2000),
    stable_after=ms(100),
)


class Recorder:
    """Collects every event published on a bus, by type."""

    def __init__(self, bus: EventBus) -> None:
        self.events: dict[EventType, list[Any]] = defaultdict(list)
        for kind in EventType:
            bus.subscribe(kind, self.events[kind].append, name=f"recorder-{kind}")

    def states(self) -> list[tuple[str, str, str]]:
        return [
            (e.old.value, e.new.value, e.reason) for e in self.events[EventType.CONNECTION_STATE]
        ]

    def ticks(self, symbol: str | None = None) -> list[Any]:
        return [t for t in self.events[EventType.TICK] if symbol is None or t.symbol == symbol]


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    b = EventBus()
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
def recorder(bus: EventBus) -> Recorder:
    return Recorder(bus)


@pytest.fixture
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    marker = request.node.get_closest_marker("emulator")
    kwargs: dict[str, Any] = {"ticker_interval": ms(10)}
    if marker is not None:
        kwargs.update(marker.kwargs)
    async with Emulator(EmulatorConfig(**kwargs)) as emu:
        yield emu


def make_ws(
    bus: EventBus, emu: Emulator, category: str = "linear", **kw: Any
) -> BybitPublicWebSocket:
    params: dict[str, Any] = {
        "ping_interval": ms(100),
        "pong_timeout": ms(100),
        "connect_timeout": ms(1000),
        "backoff": FAST_BACKOFF,
        "rng": random.Random(5),
    }
    params.update(kw)
    return BybitPublicWebSocket(bus, category, url=emu.url(category), **params)
