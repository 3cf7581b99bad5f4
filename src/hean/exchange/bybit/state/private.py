"""Private account messages: decode a :class:`Frame` into immutable typed items (protocol.md §6).

Envelope: ``{"id": str, "topic": str, "creationTime": int ms, "data": [...]}`` (no ``type``, no
``ts``; ``execution.fast`` has no ``id``). Topics arrive under the name subscribed, all-in-one
(``order``) or categorised (``order.linear``).

Decoding is tolerant where a feed changes under you, strict where a wrong value would mislead:

* unknown fields are ignored; every field the docs list is decoded when present and ``None``
  when missing, apart from a few essential ones per item (an order without ``orderId`` is no
  order);
* enumerations (``orderStatus``, ``side``, ``execType``, ``category`` ...) are plain strings, so a
  value Bybit adds tomorrow is kept as sent rather than rejected;
* prices, sizes, fees and most timestamps stay the exact strings Bybit sent (``createdTime`` and
  the like are ms strings; ``""`` means "not set"). Helpers: :func:`to_float`, :func:`to_ms`;
* numbers sent as strings, and the reverse, are coerced where the docs say integer or boolean;
* a message whose ``data`` is not an array of objects, or with an item missing an essential field
  or carrying a value of the wrong kind, raises :class:`ValueError` for the whole message: the
  caller counts it and drops it (never half a message), and the connection carries on.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hean.core.events import (
    EventType,
    ExecutionEvent,
    OrderUpdateEvent,
    PositionUpdateEvent,
    WalletUpdateEvent,
)
from hean.exchange.bybit.protocol.codec import Frame

__all__ = [
    "PRIVATE_STREAMS",
    "Execution",
    "ExtraFee",
    "FastExecution",
    "Order",
    "Position",
    "Wallet",
    "WalletCoin",
    "decode_executions",
    "decode_fast_executions",
    "decode_orders",
    "decode_positions",
    "decode_wallets",
    "private_event",
    "stream_of",
    "to_float",
    "to_ms",
]

PRIVATE_STREAMS: dict[str, tuple[str, ...]] = {
    "order": ("spot", "linear", "inverse", "option"),
    "execution": ("spot", "linear", "inverse", "option"),
    "execution.fast": ("spot", "linear", "inverse", "option"),
    "position": ("linear", "inverse", "option"),
    "wallet": (),
    "greeks": (),
    "dcp.future": (),
    "dcp.spot": (),
    "dcp.option": (),
}
"""Private streams and the categories each may be narrowed to (``order.linear`` ...)."""


def to_float(value: str | None) -> float | None:
    """A Bybit number string as a float; ``None`` for ``None`` or ``""``."""
    if value is None or value == "":
        return None
    return float(value)


def to_ms(value: str | int | None) -> int | None:
    """A Bybit ms timestamp (string or int) as an int; ``None`` for ``None``, ``""`` or ``"0"``."""
    if value is None or value == "":
        return None
    ms = int(value)
    return ms or None


class _Item(msgspec.Struct, frozen=True, gc=False, kw_only=True, rename="camel"):
    """Base of the private items: camelCase names on the wire, snake_case in Python."""


class Order(_Item, frozen=True, gc=False, kw_only=True):
    """One order update (``order`` topic, protocol.md §6.1).

    ``order_status`` is e.g. ``New``, ``PartiallyFilled``, ``Filled``, ``Cancelled``,
    ``Rejected``, ``Untriggered``, ``Triggered``, ``Deactivated`` (kept as sent).
    A cancel racing a fill can produce two ``Filled`` updates for one order.
    """

    order_id: str
    symbol: str
    category: str | None = None
    order_link_id: str | None = None
    parent_order_link_id: str | None = None
    is_leverage: str | None = None
    block_trade_id: str | None = None
    price: str | None = None
    broker_order_price: str | None = None
    qty: str | None = None
    side: str | None = None
    position_idx: int | None = None
    order_status: str | None = None
    create_type: str | None = None
    cancel_type: str | None = None
    reject_reason: str | None = None
    avg_price: str | None = None
    leaves_qty: str | None = None
    leaves_value: str | None = None
    cum_exec_qty: str | None = None
    cum_exec_value: str | None = None
    cum_exec_fee: str | None = None
    closed_pnl: str | None = None
    fee_currency: str | None = None
    time_in_force: str | None = None
    order_type: str | None = None
    stop_order_type: str | None = None
    oco_trigger_by: str | None = None
    order_iv: str | None = None
    market_unit: str | None = None
    slippage_tolerance_type: str | None = None
    slippage_tolerance: str | None = None
    trigger_price: str | None = None
    take_profit: str | None = None
    stop_loss: str | None = None
    tpsl_mode: str | None = None
    tp_limit_price: str | None = None
    sl_limit_price: str | None = None
    tp_trigger_by: str | None = None
    sl_trigger_by: str | None = None
    trigger_direction: int | None = None
    trigger_by: str | None = None
    last_price_on_created: str | None = None
    reduce_only: bool | None = None
    close_on_trigger: bool | None = None
    place_type: str | None = None
    smp_type: str | None = None
    smp_group: int | None = None
    smp_order_id: str | None = None
    created_time: str | None = None
    """Unix ms as a string (see :func:`to_ms`)."""
    updated_time: str | None = None
    cum_fee_detail: dict[str, str] | None = None
    """Fee per coin, e.g. ``{"MNT": "0.0024"}``."""
    rpi_taker_access: bool | None = None
    rpi_matched_qty: str | None = None


class ExtraFee(_Item, frozen=True, gc=False, kw_only=True):
    """One extra fee of an execution (e.g. a GST)."""

    fee_coin: str | None = None
    fee_type: str | None = None
    sub_fee_type: str | None = None
    fee_rate: str | None = None
    fee: str | None = None


class Execution(_Item, frozen=True, gc=False, kw_only=True):
    """One execution (``execution`` topic, protocol.md §6.2). ``exec_type`` is ``Trade``,
    ``Funding``, ``BustTrade``, ``AdlTrade``, ``Settle``, ``Delivery`` ... (kept as sent)."""

    exec_id: str
    symbol: str
    order_id: str
    category: str | None = None
    is_leverage: str | None = None
    order_link_id: str | None = None
    side: str | None = None
    order_price: str | None = None
    order_qty: str | None = None
    leaves_qty: str | None = None
    create_type: str | None = None
    order_type: str | None = None
    stop_order_type: str | None = None
    exec_fee: str | None = None
    exec_price: str | None = None
    exec_qty: str | None = None
    exec_pnl: str | None = None
    exec_type: str | None = None
    exec_value: str | None = None
    exec_time: str | None = None
    """Unix ms as a string."""
    is_maker: bool | None = None
    fee_rate: str | None = None
    trade_iv: str | None = None
    mark_iv: str | None = None
    mark_price: str | None = None
    index_price: str | None = None
    underlying_price: str | None = None
    block_trade_id: str | None = None
    closed_size: str | None = None
    extra_fees: list[ExtraFee] | None = None
    seq: int | None = None
    fee_currency: str | None = None
    market_unit: str | None = None


class FastExecution(_Item, frozen=True, gc=False, kw_only=True):
    """One fast execution (``execution.fast``, protocol.md §6.3): trades only, fewer fields.
    ``order_link_id`` is always ``""`` for maker trades."""

    exec_id: str
    symbol: str
    order_id: str
    category: str | None = None
    is_maker: bool | None = None
    order_link_id: str | None = None
    exec_price: str | None = None
    exec_qty: str | None = None
    side: str | None = None
    exec_time: str | None = None
    seq: int | None = None


class Position(_Item, frozen=True, gc=False, kw_only=True):
    """One position (``position`` topic, protocol.md §6.4). ``side`` is ``""`` when flat."""

    symbol: str
    category: str | None = None
    side: str | None = None
    size: str | None = None
    position_idx: int | None = None
    position_value: str | None = None
    risk_id: int | None = None
    risk_limit_value: str | None = None
    entry_price: str | None = None
    mark_price: str | None = None
    leverage: str | None = None
    break_even_price: str | None = None
    auto_add_margin: int | None = None
    position_im: str | None = msgspec.field(default=None, name="positionIM")
    position_mm: str | None = msgspec.field(default=None, name="positionMM")
    position_im_by_mp: str | None = msgspec.field(default=None, name="positionIMByMp")
    position_mm_by_mp: str | None = msgspec.field(default=None, name="positionMMByMp")
    liq_price: str | None = None
    take_profit: str | None = None
    stop_loss: str | None = None
    trailing_stop: str | None = None
    unrealised_pnl: str | None = None
    cur_realised_pnl: str | None = None
    cum_realised_pnl: str | None = None
    session_avg_price: str | None = None
    delta: str | None = None
    gamma: str | None = None
    vega: str | None = None
    theta: str | None = None
    position_status: str | None = None
    adl_rank_indicator: int | None = None
    is_reduce_only: bool | None = None
    created_time: str | None = None
    updated_time: str | None = None
    open_time: int | None = None
    seq: int | None = None
    """``-1`` if the position never traded."""
    mmr_sys_updated_time: str | None = None
    leverage_sys_updated_time: str | None = None
    tpsl_mode: str | None = None
    """Deprecated (always ``Full``)."""
    bust_price: str | None = None
    """Deprecated (``""``)."""
    position_balance: str | None = None
    """Deprecated."""
    trade_mode: int | None = None
    """Deprecated (``0``)."""


class WalletCoin(_Item, frozen=True, gc=False, kw_only=True):
    """One coin of a wallet (protocol.md §6.5)."""

    coin: str
    equity: str | None = None
    usd_value: str | None = None
    wallet_balance: str | None = None
    locked: str | None = None
    spot_hedging_qty: str | None = None
    borrow_amount: str | None = None
    accrued_interest: str | None = None
    total_order_im: str | None = msgspec.field(default=None, name="totalOrderIM")
    total_position_im: str | None = msgspec.field(default=None, name="totalPositionIM")
    total_position_mm: str | None = msgspec.field(default=None, name="totalPositionMM")
    unrealised_pnl: str | None = None
    cum_realised_pnl: str | None = None
    bonus: str | None = None
    collateral_switch: bool | None = None
    margin_collateral: bool | None = None
    col_res: str | None = None
    spot_borrow: str | None = None
    free: str | None = None
    """Deprecated."""
    available_to_borrow: str | None = None
    """Deprecated (``""``)."""
    available_to_withdraw: str | None = None
    """Deprecated."""


class Wallet(_Item, frozen=True, gc=False, kw_only=True):
    """One wallet (account) update (``wallet`` topic, protocol.md §6.5)."""

    account_type: str | None = None
    """``UNIFIED`` (kept as sent)."""
    account_im_rate: str | None = msgspec.field(default=None, name="accountIMRate")
    account_mm_rate: str | None = msgspec.field(default=None, name="accountMMRate")
    account_im_rate_by_mp: str | None = msgspec.field(default=None, name="accountIMRateByMp")
    account_mm_rate_by_mp: str | None = msgspec.field(default=None, name="accountMMRateByMp")
    total_equity: str | None = None
    total_wallet_balance: str | None = None
    total_margin_balance: str | None = None
    total_available_balance: str | None = None
    total_perp_upl: str | None = msgspec.field(default=None, name="totalPerpUPL")
    total_initial_margin: str | None = None
    total_maintenance_margin: str | None = None
    total_initial_margin_by_mp: str | None = None
    total_maintenance_margin_by_mp: str | None = None
    account_ltv: str | None = msgspec.field(default=None, name="accountLTV")
    """Deprecated."""
    coin: list[WalletCoin] = msgspec.field(default_factory=list)

    def coin_of(self, name: str) -> WalletCoin | None:
        """The entry for coin ``name`` (e.g. ``USDT``), if present."""
        for coin in self.coin:
            if coin.coin == name:
                return coin
        return None


def _convert(data: Any, kind: type[Any], what: str) -> list[Any]:
    if data.__class__ is not list:
        raise ValueError(f"{what} data is not an array")
    try:
        return msgspec.convert(data, list[kind], strict=False)  # type: ignore[valid-type]
    except msgspec.ValidationError as exc:
        raise ValueError(f"bad {what}: {exc}") from None


def decode_orders(frame: Frame) -> list[Order]:
    """The orders of an ``order`` / ``order.<category>`` frame.

    Raises:
        ValueError: ``data`` is not an array of orders, or an item is bad.
    """
    return _convert(frame.data, Order, "order")


def decode_executions(frame: Frame) -> list[Execution]:
    """The executions of an ``execution`` / ``execution.<category>`` frame.

    Raises:
        ValueError: ``data`` is not an array of executions, or an item is bad.
    """
    return _convert(frame.data, Execution, "execution")


def decode_fast_executions(frame: Frame) -> list[FastExecution]:
    """The executions of an ``execution.fast`` / ``execution.fast.<category>`` frame.

    Raises:
        ValueError: ``data`` is not an array of executions, or an item is bad.
    """
    return _convert(frame.data, FastExecution, "fast execution")


def decode_positions(frame: Frame) -> list[Position]:
    """The positions of a ``position`` / ``position.<category>`` frame.

    Raises:
        ValueError: ``data`` is not an array of positions, or an item is bad.
    """
    return _convert(frame.data, Position, "position")


def decode_wallets(frame: Frame) -> list[Wallet]:
    """The wallets of a ``wallet`` frame.

    Raises:
        ValueError: ``data`` is not an array of wallets, or an item is bad.
    """
    return _convert(frame.data, Wallet, "wallet")


def stream_of(topic: str) -> str | None:
    """The stream a private topic belongs to (``order.linear`` -> ``order``,
    ``execution.fast.spot`` -> ``execution.fast``), or ``None`` if it is not one we know."""
    if topic in PRIVATE_STREAMS:
        return topic
    base, _, category = topic.rpartition(".")
    if base in PRIVATE_STREAMS and category in PRIVATE_STREAMS[base]:
        return base
    return None


def private_event(
    frame: Frame, connection: str, recv_time: float, recv_wall_ms: int
) -> tuple[EventType, Any] | None:
    """Decode a private data frame into ``(event_type, event)``.

    Returns ``None`` for a topic without a decoder here (``greeks``, ``dcp.*``, unknown).

    Raises:
        ValueError: the message is malformed (see the module docstring).
    """
    topic = frame.topic or ""
    stream = stream_of(topic)
    msg_id = frame.id
    created = frame.creationTime if frame.creationTime is not None else 0
    if stream == "order":
        return EventType.ORDER_UPDATE, OrderUpdateEvent(
            connection, topic, decode_orders(frame), msg_id, created, recv_time, recv_wall_ms
        )
    if stream == "execution":
        return EventType.EXECUTION, ExecutionEvent(
            connection,
            topic,
            False,
            decode_executions(frame),
            msg_id,
            created,
            recv_time,
            recv_wall_ms,
        )
    if stream == "execution.fast":
        return EventType.EXECUTION, ExecutionEvent(
            connection,
            topic,
            True,
            decode_fast_executions(frame),
            msg_id,
            created,
            recv_time,
            recv_wall_ms,
        )
    if stream == "position":
        return EventType.POSITION_UPDATE, PositionUpdateEvent(
            connection, topic, decode_positions(frame), msg_id, created, recv_time, recv_wall_ms
        )
    if stream == "wallet":
        return EventType.WALLET_UPDATE, WalletUpdateEvent(
            connection, topic, decode_wallets(frame), msg_id, created, recv_time, recv_wall_ms
        )
    return None
