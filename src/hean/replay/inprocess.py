"""In-process replay: a recording fed straight into the pipeline (session -> state -> bus).

::

    bus = EventBus(); await bus.start()
    bus.subscribe(EventType.TICK, on_tick)
    replay = Replay(["rec/hean-...-0001.rec.zst"], bus)
    stats = await replay.run()                # as fast as the CPU allows, deterministic
    replay.client("public/linear").ticker("BTCUSDT")

For every recorded public or private connection, a real client is built
(:class:`~hean.exchange.bybit.ws_public.BybitPublicWebSocket` /
:class:`~hean.exchange.bybit.ws_private.BybitPrivateWebSocket`, with the recorded heartbeat and
ack settings) on a :class:`~hean.replay.clock.ReplayClock`, and its socket is replaced by a
:class:`ReplayConnection`. The records then drive its sans-I/O session exactly as the socket did:

* ``connected`` / ``closed`` / ``connect_failed`` -> ``session.connected`` / ``disconnected`` /
  ``connect_failed`` at the recorded time (a reconnect happens when it happened live, whatever
  the replayed backoff drew);
* ``recv`` -> ``session.receive(payload, now)`` with ``now`` the recorded receive time;
* between records the session's own deadlines fire on the simulated clock (pings, a late pong,
  an ack that never came, book repairs), so staleness, heartbeat timeouts and gaps come out as
  they did live;
* ``send``: a recorded subscribe / unsubscribe the replayed client has not made itself is the
  user's action, made again at that time; each recorded request is paired with the replayed
  client's own request for the same topics, so acks match even if the ``req_id`` differs.

What the clients send goes nowhere. Trade-stream connections are not replayed (their answers
depend on requests a replay does not make); they are counted in ``stats.skipped_streams``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hean.core.events import EventType
from hean.core.lifecycle import ConnectionState
from hean.exchange.bybit.protocol.session import Action, Close, Emit, Send, Session
from hean.record.format import Record
from hean.record.reader import RecordingReader, StreamInfo
from hean.replay.clock import ReplayClock

__all__ = ["Replay", "ReplayConnection", "ReplayStats"]

log = logging.getLogger("hean.replay")

S = ConnectionState


class _Request(msgspec.Struct):
    op: str | None = None
    req_id: str | None = None
    args: list[Any] | None = None


_decode_request = msgspec.json.Decoder(_Request).decode


@dataclass(slots=True)
class ReplayStats:
    records: int = 0
    frames: int = 0
    """``recv`` records fed to sessions."""
    skipped_frames: int = 0
    """``recv`` records for a connection the replayed session had already closed."""
    streams: int = 0
    skipped_streams: list[str] = field(default_factory=list)
    lost: int = 0
    """Frames the recording itself says are missing (``lost`` records)."""
    truncated: list[str] = field(default_factory=list)
    """Files whose tail was cut (a crash while recording)."""
    start_ns: int = 0
    end_ns: int = 0

    @property
    def span(self) -> float:
        """Seconds of recording replayed."""
        return (self.end_ns - self.start_ns) / 1e9


class ReplayConnection:
    """Stands in for :class:`~hean.exchange.bybit.transport.WsConnection`: carries out a
    session's actions without a socket (sends are kept for matching, never sent)."""

    def __init__(self, session: Session, publish: Callable[[EventType, Any], None]) -> None:
        self.session = session
        self.publish = publish
        self.name = session.config.name
        self.is_open = False
        self.tap: Any = None
        self.transport: Any = None
        self.clock: ReplayClock | None = None
        self.unmatched: list[tuple[str, str, frozenset[str]]] = []
        """Replayed requests not yet paired with a recorded one: (op, req_id, topics)."""

    def _now(self) -> float:
        assert self.clock is not None
        return self.clock.monotonic()

    def start(self) -> None:
        if self.session.state in (S.IDLE, S.CLOSED):
            self.run_actions(self.session.start(self._now()))

    async def stop(self) -> None:
        self.run_actions(self.session.stop(self._now()))
        if self.is_open:
            self.is_open = False
            self.run_actions(self.session.disconnected("server_close:1000", self._now()))

    def run_actions(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Emit):
                self.publish(action.event_type, action.event)
            elif isinstance(action, Send):
                if self.is_open and b'subscribe"' in action.payload:
                    self._remember(action.payload)
            elif isinstance(action, Close) and self.is_open:
                self.is_open = False
                code = 1006 if action.abort else action.code
                self.run_actions(self.session.disconnected(f"server_close:{code}", self._now()))
            # Connect: the recording says when the socket opened (see Replay._connected)

    def _remember(self, payload: bytes) -> None:
        try:
            req = _decode_request(payload)
        except msgspec.DecodeError:
            return
        if req.op in ("subscribe", "unsubscribe") and req.req_id and req.args is not None:
            self.unmatched.append((req.op, req.req_id, frozenset(map(str, req.args))))

    def take(self, op: str, topics: frozenset[str]) -> str | None:
        """The ``req_id`` of the replayed request for the same ``op`` and topics, if any."""
        for i, (op2, req_id, topics2) in enumerate(self.unmatched):
            if op2 == op and topics2 == topics:
                del self.unmatched[i]
                return req_id
        return None


