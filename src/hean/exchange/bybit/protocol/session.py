r"""One Bybit V5 WebSocket connection's protocol logic, sans-I/O.

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
``http_<status>``, ``reset``, ``dns``, ``stop``, ``auth_timeout``, ``auth_failed:<reason>``.

Authenticated streams (private, trade)
--------------------------------------
Given an ``auth`` object (:class:`SessionAuth`, normally an
:class:`~hean.exchange.bybit.protocol.auth.Authenticator`), a session authenticates every
connection before using it::

    CONNECTING --connected--> AUTHENTICATING --ack ok--> LIVE (subscriptions sent)
                                   |  \--ack rejected--> AUTH_FAILED --retry due--> CONNECTING
                                   \--no ack in auth_timeout--> BACKOFF ("auth_timeout")

On ``connected`` it sends one clock ping (its pong carries the server time, so an expiry can be
explained by a measured clock offset) and then the auth frame built by ``auth.auth_request(now)``.
The session itself never holds a secret and never reads a clock. Subscriptions are sent only once
authenticated: after every reconnect it re-authenticates first, then resubscribes.

Auth-failure retry policy: a rejected auth closes the connection and moves to ``AUTH_FAILED``
(one ERROR log line saying what is wrong, an ``AUTH`` event and a ``CONNECTION_STATE`` event with
reason ``auth_failed:<reason>``). A *bad key* or *bad signature* is never retried automatically
(retrying cannot fix credentials): the connection waits in ``AUTH_FAILED`` until the owner
calls ``start()`` (the facade's ``connect()``) again. Any other rejection (expired / clock skew /
unknown / too many sessions) is retried once per ``auth_retry_interval`` (default 60 s), with
``expires`` corrected by the measured clock offset. A ``repeat auth`` reply means the connection
is already authenticated and counts as success.

Gaps: with ``report_gaps`` every topic that was confirmed when a connection was lost yields one
:class:`~hean.core.events.GapEvent` when it is confirmed again on a later connection (saying when
it went down, when it came back, and why), so the owner can reconcile through REST.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import msgspec

from hean.core.events import (
    AuthEvent,
    ConnectionStateEvent,
    EventType,
    GapEvent,
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
    server_time_ms,
)
from hean.exchange.bybit.protocol.codec import (
    classify as classify_frame,
)
from hean.exchange.bybit.protocol.heartbeat import Heartbeat, HeartbeatPolicy
from hean.exchange.bybit.protocol.subscriptions import SubscriptionRegistry, TopicStatus

if TYPE_CHECKING:
    from hean.exchange.bybit.protocol.auth import AuthFailure

__all__ = [
    "Action",
    "Close",
    "Connect",
    "Emit",
    "Send",
    "Session",
    "SessionAuth",
    "SessionConfig",
    "SessionStats",
    "SessionTimer",
    "with_max_active_time",
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
    auth_timeout: float = 10.0
    """Seconds to wait for the auth ack before dropping the connection (``auth_timeout``)."""
    auth_retry_interval: float = 60.0
    """Minimum seconds between auth attempts after a retryable rejection."""
    ping_req_id: bool = True
    """Send ``req_id`` in heartbeat pings (the trade stream's docs show a bare ``op: ping``)."""
    report_gaps: bool = False
    """Emit a :class:`~hean.core.events.GapEvent` per topic when it comes back after a loss."""

    def __post_init__(self) -> None:
        if not self.ack_timeout > 0:
            raise ValueError(f"ack_timeout must be > 0, got {self.ack_timeout!r}")
        if not self.auth_timeout > 0:
            raise ValueError(f"auth_timeout must be > 0, got {self.auth_timeout!r}")
        if not self.auth_retry_interval > 0:
            raise ValueError(f"auth_retry_interval must be > 0, got {self.auth_retry_interval!r}")


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
    drops: int = 0
    """Times a live connection was lost (not by :meth:`Session.stop`): failed attempts and
    connections refused at authentication are not drops."""
    last_message_at: float | None = None
    live_since: float | None = None
    last_disconnect_reason: str = ""
    disconnect_reasons: dict[str, int] = field(default_factory=dict)
    auth_attempts: int = 0
    auth_failures: int = 0
    authenticated_at: float | None = None
    """When the current connection was authenticated (``None`` when not)."""
    gaps: int = 0
    """Gap events emitted (topics that came back after a loss)."""


class SessionAuth(Protocol):
    """What a session needs to authenticate (see :class:`~.auth.Authenticator`)."""

    def auth_request(self, now: float) -> bytes:
        """The auth frame to send on a fresh connection."""
        ...

    def auth_result(self, frame: Frame, now: float) -> AuthFailure | None:
        """``None`` when the ack says authenticated, else the failure."""
        ...

    def on_server_time(self, server_ms: int, now: float, rtt: float) -> None:
        """A pong carried the server time (``rtt`` = ping round trip, seconds)."""
        ...


class SessionTimer(Protocol):
    """Extra deadlines the shell's timer should honour (e.g. trade request timeouts)."""

    def next_deadline(self) -> float | None: ...

    def tick(self, now: float) -> None: ...


_MAX_ACTIVE_RE = re.compile(r"^(\d+)([sm])$")


def with_max_active_time(url: str, max_active_time: str | float | None) -> str:
    """``url`` with Bybit's ``max_active_time`` query parameter (private and trade streams).

    Args:
        url: the endpoint URL.
        max_active_time: ``None`` (leave the URL alone: Bybit's default is 10 minutes), seconds
            as a number, or Bybit's form ``"30s"`` ... ``"600s"`` / ``"1m"`` ... ``"10m"``.

    Raises:
        ValueError: outside 30 s ... 600 s, or not in a form Bybit accepts.
    """
    if max_active_time is None:
        return url
    if isinstance(max_active_time, bool):
        raise ValueError("max_active_time must be seconds or a string like '30s' / '1m'")
    if isinstance(max_active_time, int | float):
        seconds = float(max_active_time)
        if seconds != int(seconds):
            raise ValueError(f"max_active_time must be whole seconds, got {max_active_time!r}")
        value = f"{int(seconds)}s"
    else:
        value = str(max_active_time).strip()
        match = _MAX_ACTIVE_RE.match(value)
        if match is None:
            raise ValueError(
                f"max_active_time must look like '30s' ... '600s' or '1m' ... '10m', "
                f"got {max_active_time!r}"
            )
        seconds = int(match.group(1)) * (60 if match.group(2) == "m" else 1)
    if not 30 <= seconds <= 600:
        raise ValueError(f"max_active_time must be between 30 s and 600 s, got {value}")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}max_active_time={value}"


