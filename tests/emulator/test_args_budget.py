"""The 21,000-character ``args`` budget of one public connection (protocol.md §3.4)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hean.emulator import Emulator
from hean.emulator.candles import INTERVALS
from hean.emulator.shapes import ARGS_LENGTH_TEXT
from hean.emulator.topics import ARGS_BUDGET, args_length, decide

from .conftest import connect, example, running, same_shape

#: 30 symbols of 30 characters each: enough distinct topics to fill the budget.
LONG = tuple(f"S{i:03d}{'Q' * 22}USDT" for i in range(30))
SHORT = ("BTCUSDT", "ETHUSDT")


def _pool() -> list[str]:
    out: list[str] = []
    for symbol in SHORT + LONG:
        out += [f"tickers.{symbol}", f"publicTrade.{symbol}", f"allLiquidation.{symbol}"]
        out += [f"orderbook.{d}.{symbol}" for d in (1, 50, 200)]
        out += [f"kline.{i}.{symbol}" for i in INTERVALS]
    return out


def _fill(pool: list[str], target: int) -> list[str]:
    """Topics from ``pool`` (removed from it) whose lengths add up to exactly ``target``."""
    chosen: list[str] = []
    rest = target
    while rest > 90:  # every topic is 15..45 characters long
        name = pool.pop()
        chosen.append(name)
        rest -= len(name)
    return chosen + _pair(pool, rest)


def _pair(pool: list[str], n: int) -> list[str]:
    """Two topics from ``pool`` (removed from it) of ``n`` characters together."""
    for i, first in enumerate(pool):
        for j, second in enumerate(pool):
            if i != j and len(first) + len(second) == n:
                pool.remove(first)
                pool.remove(second)
                return [first, second]
    raise AssertionError(f"no two topics of {n} characters left")


def _of_length(pool: list[str], n: int) -> str:
    name = next(t for t in pool if len(t) == n)
    pool.remove(name)
    return name


@pytest.fixture
async def many() -> AsyncIterator[Emulator]:
    async with running(auto_tick=False, symbols={"linear": SHORT + LONG}) as e:
        yield e


async def test_budget_just_under_just_over_and_unsubscribe(many: Emulator) -> None:
    assert ARGS_BUDGET == 21_000
    pool = _pool()
    assert args_length(pool) > ARGS_BUDGET + 200
    c = await connect(many, "linear")
    base = _fill(pool, ARGS_BUDGET - 40)
    ack = await c.subscribe(*base, req_id="fill")
    assert ack["success"] is True, ack
    [info] = many.live_connections("linear")
    assert args_length(info.subscriptions) == ARGS_BUDGET - 40

    # just over: 21,001 characters -> the whole request is refused, nothing is added
    over = _pair(pool, 41)
    ack = await c.subscribe(*over, req_id="over")
    same_shape(ack, example("subscribe_fail.json"))
    assert ack == {
        "success": False,
        "ret_msg": ARGS_LENGTH_TEXT,
        "conn_id": info.conn_id,
        "req_id": "over",
        "op": "subscribe",
    }
    assert args_length(info.subscriptions) == ARGS_BUDGET - 40
    assert not set(over) & info.subscriptions

    # just under: exactly 21,000 characters is allowed
    exact = _pair(pool, 40)
    ack = await c.subscribe(*exact, req_id="exact")
    assert ack["success"] is True, ack
    assert args_length(info.subscriptions) == ARGS_BUDGET
    # full: even the shortest topic is refused now
    shortest = min(pool, key=len)
    ack = await c.subscribe(shortest)
    assert ack["success"] is False and ack["ret_msg"] == ARGS_LENGTH_TEXT

    # unsubscribing frees budget: a topic of the freed length fits, one character more does not
    freed = exact[0]
    ack = await c.request({"op": "unsubscribe", "args": [freed], "req_id": "u"})
    assert ack["success"] is True
    assert args_length(info.subscriptions) == ARGS_BUDGET - len(freed)
    ack = await c.subscribe(_of_length(pool, len(freed) + 1))
    assert ack["success"] is False and ack["ret_msg"] == ARGS_LENGTH_TEXT
    ack = await c.subscribe(_of_length(pool, len(freed)))
    assert ack["success"] is True
    assert args_length(info.subscriptions) == ARGS_BUDGET
    c.close()


async def test_budget_is_per_connection(many: Emulator) -> None:
    pool = _pool()
    base = _fill(pool, ARGS_BUDGET)
    first = await connect(many, "linear")
    second = await connect(many, "linear")
    assert (await first.subscribe(*base))["success"] is True
    assert (await second.subscribe(*base))["success"] is True
    ack = await first.subscribe(pool[0])
    assert ack["success"] is False and ack["ret_msg"] == ARGS_LENGTH_TEXT
    first.close()
    second.close()


def test_budget_option_refuses_every_topic() -> None:
    current = {"tickers.BTC-26JUN26-60000-C-USDT"}
    args = ["tickers.BTC-26JUN26-60000-P-USDT", "orderbook.25.BTC-26JUN26-60000-P-USDT"]
    budget = args_length(current) + args_length(args) - 1
    out = decide("option", "subscribe", args, current, lambda s: True, budget=budget)
    assert out.success is False and out.failed == args and out.accepted == []
    out = decide("option", "subscribe", args, current, lambda s: True, budget=budget + 1)
    assert out.success is True and out.failed == []
