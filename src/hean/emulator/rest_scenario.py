"""The private-outage scenario: while an account's private link is down, its account changes.

This is what HEAN's reconciliation after a private ``GAP`` must heal (issue 11). Python API on
:class:`~hean.emulator.server.Emulator`:

* ``emu.private_link_down(api_key, *, mode="refuse") -> list[str]``: the account's ``/v5/private``
  connections are dropped (TCP close without a close frame; the client sees 1006) and stay
  unavailable: a valid ``auth`` with the key on ``/v5/private`` gets its connection dropped
  instead of a reply (nothing attached; ``emu.auth_log`` records ``link_down``), and with
  ``mode="refuse"`` (the default) every new ``/v5/private`` upgrade is answered HTTP 503 (all
  accounts: a private-gateway outage; ``mode="auth"`` affects only this key). Public and
  ``/v5/trade`` connections stay up; REST keeps working. Returns the dropped conn_ids.
* ``emu.private_link_up(api_key)``: the link may come back (clients reconnect by themselves);
  ``emu.private_link_is_down(api_key) -> bool``.
* ``emu.outage_events(api_key, *, fills=1, partial_fills=1, cancels=1, new_orders=1,
  funding_rate=None, funding_symbol=None, seed=0) -> OutageSummary``: things happen to the
  account, deterministically for a seed (the account's open orders are taken oldest first, then
  shuffled with ``random.Random(f"outage:{seed}")``):

  - ``fills`` open orders fill completely: a simulated taker (owner ``sim:outage``) trades
    against each one through the matching engine at the order's price, whatever its queue
    position (:meth:`SymbolMarket.hit`): executions, the position and the wallet change and the
    trade is public (place such orders near the touch for realistic prices);
  - ``partial_fills`` other open orders (with at least two lots left) fill half their leaves
    (at least one lot) and stay open;
  - ``cancels`` other open orders are cancelled through the REST order-entry path (as if by the
    user from another program: ``cancelType`` ``CancelByUser``);
  - ``new_orders`` limit orders are placed by someone else through the REST path (no
    ``orderLinkId``), resting 5 to 20 ticks below the best bid (Buy) or above the best ask
    (Sell) of a symbol the account has open orders in (else linear ``BTCUSDT``), one lot to
    five lots;
  - ``funding_rate``: a funding charge (:meth:`Emulator.charge_funding`) on every open linear /
    inverse position (of ``funding_symbol`` only, if given).

  Nothing is pushed to the account's private connections that were dropped; everything is
  visible through REST (orders, history after ``rest_history_lag``, executions, positions,
  wallet) and in ``emu.account(api_key)``.
* ``await emu.private_outage(api_key, *, hold=0.0, restore=True, mode="refuse", **events) ->
  OutageSummary``: link down, let the drops land, :meth:`outage_events`, wait ``hold`` seconds,
  then the link comes back (unless ``restore=False``).
* ``async with emu.private_link_lost(api_key, mode="refuse", restore=True) as dropped:``: link
  down inside the block (do anything, e.g. ``outage_events`` or REST calls), back up after it
  (unless ``restore=False``). :meth:`private_outage` is this block around :meth:`outage_events`.

Control endpoints (:mod:`hean.emulator.control`): ``/control/outage?key=K&fills=1&
partial_fills=1&cancels=1&new_orders=1&funding_rate=0.0001&funding_symbol=BTCUSDT&seed=1&
hold=0.5&restore=true&mode=refuse`` (link down, events at once, link up after ``hold``
seconds; returns the summary) and ``/control/link?key=K&state=down|up[&mode=auth]``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hean.emulator.accounts import Account, UserOrder
from hean.emulator.matching import Side
from hean.emulator.rest import Call
from hean.emulator.trading import OpError

if TYPE_CHECKING:
    from hean.emulator.server import Emulator

__all__ = ["LINK_MODES", "OutageSummary", "outage_events"]

#: how a down private link refuses clients (see the module docstring)
LINK_MODES = ("refuse", "auth")
_OWNER = "sim:outage"


@dataclass(frozen=True, slots=True)
class OutageSummary:
    """What :func:`outage_events` did (ids are Bybit's ``orderId`` / ``execId``)."""

    api_key: str
    dropped: tuple[str, ...] = ()
    """conn_ids of the private connections dropped."""
    filled: tuple[str, ...] = ()
    """Orders filled completely by simulated takers."""
    partially_filled: tuple[str, ...] = ()
    """Orders filled in part (still open)."""
    cancelled: tuple[str, ...] = ()
    """Orders cancelled through the REST path."""
    placed: tuple[str, ...] = ()
    """Orders placed by someone else through the REST path (still open)."""
    exec_ids: tuple[str, ...] = ()
    """Every execution booked for the account meanwhile (fills and funding), oldest first."""
    funding_exec_ids: tuple[str, ...] = ()
    statuses: dict[str, str] = field(default_factory=dict)
    """Final ``orderStatus`` of every order above."""

    def as_dict(self) -> dict[str, object]:
        return {
            "api_key": self.api_key,
            "dropped": list(self.dropped),
            "filled": list(self.filled),
            "partially_filled": list(self.partially_filled),
            "cancelled": list(self.cancelled),
            "placed": list(self.placed),
            "exec_ids": list(self.exec_ids),
            "funding_exec_ids": list(self.funding_exec_ids),
            "statuses": dict(self.statuses),
        }


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def _rest_order(emu: Emulator, account: Account, path: str, body: dict[str, object]) -> str:
    """Run a REST order-entry endpoint for ``account`` (no HTTP, no auth, no rate limit)."""
    rest = emu.rest
    if rest is None:  # no REST server: the same op, straight to the trading engine
        op = "order.create" if path.endswith("create") else "order.cancel"
        done = emu.trading.execute(account, op, body)
        if done.code != 0:
            raise RuntimeError(f"{path} refused: {done.code} {done.msg}")
        return str(done.data["orderId"])
    handler = rest.endpoints[path].handler
    call = Call(emu, rest, "POST", path, body, account, emu.server_time_ms())
    try:
        result, _ = handler(call)
    except OpError as err:
        raise RuntimeError(f"{path} refused: {err.code} {err.msg}") from None
    assert isinstance(result, dict)
    return str(result["orderId"])


def _new_order_body(
    emu: Emulator, rng: random.Random, category: str, symbol: str
) -> dict[str, object]:
    market = emu.symbol_market(category, symbol)
    spec = market.spec
    side = Side.BUY if rng.random() < 0.5 else Side.SELL
    away = rng.randint(5, 20)
    if side is Side.BUY:
        best = market.book.best_bid()
        ticks = max(1, (best if best is not None else market.last) - away)
    else:
        best = market.book.best_ask()
        ticks = (best if best is not None else market.last) + away
    return {
        "category": category,
        "symbol": symbol,
        "side": side.value,
        "orderType": "Limit",
        "qty": spec.qty_str(rng.randint(1, 5)),
        "price": spec.price_str(ticks),
        "timeInForce": "GTC",
    }


def outage_events(
    emu: Emulator,
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
    """See the module docstring (``Emulator.outage_events``)."""
    for name, value in (
        ("fills", fills),
        ("partial_fills", partial_fills),
        ("cancels", cancels),
        ("new_orders", new_orders),
    ):
        _count(name, value)
    acct = emu.trading.by_key(api_key)
    rng = random.Random(f"outage:{seed}")
    before = acct.executions_total
    pool: list[UserOrder] = [o for o in acct.orders.values() if o.is_open]  # oldest first
    rng.shuffle(pool)
    filled: list[str] = []
    partial: list[str] = []
    cancelled: list[str] = []
    placed: list[str] = []
    touched: list[UserOrder] = []
    for order in pool[:fills]:
        market = emu.symbol_market(order.category, order.symbol)
        market.hit(order.order_id, order.book.leaves, _OWNER)
        filled.append(order.order_id)
        touched.append(order)
    rest = [o for o in pool[fills:] if o.is_open]
    partial_pool = [o for o in rest if o.book.leaves >= 2][:partial_fills]
    for order in partial_pool:
        market = emu.symbol_market(order.category, order.symbol)
        market.hit(order.order_id, max(1, order.book.leaves // 2), _OWNER)
        partial.append(order.order_id)
        touched.append(order)
    rest = [o for o in rest if o not in partial_pool and o.is_open]
    for order in rest[:cancels]:
        body: dict[str, object] = {
            "category": order.category,
            "symbol": order.symbol,
            "orderId": order.order_id,
        }
        cancelled.append(_rest_order(emu, acct, "/v5/order/cancel", body))
        touched.append(order)
    symbols = sorted({(o.category, o.symbol) for o in pool}) or [("linear", "BTCUSDT")]
    for _ in range(new_orders):
        category, symbol = symbols[rng.randrange(len(symbols))]
        body = _new_order_body(emu, rng, category, symbol)
        order_id = _rest_order(emu, acct, "/v5/order/create", body)
        placed.append(order_id)
        touched.append(acct.orders[order_id])
    funding: list[str] = []
    if funding_rate is not None:
        for category, symbol in sorted(acct.positions):
            pos = acct.positions[(category, symbol)]
            if category not in ("linear", "inverse") or pos.size == 0:
                continue
            if funding_symbol is not None and symbol != funding_symbol:
                continue
            funding += emu.charge_funding(api_key, category, symbol, funding_rate)
    booked = min(acct.executions_total - before, len(acct.executions))
    exec_ids = [str(e["execId"]) for e in list(acct.executions)[len(acct.executions) - booked :]]
    return OutageSummary(
        api_key=api_key,
        filled=tuple(filled),
        partially_filled=tuple(partial),
        cancelled=tuple(cancelled),
        placed=tuple(placed),
        exec_ids=tuple(exec_ids),
        funding_exec_ids=tuple(funding),
        statuses={o.order_id: o.status for o in touched},
    )
