"""Emulator configuration (immutable, validated on construction)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hean.emulator.faults import Faults

__all__ = ["DEFAULT_SYMBOLS", "MARKET_CATEGORIES", "PUBLIC_CATEGORIES", "EmulatorConfig"]

#: Categories served on ``/v5/public/<category>``.
PUBLIC_CATEGORIES: tuple[str, ...] = ("spot", "linear", "inverse", "option")
#: Categories that have market data (symbols) in this version of the emulator.
MARKET_CATEGORIES: tuple[str, ...] = ("linear", "inverse", "spot")

DEFAULT_SYMBOLS: Mapping[str, tuple[str, ...]] = {
    "linear": ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"),
    "inverse": ("BTCUSD", "ETHUSD"),
    "spot": ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"),
}

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")


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
        symbols: symbols per market category (``linear``, ``inverse``, ``spot``).
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
        faults: initial global fault switches (copied at start-up).
        max_frame_size: largest inbound frame accepted (bigger ⇒ close 1009).
        max_write_buffer: a client whose unsent backlog exceeds this many bytes is dropped as
            a slow consumer.
        handshake_timeout: seconds a client may take to send its HTTP upgrade request.
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
    faults: Faults = field(default_factory=Faults)
    max_frame_size: int = 1 << 20
    max_write_buffer: int = 64 << 20
    handshake_timeout: float = 5.0

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
                if not isinstance(name, str) or not _SYMBOL_RE.match(name):
                    raise ValueError(
                        f"symbols[{category!r}]: invalid symbol {name!r} "
                        "(expected 2-30 upper-case letters/digits, e.g. 'BTCUSDT')"
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
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name in ("server_pings", "auto_tick"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.faults, Faults):
            raise ValueError(f"faults must be a Faults instance, got {self.faults!r}")
        for name in ("max_frame_size", "max_write_buffer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
                raise ValueError(f"{name} must be an int >= 1024 bytes, got {value!r}")

    def interval_for(self, category: str) -> float:
        """Seconds between ticker pushes for ``category``."""
        if category == "spot" and self.spot_ticker_interval is not None:
            return self.spot_ticker_interval
        return self.ticker_interval
