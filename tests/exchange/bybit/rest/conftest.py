"""A scripted local HTTP server (aiohttp.web on 127.0.0.1) that answers like Bybit and records
every request exactly as it arrived (raw request target, raw body, headers), and verifies V5
signatures over those raw bytes."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hean.core.clock import ManualClock

SHARED = Path(__file__).resolve().parents[4] / ".." / "shared" / "bybit-v5" / "examples" / "rest"
"""The reference examples (read from ../shared, never copied into the project)."""

KEY = "test-api-key-0001"
SECRET = "test-api-secret-0001"


def example(name: str) -> Any:
    with open(SHARED / f"{name}.json", encoding="utf-8") as fh:
        return json.load(fh)


def example_bytes(name: str) -> bytes:
    return (SHARED / f"{name}.json").read_bytes()


def envelope(result: Any = None, code: int = 0, msg: str = "OK", time: int = 1) -> dict[str, Any]:
    return {
        "retCode": code,
        "retMsg": msg,
        "result": result if result is not None else {},
        "retExtInfo": {},
        "time": time,
    }


@dataclass
class Recorded:
    method: str
    target: str
    """The raw request target (path and query) as it arrived on the wire."""
    body: bytes
    headers: dict[str, str]
    peer: Any
    sig_ok: bool | None
    """The X-BAPI-SIGN header verifies over the raw query/body (``None``: not signed)."""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


Reply = web.StreamResponse | dict[str, Any] | tuple[int, Any, dict[str, str]]


@dataclass
class Server:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    script: deque[Callable[[Recorded], Reply] | Reply] = field(default_factory=deque)
    routes: dict[str, Callable[[Recorded], Reply]] = field(default_factory=dict)
    secret: str = SECRET
    clock: ManualClock | None = None
    server_offset_ms: int = 0

    def push(self, *replies: Callable[[Recorded], Reply] | Reply) -> None:
        self.script.extend(replies)

    def on(self, path: str, handler: Callable[[Recorded], Reply]) -> None:
        self.routes[path] = handler

    def to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def now_ms(self) -> int:
        import time

        base = self.clock.wall_ms() if self.clock is not None else time.time_ns() // 1_000_000
        return base + self.server_offset_ms

    def verify(self, rec: Recorded) -> bool | None:
        sign = rec.headers.get("X-BAPI-SIGN")
        if sign is None:
            return None
        payload = rec.query if rec.method == "GET" else rec.body.decode()
        text = (
            rec.headers.get("X-BAPI-TIMESTAMP", "")
            + rec.headers.get("X-BAPI-API-KEY", "")
            + rec.headers.get("X-BAPI-RECV-WINDOW", "")
            + payload
        )
        want = hmac.new(self.secret.encode(), text.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, sign)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = Recorded(
            request.method,
            request.raw_path,
            body,
            dict(request.headers),
            request.transport.get_extra_info("peername") if request.transport else None,
            None,
        )
        rec.sig_ok = self.verify(rec)
        self.requests.append(rec)
        if self.script:
            reply: Any = self.script.popleft()
        elif rec.path in self.routes:
            reply = self.routes[rec.path]
        elif rec.path == "/v5/market/time":
            reply = self.time_reply
        else:
            reply = envelope({})
        if callable(reply):
            reply = reply(rec)
        if inspect.isawaitable(reply):
            reply = await reply
        if isinstance(reply, web.StreamResponse):
            return reply
        if isinstance(reply, tuple):
            status, payload, headers = reply
            text = payload if isinstance(payload, str | bytes) else json.dumps(payload)
            return web.Response(
                status=status,
                body=text.encode() if isinstance(text, str) else text,
                headers={"Content-Type": "application/json; charset=utf-8", **headers},
            )
        return web.json_response(reply)

    def time_reply(self, rec: Recorded) -> dict[str, Any]:
        now = self.now_ms()
        return envelope(
            {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}, time=now
        )


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.url = f"http://127.0.0.1:{port}"
    try:
        yield srv
    finally:
        await runner.cleanup()
