"""Instrument rules (tick size, lot size, limits, status) and the checks order entry runs on them.

Bybit refuses an order whose price is off the tick, whose quantity is off the lot step or
outside the limits, or whose value is below the minimum, with a retCode that costs a round trip
and a rate-limit unit (``110094``, ``170136``, ``170137`` ...). HEAN checks the same rules before
sending, from ``GET /v5/market/instruments-info`` (rest.md §5.2), and raises
:class:`OrderRuleError` naming the rule that was broken.

* :class:`Instrument`: one symbol's rules, parsed tolerantly from an ``instruments-info`` item
  (all categories; spot uses ``basePrecision`` / ``minOrderAmt``, contracts ``qtyStep`` /
  ``minNotionalValue``). Numbers are :class:`~decimal.Decimal`, so ``0.1 + 0.2`` questions never
  arise.
* :meth:`Instrument.check_order`: the rules, sans-I/O (plain values in, an exception or nothing
  out).
* :class:`InstrumentRegistry`: loads a category on first use through an async loader (the REST
  client's ``instruments_info``), caches it, reloads it after ``ttl`` seconds (Bybit re-sets some
  limits twice a month) and once on an unknown symbol (a new listing), never more often than
  ``min_reload_interval``.

Rules (``OrderRuleError.rule``):

============== ===========================================================================
``status``     the symbol does not accept orders (``Closed``, ``Delivering``, a ``PreLaunch``
               symbol outside its auction/continuous phases)
``tick_size``  the price is not a multiple of ``priceFilter.tickSize``
``min_price``  the price is below ``priceFilter.minPrice``
``max_price``  the price is above ``priceFilter.maxPrice``
``qty_step``   the quantity is not a multiple of ``qtyStep`` (spot: ``basePrecision``, or
               ``quotePrecision`` for a market buy sized in the quote coin)
``min_qty``    below ``minOrderQty`` (not for spot, where Bybit no longer checks it)
``max_qty``    above ``maxOrderQty`` / ``maxMktOrderQty`` (spot: ``maxLimitOrderQty`` /
               ``maxMarketOrderQty``)
``min_notional`` qty x price below ``minNotionalValue`` (spot: ``minOrderAmt``); market orders are
               checked only when a reference price is given
``qty``/``price`` not a positive decimal number
============== ===========================================================================

Reduce-only orders skip ``min_qty``, ``max_qty`` and ``min_notional`` (Bybit splits large ones
and lets ``qty "0"`` close a position), but not the step and tick rules.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import msgspec

from hean.core.clock import Clock, SystemClock

__all__ = [
    "Instrument",
    "InstrumentCheck",
    "InstrumentRegistry",
    "OrderRuleError",
    "UnknownInstrumentError",
    "to_decimal",
]

log = logging.getLogger("hean.instruments")

#: ``PreLaunch`` (pre-market) phases in which orders are accepted
_PRE_MARKET_TRADING = frozenset({"CallAuction", "CallAuctionNoCancel", "ContinuousTrading"})


class OrderRuleError(ValueError):
    """An order breaks an instrument rule; nothing was sent. ``rule`` names it (see the module
    docstring), ``symbol`` and ``category`` say where."""

    def __init__(self, rule: str, category: str, symbol: str, message: str) -> None:
        super().__init__(f"{category} {symbol}: {message} (rule {rule})")
        self.rule = rule
        self.category = category
        self.symbol = symbol
        self.detail = message
        """What is wrong, without the symbol and rule."""


class UnknownInstrumentError(KeyError):
    """The symbol is not listed in its category (after a reload); nothing was sent."""

    def __init__(self, category: str, symbol: str) -> None:
        super().__init__(f"{category} {symbol}: no such instrument")
        self.category = category
        self.symbol = symbol

    def __str__(self) -> str:
        return str(self.args[0])


def to_decimal(value: object) -> Decimal | None:
    """``value`` (str, int, float, Decimal) as a finite Decimal, ``None`` if it is not one.

    Floats go through ``repr`` (shortest round-trip text), so ``0.1`` is ``Decimal("0.1")``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        dec = value
    elif isinstance(value, int | float | str):
        text = repr(value) if isinstance(value, float) else str(value).strip()
        if text == "":
            return None
        try:
            dec = Decimal(text)
        except InvalidOperation:
            return None
    else:
        return None
    return dec if dec.is_finite() else None


