"""Accounts of the emulator's private side: balances, orders, positions, executions (no I/O).

An :class:`Account` is one unified trading account: a wallet of coins, the orders it placed
(through ``/v5/trade``) and one-way-mode positions per linear / inverse / option symbol. The order
entry rules (validation, margin, reduce-only, matching) live in :mod:`hean.emulator.trading`;
this module holds the state and turns it into Bybit's private message items (protocol.md §6):
:func:`order_item`, :func:`execution_item`, :func:`fast_execution_item`, :func:`position_item`,
:func:`wallet_item`. Money is :class:`decimal.Decimal` throughout; prices and sizes are sent as
decimal strings without trailing zeros, as Bybit's private streams do.

Simplifications (documented, deliberate): one-way position mode only (``positionIdx`` 0), one
leverage per account, cross margin with the unrealised PnL of open positions not counted as
available, no conditional / TP-SL orders, options margined like linear contracts (premium x
size), and the mark price is the symbol's last traded price.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from hean.emulator.instruments import InstrumentSpec
from hean.emulator.matching import Order, OrderStatus, Side

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_BALANCES",
    "Account",
    "AccountConfig",
    "AccountView",
    "PositionState",
    "UserOrder",
    "dec",
    "dstr",
    "execution_item",
    "fast_execution_item",
    "order_item",
    "position_item",
    "settle_coin",
    "spot_coins",
    "wallet_item",
]

DEFAULT_API_KEY = "HEANSIMDEFAULTKEY1"
"""The API key of the default account (used when ``EmulatorConfig.accounts`` is empty)."""
DEFAULT_API_SECRET = "HEANSIMDEFAULTSECRET0000000000000001"  # noqa: S105 - a simulation key
"""Its secret (printed by ``hean sim`` at start-up: it protects nothing but a simulation)."""
DEFAULT_BALANCES: Mapping[str, str] = {"USDT": "100000", "USDC": "100000", "BTC": "2", "ETH": "20"}
"""Starting wallet of an account unless configured otherwise."""

_COIN_RE = re.compile(r"^[A-Z0-9]{2,12}$")
_MONEY = Decimal("0.00000001")
_RATE = Decimal("0.0001")
_ZERO = Decimal(0)
_MMR = Decimal("0.005")
"""Maintenance margin rate (one tier for everything)."""
_HISTORY = 10_000


def dec(value: object, name: str = "value") -> Decimal:
    """A finite Decimal from a str / int / float / Decimal (``ValueError`` otherwise)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
            out = Decimal(repr(value))
        elif isinstance(value, int | str | Decimal):
            out = Decimal(value.strip() if isinstance(value, str) else value)
        else:
            raise ValueError(f"{name} must be a number, got {value!r}")
    except InvalidOperation:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not out.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def dstr(value: Decimal, quantum: Decimal | None = _MONEY) -> str:
    """A Decimal as Bybit writes it: no exponent, no trailing zeros (``"0"`` for zero)."""
    if quantum is not None:
        value = value.quantize(quantum, rounding=ROUND_DOWN)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("", "-0"):
        return "0"
    return text


def settle_coin(spec: InstrumentSpec) -> str:
    """The coin a derivative settles in: the base coin for inverse, else the quote coin."""
    if spec.category == "inverse":
        return spec.base
    if spec.category == "option":
        parts = spec.symbol.split("-")
        return parts[4] if len(parts) == 5 else "USDC"
    root, dash, _ = spec.symbol.partition("-")
    quote = root[len(spec.base) :]
    if dash and not quote:  # BTC-26DEC25: a USDC future
        return "USDC"
    return quote or "USDT"


