"""Topic parsing and subscribe/unsubscribe decisions (pure functions, no I/O).

Served families (protocol.md §5): ``tickers.{symbol}`` everywhere; ``orderbook.{1,50,200,1000}``,
``publicTrade``, ``kline.{interval}`` and ``priceLimit`` on spot/linear/inverse;
``allLiquidation`` on linear/inverse; ``insurance.{pool}`` and ``adlAlert.{pool}`` with
``USDT``/``USDC`` on linear and ``inverse`` on inverse (see :mod:`hean.emulator.extras`);
``orderbook.rpi`` and ``orderbook.full`` on spot/linear/inverse; ``orderbook.{25,100}`` on
option; ``tickers_lt`` (synthetic leveraged tokens) on spot; ``system.status`` alone on
``/v5/public/misc/status``.

Decision rules (protocol.md §3.3): on spot/linear/inverse a single bad topic fails the whole
request and the reply names only the first offending topic; on option each topic is judged on
its own and listed in ``successTopics`` / ``failTopics``.

Args budget (protocol.md §3.4): the total length of all subscribed ``args`` on one public
connection may not exceed :data:`ARGS_BUDGET` characters. A subscribe that would go above it is
refused as a whole (on option every topic of the request is listed in ``failTopics``);
unsubscribing frees budget. The failure text is the emulator's choice
(:data:`shapes.ARGS_LENGTH_TEXT`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from hean.emulator import shapes
from hean.emulator.candles import INTERVALS
from hean.emulator.extras import LT_TOKENS, POOLS
from hean.emulator.status import STATUS_KIND, STATUS_TOPIC

__all__ = [
    "ARGS_BUDGET",
    "Decision",
    "Topic",
    "args_length",
    "decide",
    "parse_topic",
    "unknown_topic_text",
]

SPOT_MAX_ARGS = 10
#: Characters of ``args`` one public connection may hold subscribed (protocol.md §3.4).
ARGS_BUDGET = 21_000
#: Topic families real Bybit knows on spot; an unknown symbol there gets ``Invalid symbol``.
_SPOT_FAMILIES = ("tickers", "orderbook", "publicTrade", "kline", "priceLimit")
_DEPTHS: dict[str, frozenset[str]] = {
    "spot": frozenset(("1", "50", "200", "1000")),
    "linear": frozenset(("1", "50", "200", "1000")),
    "inverse": frozenset(("1", "50", "200", "1000")),
    "option": frozenset(("25", "100")),
}
_INTERVALS = frozenset(INTERVALS)
#: ``orderbook.rpi`` (50 levels) and ``orderbook.full`` (whole book, 0 = unlimited)
_BOOK_VARIANTS: dict[str, int] = {"rpi": 50, "full": 0}
_VARIANT_KINDS = frozenset(("spot", "linear", "inverse"))


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic the emulator can serve (``depth``/``interval`` for books and klines)."""

    name: str
    family: str
    symbol: str
    depth: int = 0
    interval: str = ""
    #: ``"rpi"`` for ``orderbook.rpi``, ``"full"`` for ``orderbook.full``
    variant: str = ""


