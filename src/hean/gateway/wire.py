"""What the gateway writes to Redis and how: the key layout and the entry encodings.

Layout (every name under one ``prefix``, so several gateways can share one Redis)::

    {prefix}:md:{category}:{topic}     stream: one per market-data topic (tickers, books, trades,
                                       klines, liquidations), entries in receipt order
    {prefix}:snap:{category}:{topic}   string: the latest snapshot entry of a ticker/book stream
                                       and its id (a joiner's starting point, no scan)
    {prefix}:ctl                       stream: heartbeats, connection states, subscription answers
    {prefix}:meta                      hash: epoch, start time, settings of the running gateway
    {prefix}:topics                    hash: ``{category}:{topic}`` -> ``pending``, ``confirmed``
                                       or ``rejected:<reason>``: every topic the gateway
                                       publishes (rewritten on every connect to Redis)
    {prefix}:acct:{name}               stream: account events (orders, executions, positions,
                                       wallet, sync), read through consumer groups
    {prefix}:acct:{name}:state         string: the account state (open orders, positions,
                                       wallets, in sync) as of an id of that stream

Entry ids are chosen by the gateway: ``{epoch}-{g}`` where ``epoch`` is the gateway run's start
(Unix ms, larger than any earlier run's on this prefix) and ``g`` the gateway's own sequence
number of that stream (1, 2, 3 ... with no holes). An id therefore *is* the sequence number: a
consumer that sees ``g`` jump knows entries are missing (trimmed, deleted, or never written) and
never applies a delta across the hole.

Each entry has one field ``d``: a msgpack array (msgspec ``array_like`` structs: no field names
on the wire). Books carry Bybit's ``u`` and ``seq``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from hean.exchange.bybit.state.private import Execution, FastExecution, Order, Position, Wallet
from hean.exchange.bybit.state.public import Kline, Liquidation, Trade

__all__ = [
    "BOOK_DELTA",
    "BOOK_INVALID",
    "BOOK_SNAPSHOT",
    "AccountSnapshot",
    "AcctEntry",
    "BookEntry",
    "CtlEntry",
    "KlineEntry",
    "Layout",
    "LiqEntry",
    "SnapRef",
    "TickEntry",
    "TradeEntry",
    "decode_items",
    "format_id",
    "parse_id",
]

_PREFIX = re.compile(r"^[A-Za-z0-9_.\-:{}]{1,64}$")


class Layout:
    """Key names of one gateway's data (see the module docstring)."""

    __slots__ = ("ctl", "meta", "prefix", "topics")

    def __init__(self, prefix: str = "hean") -> None:
        if not _PREFIX.match(prefix):
            raise ValueError(
                f"prefix must be 1-64 characters of letters, digits and _ . - : {{ }}, "
                f"got {prefix!r}"
            )
        self.prefix = prefix
        self.ctl = f"{prefix}:ctl"
        self.meta = f"{prefix}:meta"
        self.topics = f"{prefix}:topics"

    def md(self, category: str, topic: str) -> str:
        return f"{self.prefix}:md:{category}:{topic}"

    def snap(self, category: str, topic: str) -> str:
        return f"{self.prefix}:snap:{category}:{topic}"

    def acct(self, name: str) -> str:
        return f"{self.prefix}:acct:{name}"

    def acct_state(self, name: str) -> str:
        return f"{self.prefix}:acct:{name}:state"

    def md_pattern(self) -> str:
        return f"{self.prefix}:md:*"


def format_id(epoch: int, g: int) -> str:
    return f"{epoch}-{g}"


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    """``(epoch, g)`` of a stream entry id (``b"1700000000000-42"``)."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode("ascii")
    a, _, b = entry_id.partition("-")
    return int(a), int(b or 0)


class TickEntry(msgspec.Struct, array_like=True, gc=False):
    """A ticker message: the fields it changed (delta) or every field (snapshot)."""

    snap: bool
    ts: int
    cs: int | None
    w: int
    """Gateway receipt, Unix ms."""
    rt: float
    """Gateway receipt, monotonic seconds (comparable between processes of one Linux host)."""
    f: dict[str, Any]


BOOK_DELTA = 0
BOOK_SNAPSHOT = 1
BOOK_INVALID = 2


class BookEntry(msgspec.Struct, array_like=True, gc=False):
    """A book message (``k``: delta, snapshot = the whole book, or an invalid marker)."""

    k: int
    ts: int
    cts: int | None
    w: int
    rt: float
    u: int
    seq: int | None
    b: list[Any]
    a: list[Any]
    why: str = ""


class TradeEntry(msgspec.Struct, array_like=True, gc=False):
    ts: int
    w: int
    rt: float
    items: list[Trade]
    backfilled: bool = False


class KlineEntry(msgspec.Struct, array_like=True, gc=False):
    ts: int
    w: int
    rt: float
    items: list[Kline]
    backfilled: bool = False


class LiqEntry(msgspec.Struct, array_like=True, gc=False):
    ts: int
    w: int
    rt: float
    items: list[Liquidation]


class CtlEntry(msgspec.Struct, array_like=True, gc=False):
    """``kind``: ``hb`` (heartbeat: connection states), ``state`` (a connection changed state),
    ``sub`` (a subscription answer), ``lost`` (entries that could not be published)."""

    kind: str
    w: int
    rt: float
    data: dict[str, Any]


class AcctEntry(msgspec.Struct, array_like=True, gc=False):
    """An account event. ``kind``: ``order``, ``execution``, ``fast``, ``position``, ``wallet``,
    ``sync`` (``data`` has ``in_sync`` / ``reason``), ``reconciled`` (``data``: the run)."""

    kind: str
    topic: str
    msg_id: str | None
    ct: int
    w: int
    reconciled: bool
    items: msgspec.Raw
    data: dict[str, Any] = {}


class SnapRef(msgspec.Struct, array_like=True, gc=False):
    """Value of a ``snap`` key: the id and payload of the latest snapshot entry."""

    id: str
    d: bytes


class AccountSnapshot(msgspec.Struct, array_like=True, gc=False):
    """Value of an ``acct:{name}:state`` key: the account as of stream id ``id``."""

    id: str
    in_sync: bool
    sync_state: str
    orders: list[Order]
    positions: list[Position]
    wallets: list[Wallet]
    w: int


_ITEM_TYPES: dict[str, Any] = {
    "order": list[Order],
    "execution": list[Execution],
    "fast": list[FastExecution],
    "position": list[Position],
    "wallet": list[Wallet],
}
_ITEM_DECODERS = {k: msgspec.msgpack.Decoder(t) for k, t in _ITEM_TYPES.items()}


def decode_items(kind: str, raw: msgspec.Raw) -> list[Any]:
    """The typed items of an account entry (``[]`` for kinds without items)."""
    dec = _ITEM_DECODERS.get(kind)
    if dec is None:
        return []
    items: list[Any] = dec.decode(raw)
    return items


encode = msgspec.msgpack.Encoder().encode
"""msgpack encoder used for every entry."""