def spot_coins(spec: InstrumentSpec) -> tuple[str, str]:
    """``(base, quote)`` of a spot symbol."""
    return spec.base, spec.symbol[len(spec.base) :] or "USDT"


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One account of the emulator.

    Attributes:
        api_key: its API key (what clients send in ``auth``).
        api_secret: its API secret (HMAC key of the auth signature).
        balances: starting wallet, coin -> amount (str, int, float or Decimal).
        uid: Bybit-style user id (appears in message ids); ``None`` = assigned.
        leverage: leverage of every derivative position and order (initial margin =
            value / leverage).
        taker_fee: fee rate of taker fills on linear / inverse / option.
        maker_fee: fee rate of maker fills on linear / inverse / option.
        spot_fee: fee rate of spot fills (taker and maker).
        read_only: a read-only key: REST order entry answers 10005 (permission denied).
    """

    api_key: str = DEFAULT_API_KEY
    api_secret: str = DEFAULT_API_SECRET
    balances: Mapping[str, object] = field(default_factory=lambda: dict(DEFAULT_BALANCES))
    uid: int | None = None
    leverage: int = 10
    taker_fee: str = "0.00055"
    maker_fee: str = "0.0002"
    spot_fee: str = "0.001"
    read_only: bool = False

    def __post_init__(self) -> None:
        for name in ("api_key", "api_secret"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or value != value.strip():
                raise ValueError(f"{name} must be a non-empty string without spaces around it")
        if not isinstance(self.balances, Mapping):
            raise ValueError("balances must be a mapping coin -> amount")
        clean: dict[str, Decimal] = {}
        for coin, amount in self.balances.items():
            if not isinstance(coin, str) or not _COIN_RE.match(coin):
                raise ValueError(f"balances: bad coin name {coin!r} (e.g. 'USDT')")
            value = dec(amount, f"balances[{coin!r}]")
            if value < 0:
                raise ValueError(f"balances[{coin!r}] must be >= 0, got {amount!r}")
            clean[coin] = value
        object.__setattr__(self, "balances", clean)
        if self.uid is not None and (
            isinstance(self.uid, bool) or not isinstance(self.uid, int) or self.uid <= 0
        ):
            raise ValueError(f"uid must be a positive int or None, got {self.uid!r}")
        if isinstance(self.leverage, bool) or not isinstance(self.leverage, int):
            raise ValueError(f"leverage must be an int, got {self.leverage!r}")
        if not 1 <= self.leverage <= 100:
            raise ValueError(f"leverage must be 1..100, got {self.leverage!r}")
        if not isinstance(self.read_only, bool):
            raise ValueError(f"read_only must be a bool, got {self.read_only!r}")
        for name in ("taker_fee", "maker_fee", "spot_fee"):
            rate = dec(getattr(self, name), name)
            if not 0 <= rate < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    def __repr__(self) -> str:
        # the secret stays out of reprs (and so out of logs and test reports)
        return f"AccountConfig(api_key={self.api_key!r}, uid={self.uid!r})"


@dataclass(slots=True, eq=False)
class UserOrder:
    """An order of an account, with the account-side fields the book does not keep."""

    book: Order
    account: Account
    category: str
    spec: InstrumentSpec
    order_link_id: str
    order_type: str
    tif: str
    reduce_only: bool
    qty_text: str
    """``qty`` as it appears in order messages (spot market buys: the quote amount)."""
    market_unit: str = ""
    last_price_on_created: str = ""
    cum_value: Decimal = _ZERO
    cum_fee: Decimal = _ZERO
    closed_pnl: Decimal = _ZERO
    fee_coin: str = ""
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    created_ms: int = 0
    updated_ms: int = 0
    number: int = 0
    """Its place among the account's orders (0, 1, …; set by :meth:`Account.add_order`)."""

    @property
    def order_id(self) -> str:
        return self.book.order_id

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def side(self) -> Side:
        return self.book.side

    @property
    def is_open(self) -> bool:
        return self.book.is_open

    @property
    def leaves_qty(self) -> Decimal:
        return dec(self.spec.qty_str(self.book.leaves)) if self.is_open else _ZERO

    @property
    def filled_qty(self) -> Decimal:
        return dec(self.spec.qty_str(self.book.filled))

    @property
    def price(self) -> Decimal | None:
        ticks = self.book.price
        return None if ticks is None else dec(self.spec.price_str(ticks))

    @property
    def status(self) -> str:
        status = self.book.status
        return OrderStatus.NEW.value if status is OrderStatus.CREATED else status.value

    def sync_reason(self) -> None:
        """Copy the book's cancel / reject reason into Bybit's two fields."""
        status = self.book.status
        reason = self.book.reason
        if status in (OrderStatus.CANCELLED, OrderStatus.PARTIALLY_FILLED_CANCELED):
            if reason == "CancelByUser":
                self.cancel_type = "CancelByUser"
            elif reason == "CancelByReduceOnly":
                self.cancel_type = "CancelByReduceOnly"
                self.reject_reason = "EC_NoError"
            elif reason:
                self.reject_reason = reason
        elif status is OrderStatus.REJECTED:
            self.reject_reason = "EC_InvalidOrder" if not reason.startswith("EC_") else reason


