"""Replay into the emulator: a recording served on the emulator's endpoints to any client.

::

    async with ReplayServer(["rec/hean-...-0001.rec.zst"], speed=10.0) as server:
        url = server.url("linear")            # connect HEAN, pybit, anything
        await server.done.wait()              # the recording has been played

The emulator (:class:`~hean.emulator.Emulator`, with its market switched off) answers pings,
subscribes, auth and unsubscribes exactly as it does in ``hean sim``; instead of its simulated
market, a player sends each recorded data frame (public or private) to the connections
subscribed to the frame's topic on the same endpoint path, byte for byte, with the recorded
spacing divided by ``speed`` (``None``: back to back, as fast as each client reads: a client
whose unsent backlog is over ``max_backlog`` bytes is waited for).

A client that subscribes to a book or ticker topic in the middle of the replay gets, right
after the ack, a snapshot built from the state of the frames played so far
(:class:`~hean.replay.state.TopicStates`: the merged book with the last ``u`` / ``seq``, the merged
ticker fields), then the recorded deltas, as on the venue; before the topic's first recorded
snapshot, and between a recorded disconnect and the recorded reconnect's snapshot, there is no
state and the client simply gets the recorded snapshot when it comes.

One clock for every file: records of all files are merged by time. Each file is read once, as it
plays (streamed: :data:`~hean.record.reader.READ_BLOCK` of text at a time per recorder's file
being read, plus the zstd window), so the server's memory does not grow with the recording;
since the symbols a recording holds are known only once it is read, a subscribe to any symbol
is accepted (a topic without recorded frames stays silent). Waiting for clients: the
clock starts when a first client has subscribed (up to ``wait`` seconds); after a replayed
disconnect, the first frame of each topic the dropped clients had waits (up to ``wait``) for a
client subscribed to it again, the clock paused meanwhile, so a client that reconnects more
slowly than the recorded one did still gets every frame with the recorded spacing. Recorded
disconnects are replayed (with ``disconnects``): when a recorded connection closed, the server
drops the clients subscribed to its topics (a close frame with the recorded code, or a TCP
close for 1006 and local reasons), so a client goes through the same reconnect (and reports the
same gap). A close the recorded client made itself (``disconnect()``) is not replayed.

Trade streams (order entry, ``/v5/trade``): a client connects and authenticates live (the
emulator's keys), and its order requests are answered from the recording by ``reqId``
(:mod:`hean.replay.trade` has the whole rule): the recorded request with the same ``reqId``
and the same ``op`` and ``args`` gets its recorded ack, byte for byte, at the ack's recorded
time (scaled by ``speed``; at once if the client asks later); a different request under a
recorded ``reqId``, a ``reqId`` the recording does not hold (refused when the recording ends)
or one used twice is refused with ``retCode`` 10001 / 20006 and a ``retMsg`` starting
``replay:``. A replayed client reproduces the recorded ``reqId`` values by using the recorded
prefix (``BybitTradeWebSocket(req_prefix=...)``) and making the same calls in the same order.
The trade connections' recorded disconnects are not replayed.

Control frames (pongs, subscribe and auth acks) are answered live by the emulator.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import msgspec
from picows import WSListener, WSUpgradeRequest, WSUpgradeResponseWithListener

from hean.emulator import Emulator, EmulatorConfig, shapes
from hean.emulator.connection import EffectiveFaults, PublicSession
from hean.emulator.private import AccountHub, TradeSession
from hean.emulator.topics import Topic
from hean.emulator.trading import TRADE_OPS
from hean.record.reader import RecordingReader, StreamInfo
from hean.replay.state import TopicStates
from hean.replay.trade import Answer, TradeAnswers

__all__ = ["ReplayServer", "ServerReplayStats"]

log = logging.getLogger("hean.replay")


class _Topic(msgspec.Struct):
    topic: str | None = None


_topic_of = msgspec.json.Decoder(_Topic).decode


class _TradeMessage(msgspec.Struct):
    op: str | None = None
    reqId: str | None = None
    args: Any = None


_trade_message = msgspec.json.Decoder(_TradeMessage).decode


@dataclass(slots=True)
class ServerReplayStats:
    frames: int = 0
    """Data frames sent (to at least one client)."""
    deliveries: int = 0
    """Frames written to clients (a frame sent to two clients counts twice)."""
    unsubscribed: int = 0
    """Data frames nobody was subscribed to (skipped)."""
    waited: float = 0.0
    """Seconds the clock was paused waiting for clients."""
    disconnects: int = 0
    """Clients dropped at recorded disconnects."""
    streams: int = 0
    span: float = 0.0
    """Seconds of recording played."""
    elapsed: float = 0.0
    """Seconds the playing took (wall)."""
    lost: int = 0
    truncated: list[str] = field(default_factory=list)
    snapshots: int = 0
    """Snapshots built from the state played so far, sent to clients that joined late."""
    trade_answered: int = 0
    """Trade requests answered with their recorded ack."""
    trade_refused: int = 0
    """Trade requests refused (not in the recording, different from it, duplicate, no reqId)."""


class _ReplayTradeSession(TradeSession):
    """A trade-stream listener whose requests are answered from the recording (pings and auth
    are answered live, as by the emulator)."""

    def __init__(
        self,
        hub: AccountHub,
        path: str,
        max_active_time: float | None,
        server: ReplayServer,
    ) -> None:
        super().__init__(hub, path, max_active_time)
        self.server = server

    def _request(
        self, op: str, msg: dict[str, Any], req_id: object, faults: EffectiveFaults
    ) -> None:
        info = self.info
        assert info is not None
        info.requests += 1
        if info.auth_state != "authenticated" or self.account is None:
            self.server._deliver(
                [Answer(self, op, req_id if isinstance(req_id, str) else None, code=10003,
                        message=shapes.NOT_AUTHORIZED_TEXT)]
            )  # fmt: skip
            return
        rid = req_id if isinstance(req_id, str) else None
        self.server._deliver(self.server.trade.request(self, rid, op, msg.get("args")))

    def on_ws_disconnected(self, transport: Any) -> None:
        super().on_ws_disconnected(transport)
        self.server.trade.client_gone(self)

    def refuse(self, answer: Answer) -> None:
        req_id: object = answer.req_id if answer.req_id is not None else shapes.MISSING
        self._reply(
            shapes.trade_reply(answer.op, self.conn_id, req_id, answer.code, answer.message,
                               header=self._header())
        )  # fmt: skip


class _ReplayEmulator(Emulator):
    """The emulator with its market replaced by the player's frames."""

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config)
        self.changed = asyncio.Event()
        self.initial: Callable[[PublicSession, str], None] | None = None
        """Sends a client that just subscribed the topic's current state (set by the server)."""
        self.server: ReplayServer | None = None
        """Answers the trade streams' requests (set by the server)."""

    def _route(
        self, request: WSUpgradeRequest
    ) -> WSListener | WSUpgradeResponseWithListener | None:
        listener = super()._route(request)
        if type(listener) is TradeSession and self.server is not None:
            return _ReplayTradeSession(self, listener.path, listener.max_active_time, self.server)
        return listener

    def has_symbol(self, category: str, symbol: str) -> bool:
        """Any symbol: which ones the recording has is known only once it is read (it is read
        once, as it plays); a topic the recording has no frames for stays silent."""
        return True

    def send_initial(self, session: PublicSession, topic: Topic) -> None:
        """No made-up snapshot: the state of the recording's frames played so far, if any."""
        if self.initial is not None:
            self.initial(session, topic.name)

    def subscriptions_changed(
        self, session: PublicSession, added: Iterable[Topic], removed: Iterable[str]
    ) -> None:
        self.changed.set()

    def sessions(self) -> list[PublicSession]:
        return list(self._sessions.values())


