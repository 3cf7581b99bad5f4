"""The asyncio shell around one :class:`~hean.exchange.bybit.protocol.session.Session`.

It moves bytes and reads the clock; the session decides everything else. Data path: picows calls
:meth:`_Listener.on_ws_frame` synchronously for every frame of a socket read; the frame's payload
goes straight to ``session.receive`` (no queue, no task switch). ``now`` is read once per socket
read, not once per frame: frames of one read arrived together.

One driver task per connection sleeps until the session's next deadline (ping due, pong late,
reconnect due, ack late) or until woken, then calls ``session.tick``. Opening a connection runs
in its own task so a slow handshake never blocks anything.

Why picows: it parses WebSocket frames in C and hands us whole frames in a synchronous callback,
at a fraction of the per-message cost of pure-Python libraries (docs/decisions.md).

Taps: a :class:`FrameTap` set as :attr:`WsConnection.tap` (or given to the constructor) sees
every text frame received (the same zero-copy view the session gets, *before* the session), every
frame sent, and the connection's events (open, close with its reason, failed attempts, state
changes). It is called synchronously on the loop and must not block: the recorder
(:mod:`hean.record`) copies the bytes into a buffer that a writer thread compresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import picows
from picows import WSFrame, WSListener, WSMsgType, WSTransport

from hean.core.clock import Clock
from hean.core.events import EventType
from hean.core.lifecycle import ConnectionState
from hean.core.waits import wait_set
from hean.exchange.bybit.protocol.session import Action, Close, Connect, Emit, Send, Session

_TEXT = WSMsgType.TEXT

__all__ = ["FrameTap", "WsConnection"]

log = logging.getLogger("hean.transport")

DEFAULT_MAX_MESSAGE = 8 * 1024 * 1024
"""Largest accepted message. The biggest Bybit frame we subscribe to (orderbook.1000 snapshot)
is well under 1 MiB; 8 MiB leaves headroom without letting a hostile peer exhaust memory."""


class FrameTap(Protocol):
    """What a connection reports to an observer (see the module docstring; e.g.
    :meth:`hean.record.Recorder.tap`). Every method is called on the event loop with the
    connection's monotonic ``now`` and must return quickly without raising."""

    def received(self, payload: bytes | memoryview, now: float) -> None:
        """A text frame (``payload`` is valid only during the call: copy what you keep)."""

    def sent(self, payload: bytes, now: float) -> None:
        """A text frame was written to the socket."""

    def connected(self, url: str, now: float) -> None:
        """The WebSocket handshake completed."""

    def closed(self, reason: str, code: int | None, now: float) -> None:
        """The socket closed (``reason`` as the session sees it; ``code`` of a close frame)."""

    def connect_failed(self, reason: str, now: float) -> None:
        """A connection attempt failed."""

    def state(self, old: str, new: str, reason: str, now: float) -> None:
        """The connection's lifecycle state changed (e.g. ``live -> backoff``, with why)."""