class Session:
    """Protocol state of one connection. See the module docstring.

    Args:
        config: connection settings.
        on_data: called with ``(frame, now)`` for every data frame (``topic`` present). It must
            not raise for bad content; if it does, the frame is counted as a data error and
            dropped, and the connection carries on.
        rng: random source for backoff jitter (seed it in tests).
        auth: makes this an authenticated stream (see the module docstring); ``None`` for
            public streams.
        wall_ms: maps a monotonic ``now`` to Unix ms, for the wall times in gap events (given
            by the shell; the session reads no clock). ``None``: those fields are ``None``.
    """

    def __init__(
        self,
        config: SessionConfig,
        on_data: Callable[[Frame, float], None],
        *,
        rng: random.Random | None = None,
        auth: SessionAuth | None = None,
        wall_ms: Callable[[float], int] | None = None,
    ) -> None:
        self.config = config
        self.on_data = on_data
        self.routes: dict[str, Callable[[Frame, float], object]] = {}
        """Per-topic data handlers (the fast path); topics not here go to ``on_data``."""
        self.on_control: Callable[[Frame, FrameKind, float], None] | None = None
        """Optional hook for control frames this class does not handle (auth acks when no
        ``auth`` is given, trade responses when ``on_response`` is not set)."""
        self.on_response: Callable[[Frame, bytes | memoryview | str, float], None] | None = None
        """Optional hook for trade-stream responses, given the raw payload too (for fields the
        generic :class:`Frame` does not keep, such as ``header`` and ``retExtInfo``)."""
        self.timers: list[SessionTimer] = []
        """Extra deadlines merged into :meth:`next_deadline` and ticked by :meth:`tick`."""
        self.auth = auth
        self.wall_ms = wall_ms
        self.auth_deadline: float | None = None
        self.last_auth_failure: AuthFailure | None = None
        self.socket_open = False
        """Whether a socket is open (connected and not yet reported closed)."""
        self._gaps: dict[str, tuple[float, str, float | None]] = {}
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
        """Begin connecting (from IDLE, or CLOSED for an explicit restart).

        From ``AUTH_FAILED`` this is the owner's explicit retry: it connects now (or as soon
        as the failed socket has closed), whatever the retry policy says.
        """
        self._now = now
        if self.state in (S.IDLE, S.CLOSED):
            self._close_reason = None
            self.lifecycle.to(S.CONNECTING, "start")
            self._actions.append(Connect(self.config.url))
        elif self.state is S.AUTH_FAILED:
            self.reconnect_at = now
            if not self.socket_open:
                self._reconnect_after_auth_failure("restart after auth failure")
        return self._flush()

    def connected(self, now: float) -> list[Action]:
        """The WebSocket handshake completed."""
        self._now = now
        self.socket_open = True
        if self.state is not S.CONNECTING:
            # stop() won while we were connecting: close what just opened.
            self._actions.append(Close(1000, "stop", False))
            return self._flush()
        self.stats.connects += 1
        self._close_reason = None
        # Accepted: the venue is reachable, whatever happens to this connection next. The
        # breaker counts refused attempts only; short-lived connections are paced by the
        # backoff, which is reset only once a connection has been stable (see backoff.py).
        self.breaker.record_success()
        self.heartbeat.start(now)
        log.info("connected to %s (%s)", self.config.url, self.config.name)
        if self.auth is None:
            self._go_live(now, "connected")
            return self._flush()
        self.lifecycle.to(S.AUTHENTICATING, "connected")
        # A clock ping first: its pong (answered before the auth ack) carries the server time,
        # so a rejected `expires` can be explained by a measured offset.
        hb = self.heartbeat
        hb.on_ping_sent(now)
        self._actions.append(Send(self._ping_payload()))
        self.stats.auth_attempts += 1
        self.auth_deadline = now + self.config.auth_timeout
        self._actions.append(Send(self.auth.auth_request(now)))
        return self._flush()

    def _go_live(self, now: float, reason: str) -> None:
        self.stats.live_since = now
        if self.auth is not None:
            self.stats.authenticated_at = now
        self.lifecycle.to(S.LIVE, reason)
        topics = self.subscriptions.wanted()
        for payload in self.subscriptions.build("subscribe", topics, now):
            self._actions.append(Send(payload))

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
        self.socket_open = False
        state = self.state
        if state is S.STOPPING:
            self.lifecycle.to(S.CLOSED, "stopped")
            return self._flush()
        if state not in (S.LIVE, S.AUTHENTICATING, S.CONNECTING):
            return self._flush()  # already handled (duplicate notification, or auth failed)
        reason = self._close_reason or reason
        self._close_reason = None
        self.heartbeat.stop()
        self.auth_deadline = None
        self.stats.authenticated_at = None
        if state is S.LIVE:
            self.stats.drops += 1
            if self.config.report_gaps:
                self._record_gaps(reason, now)
        self.subscriptions.on_disconnect()
        live_since = self.stats.live_since
        if live_since is not None and now - live_since >= self.config.backoff.stable_after:
            self.backoff.reset()
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
        self.auth_deadline = None
        self.stats.authenticated_at = None
        if state in (S.IDLE, S.BACKOFF) or (state is S.AUTH_FAILED and not self.socket_open):
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

    def drop(self, reason: str, now: float) -> list[Action]:
        """Drop the current connection and reconnect (e.g. the trade service is restarting).

        Only when connected (``AUTHENTICATING`` or ``LIVE``); ``reason`` becomes the disconnect
        reason in events and stats.
        """
        self._now = now
        if self.state in (S.LIVE, S.AUTHENTICATING) and self._close_reason is None:
            self._fail(reason)
        return self._flush()

    # -- auth -------------------------------------------------------------------------------

    def _on_auth_ack(self, frame: Frame, now: float) -> None:
        auth = self.auth
        if auth is None or self.state is not S.AUTHENTICATING:
            log.debug("%s: auth ack ignored in state %s", self.config.name, self.state.value)
            return
        failure = auth.auth_result(frame, now)
        self.auth_deadline = None
        if failure is not None and failure.reason == "repeat_auth":
            log.warning("%s: %s; continuing", self.config.name, failure.message)
            failure = None
        if failure is None:
            self.last_auth_failure = None
            log.info("%s: authenticated", self.config.name)
            self._emit_auth(True, "ok", "authenticated", None, None)
            self._go_live(now, "authenticated")
            return
        self._auth_failed(failure, now)

    def _auth_failed(self, failure: AuthFailure, now: float) -> None:
        self.stats.auth_failures += 1
        self.last_auth_failure = failure
        self.heartbeat.stop()
        self.subscriptions.on_disconnect()
        retry_in: float | None = None
        if failure.retryable:
            retry_in = self.config.auth_retry_interval
            self.reconnect_at = now + retry_in
            what = f"retrying in {retry_in:g} s"
        else:
            self.reconnect_at = None
            what = "not retrying: fix the credentials, then connect() again"
        log.error("%s: %s; %s", self.config.name, failure.message, what)
        self._emit_auth(False, str(failure.reason), failure.message, failure, retry_in)
        reason = f"auth_failed:{failure.reason}"
        self.stats.last_disconnect_reason = reason
        counts = self.stats.disconnect_reasons
        counts[reason] = counts.get(reason, 0) + 1
        self._actions.append(Close(1000, "auth failed", False))
        self.lifecycle.to(S.AUTH_FAILED, reason)

    def _reconnect_after_auth_failure(self, reason: str) -> None:
        self.reconnect_at = None
        self._close_reason = None
        self.lifecycle.to(S.CONNECTING, reason)
        self._actions.append(Connect(self.config.url))

    def _emit_auth(
        self,
        ok: bool,
        reason: str,
        message: str,
        failure: AuthFailure | None,
        retry_in: float | None,
    ) -> None:
        self._actions.append(
            Emit(
                EventType.AUTH,
                AuthEvent(
                    connection=self.config.name,
                    ok=ok,
                    reason=reason,
                    message=message,
                    ret_code=None if failure is None else failure.ret_code,
                    ret_msg=None if failure is None else failure.ret_msg,
                    clock_offset_ms=None if failure is None else failure.offset_ms,
                    retry_in=retry_in,
                    attempt=self.stats.auth_attempts,
                    time=self._now,
                ),
            )
        )

    # -- gaps -------------------------------------------------------------------------------

    def _record_gaps(self, reason: str, now: float) -> None:
        last_seen = self.stats.last_message_at
        for topic, status in self.subscriptions.topics.items():
            if status is TopicStatus.CONFIRMED and topic not in self._gaps:
                self._gaps[topic] = (now, reason, last_seen)

    def _emit_gap(self, topic: str, now: float) -> None:
        entry = self._gaps.pop(topic, None)
        if entry is None:
            return
        down_since, reason, last_seen = entry
        wall = self.wall_ms
        duration = now - down_since
        self.stats.gaps += 1
        log.warning(
            "%s: %s was down for %.2fs (%s): reconcile missed updates",
            self.config.name,
            topic,
            duration,
            reason,
        )
        self._actions.append(
            Emit(
                EventType.GAP,
                GapEvent(
                    connection=self.config.name,
                    topic=topic,
                    down_since=down_since,
                    up_at=now,
                    duration=duration,
                    reason=reason,
                    last_seen=last_seen,
                    down_since_wall_ms=None if wall is None else wall(down_since),
                    up_at_wall_ms=None if wall is None else wall(now),
                ),
            )
        )

    @property
    def pending_gaps(self) -> dict[str, float]:
        """Topics that were lost and not yet confirmed again: topic -> down since."""
        return {topic: entry[0] for topic, entry in self._gaps.items()}

    # -- timers -----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called (monotonic seconds), or ``None``."""
        deadline = self._own_deadline()
        for timer in self.timers:
            other = timer.next_deadline()
            if other is not None and (deadline is None or other < deadline):
                deadline = other
        return deadline

    def _own_deadline(self) -> float | None:
        state = self.state
        if state is S.LIVE:
            deadline = self.heartbeat.next_deadline()
            oldest = self.subscriptions.oldest_pending_at()
            if oldest is not None:
                ack_deadline = oldest + self.config.ack_timeout
                deadline = ack_deadline if deadline is None else min(deadline, ack_deadline)
            return deadline
        if state is S.AUTHENTICATING:
            deadline = self.heartbeat.next_deadline()
            auth = self.auth_deadline
            if auth is not None:
                deadline = auth if deadline is None else min(deadline, auth)
            return deadline
        if state is S.BACKOFF:
            return self.reconnect_at
        if state is S.AUTH_FAILED and not self.socket_open:
            return self.reconnect_at
        return None

    def tick(self, now: float) -> list[Action]:
        """Time has passed: send pings, detect a dead link, reconnect when the delay is over."""
        self._now = now
        state = self.state
        if state is S.LIVE or state is S.AUTHENTICATING:
            hb = self.heartbeat
            if hb.expired(now):
                self._fail("heartbeat_timeout")
            elif (
                state is S.AUTHENTICATING
                and self.auth_deadline is not None
                and now >= self.auth_deadline
            ):
                self.auth_deadline = None
                self._fail("auth_timeout")
            elif hb.ping_due(now):
                hb.on_ping_sent(now)
                self._actions.append(Send(self._ping_payload()))
        if state is S.LIVE:
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
        elif (
            state is S.AUTH_FAILED
            and not self.socket_open
            and self.reconnect_at is not None
            and now >= self.reconnect_at
        ):
            self._reconnect_after_auth_failure("auth retry")
        for timer in self.timers:
            timer.tick(now)
        return self._flush()

    def _ping_payload(self) -> bytes:
        if self.config.ping_req_id:
            return encode_ping(f"hb-{self.heartbeat.pings_sent}")
        return encode_ping(None)

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
            try:
                self.routes.get(topic, self.on_data)(frame, now)
            except Exception as exc:
                stats.data_errors += 1
                self._log_bad(f"bad data frame ({type(exc).__name__}: {exc})", payload)
        else:
            stats.control_messages += 1
            self._now = now
            self._on_control(frame, payload, now)
        if self._actions:
            return self._flush()
        return None

    def _on_control(self, frame: Frame, payload: bytes | memoryview | str, now: float) -> None:
        kind = classify_frame(frame)
        if kind is FrameKind.PONG:
            rtt = self.heartbeat.on_pong(now)
            if rtt is not None:
                log.debug("%% %s pong rtt=%.1fms", self.config.name, rtt * 1000)
                if self.auth is not None:
                    server = server_time_ms(frame)
                    if server is not None:
                        self.auth.on_server_time(server, now, rtt)
        elif kind is FrameKind.SERVER_PING:
            self._actions.append(Send(encode_pong()))
        elif kind is FrameKind.SUBSCRIBE_ACK or kind is FrameKind.UNSUBSCRIBE_ACK:
            op = "subscribe" if kind is FrameKind.SUBSCRIBE_ACK else "unsubscribe"
            result = self.subscriptions.on_ack(frame, op)
            for topic, status, reason in result.outcomes:
                self._emit_subscription(topic, status, reason)
            if result.retry:
                for payload_out in self.subscriptions.build("subscribe", result.retry, now):
                    self._actions.append(Send(payload_out))
        elif kind is FrameKind.AUTH_ACK and self.auth is not None:
            self._on_auth_ack(frame, now)
        elif kind is FrameKind.OP_RESPONSE and self.on_response is not None:
            self.on_response(frame, payload, now)
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
        if status is SubscriptionStatus.CONFIRMED and self._gaps:
            self._emit_gap(topic, self._now)
        elif status is SubscriptionStatus.UNSUBSCRIBED:
            self._gaps.pop(topic, None)

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
        for topic in gone:
            self._gaps.pop(topic, None)
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
