"""``HealthServer``: ``/health``, ``/metrics``, ``/api/state`` and a live dashboard over HTTP/1.1.

A deliberately small server on :func:`asyncio.start_server` (no framework): one request per
connection (``Connection: close``), ``GET`` and ``HEAD`` only, the request head limited to
16 KiB and 5 s, at most ``max_connections`` at once.

=============== =============================================================================
path            answer
=============== =============================================================================
``/health``     JSON: overall status, ``ws_ok`` and reasons, every connection's state and reason,
                circuit breaker and auth state, every topic's age. **200** when ``ws_ok``,
                **503** when not (a readiness probe).
``/metrics``    Prometheus text format (the monitor's own registry).
``/api/state``  JSON for the dashboard (``/health`` plus rates, prices, lag, books, history).
``/``           The dashboard: one self-contained HTML page (no external resources) polling
                ``api/state`` every second.
=============== =============================================================================

It binds 127.0.0.1 by default and refuses any address that is not loopback unless
``allow_remote=True``: health and metrics say a lot about a trading system. Every response body
passes through redaction of the ``secrets`` it was given (and of the process-wide redactor's
values, when the credentials module is present), so a credential that found its way into a
reason or a URL is masked before it leaves the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import math
import socket
from collections.abc import Iterable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from hean.health.monitor import HealthMonitor

__all__ = ["HealthServer", "is_loopback"]

log = logging.getLogger("hean.health")

MAX_HEAD = 16 * 1024
MASK = "****"

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

_HTML_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` counts)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _secret_values(obj: Any, depth: int = 0) -> list[str]:
    """Every secret text reachable from ``obj`` (``Secret``, pydantic ``SecretStr``, plain
    strings, and containers, dataclasses or pydantic models holding them)."""
    if obj is None or depth > 4:
        return []
    if isinstance(obj, str):
        return [obj] if obj else []
    reveal = getattr(obj, "reveal", None)
    if callable(reveal):
        value = reveal()
        return [value] if isinstance(value, str) and value else []
    get = getattr(obj, "get_secret_value", None)
    if callable(get):
        value = get()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return [value] if isinstance(value, str) and value else []
    if isinstance(obj, dict):
        return [v for item in obj.values() for v in _secret_values(item, depth + 1)]
    if isinstance(obj, list | tuple | set | frozenset):
        return [v for item in obj for v in _secret_values(item, depth + 1)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [
            v
            for f in dataclasses.fields(obj)
            for v in _secret_values(getattr(obj, f.name, None), depth + 1)
        ]
    model_fields = getattr(type(obj), "model_fields", None)
    if isinstance(model_fields, dict):
        out: list[str] = []
        for name in model_fields:
            value = getattr(obj, name, None)
            # only values declared secret: a pydantic model's plain strings are not secrets
            if hasattr(value, "get_secret_value") or hasattr(value, "reveal"):
                out.extend(_secret_values(value, depth + 1))
        return out
    return []


class HealthServer:
    """Serves a :class:`HealthMonitor` over HTTP (see the module docstring).

    Args:
        monitor: what to serve.
        host: address to bind (default ``127.0.0.1``).
        port: TCP port (0: any free port; read :attr:`port` after :meth:`start`).
        allow_remote: permit a non-loopback ``host``.
        secrets: values that must never appear in a response (``Secret``, ``SecretStr``,
            strings, or objects holding them such as ``Settings`` or ``Credentials``).
        max_connections: connections served at once (more wait in the listen backlog).
        request_timeout: seconds a client may take to send its request head.
        title: shown on the dashboard.

    Raises:
        ValueError: ``host`` is not loopback and ``allow_remote`` is false.
    """

    def __init__(
        self,
        monitor: HealthMonitor,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        allow_remote: bool = False,
        secrets: Iterable[Any] = (),
        max_connections: int = 64,
        request_timeout: float = 5.0,
        title: str = "HEAN",
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(
                f"refusing to serve health and metrics on {host!r}: it is not a loopback "
                "address. Pass allow_remote=True (hean: --http-host) to expose them."
            )
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port}")
        self.monitor = monitor
        self.host = host
        self.allow_remote = allow_remote
        self._requested_port = port
        self.request_timeout = request_timeout
        self.title = title
        self._secrets = sorted(
            {v for s in secrets for v in _secret_values(s)}, key=len, reverse=True
        )
        self._slots = asyncio.Semaphore(max_connections)
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.requests = 0
        self._page: bytes | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving (returns once listening)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, self.host, self._requested_port, limit=MAX_HEAD, reuse_address=True
        )
        if not self.allow_remote:
            for sock in self._server.sockets:
                addr = sock.getsockname()[0]
                if not is_loopback(str(addr)):
                    await self.stop()
                    raise ValueError(f"{self.host!r} resolved to non-loopback {addr}: refused")
        if self.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("health server listening on %s: reachable from other machines", self.url)
        else:
            log.info("health server listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening and close open client connections."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._clients):
            task.cancel()
        for task in list(self._clients):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None or not self._server.sockets:
            return self._requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    # -- requests -----------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            async with self._slots:
                await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.request_timeout)
        except asyncio.LimitOverrunError:
            await self._send(writer, 400, b"request head too large\n", "text/plain", head=False)
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._send(writer, 400, b"bad request\n", "text/plain", head=False)
            return
        method, target, _ = parts
        self.requests += 1
        head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await self._send(
                writer, 405, b"only GET and HEAD\n", "text/plain", extra={"Allow": "GET, HEAD"}
            )
            return
        try:
            path = urlsplit(target).path or "/"
        except ValueError:
            path = ""
        try:
            status, body, ctype, extra = self._route(path)
        except Exception:
            log.exception("health server: error answering %s", path[:100])
            status, body, ctype, extra = 500, b"internal error\n", "text/plain", {}
        await self._send(writer, status, body, ctype, head=head_only, extra=extra)

    def _route(self, path: str) -> tuple[int, bytes, str, dict[str, str]]:
        mon = self.monitor
        if path in ("/health", "/healthz", "/ready"):
            ok, doc = mon.health()
            return (200 if ok else 503), self._json(doc), "application/json", {}
        if path == "/metrics":
            text = generate_latest(mon.registry)
            return 200, self._redact(text), CONTENT_TYPE_LATEST, {}
        if path == "/api/state":
            doc = mon.state()
            doc["title"] = self.title
            return 200, self._json(doc), "application/json", {}
        if path in ("/", "/index.html", "/dashboard"):
            return (
                200,
                self._dashboard(),
                "text/html; charset=utf-8",
                {
                    "Content-Security-Policy": _HTML_CSP,
                    "X-Frame-Options": "DENY",
                    "Referrer-Policy": "no-referrer",
                },
            )
        if path == "/favicon.ico":
            return 204, b"", "image/x-icon", {}
        return 404, b"not found: try /, /health, /metrics or /api/state\n", "text/plain", {}

    def _dashboard(self) -> bytes:
        if self._page is None:
            page = resources.files("hean.health").joinpath("dashboard.html").read_bytes()
            self._page = page.replace(b"{{TITLE}}", _html_escape(self.title).encode())
        return self._redact(self._page)

    def _json(self, doc: Any) -> bytes:
        return self._redact(json.dumps(_finite(doc), separators=(",", ":")).encode())

    def _redact(self, body: bytes) -> bytes:
        for value in self._secrets:
            raw = value.encode()
            if raw in body:
                body = body.replace(raw, MASK.encode())
            escaped = json.dumps(value)[1:-1].encode()
            if escaped != raw and escaped in body:
                body = body.replace(escaped, MASK.encode())
        if _PROCESS_REDACTOR is not None:
            text = body.decode("utf-8", "replace")
            redacted = _PROCESS_REDACTOR.redact(text)
            if redacted != text:
                body = redacted.encode()
        return body

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        ctype: str,
        *,
        head: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        headers = {
            "Content-Type": ctype,
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Connection": "close",
            **(extra or {}),
        }
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head and status != 204:
            data += body
        writer.write(data)
        await asyncio.wait_for(writer.drain(), self.request_timeout)
        with contextlib.suppress(OSError):
            sock = writer.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                sock.shutdown(socket.SHUT_WR)


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity: replace them with ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _html_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


_PROCESS_REDACTOR: Any
try:  # the process-wide credential redactor, where the private-stream support is installed
    from hean.core.secrets import REDACTOR as _PROCESS_REDACTOR
except ImportError:  # pragma: no cover
    _PROCESS_REDACTOR = None