class _Listener(WSListener):
    __slots__ = (
        "close_code",
        "conn",
        "fragments",
        "our_close",
        "read_now",
        "receive",
        "server_closed_first",
    )

    def __init__(self, conn: WsConnection) -> None:
        self.conn = conn
        self.receive = conn.session.receive
        self.close_code: int | None = None
        self.our_close = False
        """The shell sent a close frame (a session ``Close`` action)."""
        self.server_closed_first = False
        """The peer's close frame came before any close frame of ours."""
        self.fragments: bytearray | None = None
        # One `now` per socket read: every frame parsed from one read shares it.
        self.read_now: float | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = self.read_now
        if now is None:
            now = self.read_now = self.conn._monotonic()
        if frame.msg_type is _TEXT and frame.fin:
            # Zero-copy view of picows's read buffer: valid only during this call, which is
            # all decoding needs (every decoded value is a new object).
            payload = frame.get_payload_as_memoryview()
            tap = self.conn.tap
            if tap is not None:
                tap.received(payload, now)
            actions = self.receive(payload, now)
            if actions:
                self.conn.run_actions(actions)
        else:
            self._other_frame(transport, frame, frame.msg_type, now)
        if frame.last_in_buffer:
            self.read_now = None

    def _other_frame(
        self, transport: WSTransport, frame: WSFrame, msg_type: WSMsgType, now: float
    ) -> None:
        conn = self.conn
        if msg_type is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif msg_type is WSMsgType.CLOSE:
            code = frame.get_close_code()
            self.close_code = int(code.value)
            if not transport.is_close_frame_sent:
                self.server_closed_first = True
                transport.send_close(code)
            transport.disconnect()
        elif msg_type is WSMsgType.TEXT or msg_type is WSMsgType.CONTINUATION:
            # A fragmented message (Bybit does not fragment, but the RFC allows it).
            if msg_type is WSMsgType.TEXT:
                self.fragments = bytearray()
            if self.fragments is None:
                conn.session.stats.decode_errors += 1
                return
            self.fragments += frame.get_payload_as_bytes()
            if len(self.fragments) > conn.max_message_size:
                self.fragments = None
                conn.session.stats.decode_errors += 1
                log.warning("%s: fragmented message over the size limit dropped", conn.name)
                return
            if frame.fin:
                payload, self.fragments = bytes(self.fragments), None
                if conn.tap is not None:
                    conn.tap.received(payload, now)
                actions = conn.session.receive(payload, now)
                if actions:
                    conn.run_actions(actions)
        elif msg_type is WSMsgType.BINARY:
            conn.session.stats.decode_errors += 1
            log.debug("%s: unexpected binary frame dropped", conn.name)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if transport.is_close_frame_sent and not self.our_close and not self.server_closed_first:
            # picows itself closed the connection (a frame over max_message_size, a protocol
            # violation): it says why only through wait_disconnected(), which raises the
            # error once this call has returned. Awaiting it also retrieves the error, so no
            # "Future exception was never retrieved" traceback is logged.
            task = asyncio.get_running_loop().create_task(
                transport.wait_disconnected(), name=f"hean-closed-{self.conn.name}"
            )
            self.conn._closing_tasks.add(task)
            task.add_done_callback(self._closed_by_picows)
            return
        code = self.close_code
        reason = f"server_close:{code if code is not None else 1006}"
        self.conn._on_disconnected(self, reason)

    def _closed_by_picows(self, task: asyncio.Task[None]) -> None:
        conn = self.conn
        conn._closing_tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, picows.WSProtocolError):
            code = exc.args[0] if exc.args else None
            try:
                what = picows.WSCloseCode(code).name.lower()
            except ValueError:
                what = f"code_{code}"
            detail = exc.args[1] if len(exc.args) > 1 else ""
            if what == "message_too_big":
                detail = f"frame over max_message_size={conn.max_message_size} ({detail})"
        else:
            what = "protocol_error"
            detail = "" if exc is None else f"{type(exc).__name__}: {exc}"
        log.warning("%s: closed by HEAN (%s): %.200s", conn.name, what, detail)
        conn._on_disconnected(self, f"local_close:{what}")