class ReplayServer:
    """Serves recordings on an emulator (see the module docstring).

    Args:
        paths: recording files.
        speed: spacing divisor (1 = as recorded, 10 = ten times faster); ``None`` = max.
        host / port: where to listen (loopback by default; port 0 = any free port).
        wait: seconds the first frame of a topic waits for a subscribed client.
        disconnects: replay recorded disconnects (drop the subscribed clients).
        max_backlog: with ``speed=None``, bytes of unsent backlog per client before waiting.
        config: emulator settings (host/port/symbols are set from the arguments).
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        speed: float | None = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        wait: float = 10.0,
        disconnects: bool = True,
        max_backlog: int = 1 << 20,
        config: EmulatorConfig | None = None,
    ) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number or None (max), got {speed!r}")
        if not wait >= 0:
            raise ValueError(f"wait must be >= 0 seconds, got {wait!r}")
        self.paths = list(paths)
        self.reader = RecordingReader(self.paths)  # checks the files exist
        self.speed = speed
        self.wait = float(wait)
        self.disconnects = disconnects
        self.max_backlog = int(max_backlog)
        base = config if config is not None else EmulatorConfig()
        cfg = {f.name: getattr(base, f.name) for f in base.__dataclass_fields__.values()}
        cfg.update(host=host, port=port, auto_tick=False, rest=False)
        self.emulator = _ReplayEmulator(EmulatorConfig(**cfg))
        self.emulator.initial = self._send_state
        self.emulator.server = self
        self.trade = TradeAnswers()
        """Pairs the clients' trade requests with the recorded ones (hean.replay.trade)."""
        self.states = TopicStates()
        """Merged book / ticker state of the frames played, for clients that join late."""
        self.stats = ServerReplayStats()
        self.done = asyncio.Event()
        """Set when every record has been played."""
        self._task: asyncio.Task[None] | None = None
        self._expected: dict[str, set[str]] = {}
        """Topics of clients dropped at a replayed disconnect, per path (waited for)."""

    @property
    def port(self) -> int:
        return self.emulator.port

    def url(self, category: str) -> str:
        """``ws://HOST:PORT/v5/public/<category>``, ``.../v5/private``, ``.../v5/trade`` (see
        Emulator.url)."""
        return self.emulator.url(category)

    async def start(self) -> None:
        await self.emulator.start()
        self._task = asyncio.get_running_loop().create_task(self._play(), name="hean-replay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.emulator.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- the player -----------------------------------------------------------------------------

    async def _play(self) -> None:
        try:
            await self._play_all()
        except Exception:
            log.exception("replay: the player failed")
        finally:
            self.done.set()

    async def _play_all(self) -> None:
        loop = asyncio.get_running_loop()
        stats = self.stats
        emu = self.emulator
        speed = self.speed
        started = loop.time()
        base_t: int | None = None
        base_at = started
        first_t = last_t = 0
        started_clients = False
        topics_of: dict[str, set[str]] = {}
        known: set[str] = set()
        stopping: set[str] = set()
        states = self.states
        follows = states.follows
        for record, info in self.reader:
            if info is None:
                continue
            if info.key not in known:
                known.add(info.key)
                stats.streams += 1
            kind = record.kind
            if info.endpoint == "trade":
                if kind == "send":
                    self._trade_sent(record.payload)
                    continue
                if kind != "recv":
                    continue  # its connection events: not replayed (clients stay connected)
                try:
                    msg = _trade_message(record.payload)
                except msgspec.DecodeError:
                    continue
                if msg.op not in TRADE_OPS or not msg.reqId:
                    continue  # pongs and auth acks are answered live
                if not started_clients:
                    waited = await self._wait_for(_path(info.url), None)
                    started_clients = True
                    base_at += waited
                    stats.waited += waited
                if base_t is None:
                    base_t, base_at, first_t = record.t, loop.time(), record.t
                last_t = record.t
                if speed is not None:
                    await _sleep_until(loop, base_at + (record.t - base_t) / 1e9 / speed)
                self._deliver(self.trade.recorded_ack(msg.reqId, record.payload))
                continue
            if kind == "connected":
                topics_of[info.key] = set()
                continue
            if kind == "state":
                if b'"new":"stopping"' in record.payload:
                    stopping.add(info.key)  # the client closed it: nothing to replay
                continue
            if kind == "closed":
                # the recorded client's next frames of these topics start with a snapshot
                self.states.forget(_path(info.url), topics_of.get(info.key, ()))
            if kind == "closed" and info.key in stopping:
                continue
            if kind == "closed":
                if base_t is not None and speed is not None:
                    await _sleep_until(loop, base_at + (record.t - base_t) / 1e9 / speed)
                if self.disconnects:
                    self._drop(info, topics_of.get(info.key, set()), record.json())
                continue
            if kind != "recv":
                continue
            try:
                topic = _topic_of(record.payload).topic
            except msgspec.DecodeError:
                continue
            if topic is None:
                continue
            if base_t is None:
                base_t, base_at, first_t = record.t, loop.time(), record.t
            last_t = record.t
            path = _path(info.url)
            topics_of.setdefault(info.key, set()).add(topic)
            targets = self._targets(path, topic)
            back = self._expected.get(path)
            if not started_clients or (not targets and back and topic in back):
                # the start: wait for a first client; after a replayed disconnect: for the
                # clients that were subscribed to come back (the clock pauses meanwhile)
                waited = await self._wait_for(path, topic if started_clients else None)
                started_clients = True
                if back:
                    back.discard(topic)
                base_at += waited
                stats.waited += waited
                targets = self._targets(path, topic)
            if speed is not None:
                await _sleep_until(loop, base_at + (record.t - base_t) / 1e9 / speed)
            # the state first: a client that subscribes from now on gets this frame in its
            # snapshot; one that subscribed while the player slept gets the frame itself
            if follows(topic):
                states.apply(path, topic, record.payload)
            targets = self._targets(path, topic)
            if not targets:
                stats.unsubscribed += 1
                continue
            stats.frames += 1
            for session in targets:
                if speed is None:
                    await self._backpressure(session)
                if session.send_raw(record.payload):
                    stats.deliveries += 1
                    emu_info = session.info
                    if emu_info is not None:
                        counts = emu_info.sent_by_topic
                        counts[topic] = counts.get(topic, 0) + 1
            if speed is None and stats.frames % 256 == 0:
                await asyncio.sleep(0)
        del emu
        self._deliver(self.trade.finish())
        stats.span = (last_t - first_t) / 1e9
        stats.elapsed = loop.time() - started
        stats.lost = self.reader.lost
        stats.truncated = list(self.reader.truncated)
        log.info(
            "replay: played %d frames (%.3fs recorded) in %.3fs",
            stats.frames,
            stats.span,
            stats.elapsed,
        )

    def _targets(self, path: str, topic: str) -> list[PublicSession]:
        out = []
        for session in self.emulator.sessions():
            info = session.info
            if (
                info is not None
                and not session.closing
                and topic in info.subscriptions
                and info.path.split("?", 1)[0] == path
            ):
                out.append(session)
        return out

    def _send_state(self, session: PublicSession, topic: str) -> None:
        info = session.info
        if info is None:
            return
        snapshot = self.states.snapshot(info.path.split("?", 1)[0], topic)
        if snapshot is not None and session.send_raw(snapshot):
            self.stats.snapshots += 1

    def _any_subscriber(self) -> bool:
        """A client subscribed to a topic, or authenticated on a trade stream."""
        return any(
            s.info is not None
            and (
                bool(s.info.subscriptions)
                or (isinstance(s, _ReplayTradeSession) and s.info.auth_state == "authenticated")
            )
            for s in self.emulator.sessions()
        )

    # -- the trade stream -----------------------------------------------------------------------

    def _trade_sent(self, payload: bytes) -> None:
        """A request the recorded client sent on a trade stream."""
        try:
            msg = _trade_message(payload)
        except msgspec.DecodeError:
            return
        if msg.op in TRADE_OPS and msg.reqId:
            self._deliver(self.trade.recorded_request(msg.reqId, msg.op, msg.args))

    def _deliver(self, answers: list[Answer]) -> None:
        for answer in answers:
            session = answer.client
            if not isinstance(session, _ReplayTradeSession):
                continue
            if answer.ack is not None:
                session.send_raw(answer.ack)
            else:
                session.refuse(answer)
        self.stats.trade_answered = self.trade.answered
        self.stats.trade_refused = self.trade.refused

    async def _wait_for(self, path: str, topic: str | None) -> float:
        """Wait up to ``wait`` for a client subscribed to ``topic`` on ``path`` (``None``: for
        any subscribed client); returns the seconds waited."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + self.wait
        changed = self.emulator.changed

        def ready() -> bool:
            return self._any_subscriber() if topic is None else bool(self._targets(path, topic))

        while not ready():
            remaining = end - loop.time()
            if remaining <= 0:
                break
            changed.clear()
            try:
                # public subscribes signal at once; private ones are polled
                await asyncio.wait_for(changed.wait(), min(remaining, 0.005))
            except TimeoutError:
                pass
        return loop.time() - start

    async def _backpressure(self, session: PublicSession) -> None:
        transport = session.transport
        if transport is None:
            return
        # picows has no drain event: poll the socket's backlog every millisecond
        for _ in range(int(60 / 0.001)):
            if (
                session.closing
                or transport.underlying_transport.get_write_buffer_size() <= self.max_backlog
            ):
                return
            await asyncio.sleep(0.001)

    def _drop(self, info: StreamInfo, topics: set[str], event: dict[str, Any]) -> None:
        path = _path(info.url)
        code = event.get("code")
        for session in self.emulator.sessions():
            sinfo = session.info
            if sinfo is None or session.closing or sinfo.path.split("?", 1)[0] != path:
                continue
            if topics and not (topics & sinfo.subscriptions):
                continue
            self.stats.disconnects += 1
            self._expected.setdefault(path, set()).update(sinfo.subscriptions)
            if isinstance(code, int) and (code == 1000 or 3000 <= code <= 4999):
                session.close(code, "replayed disconnect")
            else:
                session.abort("replayed disconnect")


async def _sleep_until(loop: asyncio.AbstractEventLoop, at: float) -> None:
    delay = at - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path or "/"
