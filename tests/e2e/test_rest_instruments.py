"""Order entry over REST checked against the instrument rules the emulator lists
(``/v5/market/instruments-info``) before anything is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.instruments import (
    InstrumentRegistry,
    OrderRuleError,
    UnknownInstrumentError,
)
from hean.exchange.bybit.rest import BybitRestClient
from tests.conftest import ms


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(ticker_interval=ms(10), auto_tick=False)) as e:
        yield e


async def test_rest_order_entry_rejects_rule_breaks_locally(emu: Emulator) -> None:
    async with BybitRestClient(
        api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emu.rest_url()
    ) as rest:
        registry = InstrumentRegistry(rest=rest)
        rest.instruments = registry
        inst = await registry.get("linear", "BTCUSDT")  # loaded from the emulator's listing
        assert inst.tick_size is not None and inst.qty_step is not None
        assert registry.loads == 1
        sent = emu.rest_calls("/v5/order/create")
        order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit"}
        off_tick = str(10_000 + inst.tick_size / 2)
        with pytest.raises(OrderRuleError) as err:
            await rest.create_order(**order, qty=str(inst.qty_step), price=off_tick)
        assert err.value.rule == "tick_size"
        with pytest.raises(OrderRuleError) as err:
            await rest.create_order(**order, qty=str(inst.qty_step / 2), price="10000")
        assert err.value.rule == "qty_step"
        with pytest.raises(UnknownInstrumentError):
            await rest.create_order(**{**order, "symbol": "NOPEUSDT"}, qty="1", price="1")
        assert emu.rest_calls("/v5/order/create") == sent  # nothing reached the venue
        ok = await rest.create_order(**order, qty=str(inst.qty_step * 10), price="10000")
        assert ok.order_id and emu.rest_calls("/v5/order/create") == sent + 1
        with pytest.raises(OrderRuleError):
            await rest.amend_order(
                category="linear", symbol="BTCUSDT", order_id=ok.order_id, price=off_tick
            )
        await rest.cancel_order(category="linear", symbol="BTCUSDT", order_id=ok.order_id)
        assert registry.loads == 1  # an unknown symbol reloads at most once per 30 s
