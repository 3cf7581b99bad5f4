"""Order entry and the private streams' content: the emulator's account side (no sockets).

:class:`Trading` holds every :class:`~hean.emulator.accounts.Account`, judges auth requests
(protocol.md §4), runs the trade ops of ``/v5/trade`` (``order.create`` / ``amend`` / ``cancel``
and their ``-batch`` forms, §7) against the simulated books through
:meth:`SymbolMarket.submit` / ``cancel`` / ``amend`` (so fills move the public book and trade
feed like any other order), and turns what happens to an account into private pushes (§6):
``order``, ``execution``, ``execution.fast``, ``position``, ``wallet`` and their categorised
forms, each delivered under exactly the topic name a connection subscribed.

Fills of resting user orders hit later by simulated takers arrive through the markets'
``fill_listeners`` and are pushed at once. Inside one trade op everything is collected and pushed
together when the op is done: executions (fast first), then orders, positions and the wallet. Every
create / amend / cancel of a derivative pushes a ``position`` message, changed or not (as Bybit
does); ``wallet`` has no snapshot on subscribe.

Business errors use Bybit's ``retCode`` values: 10001 (bad parameter), 110001 / 170213 (unknown
order), 110007 / 170131 (insufficient balance), 110017 (reduce-only rule), 110072 (duplicate
``orderLinkId``); see :data:`hean.emulator.shapes.TRADE_TEXTS` for the words.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

from hean.emulator import shapes
from hean.emulator.accounts import (
    Account,
    AccountConfig,
    AccountView,
    FillInfo,
    PositionState,
    UserOrder,
    dec,
    dstr,
    execution_item,
    fast_execution_item,
    order_item,
    position_item,
    settle_coin,
    spot_coins,
    wallet_item,
)
from hean.emulator.connection import ConnectionInfo, EffectiveFaults
from hean.emulator.instruments import _BASE_PRICES
from hean.emulator.market import SymbolMarket
from hean.emulator.matching import (
    BookError,
    Fill,
    Order,
    OrderType,
    Side,
    TimeInForce,
)

__all__ = [
    "BATCH_OPS",
    "PRIVATE_STREAMS",
    "TRADE_OPS",
    "AuthCheck",
    "OpError",
    "OpResult",
    "Trading",
    "private_stream_of",
]

log = logging.getLogger("hean.emulator")

TRADE_OPS = (
    "order.create",
    "order.amend",
    "order.cancel",
    "order.create-batch",
    "order.amend-batch",
    "order.cancel-batch",
)
BATCH_OPS = frozenset(op for op in TRADE_OPS if op.endswith("-batch"))
#: categories the trade stream accepts
TRADE_CATEGORIES = ("linear", "inverse", "spot", "option")
#: private streams and the categories each may be narrowed to (``order.linear`` ...)
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
_LINK_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_ZERO = Decimal(0)


def private_stream_of(topic: str) -> str | None:
    """The private stream of a topic (``order.linear`` -> ``order``), or ``None``."""
    if topic in PRIVATE_STREAMS:
        return topic
    base, _, category = topic.rpartition(".")
    if base in PRIVATE_STREAMS and category in PRIVATE_STREAMS[base]:
        return base
    return None


class OpError(Exception):
    """A trade op refused with ``code`` / ``msg`` (nothing was changed)."""

    def __init__(self, code: int, msg: str | None = None) -> None:
        super().__init__(msg or shapes.trade_text(code))
        self.code = code
        self.msg = msg or shapes.trade_text(code)


@dataclass(frozen=True, slots=True)
class OpResult:
    """What a trade op answers: ``retCode``, ``retMsg``, ``data`` and ``retExtInfo``."""

    code: int
    msg: str
    data: dict[str, object]
    ext: dict[str, object] | None


@dataclass(frozen=True, slots=True)
class AuthCheck:
    """The verdict on an ``auth`` request: ``reason`` is ``ok``, ``params``, ``bad_key``,
    ``bad_signature`` or ``expired``."""

    reason: str
    account: Account | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


class RateWindow:
    """One rolling 1 s request window (per account and endpoint or op), as Bybit counts it,
    and the ``X-Bapi-Limit*`` headers it gives: ``Reset-Timestamp`` is the time the window
    frees when the quota is used up, else the current time (rest.md §5)."""

    __slots__ = ("hits",)

    def __init__(self) -> None:
        self.hits: deque[int] = deque()

    def take(self, units: int, quota: int, now_ms: int) -> tuple[int, dict[str, str]]:
        """Count up to ``units`` requests; returns how many were allowed and the headers."""
        hits = self._expire(now_ms)
        allowed = max(0, min(units, quota - len(hits)))
        hits.extend([now_ms] * allowed)
        return allowed, self._headers(quota, now_ms, spent=not allowed)

    def headers(self, quota: int, now_ms: int) -> dict[str, str]:
        """The headers as they stand (nothing counted)."""
        return self._headers(quota, now_ms, spent=len(self._expire(now_ms)) >= quota)

    def _expire(self, now_ms: int) -> deque[int]:
        hits = self.hits
        while hits and hits[0] <= now_ms - 1000:
            hits.popleft()
        return hits

    def _headers(self, quota: int, now_ms: int, *, spent: bool) -> dict[str, str]:
        hits = self.hits
        reset = hits[0] + 1000 if spent and hits else now_ms
        return {
            "X-Bapi-Limit": str(quota),
            "X-Bapi-Limit-Status": str(max(0, quota - len(hits))),
            "X-Bapi-Limit-Reset-Timestamp": str(reset),
        }


class TradingHost(Protocol):
    """What :class:`Trading` needs from the emulator."""

    def symbol_market(self, category: str, symbol: str) -> SymbolMarket: ...

    def built_market(self, category: str, symbol: str) -> SymbolMarket | None: ...

    def has_symbol(self, category: str, symbol: str) -> bool: ...

    def server_time_ms(self) -> int: ...

    def effective_faults(self, conn_id: str) -> EffectiveFaults: ...


class PrivateSink(Protocol):
    """A private connection that can receive pushes."""

    conn_id: str
    closing: bool
    info: ConnectionInfo | None

    def push(
        self,
        topic: str,
        data: bytes,
        *,
        u: int = 0,
        seq: int = 0,
        snapshot: bool = False,
        initial: bool = False,
    ) -> None: ...


@dataclass(slots=True)
class _Pending:
    fills: list[FillInfo] = field(default_factory=list)
    orders: dict[str, UserOrder] = field(default_factory=dict)
    positions: dict[tuple[str, str], PositionState] = field(default_factory=dict)
    wallet: bool = False
    #: ready-made ``execution`` items that are not fills (funding), per category
    other_execs: list[dict[str, object]] = field(default_factory=list)


class Trading:
    """Accounts, auth, order entry and private pushes (see the module docstring).

    Args:
        host: the emulator (markets, server time, fault switches).
        accounts: the accounts to create.
        seed: seed of order ids, execution ids and message ids.
        rate_limit: requests per second per account and op (more are refused with 10006).
    """

    def __init__(
        self,
        host: TradingHost,
        accounts: Iterable[AccountConfig],
        *,
        seed: int = 1,
        rate_limit: int = 10,
    ) -> None:
        self.host = host
        self.rate_limit = rate_limit
        self._rng = random.Random(f"trading:{seed}")
        self._by_key: dict[str, Account] = {}
        self._next_uid = 386_825_800 + seed % 100
        self._listening: set[tuple[str, str]] = set()
        self._depth = 0
        self._pending: dict[int, _Pending] = {}
        self._sessions: dict[int, dict[PrivateSink, None]] = {}
        self._rate: dict[tuple[int, str], RateWindow] = {}
        for config in accounts:
            self.add(config)

    # -- accounts -----------------------------------------------------------------------------

    def add(self, config: AccountConfig) -> Account:
        """Create an account (``ValueError`` if its key or uid is taken)."""
        if config.api_key in self._by_key:
            raise ValueError(f"an account with API key {config.api_key!r} exists already")
        uid = config.uid
        if uid is None:
            taken = {a.uid for a in self._by_key.values()}
            while self._next_uid in taken:
                self._next_uid += 1
            uid = self._next_uid
            self._next_uid += 1
        elif any(a.uid == uid for a in self._by_key.values()):
            raise ValueError(f"an account with uid {uid} exists already")
        account = Account(config, uid)
        self._by_key[config.api_key] = account
        return account

    @property
    def accounts(self) -> list[Account]:
        return list(self._by_key.values())

    def by_key(self, api_key: str) -> Account:
        """The account of ``api_key`` (``KeyError`` if none)."""
        try:
            return self._by_key[api_key]
        except KeyError:
            raise KeyError(f"no account with API key {api_key!r}") from None

    def find(self, api_key: str) -> Account | None:
        """The account of ``api_key``, or ``None``."""
        return self._by_key.get(api_key)

    def view(self, api_key: str) -> AccountView:
        """Ground truth of one account (see :class:`AccountView`)."""
        acct = self.by_key(api_key)
        return AccountView(
            api_key=acct.api_key,
            uid=acct.uid,
            balances={coin: dstr(value) for coin, value in sorted(acct.wallet.items())},
            available={coin: dstr(acct.available(coin)) for coin in sorted(acct.wallet)},
            wallet=wallet_item(acct, self.mark, self.usd_price),
            open_orders=[order_item(o) for o in acct.open.values()],
            orders={oid: order_item(o) for oid, o in acct.orders.items()},
            positions=[
                position_item(acct, p, self.mark(p.category, p.spec.symbol))
                for p in acct.positions.values()
            ],
            executions=[dict(e) for e in acct.executions],
        )

    def set_balance(self, api_key: str, coin: str, amount: object) -> None:
        """Set a coin's wallet balance (like a deposit or withdrawal; pushes ``wallet``)."""
        acct = self.by_key(api_key)
        value = dec(amount, "amount")
        if value < 0:
            raise ValueError(f"amount must be >= 0, got {amount!r}")
        if not isinstance(coin, str) or not re.fullmatch(r"[A-Z0-9]{2,12}", coin):
            raise ValueError(f"bad coin name {coin!r}")
        acct.wallet[coin] = value
        self._pending_of(acct).wallet = True
        self._maybe_flush()

    # -- prices -------------------------------------------------------------------------------

    def mark(self, category: str, symbol: str) -> Decimal:
        """Mark price of a symbol: its last traded price (0 if its market is not running)."""
        market = self.host.built_market(category, symbol)
        if market is None:
            return _ZERO
        return dec(market.spec.price_str(market.last))

    def usd_price(self, coin: str) -> Decimal:
        """USD value of one ``coin`` (stablecoins 1; others from a running market)."""
        if coin in ("USDT", "USDC", "USD"):
            return Decimal(1)
        for category in ("linear", "spot"):
            price = self.mark(category, f"{coin}USDT")
            if price:
                return price
        return dec(_BASE_PRICES.get(coin, 0.0))

    # -- auth ---------------------------------------------------------------------------------

    def check_auth(self, args: object, now_ms: int) -> AuthCheck:
        """Judge ``args`` of an ``auth`` request (``[key, expires, signature]``, expires in ms,
        a JSON number or a string of digits) at server time ``now_ms``."""
        if not isinstance(args, list) or len(args) != 3:
            return AuthCheck("params")
        key, expires, signature = args
        if not isinstance(key, str) or not isinstance(signature, str):
            return AuthCheck("params")
        if isinstance(expires, bool):
            return AuthCheck("params")
        if isinstance(expires, int):
            expires_text = str(expires)
        elif isinstance(expires, str) and expires.isdigit() and expires.isascii():
            expires_text = expires
        else:
            return AuthCheck("params")
        account = self._by_key.get(key)
        if account is None:
            return AuthCheck("bad_key")
        if not account.verify(f"GET/realtime{expires_text}".encode(), signature):
            return AuthCheck("bad_signature", account)
        if int(expires_text) <= now_ms:
            return AuthCheck("expired", account)
        return AuthCheck("ok", account)

    # -- connections --------------------------------------------------------------------------

    def attach(self, session: PrivateSink, account: Account) -> None:
        """``session`` authenticated as ``account``: it gets that account's pushes."""
        self._sessions.setdefault(account.uid, {})[session] = None

    def detach(self, session: PrivateSink) -> None:
        for sessions in self._sessions.values():
            sessions.pop(session, None)

    # -- rate limit ---------------------------------------------------------------------------

    def take_rate(self, account: Account, op: str, now_ms: int) -> tuple[bool, dict[str, str]]:
        """Count one request of ``op`` (rolling 1 s window per account and op); returns
        whether it is allowed and the ``X-Bapi-Limit*`` header values."""
        window = self._rate.setdefault((account.uid, op), RateWindow())
        allowed, headers = window.take(1, self.rate_limit, now_ms)
        return allowed == 1, headers

    # -- trade ops ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold private pushes until the block ends (the trade ack goes out first)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self._maybe_flush()

    def execute(self, account: Account, op: str, args: Mapping[str, Any]) -> OpResult:
        """Run one trade op for ``account``; private pushes follow when it is done."""
        self._depth += 1
        try:
            if op in BATCH_OPS:
                return self._batch(account, op, args)
            category = self._category(args.get("category"))
            try:
                if op == "order.create":
                    order = self._create(account, category, args)
                elif op == "order.amend":
                    order = self._amend(account, category, args)
                elif op == "order.cancel":
                    order = self._cancel(account, category, args)
                else:
                    raise OpError(10404)
            except OpError as err:
                return OpResult(err.code, err.msg, {}, None)
            data: dict[str, object] = {
                "orderId": order.order_id,
                "orderLinkId": order.order_link_id,
            }
            return OpResult(0, "OK", data, {})
        except OpError as err:
            return OpResult(err.code, err.msg, {}, None)
        except Exception:  # a bug: answer like Bybit's "internal error", keep serving
            log.exception("emulator: %s failed", op)
            return OpResult(10016, shapes.trade_text(10016), {}, None)
        finally:
            self._depth -= 1
            self._maybe_flush()

    @classmethod
    def check_batch(cls, args: Mapping[str, Any]) -> tuple[str, list[object]]:
        """``(category, requests)`` of a batch op, or :class:`OpError` for a batch refused as a
        whole (no category, no list, more than 20 orders, 10 on spot)."""
        category = cls._category(args.get("category"))
        requests = args.get("request")
        if not isinstance(requests, list) or not requests:
            raise OpError(10001, "params error: request must be a non-empty list")
        limit = 10 if category == "spot" else 20
        if len(requests) > limit:
            raise OpError(10001, f"params error: at most {limit} orders per batch for {category}")
        return category, requests

    def _batch(self, account: Account, op: str, args: Mapping[str, Any]) -> OpResult:
        category, requests = self.check_batch(args)
        items: list[dict[str, object]] = []
        codes: list[dict[str, object]] = []
        for req in requests:
            req_map: Mapping[str, Any] = req if isinstance(req, Mapping) else {}
            symbol = req_map.get("symbol")
            link = req_map.get("orderLinkId")
            item: dict[str, object] = {
                "category": category,
                "symbol": symbol if isinstance(symbol, str) else "",
                "orderId": "",
                "orderLinkId": link if isinstance(link, str) else "",
            }
            if op == "order.create-batch":
                item["createAt"] = ""
            try:
                if not isinstance(req, Mapping):
                    raise OpError(10001, "params error: each request must be an object")
                if op == "order.create-batch":
                    order = self._create(account, category, req)
                elif op == "order.amend-batch":
                    order = self._amend(account, category, req)
                else:
                    order = self._cancel(account, category, req)
            except OpError as err:
                codes.append({"code": err.code, "msg": err.msg})
            else:
                item["orderId"] = order.order_id
                item["orderLinkId"] = order.order_link_id
                if op == "order.create-batch":
                    item["createAt"] = str(order.created_ms)
                codes.append({"code": 0, "msg": "OK"})
            items.append(item)
        return OpResult(0, "OK", {"list": items}, {"list": codes})

    @staticmethod
    def _category(value: object) -> str:
        if value is None or value == "":
            raise OpError(10001, "params error: category is required")
        if value not in TRADE_CATEGORIES:
            raise OpError(10404, f"category {value!r} is not supported")
        return str(value)

    def _market(self, category: str, symbol: object) -> SymbolMarket:
        if not isinstance(symbol, str) or not symbol:
            raise OpError(10001, "params error: symbol is required")
        if not self.host.has_symbol(category, symbol):
            raise OpError(10001, "params error: symbol invalid")
        market = self.host.symbol_market(category, symbol)
        key = (category, symbol)
        if key not in self._listening:
            self._listening.add(key)
            market.fill_listeners.append(self._on_fill)
        return market

    def _create(self, acct: Account, category: str, req: Mapping[str, Any]) -> UserOrder:
        market = self._market(category, req.get("symbol"))
        spec = market.spec
        side_text = _choice(req, "side", ("Buy", "Sell"))
        otype = _choice(req, "orderType", ("Market", "Limit"))
        is_market = otype == "Market"
        side = Side(side_text)
        tif_raw = req.get("timeInForce")
        if tif_raw is None or tif_raw == "":
            tif = "IOC" if is_market else "GTC"
        elif tif_raw in ("GTC", "IOC", "FOK", "PostOnly"):
            tif = str(tif_raw)
        else:
            raise OpError(10001, "params error: timeInForce invalid")
        if is_market and tif in ("GTC", "PostOnly"):
            tif = "IOC"  # market orders are always immediate
        reduce_only = _flag(req, "reduceOnly")
        if req.get("positionIdx") not in (None, 0, "0"):
            raise OpError(10001, "position idx not match position mode")
        if req.get("triggerPrice") not in (None, "", "0"):
            raise OpError(10001, "params error: conditional orders are not supported here")
        link = req.get("orderLinkId")
        if link is None or link == "":
            link = ""
        elif not isinstance(link, str) or not _LINK_RE.match(link):
            raise OpError(10001, "params error: orderLinkId invalid")
        elif link in acct.links:
            raise OpError(110072)
        qty_text = _number_text(req.get("qty"), "qty")
        ticks: int | None = None
        if not is_market:
            price_text = _number_text(req.get("price"), "price")
            try:
                ticks = spec.parse_price(price_text)
            except ValueError:
                raise OpError(10001, "params error: price invalid") from None
        market_unit = ""
        if category == "spot" and is_market:
            unit = req.get("marketUnit") or ("quoteCoin" if side is Side.BUY else "baseCoin")
            if unit not in ("baseCoin", "quoteCoin"):
                raise OpError(10001, "params error: marketUnit invalid")
            market_unit = str(unit)
        quote_amount: Decimal | None = None
        if market_unit == "quoteCoin":
            quote_amount = _positive(qty_text, "qty")
            lots = self._lots_for_quote(market, side, quote_amount)
            if lots <= 0:
                raise OpError(170131)
        else:
            try:
                lots = spec.parse_qty(qty_text)
            except ValueError:
                raise OpError(10001, "params error: qty invalid") from None
        qty = dec(spec.qty_str(lots))
        price = None if ticks is None else dec(spec.price_str(ticks))
        if category == "spot":
            self._check_spot(acct, market, side, qty, price, quote_amount)
        elif reduce_only:
            lots, qty_text = self._reduce_only_qty(acct, category, market, side, lots)
        else:
            self._check_margin(acct, category, market, side, qty, price)
        now = self.host.server_time_ms()
        book_order = Order(
            self._uuid(), acct.owner, side, lots, ticks, OrderType(otype), TimeInForce(tif)
        )
        order = UserOrder(
            book_order,
            acct,
            category,
            spec,
            link,
            otype,
            tif,
            reduce_only,
            _strip(qty_text),
            market_unit=market_unit,
            last_price_on_created=dstr(dec(spec.price_str(market.last))),
            created_ms=now,
            updated_ms=now,
        )
        book_order.tag = order
        acct.add_order(order)
        market.submit(book_order)
        order.updated_ms = self.host.server_time_ms()
        order.sync_reason()
        acct.settle_order(order)
        self._touched(acct, order)
        return order

    def _find(self, acct: Account, category: str, req: Mapping[str, Any]) -> UserOrder:
        order_id = req.get("orderId")
        link = req.get("orderLinkId")
        if not order_id and not link:
            raise OpError(10001, "params error: orderId or orderLinkId is required")
        self._market(category, req.get("symbol"))
        order = acct.find_open(category, order_id, link)
        if order is None or order.symbol != req.get("symbol"):
            raise OpError(170213 if category == "spot" else 110001)
        return order

    def _amend(self, acct: Account, category: str, req: Mapping[str, Any]) -> UserOrder:
        try:
            order = self._find(acct, category, req)
        except OpError as err:
            if err.code == 110001:
                raise OpError(110001, "order not exists or too late to replace") from None
            raise
        market = self._market(category, order.symbol)
        spec = order.spec
        book = order.book
        lots: int | None = None
        ticks: int | None = None
        if req.get("qty") not in (None, ""):
            try:
                lots = spec.parse_qty(_number_text(req.get("qty"), "qty"))
            except ValueError:
                raise OpError(10001, "params error: qty invalid") from None
        if req.get("price") not in (None, ""):
            try:
                ticks = spec.parse_price(_number_text(req.get("price"), "price"))
            except ValueError:
                raise OpError(10001, "params error: price invalid") from None
        new_lots = book.qty if lots is None else lots
        new_ticks = book.price if ticks is None else ticks
        if new_lots == book.qty and new_ticks == book.price:
            raise OpError(
                10001,
                "The order remains unchanged as the parameters entered match the existing ones.",
            )
        assert new_ticks is not None
        new_price = dec(spec.price_str(new_ticks))
        extra = dec(spec.qty_str(max(0, new_lots - book.filled))) * new_price
        old = order.leaves_qty * (order.price or _ZERO)
        if category == "spot":
            base, quote = spot_coins(spec)
            if order.side is Side.BUY and extra - old > acct.available(quote):
                raise OpError(170131)
            if order.side is Side.SELL:
                more = dec(spec.qty_str(max(0, new_lots - book.qty)))
                if more > acct.available(base):
                    raise OpError(170131)
        elif not order.reduce_only:
            if category == "inverse":
                extra = dec(spec.qty_str(max(0, new_lots - book.filled))) / new_price
                old = order.leaves_qty / (order.price or Decimal(1))
            if (extra - old) / acct.leverage > acct.available(settle_coin(spec)):
                raise OpError(110007)
        try:
            market.amend(book.order_id, qty=lots, price=ticks)
        except BookError as exc:
            raise OpError(10001, f"params error: {exc}") from None
        if lots is not None:
            order.qty_text = _strip(spec.qty_str(lots))
        order.updated_ms = self.host.server_time_ms()
        order.sync_reason()
        acct.settle_order(order)
        self._touched(acct, order)
        return order

    def _cancel(self, acct: Account, category: str, req: Mapping[str, Any]) -> UserOrder:
        order = self._find(acct, category, req)
        market = self._market(category, order.symbol)
        market.cancel(order.order_id)
        order.updated_ms = self.host.server_time_ms()
        order.sync_reason()
        acct.settle_order(order)
        self._touched(acct, order)
        return order

    def cancel_all(self, acct: Account, args: Mapping[str, Any]) -> OpResult:
        """``/v5/order/cancel-all``: cancel the account's open orders of a category, narrowed
        by ``symbol`` > ``baseCoin`` > ``settleCoin`` (one of them is required on linear and
        inverse). Result: ``{"list": [{orderId, orderLinkId}], "success": "1"}``."""
        self._depth += 1
        try:
            category = self._category(args.get("category"))
            symbol, base, settle = (args.get(k) for k in ("symbol", "baseCoin", "settleCoin"))
            if category in ("linear", "inverse") and not (symbol or base or settle):
                raise OpError(
                    10001, "Missing some parameters that must be filled in, symbol or settleCoin"
                )
            if symbol:
                self._market(category, symbol)
            chosen = []
            for order in list(acct.open.values()):
                if order.category != category:
                    continue
                if symbol:
                    if order.symbol != symbol:
                        continue
                elif base:
                    if order.spec.base != base:
                        continue
                elif settle and settle_coin(order.spec) != settle:
                    continue
                chosen.append(order)
            out: list[dict[str, object]] = []
            for order in chosen:
                self._market(category, order.symbol).cancel(order.order_id)
                order.updated_ms = self.host.server_time_ms()
                order.sync_reason()
                acct.settle_order(order)
                self._touched(acct, order)
                out.append({"orderId": order.order_id, "orderLinkId": order.order_link_id})
            return OpResult(0, "OK", {"list": out, "success": "1"}, {})
        except OpError as err:
            return OpResult(err.code, err.msg, {}, None)
        finally:
            self._depth -= 1
            self._maybe_flush()

    def charge_funding(
        self, acct: Account, category: str, symbol: str, rate: object
    ) -> list[dict[str, object]]:
        """Settle funding at ``rate`` on the account's open position in a symbol: a ``Funding``
        execution (``execType`` ``Funding``, ``orderType`` ``UNKNOWN``, ``orderId`` ``""``,
        ``execQty`` the position size, ``execPrice`` the mark price, ``execFee`` what the
        account paid: positive when a long pays a positive rate, negative when it receives),
        booked in the wallet and the position's realised PnL and pushed on ``execution``,
        ``position`` and ``wallet``. Its ``seq`` is the position's (funding is not a trade).
        Returns the execution items booked (none if the position is flat)."""
        if category not in ("linear", "inverse"):
            raise ValueError(f"funding applies to linear and inverse, not {category!r}")
        value_rate = dec(rate, "rate")
        pos = acct.positions.get((category, symbol))
        if pos is None or pos.size == 0:
            return []
        spec = pos.spec
        mark = self.mark(category, symbol) or pos.entry
        size = abs(pos.size)
        value = pos.value_of(size, mark)
        fee = value * value_rate if pos.size > 0 else -value * value_rate
        coin = settle_coin(spec)
        now = self.host.server_time_ms()
        acct.credit(coin, -fee)
        acct.cum_realised[coin] = acct.cum_realised.get(coin, _ZERO) - fee
        pos.cur_realised -= fee
        pos.cum_realised -= fee
        pos.updated_ms = now
        item: dict[str, object] = {
            "category": category,
            "symbol": symbol,
            "closedSize": "0",
            "execFee": dstr(fee),
            "execId": self._uuid(),
            "execPrice": dstr(mark, None),
            "execQty": dstr(size),
            "execType": "Funding",
            "execValue": dstr(value),
            "feeRate": dstr(value_rate, None),
            "tradeIv": "",
            "markIv": "",
            "blockTradeId": "",
            "markPrice": dstr(mark, None),
            "indexPrice": "",
            "underlyingPrice": "",
            "leavesQty": "0",
            "orderId": "",
            "orderLinkId": "",
            "orderPrice": "0",
            "orderQty": "0",
            "orderType": "UNKNOWN",
            "stopOrderType": "UNKNOWN",
            "side": "Buy" if pos.size > 0 else "Sell",
            "execTime": str(now),
            "isLeverage": "0",
            "isMaker": False,
            "seq": pos.seq,
            "marketUnit": "",
            "execPnl": dstr(-fee),
            "createType": "",
            "extraFees": [],
            "feeCurrency": coin,
        }
        acct.add_execution(item)
        pending = self._pending_of(acct)
        pending.other_execs.append(item)
        pending.positions[(category, symbol)] = pos
        pending.wallet = True
        self._maybe_flush()
        return [item]

    # -- checks -------------------------------------------------------------------------------

    @staticmethod
    def _lots_for_quote(market: SymbolMarket, side: Side, amount: Decimal) -> int:
        """Spot market buy in quote coin: how many lots ``amount`` buys from the book."""
        if side is not Side.BUY:
            return 0
        spec = market.spec
        lot_qty = dec(spec.qty_str(1))
        lots = 0
        left = amount
        for ticks, level in market.book.side_depth(Side.SELL):
            price = dec(spec.price_str(ticks))
            per_lot = price * lot_qty
            can = min(level, int((left / per_lot).to_integral_value(rounding=ROUND_DOWN)))
            lots += can
            left -= per_lot * can
            if can < level:
                break
        return lots

    @staticmethod
    def _walk_cost(market: SymbolMarket, side: Side, lots: int) -> Decimal:
        """Quote cost of taking ``lots`` at once (the rest priced at the last trade)."""
        spec = market.spec
        opposite = Side.SELL if side is Side.BUY else Side.BUY
        cost = _ZERO
        left = lots
        for ticks, level in market.book.side_depth(opposite):
            take = min(left, level)
            cost += dec(spec.qty_str(take)) * dec(spec.price_str(ticks))
            left -= take
            if left == 0:
                break
        if left:
            cost += dec(spec.qty_str(left)) * dec(spec.price_str(market.last))
        return cost

    def _check_spot(
        self,
        acct: Account,
        market: SymbolMarket,
        side: Side,
        qty: Decimal,
        price: Decimal | None,
        quote_amount: Decimal | None,
    ) -> None:
        base, quote = spot_coins(market.spec)
        if side is Side.BUY:
            if quote_amount is not None:
                cost = quote_amount
            elif price is not None:
                cost = qty * price
            else:
                cost = self._walk_cost(market, side, market.spec.parse_qty(dstr(qty, None)))
            if cost > acct.available(quote):
                raise OpError(170131)
        elif qty > acct.available(base):
            raise OpError(170131)

    def _check_margin(
        self,
        acct: Account,
        category: str,
        market: SymbolMarket,
        side: Side,
        qty: Decimal,
        price: Decimal | None,
    ) -> None:
        spec = market.spec
        pos = acct.positions.get((category, spec.symbol))
        size = pos.size if pos is not None else _ZERO
        same = size == 0 or (size > 0) == (side is Side.BUY)
        opening = qty if same else max(_ZERO, qty - abs(size))
        if opening == 0:
            return
        ref = price
        if ref is None:
            book = market.book
            best = book.best_ask() if side is Side.BUY else book.best_bid()
            ref = dec(spec.price_str(best if best is not None else market.last))
        value = opening / ref if category == "inverse" else opening * ref
        if value / acct.leverage > acct.available(settle_coin(spec)):
            raise OpError(110007)

    @staticmethod
    def _reduce_only_qty(
        acct: Account, category: str, market: SymbolMarket, side: Side, lots: int
    ) -> tuple[int, str]:
        spec = market.spec
        pos = acct.positions.get((category, spec.symbol))
        size = pos.size if pos is not None else _ZERO
        if size == 0 or (size > 0) == (side is Side.BUY):
            raise OpError(110017)
        most = spec.parse_qty(dstr(abs(size), None))
        lots = min(lots, most)
        return lots, spec.qty_str(lots)

    # -- fills --------------------------------------------------------------------------------

    def _on_fill(self, fill: Fill, trade: dict[str, object]) -> None:
        for order, is_maker, leaves in (
            (fill.maker, True, fill.maker_leaves),
            (fill.taker, False, fill.taker_leaves),
        ):
            tag = order.tag
            if isinstance(tag, UserOrder):
                try:
                    self._apply_fill(tag, fill, is_maker, leaves)
                except Exception:  # an accounting bug must not break the market
                    log.exception("emulator: could not book a fill of %s", order.order_id)
        self._maybe_flush()

    def _apply_fill(self, order: UserOrder, fill: Fill, is_maker: bool, leaves: int) -> None:
        acct = order.account
        spec = order.spec
        qty = dec(spec.qty_str(fill.qty))
        price = dec(spec.price_str(fill.price))
        now = self.host.server_time_ms()
        closed = pnl = _ZERO
        if order.category == "spot":
            base, quote = spot_coins(spec)
            value = qty * price
            rate = acct.spot_fee
            if order.side is Side.BUY:
                fee, fee_coin = qty * rate, base
                acct.credit(quote, -value)
                acct.credit(base, qty - fee)
            else:
                fee, fee_coin = value * rate, quote
                acct.credit(base, -qty)
                acct.credit(quote, value - fee)
        else:
            pos = acct.position(order.category, spec)
            value = pos.value_of(qty, price)
            rate = acct.maker_fee if is_maker else acct.taker_fee
            fee = value * rate
            fee_coin = settle_coin(spec)
            closed, pnl = pos.apply(order.side, qty, price, now)
            net = pnl - fee
            acct.credit(fee_coin, net)
            acct.cum_realised[fee_coin] = acct.cum_realised.get(fee_coin, _ZERO) + net
            pos.cur_realised += net
            pos.cum_realised += net
            pos.seq = fill.seq
            if closed:
                order.closed_pnl += net
            self._pending_of(acct).positions[(order.category, spec.symbol)] = pos
        order.cum_value += value
        order.cum_fee += fee
        order.fee_coin = fee_coin
        order.updated_ms = now
        info = FillInfo(
            exec_id=self._uuid(),
            order=order,
            qty=qty,
            price=price,
            value=value,
            fee=fee,
            fee_rate=rate,
            fee_coin=fee_coin,
            is_maker=is_maker,
            leaves=dec(spec.qty_str(leaves)),
            closed=closed,
            pnl=pnl,
            exec_ms=now,
            seq=fill.seq,
            mark=price,
        )
        acct.add_execution(execution_item(info))
        order.sync_reason()
        acct.settle_order(order)
        pending = self._pending_of(acct)
        pending.fills.append(info)
        pending.orders[order.order_id] = order
        pending.wallet = True

    # -- pushes -------------------------------------------------------------------------------

    def _pending_of(self, acct: Account) -> _Pending:
        pending = self._pending.get(acct.uid)
        if pending is None:
            pending = self._pending[acct.uid] = _Pending()
        return pending

    def _touched(self, acct: Account, order: UserOrder) -> None:
        pending = self._pending_of(acct)
        pending.orders[order.order_id] = order
        pending.wallet = True
        if order.category != "spot":
            key = (order.category, order.symbol)
            pending.positions[key] = acct.position(order.category, order.spec)

    def _maybe_flush(self) -> None:
        if self._depth:
            return
        while self._pending:
            uid, pending = next(iter(self._pending.items()))
            del self._pending[uid]
            acct = next((a for a in self._by_key.values() if a.uid == uid), None)
            if acct is None:
                continue
            try:
                self._reduce_only_cleanup(acct, pending)
                self._flush(acct, pending)
            except Exception:  # an accounting bug must not break the market
                log.exception("emulator: private pushes of account %s failed", uid)

    def _reduce_only_cleanup(self, acct: Account, pending: _Pending) -> None:
        """Reduce-only orders that can no longer reduce are cancelled, oversized ones cut."""
        for key, pos in pending.positions.items():
            for order in list(acct.open.values()):
                if not order.reduce_only or (order.category, order.symbol) != key:
                    continue
                market = self.host.symbol_market(*key)
                spec = order.spec
                if pos.size == 0 or (pos.size > 0) == (order.side is Side.BUY):
                    market.cancel(order.order_id)
                    order.book.reason = "CancelByReduceOnly"
                else:
                    most = spec.parse_qty(dstr(abs(pos.size), None))
                    if order.book.leaves > most:
                        market.amend(order.order_id, qty=order.book.filled + most)
                        order.qty_text = _strip(spec.qty_str(order.book.qty))
                    else:
                        continue
                order.updated_ms = self.host.server_time_ms()
                order.sync_reason()
                acct.settle_order(order)
                pending.orders[order.order_id] = order

    def _flush(self, acct: Account, pending: _Pending) -> None:
        if not self._sessions.get(acct.uid):
            return
        by_category: dict[str, list[FillInfo]] = {}
        for info in pending.fills:
            by_category.setdefault(info.order.category, []).append(info)
        for category, fills in by_category.items():
            self._push(acct, "execution.fast", category, [fast_execution_item(f) for f in fills])
        orders: dict[str, list[dict[str, object]]] = {}
        for order in pending.orders.values():
            orders.setdefault(order.category, []).append(order_item(order))
        for category, items in orders.items():
            self._push(acct, "order", category, items)
        for category, fills in by_category.items():
            self._push(
                acct,
                "execution",
                category,
                [execution_item(f) for f in fills],
                f"{acct.uid}_{fills[-1].order.symbol}_{fills[-1].seq}",
            )
        for item in pending.other_execs:
            self._push(
                acct,
                "execution",
                str(item["category"]),
                [item],
                f"{acct.uid}_{item['symbol']}_{item['seq']}_{item['execType']}",
            )
        positions: dict[str, list[dict[str, object]]] = {}
        for (category, symbol), pos in pending.positions.items():
            positions.setdefault(category, []).append(
                position_item(acct, pos, self.mark(category, symbol))
            )
        for category, items in positions.items():
            self._push(acct, "position", category, items)
        if pending.wallet:
            self._push(acct, "wallet", None, [wallet_item(acct, self.mark, self.usd_price)])

    def _push(
        self,
        acct: Account,
        stream: str,
        category: str | None,
        items: Sequence[dict[str, object]],
        msg_id: str | None = None,
    ) -> None:
        sessions = self._sessions.get(acct.uid)
        if not sessions or not items:
            return
        names = (stream,) if category is None else (stream, f"{stream}.{category}")
        if msg_id is None:
            msg_id = f"{acct.uid:x}{self._rng.getrandbits(24):06x}-{self._uuid()[9:]}"
        creation = self.host.server_time_ms()
        encoded: dict[str, bytes] = {}
        for session in list(sessions):
            info = session.info
            if session.closing or info is None:
                continue
            if self.host.effective_faults(session.conn_id).blackhole:
                continue
            for name in names:
                if name not in info.subscriptions:
                    continue
                data = encoded.get(name)
                if data is None:
                    msg = shapes.private_message(stream, name, msg_id, creation, items)
                    data = encoded[name] = shapes.encode(msg)
                session.push(name, data)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


# -- request fields ------------------------------------------------------------------------------


def _choice(req: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = req.get(name)
    if value not in allowed:
        if value is None or value == "":
            raise OpError(10001, f"params error: {name} is required")
        raise OpError(10001, f"params error: {name} invalid")
    return str(value)


def _flag(req: Mapping[str, Any], name: str) -> bool:
    value = req.get(name, False)
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise OpError(10001, f"params error: {name} invalid")


def _number_text(value: object, name: str) -> str:
    """A number field as text (Bybit wants strings; numbers are accepted too)."""
    if value is None or value == "":
        raise OpError(10001, f"params error: {name} is required")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise OpError(10001, f"params error: {name} invalid")
    try:
        return dstr(dec(value, name), None)
    except ValueError:
        raise OpError(10001, f"params error: {name} invalid") from None


def _positive(text: str, name: str) -> Decimal:
    value = dec(text, name)
    if value <= 0:
        raise OpError(10001, f"params error: {name} invalid")
    return value


def _strip(text: str) -> str:
    return dstr(dec(text), None)
