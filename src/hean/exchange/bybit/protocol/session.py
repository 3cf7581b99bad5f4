"""One Bybit V5 WebSocket connection's protocol logic, sans-I/O.

:class:`Session` is given everything that happens to a connection (it opened, a frame arrived, it
closed, time passed) together with ``now`` (monotonic seconds), and answers with
:data:`Action` values for the asyncio shell to carry out: send a frame, open or close the socket,
publish an event. It never touches a socket or reads a clock, so every rule here (heartbeat
deadlines, backoff, the circuit breaker, resubscription, ack matching) is tested with plain
function calls.

The hot path is :meth:`Session.receive`: decode, count, and hand data frames to ``on_data``. It
allocates nothing but the decoded frame and returns ``None`` unless there is something to do.

Disconnect/failure reasons are short strings used everywhere (logs, events, metrics):
``heartbeat_timeout``, ``server_close:<code>``, ``connect_failed``, ``connect_timeout``,
``http_<status>``, ``reset``, ``dns``, ``stop``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from hean.core.events import (
    ConnectionStateEvent,
    EventType,
    SubscriptionEvent,
    SubscriptionStatus,
)
from hean.core.lifecycle import ConnectionState, Lifecycle
from hean.exchange.bybit.protocol.backoff import (
    Backoff,
    BackoffPolicy,
    BreakerState,
    CircuitBreaker,
    classify,
)
from hean.exchange.bybit.protocol.codec import (
    Frame,
    FrameKind,
    decode,
    encode_ping,
    encode_pong,
)
from hean.exchange.bybit.protocol.codec import (
    classify as classify_frame,
)
from hean.exchange.bybit.protocol.heartbeat import Heartbeat, HeartbeatPolicy
from hean.exchange.bybit.protocol.subscriptions import SubscriptionRegistry, TopicStatus

__all__ = [
    "Action",
    "Close",
    "Connect",
    "Emit",
    "Send",
    "Session",
    "SessionConfig",
    "SessionStats",
]

log = logging.getLogger("hean.session")

S = ConnectionState
MAX_LOGGED_PAYLOAD = 120
"""Bad frames are logged truncated to this many characters (never in full)."""


class Send(NamedTuple):
    """Send this text frame."""

    payload: bytes


class Connect(NamedTuple):
    """Open the WebSocket to ``url`` (the shell applies its connect timeout)."""

    url: str


class Close(NamedTuple):
    """Close the socket. ``abort`` drops it at once (the link is dead; no close handshake)."""

    code: int
    reason: str
    abort: bool


class Emit(NamedTuple):
    """Publish ``event`` on the bus."""

    event_type: EventType
    event: Any


Action = Send | Connect | Close | Emit


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Settings of one connection."""

    name: str
    """Short label used in logs, events and metrics, e.g. ``public/linear``."""
    url: str
    heartbeat: HeartbeatPolicy = field(default_factory=HeartbeatPolicy)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    ack_timeout: float = 10.0
    """Seconds a subscribe may wait for its ack before it is reported as timed out."""
    max_args_per_request: int | None = None
    """Split subscribe requests into chunks of this many topics (spot: 10)."""

    def __post_init__(self) -> None:
        if not self.ack_timeout > 0:
            raise ValueError(f"ack_timeout must be > 0, got {self.ack_timeout!r}")


@dataclass(slots=True)
class SessionStats:
    """Counters of one connection (cumulative across reconnects)."""

    messages: int = 0
    """Frames decoded (data and control)."""
    control_messages: int = 0
    """Decoded frames without a topic (pongs, acks, errors)."""
    decode_errors: int = 0
    data_errors: int = 0
    """Data frames whose handler raised (bad content); dropped."""
    server_errors: int = 0
    """``success: false`` replies that were not subscription acks."""
    unknown_frames: int = 0
    connects: int = 0
    reconnects: int = 0
    """Times the connection was lost and a reconnect scheduled."""
    last_message_at: float | None = None
    live_since: float | None = None
    last_disconnect_reason: str = ""
    disconnect_reasons: dict[str, int] = field(default_factory=dict)


