"""What ``hean monitor`` measures, and its verdict. Pure logic: fed events and ``now``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hean.core.events import (
    ConnectionStateEvent,
    OrderBookEvent,
    SubscriptionEvent,
    SubscriptionStatus,
    TickEvent,
)
from hean.core.lifecycle import ConnectionState

__all__ = [
    "MonitorTracker",
    "PrivateStats",
    "SymbolStats",
    "TradeStats",
    "decimals_of",
    "fmt_price",
]


def decimals_of(text: object) -> int | None:
    """Decimals of a price as the exchange wrote it (``"58552.10"`` -> 2): the instrument's tick
    precision, since Bybit writes every price on its tick. ``None`` for anything else."""
    if not isinstance(text, str) or not text:
        return None
    _, dot, frac = text.partition(".")
    return len(frac) if dot else 0


def fmt_price(value: float | None, decimals: int | None) -> str:
    """A price with the instrument's decimals (``-`` when unknown)."""
    if value is None:
        return "-"
    if decimals is None:
        return f"{value:g}"
    return f"{value:.{decimals}f}"


@dataclass(slots=True)
class SymbolStats:
    ticks: int = 0
    first_at: float | None = None
    last_at: float | None = None
    longest_gap: float = 0.0
    last_price: float | None = None
    bid: float | None = None
    ask: float | None = None
    max_lag_ms: float | None = None
    """Largest (local receive wall time - exchange ts) seen; needs synchronised clocks."""
    book_bid: tuple[str, str] | None = None
    book_ask: tuple[str, str] | None = None
    book_valid: bool | None = None
    book_updates: int = 0
    book_resyncs: int = 0
    decimals: int | None = None
    """Price decimals (the tick's), learnt from the strings the exchange sent."""

    def learn(self, text: object) -> None:
        d = decimals_of(text)
        if d is not None and (self.decimals is None or d > self.decimals):
            self.decimals = d

    def rounded(self, value: float | None) -> float | None:
        """``value`` rounded to the tick's decimals (a JSON number without float noise)."""
        if value is None or self.decimals is None:
            return value
        return round(value, self.decimals)


@dataclass(slots=True)
class PrivateStats:
    """What ``--private`` watches: auth and the account events."""

    url: str
    auth: str = "not_authenticated"
    auth_detail: str = ""
    state: str = "idle"
    events: dict[str, int] = field(
        default_factory=lambda: {"order": 0, "execution": 0, "position": 0, "wallet": 0}
    )
    gaps: int = 0
    account: str = "not_watched"
    """The account view (``--private`` with a REST URL): ``in_sync``, ``reconciling``,
    ``failing``, ``not_started`` or ``not_watched`` (no REST URL for ``--url``)."""
    reconciliations: int = 0
    last_run: str = ""

    def on_event(self, kind: str) -> None:
        self.events[kind] += 1


@dataclass(slots=True)
class TradeStats:
    """The order-entry connection ``--private`` opens too: its auth and state."""

    url: str
    auth: str = "not_authenticated"
    auth_detail: str = ""
    state: str = "idle"


