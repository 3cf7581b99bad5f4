"""The emulator: a picows WebSocket server that behaves like Bybit's V5 streams.

Public market data (``/v5/public/…``) is delegated to :class:`~hean.emulator.venue.Venue`; the
account side (``/v5/private``, ``/v5/trade``: accounts, auth, order entry, private pushes) to
:class:`~hean.emulator.trading.Trading` and the sessions of :mod:`hean.emulator.private`; wire
faults live in a :class:`~hean.emulator.streamfaults.StreamFaultStore`; ``/control/…`` HTTP
requests on the same port are answered by :mod:`hean.emulator.control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import socket
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from picows import (
    WSListener,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from hean.core.clock import Clock, SystemClock
from hean.emulator import shapes, topics
from hean.emulator.accounts import AccountConfig, AccountView
from hean.emulator.config import PUBLIC_CATEGORIES, EmulatorConfig
from hean.emulator.connection import ConnectionInfo, EffectiveFaults, PublicSession
from hean.emulator.faults import Faults, validate_fault_change
from hean.emulator.market import Market, SymbolMarket
from hean.emulator.private import (
    ACCOUNT_KINDS,
    AccountSession,
    PrivateSession,
    TradeSession,
    parse_max_active_time,
)
from hean.emulator.rest import (
    HTTP_FAILURES,
    INJECTABLE_REST_CODES,
    RestFailure,
    RestRecord,
    RestServer,
)
from hean.emulator.rest_scenario import OutageSummary
from hean.emulator.status import STATUS_KIND, STATUS_PATH, STATUS_TOPIC, StatusBoard
from hean.emulator.streamfaults import StreamFault, StreamFaultStore
from hean.emulator.trading import Trading
from hean.emulator.venue import MarketAPI, Venue

__all__ = ["AuthRecord", "Emulator", "LogEntry"]

log = logging.getLogger("hean.emulator")

T = TypeVar("T")
#: ``(monotonic time, event, conn_id or None, detail)``
LogEntry = tuple[float, str, str | None, str]

_PATHS: dict[str, str] = {f"/v5/public/{c}": c for c in PUBLIC_CATEGORIES}
_PATHS[STATUS_PATH] = STATUS_KIND
_ACCOUNT_PATHS: dict[str, type[AccountSession]] = {
    "/v5/private": PrivateSession,
    "/v5/trade": TradeSession,
}
#: retCodes that :meth:`Emulator.inject_trade_error` may inject
INJECTABLE_TRADE_CODES = frozenset({10001, 10002, 10006, 10016, 10019, 10403, 10429, 20003, 20006})


@dataclass(frozen=True, slots=True)
class AuthRecord:
    """One ``auth`` request as judged by the emulator (see :attr:`Emulator.auth_log`)."""

    time: float
    """Monotonic time it was answered."""
    conn_id: str
    kind: str
    """``private`` or ``trade``."""
    api_key: str | None
    """The key it named (if it was a string)."""
    result: str
    """``ok``, ``repeat``, ``expired``, ``bad_key``, ``bad_signature``, ``params``,
    ``too_many_sessions`` or ``link_down`` (a valid ``/v5/private`` auth for a key whose private
    link is down: the connection was dropped, see :meth:`Emulator.private_link_down`)."""

    @property
    def ok(self) -> bool:
        return self.result in ("ok", "repeat")


_B32 = "0123456789abcdefghijklmnopqrstuv"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_MAX_HISTORY = 10_000


class Emulator(MarketAPI):
    """Bybit V5 WebSocket emulator: public market data, private account streams, order entry.

    Use ``async with Emulator(config) as emu`` (or :meth:`start` / :meth:`stop`), then connect
    to :meth:`url` (``url("linear")``, ``url("private")``, ``url("trade")``); the REST API is at
    :meth:`rest_url` (:mod:`hean.emulator.rest`; failure switches ``inject_rest_*``, funding
    :meth:`charge_funding`, the private-outage scenario :meth:`private_outage`). All methods must
    be called from the event loop thread.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> None:
        self._config = config if config is not None else EmulatorConfig()
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.faults: Faults = self._config.faults.copy()
        """Global fault switches (apply to every connection); mutate freely at run time."""
        self._conn_faults: dict[str, Faults] = {}
        self.stream_faults = StreamFaultStore()
        """Armed wire faults (see :meth:`inject`)."""
        for fault in self._config.stream_faults:
            self.stream_faults.arm(dataclasses.replace(fault, fired=0))
        self.venue = Venue(self, self._config, self._clock)
        """Markets, feeds and ground truth (see :class:`~hean.emulator.venue.Venue`)."""
        self._id_rng = random.Random(f"conn-ids:{self._config.seed}")
        self._sessions: dict[str, PublicSession] = {}
        self._infos: deque[ConnectionInfo] = deque(maxlen=_MAX_HISTORY)
        self._log: deque[LogEntry] = deque(maxlen=100 * _MAX_HISTORY)
        self._tasks: list[asyncio.Task[None]] = []
        self._watchdog: asyncio.Task[None] | None = None
        self._stall_task: asyncio.Task[None] | None = None
        self._server: asyncio.Server | None = None
        self._lsock: socket.socket | None = None
        self._port = 0
        self._handshake: tuple[int, dict[str, str], bytes | None] | None = None
        self._stalled = False
        self._running = False
        self.clock_skew_ms: int = self._config.clock_skew_ms
        """Server clock minus the emulator's clock, in ms (auth, trade timestamps, pongs,
        ``Timenow``): set it to simulate a client whose clock is off; changeable at run time."""
        self.trading = Trading(
            self,
            self._config.account_configs,
            seed=self._config.seed,
            rate_limit=self._config.trade_rate_limit,
        )
        """Accounts, auth, order entry and private pushes (see :mod:`hean.emulator.trading`)."""
        self._trade_errors: dict[str | None, deque[int]] = {}
        self._auth_log: deque[AuthRecord] = deque(maxlen=_MAX_HISTORY)
        self._trace_rng = random.Random(f"trace-ids:{self._config.seed}")
        self.status = StatusBoard(self._config.seed)
        """Maintenance windows announced on ``system.status`` (see :meth:`announce_maintenance`)."""
        self.rest: RestServer | None = RestServer(self) if self._config.rest else None
        """The REST API (see :mod:`hean.emulator.rest`); ``None`` if ``EmulatorConfig.rest`` is
        off."""
        self._links_down: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def config(self) -> EmulatorConfig:
        return self._config

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def market(self) -> Market:
        """Symbols and seeds of every category. To act on a symbol's book use
        :meth:`symbol_market` (it starts the symbol's clock if it was not in use yet)."""
        return self.venue.market

    @property
    def control_enabled(self) -> bool:
        """Whether ``/control/…`` requests are served (see ``EmulatorConfig.control``)."""
        return self._config.control_enabled

    @property
    def port(self) -> int:
        if self._lsock is None:
            raise RuntimeError("emulator is not started")
        return self._port

    @property
    def host(self) -> str:
        return self._config.host

    def url(self, category: str, *, max_active_time: str | None = None) -> str:
        """``ws://HOST:PORT/v5/public/<category>``, or ``…/v5/private`` / ``…/v5/trade`` for
        ``category="private"`` / ``"trade"`` (with ``?max_active_time=…`` if given), or
        ``…/v5/public/misc/status`` for ``category="status"``."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if category == STATUS_KIND and max_active_time is None:
            return f"ws://{host}:{self.port}{STATUS_PATH}"
        if category in ACCOUNT_KINDS:
            url = f"ws://{host}:{self.port}/v5/{category}"
            if max_active_time is not None:
                url += "?" + urllib.parse.urlencode({"max_active_time": max_active_time})
            return url
        if category not in PUBLIC_CATEGORIES:
            known = ", ".join((*PUBLIC_CATEGORIES, *ACCOUNT_KINDS, STATUS_KIND))
            raise ValueError(f"unknown category {category!r}; known: {known}")
        if max_active_time is not None:
            raise ValueError("max_active_time applies to the private and trade streams only")
        return f"ws://{host}:{self.port}/v5/public/{category}"

    def rest_url(self) -> str:
        """``http://HOST:PORT`` of the REST API (see :mod:`hean.emulator.rest`)."""
        if self.rest is None:
            raise RuntimeError("the REST API is off (EmulatorConfig.rest=False)")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.rest.port}"

    async def start(self) -> None:
        if self._lsock is not None:
            raise RuntimeError("emulator already started")
        cfg = self._config
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((cfg.host, cfg.port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._lsock = sock
        self._port = sock.getsockname()[1]
        if self.rest is not None:
            try:
                await self.rest.start(cfg.host, cfg.rest_port)
            except BaseException:
                self._lsock = None
                sock.close()
                raise
        self._running = True
        await self._serve()
        if cfg.auto_tick:
            for category, feed in self.venue.feeds.items():
                self._spawn(feed.run(self._clock), f"emulator-market-{category}")
        if cfg.server_pings:
            self._spawn(self._run_server_pings(), "emulator-server-pings")
        if cfg.idle_timeout is not None or self.faults.idle_timeout is not None:
            self._ensure_watchdog()
        log.info("emulator listening on %s:%d", cfg.host, self._port)

    async def stop(self) -> None:
        self._running = False
        tasks = [*self._tasks, self._watchdog, self._stall_task]
        self._tasks.clear()
        self._watchdog = self._stall_task = None
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            self._server.close()
            self._server = None
        self._stalled = False
        for session in list(self._sessions.values()):
            session.abort("server_stopped")
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None
        if self.rest is not None:
            await self.rest.stop()
        for _ in range(3):  # let connection_lost callbacks run
            await asyncio.sleep(0)

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

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    async def _serve(self) -> None:
        assert self._lsock is not None
        cfg = self._config
        self._server = await ws_create_server(
            self._route,
            sock=self._lsock.dup(),
            enable_auto_pong=False,
            max_frame_size=cfg.max_frame_size,
            websocket_handshake_timeout=cfg.handshake_timeout,
            logger_name=logging.getLogger("hean.emulator.ws"),
        )

    # -- handshake ----------------------------------------------------------------------------

    def _route(
        self, request: WSUpgradeRequest
    ) -> WSListener | WSUpgradeResponseWithListener | None:
        raw_path = request.path.decode("latin-1")
        path = raw_path.split("?", 1)[0]
        if path.startswith("/control/"):
            from hean.emulator import control  # here: keeps `python -m …control` warning-free

            code, reply = control.handle(self, raw_path, request.method)
            self._record("control", None, f"{code} {raw_path}")
            return control.response(code, reply)
        self._record("attempt", None, raw_path)
        if self._handshake is not None:
            status, headers, body = self._handshake
            self._record("reject", None, f"{status} {raw_path}")
            response = WSUpgradeResponse.create_error_response(status, body, headers)
            return WSUpgradeResponseWithListener(response, None)
        account_session = _ACCOUNT_PATHS.get(path)
        if account_session is PrivateSession and "refuse" in self._links_down.values():
            self._record("reject", None, f"503 {raw_path} (private link down)")
            response = WSUpgradeResponse.create_error_response(
                503, b"503 Service Unavailable", {"Content-Type": "text/plain"}
            )
            return WSUpgradeResponseWithListener(response, None)
        if account_session is not None:
            query = raw_path.split("?", 1)[1] if "?" in raw_path else ""
            try:
                max_active = parse_max_active_time(query)
            except ValueError as exc:
                # Bybit's answer to a bad max_active_time is not documented; the emulator
                # refuses the upgrade with 400 and says why.
                self._record("reject", None, f"400 {raw_path}")
                response = WSUpgradeResponse.create_error_response(
                    400, f"400 {exc}".encode(), {"Content-Type": "text/plain"}
                )
                return WSUpgradeResponseWithListener(response, None)
            if max_active is not None:
                max_active *= self._config.max_active_time_scale
            return account_session(self, raw_path, max_active)
        category = _PATHS.get(path)
        if category is None:
            self._record("reject", None, f"404 {raw_path}")
            return None
        return PublicSession(self, category, raw_path)

    def set_handshake_status(
        self, status: int | None, *, retry_after: float | None = None, body: bytes | None = None
    ) -> None:
        """Answer new upgrade requests with this HTTP status (>= 400), or normally if None."""
        if status is None:
            self._handshake = None
            return
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(
                f"handshake status must be an HTTP error code 400..599, got {status!r}"
            )
        headers: dict[str, str] = {}
        if retry_after is not None:
            if retry_after < 0:
                raise ValueError(f"retry_after must be >= 0, got {retry_after!r}")
            headers["Retry-After"] = str(math.ceil(retry_after))
        if body is None:
            body = f"{status}".encode()
        self._handshake = (status, headers, body)

    def set_handshake_stall(self, seconds: float | None) -> None:
        """Stop answering new connections for ``seconds`` (``math.inf`` = until cleared).

        TCP connects still succeed (the kernel queues them) but the HTTP upgrade gets no answer,
        so clients hit their handshake timeout. ``None`` resumes at once; queued connections are
        then served (late) in arrival order.
        """
        if seconds is not None and (math.isnan(seconds) or seconds <= 0):
            raise ValueError(f"stall must be > 0 seconds or None, got {seconds!r}")
        if self._lsock is None:
            raise RuntimeError("emulator is not started")
        if self._stall_task is not None:
            self._stall_task.cancel()
            self._stall_task = None
        if seconds is None:
            if self._stalled:
                self._stall_task = asyncio.get_running_loop().create_task(self._resume())
            return
        if not self._stalled:
            self._stalled = True
            if self._server is not None:
                self._server.close()
                self._server = None
            self._record("stall", None, f"{seconds}")
        self._stall_task = asyncio.get_running_loop().create_task(self._stall_for(seconds))

    async def _stall_for(self, seconds: float) -> None:
        if math.isinf(seconds):
            return
        await self._clock.sleep(seconds)
        await self._resume()

    async def _resume(self) -> None:
        if self._stalled and self._lsock is not None:
            self._stalled = False
            await self._serve()
            self._record("stall_end", None, "")

    # -- Hub protocol (used by sessions) ------------------------------------------------------

    def effective_faults(self, conn_id: str) -> EffectiveFaults:
        return EffectiveFaults.combine(
            self.faults, self._conn_faults.get(conn_id), self._config.idle_timeout
        )

    def new_conn_id(self, category: str) -> str:
        rng = self._id_rng
        if category == "spot":
            h = f"{rng.getrandbits(128):032x}"
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if category == "option":
            h = f"{rng.getrandbits(224):056x}"
            return f"{h[:16]}-{h[16:24]}-{h[24:32]}-{h[32:48]}-{h[48:56]}"
        head = "".join(rng.choice(_B32) for _ in range(20))
        tail = "".join(rng.choice(_B36) for _ in range(rng.randint(2, 5)))
        return f"{head}-{tail}"

    def has_symbol(self, category: str, symbol: str) -> bool:
        return self.venue.market.has(category, symbol)

    def send_initial(self, session: PublicSession, topic: topics.Topic) -> None:
        if session.category == STATUS_KIND:
            items = [w.item() for w in self.status.pending()]
            session.push(
                STATUS_TOPIC, shapes.encode(shapes.system_status(self.server_time_ms(), items))
            )
            return
        feed = self.venue.feeds.get(session.category)
        if feed is not None:
            feed.send_initial(session, topic)

    def session_opened(self, session: PublicSession) -> None:
        assert session.info is not None
        self._sessions[session.conn_id] = session
        self._infos.append(session.info)
        self._record("accept", session.conn_id, session.path)
        drip = self.effective_faults(session.conn_id).drip
        if drip is not None:
            session.set_drip(drip)
        if isinstance(session, AccountSession):
            self._ensure_watchdog()

    def session_closed(self, session: PublicSession) -> None:
        info = session.info
        assert info is not None
        self._sessions.pop(session.conn_id, None)
        feed = self.venue.feeds.get(session.category)
        if feed is not None:
            for topic in info.subscriptions:
                feed.unsubscribe(session, topic)
        self._conn_faults.pop(session.conn_id, None)
        self.stream_faults.clear(session.conn_id)
        self._record("close", session.conn_id, info.close_reason or "")

    def subscriptions_changed(
        self, session: PublicSession, added: Iterable[topics.Topic], removed: Iterable[str]
    ) -> None:
        feed = self.venue.feeds.get(session.category)
        if feed is None:
            return
        for topic in added:
            feed.subscribe(session, topic)
        for name in removed:
            feed.unsubscribe(session, name)

    @property
    def stream_faults_armed(self) -> bool:
        return self.stream_faults.armed

    def take_stream_fault(
        self, conn_id: str, topic: str, *, book: bool, snapshot: bool, initial: bool
    ) -> StreamFault | None:
        return self.stream_faults.take(
            conn_id, topic, book=book, snapshot=snapshot, initial=initial
        )

    def fault_snapshot(self, category: str, topic: str, u: int) -> bytes | None:
        return self.venue.snapshot_bytes(category, topic, u)

    def fault_delta(self, category: str, topic: str) -> bytes | None:
        return self.venue.delta_bytes(category, topic)

    def _record(self, event: str, conn_id: str | None, detail: str) -> None:
        self._log.append((self._clock.monotonic(), event, conn_id, detail))
        log.debug("emulator %s %s %s", event, conn_id or "-", detail)

    # -- wire faults and what was sent ---------------------------------------------------------

    def book_sent(self, conn_id: str, topic: str) -> tuple[int, int] | None:
        """``(u, seq)`` of the last ``topic`` book message sent to a connection (after faults)."""
        return self.connection(conn_id).book_sent.get(topic)

    def inject(
        self,
        kind: str,
        *,
        conn_id: str | None = None,
        topic: str | None = None,
        repeat: bool = False,
        count: int = 10,
        size: int = 2 << 20,
    ) -> StreamFault:
        """Arm a wire fault (see :mod:`hean.emulator.streamfaults`) globally or for a
        connection; returns it (``fired`` counts how often it acted)."""
        if conn_id is not None and conn_id not in self._sessions:
            raise KeyError(f"no live connection {conn_id!r}")
        fault = StreamFault(kind, topic, repeat, count, size)
        return self.stream_faults.arm(fault, conn_id)

    def clear_injections(self, conn_id: str | None = None) -> int:
        """Disarm the global wire faults (or one connection's); returns how many."""
        return self.stream_faults.clear(conn_id)

    # -- idle cut-off and server pings --------------------------------------------------------

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None and self._lsock is not None:
            self._watchdog = asyncio.get_running_loop().create_task(
                self._run_watchdog(), name="emulator-idle-watchdog"
            )

    def idle_limit(self, session: PublicSession) -> float | None:
        """Seconds of silence after which ``session`` is cut (``None``/inf: never).

        Public: the ``idle_timeout`` fault, else ``EmulatorConfig.idle_timeout``. Private and
        trade: the ``idle_timeout`` fault, else the URL's ``max_active_time``, else
        ``EmulatorConfig.private_idle_timeout``.
        """
        if not isinstance(session, AccountSession):
            return self.effective_faults(session.conn_id).idle_timeout
        own = self._conn_faults.get(session.conn_id)
        if own is not None and own.idle_timeout is not None:
            return own.idle_timeout
        if self.faults.idle_timeout is not None:
            return self.faults.idle_timeout
        if session.max_active_time is not None:
            return session.max_active_time
        return self._config.private_idle_timeout

    async def _run_watchdog(self) -> None:
        while True:
            now = self._clock.monotonic()
            limits: list[float] = []
            for session in list(self._sessions.values()):
                info = session.info
                timeout = self.idle_limit(session)
                if info is None or timeout is None or math.isinf(timeout):
                    continue
                limits.append(timeout)
                if self.effective_faults(session.conn_id).blackhole:
                    continue
                # private/trade: any frame sent counts as activity too (protocol.md §1.2)
                last = info.last_ping_at
                if isinstance(session, AccountSession):
                    last = max(last, info.last_data_at)
                if now - last >= timeout:
                    log.info("emulator: idle cut-off of %s after %.3fs", session.conn_id, timeout)
                    session.abort("idle_timeout")
            # check often enough to be late by at most ~5 % of the shortest timeout in force
            settings = [self._config.idle_timeout, self.faults.idle_timeout, *limits]
            settings += [f.idle_timeout for f in self._conn_faults.values()]
            shortest = min((t for t in settings if t is not None), default=math.inf)
            await self._clock.sleep(min(0.5, max(0.002, shortest / 20)))

    async def _run_server_pings(self) -> None:
        while True:
            await self._clock.sleep(self._config.server_ping_interval)
            for session in list(self._sessions.values()):
                if not self.effective_faults(session.conn_id).blackhole:
                    session.send_ping()

    # -- faults and actions -------------------------------------------------------------------

    def connection_faults(self, conn_id: str) -> Faults:
        """The per-connection switches of ``conn_id`` (created on first use; mutable)."""
        if conn_id not in self._sessions:
            raise KeyError(f"no live connection {conn_id!r}")
        faults = self._conn_faults.get(conn_id)
        if faults is None:
            faults = self._conn_faults[conn_id] = Faults()
        return faults

    def set_faults(self, conn_id: str | None = None, **changes: Any) -> None:
        """Set switches globally (``conn_id=None``) or for one connection."""
        for name, value in changes.items():
            validate_fault_change(name, value)
        target = self.faults if conn_id is None else self.connection_faults(conn_id)
        target.apply(**changes)
        if changes.get("idle_timeout") is not None:
            self._ensure_watchdog()
        if "drip" in changes:
            for session in self._targets(conn_id):
                session.set_drip(self.effective_faults(session.conn_id).drip)

    def _targets(self, conn_id: str | None) -> list[PublicSession]:
        if conn_id is None:
            return list(self._sessions.values())
        session = self._sessions.get(conn_id)
        return [session] if session is not None else []

    def drop_connections(self, conn_id: str | None = None) -> int:
        """TCP close without a close frame (client sees 1006). Returns how many."""
        targets = self._targets(conn_id)
        for session in targets:
            session.abort("dropped")
        return len(targets)

    def close_connections(self, code: int, reason: str = "", conn_id: str | None = None) -> int:
        """Send a close frame with ``code``/``reason``, then disconnect. Returns how many."""
        if not (code == 1000 or 1001 <= code <= 1014 or 3000 <= code <= 4999) or code in (
            1004,
            1005,
            1006,
        ):
            raise ValueError(f"close code {code} cannot be sent in a close frame")
        if len(reason.encode()) > 123:
            raise ValueError("close reason must be at most 123 bytes of UTF-8")
        targets = self._targets(conn_id)
        for session in targets:
            session.close(code, reason)
        return len(targets)

    def reset_connections(self, conn_id: str | None = None) -> int:
        """TCP RST (SO_LINGER 0 then close). Returns how many."""
        targets = self._targets(conn_id)
        for session in targets:
            session.reset("reset")
        return len(targets)

    # -- accounts, auth and order entry -------------------------------------------------------

    @property
    def running(self) -> bool:
        """Between :meth:`start` and :meth:`stop`."""
        return self._running

    def server_time_ms(self) -> int:
        """The server's wall clock in ms: the emulator's clock plus :attr:`clock_skew_ms`."""
        return self._clock.wall_ms() + self.clock_skew_ms

    def set_clock_skew(self, ms: int) -> None:
        """Move the server clock ``ms`` ahead of the emulator's clock (negative: behind)."""
        if isinstance(ms, bool) or not isinstance(ms, int):
            raise ValueError(f"clock skew must be an int number of ms, got {ms!r}")
        self.clock_skew_ms = ms

    def built_market(self, category: str, symbol: str) -> SymbolMarket | None:
        """A symbol's market if it is running already (never starts one)."""
        market = self.venue.market
        if not market.is_built(category, symbol):
            return None
        return self.venue.symbol(category, symbol)

    def account(self, api_key: str) -> AccountView:
        """Ground truth of the account of ``api_key``: balances, open orders (as ``order``
        stream items), positions, executions, the wallet item. ``KeyError`` if unknown."""
        return self.trading.view(api_key)

    def add_account(self, config: AccountConfig) -> AccountView:
        """Create an account at run time (``ValueError`` if its key or uid is taken)."""
        self.trading.add(config)
        return self.trading.view(config.api_key)

    def set_balance(self, api_key: str, coin: str, amount: object) -> None:
        """Set one coin's wallet balance of an account (pushes a ``wallet`` message)."""
        self.trading.set_balance(api_key, coin, amount)

    def inject_trade_error(self, code: int, count: int = 1, *, conn_id: str | None = None) -> None:
        """Answer the next ``count`` trade requests (``order.*`` ops) with ``code`` instead of
        executing them: 10016 / 10019 (service restarting), 10429 (system frequency
        protection), 20006 (duplicate reqId), 10006 / 10403 / 20003 (rate limits), 10001,
        10002. Globally or on one connection (per-connection injections go first)."""
        if isinstance(code, bool) or code not in INJECTABLE_TRADE_CODES:
            known = ", ".join(str(c) for c in sorted(INJECTABLE_TRADE_CODES))
            raise ValueError(f"cannot inject trade retCode {code!r}; known: {known}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be an int >= 1, got {count!r}")
        if conn_id is not None and conn_id not in self._sessions:
            raise KeyError(f"no live connection {conn_id!r}")
        self._trade_errors.setdefault(conn_id, deque()).extend([code] * count)

    def clear_trade_errors(self, conn_id: str | None = None) -> int:
        """Forget injected trade errors (global, or one connection's); returns how many."""
        queue = self._trade_errors.pop(conn_id, None)
        return len(queue) if queue else 0

    def pending_trade_errors(self, conn_id: str | None = None) -> list[int]:
        """Injected trade errors not used yet (global, or one connection's)."""
        return list(self._trade_errors.get(conn_id, ()))

    def take_trade_error(self, conn_id: str) -> int | None:
        for key in (conn_id, None):
            queue = self._trade_errors.get(key)
            if queue:
                code = queue.popleft()
                if not queue:
                    del self._trade_errors[key]
                return code
        return None

    def record_auth(self, session: AccountSession, result: str) -> None:
        info = session.info
        args = info.last_auth_args if info is not None else None
        key = args[0] if args and isinstance(args[0], str) else None
        self._auth_log.append(
            AuthRecord(self._clock.monotonic(), session.conn_id, session.category, key, result)
        )
        # the key is not a secret; the signature is never logged
        self._record("auth", session.conn_id, result)

    def trace_id(self) -> str:
        return f"{self._trace_rng.getrandbits(128):032x}"

    @property
    def auth_log(self) -> list[AuthRecord]:
        """Every ``auth`` request answered so far (the most recent 10,000), oldest first."""
        return list(self._auth_log)

    def auth_attempts(self, api_key: str | None = None, since: float | None = None) -> int:
        """How many ``auth`` requests arrived (naming ``api_key`` if given, at or after
        monotonic ``since`` if given)."""
        return sum(
            1
            for r in self._auth_log
            if (api_key is None or r.api_key == api_key) and (since is None or r.time >= since)
        )

    # -- REST: failure switches, funding, log -------------------------------------------------

    def _rest(self) -> RestServer:
        if self.rest is None:
            raise RuntimeError("the REST API is off (EmulatorConfig.rest=False)")
        return self.rest

    @staticmethod
    def _check_count(count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be an int >= 1, got {count!r}")

    def _check_rest_path(self, path: str | None) -> None:
        if path is not None and path not in self._rest().endpoints:
            known = ", ".join(self._rest().endpoints)
            raise ValueError(f"unknown REST path {path!r}; known: {known}")

    def inject_rest_error(
        self, code: int, count: int = 1, *, path: str | None = None, reset_header: bool = True
    ) -> None:
        """Answer the next ``count`` REST requests (to ``path`` if given) with retCode ``code``
        (10000, 10002, 10003, 10004, 10005, 10006, 10010, 10016 or 429) and Bybit's text, HTTP
        200. 10006 carries the ``X-Bapi-Limit*`` headers, without the reset timestamp if
        ``reset_header`` is False."""
        if isinstance(code, bool) or code not in INJECTABLE_REST_CODES:
            known = ", ".join(str(c) for c in sorted(INJECTABLE_REST_CODES))
            raise ValueError(f"cannot inject REST retCode {code!r}; known: {known}")
        self._check_count(count)
        self._check_rest_path(path)
        self._rest().arm(RestFailure("code", count, path, code=code, reset_header=reset_header))

    def inject_rest_http(self, status: int, count: int = 1, *, path: str | None = None) -> None:
        """Answer the next ``count`` REST requests with HTTP ``status`` (403, 429, 500, 502,
        503, 504) and a non-JSON body."""
        if isinstance(status, bool) or status not in HTTP_FAILURES:
            known = ", ".join(str(c) for c in HTTP_FAILURES)
            raise ValueError(f"cannot inject HTTP status {status!r}; known: {known}")
        self._check_count(count)
        self._check_rest_path(path)
        self._rest().arm(RestFailure("http", count, path, status=status))

    def inject_rest_delay(self, seconds: float, count: int = 1, *, path: str | None = None) -> None:
        """Hold back the responses of the next ``count`` REST requests ``seconds`` each (the
        requests themselves are processed at once)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"seconds must be a number, got {seconds!r}")
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"seconds must be finite and > 0, got {seconds!r}")
        self._check_count(count)
        self._check_rest_path(path)
        self._rest().arm(RestFailure("delay", count, path, seconds=float(seconds)))

    def inject_batch_failure(self, items: Iterable[int], code: int = 10001, count: int = 1) -> None:
        """Fail the orders at indexes ``items`` of the next ``count`` ``create-batch`` requests
        with ``code`` (the other orders are placed): a partial batch failure."""
        chosen = tuple(items)
        if not chosen or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 20 for i in chosen
        ):
            raise ValueError(f"items must be batch indexes 0..19, got {chosen!r}")
        if isinstance(code, bool) or not isinstance(code, int) or code <= 0:
            raise ValueError(f"code must be a positive int, got {code!r}")
        self._check_count(count)
        self._rest().arm(
            RestFailure("batch", count, "/v5/order/create-batch", code=code, items=chosen)
        )

    def clear_rest_failures(self) -> int:
        """Disarm every REST failure switch; returns how many were armed."""
        rest = self._rest()
        count = len(rest.failures)
        rest.failures.clear()
        return count

    def pending_rest_failures(self) -> list[RestFailure]:
        """The armed REST failure switches (``count`` = uses left)."""
        return [dataclasses.replace(f) for f in self._rest().failures]

    @property
    def rest_log(self) -> list[RestRecord]:
        """Every REST request answered so far (the most recent 10,000), oldest first."""
        return list(self._rest().log)

    def rest_calls(self, path: str | None = None, api_key: str | None = None) -> int:
        """How many REST requests were answered (to ``path`` / naming ``api_key`` if given)."""
        return sum(
            1
            for r in self._rest().log
            if (path is None or r.path == path) and (api_key is None or r.api_key == api_key)
        )

    def charge_funding(self, api_key: str, category: str, symbol: str, rate: object) -> list[str]:
        """Settle funding at ``rate`` (e.g. ``"0.0001"``) on the account's open position in
        ``symbol``: a ``Funding`` execution is booked (wallet and realised PnL change), pushed
        on its private ``execution`` / ``position`` / ``wallet`` streams if connected and listed
        by ``/v5/execution/list``. Returns the execIds (empty if the position is flat)."""
        acct = self.trading.by_key(api_key)
        if not self.has_symbol(category, symbol):
            raise ValueError(f"no {category} symbol {symbol!r}")
        items = self.trading.charge_funding(acct, category, symbol, rate)
        return [str(item["execId"]) for item in items]

    # -- the private-outage scenario (see hean.emulator.rest_scenario) ------------------------

    def private_link_down(self, api_key: str, *, mode: str = "refuse") -> list[str]:
        """Drop the account's ``/v5/private`` connections and keep its private link down
        (``mode``: ``refuse`` = new private upgrades get HTTP 503, ``auth`` = only an auth with
        this key is answered by dropping the connection). Returns the dropped conn_ids."""
        from hean.emulator.rest_scenario import LINK_MODES

        self.trading.by_key(api_key)  # KeyError if unknown
        if mode not in LINK_MODES:
            raise ValueError(f"mode must be one of {', '.join(LINK_MODES)}, got {mode!r}")
        self._links_down[api_key] = mode
        dropped = []
        for session in list(self._sessions.values()):
            account = getattr(session, "account", None)
            if (
                isinstance(session, PrivateSession)
                and account is not None
                and account.api_key == api_key
                and not session.closing
            ):
                session.abort("private_outage")
                dropped.append(session.conn_id)
        self._record("link_down", None, f"{api_key} {mode} dropped={len(dropped)}")
        return dropped

    def private_link_up(self, api_key: str) -> None:
        """Let the account's private link come back (clients reconnect by themselves)."""
        if self._links_down.pop(api_key, None) is not None:
            self._record("link_up", None, api_key)

    def private_link_is_down(self, api_key: str) -> bool:
        return api_key in self._links_down

    def outage_events(
        self,
        api_key: str,
        *,
        fills: int = 1,
        partial_fills: int = 1,
        cancels: int = 1,
        new_orders: int = 1,
        funding_rate: object = None,
        funding_symbol: str | None = None,
        seed: int = 0,
    ) -> OutageSummary:
        """Make things happen to an account (see :mod:`hean.emulator.rest_scenario`)."""
        from hean.emulator.rest_scenario import outage_events

        return outage_events(
            self,
            api_key,
            fills=fills,
            partial_fills=partial_fills,
            cancels=cancels,
            new_orders=new_orders,
            funding_rate=funding_rate,
            funding_symbol=funding_symbol,
            seed=seed,
        )

    async def private_outage(
        self,
        api_key: str,
        *,
        fills: int = 1,
        partial_fills: int = 1,
        cancels: int = 1,
        new_orders: int = 1,
        funding_rate: object = None,
        funding_symbol: str | None = None,
        seed: int = 0,
        hold: float = 0.0,
        restore: bool = True,
        mode: str = "refuse",
    ) -> OutageSummary:
        """The private-outage scenario: link down, :meth:`outage_events`, ``hold`` seconds,
        link up unless ``restore`` is False (see :mod:`hean.emulator.rest_scenario`)."""
        if isinstance(hold, bool) or not isinstance(hold, int | float) or not hold >= 0:
            raise ValueError(f"hold must be a number of seconds >= 0, got {hold!r}")
        async with self.private_link_lost(api_key, mode=mode, restore=restore) as dropped:
            summary = self.outage_events(
                api_key,
                fills=fills,
                partial_fills=partial_fills,
                cancels=cancels,
                new_orders=new_orders,
                funding_rate=funding_rate,
                funding_symbol=funding_symbol,
                seed=seed,
            )
            if hold:
                await asyncio.sleep(hold)
        return dataclasses.replace(summary, dropped=tuple(dropped))

    @contextlib.asynccontextmanager
    async def private_link_lost(
        self, api_key: str, *, mode: str = "refuse", restore: bool = True
    ) -> AsyncIterator[list[str]]:
        """``async with emu.private_link_lost(key) as dropped:`` the link is down inside (and
        after it too with ``restore=False``)."""
        dropped = self.private_link_down(api_key, mode=mode)
        try:
            for _ in range(3):  # let the drops land before anything happens
                await asyncio.sleep(0)
            yield dropped
        finally:
            if restore:
                self.private_link_up(api_key)

    # -- system status ------------------------------------------------------------------------

    def announce_maintenance(
        self,
        begin_ms: int,
        end_ms: int,
        *,
        title: str = "System maintenance",
        state: str = "upcoming",
        window_id: str | None = None,
        href: str = "",
        service_types: Sequence[int] = (2, 3, 4, 5),
        product: Sequence[int] = (1, 2),
        maintain_type: int = 1,
        env: int = 1,
    ) -> str:
        """Announce a maintenance window (or, with its ``window_id``, a new state of one) on
        ``system.status``: every subscriber gets a message with this window. Returns its id.

        ``state`` is ``upcoming``, ``ongoing`` or ``completed``; the emulator itself does not
        change its behaviour during the window (combine with faults for that).
        """
        window = self.status.announce(
            begin_ms,
            end_ms,
            title=title,
            state=state,
            window_id=window_id,
            href=href,
            service_types=service_types,
            product=product,
            maintain_type=maintain_type,
            env=env,
        )
        data = shapes.encode(shapes.system_status(self.server_time_ms(), [window.item()]))
        for session in list(self._sessions.values()):
            info = session.info
            if (
                session.category == STATUS_KIND
                and info is not None
                and STATUS_TOPIC in info.subscriptions
            ):
                session.push(STATUS_TOPIC, data)
        self._record("maintenance", None, f"{window.id} {window.state}")
        return window.id

    # -- observability ------------------------------------------------------------------------

    @property
    def connections(self) -> list[ConnectionInfo]:
        """Every connection accepted so far (most recent 10,000), live objects."""
        return list(self._infos)

    @property
    def connection_log(self) -> list[LogEntry]:
        """``(monotonic, event, conn_id, detail)`` for attempt/accept/reject/close/stall."""
        return list(self._log)

    def live_connections(self, category: str | None = None) -> list[ConnectionInfo]:
        """Connections that are open and not being closed, optionally of one category."""
        return [
            s.info
            for s in self._sessions.values()
            if s.info is not None and not s.closing and (category is None or s.category == category)
        ]

    def connection(self, conn_id: str) -> ConnectionInfo:
        for info in reversed(self._infos):
            if info.conn_id == conn_id:
                return info
        raise KeyError(f"no connection {conn_id!r}")

    def output_delay(self, conn_id: str) -> float:
        """Seconds the oldest byte queued for a connection behind a slow drip (the ``drip``
        fault) has waited: how far behind the venue that client is (0 when nothing waits)."""
        session = self._sessions.get(conn_id)
        return 0.0 if session is None else session.drip_delay()

    def sent_by_topic(self, conn_id: str) -> dict[str, int]:
        """Data messages sent to a connection, per topic."""
        return dict(self.connection(conn_id).sent_by_topic)

    async def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.005
    ) -> T:
        """Poll ``predicate`` (real time) until it returns something truthy; return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(interval)