def parse_topic(name: str, has_symbol: Callable[[str], bool], kind: str = "linear") -> Topic | None:
    """The served topic for ``name`` on endpoint ``kind``, or ``None`` if it has no such topic."""
    if kind == STATUS_KIND:  # /v5/public/misc/status serves one topic
        return Topic(name, "system", "status") if name == STATUS_TOPIC else None
    family, sep, rest = name.partition(".")
    if not sep:
        return None
    if family == "tickers":
        return Topic(name, family, rest) if has_symbol(rest) else None
    if family in ("orderbook", "kline"):
        param, sep, symbol = rest.partition(".")
        if not sep or not has_symbol(symbol):
            return None
        if family == "orderbook" and param in _BOOK_VARIANTS and kind in _VARIANT_KINDS:
            return Topic(name, family, symbol, depth=_BOOK_VARIANTS[param], variant=param)
        if family == "orderbook" and param in _DEPTHS.get(kind, ()):
            return Topic(name, family, symbol, depth=int(param))
        if family == "kline" and kind != "option" and param in _INTERVALS:
            return Topic(name, family, symbol, interval=param)
        return None
    if family == "publicTrade" and kind != "option":
        return Topic(name, family, rest) if has_symbol(rest) else None
    if family == "allLiquidation" and kind in ("linear", "inverse"):
        return Topic(name, family, rest) if has_symbol(rest) else None
    if family == "priceLimit" and kind != "option":
        return Topic(name, family, rest) if has_symbol(rest) else None
    if family == "tickers_lt" and kind == "spot" and rest in LT_TOKENS:
        return Topic(name, family, rest) if has_symbol(LT_TOKENS[rest][0]) else None
    if family in ("insurance", "adlAlert") and rest in POOLS.get(kind, ()):
        return Topic(name, family, rest)  # ``symbol`` holds the pool
    return None


def unknown_topic_text(kind: str, name: str) -> str:
    """The endpoint's failure text for a topic it does not serve."""
    if kind == "spot" and name.partition(".")[0] in _SPOT_FAMILIES:
        return shapes.invalid_symbol_text(name)
    return shapes.handler_not_found_text(name)


@dataclass(slots=True)
class Decision:
    """Outcome of one subscribe/unsubscribe request."""

    success: bool
    ret_msg: str = ""
    accepted: list[Topic] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def args_length(names: Iterable[str]) -> int:
    """Total length (characters) of topic names, as counted against :data:`ARGS_BUDGET`."""
    return sum(len(name) for name in names)


def _over_budget(current: set[str], accepted: Sequence[Topic], budget: int | None) -> bool:
    if budget is None or not accepted:
        return False
    return args_length(current) + args_length(t.name for t in accepted) > budget


def decide(
    kind: str,
    op: str,
    args: Sequence[str],
    current: set[str],
    has_symbol: Callable[[str], bool],
    *,
    reject_topics: set[str] | frozenset[str] = frozenset(),
    reject_all: bool = False,
    budget: int | None = ARGS_BUDGET,
) -> Decision:
    """Judge a request against the connection's ``current`` subscriptions.

    For ``unsubscribe``, ``accepted`` lists the topics to remove (topics never subscribed are
    accepted as no-ops). ``budget`` is the connection's args-length budget (``None``: unlimited).
    """
    if kind == "spot" and len(args) > SPOT_MAX_ARGS:
        return Decision(False, shapes.ARGS_SIZE_TEXT)
    subscribing = op == "subscribe"
    if kind == "option":
        out = Decision(True)
        seen: set[str] = set()
        for name in args:
            topic = parse_topic(name, has_symbol, kind)
            refused = subscribing and (
                reject_all or name in reject_topics or name in current or name in seen
            )
            if topic is None or refused:
                out.failed.append(name)
            else:
                out.accepted.append(topic)
                seen.add(name)
        out.success = not out.failed
        if subscribing and _over_budget(current, out.accepted, budget):
            return Decision(False, shapes.ARGS_LENGTH_TEXT, failed=list(args))
        return out
    accepted: list[Topic] = []
    seen = set()
    for name in args:
        topic = parse_topic(name, has_symbol, kind)
        if topic is None or (subscribing and (reject_all or name in reject_topics)):
            return Decision(False, unknown_topic_text(kind, name), failed=[name])
        if subscribing and (name in current or name in seen):
            return Decision(False, shapes.already_subscribed_text(name), failed=[name])
        seen.add(name)
        accepted.append(topic)
    if subscribing and reject_all and not args:
        return Decision(False, shapes.handler_not_found_text(""))
    if subscribing and _over_budget(current, accepted, budget):
        return Decision(False, shapes.ARGS_LENGTH_TEXT)
    return Decision(True, accepted=accepted)
