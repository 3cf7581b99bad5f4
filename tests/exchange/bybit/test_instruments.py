"""Instrument rules: parsing every category's instruments-info shape, the order checks, and the
registry's on-demand loading, caching and refresh."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hean.core.clock import ManualClock
from hean.exchange.bybit.instruments import (
    Instrument,
    InstrumentRegistry,
    OrderRuleError,
    UnknownInstrumentError,
    to_decimal,
)

EXAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "bybit-v5" / "examples" / "rest"


def _items(name: str) -> tuple[str, list[dict[str, Any]]]:
    path = EXAMPLES / f"market_instruments_info_{name}.json"  # ../shared beside the project
    body = json.loads(path.read_text())
    return body["result"]["category"], body["result"]["list"]


def _one(name: str) -> Instrument:
    category, items = _items(name)
    return Instrument.from_api(category, items[0])


def test_parse_linear_example() -> None:
    inst = _one("linear")
    assert inst.category == "linear" and inst.symbol == "BTCUSDT"
    assert inst.tick_size == Decimal("0.10")
    assert inst.qty_step == Decimal("0.001")
    assert inst.min_qty == Decimal("0.001")
    assert inst.max_qty == Decimal("1190.000")
    assert inst.max_market_qty == Decimal("500.000")
    assert inst.min_notional == Decimal("5")
    assert inst.settle_coin == "USDT"
    assert inst.accepts_orders


def test_parse_spot_example_uses_spot_fields() -> None:
    inst = _one("spot")
    assert inst.qty_step == Decimal("0.000001")  # basePrecision
    assert inst.quote_step == Decimal("0.0000001")
    assert inst.min_qty is None  # spot minOrderQty is deprecated and not checked
    assert inst.max_qty == Decimal("83")  # maxLimitOrderQty
    assert inst.max_market_qty == Decimal("41.5")
    assert inst.min_notional == Decimal("5")  # minOrderAmt


def test_parse_option_and_prelisting_examples() -> None:
    opt = _one("option")
    assert opt.tick_size == Decimal("5") and opt.qty_step == Decimal("0.01")
    assert opt.min_notional is None
    pre = _one("linear_prelisting")
    assert pre.status == "PreLaunch" and pre.pre_market_phase == "ContinuousTrading"
    assert pre.accepts_orders


def test_tick_size_rule_named() -> None:
    inst = _one("linear")
    inst.check_order("Buy", "Limit", "0.001", "30000.1")
    with pytest.raises(OrderRuleError) as err:
        inst.check_order("Buy", "Limit", "0.001", "30000.05")
    assert err.value.rule == "tick_size"
    assert "BTCUSDT" in str(err.value) and "tick size 0.10" in str(err.value)


def test_qty_rules_named() -> None:
    inst = _one("linear")
    cases = {
        "0.0015": "qty_step",
        "0": "qty",
        "-1": "qty",
        "abc": "qty",
        "2000": "max_qty",
    }
    for qty, rule in cases.items():
        with pytest.raises(OrderRuleError) as err:
            inst.check_order("Sell", "Limit", qty, "30000")
        assert err.value.rule == rule, qty
    # min_qty: below 0.001 but on the step is impossible here, use a wider-step instrument
    wide = Instrument(
        category="linear",
        symbol="X",
        status="Trading",
        qty_step=Decimal("0.1"),
        min_qty=Decimal("1"),
    )
    with pytest.raises(OrderRuleError) as err:
        wide.check_order("Buy", "Market", "0.5")
    assert err.value.rule == "min_qty"


def test_market_max_differs_from_limit_max() -> None:
    inst = _one("linear")
    inst.check_order("Buy", "Limit", "600", "30000")
    with pytest.raises(OrderRuleError) as err:
        inst.check_order("Buy", "Market", "600")
    assert err.value.rule == "max_qty" and "market maximum 500" in str(err.value)


def test_min_notional_limit_and_market_with_reference() -> None:
    inst = _one("linear")
    with pytest.raises(OrderRuleError) as err:
        inst.check_order("Buy", "Limit", "0.001", "1000")  # value 1 < 5
    assert err.value.rule == "min_notional"
    inst.check_order("Buy", "Market", "0.001")  # no reference price: not judged
    with pytest.raises(OrderRuleError):
        inst.check_order("Buy", "Market", "0.001", reference_price=1000)
    inst.check_order("Buy", "Market", "0.001", reference_price=30000)


def test_price_bounds() -> None:
    inst = _one("linear")
    with pytest.raises(OrderRuleError) as err:
        inst.check_order("Buy", "Limit", "1", "2000000.0")
    assert err.value.rule == "max_price"
    with pytest.raises(OrderRuleError) as err:
        inst.check_order("Buy", "Limit", "1", "0")
    assert err.value.rule == "price"


def test_reduce_only_skips_size_limits_not_steps() -> None:
    inst = _one("linear")
    inst.check_order("Sell", "Market", "0", reduce_only=True)
    inst.check_order("Sell", "Market", "5000", reduce_only=True)
    with pytest.raises(OrderRuleError) as err:
        inst.check_order("Sell", "Market", "0.0005", reduce_only=True)
    assert err.value.rule == "qty_step"


def test_spot_market_buy_is_sized_in_quote() -> None:
    inst = _one("spot")
    inst.check_order("Buy", "Market", "10.5")  # quote amount, on the quote step
    with pytest.raises(OrderRuleError) as err:
        inst.check_order("Buy", "Market", "4")
    assert err.value.rule == "min_notional"
    with pytest.raises(OrderRuleError) as err:
        inst.check_order("Buy", "Market", "10.000000001")
    assert err.value.rule == "qty_step" and "quote amount" in str(err.value)
    # sized in base: the base step and the market maximum apply
    with pytest.raises(OrderRuleError) as err:
        inst.check_order("Buy", "Market", "50", market_unit="baseCoin")
    assert err.value.rule == "max_qty"


def test_status_rule() -> None:
    _, items = _items("linear")
    closed = Instrument.from_api("linear", {**items[0], "status": "Closed"})
    with pytest.raises(OrderRuleError) as err:
        closed.check_order("Buy", "Limit", "0.001", "30000")
    assert err.value.rule == "status"
    _, pre_items = _items("linear_prelisting")
    waiting = dict(pre_items[0])
    waiting["preListingInfo"] = {**waiting["preListingInfo"], "curAuctionPhase": "NotStarted"}
    with pytest.raises(OrderRuleError) as err:
        Instrument.from_api("linear", waiting).check_order("Buy", "Limit", "1", "1")
    assert err.value.rule == "status" and "NotStarted" in str(err.value)


def test_float_inputs_are_judged_by_their_shortest_text() -> None:
    inst = _one("linear")
    inst.check_order("Buy", "Limit", 0.003, 30000.3)  # 0.1 + 0.2 style floats pass
    assert to_decimal(0.1 + 0.2) == Decimal("0.30000000000000004")
    assert to_decimal(float("nan")) is None and to_decimal(True) is None


class _Loader:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.calls = 0

    async def __call__(self, category: str) -> list[dict[str, Any]]:
        self.calls += 1
        return list(self.items)


async def test_registry_loads_on_demand_and_caches() -> None:
    _, items = _items("linear")
    loader = _Loader([*items, {"no": "symbol"}])
    clock = ManualClock()
    reg = InstrumentRegistry(loader, clock=clock, ttl=100.0, min_reload_interval=10.0)
    assert reg.cached("linear", "BTCUSDT") is None
    inst = await reg.get("linear", "BTCUSDT")
    assert inst.symbol == "BTCUSDT" and loader.calls == 1 and reg.skipped == 1
    await reg.get("linear", "BTCUSDT")
    await reg.check_order("linear", "BTCUSDT", "Buy", "Limit", "0.001", "30000")
    assert loader.calls == 1
    clock.advance(100.0)
    await reg.get("linear", "BTCUSDT")
    assert loader.calls == 2  # ttl expired: refreshed


async def test_registry_unknown_symbol_reloads_at_most_once_per_interval() -> None:
    _, items = _items("linear")
    loader = _Loader(items)
    clock = ManualClock()
    reg = InstrumentRegistry(loader, clock=clock, min_reload_interval=10.0)
    await reg.load("linear")
    clock.advance(11.0)
    with pytest.raises(UnknownInstrumentError):
        await reg.get("linear", "NEWUSDT")
    assert loader.calls == 2  # one reload for a possible new listing
    with pytest.raises(UnknownInstrumentError):
        await reg.get("linear", "NEWUSDT")
    assert loader.calls == 2  # not again within the interval
    loader.items = [*items, {**items[0], "symbol": "NEWUSDT"}]
    clock.advance(10.0)
    assert (await reg.get("linear", "NEWUSDT")).symbol == "NEWUSDT"


async def test_registry_cached_check_from_sync_code() -> None:
    _, items = _items("linear")
    reg = InstrumentRegistry(_Loader(items))
    assert reg.check_order_cached("linear", "BTCUSDT", "Buy", "Limit", "1", "1") is False
    await reg.load("linear")
    assert reg.symbols("linear") == ["BTCUSDT"]
    assert reg.check_order_cached("linear", "BTCUSDT", "Buy", "Limit", "0.001", "30000")
    with pytest.raises(OrderRuleError):
        reg.check_order_cached("linear", "BTCUSDT", "Buy", "Limit", "0.001", "30000.01")


def test_registry_needs_a_source() -> None:
    with pytest.raises(TypeError):
        InstrumentRegistry()


def test_check_request_uses_api_field_names() -> None:
    inst = _one("linear")
    args = {"side": "Buy", "orderType": "Limit", "qty": "0.001", "price": "30000"}
    inst.check_request("create", args)
    with pytest.raises(OrderRuleError) as err:
        inst.check_request("create", {**args, "triggerPrice": "30000.01"})
    assert err.value.rule == "tick_size"
    inst.check_request("create", {**args, "qty": "0", "reduceOnly": True, "orderType": "Market"})
    inst.check_request("cancel", {"qty": "nonsense"})  # only create and amend are judged
    inst.check_request("amend", {"price": "30000.1"})
    for change, rule in (({"qty": "0.0001"}, "qty_step"), ({"qty": "5000"}, "max_qty")):
        with pytest.raises(OrderRuleError) as err:
            inst.check_request("amend", change)
        assert err.value.rule == rule