@dataclass(slots=True)
class PositionState:
    """A one-way-mode position: signed ``size`` and the cost basis of the open part."""

    category: str
    spec: InstrumentSpec
    size: Decimal = _ZERO
    cost: Decimal = _ZERO
    """Linear/option: sum of price x qty of the open part; inverse: sum of qty / price."""
    cum_realised: Decimal = _ZERO
    cur_realised: Decimal = _ZERO
    created_ms: int = 0
    updated_ms: int = 0
    open_time: int = 0
    seq: int = -1

    @property
    def inverse(self) -> bool:
        return self.category == "inverse"

    @property
    def entry(self) -> Decimal:
        size = abs(self.size)
        if size == 0 or self.cost == 0:
            return _ZERO
        return size / self.cost if self.inverse else self.cost / size

    def value_of(self, qty: Decimal, price: Decimal) -> Decimal:
        """Position value of ``qty`` at ``price`` in the settle coin."""
        if price == 0:
            return _ZERO
        return qty / price if self.inverse else qty * price

    @property
    def value(self) -> Decimal:
        """Value at entry (the cost basis)."""
        return self.cost

    def upl(self, mark: Decimal) -> Decimal:
        """Unrealised PnL at ``mark``."""
        if self.size == 0 or mark == 0:
            return _ZERO
        entry = self.entry
        return self._pnl(abs(self.size), entry, mark, long=self.size > 0)

    def _pnl(self, qty: Decimal, entry: Decimal, price: Decimal, *, long: bool) -> Decimal:
        gain = qty / entry - qty / price if self.inverse else (price - entry) * qty
        return gain if long else -gain

    def apply(
        self, side: Side, qty: Decimal, price: Decimal, now_ms: int
    ) -> tuple[Decimal, Decimal]:
        """A fill of ``qty`` at ``price`` on ``side``; returns ``(closed qty, realised PnL)``."""
        signed = qty if side is Side.BUY else -qty
        closed = _ZERO
        pnl = _ZERO
        if self.size != 0 and (self.size > 0) != (signed > 0):
            closed = min(qty, abs(self.size))
            entry = self.entry
            pnl = self._pnl(closed, entry, price, long=self.size > 0)
            share = closed / abs(self.size)
            self.cost -= self.cost * share
            self.size += closed if self.size < 0 else -closed
            if self.size == 0:
                self.cost = _ZERO
            rest = qty - closed
        else:
            rest = qty
        if rest > 0:
            if self.size == 0:
                self.open_time = now_ms
            self.cost += self.value_of(rest, price)
            self.size += rest if side is Side.BUY else -rest
        if self.created_ms == 0:
            self.created_ms = now_ms
        self.updated_ms = now_ms
        return closed, pnl


@dataclass(frozen=True, slots=True)
class AccountView:
    """Ground truth of one account (see :meth:`Emulator.account`), in Bybit's own shapes.

    Attributes:
        api_key: the account's API key.
        uid: its user id.
        balances: coin -> wallet balance (decimal strings).
        available: coin -> what is free for new orders (balance minus locked and margin).
        wallet: the ``wallet`` stream item as it would be pushed now.
        open_orders: ``order`` stream items of the orders still open, oldest first.
        orders: every order the account placed (the most recent 10,000), by ``orderId``.
        positions: ``position`` stream items of every position ever opened.
        executions: ``execution`` stream items, oldest first (the most recent 10,000).
    """

    api_key: str
    uid: int
    balances: dict[str, str]
    available: dict[str, str]
    wallet: dict[str, object]
    open_orders: list[dict[str, object]]
    orders: dict[str, dict[str, object]]
    positions: list[dict[str, object]]
    executions: list[dict[str, object]]

    def position(self, category: str, symbol: str) -> dict[str, object] | None:
        """The position item of one symbol, if it ever traded."""
        for item in self.positions:
            if item["category"] == category and item["symbol"] == symbol:
                return item
        return None


