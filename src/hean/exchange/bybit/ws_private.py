"""``BybitPrivateWebSocket``: the authenticated account stream (orders, executions, positions,
wallet).

Usage::

    bus = EventBus()
    await bus.start()
    ws = BybitPrivateWebSocket(bus, api_key=key, api_secret=secret, testnet=True)
    ws.subscribe_events(on_account_event)          # NEVER_DROP subscriptions, see below
    await ws.connect()                              # connected *and* authenticated
    await ws.subscribe(["order", "execution", "position", "wallet"])
    ...
    ws.auth_state                                   # authenticated? last failure? clock offset
    ws.stats
    await ws.disconnect()

Every (re)connection authenticates first and resubscribes only once authenticated
(:mod:`hean.exchange.bybit.protocol.session`). A JSON ping goes out every ``ping_interval``
seconds and a pong later than ``pong_timeout`` means the link is dead.

Events (see :mod:`hean.core.events`): ``ORDER_UPDATE``, ``EXECUTION`` (``execution`` and
``execution.fast``), ``POSITION_UPDATE``, ``WALLET_UPDATE``; ``AUTH`` for every auth answer;
``CONNECTION_STATE`` and ``SUBSCRIPTION`` as for public streams; and ``GAP``: after a reconnect,
one :class:`~hean.core.events.GapEvent` per stream that was live before, once it is confirmed
again, saying for how long it was down. **Bybit does not replay what was missed and sends no
snapshot on (re)subscribe**: on a gap, reconcile through REST (open orders, executions since
``down_since_wall_ms``, positions, wallet).

**Never drop private events.** A consumer that misses an order update has a wrong view of its
account. Subscribe with :attr:`~hean.core.bus.OverflowPolicy.NEVER_DROP` (or a sync callback);
:meth:`BybitPrivateWebSocket.subscribe_events` does exactly that for every private event type.

Secrets: the key and secret are held as :class:`~hean.core.secrets.Secret` (masked in every
repr), and ``connect()`` installs :func:`~hean.core.secrets.install_redaction` so neither they
nor an auth signature can reach a log handler through the ``hean`` or ``picows`` loggers, even at
DEBUG.

Auth failures (see the session module for the full policy): a bad key or signature makes
``connect()`` raise :class:`~hean.exchange.bybit.protocol.auth.AuthError` at once and is not
retried until ``connect()`` is called again; an expired request / clock skew is retried once per
``auth_retry_interval`` with ``expires`` corrected by the measured clock offset, and
``connect()`` keeps waiting (up to its ``timeout``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from hean.core.clock import Clock, SystemClock, wall_offset
from hean.core.config import Settings
from hean.core.events import PRIVATE_EVENT_TYPES, EventType
from hean.core.lifecycle import ConnectionState
from hean.core.secrets import Secret, install_redaction
from hean.core.waits import wait_set
from hean.exchange.bybit.endpoints import private_url
from hean.exchange.bybit.protocol.auth import (
    DEFAULT_WINDOW_MS,
    Authenticator,
    AuthError,
    AuthFailure,
    ClockOffset,
)
from hean.exchange.bybit.protocol.backoff import BackoffPolicy
from hean.exchange.bybit.protocol.codec import Frame
from hean.exchange.bybit.protocol.heartbeat import HeartbeatPolicy
from hean.exchange.bybit.protocol.session import Session, SessionConfig, with_max_active_time
from hean.exchange.bybit.state.private import PRIVATE_STREAMS, private_event, stream_of
from hean.exchange.bybit.transport import DEFAULT_MAX_MESSAGE, WsConnection
from hean.exchange.bybit.ws_public import (
    ConnectError,
    ConnectionStats,
    EventSink,
    connection_stats,
)

__all__ = ["AuthState", "AuthStatus", "BybitPrivateWebSocket", "validate_private_topics"]

log = logging.getLogger("hean.private")

AuthStatus = Literal["not_authenticated", "authenticating", "authenticated", "failed"]


@dataclass(frozen=True, slots=True)
class AuthState:
    """Where a private or trade connection stands with authentication."""

    status: AuthStatus
    attempts: int
    """Auth frames sent so far (all connections)."""
    failures: int
    """Auth rejections so far."""
    last_failure: AuthFailure | None
    """The most recent rejection (cleared by a successful auth)."""
    retry_at: float | None
    """Monotonic time of the automatic retry after a rejection (``None``: none planned)."""
    clock_offset_ms: float | None
    """Measured ``server - local`` clock offset (median of recent samples)."""
    authenticated_for: float | None
    """Seconds since the current connection authenticated."""


def validate_private_topics(topics: Iterable[str], existing: Iterable[str] = ()) -> list[str]:
    """Check private topics; returns them as a list.

    Bybit refuses the all-in-one and the categorised form of one stream (``order`` and
    ``order.linear``) in the same subscribe request (protocol.md §3.5). All wanted topics are
    sent again together after every reconnect, so the rule is applied to everything wanted on
    the connection (``existing`` plus ``topics``).

    Raises:
        ValueError: an unknown topic, or both forms of one stream.
    """
    if isinstance(topics, str):
        topics = [topics]
    out = []
    for topic in topics:
        if not isinstance(topic, str) or not topic.strip():
            raise ValueError(f"bad private topic {topic!r}")
        topic = topic.strip()
        if stream_of(topic) is None:
            known = ", ".join(
                [*PRIVATE_STREAMS]
                + [f"{s}.{c}" for s, cats in PRIVATE_STREAMS.items() for c in cats]
            )
            raise ValueError(f"unknown private topic {topic!r}; known topics: {known}")
        out.append(topic)
    forms: dict[str, set[bool]] = {}
    for topic in [*existing, *out]:
        stream = stream_of(topic)
        if stream is not None:
            forms.setdefault(stream, set()).add(topic == stream)
    mixed = sorted(s for s, kinds in forms.items() if len(kinds) == 2)
    if mixed:
        raise ValueError(
            f"cannot subscribe both the all-in-one and a categorised form of {', '.join(mixed)} "
            "on one connection: Bybit rejects both in one request, and every topic is "
            "resubscribed in one request after a reconnect"
        )
    return out


class AuthenticatedStream:
    """What the private and trade clients share: credentials, auth, connection, lifecycle.

    Not for direct use; see :class:`BybitPrivateWebSocket` and
    :class:`~hean.exchange.bybit.ws_trade.BybitTradeWebSocket`.
    """

    kind: ClassVar[Literal["private", "trade"]] = "private"

    def __init__(
        self,
        bus: EventSink | None,
        *,
        api_key: Secret | str,
        api_secret: Secret | str,
        url: str,
        clock: Clock | None,
        ping_interval: float,
        pong_timeout: float,
        max_active_time: str | float | None,
        backoff: BackoffPolicy | None,
        connect_timeout: float,
        ack_timeout: float,
        auth_timeout: float,
        auth_window_ms: int,
        auth_retry_interval: float,
        max_message_size: int,
        ssl_context: ssl.SSLContext | None,
        name: str,
        rng: random.Random | None,
        ping_req_id: bool,
        report_gaps: bool,
        clock_offset: ClockOffset | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must start with ws:// or wss://, got {url!r}")
        self._key = Secret.api_key(api_key)
        self._secret = Secret.of(api_secret)
        self.url = with_max_active_time(url, max_active_time)
        self.bus = bus
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.clock_offset = clock_offset if clock_offset is not None else ClockOffset()
        """``server - local`` clock offset; pass one ``ClockOffset`` to several clients (REST,
        private, trade) to share what each of them measures."""
        self.authenticator = Authenticator(
            self._key,
            self._secret,
            wall_ms=self._wall_now,
            window_ms=auth_window_ms,
            stream=self.kind,
            offset=self.clock_offset,
        )
        config = SessionConfig(
            name=name,
            url=self.url,
            heartbeat=HeartbeatPolicy(ping_interval, pong_timeout),
            backoff=backoff if backoff is not None else BackoffPolicy(),
            ack_timeout=ack_timeout,
            auth_timeout=auth_timeout,
            auth_retry_interval=auth_retry_interval,
            ping_req_id=ping_req_id,
            report_gaps=report_gaps,
        )
        self.session = Session(
            config, self._on_data, rng=rng, auth=self.authenticator, wall_ms=self._wall_ms
        )
        self.connection = WsConnection(
            self.session,
            self._publish_control,
            self.clock,
            connect_timeout=connect_timeout,
            max_message_size=max_message_size,
            ssl_context=ssl_context,
        )
        self._wall_offset = 0.0
        self._changed = asyncio.Event()
        self._sync_wall_clock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, url={self.url!r}, "
            f"api_key={self._key.masked!r}, state={self.state.value!r})"
        )

    @property
    def name(self) -> str:
        return self.session.config.name

    @property
    def state(self) -> ConnectionState:
        return self.session.state

    @property
    def api_key(self) -> Secret:
        """The API key (masked when printed)."""
        return self._key

    # -- lifecycle --------------------------------------------------------------------------

    async def connect(self, timeout: float | None = None) -> None:
        """Connect, authenticate, and wait until live.

        Args:
            timeout: give up after this many seconds: the connection is stopped and
                :class:`~hean.exchange.bybit.ws_public.ConnectError` raised with the last
                failure (an auth rejection's message included). ``None`` waits as long as it
                takes (retrying with backoff, and retryable auth failures once per
                ``auth_retry_interval``).

        Raises:
            AuthError: the key or signature was rejected (not retried; the connection waits in
                ``AUTH_FAILED`` until ``connect()`` is called again or ``disconnect()``).
            ConnectError: not live within ``timeout``, or disconnected meanwhile.
        """
        install_redaction([self._key, self._secret])
        self._sync_wall_clock()
        if self.session.state is ConnectionState.AUTH_FAILED:
            self.connection.run_actions(self.session.start(self.clock.monotonic()))
        else:
            self.connection.start()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        failure_seen = self.session.last_auth_failure
        while True:
            self._changed.clear()
            state = self.session.state
            if state is ConnectionState.LIVE:
                return
            failure = self.session.last_auth_failure
            if (
                state is ConnectionState.AUTH_FAILED
                and failure is not None
                and not failure.retryable
                and failure is not failure_seen
            ):
                raise AuthError(failure)
            if state is ConnectionState.CLOSED or state is ConnectionState.STOPPING:
                raise ConnectError(f"{self.name}: disconnected while connecting")
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            if not await wait_set(self._changed, remaining):
                break
        failure = self.session.last_auth_failure
        reason = (
            failure.message
            if failure is not None
            else self.session.stats.last_disconnect_reason or "no answer"
        )
        attempts = self.session.stats.reconnects + 1
        await self.disconnect()
        raise ConnectError(
            f"could not connect to {self.url} within {timeout:g}s "
            f"({attempts} attempt(s), last failure: {reason})"
        )

    async def disconnect(self) -> None:
        """Close the connection for good (wins over any pending reconnect or auth retry)."""
        state = self.session.state
        if state is ConnectionState.IDLE:
            self.connection.run_actions(self.session.stop(self.clock.monotonic()))
            return
        if state is ConnectionState.CLOSED:
            return
        await self.connection.stop()

    async def __aenter__(self) -> Self:
        """``async with client:`` connects (waiting until live, retrying with backoff; bound
        it with ``asyncio.timeout`` if needed) and disconnects on the way out, whatever
        happened inside."""
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    def recycle(self, reason: str = "recycled") -> None:
        """Drop the connection now (if connected) and reconnect through the normal backoff,
        re-authenticating and resubscribing; ``reason`` becomes the disconnect reason."""
        self.connection.run_actions(self.session.drop(reason, self.clock.monotonic()))

    async def wait_live(self, timeout: float | None = None) -> None:
        """Wait until live (connected and authenticated); raises ``TimeoutError``."""

        async def _wait() -> None:
            while self.session.state is not ConnectionState.LIVE:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    # -- state ------------------------------------------------------------------------------

    @property
    def auth_state(self) -> AuthState:
        session = self.session
        state = session.state
        status: AuthStatus
        if state is ConnectionState.LIVE:
            status = "authenticated"
        elif state is ConnectionState.AUTHENTICATING:
            status = "authenticating"
        elif state is ConnectionState.AUTH_FAILED:
            status = "failed"
        else:
            status = "not_authenticated"
        at = session.stats.authenticated_at
        return AuthState(
            status=status,
            attempts=session.stats.auth_attempts,
            failures=session.stats.auth_failures,
            last_failure=session.last_auth_failure,
            retry_at=session.reconnect_at if state is ConnectionState.AUTH_FAILED else None,
            clock_offset_ms=self.clock_offset.estimate_ms,
            authenticated_for=None if at is None else self.clock.monotonic() - at,
        )

    @property
    def stats(self) -> ConnectionStats:
        return connection_stats(
            self.session, self.name, self.url, self.clock.monotonic(), self._unexpected_topics()
        )

    # -- internals --------------------------------------------------------------------------

    def _unexpected_topics(self) -> int:
        return 0

    def _wall_now(self, now: float) -> int:
        """Wall ms at monotonic ``now``, read fresh from the clock (auth ``expires``, trade
        timestamps, clock-offset samples: where a stale offset would matter)."""
        clock = self.clock
        return clock.wall_ms() + round((now - clock.monotonic()) * 1000.0)

    def _wall_ms(self, now: float) -> int:
        """Wall ms at monotonic ``now`` from the cached offset (hot path: received frames)."""
        return int((now + self._wall_offset) * 1000.0)

    def _sync_wall_clock(self) -> None:
        self._wall_offset = wall_offset(self.clock)  # to the clock's precision

    def _publish(self, event_type: EventType, event: Any) -> None:
        if self.bus is not None:
            self.bus.publish(event_type, event)

    def _publish_control(self, event_type: EventType, event: Any) -> None:
        if event_type is EventType.CONNECTION_STATE:
            self._sync_wall_clock()
            self._on_state(event)
            self._changed.set()
        self._publish(event_type, event)

    def _on_state(self, event: Any) -> None:
        """Hook for subclasses: a ``ConnectionStateEvent`` (before it is published)."""

    def _on_data(self, frame: Frame, now: float) -> None:
        raise NotImplementedError


class BybitPrivateWebSocket(AuthenticatedStream):
    """The private account stream (``/v5/private``).

    Args:
        bus: where events go (an :class:`~hean.core.bus.EventBus`).
        api_key: the API key (``str`` or :class:`~hean.core.secrets.Secret`).
        api_secret: the API secret (``str`` or :class:`~hean.core.secrets.Secret`).
        testnet: use the testnet host (ignored when ``url`` is given).
        url: any endpoint URL (mainnet, demo ``wss://stream-demo.bybit.com/v5/private``,
            regional hosts, the emulator).
        clock: time source (inject a fake in tests).
        ping_interval: seconds between JSON pings (Bybit recommends 20).
        pong_timeout: seconds a pong may be late before the link is declared dead.
        max_active_time: Bybit's ``max_active_time`` URL parameter (``"30s"`` ... ``"600s"``,
            ``"1m"`` ... ``"10m"``, or seconds); ``None`` keeps Bybit's 10-minute default.
        backoff: reconnect timing and circuit breaker settings.
        connect_timeout: seconds for the whole opening handshake.
        ack_timeout: seconds a subscribe may wait for its ack before a TIMEOUT event.
        auth_timeout: seconds to wait for the auth ack before reconnecting (``auth_timeout``).
        auth_window_ms: ``expires`` is this many ms after (server) now.
        auth_retry_interval: seconds between auth retries after a retryable rejection.
        max_message_size: largest accepted message in bytes.
        ssl_context: TLS settings for ``wss://`` (always verifying; pass one with your own CA).
        name: label for logs/events/metrics (default ``private``).
        rng: random source for jitter.
        clock_offset: a :class:`~hean.exchange.bybit.protocol.auth.ClockOffset` shared with
            other clients (e.g. ``BybitRestClient.clock_offset``, measured from
            ``/v5/market/time``); auth ``expires`` is corrected by its estimate. Default: a
            new one of this connection's own (fed by its pongs).
    """

    kind: ClassVar[Literal["private", "trade"]] = "private"

    def __init__(
        self,
        bus: EventSink,
        *,
        api_key: Secret | str,
        api_secret: Secret | str,
        testnet: bool = True,
        url: str | None = None,
        clock: Clock | None = None,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        max_active_time: str | float | None = None,
        backoff: BackoffPolicy | None = None,
        connect_timeout: float = 10.0,
        ack_timeout: float = 10.0,
        auth_timeout: float = 10.0,
        auth_window_ms: int = DEFAULT_WINDOW_MS,
        auth_retry_interval: float = 60.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE,
        ssl_context: ssl.SSLContext | None = None,
        name: str | None = None,
        rng: random.Random | None = None,
        clock_offset: ClockOffset | None = None,
    ) -> None:
        super().__init__(
            bus,
            api_key=api_key,
            api_secret=api_secret,
            url=url if url is not None else private_url(testnet=testnet),
            clock=clock,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            max_active_time=max_active_time,
            backoff=backoff,
            connect_timeout=connect_timeout,
            ack_timeout=ack_timeout,
            auth_timeout=auth_timeout,
            auth_window_ms=auth_window_ms,
            auth_retry_interval=auth_retry_interval,
            max_message_size=max_message_size,
            ssl_context=ssl_context,
            name=name or "private",
            rng=rng,
            ping_req_id=True,
            report_gaps=True,
            clock_offset=clock_offset,
        )
        self._bus: EventSink = bus
        self.unexpected_topics = 0
        """Data frames for topics not subscribed (still decoded and published)."""
        self.undecoded = 0
        """Data frames of subscribed topics without a decoder (``greeks``, ``dcp.*``)."""
        self._publishers: dict[EventType, Callable[[Any], None]] = {}

    @classmethod
    def from_settings(
        cls, bus: EventSink, settings: Settings | None = None, **kwargs: Any
    ) -> BybitPrivateWebSocket:
        """A client with the credentials and environment of ``settings`` (default: read from
        the ``BYBIT_*`` environment); ``kwargs`` as for the constructor.

        Raises:
            ConfigError: the credentials are missing or invalid.
        """
        settings = settings if settings is not None else Settings()
        creds = settings.credentials()
        kwargs.setdefault("testnet", settings.testnet)
        return cls(bus, api_key=creds.api_key, api_secret=creds.api_secret, **kwargs)

    # -- subscriptions ----------------------------------------------------------------------

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Subscribe private topics (sent now if live, otherwise once authenticated; and again
        after every reconnect).

        Topics: ``order``, ``execution``, ``execution.fast``, ``position``, ``wallet``,
        ``greeks``, ``dcp.future`` / ``dcp.spot`` / ``dcp.option``, or a categorised form
        such as ``order.linear`` / ``execution.fast.spot`` / ``position.inverse``.

        Raises:
            ValueError: an unknown topic, or the all-in-one and categorised form of one stream
                together (Bybit rejects that; see :func:`validate_private_topics`).
        """
        wanted = validate_private_topics(topics, self.session.subscriptions.topics)
        self.connection.run_actions(self.session.subscribe(wanted, self.clock.monotonic()))

    async def unsubscribe(self, topics: Iterable[str]) -> None:
        """Stop wanting these topics."""
        if isinstance(topics, str):
            topics = [topics]
        self.connection.run_actions(self.session.unsubscribe(list(topics), self.clock.monotonic()))

    async def wait_subscribed(self, topics: Iterable[str], timeout: float = 10.0) -> dict[str, str]:
        """Wait until each topic is confirmed or rejected; returns topic -> status."""
        wanted = [topics] if isinstance(topics, str) else list(topics)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            statuses = {t: str(self.session.subscriptions.status(t)) for t in wanted}
            if all(s in ("confirmed", "rejected") for s in statuses.values()):
                return statuses
            if loop.time() >= deadline:
                raise TimeoutError(f"subscriptions not answered within {timeout:g}s: {statuses}")
            await asyncio.sleep(0.01)

    def subscribe_events(
        self,
        handler: Callable[[Any], Awaitable[None]],
        event_types: Sequence[EventType] = PRIVATE_EVENT_TYPES,
        *,
        maxsize: int | None = None,
        batch: bool = False,
        name: str | None = None,
    ) -> list[Any]:
        """Subscribe ``handler`` to private events with ``OverflowPolicy.NEVER_DROP``.

        A slow handler then builds a backlog (an ERROR alarm is logged past ``maxsize``) but
        never loses an order, execution, position, wallet or gap event.

        Args:
            handler: ``async def handler(event)`` (or, with ``batch=True``, a list of events).
            event_types: which events (default: orders, executions, positions, wallet, gaps).
            maxsize: backlog size that raises the alarm (default: the bus's default).
            batch: deliver bursts as lists.
            name: label for the bus's logs and stats.

        Returns:
            The bus subscriptions (one per event type).

        Raises:
            TypeError: the bus has no ``subscribe_async`` (use an :class:`EventBus`).
        """
        from hean.core.bus import OverflowPolicy

        subscribe_async = getattr(self._bus, "subscribe_async", None)
        if subscribe_async is None:
            raise TypeError("subscribe_events needs an EventBus (with subscribe_async)")
        label = name or getattr(handler, "__qualname__", "private-consumer")
        return [
            subscribe_async(
                event_type,
                handler,
                maxsize=maxsize,
                policy=OverflowPolicy.NEVER_DROP,
                batch=batch,
                name=f"{label}:{event_type.value}",
            )
            for event_type in event_types
        ]

    # -- internals --------------------------------------------------------------------------

    def _unexpected_topics(self) -> int:
        return self.unexpected_topics

    def _publisher(self, event_type: EventType) -> Callable[[Any], None]:
        publish = self._publishers.get(event_type)
        if publish is None:
            publisher = getattr(self._bus, "publisher", None)
            publish = (
                publisher(event_type)
                if publisher is not None
                else functools.partial(self._bus.publish, event_type)
            )
            self._publishers[event_type] = publish
        return publish

    def _on_data(self, frame: Frame, now: float) -> None:
        """Decode and publish a private data frame (raises ``ValueError`` on a bad message,
        which the session counts and drops)."""
        topic: str = frame.topic  # type: ignore[assignment]  # data frames have a topic
        wanted = topic in self.session.subscriptions.topics
        if not wanted:
            self.unexpected_topics += 1
        decoded = private_event(frame, self.name, now, self._wall_ms(now))
        if decoded is None:
            if wanted:
                self.undecoded += 1
            return
        event_type, event = decoded
        self._publisher(event_type)(event)
