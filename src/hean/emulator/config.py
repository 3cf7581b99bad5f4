"""Emulator configuration (immutable, validated on construction)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hean.emulator.accounts import AccountConfig
from hean.emulator.faults import Faults
from hean.emulator.instruments import is_future_symbol, is_option_symbol
from hean.emulator.market import MarketParams
from hean.emulator.streamfaults import StreamFault

__all__ = [
    "DEFAULT_BOOK_INTERVALS",
    "DEFAULT_SYMBOLS",
    "MARKET_CATEGORIES",
    "PUBLIC_CATEGORIES",
    "EmulatorConfig",
]

#: Categories served on ``/v5/public/<category>``.
PUBLIC_CATEGORIES: tuple[str, ...] = ("spot", "linear", "inverse", "option")
#: Categories that have market data (symbols).
MARKET_CATEGORIES: tuple[str, ...] = ("linear", "inverse", "spot", "option")

DEFAULT_SYMBOLS: Mapping[str, tuple[str, ...]] = {
    "linear": ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"),
    "inverse": ("BTCUSD", "ETHUSD"),
    "spot": ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"),
    "option": ("BTC-26JUN26-60000-C-USDT", "BTC-26JUN26-60000-P-USDT"),
}

#: Seconds between order-book pushes per depth (protocol.md §5.2; 25/100 are option depths).
DEFAULT_BOOK_INTERVALS: Mapping[int, float] = {
    1: 0.01, 50: 0.02, 200: 0.1, 1000: 0.2, 25: 0.02, 100: 0.1,
}  # fmt: skip

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")


def _default_book_intervals() -> dict[int, float]:
    return dict(DEFAULT_BOOK_INTERVALS)


def _default_symbols() -> dict[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in DEFAULT_SYMBOLS.items()}


def _check_seconds(
    name: str, value: object, *, allow_none: bool = False, allow_zero: bool = False
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How the emulator listens and behaves.

    Attributes:
        host: address to bind (loopback by default).
        port: TCP port; 0 picks a free one (read it back from :attr:`Emulator.port`).
        symbols: symbols per market category (``linear``, ``inverse``, ``spot``); linear and
            inverse also take dated futures (``BTCUSDT-26JUN26``, ``BTC-26DEC25``).
        ticker_interval: seconds between ticker messages per symbol on linear/inverse.
        spot_ticker_interval: same for spot; ``None`` = use ``ticker_interval``.
        seed: seed of every random choice (market walk, conn_ids); same seed, same data.
        idle_timeout: cut public clients that sent no ping (JSON ``op:ping`` or a ping frame)
            for this many seconds (TCP close without a close frame); ``None`` = never.
        server_pings: send RFC 6455 ping frames to clients (real Bybit does not).
        server_ping_interval: seconds between those pings.
        latency: artificial delay in seconds applied to every inbound frame before it is
            processed (order is kept). Real networks have some. Keep it > 0 for pybit: pybit
            sends a subscribe *before* recording its ``req_id``, so a zero-latency ack can
            arrive first and kill its connection (``KeyError``). 0 = process at once.
        auto_tick: run the market clock; if False the market only moves on
            :meth:`Emulator.tick` (for exact, deterministic tests).
        market_step: seconds of simulated time per market step (quantum); every cadence is a
            whole number of steps. Capped at the ticker interval.
        book_intervals: seconds between ``orderbook.{depth}`` pushes, per depth (missing depths
            keep their defaults).
        level1_repush: ``orderbook.1`` re-sends an unchanged snapshot (same ``u``) after this
            many seconds.
        kline_interval: seconds between ``confirm:false`` kline updates.
        liquidation_interval: seconds between ``allLiquidation`` pushes (when there are any).
        market: the random process (rates, book shape, kline time scale).
        control: serve the ``/control/…`` HTTP API on the same port; ``None`` = only when
            ``host`` is a loopback address.
        faults: initial global fault switches (copied at start-up).
        stream_faults: wire faults armed globally from the start (copied; see
            :meth:`Emulator.inject`).
        max_frame_size: largest inbound frame accepted (bigger ⇒ close 1009).
        max_write_buffer: a client whose unsent backlog exceeds this many bytes is dropped as
            a slow consumer.
        handshake_timeout: seconds a client may take to send its HTTP upgrade request.
        accounts: the accounts of ``/v5/private`` and ``/v5/trade`` (API key, secret, starting
            balances); empty = one default account (``DEFAULT_API_KEY`` /
            ``DEFAULT_API_SECRET`` in :mod:`hean.emulator.accounts`).
        private_idle_timeout: private/trade connections that sent no ping and were sent
            nothing for this many seconds are cut (Bybit: 600 s); ``max_active_time`` in the URL
            and the ``idle_timeout`` fault override it.
        max_active_time_scale: multiplies the URL's ``max_active_time`` (tests: e.g. 0.01 makes
            ``30s`` mean 0.3 s).
        ack_latency: seconds before a trade-stream request is executed and answered (pybit
            registers its callback *after* sending: a zero-latency ack would be lost, see
            protocol.md §9.1).
        trade_rate_limit: trade requests per second per account and op (10006 beyond).
        clock_skew_ms: the server clock's offset from the emulator's clock in ms, for auth
            ``expires``, trade timestamps, pongs and ``Timenow`` (simulates a client whose
            clock is off by ``-clock_skew_ms``); changeable at run time.
        rest: serve the REST API (:mod:`hean.emulator.rest`) on its own port.
        rest_port: TCP port of the REST API; 0 picks a free one (read it back from
            :meth:`Emulator.rest_url`).
        rest_page_size: largest page the paginated REST endpoints return, whatever ``limit``
            asks for (tests: e.g. 2 forces several pages); ``None`` = Bybit's maximum per
            endpoint.
        rest_history_lag: seconds during which a just-closed order is not yet listed by
            ``/v5/order/history`` (Bybit's history lags the streams).
        rest_rate_scale: multiplies every per-UID REST quota of rest.md §3.2 (rounded, at
            least 1 per second): e.g. 0.2 makes ``/v5/order/create`` allow 2 per second.
        rest_rate_limits: per-path overrides of the per-UID quota (requests, or orders for
            ``create-batch``, per rolling second), e.g. ``{"/v5/order/realtime": 3}``; applied
            after ``rest_rate_scale``.
    """

    host: str = "127.0.0.1"
    port: int = 0
    symbols: Mapping[str, tuple[str, ...]] = field(default_factory=_default_symbols)
    ticker_interval: float = 0.1
    spot_ticker_interval: float | None = None
    seed: int = 1
    idle_timeout: float | None = None
    server_pings: bool = False
    server_ping_interval: float = 20.0
    latency: float = 0.002
    auto_tick: bool = True
    market_step: float = 0.01
    book_intervals: Mapping[int, float] = field(default_factory=_default_book_intervals)
    level1_repush: float = 3.0
    kline_interval: float = 1.0
    liquidation_interval: float = 0.5
    market: MarketParams = field(default_factory=MarketParams)
    control: bool | None = None
    faults: Faults = field(default_factory=Faults)
    stream_faults: tuple[StreamFault, ...] = ()
    max_frame_size: int = 1 << 20
    max_write_buffer: int = 64 << 20
    handshake_timeout: float = 5.0
    accounts: tuple[AccountConfig, ...] = ()
    private_idle_timeout: float = 600.0
    max_active_time_scale: float = 1.0
    ack_latency: float = 0.01
    trade_rate_limit: int = 10
    clock_skew_ms: int = 0
    rest: bool = True
    rest_port: int = 0
    rest_page_size: int | None = None
    rest_history_lag: float = 0.0
    rest_rate_scale: float = 1.0
    rest_rate_limits: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"host must be a non-empty string, got {self.host!r}")
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 <= self.port <= 65535
        ):
            raise ValueError(f"port must be an int in 0..65535, got {self.port!r}")
        if not isinstance(self.symbols, Mapping):
            raise ValueError(f"symbols must be a mapping category -> symbols, got {self.symbols!r}")
        normalised: dict[str, tuple[str, ...]] = {}
        for category, names in self.symbols.items():
            if category not in MARKET_CATEGORIES:
                raise ValueError(
                    f"symbols: unknown or data-less category {category!r}; "
                    f"allowed: {', '.join(MARKET_CATEGORIES)}"
                )
            names_obj: object = names
            if isinstance(names_obj, str):
                raise ValueError(
                    f"symbols[{category!r}] must be a sequence of symbols, not a string"
                )
            names = tuple(names)
            for name in names:
                if category == "option":
                    if not isinstance(name, str) or not is_option_symbol(name):
                        raise ValueError(
                            f"symbols['option']: invalid option symbol {name!r} "
                            "(expected e.g. 'BTC-26JUN26-60000-C' or 'BTC-26JUN26-60000-P-USDT')"
                        )
                elif not isinstance(name, str) or not (
                    _SYMBOL_RE.match(name)
                    or (category in ("linear", "inverse") and is_future_symbol(name))
                ):
                    raise ValueError(
                        f"symbols[{category!r}]: invalid symbol {name!r} "
                        "(expected 2-30 upper-case letters/digits, e.g. 'BTCUSDT', or a dated "
                        "future on linear/inverse, e.g. 'BTCUSDT-26JUN26')"
                    )
            if len(set(names)) != len(names):
                raise ValueError(f"symbols[{category!r}] contains duplicates: {names!r}")
            normalised[category] = names
        object.__setattr__(self, "symbols", normalised)
        _check_seconds("ticker_interval", self.ticker_interval)
        _check_seconds("spot_ticker_interval", self.spot_ticker_interval, allow_none=True)
        _check_seconds("idle_timeout", self.idle_timeout, allow_none=True)
        _check_seconds("server_ping_interval", self.server_ping_interval)
        _check_seconds("latency", self.latency, allow_zero=True)
        _check_seconds("handshake_timeout", self.handshake_timeout)
        for name in ("market_step", "level1_repush", "kline_interval", "liquidation_interval"):
            _check_seconds(name, getattr(self, name))
        if not isinstance(self.book_intervals, Mapping):
            raise ValueError("book_intervals must be a mapping depth -> seconds")
        intervals = _default_book_intervals()
        for depth, seconds in self.book_intervals.items():
            if depth not in intervals:
                raise ValueError(
                    f"book_intervals: unknown depth {depth!r}; known: "
                    f"{', '.join(str(d) for d in intervals)}"
                )
            _check_seconds(f"book_intervals[{depth}]", seconds)
            intervals[depth] = float(seconds)
        object.__setattr__(self, "book_intervals", intervals)
        if self.control is not None and not isinstance(self.control, bool):
            raise ValueError(f"control must be a bool or None, got {self.control!r}")
        if not isinstance(self.market, MarketParams):
            raise ValueError(f"market must be a MarketParams instance, got {self.market!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name in ("server_pings", "auto_tick"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        object.__setattr__(self, "stream_faults", tuple(self.stream_faults))
        if not all(isinstance(f, StreamFault) for f in self.stream_faults):
            raise ValueError(
                f"stream_faults must be StreamFault instances, got {self.stream_faults!r}"
            )
        if not isinstance(self.faults, Faults):
            raise ValueError(f"faults must be a Faults instance, got {self.faults!r}")
        object.__setattr__(self, "accounts", tuple(self.accounts))
        if not all(isinstance(a, AccountConfig) for a in self.accounts):
            raise ValueError(f"accounts must be AccountConfig instances, got {self.accounts!r}")
        keys = [a.api_key for a in self.accounts]
        if len(set(keys)) != len(keys):
            raise ValueError("accounts: two accounts share an API key")
        _check_seconds("private_idle_timeout", self.private_idle_timeout)
        _check_seconds("max_active_time_scale", self.max_active_time_scale)
        _check_seconds("ack_latency", self.ack_latency, allow_zero=True)
        for name in ("trade_rate_limit", "clock_skew_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if self.trade_rate_limit < 1:
            raise ValueError(f"trade_rate_limit must be >= 1, got {self.trade_rate_limit!r}")
        self._check_rest()
        for name in ("max_frame_size", "max_write_buffer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
                raise ValueError(f"{name} must be an int >= 1024 bytes, got {value!r}")

    def _check_rest(self) -> None:
        if not isinstance(self.rest, bool):
            raise ValueError(f"rest must be a bool, got {self.rest!r}")
        if (
            isinstance(self.rest_port, bool)
            or not isinstance(self.rest_port, int)
            or not 0 <= self.rest_port <= 65535
        ):
            raise ValueError(f"rest_port must be an int in 0..65535, got {self.rest_port!r}")
        if self.rest_port and self.rest_port == self.port:
            raise ValueError("rest_port must differ from port (the REST API has its own port)")
        if self.rest_page_size is not None and (
            isinstance(self.rest_page_size, bool)
            or not isinstance(self.rest_page_size, int)
            or self.rest_page_size < 1
        ):
            raise ValueError(
                f"rest_page_size must be an int >= 1 or None, got {self.rest_page_size!r}"
            )
        _check_seconds("rest_history_lag", self.rest_history_lag, allow_zero=True)
        _check_seconds("rest_rate_scale", self.rest_rate_scale)
        if not isinstance(self.rest_rate_limits, Mapping):
            raise ValueError("rest_rate_limits must be a mapping path -> requests per second")
        limits: dict[str, int] = {}
        for path, value in self.rest_rate_limits.items():
            if not isinstance(path, str) or not path.startswith("/v5/"):
                raise ValueError(f"rest_rate_limits: bad path {path!r} (e.g. '/v5/order/create')")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"rest_rate_limits[{path!r}] must be an int >= 1, got {value!r}")
            limits[path] = value
        object.__setattr__(self, "rest_rate_limits", limits)

    @property
    def control_enabled(self) -> bool:
        if self.control is not None:
            return self.control
        return self.host in ("127.0.0.1", "::1", "localhost") or self.host.startswith("127.")

    @property
    def account_configs(self) -> tuple[AccountConfig, ...]:
        """The accounts to create: the configured ones, or the default account."""
        return self.accounts if self.accounts else (AccountConfig(),)

    def interval_for(self, category: str) -> float:
        """Seconds between ticker pushes for ``category``."""
        if category == "spot" and self.spot_ticker_interval is not None:
            return self.spot_ticker_interval
        return self.ticker_interval