def _dec(mapping: Mapping[str, Any] | None, key: str) -> Decimal | None:
    if not mapping:
        return None
    value = to_decimal(mapping.get(key))
    return value if value is not None and value > 0 else None


def _multiple(value: Decimal, step: Decimal) -> bool:
    return (value % step) == 0


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """One symbol's trading rules (``None`` where Bybit gives none for the category)."""

    category: str
    symbol: str
    status: str
    base_coin: str | None = None
    quote_coin: str | None = None
    settle_coin: str | None = None
    tick_size: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    qty_step: Decimal | None = None
    """``qtyStep``; spot: ``basePrecision``."""
    quote_step: Decimal | None = None
    """Spot: ``quotePrecision`` (market buys sized in the quote coin)."""
    min_qty: Decimal | None = None
    """Not set for spot (Bybit no longer checks spot ``minOrderQty``)."""
    max_qty: Decimal | None = None
    """Largest limit order (``maxOrderQty``; spot ``maxLimitOrderQty``)."""
    max_market_qty: Decimal | None = None
    """Largest market order (``maxMktOrderQty``; spot ``maxMarketOrderQty``)."""
    min_notional: Decimal | None = None
    """Smallest order value in the quote coin (``minNotionalValue``; spot ``minOrderAmt``)."""
    pre_market_phase: str | None = None
    """``preListingInfo.curAuctionPhase`` of a pre-market (``PreLaunch``) symbol."""

    @classmethod
    def from_api(cls, category: str, item: Mapping[str, Any]) -> Instrument:
        """Parse one ``instruments-info`` list item.

        Raises:
            ValueError: the item has no symbol.
        """
        symbol = item.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("instrument without a symbol")
        price_f = item.get("priceFilter")
        lot = item.get("lotSizeFilter")
        price_f = price_f if isinstance(price_f, Mapping) else None
        lot = lot if isinstance(lot, Mapping) else None
        pre = item.get("preListingInfo")
        phase = pre.get("curAuctionPhase") if isinstance(pre, Mapping) else None

        def text(key: str) -> str | None:
            value = item.get(key)
            return value if isinstance(value, str) and value else None

        common: dict[str, Any] = {
            "category": category,
            "symbol": symbol,
            "status": str(item.get("status") or "Trading"),
            "base_coin": text("baseCoin"),
            "quote_coin": text("quoteCoin"),
            "settle_coin": text("settleCoin"),
            "tick_size": _dec(price_f, "tickSize"),
            "min_price": _dec(price_f, "minPrice"),
            "max_price": _dec(price_f, "maxPrice"),
            "pre_market_phase": phase if isinstance(phase, str) and phase else None,
        }
        if category == "spot":
            return cls(
                **common,
                qty_step=_dec(lot, "basePrecision"),
                quote_step=_dec(lot, "quotePrecision"),
                max_qty=_dec(lot, "maxLimitOrderQty") or _dec(lot, "maxOrderQty"),
                max_market_qty=_dec(lot, "maxMarketOrderQty"),
                min_notional=_dec(lot, "minOrderAmt"),
            )
        return cls(
            **common,
            qty_step=_dec(lot, "qtyStep"),
            min_qty=_dec(lot, "minOrderQty"),
            max_qty=_dec(lot, "maxOrderQty"),
            max_market_qty=_dec(lot, "maxMktOrderQty"),
            min_notional=_dec(lot, "minNotionalValue"),
        )

    @property
    def accepts_orders(self) -> bool:
        """``Trading``, or a pre-market symbol in an auction or continuous phase."""
        if self.status == "Trading":
            return True
        return self.status == "PreLaunch" and self.pre_market_phase in _PRE_MARKET_TRADING

    def _fail(self, rule: str, message: str) -> OrderRuleError:
        return OrderRuleError(rule, self.category, self.symbol, message)

    def check_price(self, price: object) -> Decimal:
        """The price as a Decimal if it keeps the price rules.

        Raises:
            OrderRuleError: ``price``, ``tick_size``, ``min_price`` or ``max_price``.
        """
        value = to_decimal(price)
        if value is None or value <= 0:
            raise self._fail("price", f"price {price!r} is not a positive number")
        if self.tick_size is not None and not _multiple(value, self.tick_size):
            raise self._fail(
                "tick_size", f"price {value} is not a multiple of the tick size {self.tick_size}"
            )
        if self.min_price is not None and value < self.min_price:
            raise self._fail("min_price", f"price {value} is below the minimum {self.min_price}")
        if self.max_price is not None and value > self.max_price:
            raise self._fail("max_price", f"price {value} is above the maximum {self.max_price}")
        return value

    def check_order(
        self,
        side: str,
        order_type: str,
        qty: object,
        price: object = None,
        *,
        reduce_only: bool = False,
        market_unit: str | None = None,
        reference_price: object = None,
    ) -> None:
        """Check an order against the rules (nothing is sent; nothing is returned).

        Args:
            side: ``Buy`` or ``Sell``.
            order_type: ``Limit`` or ``Market``.
            qty: the order quantity (str, int, float, Decimal).
            price: the limit price (ignored for market orders).
            reduce_only: the order only reduces a position.
            market_unit: spot market orders: ``baseCoin`` or ``quoteCoin`` (Bybit's default is
                the quote coin for a market buy, the base coin for a market sell).
            reference_price: a price to judge a market order's value by (e.g. the last price).

        Raises:
            OrderRuleError: a rule is broken (``rule`` names it).
        """
        if not self.accepts_orders:
            phase = f", phase {self.pre_market_phase}" if self.pre_market_phase else ""
            raise self._fail("status", f"not open for orders (status {self.status}{phase})")
        market = order_type == "Market"
        limit_price = None if market else self.check_price(price)
        amount = to_decimal(qty)
        if amount is None or amount < 0 or (amount == 0 and not reduce_only):
            raise self._fail("qty", f"qty {qty!r} is not a positive number")
        in_quote = (
            self.category == "spot"
            and market
            and (market_unit == "quoteCoin" or (market_unit is None and side == "Buy"))
        )
        step = self.quote_step if in_quote else self.qty_step
        if step is not None and not _multiple(amount, step):
            unit = "quote amount" if in_quote else "qty"
            raise self._fail("qty_step", f"{unit} {amount} is not a multiple of the step {step}")
        if reduce_only:
            return
        if in_quote:
            if self.min_notional is not None and amount < self.min_notional:
                raise self._fail(
                    "min_notional",
                    f"order value {amount} is below the minimum {self.min_notional}",
                )
            return
        if self.min_qty is not None and amount < self.min_qty:
            raise self._fail("min_qty", f"qty {amount} is below the minimum {self.min_qty}")
        cap = self.max_market_qty if market else self.max_qty
        if cap is None and market:
            cap = self.max_qty
        if cap is not None and amount > cap:
            kind = "market" if market else "limit"
            raise self._fail("max_qty", f"qty {amount} is above the {kind} maximum {cap}")
        ref = limit_price if limit_price is not None else to_decimal(reference_price)
        if self.min_notional is not None and ref is not None and self.category != "inverse":
            value = amount * ref
            if value < self.min_notional:
                raise self._fail(
                    "min_notional",
                    f"order value {value} (qty {amount} x price {ref}) is below the minimum "
                    f"{self.min_notional}",
                )

    def check_amend(
        self, qty: object = None, price: object = None, trigger_price: object = None
    ) -> None:
        """Check the new values of an amend (those given).

        Raises:
            OrderRuleError: a rule is broken.
        """
        if price is not None:
            self.check_price(price)
        if trigger_price is not None:
            self.check_price(trigger_price)
        if qty is None:
            return
        amount = to_decimal(qty)
        if amount is None or amount <= 0:
            raise self._fail("qty", f"qty {qty!r} is not a positive number")
        if self.qty_step is not None and not _multiple(amount, self.qty_step):
            raise self._fail(
                "qty_step", f"qty {amount} is not a multiple of the step {self.qty_step}"
            )
        if self.min_qty is not None and amount < self.min_qty:
            raise self._fail("min_qty", f"qty {amount} is below the minimum {self.min_qty}")
        if self.max_qty is not None and amount > self.max_qty:
            raise self._fail("max_qty", f"qty {amount} is above the limit maximum {self.max_qty}")

    def check_request(self, op: str, args: Mapping[str, Any]) -> None:
        """Check one order of an API request (``args`` with Bybit's field names, as sent on
        REST or the trade stream): ``op`` is ``create`` or ``amend``; others are not checked.

        Raises:
            OrderRuleError: a rule is broken.
        """
        if op == "create":
            self.check_order(
                str(args.get("side") or ""),
                str(args.get("orderType") or ""),
                args.get("qty"),
                args.get("price"),
                reduce_only=args.get("reduceOnly") is True,
                market_unit=args.get("marketUnit")
                if isinstance(args.get("marketUnit"), str)
                else None,
            )
            trigger = args.get("triggerPrice")
            if trigger not in (None, ""):
                self.check_price(trigger)
        elif op == "amend":
            self.check_amend(args.get("qty"), args.get("price"), args.get("triggerPrice"))