class Session:
    """Protocol state of one connection. See the module docstring.

    Args:
        config: connection settings.
        on_data: called with ``(frame, now)`` for every data frame (``topic`` present). It must
            not raise for bad content; if it does, the frame is counted as a data error and
            dropped, and the connection carries on.
        rng: random source for backoff jitter (seed it in tests).
    """

    def __init__(
        self,
        config: SessionConfig,
        on_data: Callable[[Frame, float], None],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.on_data = on_data
        self.routes: dict[str, Callable[[Frame, float], object]] = {}
        """Per-topic data handlers (the fast path); topics not here go to ``on_data``."""
        self.on_control: Callable[[Frame, FrameKind, float], None] | None = None
        """Optional hook for control frames this class does not handle (auth, trade acks)."""
        self.lifecycle = Lifecycle(config.name, log, self._on_transition)
        self.heartbeat = Heartbeat(config.heartbeat)
        self.subscriptions = SubscriptionRegistry(config.max_args_per_request)
        self.backoff = Backoff(config.backoff, rng)
        self.breaker = CircuitBreaker(config.backoff, config.name)
        self.stats = SessionStats()
        self.reconnect_at: float | None = None
        self._actions: list[Action] = []
        self._now = 0.0
        self._close_reason: str | None = None
        self._error_log_at = -1e9

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self.lifecycle.state

    def _flush(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def _on_transition(self, old: ConnectionState, new: ConnectionState, reason: str) -> None:
        event = ConnectionStateEvent(
            connection=self.config.name,
            url=self.config.url,
            old=old,
            new=new,
            reason=reason,
            attempt=self.backoff.attempts,
            time=self._now,
        )
        self._actions.append(Emit(EventType.CONNECTION_STATE, event))

    # -- lifecycle inputs -------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Begin connecting (from IDLE, or CLOSED for an explicit restart)."""
        self._now = now
        if self.state in (S.IDLE, S.CLOSED):
            self._close_reason = None
            self.lifecycle.to(S.CONNECTING, "start")
            self._actions.append(Connect(self.config.url))
        return self._flush()

    def connected(self, now: float) -> list[Action]:
        """The WebSocket handshake completed."""
        self._now = now
        if self.state is not S.CONNECTING:
            # stop() won while we were connecting: close what just opened.
            self._actions.append(Close(1000, "stop", False))
            return self._flush()
        self.stats.connects += 1
        self.stats.live_since = now
        self._close_reason = None
        self.heartbeat.start(now)
        log.info("connected to %s (%s)", self.config.url, self.config.name)
        self.lifecycle.to(S.LIVE, "connected")
        topics = self.subscriptions.wanted()
        for payload in self.subscriptions.build("subscribe", topics, now):
            self._actions.append(Send(payload))
        return self._flush()

    def connect_failed(
        self, reason: str, now: float, retry_after: float | None = None
    ) -> list[Action]:
        """Opening the connection failed (refused, DNS, timeout, HTTP status ...)."""
        self._now = now
        if self.state is S.STOPPING:
            self.lifecycle.to(S.CLOSED, "stopped")
        elif self.state is S.CONNECTING:
            self.breaker.record_failure(now)
            self._schedule_reconnect(reason, now, retry_after)
        return self._flush()

    def disconnected(self, reason: str, now: float) -> list[Action]:
        """The connection closed (for any reason, including our own :class:`Close`)."""
        self._now = now
        state = self.state
        if state is S.STOPPING:
            self.lifecycle.to(S.CLOSED, "stopped")
            return self._flush()
        if state not in (S.LIVE, S.AUTHENTICATING, S.CONNECTING):
            return self._flush()  # already handled (duplicate notification)
        reason = self._close_reason or reason
        self._close_reason = None
        self.heartbeat.stop()
        self.subscriptions.on_disconnect()
        live_since = self.stats.live_since
        if live_since is not None and now - live_since >= self.config.backoff.stable_after:
            self.backoff.reset()
            self.breaker.record_success()
        else:
            self.breaker.record_failure(now)
        self.stats.live_since = None
        self._schedule_reconnect(reason, now, None)
        return self._flush()

    def stop(self, now: float) -> list[Action]:
        """Close for good. Wins over any reconnect, from any state."""
        self._now = now
        state = self.state
        if state in (S.CLOSED, S.STOPPING):
            return self._flush()
        self.heartbeat.stop()
        self.reconnect_at = None
        if state in (S.IDLE, S.BACKOFF):
            self.lifecycle.to(S.CLOSED, "stop")
        else:
            self.lifecycle.to(S.STOPPING, "stop")
            self._actions.append(Close(1000, "stop", False))
        return self._flush()

    def _schedule_reconnect(self, reason: str, now: float, retry_after: float | None) -> None:
        _, floor = classify(reason, self.config.backoff, retry_after)
        delay = self.backoff.next_delay(floor)
        at = now + delay
        if self.breaker.state is BreakerState.OPEN:
            at = max(at, self.breaker.retry_at)
        self.reconnect_at = at
        self.stats.reconnects += 1
        self.stats.last_disconnect_reason = reason
        counts = self.stats.disconnect_reasons
        counts[reason] = counts.get(reason, 0) + 1
        log.warning(
            "%s %s (%s): reconnecting in %.2fs (attempt %d)",
            self.config.name,
            "connect failed" if self.state is S.CONNECTING else "connection lost",
            reason,
            at - now,
            self.backoff.attempts,
        )
        self.lifecycle.to(S.BACKOFF, reason)

    # -- timers -----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called (monotonic seconds), or ``None``."""
        state = self.state
        if state is S.LIVE:
            deadline = self.heartbeat.next_deadline()
            oldest = self.subscriptions.oldest_pending_at()
            if oldest is not None:
                ack_deadline = oldest + self.config.ack_timeout
                deadline = ack_deadline if deadline is None else min(deadline, ack_deadline)
            return deadline
        if state is S.BACKOFF:
            return self.reconnect_at
        return None

    def tick(self, now: float) -> list[Action]:
        """Time has passed: send pings, detect a dead link, reconnect when the delay is over."""
        self._now = now
        state = self.state
        if state is S.LIVE:
            hb = self.heartbeat
            if hb.expired(now):
                self._fail("heartbeat_timeout")
            elif hb.ping_due(now):
                hb.on_ping_sent(now)
                self._actions.append(Send(encode_ping(f"hb-{hb.pings_sent}")))
            for req in self.subscriptions.timeouts(now, self.config.ack_timeout):
                if req.internal or req.op != "subscribe":
                    continue
                log.warning(
                    "%s: no ack for %s %s after %.1fs",
                    self.config.name,
                    req.op,
                    req.topics,
                    self.config.ack_timeout,
                )
                for topic in req.topics:
                    self._emit_subscription(topic, SubscriptionStatus.TIMEOUT, "no ack")
        elif state is S.BACKOFF and self.reconnect_at is not None and now >= self.reconnect_at:
            if self.breaker.allow(now):
                self.reconnect_at = None
                self.lifecycle.to(S.CONNECTING, f"reconnect attempt {self.backoff.attempts}")
                self._actions.append(Connect(self.config.url))
            else:
                self.reconnect_at = self.breaker.retry_at
        return self._flush()

    def _fail(self, reason: str) -> None:
        """Declare the link dead and ask the shell to drop it."""
        self._close_reason = reason
        self.heartbeat.stop()
        log.warning("%s: %s, dropping the connection", self.config.name, reason)
        self._actions.append(Close(1011, reason, True))

    # -- frames -----------------------------------------------------------------------------

    def receive(self, payload: bytes | memoryview | str, now: float) -> list[Action] | None:
        """A text frame arrived. Returns actions, or ``None`` when there is nothing to do.

        Data frames go to ``routes[topic]`` when the owner registered a handler for the topic,
        else to ``on_data`` (which may register one). Either may raise on bad content: the
        frame is then counted as a data error and dropped, and the connection carries on.
        """
        try:
            frame = decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            self.stats.decode_errors += 1
            self._log_bad("undecodable frame", payload)
            return None
        stats = self.stats
        stats.messages += 1
        stats.last_message_at = now
        topic = frame.topic
        if topic is not None:
            handler = self.routes.get(topic)
            try:
                if handler is None:
                    self.on_data(frame, now)
                else:
                    handler(frame, now)
            except Exception as exc:
                stats.data_errors += 1
                self._log_bad(f"bad data frame ({type(exc).__name__}: {exc})", payload)
        else:
            stats.control_messages += 1
            self._now = now
            self._on_control(frame, now)
        if self._actions:
            return self._flush()
        return None

    def _on_control(self, frame: Frame, now: float) -> None:
        kind = classify_frame(frame)
        if kind is FrameKind.PONG:
            rtt = self.heartbeat.on_pong(now)
            if rtt is not None:
                log.debug("%% %s pong rtt=%.1fms", self.config.name, rtt * 1000)
        elif kind is FrameKind.SERVER_PING:
            self._actions.append(Send(encode_pong()))
        elif kind is FrameKind.SUBSCRIBE_ACK or kind is FrameKind.UNSUBSCRIBE_ACK:
            op = "subscribe" if kind is FrameKind.SUBSCRIBE_ACK else "unsubscribe"
            result = self.subscriptions.on_ack(frame, op)
            for topic, status, reason in result.outcomes:
                self._emit_subscription(topic, status, reason)
            if result.retry:
                for payload in self.subscriptions.build("subscribe", result.retry, now):
                    self._actions.append(Send(payload))
        elif self.on_control is not None and kind in (FrameKind.AUTH_ACK, FrameKind.OP_RESPONSE):
            self.on_control(frame, kind, now)
        elif kind is FrameKind.ERROR:
            self.stats.server_errors += 1
            log.warning(
                "%s: server error reply: %.120s",
                self.config.name,
                frame.ret_msg or frame.retMsg or "?",
            )
        else:
            self.stats.unknown_frames += 1
            log.debug("%s: unhandled frame (%s)", self.config.name, kind.name)

    def _emit_subscription(self, topic: str, status: SubscriptionStatus, reason: str) -> None:
        if status is SubscriptionStatus.CONFIRMED:
            log.info("%s: subscribed %s", self.config.name, topic)
        elif status is SubscriptionStatus.REJECTED:
            log.error("%s: subscription to %s rejected: %s", self.config.name, topic, reason)
        else:
            log.info("%s: %s %s %s", self.config.name, topic, status.value, reason)
        self._actions.append(
            Emit(
                EventType.SUBSCRIPTION,
                SubscriptionEvent(self.config.name, topic, status, reason, self._now),
            )
        )

    def _log_bad(self, what: str, payload: bytes | memoryview | str) -> None:
        # At most one line per second: a flood of garbage must not flood the logs.
        if self._now - self._error_log_at < 1.0:
            return
        self._error_log_at = self._now
        text = (
            payload
            if isinstance(payload, str)
            else bytes(payload[:MAX_LOGGED_PAYLOAD]).decode("utf-8", "replace")
        )
        log.warning("%s: %s dropped: %.120s", self.config.name, what, text)

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str], now: float) -> list[Action]:
        """Want these topics (sent now if live, else on the next connect)."""
        self._now = now
        new = self.subscriptions.add(topics)
        if new and self.state is S.LIVE:
            for payload in self.subscriptions.build("subscribe", new, now):
                self._actions.append(Send(payload))
        return self._flush()

    def unsubscribe(self, topics: Iterable[str], now: float) -> list[Action]:
        """Stop wanting these topics."""
        self._now = now
        gone = self.subscriptions.discard(topics)
        if gone and self.state is S.LIVE:
            for payload in self.subscriptions.build("unsubscribe", gone, now):
                self._actions.append(Send(payload))
        else:
            for topic in gone:
                self._emit_subscription(topic, SubscriptionStatus.UNSUBSCRIBED, "")
        return self._flush()

    def resync(self, topic: str, reason: str, now: float) -> list[Action]:
        """Unsubscribe and resubscribe one topic to get a fresh snapshot (only that topic)."""
        self._now = now
        if self.state is not S.LIVE or self.subscriptions.status(topic) is None:
            return self._flush()
        self.subscriptions.topics[topic] = TopicStatus.PENDING
        for payload in self.subscriptions.build("unsubscribe", [topic], now, internal=True):
            self._actions.append(Send(payload))
        for payload in self.subscriptions.build("subscribe", [topic], now):
            self._actions.append(Send(payload))
        self._emit_subscription(topic, SubscriptionStatus.RESYNC, reason)
        return self._flush()