class Account:
    """State of one account. Mutated only by :class:`~hean.emulator.trading.Trading`."""

    def __init__(self, config: AccountConfig, uid: int) -> None:
        self.config = config
        self.uid = uid
        self.api_key = config.api_key
        self.owner = f"acct:{uid}"
        """The owner tag of its orders in the books (never starts with ``sim:``)."""
        self.leverage = Decimal(config.leverage)
        self.taker_fee = dec(config.taker_fee)
        self.maker_fee = dec(config.maker_fee)
        self.spot_fee = dec(config.spot_fee)
        balances: Mapping[str, Decimal] = config.balances  # type: ignore[assignment]
        self.wallet: dict[str, Decimal] = dict(balances)
        self.cum_realised: dict[str, Decimal] = {}
        self.orders: dict[str, UserOrder] = {}
        self._history: deque[str] = deque()
        self._order_count = 0
        self.open: dict[str, UserOrder] = {}
        self.links: dict[str, str] = {}
        """``orderLinkId`` -> ``orderId`` of open orders."""
        self.closed: dict[str, None] = {}
        """Ids of closed orders in the order they closed (the most recent 10,000)."""
        self.positions: dict[tuple[str, str], PositionState] = {}
        self.executions: deque[dict[str, object]] = deque(maxlen=_HISTORY)
        self.executions_total = 0
        """Executions booked so far (``executions[i]`` is number
        ``executions_total - len(executions) + i``, counting from 0)."""

    def __repr__(self) -> str:
        return f"Account(uid={self.uid}, api_key={self.api_key!r})"

    def verify(self, payload: bytes, sign: str) -> bool:
        """Whether ``sign`` is the hex HMAC-SHA256 of ``payload`` with the account's secret
        (upper or lower case hex; compared in constant time)."""
        secret = self.config.api_secret.encode()
        expected = hmac.new(secret, payload, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, sign.lower())

    # -- orders -------------------------------------------------------------------------------

    def add_execution(self, item: dict[str, object]) -> None:
        """Book one ``execution`` stream item."""
        self.executions.append(item)
        self.executions_total += 1

    def add_order(self, order: UserOrder) -> None:
        """Record a new order (:meth:`settle_order` files it as open once it rests)."""
        order.number = self._order_count
        self._order_count += 1
        self.orders[order.order_id] = order
        self._history.append(order.order_id)
        while len(self._history) > _HISTORY:
            old = self._history.popleft()
            if old not in self.open:
                self.orders.pop(old, None)

    def settle_order(self, order: UserOrder) -> None:
        """Forget ``order`` as open if it is closed now."""
        if order.is_open:
            self.open.setdefault(order.order_id, order)
            if order.order_link_id:
                self.links[order.order_link_id] = order.order_id
            return
        self.open.pop(order.order_id, None)
        if order.order_link_id and self.links.get(order.order_link_id) == order.order_id:
            del self.links[order.order_link_id]
        if order.order_id not in self.closed:
            self.closed[order.order_id] = None
            if len(self.closed) > _HISTORY:
                del self.closed[next(iter(self.closed))]

    def find_open(self, category: str, order_id: object, link_id: object) -> UserOrder | None:
        order: UserOrder | None = None
        if isinstance(order_id, str) and order_id:
            order = self.open.get(order_id)
        elif isinstance(link_id, str) and link_id:
            oid = self.links.get(link_id)
            order = self.open.get(oid) if oid is not None else None
        if order is not None and order.category != category:
            return None
        return order

    # -- positions and money ------------------------------------------------------------------

    def position(self, category: str, spec: InstrumentSpec) -> PositionState:
        key = (category, spec.symbol)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = PositionState(category, spec)
        return pos

    def balance(self, coin: str) -> Decimal:
        return self.wallet.get(coin, _ZERO)

    def credit(self, coin: str, amount: Decimal) -> None:
        self.wallet[coin] = self.wallet.get(coin, _ZERO) + amount

    def locked(self, coin: str) -> Decimal:
        """Spot: what open orders hold of ``coin``."""
        total = _ZERO
        for order in self.open.values():
            if order.category != "spot":
                continue
            base, quote = spot_coins(order.spec)
            if order.side is Side.SELL and base == coin:
                total += order.leaves_qty
            elif order.side is Side.BUY and quote == coin and order.price is not None:
                total += order.leaves_qty * order.price
        return total

    def order_im(self, coin: str) -> Decimal:
        """Initial margin of open derivative orders settled in ``coin``."""
        total = _ZERO
        for order in self.open.values():
            if order.category == "spot" or settle_coin(order.spec) != coin:
                continue
            price = order.price
            if price is None or price == 0:
                continue
            leaves = order.leaves_qty
            value = leaves / price if order.category == "inverse" else leaves * price
            total += value / self.leverage
        return total

    def position_im(self, coin: str) -> Decimal:
        return sum(
            (p.value / self.leverage for p in self.positions.values() if self._settles(p, coin)),
            _ZERO,
        )

    def position_mm(self, coin: str) -> Decimal:
        return sum(
            (p.value * _MMR for p in self.positions.values() if self._settles(p, coin)), _ZERO
        )

    def upl(self, coin: str, mark: Callable[[str, str], Decimal]) -> Decimal:
        return sum(
            (
                p.upl(mark(p.category, p.spec.symbol))
                for p in self.positions.values()
                if self._settles(p, coin)
            ),
            _ZERO,
        )

    @staticmethod
    def _settles(pos: PositionState, coin: str) -> bool:
        return pos.size != 0 and settle_coin(pos.spec) == coin

    def available(self, coin: str) -> Decimal:
        """Balance minus spot locks and derivative margin (what new orders may use)."""
        return self.balance(coin) - self.locked(coin) - self.order_im(coin) - self.position_im(coin)


