"""Helpers for the health tests: an async HTTP client (the server runs in the test's own loop)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from hean.core.bus import EventBus
from hean.emulator import Emulator, EmulatorConfig
from tests.conftest import ms


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


async def http(
    port: int,
    path: str,
    method: str = "GET",
    host: str = "127.0.0.1",
    raw: bytes | None = None,
    timeout: float = 5.0,
) -> Response:
    """One request, read to EOF (the server closes every connection after answering)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        if raw is None:
            raw = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Response(status, headers, body)


async def until(predicate: Any, timeout: float = 5.0, interval: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@pytest.fixture
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """The emulator as in tests/e2e (``@pytest.mark.emulator(**config)`` overrides)."""
    marker = request.node.get_closest_marker("emulator")
    kwargs: dict[str, Any] = {"ticker_interval": ms(10)}
    if marker is not None:
        kwargs.update(marker.kwargs)
    async with Emulator(EmulatorConfig(**kwargs)) as emu:
        yield emu


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    b = EventBus()
    await b.start()
    yield b
    await b.stop()
