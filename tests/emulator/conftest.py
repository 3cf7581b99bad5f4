"""A minimal raw WebSocket client (picows) and fixtures for the emulator tests.

Deliberately independent of HEAN's own client: these tests check the emulator's wire behaviour.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from hean.emulator import Emulator, EmulatorConfig

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "bybit-v5" / "examples"


def example(name: str) -> dict[str, Any]:
    path = EXAMPLES / name
    if not path.exists():  # repo-local copy, if the shared folder is not beside the repo
        path = Path(__file__).resolve().parents[1] / "fixtures" / "bybit-v5" / name
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def same_shape(actual: Any, expected: Any, path: str = "$") -> None:
    """Same keys (recursively) and same JSON value types; values may differ."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected object, got {actual!r}"
        assert set(actual) == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for key, value in expected.items():
            same_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected array, got {actual!r}"
        if expected and actual:
            for item in actual:
                same_shape(item, expected[0], f"{path}[]")
    else:
        assert type(actual) is type(expected), f"{path}: {actual!r} is not like {expected!r}"


class RawListener(WSListener):
    """Collects replies (no ``topic``), data (with ``topic``) and control frames."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.data: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.all_data: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        #: text frames that are not JSON objects, and binary frames, in arrival order
        self.junk: list[bytes] = []
        self.binary: list[bytes] = []
        self.pongs: asyncio.Queue[bytes] = asyncio.Queue()
        self.pings: list[bytes] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.disconnected = asyncio.Event()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT:
            raw = frame.get_payload_as_bytes()
            self.raw.append(raw)
            try:
                msg = json.loads(raw)
            except ValueError:
                self.junk.append(raw)
                return
            if not isinstance(msg, dict):
                self.junk.append(raw)
            elif "topic" in msg:
                self.all_data.append(msg)
                self.data.put_nowait(msg)
            else:
                self.replies.put_nowait(msg)
        elif kind == WSMsgType.BINARY:
            self.binary.append(frame.get_payload_as_bytes())
        elif kind == WSMsgType.PONG:
            self.pongs.put_nowait(frame.get_payload_as_bytes())
        elif kind == WSMsgType.PING:
            self.pings.append(frame.get_payload_as_bytes())
            transport.send_pong(frame.get_payload_as_bytes())
        elif kind == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code().value
            self.close_reason = frame.get_close_reason()
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected.set()


class Client:
    def __init__(self, transport: WSTransport, listener: RawListener) -> None:
        self.transport = transport
        self.listener = listener

    def send_json(self, obj: Any) -> None:
        self.transport.send(WSMsgType.TEXT, json.dumps(obj).encode())

    def send_text(self, text: str | bytes) -> None:
        self.transport.send(WSMsgType.TEXT, text.encode() if isinstance(text, str) else text)

    def ping_frame(self, payload: bytes = b"") -> None:
        self.transport.send_ping(payload)

    async def reply(self, timeout: float = 2.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.listener.replies.get(), timeout)

    async def no_reply(self, wait: float = 0.15) -> None:
        await asyncio.sleep(wait)
        assert self.listener.replies.empty(), self.listener.replies.get_nowait()

    async def data(self, timeout: float = 2.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.listener.data.get(), timeout)

    async def pong(self, timeout: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.listener.pongs.get(), timeout)

    async def request(self, obj: Any, timeout: float = 2.0) -> dict[str, Any]:
        self.send_json(obj)
        return await self.reply(timeout)

    async def subscribe(self, *topics: str, req_id: str | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "subscribe", "args": list(topics)}
        if req_id is not None:
            msg["req_id"] = req_id
        return await self.request(msg)

    def drain_data(self) -> list[dict[str, Any]]:
        out = []
        while not self.listener.data.empty():
            out.append(self.listener.data.get_nowait())
        return out

    async def wait_closed(self, timeout: float = 2.0) -> None:
        await asyncio.wait_for(self.listener.disconnected.wait(), timeout)

    def close(self) -> None:
        self.transport.disconnect(graceful=False)


async def connect(emu: Emulator, category: str = "linear", **kw: Any) -> Client:
    transport, listener = await ws_connect(RawListener, emu.url(category), **kw)
    assert isinstance(listener, RawListener)
    return Client(transport, listener)


async def until(predicate: Callable[[], Any], timeout: float = 2.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[Emulator]:
    cfg: dict[str, Any] = {"ticker_interval": 0.01, "latency": 0.0}
    cfg.update(kwargs)
    async with Emulator(EmulatorConfig(**cfg)) as emu:
        yield emu


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A quiet emulator: the market only moves on ``emu.tick()``."""
    async with running(auto_tick=False) as e:
        yield e


@pytest.fixture
async def live_emu() -> AsyncIterator[Emulator]:
    """An emulator pushing tickers every 10 ms."""
    async with running() as e:
        yield e