# -- message items (protocol.md §6) ------------------------------------------------------------


def _price(spec: InstrumentSpec, value: Decimal | None) -> str:
    if value is None or value == 0:
        return "0"
    return dstr(value, Decimal(1).scaleb(-spec.price_dp - 4))


def order_item(order: UserOrder) -> dict[str, object]:
    """An ``order`` stream item (§6.1 fields; key order as in the docs' example)."""
    spec = order.spec
    book = order.book
    filled = order.filled_qty
    leaves = order.leaves_qty
    price = order.price
    avg = order.cum_value / filled if filled and order.category != "inverse" else _ZERO
    if filled and order.category == "inverse" and order.cum_value:
        avg = filled / order.cum_value
    leaves_value = _ZERO
    if price is not None and leaves:
        leaves_value = leaves / price if order.category == "inverse" else leaves * price
    fee_detail = {order.fee_coin: dstr(order.cum_fee)} if order.fee_coin and order.cum_fee else {}
    return {
        "category": order.category,
        "symbol": spec.symbol,
        "orderId": book.order_id,
        "orderLinkId": order.order_link_id,
        "parentOrderLinkId": "",
        "blockTradeId": "",
        "isLeverage": "0",
        "side": book.side.value,
        "orderType": order.order_type,
        "cancelType": order.cancel_type,
        "price": "0" if price is None else _price(spec, price),
        "brokerOrderPrice": "",
        "qty": order.qty_text,
        "orderIv": "",
        "timeInForce": order.tif,
        "orderStatus": order.status,
        "createType": "CreateByUser",
        "lastPriceOnCreated": order.last_price_on_created,
        "reduceOnly": order.reduce_only,
        "leavesQty": dstr(leaves),
        "leavesValue": dstr(leaves_value),
        "cumExecQty": dstr(filled),
        "cumExecValue": dstr(order.cum_value),
        "avgPrice": _price(spec, avg) if filled else "0",
        "positionIdx": 0,
        "cumExecFee": dstr(order.cum_fee),
        "closedPnl": dstr(order.closed_pnl),
        "createdTime": str(order.created_ms),
        "updatedTime": str(order.updated_ms),
        "rejectReason": order.reject_reason,
        "stopOrderType": "",
        "tpslMode": "",
        "triggerPrice": "",
        "takeProfit": "",
        "stopLoss": "",
        "tpTriggerBy": "",
        "slTriggerBy": "",
        "tpLimitPrice": "",
        "slLimitPrice": "",
        "triggerDirection": 0,
        "triggerBy": "",
        "closeOnTrigger": False,
        "ocoTriggerBy": "",
        "placeType": "price" if order.category == "option" else "",
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "feeCurrency": order.fee_coin if order.category == "spot" else "",
        "marketUnit": order.market_unit,
        "slippageToleranceType": "UNKNOWN",
        "slippageTolerance": "0",
        "cumFeeDetail": fee_detail,
        "rpiTakerAccess": False,
        "rpiMatchedQty": "0",
    }


