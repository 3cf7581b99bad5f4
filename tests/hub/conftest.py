"""Fixtures for hub tests: the emulator on 127.0.0.1, hubs with scaled-down time."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hean.emulator import Emulator, EmulatorConfig
from hean.exchange.bybit.protocol.session import Send
from hean.exchange.bybit.transport import WsConnection
from hean.hub import ConnectionOptions, ConnectionRateLimiter, StreamHub
from tests.conftest import ms
from tests.e2e.conftest import FAST_BACKOFF

FAST = ConnectionOptions(
    ping_interval=ms(100),
    pong_timeout=ms(100),
    connect_timeout=ms(1000),
    ack_timeout=ms(1000),
    backoff=FAST_BACKOFF,
)


@pytest.fixture
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    marker = request.node.get_closest_marker("emulator")
    kwargs: dict[str, Any] = {"ticker_interval": ms(10)}
    if marker is not None:
        kwargs.update(marker.kwargs)
    async with Emulator(EmulatorConfig(**kwargs)) as emu:
        yield emu


def make_hub(emu: Emulator, **kw: Any) -> StreamHub:
    params: dict[str, Any] = {
        "host": f"ws://127.0.0.1:{emu.port}",
        "options": FAST,
        "limiter": ConnectionRateLimiter(rate=1000.0, burst=100),
        "rng": random.Random(7),
    }
    params.update(kw)
    return StreamHub(**params)


@pytest.fixture
async def hub(emulator: Emulator) -> AsyncIterator[StreamHub]:
    h = make_hub(emulator)
    yield h
    await h.close()


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


class FrameSpy:
    """Every subscribe/unsubscribe request the hub's connections send: (connection, op, args)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, list[str]]] = []

    def ops(self, op: str) -> list[list[str]]:
        return [args for _, o, args in self.requests if o == op]

    def topics(self, op: str) -> list[str]:
        return [t for args in self.ops(op) for t in args]


@pytest.fixture
def frames(monkeypatch: pytest.MonkeyPatch) -> FrameSpy:
    spy = FrameSpy()
    original = WsConnection.run_actions

    def run_actions(self: WsConnection, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Send):
                msg = json.loads(action.payload)
                if msg.get("op") in ("subscribe", "unsubscribe"):
                    spy.requests.append((self.name, msg["op"], list(msg["args"])))
        original(self, actions)

    monkeypatch.setattr(WsConnection, "run_actions", run_actions)
    return spy