class WsConnection:
    """Runs one session over picows.

    Args:
        session: the protocol state machine.
        publish: where session events go (usually ``EventBus.publish``).
        clock: time source.
        connect_timeout: seconds for TCP + TLS + WebSocket handshake.
        close_timeout: seconds a graceful close may take before the socket is dropped.
        max_message_size: frames (and reassembled messages) above this are refused.
        ssl_context: for ``wss://`` URLs; default is a verifying context
            (:func:`ssl.create_default_context`). Certificates are always verified.
        connect_gate: awaited before every connection attempt (first connect and each
            reconnect), outside ``connect_timeout``: e.g. a process-wide connection rate limit.
            Cancelled by ``stop()``; if it raises, the attempt fails with ``connect_gate``.
        tap: a :class:`FrameTap` that sees every frame and connection event (e.g. a
            recorder's); can also be set (or cleared) later through :attr:`tap`.
    """

    def __init__(
        self,
        session: Session,
        publish: Callable[[EventType, Any], None],
        clock: Clock,
        *,
        connect_timeout: float = 10.0,
        close_timeout: float = 2.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE,
        ssl_context: ssl.SSLContext | None = None,
        connect_gate: Callable[[], Awaitable[None]] | None = None,
        tap: FrameTap | None = None,
    ) -> None:
        self.session = session
        self.tap = tap
        self.connect_gate = connect_gate
        self.name = session.config.name
        self.publish = publish
        self.clock = clock
        self._monotonic = clock.monotonic
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.max_message_size = max_message_size
        self.ssl_context = ssl_context
        self.transport: WSTransport | None = None
        self._listener: _Listener | None = None
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._driver: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._abort_handle: asyncio.TimerHandle | None = None
        self._closing_tasks: set[asyncio.Task[None]] = set()
        """Waits for picows's reason of a close it made itself (see ``_Listener``)."""

    # -- control ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (returns at once; watch the session state or events)."""
        if self._driver is not None and not self._driver.done():
            return
        self._closed.clear()
        self.run_actions(self.session.start(self._monotonic()))
        self._driver = asyncio.get_running_loop().create_task(
            self._drive(), name=f"hean-{self.name}"
        )

    async def stop(self) -> None:
        """Close for good; returns when the connection is closed. Wins over any reconnect."""
        self.run_actions(self.session.stop(self._monotonic()))
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
        try:
            await asyncio.wait_for(self._closed.wait(), self.close_timeout + 1.0)
        except TimeoutError:
            log.warning("%s: close did not complete; dropping the socket", self.name)
            if self.transport is not None:
                self.transport.disconnect(graceful=False)
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None

    # -- actions ----------------------------------------------------------------------------

    def run_actions(self, actions: list[Action]) -> None:
        """Carry out what the session asked for."""
        tap = self.tap
        for action in actions:
            if isinstance(action, Send):
                transport = self.transport
                if transport is not None and not transport.is_disconnected:
                    transport.send(WSMsgType.TEXT, action.payload)
                    if tap is not None:
                        tap.sent(action.payload, self._monotonic())
            elif isinstance(action, Emit):
                if tap is not None and action.event_type is EventType.CONNECTION_STATE:
                    event = action.event
                    tap.state(event.old.value, event.new.value, event.reason, event.time)
                self.publish(action.event_type, action.event)
            elif isinstance(action, Connect):
                self._connect_task = asyncio.get_running_loop().create_task(
                    self._connect(action.url), name=f"hean-connect-{self.name}"
                )
            elif isinstance(action, Close):
                self._close(action)
        self._wake.set()

    def _close(self, action: Close) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        if action.abort:
            transport.disconnect(graceful=False)
            return
        if not transport.is_close_frame_sent:
            listener = self._listener
            if listener is not None:
                listener.our_close = True
            transport.send_close(picows.WSCloseCode(action.code), action.reason.encode())
        transport.disconnect(graceful=True)
        # A peer that never finishes the close handshake must not keep us waiting.
        self._abort_handle = asyncio.get_running_loop().call_later(
            self.close_timeout, transport.disconnect, False
        )

    # -- connection -------------------------------------------------------------------------

    async def _connect(self, url: str) -> None:
        retry_after: float | None = None
        gate = self.connect_gate
        if gate is not None:
            try:
                await gate()
            except asyncio.CancelledError:
                self.run_actions(self.session.connect_failed("stop", self._monotonic()))
                raise
            except Exception as exc:
                log.warning("%s: connect gate failed: %r", self.name, exc)
                self.run_actions(self.session.connect_failed("connect_gate", self._monotonic()))
                return
        try:
            transport, listener = await asyncio.wait_for(
                picows.ws_connect(
                    lambda: _Listener(self),
                    url,
                    ssl_context=self._ssl_for(url),
                    websocket_handshake_timeout=self.connect_timeout,
                    enable_auto_pong=False,  # we answer PING frames ourselves (one code path)
                    max_frame_size=self.max_message_size,
                    logger_name="hean.client",
                ),
                self.connect_timeout,
            )
        except asyncio.CancelledError:
            self.run_actions(self.session.connect_failed("stop", self._monotonic()))
            raise
        except picows.WSInvalidStatusError as exc:
            status, retry_after = _status_of(exc)
            reason = f"http_{status}"
        except TimeoutError:
            reason = "connect_timeout"
        except socket.gaierror:
            reason = "dns"
        except ConnectionRefusedError:
            reason = "connect_refused"
        except ssl.SSLError as exc:
            reason = "tls_error"
            log.error("%s: TLS failure connecting to %s: %s", self.name, url, exc)
        except (OSError, picows.WSError) as exc:
            reason = "connect_failed"
            log.debug("%s: connect to %s failed: %r", self.name, url, exc)
        else:
            self.transport = transport
            assert isinstance(listener, _Listener)
            self._listener = listener
            now = self._monotonic()
            if self.tap is not None:
                self.tap.connected(url, now)
            self.run_actions(self.session.connected(now))
            return
        log.warning("%s: cannot connect to %s (%s)", self.name, url, reason)
        if self.tap is not None:
            self.tap.connect_failed(reason, self._monotonic())
        self.run_actions(self.session.connect_failed(reason, self._monotonic(), retry_after))

    def _ssl_for(self, url: str) -> ssl.SSLContext | None:
        if not url.startswith("wss://"):
            return None
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        return self.ssl_context

    def _on_disconnected(self, listener: _Listener, reason: str) -> None:
        if listener is not self._listener:
            return
        self.transport = None
        self._listener = None
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        now = self._monotonic()
        if self.tap is not None:
            self.tap.closed(reason, listener.close_code, now)
        self.run_actions(self.session.disconnected(reason, now))

    # -- timers -----------------------------------------------------------------------------

    async def _drive(self) -> None:
        session = self.session
        try:
            while session.state is not ConnectionState.CLOSED:
                deadline = session.next_deadline()
                self._wake.clear()
                if deadline is None:
                    await self._wake.wait()
                else:
                    delay = deadline - self._monotonic()
                    if delay > 0:
                        await wait_set(self._wake, delay)  # never loses a cancel (see waits)
                self.run_actions(session.tick(self._monotonic()))
        finally:
            self._closed.set()


def _status_of(exc: picows.WSInvalidStatusError) -> tuple[int, float | None]:
    response = getattr(exc, "response", None)
    status = int(getattr(getattr(response, "status", 0), "value", 0) or 0)
    retry_after: float | None = None
    headers = getattr(response, "headers", None)
    if headers is not None:
        raw = headers.get("Retry-After")
        if raw is not None:
            with contextlib.suppress(ValueError):
                retry_after = float(raw)
    return status, retry_after
