"""A minimal Chrome DevTools Protocol client for driving headless Chromium in tests.

Chromium is started with ``--remote-debugging-port=0``; it writes the port and the browser's
WebSocket path to ``DevToolsActivePort`` in its profile directory. The client speaks CDP over
that WebSocket with picows (already a dependency): commands are ``{"id", "method", "params"}``
with an optional ``sessionId`` (flat sessions), answers carry the same ``id``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import picows
from picows import WSFrame, WSListener, WSMsgType, WSTransport

CHROMIUM = "/usr/bin/chromium"

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--window-size=1400,1000",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class CdpError(RuntimeError):
    pass


class _Listener(WSListener):
    def __init__(self, client: Cdp) -> None:
        self.client = client
        self.parts: bytearray | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            if frame.fin:
                self.client._message(frame.get_payload_as_bytes())
            else:
                self.parts = bytearray(frame.get_payload_as_bytes())
        elif frame.msg_type is WSMsgType.CONTINUATION and self.parts is not None:
            self.parts += frame.get_payload_as_bytes()
            if frame.fin:
                data, self.parts = bytes(self.parts), None
                self.client._message(data)
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.client._closed()


class Cdp:
    """One browser-level CDP connection; ``send(..., session=...)`` targets a page."""

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self._next = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []

    async def connect(self, url: str) -> None:
        transport, _ = await picows.ws_connect(
            lambda: _Listener(self), url, max_frame_size=256 * 1024 * 1024
        )
        self.transport = transport

    def _message(self, data: bytes) -> None:
        msg = json.loads(data)
        if "id" in msg:
            fut = self._pending.pop(msg["id"], None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        else:
            self.events.append(msg)

    def _closed(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(CdpError("DevTools connection closed"))
        self._pending.clear()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
        timeout: float = 15.0,
    ) -> dict[str, Any]:  # fmt: skip
        assert self.transport is not None
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = fut
        self.transport.send(WSMsgType.TEXT, json.dumps(msg).encode())
        answer = await asyncio.wait_for(fut, timeout)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def close(self) -> None:
        if self.transport is not None:
            self.transport.disconnect()


class Browser:
    """Headless Chromium with one page, driven over CDP."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.cdp = Cdp()
        self.session = ""

    async def start(self, timeout: float = 30.0) -> None:
        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        with contextlib.suppress(FileNotFoundError):
            port_file.unlink()
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if port_file.exists():
                lines = port_file.read_text().split("\n")
                if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                    break
            if self.proc.poll() is not None:
                raise CdpError(f"chromium exited with {self.proc.returncode}")
            if loop.time() > deadline:
                raise CdpError("chromium did not open its DevTools port")
            await asyncio.sleep(0.05)
        await self.cdp.connect(f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}")
        target = await self.cdp.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.cdp.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self.session = attached["sessionId"]
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        await self.send("Network.enable")

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.cdp.send(method, params, session=self.session)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        data = base64.b64decode(shot["data"])

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        await asyncio.to_thread(write)

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.cdp.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def console_errors(self) -> list[str]:
        out = []
        for e in self.cdp.events:
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(str(e["params"]["exceptionDetails"].get("text")))
            elif e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error":
                out.append(str(e["params"]["args"]))
        return out

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.cdp.send("Browser.close", timeout=5.0)
        self.cdp.close()
        proc = self.proc
        if proc is None:
            return
        try:
            await asyncio.to_thread(proc.wait, 10.0)
        except subprocess.TimeoutExpired:  # kill our own process group (start_new_session)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 5.0)