@dataclass(slots=True)
class MonitorTracker:
    """Counts ticks per symbol, gaps, reconnects and rejections; decides stable or not.

    Args:
        symbols: the symbols asked for (each must be seen for a stable verdict).
        started_at: monotonic time the run started.
        max_gap: longest tolerated silence per symbol, seconds.
    """

    symbols: list[str]
    started_at: float
    max_gap: float = 10.0
    per_symbol: dict[str, SymbolStats] = field(default_factory=dict)
    ticks: int = 0
    drops: int = 0
    """Times a live connection was lost."""
    drop_reasons: list[str] = field(default_factory=list)
    reconnects: int = 0
    """Times the connection was live again after a drop."""
    connect_attempts: int = 0
    """Connection attempts (the first included)."""
    failed_attempts: int = 0
    """Attempts that never became live."""
    state: ConnectionState = ConnectionState.IDLE
    live_at: float | None = None
    rejected: dict[str, str] = field(default_factory=dict)
    books: bool = False
    """Order books are watched too (``--books``): they must be seen and valid at the end."""
    private: PrivateStats | None = None
    """The private stream is watched too (``--private``)."""
    trade: TradeStats | None = None
    """The order-entry connection is watched too (``--private`` without ``--no-trade``)."""
    others: set[str] = field(default_factory=set)
    """Names of connections whose state events are not the public connection's."""

    def __post_init__(self) -> None:
        for symbol in self.symbols:
            self.per_symbol.setdefault(symbol, SymbolStats())

    def on_tick(self, event: TickEvent) -> None:
        self.ticks += 1
        stats = self.per_symbol.get(event.symbol)
        if stats is None:
            stats = self.per_symbol[event.symbol] = SymbolStats()
        now = event.recv_time
        if stats.last_at is not None:
            gap = now - stats.last_at
            if gap > stats.longest_gap:
                stats.longest_gap = gap
        else:
            stats.first_at = now
        stats.last_at = now
        stats.ticks += 1
        fields = getattr(event.ticker, "fields", None)
        if isinstance(fields, dict):
            stats.learn(fields.get("lastPrice"))
        if event.last_price is not None:
            stats.last_price = event.last_price
        if event.bid is not None:
            stats.bid = event.bid
        if event.ask is not None:
            stats.ask = event.ask
        lag = event.recv_wall_ms - event.exchange_ts
        if stats.max_lag_ms is None or lag > stats.max_lag_ms:
            stats.max_lag_ms = float(lag)

    def on_book(self, event: OrderBookEvent) -> None:
        stats = self.per_symbol.get(event.symbol)
        if stats is None:
            stats = self.per_symbol[event.symbol] = SymbolStats()
        stats.book_updates += 1
        stats.book_valid = event.valid
        stats.book_bid = event.best_bid
        stats.book_ask = event.best_ask
        if event.best_bid is not None:
            stats.learn(event.best_bid[0])
        if event.best_ask is not None:
            stats.learn(event.best_ask[0])

    def on_state(self, event: ConnectionStateEvent) -> None:
        if event.connection in self.others:
            return  # the order-entry connection, on the same bus, is watched on its own
        S = ConnectionState
        old, new = self.state, event.new
        self.state = new
        if new is S.CONNECTING:
            self.connect_attempts += 1
        if new is S.LIVE:
            if self.live_at is None:
                self.live_at = event.time
            elif old is not S.LIVE:
                self.reconnects += 1
        elif old is S.LIVE and new not in (S.STOPPING, S.CLOSED):
            self.drops += 1
            self.drop_reasons.append(event.reason)
        elif new in (S.BACKOFF, S.AUTH_FAILED) and old in (S.CONNECTING, S.AUTHENTICATING):
            self.failed_attempts += 1

    def on_subscription(self, event: SubscriptionEvent) -> None:
        if event.status is SubscriptionStatus.RESYNC and event.topic.startswith("orderbook."):
            symbol = event.topic.rsplit(".", 1)[-1]
            if symbol in self.per_symbol:
                self.per_symbol[symbol].book_resyncs += 1
        if event.status is SubscriptionStatus.REJECTED:
            self.rejected[event.topic] = event.reason
        elif event.status is SubscriptionStatus.CONFIRMED:
            self.rejected.pop(event.topic, None)

    def gap_now(self, symbol: str, now: float) -> float:
        """Longest gap so far, counting the silence since the last tick (or since live)."""
        stats = self.per_symbol[symbol]
        since = stats.last_at if stats.last_at is not None else (self.live_at or self.started_at)
        return max(stats.longest_gap, now - since)

    def rate(self, symbol: str, now: float) -> float:
        stats = self.per_symbol[symbol]
        elapsed = now - (self.live_at or self.started_at)
        return stats.ticks / elapsed if elapsed > 0 else 0.0

    def verdict(self, now: float) -> tuple[bool, list[str]]:
        """``(stable, reasons)``; reasons explain an unstable verdict (empty when stable)."""
        reasons = []
        if self.state is not ConnectionState.LIVE:
            reasons.append(f"connection is {self.state.value} at the end")
        if self.drops:
            reasons.append(
                f"{self.drops} drop(s): {', '.join(sorted(set(self.drop_reasons)))} "
                f"({max(0, self.connect_attempts - 1)} reconnect attempt(s), "
                f"{self.failed_attempts} failed)"
            )
        for topic, why in sorted(self.rejected.items()):
            reasons.append(f"subscription {topic} rejected: {why}")
        for symbol in self.symbols:
            stats = self.per_symbol[symbol]
            if stats.ticks == 0:
                reasons.append(f"no ticks for {symbol}")
                continue
            gap = self.gap_now(symbol, now)
            if gap > self.max_gap:
                reasons.append(f"{symbol} went {gap:.1f}s without a tick (limit {self.max_gap:g}s)")
            if self.books and stats.book_valid is not True:
                state = "never received" if stats.book_valid is None else "invalid"
                reasons.append(f"{symbol} order book {state} at the end")
        private = self.private
        if private is not None:
            if private.auth != "authenticated":
                detail = f": {private.auth_detail}" if private.auth_detail else ""
                reasons.append(f"private stream not authenticated ({private.auth}{detail})")
            elif private.state != "live":
                reasons.append(f"private stream is {private.state} at the end")
            elif private.account not in ("in_sync", "not_watched"):
                reasons.append(f"account not in sync at the end ({private.account})")
        trade = self.trade
        if trade is not None:
            if trade.auth != "authenticated":
                detail = f": {trade.auth_detail}" if trade.auth_detail else ""
                reasons.append(f"trade connection not authenticated ({trade.auth}{detail})")
            elif trade.state != "live":
                reasons.append(f"trade connection is {trade.state} at the end")
        return not reasons, reasons

    def report(self, now: float, extra: dict[str, Any]) -> dict[str, Any]:
        """The ``--json`` report."""
        elapsed = now - self.started_at
        stable, reasons = self.verdict(now)
        symbols = {}
        for symbol, stats in self.per_symbol.items():
            symbols[symbol] = {
                "ticks": stats.ticks,
                "rate": round(self.rate(symbol, now), 3),
                "last_price": stats.rounded(stats.last_price),
                "bid": stats.rounded(stats.bid),
                "ask": stats.rounded(stats.ask),
                "decimals": stats.decimals,
                "longest_gap_s": round(self.gap_now(symbol, now), 3)
                if symbol in self.symbols or stats.ticks
                else None,
                "max_lag_ms": stats.max_lag_ms,
            }
            if self.books:
                symbols[symbol].update(
                    {
                        "best_bid": stats.rounded(_price(stats.book_bid)),
                        "best_ask": stats.rounded(_price(stats.book_ask)),
                        "spread": stats.rounded(_spread(stats.book_bid, stats.book_ask)),
                        "book_valid": stats.book_valid,
                        "book_updates": stats.book_updates,
                        "book_resyncs": stats.book_resyncs,
                    }
                )
        seen = sorted(s for s, st in self.per_symbol.items() if st.ticks)
        return {
            "duration_s": round(elapsed, 3),
            "ticks": self.ticks,
            "tick_rate": round(self.ticks / elapsed, 3) if elapsed > 0 else 0.0,
            "symbols_seen": seen,
            "drops": self.drops,
            "drop_reasons": self.drop_reasons,
            "reconnects": self.reconnects,
            "connect_attempts": self.connect_attempts,
            "failed_attempts": self.failed_attempts,
            "rejected_topics": self.rejected,
            "stable": stable,
            "reasons": reasons,
            "symbols": symbols,
            **({} if self.private is None else {"private": _private(self.private)}),
            **({} if self.trade is None else {"trade": _trade(self.trade)}),
            **extra,
        }


def _price(level: tuple[str, str] | None) -> float | None:
    return None if level is None else float(level[0])


def _spread(bid: tuple[str, str] | None, ask: tuple[str, str] | None) -> float | None:
    if bid is None or ask is None:
        return None
    return round(float(ask[0]) - float(bid[0]), 12)


def _trade(t: TradeStats) -> dict[str, Any]:
    return {"url": t.url, "auth": t.auth, "auth_detail": t.auth_detail, "state": t.state}


def _private(p: PrivateStats) -> dict[str, Any]:
    return {
        "url": p.url,
        "auth": p.auth,
        "auth_detail": p.auth_detail,
        "state": p.state,
        "events": dict(p.events),
        "gaps": p.gaps,
        "account": p.account,
        "reconciliations": p.reconciliations,
        "last_run": p.last_run,
    }
