"""Merge rules for one account item: which of two copies of an order, a position or a wallet to
keep (rest.md §9). Pure functions over the typed items of
:mod:`hean.exchange.bybit.state.private`; no state, no I/O.

Orders
    The copy with the higher version wins, where the version is, in this order:

    1. a *terminal* status (``Filled``, ``Cancelled``, ``Rejected``, ``PartiallyFilledCanceled``,
       ``Deactivated``) beats any open one;
    2. then the larger ``cumExecQty`` (compared as :class:`~decimal.Decimal`);
    3. then the later ``updatedTime`` (ms).

    On a tie the incoming copy changes nothing if it is the *same content*, else it wins.
Positions
    The larger ``seq`` wins (a missing ``seq``, e.g. from a REST answer without one, counts as
    minus infinity); on equal ``seq`` the later ``updatedTime``; on a tie as for orders, except
    that ``markPrice`` and ``unrealisedPnl`` (which move with the market, not with the account)
    do not make a copy different: a newer value of those is kept silently.
Wallets
    A REST snapshot replaces the wallet of its account type (a new baseline: coins it does not
    list are gone). A stream message updates the account-level fields it carries and replaces
    the coins it lists (other coins stay).

"Same content": every field present in both copies is equal, where present means not ``None``
and not ``""`` (REST and the stream do not carry the same fields, and ``""`` is Bybit's "not
set"), and number strings are compared as numbers (``"0.10"`` equals ``"0.1"``). A copy that only
*adds* fields the held one lacks is kept silently (the held one is enriched; nothing is
reported as changed).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import msgspec

from hean.exchange.bybit.state.private import (
    Execution,
    FastExecution,
    Order,
    Position,
    Wallet,
    WalletCoin,
)

__all__ = [
    "FILL_EXEC_TYPES",
    "TERMINAL_STATUSES",
    "VOLATILE_POSITION_FIELDS",
    "is_fill",
    "is_terminal",
    "merge_order",
    "merge_position",
    "merge_wallet",
    "order_version",
    "position_version",
    "same_content",
    "to_decimal",
    "to_int_ms",
]

TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"Filled", "Cancelled", "Rejected", "PartiallyFilledCanceled", "Deactivated"}
)
"""Order statuses after which an order never changes again (rest.md §8)."""

FILL_EXEC_TYPES: frozenset[str] = frozenset(
    {"Trade", "AdlTrade", "BustTrade", "BlockTrade", "FutureSpread"}
)
"""``execType`` values that are fills of an order. Everything else (``Funding``, ``Settle``,
``Delivery``, ``MovePosition``, ``CorporateAction``, a value Bybit adds later) is not a fill."""

VOLATILE_POSITION_FIELDS: frozenset[str] = frozenset({"mark_price", "unrealised_pnl"})
"""Position fields that move with the market: a difference in them alone is not a change."""

_ZERO = Decimal(0)
_T = TypeVar("_T", bound=msgspec.Struct)


def is_terminal(order: Order) -> bool:
    """The order reached a final status (see :data:`TERMINAL_STATUSES`)."""
    return order.order_status in TERMINAL_STATUSES


def is_fill(execution: Execution | FastExecution) -> bool:
    """The execution is a fill of an order (``execType`` in :data:`FILL_EXEC_TYPES`; fast
    executions are trades only), not funding, settlement, delivery ..."""
    exec_type = getattr(execution, "exec_type", None)
    return exec_type is None or exec_type in FILL_EXEC_TYPES


def to_decimal(value: str | None) -> Decimal:
    """A Bybit number string as a Decimal; ``None``, ``""`` and garbage count as zero, and so
    do ``NaN`` and infinities (a NaN Decimal raises when compared)."""
    if not value:
        return _ZERO
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return _ZERO
    return number if number.is_finite() else _ZERO


def to_int_ms(value: str | int | None) -> int:
    """A Bybit ms timestamp (string or int) as an int; ``None``, ``""`` and garbage are 0."""
    if value is None or value == "":
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def order_version(order: Order) -> tuple[bool, Decimal, int]:
    """(terminal, cumExecQty, updatedTime): the larger version wins."""
    return (
        order.order_status in TERMINAL_STATUSES,
        to_decimal(order.cum_exec_qty),
        to_int_ms(order.updated_time),
    )


def position_version(position: Position) -> tuple[float, int]:
    """(seq, updatedTime) with a missing ``seq`` as minus infinity: the larger version wins."""
    seq = position.seq
    return (float("-inf") if seq is None else float(seq), to_int_ms(position.updated_time))


def _equal_values(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if a.__class__ is str and b.__class__ is str:
        try:
            return Decimal(a) == Decimal(b)
        except (InvalidOperation, ValueError):
            return False
    return False


def same_content(
    held: msgspec.Struct, incoming: msgspec.Struct, ignore: frozenset[str] = frozenset()
) -> tuple[bool, dict[str, Any]]:
    """Whether ``incoming`` says the same as ``held`` (fields present in both are equal, see
    the module docstring), and the fields ``incoming`` adds (present there, absent in
    ``held``), to enrich the held copy with."""
    if held == incoming:  # the common re-delivery: one C-level comparison
        return True, {}
    adds: dict[str, Any] = {}
    for name, a, b in zip(
        held.__struct_fields__,
        msgspec.structs.astuple(held),
        msgspec.structs.astuple(incoming),
        strict=True,
    ):
        if a == b or b is None or b == "" or name in ignore:
            continue
        if a is None or a == "":
            adds[name] = b
            continue
        if not _equal_values(a, b):
            return False, {}
    return True, adds


def _enrich(held: _T, adds: dict[str, Any]) -> _T:
    return msgspec.structs.replace(held, **adds) if adds else held


def merge_order(held: Order | None, incoming: Order) -> tuple[Order, bool]:
    """The order to hold after ``incoming`` arrives, and whether that is a change to report.

    ``(held, False)`` when ``incoming`` is older or the same (possibly enriched with fields
    only ``incoming`` carries); ``(incoming, True)`` when it wins.
    """
    if held is None:
        return incoming, True
    old = order_version(held)
    new = order_version(incoming)
    if new > old:
        return incoming, True
    if new < old:
        return held, False
    same, adds = same_content(held, incoming)
    if same:
        return _enrich(held, adds), False
    return incoming, True


def merge_position(held: Position | None, incoming: Position) -> tuple[Position, bool]:
    """The position to hold after ``incoming`` arrives, and whether that is a change to report
    (see :func:`merge_order`; market-driven fields alone are not a change)."""
    if held is None:
        return incoming, True
    old = position_version(held)
    new = position_version(incoming)
    if new > old:
        return incoming, True
    if new < old:
        return held, False
    same, adds = same_content(held, incoming, VOLATILE_POSITION_FIELDS)
    if same:
        for name in VOLATILE_POSITION_FIELDS:
            value = getattr(incoming, name)
            if value is not None and value != "" and value != getattr(held, name):
                adds[name] = value
        return _enrich(held, adds), False
    return incoming, True


def merge_wallet(
    held: Wallet | None, incoming: Wallet, *, baseline: bool, account_fields: bool = True
) -> tuple[Wallet, bool]:
    """The wallet to hold after ``incoming`` (a REST snapshot when ``baseline``, else a stream
    message whose account-level fields count only when ``account_fields``), and whether it
    differs from ``held``."""
    if baseline or held is None or (account_fields and _covers(incoming, held)):
        merged = incoming  # nothing of ``held`` survives the merge: no rebuild needed
    else:
        coins: dict[str, WalletCoin] = {c.coin: c for c in held.coin}
        for coin in incoming.coin:
            coins[coin.coin] = coin
        fields = (
            {
                name: getattr(incoming, name)
                for name in incoming.__struct_fields__
                if name != "coin" and getattr(incoming, name) is not None
            }
            if account_fields
            else {}
        )
        merged = msgspec.structs.replace(held, coin=list(coins.values()), **fields)
    if held is None:
        return merged, True
    return merged, not _same_wallet(held, merged)


def _covers(incoming: Wallet, held: Wallet) -> bool:
    """Merging ``incoming`` into ``held`` gives ``incoming`` itself: it lists the coins
    ``held`` has, in the same order, and leaves unset only fields ``held`` has unset too."""
    if len(incoming.coin) != len(held.coin):
        return False
    for mine, theirs in zip(held.coin, incoming.coin, strict=True):
        if mine.coin != theirs.coin:
            return False
    values = msgspec.structs.astuple(incoming)
    if None not in values:  # the usual full push: decided in C
        return True
    for a, b in zip(msgspec.structs.astuple(held), values, strict=True):
        if b is None and a is not None:
            return False
    return True


def _same_wallet(a: Wallet, b: Wallet) -> bool:
    if a == b:
        return True
    for name, x, y in zip(
        a.__struct_fields__, msgspec.structs.astuple(a), msgspec.structs.astuple(b), strict=True
    ):
        if name != "coin" and not _equal_or_unset(x, y):
            return False
    coins_b = {c.coin: c for c in b.coin}
    if len(a.coin) != len(coins_b):
        return False
    for coin in a.coin:
        other = coins_b.get(coin.coin)
        if other is None:
            return False
        if coin == other:
            continue
        for x, y in zip(msgspec.structs.astuple(coin), msgspec.structs.astuple(other), strict=True):
            if not _equal_or_unset(x, y):
                return False
    return True


def _equal_or_unset(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if a is None or b is None:
        return False
    return _equal_values(a, b)