class _Stream:
    """One replayed connection."""

    __slots__ = ("client", "conn", "info", "req_map", "session", "waiting")

    def __init__(self, info: StreamInfo, client: Any, conn: ReplayConnection) -> None:
        self.info = info
        self.client = client
        self.conn = conn
        self.session: Session = conn.session
        self.req_map: dict[bytes, bytes] = {}
        """Recorded req_id -> replayed req_id, where they differ."""
        self.waiting: list[tuple[str, str, frozenset[str]]] = []
        """Recorded requests the replayed client has not made (yet)."""


_NO_SECRET = "replay"  # noqa: S105 - not a credential
"""A stand-in secret: a replay never signs anything that reaches a server."""

_REQ_ID = re.compile(rb'"req_id"\s*:\s*"([^"]*)"')


class Replay:
    """Replays recordings into fresh clients publishing on ``bus`` (see the module docstring).

    Args:
        paths: recording files (several recorders' files are merged on one clock).
        bus: where the clients publish (an :class:`~hean.core.bus.EventBus`, or anything with
            ``publish``); private streams publish there too.
        streams: replay only connections with these names (default: every public and private).
        seed: seeds the clients' random sources (jitter), for identical runs.
        yield_every: records between two yields to the event loop (so async subscribers of the
            bus run during the replay).
        client_options: extra keyword arguments for every client built.
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        bus: Any,
        *,
        streams: Iterable[str] | None = None,
        seed: int = 0,
        yield_every: int = 1000,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.reader = RecordingReader(paths)
        self.bus = bus
        self.only = None if streams is None else set(streams)
        self.seed = seed
        self.yield_every = max(1, int(yield_every))
        self.client_options = dict(client_options or {})
        self.clock: ReplayClock | None = None
        self.stats = ReplayStats()
        self._streams: dict[str, _Stream | None] = {}
        self.clients: dict[str, Any] = {}
        """Connection name -> the replayed client (after or during :meth:`run`)."""

    def client(self, name: str) -> Any:
        """The replayed client of the connection named ``name`` (e.g. ``public/linear``)."""
        try:
            return self.clients[name]
        except KeyError:
            have = sorted(self.clients)
            raise KeyError(f"no replayed connection {name!r}; have {have}") from None

    async def run(self) -> ReplayStats:
        """Replay every record, as fast as possible; returns the stats."""
        stats = self.stats
        n = 0
        for record, info in self.reader:
            if self.clock is None:
                self.clock = ReplayClock(record.t)
                stats.start_ns = record.t
            self._until(record.t)
            stats.records += 1
            stats.end_ns = max(stats.end_ns, record.t)
            if info is not None:
                self._apply(record, info)
            n += 1
            if n >= self.yield_every:
                n = 0
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        stats.lost = self.reader.lost
        stats.truncated = list(self.reader.truncated)
        return stats

    async def close(self) -> None:
        """Stop every replayed client (publishes their closing state changes)."""
        for stream in self._streams.values():
            if stream is not None:
                await stream.conn.stop()

    # -- time -----------------------------------------------------------------------------------

    def _until(self, t: int) -> None:
        """Fire every session deadline (and wake clock sleepers) due before ``t``."""
        clock = self.clock
        assert clock is not None
        ticked: set[tuple[int, float]] = set()
        while True:
            best: _Stream | None = None
            best_at = t
            for stream in self._streams.values():
                if stream is None:
                    continue
                deadline = stream.session.next_deadline()
                if deadline is not None and (id(stream), deadline) in ticked:
                    continue  # a deadline the tick did not move: look again after the record
                if deadline is not None:
                    at = clock.start_ns + int((deadline - clock.origin) * 1e9)
                    if at < best_at:
                        best, best_at = stream, at
            wake = clock.next_wakeup()
            if wake is not None and wake < best_at:
                clock.advance_to(wake)
                continue
            if best is None:
                break
            clock.advance_to(best_at)
            deadline = best.session.next_deadline() or 0.0
            ticked.add((id(best), deadline))
            best.conn.run_actions(best.session.tick(max(clock.monotonic(), deadline)))
        clock.advance_to(t)

    # -- records --------------------------------------------------------------------------------

    def _apply(self, record: Record, info: StreamInfo) -> None:
        if info.key in self._streams:
            stream = self._streams[info.key]
        else:
            stream = self._streams[info.key] = self._build(info)
        if stream is None:
            return
        kind = record.kind
        assert self.clock is not None
        now = self.clock.monotonic()
        if kind == "recv":
            self._recv(stream, record.payload, now)
        elif kind == "send":
            self._send(stream, record.payload, now)
        elif kind == "connected":
            self._connected(stream, now)
        elif kind == "closed":
            if stream.conn.is_open:
                stream.conn.is_open = False
                reason = str(record.json().get("reason") or "server_close:1006")
                stream.conn.run_actions(stream.session.disconnected(reason, now))
        elif kind == "connect_failed":
            if stream.session.state is S.CONNECTING:
                reason = str(record.json().get("reason") or "connect_failed")
                stream.conn.run_actions(stream.session.connect_failed(reason, now))
        elif kind == "state":
            if stream.session.state is S.IDLE:
                self._start(stream)
            elif b'"new":"stopping"' in record.payload or b'"reason":"stop"' in record.payload:
                # the user closed the connection: do the same
                stream.conn.run_actions(stream.session.stop(now))

    def _recv(self, stream: _Stream, payload: bytes, now: float) -> None:
        conn = stream.conn
        if not conn.is_open:
            self.stats.skipped_frames += 1
            return
        self.stats.frames += 1
        if stream.req_map and b'"req_id"' in payload:
            payload = _REQ_ID.sub(lambda m: self._rewrite(stream, m), payload, count=1)
        actions = stream.session.receive(payload, now)
        if actions:
            conn.run_actions(actions)

    @staticmethod
    def _rewrite(stream: _Stream, match: re.Match[bytes]) -> bytes:
        new = stream.req_map.get(match.group(1))
        return match.group(0) if new is None else b'"req_id":"' + new + b'"'

    def _send(self, stream: _Stream, payload: bytes, now: float) -> None:
        if b'subscribe"' not in payload:
            return
        try:
            req = _decode_request(payload)
        except msgspec.DecodeError:
            return
        if req.op not in ("subscribe", "unsubscribe") or req.args is None or not req.req_id:
            return
        op, rid = req.op, req.req_id
        topics = frozenset(map(str, req.args))
        conn = stream.conn
        mine = conn.take(op, topics)
        if mine is None:
            wanted = stream.session.subscriptions.topics
            if op == "subscribe" and not topics <= wanted.keys():
                self._user_subscribe(stream, [str(a) for a in req.args if a not in wanted])
            elif op == "unsubscribe" and topics <= wanted.keys():
                self._user_unsubscribe(stream, [str(a) for a in req.args])
            mine = conn.take(op, topics)
        if mine is None:
            stream.waiting.append((op, rid, topics))
            return
        if mine != rid:
            stream.req_map[rid.encode()] = mine.encode()

    def _user_subscribe(self, stream: _Stream, topics: list[str]) -> None:
        stream.conn.run_actions(stream.session.subscribe(topics, self._now()))

    def _user_unsubscribe(self, stream: _Stream, topics: list[str]) -> None:
        client = stream.client
        if hasattr(client, "books"):
            client.unsubscribe(topics)  # the public client also forgets the books / tickers
        else:
            stream.conn.run_actions(stream.session.unsubscribe(topics, self._now()))

    def _connected(self, stream: _Stream, now: float) -> None:
        session = stream.session
        conn = stream.conn
        if session.state is S.IDLE:
            self._start(stream)
        if session.state in (S.BACKOFF, S.AUTH_FAILED):
            # live reconnected sooner than the replayed backoff drew: reconnect now
            if session.state is S.AUTH_FAILED:
                conn.run_actions(session.start(now))
            else:
                session.reconnect_at = now
                session.breaker.retry_at = min(session.breaker.retry_at, now)
                conn.run_actions(session.tick(now))
        if session.state is not S.CONNECTING:
            return
        conn.is_open = True
        self._sync(stream)
        conn.run_actions(session.connected(now))
        # requests the recording made before the replayed client did, now paired
        for item in list(stream.waiting):
            op, rid, topics = item
            mine = conn.take(op, topics)
            if mine is not None:
                stream.waiting.remove(item)
                if mine != rid:
                    stream.req_map[rid.encode()] = mine.encode()

    def _start(self, stream: _Stream) -> None:
        self._sync(stream)
        stream.conn.start()

    @staticmethod
    def _sync(stream: _Stream) -> None:
        sync = getattr(stream.client, "_sync_wall_clock", None)
        if sync is not None:
            sync()

    def _now(self) -> float:
        assert self.clock is not None
        return self.clock.monotonic()

    # -- clients --------------------------------------------------------------------------------

    def _build(self, info: StreamInfo) -> _Stream | None:
        if self.only is not None and info.name not in self.only:
            return None
        if info.endpoint not in ("public", "private"):
            self.stats.skipped_streams.append(info.name)
            log.info("replay: %s (%s) is not replayed in-process", info.name, info.endpoint)
            return None
        assert self.clock is not None
        settings = info.settings
        options: dict[str, Any] = {
            "url": info.url,
            "clock": self.clock,
            "name": info.name,
            "rng": random.Random(f"{self.seed}:{info.name}"),
        }
        for key in ("ping_interval", "pong_timeout", "ack_timeout"):
            if isinstance(settings.get(key), int | float):
                options[key] = float(settings[key])
        options.update(self.client_options)
        client: Any
        if info.endpoint == "public":
            from hean.exchange.bybit.ws_public import BybitPublicWebSocket

            category = info.category or _category_of(info.url)
            client = BybitPublicWebSocket(self.bus, category, **options)
        else:
            from hean.exchange.bybit.ws_private import BybitPrivateWebSocket

            # the recording holds no credentials; the auth ack decides, as it did live
            client = BybitPrivateWebSocket(
                self.bus, api_key="replay", api_secret=_NO_SECRET, **options
            )
        session: Session = client.session
        if bool(settings.get("report_gaps")) != session.config.report_gaps:
            session.config = dataclasses.replace(
                session.config, report_gaps=bool(settings.get("report_gaps"))
            )
        conn = ReplayConnection(session, client.connection.publish)
        conn.clock = self.clock
        client.connection = conn
        self.clients[info.name] = client
        self.stats.streams += 1
        return _Stream(info, client, conn)


def _category_of(url: str) -> str:
    tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return tail if tail in ("spot", "linear", "inverse", "option") else "linear"