@dataclass(frozen=True, slots=True)
class FillInfo:
    """One fill of a user order, as the execution items need it."""

    exec_id: str
    order: UserOrder
    qty: Decimal
    price: Decimal
    value: Decimal
    fee: Decimal
    fee_rate: Decimal
    fee_coin: str
    is_maker: bool
    leaves: Decimal
    closed: Decimal
    pnl: Decimal
    exec_ms: int
    seq: int
    mark: Decimal


def execution_item(fill: FillInfo) -> dict[str, object]:
    """An ``execution`` stream item (§6.2 fields, key order as in the docs' example)."""
    order = fill.order
    spec = order.spec
    return {
        "category": order.category,
        "symbol": spec.symbol,
        "closedSize": dstr(fill.closed),
        "execFee": dstr(fill.fee),
        "execId": fill.exec_id,
        "execPrice": _price(spec, fill.price),
        "execQty": dstr(fill.qty),
        "execType": "Trade",
        "execValue": dstr(fill.value),
        "feeRate": dstr(fill.fee_rate),
        "tradeIv": "",
        "markIv": "",
        "blockTradeId": "",
        "markPrice": _price(spec, fill.mark),
        "indexPrice": "",
        "underlyingPrice": "",
        "leavesQty": dstr(fill.leaves),
        "orderId": order.order_id,
        "orderLinkId": order.order_link_id,
        "orderPrice": "0" if order.price is None else _price(spec, order.price),
        "orderQty": order.qty_text,
        "orderType": order.order_type,
        "stopOrderType": "UNKNOWN",
        "side": order.side.value,
        "execTime": str(fill.exec_ms),
        "isLeverage": "0",
        "isMaker": fill.is_maker,
        "seq": fill.seq,
        "marketUnit": order.market_unit,
        "execPnl": dstr(fill.pnl),
        "createType": "CreateByUser",
        "extraFees": [],
        "feeCurrency": fill.fee_coin,
    }


def fast_execution_item(fill: FillInfo) -> dict[str, object]:
    """An ``execution.fast`` item (§6.3; ``orderLinkId`` is ``""`` for maker fills)."""
    order = fill.order
    return {
        "category": order.category,
        "symbol": order.spec.symbol,
        "execId": fill.exec_id,
        "execPrice": _price(order.spec, fill.price),
        "execQty": dstr(fill.qty),
        "orderId": order.order_id,
        "isMaker": fill.is_maker,
        "orderLinkId": "" if fill.is_maker else order.order_link_id,
        "side": order.side.value,
        "execTime": str(fill.exec_ms),
        "seq": fill.seq,
    }