Loader = Callable[[str], Awaitable[Iterable[Mapping[str, Any]]]]
"""``await loader(category)`` -> the raw ``instruments-info`` items of the whole category."""


class InstrumentCheck(Protocol):
    """What order entry (REST and the trade WebSocket alike) asks before sending.

    :class:`InstrumentRegistry` is the implementation; another object with this method can
    stand in (a risk layer of your own, say). ``op`` is ``create`` or ``amend`` (anything else
    passes); ``args`` one order's API fields (with ``symbol``), ``orders`` a batch's. It raises a
    ``ValueError`` subclass naming the broken rule, and then nothing is sent.
    """

    async def check_request(
        self,
        op: str,
        category: str,
        args: Mapping[str, Any] | None = None,
        orders: Iterable[Mapping[str, Any]] | None = None,
    ) -> None: ...


class InstrumentRegistry:
    """Instrument rules loaded on demand per category, cached, refreshed.

    Args:
        loader: ``await loader(category)`` returns the category's raw ``instruments-info``
            items, e.g. ``lambda c: rest.instruments_info(c)``; or pass ``rest=`` instead.
        rest: a :class:`~hean.exchange.bybit.rest.BybitRestClient` to load with.
        ttl: seconds a loaded category is trusted before the next use reloads it (Bybit
            re-sets some order limits on the 3rd and 17th of each month).
        min_reload_interval: an unknown symbol reloads its category at most this often.
        clock: time source (tests inject a manual clock).

    Use :meth:`get` / :meth:`check_order` (async: they load as needed), or :meth:`load` first
    and then :meth:`cached` / :meth:`check_order_cached` from sync code.
    """

    def __init__(
        self,
        loader: Loader | None = None,
        *,
        rest: Any = None,
        ttl: float = 6 * 3600.0,
        min_reload_interval: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        if loader is None:
            if rest is None:
                raise TypeError("InstrumentRegistry needs a loader or rest=")
            loader = rest.instruments_info
        self._loader: Loader = loader
        self._ttl = ttl
        self._min_reload = min_reload_interval
        self._clock = clock if clock is not None else SystemClock()
        self._by_category: dict[str, dict[str, Instrument]] = {}
        self._loaded_at: dict[str, float] = {}
        self.loads = 0
        """Category loads so far (each is one or more REST calls)."""
        self.skipped = 0
        """Items the loader returned that could not be parsed (counted, logged, dropped)."""

    async def load(self, category: str) -> int:
        """(Re)load one category now; returns the number of instruments."""
        items = await self._loader(category)
        table: dict[str, Instrument] = {}
        for item in items:
            try:
                inst = Instrument.from_api(category, item)
            except (ValueError, TypeError) as exc:
                self.skipped += 1
                log.warning("instruments: %s item dropped: %s", category, exc)
                continue
            table[inst.symbol] = inst
        self._by_category[category] = table
        self._loaded_at[category] = self._clock.monotonic()
        self.loads += 1
        return len(table)

    def cached(self, category: str, symbol: str) -> Instrument | None:
        """The rules if loaded (no I/O)."""
        return self._by_category.get(category, {}).get(symbol)

    def symbols(self, category: str) -> list[str]:
        """The symbols of a loaded category."""
        return sorted(self._by_category.get(category, {}))

    async def get(self, category: str, symbol: str) -> Instrument:
        """The rules of ``symbol``, loading or refreshing its category as needed.

        Raises:
            UnknownInstrumentError: not listed, even after a reload.
        """
        now = self._clock.monotonic()
        loaded = self._loaded_at.get(category)
        if loaded is None or now - loaded >= self._ttl:
            await self.load(category)
        inst = self.cached(category, symbol)
        if inst is None:
            loaded = self._loaded_at.get(category)
            if loaded is None or self._clock.monotonic() - loaded >= self._min_reload:
                await self.load(category)
                inst = self.cached(category, symbol)
        if inst is None:
            raise UnknownInstrumentError(category, symbol)
        return inst

    async def check_order(
        self,
        category: str,
        symbol: str,
        side: str,
        order_type: str,
        qty: object,
        price: object = None,
        **kwargs: Any,
    ) -> None:
        """Load the rules if needed and check an order (see :meth:`Instrument.check_order`).

        Raises:
            OrderRuleError: a rule is broken.
            UnknownInstrumentError: the symbol is not listed.
        """
        inst = await self.get(category, symbol)
        inst.check_order(side, order_type, qty, price, **kwargs)

    async def check_request(
        self,
        op: str,
        category: str,
        args: Mapping[str, Any] | None = None,
        orders: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        """Check an order-entry request before it is sent: one order (``args``: ``symbol`` and
        the API fields) or a batch (``orders``, each with its ``symbol``). ``op``: ``create`` or
        ``amend`` (anything else passes). A batch names the failing order's index.

        Raises:
            OrderRuleError: a rule is broken (nothing should be sent).
            UnknownInstrumentError: a symbol is not listed.
        """
        if op not in ("create", "amend"):
            return
        if args is not None:
            inst = await self.get(category, str(args.get("symbol") or ""))
            inst.check_request(op, args)
        for i, order in enumerate(orders or ()):
            inst = await self.get(category, str(order.get("symbol") or ""))
            try:
                inst.check_request(op, order)
            except OrderRuleError as exc:
                raise OrderRuleError(
                    exc.rule, exc.category, exc.symbol, f"batch order {i}: {exc.detail}"
                ) from None

    def check_order_cached(
        self,
        category: str,
        symbol: str,
        side: str,
        order_type: str,
        qty: object,
        price: object = None,
        **kwargs: Any,
    ) -> bool:
        """Check against cached rules only; ``False`` when the symbol is not loaded (nothing
        checked), ``True`` when it passed.

        Raises:
            OrderRuleError: a rule is broken.
        """
        inst = self.cached(category, symbol)
        if inst is None:
            return False
        inst.check_order(side, order_type, qty, price, **kwargs)
        return True
