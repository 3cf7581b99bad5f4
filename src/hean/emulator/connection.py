"""One public WebSocket connection: frame handling, ops, replies, fault behaviour.

A :class:`PublicSession` is the picows listener of one accepted connection. It processes inbound
frames strictly in order (optionally after an artificial latency), answers ``ping`` /
``subscribe`` / ``unsubscribe`` with the endpoint's exact shapes, and receives market data from
the emulator's push loop through :meth:`PublicSession.push`. Everything it needs from the
emulator goes through the small :class:`Hub` protocol, so the emulator can grow new endpoints
(private, trade) as sibling session classes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from hean.core.clock import Clock
from hean.emulator import shapes, topics
from hean.emulator.config import EmulatorConfig
from hean.emulator.drip import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, TICK, Drip, ws_frame
from hean.emulator.faults import Faults
from hean.emulator.streamfaults import FaultHub, Outgoing, WireShaper, ws_text_frame

__all__ = ["ConnectionInfo", "EffectiveFaults", "Hub", "PublicSession"]

log = logging.getLogger("hean.emulator")

_DATA_TYPES = (WSMsgType.TEXT, WSMsgType.BINARY)


@dataclass(slots=True, eq=False)
class ConnectionInfo:
    """What the emulator knows about one connection (live object, updated in place)."""

    conn_id: str
    path: str
    category: str
    opened_at: float
    closed_at: float | None = None
    close_reason: str | None = None
    subscriptions: set[str] = field(default_factory=set)
    json_pings: int = 0
    protocol_pings: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    sent_by_topic: dict[str, int] = field(default_factory=dict)
    #: order-book topic -> ``(u, seq)`` of the last message sent on the wire (after faults)
    book_sent: dict[str, tuple[int, int]] = field(default_factory=dict)
    last_ping_at: float = 0.0
    peer: str = ""
    # -- private and trade connections only -------------------------------------------------
    #: ``""`` (public), ``"none"`` (not yet), ``"authenticated"`` or ``"failed"`` (last attempt)
    auth_state: str = ""
    #: the API key this connection authenticated with (``None`` until it did)
    api_key: str | None = None
    auth_attempts: int = 0
    auth_failures: int = 0
    #: ``(key, expires, signature)`` of the last auth request exactly as received (for tests
    #: that must know what the client sent; never logged by the emulator)
    last_auth_args: tuple[object, ...] | None = field(default=None, repr=False)
    #: outcome of the last auth: ``ok``, ``expired``, ``bad_key``, ``bad_signature``, ``params``,
    #: ``too_many_sessions``, ``repeat``
    last_auth_result: str = ""
    #: ``max_active_time`` of the URL in (scaled) seconds, if given
    max_active_time: float | None = None
    #: monotonic time of the last data frame or reply pushed (idle cut-off of private/trade)
    last_data_at: float = 0.0
    #: trade requests received (``order.*`` ops)
    requests: int = 0

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class EffectiveFaults:
    """Global and per-connection switches combined for one connection."""

    ignore_json_ping: bool
    ignore_protocol_ping: bool
    blackhole: bool
    reject_topics: frozenset[str]
    reject_all_subscriptions: bool
    paused_symbols: frozenset[str]
    idle_timeout: float | None
    auth_reject: str | None = None
    ack_delay: float | None = None
    drip: float | None = None

    @staticmethod
    def combine(glob: Faults, own: Faults | None, default_idle: float | None) -> EffectiveFaults:
        if own is None:
            own = _NO_FAULTS
        idle = own.idle_timeout if own.idle_timeout is not None else glob.idle_timeout
        return EffectiveFaults(
            ignore_json_ping=glob.ignore_json_ping or own.ignore_json_ping,
            ignore_protocol_ping=glob.ignore_protocol_ping or own.ignore_protocol_ping,
            blackhole=glob.blackhole or own.blackhole,
            reject_topics=frozenset(glob.reject_topics | own.reject_topics),
            reject_all_subscriptions=glob.reject_all_subscriptions or own.reject_all_subscriptions,
            paused_symbols=frozenset(glob.paused_symbols | own.paused_symbols),
            idle_timeout=idle if idle is not None else default_idle,
            auth_reject=own.auth_reject if own.auth_reject is not None else glob.auth_reject,
            ack_delay=own.ack_delay if own.ack_delay is not None else glob.ack_delay,
            drip=own.drip if own.drip is not None else glob.drip,
        )


_NO_FAULTS = Faults()


class Hub(FaultHub, Protocol):
    """What a session needs from the emulator."""

    @property
    def clock(self) -> Clock: ...

    @property
    def config(self) -> EmulatorConfig: ...

    def effective_faults(self, conn_id: str) -> EffectiveFaults: ...

    def new_conn_id(self, category: str) -> str: ...

    def has_symbol(self, category: str, symbol: str) -> bool: ...

    def send_initial(self, session: PublicSession, topic: topics.Topic) -> None: ...

    def session_opened(self, session: PublicSession) -> None: ...

    def session_closed(self, session: PublicSession) -> None: ...

    def subscriptions_changed(
        self, session: PublicSession, added: Iterable[topics.Topic], removed: Iterable[str]
    ) -> None: ...


class PublicSession(WSListener):
    """Listener for ``/v5/public/<category>``."""

    def __init__(self, hub: Hub, category: str, path: str) -> None:
        super().__init__()
        self.hub = hub
        self.category = category
        self.path = path
        self.transport: WSTransport | None = None
        self.info: ConnectionInfo | None = None
        self.conn_id = ""
        #: topics whose next data message must be a snapshot (after a pause or a black hole)
        self.stale: set[str] = set()
        self.closing = False
        self._fragments: bytearray | None = None
        self._fragment_type = WSMsgType.TEXT
        self._queue: deque[tuple[float, WSMsgType, bytes, bool]] = deque()
        self._drain_handle: asyncio.TimerHandle | None = None
        #: what stream faults do to this connection's data (see streamfaults)
        self.wire = WireShaper(self, hub)
        #: a slow-dripping link's queued output (the ``drip`` fault; ``None``: off)
        self._drip: Drip | None = None
        self._drip_handle: asyncio.TimerHandle | None = None
        self._close_after_drip = False

    # -- picows callbacks ---------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.conn_id = self.hub.new_conn_id(self.category)
        now = self.hub.clock.monotonic()
        peer = transport.underlying_transport.get_extra_info("peername")
        self.info = ConnectionInfo(
            conn_id=self.conn_id,
            path=self.path,
            category=self.category,
            opened_at=now,
            last_ping_at=now,
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "",
        )
        self.hub.session_opened(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closing = True
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        self._queue.clear()
        if self._drip_handle is not None:
            self._drip_handle.cancel()
            self._drip_handle = None
        if self._drip is not None:
            self._drip.discard()
        info = self.info
        if info is not None and info.closed_at is None:
            info.closed_at = self.hub.clock.monotonic()
            if info.close_reason is None:
                handshake = transport.close_handshake
                if handshake is not None and handshake.recv is not None:
                    info.close_reason = f"client_close:{handshake.recv.code.value}"
                else:
                    info.close_reason = "peer_disconnected"
            self.hub.session_closed(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        info = self.info
        if info is None or self.closing:
            return
        info.frames_received += 1
        msg_type = frame.msg_type
        payload = frame.get_payload_as_bytes()
        latency = self.hub.config.latency
        if latency > 0:
            loop = asyncio.get_running_loop()
            self._queue.append((loop.time() + latency, msg_type, payload, frame.fin))
            if self._drain_handle is None:
                self._drain_handle = loop.call_at(self._queue[0][0], self._drain)
            return
        self._handle_safely(msg_type, payload, frame.fin)

    # -- inbound processing -------------------------------------------------------------------

    def _drain(self) -> None:
        self._drain_handle = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._queue and self._queue[0][0] <= now and not self.closing:
            _, msg_type, payload, fin = self._queue.popleft()
            self._handle_safely(msg_type, payload, fin)
        if self._queue and not self.closing:
            self._drain_handle = loop.call_at(self._queue[0][0], self._drain)

    def _handle_safely(self, msg_type: WSMsgType, payload: bytes, fin: bool) -> None:
        try:
            self._handle(msg_type, payload, fin)
        except Exception:  # a bug must not kill the connection or the server
            log.exception("emulator: error handling a frame on %s", self.conn_id)

    def _handle(self, msg_type: WSMsgType, payload: bytes, fin: bool) -> None:
        info = self.info
        transport = self.transport
        if info is None or transport is None or self.closing:
            return
        faults = self.hub.effective_faults(self.conn_id)
        if faults.blackhole:
            return
        if msg_type == WSMsgType.PING:
            info.protocol_pings += 1
            info.last_ping_at = self.hub.clock.monotonic()
            if not faults.ignore_protocol_ping:
                if self._drip is not None:
                    self._drip_out(ws_frame(OP_PONG, payload))
                else:
                    transport.send_pong(payload)
            return
        if msg_type == WSMsgType.PONG:
            return
        if msg_type == WSMsgType.CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000
            info.close_reason = f"client_close:{code}"
            self.closing = True
            if not 1000 <= code <= 4999 or code in (1004, 1005, 1006, 1015):
                code = 1000
            if self._drip is not None:
                # the stream may be mid-frame: no close frame can follow it; just hang up
                self._drip.discard()
            else:
                transport.send_close(WSCloseCode(code))
            transport.disconnect()
            return
        if msg_type in _DATA_TYPES:
            if self._fragments is not None:  # a new message inside a fragmented one
                self._fragments = None
            if fin:
                self._on_message(payload, faults)
                return
            self._fragments = bytearray(payload)
            self._fragment_type = msg_type
            return
        if msg_type == WSMsgType.CONTINUATION:
            if self._fragments is None:
                return  # stray continuation: ignore
            self._fragments += payload
            if len(self._fragments) > self.hub.config.max_frame_size:
                self._fragments = None
                self.close(WSCloseCode.MESSAGE_TOO_BIG.value, "message too big")
                return
            if fin:
                data = bytes(self._fragments)
                self._fragments = None
                self._on_message(data, faults)

    def _on_message(self, payload: bytes, faults: EffectiveFaults) -> None:
        try:
            msg = msgspec.json.decode(payload)
        except (msgspec.DecodeError, RecursionError, ValueError) as exc:
            reason = None if not payload.strip() or payload.lstrip()[:1] not in b"{[" else str(exc)
            self._reply(
                shapes.decode_error(self.conn_id, shapes.decode_error_text(payload, reason))
            )
            return
        if msg is None:
            msg = {}
        if not isinstance(msg, dict):
            self._reply(shapes.decode_error(self.conn_id, shapes.decode_error_text(payload)))
            return
        op = msg.get("op", "")
        req_id = msg.get("req_id", shapes.MISSING)
        if not isinstance(op, str):
            detail = f'ReadString: expects " or n, but found {str(op)[:1]}'
            self._reply(
                shapes.decode_error(self.conn_id, shapes.decode_error_text(payload, detail))
            )
            return
        if op == "ping":
            self._on_json_ping(req_id, faults)
        elif op in ("subscribe", "unsubscribe"):
            args = msg.get("args", [])
            if args is None:
                args = []
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                detail = '[]string: ReadString: expects " or n'
                self._reply(
                    shapes.decode_error(self.conn_id, shapes.decode_error_text(payload, detail))
                )
                return
            self._on_subscription(op, args, req_id, faults)
        else:
            self._reply(shapes.invalid_op(self.category, self.conn_id, req_id, op))

    def _on_json_ping(self, req_id: object, faults: EffectiveFaults) -> None:
        assert self.info is not None
        self.info.json_pings += 1
        self.info.last_ping_at = self.hub.clock.monotonic()
        if faults.ignore_json_ping:
            return
        self._reply(shapes.pong(self.category, self.conn_id, req_id, self.hub.clock.wall_ms()))

    def _on_subscription(
        self, op: str, args: list[str], req_id: object, faults: EffectiveFaults
    ) -> None:
        assert self.info is not None
        current = self.info.subscriptions
        category = self.category
        decision = topics.decide(
            category,
            op,
            args,
            current,
            lambda symbol: self.hub.has_symbol(category, symbol),
            reject_topics=faults.reject_topics,
            reject_all=faults.reject_all_subscriptions,
        )
        names = [t.name for t in decision.accepted]
        apply = decision.success or category == "option"
        if apply and names:
            if op == "subscribe":
                current.update(names)
                self.hub.subscriptions_changed(self, decision.accepted, ())
            else:
                removed = [n for n in names if n in current]
                current.difference_update(removed)
                for name in removed:
                    self.stale.discard(name)
                    self.wire.forget(name)
                self.hub.subscriptions_changed(self, (), removed)
        self._reply(
            shapes.subscribe_ack(
                category,
                op,
                self.conn_id,
                req_id,
                success=decision.success,
                ret_msg=decision.ret_msg,
                success_topics=names,
                fail_topics=decision.failed,
            )
        )
        if op == "subscribe" and apply:
            for topic in decision.accepted:
                self.hub.send_initial(self, topic)

    # -- outbound -----------------------------------------------------------------------------

    def _reply(self, message: dict[str, object]) -> None:
        self.send_raw(shapes.encode(message))

    def send_raw(self, data: bytes) -> bool:
        """Send one text frame; False if the connection is closing."""
        transport = self.transport
        if transport is None or self.closing or transport.is_close_frame_sent:
            return False
        if self._drip is not None:
            self._drip_out(ws_frame(OP_TEXT, data))
        else:
            transport.send(WSMsgType.TEXT, data)
        assert self.info is not None
        self.info.frames_sent += 1
        return True

    def push(
        self,
        topic: str,
        data: bytes,
        *,
        u: int = 0,
        seq: int = 0,
        snapshot: bool = False,
        initial: bool = False,
    ) -> None:
        """Send one market-data message (drops a client whose backlog grew too large).

        ``u``/``seq`` are set for order-book messages; ``snapshot`` marks snapshots and
        ``initial`` the first message after a subscribe (stream faults look at them).
        """
        transport = self.transport
        if transport is None or self.closing:
            return
        backlog = transport.underlying_transport.get_write_buffer_size()
        if self._drip is not None:
            backlog += self._drip.pending
        if backlog > self.hub.config.max_write_buffer:
            log.warning("emulator: dropping slow consumer %s", self.conn_id)
            self.abort("slow_consumer")
            return
        if self.wire.active or self.hub.stream_faults_armed:
            self.wire.push(topic, data, u, seq, snapshot=snapshot, initial=initial)
        else:
            self.emit(topic, data, u, seq)

    def emit(self, topic: str, data: bytes, u: int, seq: int) -> None:
        if self.send_raw(data):
            info = self.info
            assert info is not None
            counts = info.sent_by_topic
            counts[topic] = counts.get(topic, 0) + 1
            if u:
                info.book_sent[topic] = (u, seq)

    def send_frame(self, payload: bytes, binary: bool) -> None:
        """An extra, non-data frame (junk injected by a stream fault)."""
        transport = self.transport
        if transport is None or self.closing or transport.is_close_frame_sent:
            return
        if self._drip is not None:
            self._drip_out(ws_frame(OP_BINARY if binary else OP_TEXT, payload))
        else:
            transport.send(WSMsgType.BINARY if binary else WSMsgType.TEXT, payload)
        assert self.info is not None
        self.info.frames_sent += 1

    def write_frames(self, topic: str, items: list[Outgoing]) -> None:
        """Several data messages in one transport write (a burst)."""
        transport = self.transport
        info = self.info
        if transport is None or info is None or self.closing or transport.is_close_frame_sent:
            return
        data = b"".join(ws_text_frame(d) for d, _, _ in items)
        if self._drip is not None:
            self._drip_out(data)
        else:
            transport.underlying_transport.write(data)
        info.frames_sent += len(items)
        info.sent_by_topic[topic] = info.sent_by_topic.get(topic, 0) + len(items)
        for _, u, seq in items:
            if u:
                info.book_sent[topic] = (u, seq)

    def send_ping(self) -> None:
        transport = self.transport
        if transport is not None and not self.closing and not transport.is_close_frame_sent:
            if self._drip is not None:
                self._drip_out(ws_frame(OP_PING, b""))
            else:
                transport.send_ping()

    # -- a slow-dripping link (the ``drip`` fault) --------------------------------------------

    @property
    def drip_pending(self) -> int:
        """Bytes queued behind a slow drip (0 when the link is not dripping)."""
        return 0 if self._drip is None else self._drip.pending

    def drip_delay(self) -> float:
        """Seconds the oldest byte queued behind a slow drip has waited (0: none queued)."""
        drip = self._drip
        return 0.0 if drip is None else drip.delay(asyncio.get_running_loop().time())

    def set_drip(self, rate: float | None) -> None:
        """Limit this connection's output to ``rate`` bytes per second (``None``: off; what
        is queued is written at once, so the stream stays whole)."""
        drip = self._drip
        if rate is not None:
            if drip is None:
                self._drip = Drip(rate, asyncio.get_running_loop().time())
            else:
                drip.rate = float(rate)
            return
        if drip is None:
            return
        self._drip = None
        if self._drip_handle is not None:
            self._drip_handle.cancel()
            self._drip_handle = None
        data = drip.drain()
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        if data:
            transport.underlying_transport.write(data)
        if self._close_after_drip:
            transport.disconnect()

    def _drip_out(self, data: bytes) -> None:
        drip = self._drip
        assert drip is not None
        drip.add(data, asyncio.get_running_loop().time())
        if self._drip_handle is None:
            self._drip_handle = asyncio.get_running_loop().call_later(TICK, self._drip_pump)

    def _drip_pump(self) -> None:
        self._drip_handle = None
        drip = self._drip
        transport = self.transport
        if drip is None or transport is None or transport.is_disconnected:
            return
        data = drip.take(asyncio.get_running_loop().time())
        if data:
            transport.underlying_transport.write(data)
        if drip.pending:
            self._drip_handle = asyncio.get_running_loop().call_later(TICK, self._drip_pump)
        elif self._close_after_drip:
            transport.disconnect()

    # -- server-side actions ------------------------------------------------------------------

    def _mark(self, reason: str) -> None:
        if self.info is not None and self.info.close_reason is None:
            self.info.close_reason = reason
        self.closing = True

    def abort(self, reason: str) -> None:
        """TCP close without a close frame (the client sees 1006)."""
        if self.transport is None or self.transport.is_disconnected:
            return
        self._mark(reason)
        self.transport.underlying_transport.abort()

    def reset(self, reason: str = "reset") -> None:
        """TCP RST: SO_LINGER(1, 0) then close."""
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        self._mark(reason)
        sock = transport.underlying_transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                log.debug("emulator: SO_LINGER failed on %s", self.conn_id)
        transport.underlying_transport.abort()

    def close(self, code: int, reason: str = "") -> None:
        """Close frame with ``code``, then disconnect."""
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        self._mark(f"server_close:{code}")
        if self._drip is not None:
            # the close frame goes out behind what is queued, then the venue hangs up
            if not self._close_after_drip:
                self._close_after_drip = True
                self._drip_out(ws_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()))
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode())
        transport.disconnect()