def position_item(account: Account, pos: PositionState, mark: Decimal) -> dict[str, object]:
    """A ``position`` stream item (§6.4; key order as in the docs' example)."""
    spec = pos.spec
    size = abs(pos.size)
    entry = pos.entry
    lev = account.leverage
    value = pos.value if size else _ZERO
    side = "" if pos.size == 0 else ("Buy" if pos.size > 0 else "Sell")
    liq = _ZERO
    bust = _ZERO
    even = _ZERO
    if size and entry:
        step = 1 / lev
        long = pos.size > 0
        liq = entry * (1 - step + _MMR) if long else entry * (1 + step - _MMR)
        bust = entry * (1 - step) if long else entry * (1 + step)
        fee = account.taker_fee
        even = entry * (1 + 2 * fee) if long else entry * (1 - 2 * fee)
    item: dict[str, object] = {
        "positionIdx": 0,
        "tradeMode": 0,
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": spec.symbol,
        "side": side,
        "size": dstr(size),
        "entryPrice": _price(spec, entry),
        "leverage": dstr(lev),
        "breakEvenPrice": _price(spec, even),
        "positionValue": dstr(value),
        "positionBalance": dstr(value / lev),
        "markPrice": _price(spec, mark),
        "positionIM": dstr(value / lev),
        "positionIMByMp": dstr(pos.value_of(size, mark) / lev if size else _ZERO),
        "positionMM": dstr(value * _MMR),
        "positionMMByMp": dstr(pos.value_of(size, mark) * _MMR if size else _ZERO),
        "takeProfit": "0",
        "stopLoss": "0",
        "trailingStop": "0",
        "unrealisedPnl": dstr(pos.upl(mark)),
        "curRealisedPnl": dstr(pos.cur_realised),
        "cumRealisedPnl": dstr(pos.cum_realised),
        "sessionAvgPrice": "0",
        "createdTime": str(pos.created_ms),
        "updatedTime": str(pos.updated_ms),
        "tpslMode": "Full",
        "liqPrice": _price(spec, liq),
        "bustPrice": _price(spec, bust) if size else "",
        "category": pos.category,
        "positionStatus": "Normal",
        "adlRankIndicator": 2 if size else 0,
        "autoAddMargin": 0,
        "leverageSysUpdatedTime": "",
        "mmrSysUpdatedTime": "",
        "seq": pos.seq,
        "isReduceOnly": False,
        "openTime": pos.open_time,
    }
    if pos.category == "option":
        item.update(delta="0", gamma="0", vega="0", theta="0")
    return item


def wallet_item(
    account: Account,
    mark: Callable[[str, str], Decimal],
    usd_price: Callable[[str], Decimal],
) -> dict[str, object]:
    """A ``wallet`` stream item (§6.5): the unified account with every coin it holds."""
    coins = []
    total_equity = total_wallet = total_upl = total_im = total_mm = _ZERO
    for coin in sorted(account.wallet):
        balance = account.balance(coin)
        upl = account.upl(coin, mark)
        order_im = account.order_im(coin)
        pos_im = account.position_im(coin)
        pos_mm = account.position_mm(coin)
        locked = account.locked(coin)
        equity = balance + upl
        price = usd_price(coin)
        usd = equity * price
        total_equity += usd
        total_wallet += balance * price
        total_upl += upl * price
        total_im += (order_im + pos_im) * price
        total_mm += pos_mm * price
        free = balance - locked - order_im - pos_im
        coins.append(
            {
                "coin": coin,
                "equity": dstr(equity),
                "usdValue": dstr(usd),
                "walletBalance": dstr(balance),
                "availableToWithdraw": dstr(max(free, _ZERO)),
                "availableToBorrow": "",
                "borrowAmount": "0",
                "accruedInterest": "0",
                "totalOrderIM": dstr(order_im),
                "totalPositionIM": dstr(pos_im),
                "totalPositionMM": dstr(pos_mm),
                "unrealisedPnl": dstr(upl),
                "cumRealisedPnl": dstr(account.cum_realised.get(coin, _ZERO)),
                "bonus": "0",
                "collateralSwitch": True,
                "marginCollateral": True,
                "locked": dstr(locked),
                "spotHedgingQty": "0",
                "spotBorrow": "0",
            }
        )
    margin = total_wallet + total_upl
    im_rate = total_im / margin if margin > 0 else _ZERO
    mm_rate = total_mm / margin if margin > 0 else _ZERO
    return {
        "accountIMRate": dstr(im_rate, _RATE),
        "accountIMRateByMp": dstr(im_rate, _RATE),
        "accountMMRate": dstr(mm_rate, _RATE),
        "accountMMRateByMp": dstr(mm_rate, _RATE),
        "totalEquity": dstr(total_equity),
        "totalWalletBalance": dstr(total_wallet),
        "totalMarginBalance": dstr(margin),
        "totalAvailableBalance": dstr(max(margin - total_im, _ZERO)),
        "totalPerpUPL": dstr(total_upl),
        "totalInitialMargin": dstr(total_im),
        "totalInitialMarginByMp": dstr(total_im),
        "totalMaintenanceMargin": dstr(total_mm),
        "totalMaintenanceMarginByMp": dstr(total_mm),
        "coin": coins,
        "accountLTV": "0",
        "accountType": "UNIFIED",
    }
