"""The account core's rules one by one: merge tie-breaks, fast/full executions, funding, runs
(one at a time, one queued), the buffer, windows, look-ups, external orders, memory bounds."""

from __future__ import annotations

from typing import Any

import pytest

from hean.account import AccountState, is_fill
from hean.account.core import DAY_MS, EXEC_WINDOW_MS
from hean.account.merge import merge_order, merge_position, merge_wallet, same_content
from hean.core.events import (
    EventType,
    ExecutionEvent,
    GapEvent,
    OrderUpdateEvent,
    PositionUpdateEvent,
    WalletUpdateEvent,
)
from hean.exchange.bybit.state.private import (
    Execution,
    FastExecution,
    Order,
    Position,
    Wallet,
    WalletCoin,
)

T = 1_700_000_000_000


def order(oid: str = "o1", status: str = "New", cum: str = "0", t: int = T, **kw: Any) -> Order:
    fields: dict[str, Any] = {"qty": "1", "price": "100", **kw}
    return Order(
        order_id=oid,
        symbol="BTCUSDT",
        category="linear",
        order_status=status,
        cum_exec_qty=cum,
        updated_time=str(t),
        **fields,
    )


def execution(eid: str, t: int = T, kind: str = "Trade", seq: int | None = 1) -> Execution:
    return Execution(
        exec_id=eid,
        symbol="BTCUSDT",
        order_id="o1",
        category="linear",
        exec_type=kind,
        exec_time=str(t),
        exec_qty="0.1",
        seq=seq,
    )


def fast(eid: str, t: int = T) -> FastExecution:
    return FastExecution(
        exec_id=eid, symbol="BTCUSDT", order_id="o1", category="linear", exec_time=str(t)
    )


def position(seq: int | None, t: int = T, size: str = "1", **kw: Any) -> Position:
    return Position(
        symbol="BTCUSDT",
        category="linear",
        position_idx=0,
        seq=seq,
        updated_time=str(t),
        size=size,
        side="Buy" if size != "0" else "",
        **kw,
    )


def wallet(usdt: str, usdc: str | None = None, equity: str | None = None) -> Wallet:
    coins = [WalletCoin(coin="USDT", wallet_balance=usdt)]
    if usdc is not None:
        coins.append(WalletCoin(coin="USDC", wallet_balance=usdc))
    return Wallet(account_type="UNIFIED", total_equity=equity, coin=coins)


def ev_orders(*orders: Order) -> OrderUpdateEvent:
    return OrderUpdateEvent("private", "order", list(orders), "id", T, 0.0, T)


def ev_execs(*execs: Any, is_fast: bool = False) -> ExecutionEvent:
    return ExecutionEvent("private", "execution", is_fast, list(execs), "id", T, 0.0, T)


def ev_positions(*positions: Position) -> PositionUpdateEvent:
    return PositionUpdateEvent("private", "position", list(positions), "id", T, 0.0, T)


def ev_wallet(w: Wallet, created: int) -> WalletUpdateEvent:
    return WalletUpdateEvent("private", "wallet", [w], "id", created, 0.0, created)


def gap(down: float, topic: str = "order", since_ms: int | None = T) -> GapEvent:
    return GapEvent("private", topic, down, down + 1, 1.0, "x", down, since_ms, None)


def in_sync(state: AccountState) -> AccountState:
    assert state.begin("start", 0.0, T)
    state.finish(0.1, T)
    assert state.in_sync
    return state


# -- merge rules -----------------------------------------------------------------------------


def test_terminal_status_wins_over_a_later_open_one() -> None:
    held = order(status="Cancelled", t=T)
    stored, changed = merge_order(held, order(status="New", t=T + 5))
    assert stored is held and not changed
    stored, changed = merge_order(order(status="New", t=T + 5), held)
    assert stored is held and changed


def test_larger_cum_exec_qty_wins_compared_as_decimal() -> None:
    held = order(status="PartiallyFilled", cum="0.10", t=T + 9)
    stored, changed = merge_order(held, order(status="PartiallyFilled", cum="0.09", t=T + 50))
    assert stored is held and not changed
    bigger = order(status="PartiallyFilled", cum="0.2", t=T)
    assert merge_order(held, bigger) == (bigger, True)


@pytest.mark.parametrize("garbage", ["NaN", "sNaN", "-Infinity", "Infinity", "1e", "abc"])
def test_a_number_that_is_not_finite_counts_as_zero_and_never_raises(garbage: str) -> None:
    """A network value such as ``"NaN"`` parses as a Decimal that raises when compared: the
    stream's handler and a run died on it. It counts as zero like any other garbage."""
    held = order(status="PartiallyFilled", cum="0.5", t=T)
    stored, changed = merge_order(held, order(status="PartiallyFilled", cum=garbage, t=T + 5))
    assert stored is held and not changed
    state = in_sync(AccountState())
    state.feed(EventType.ORDER_UPDATE, ev_orders(held))
    assert state.feed(EventType.ORDER_UPDATE, ev_orders(order(cum=garbage, t=T + 9))) == []
    assert state.begin("manual", 1.0, T + 10)
    state.rest_open_orders("linear", [order(cum=garbage, t=T + 10)], now=1.0, wall_ms=T + 10)
    state.rest_positions("linear", [position(3, size=garbage)], now=1.0, wall_ms=T + 10)
    assert state.missing_positions() == []
    assert state.finish(2.0, T + 11).event.ok and state.in_sync
    assert state.orders["o1"].cum_exec_qty == "0.5"


def test_a_held_event_that_cannot_be_applied_is_counted_and_the_rest_released() -> None:
    state = in_sync(AccountState())
    assert state.begin("manual", 1.0, T + 10)
    state.feed(EventType.ORDER_UPDATE, ev_orders(order("o1")))
    state.feed(EventType.ORDER_UPDATE, OrderUpdateEvent("private", "order", [None], "id", T, 0, T))
    state.feed(EventType.ORDER_UPDATE, ev_orders(order("o2")))
    end = state.finish(2.0, T + 11)
    assert end.event.ok and state.in_sync and not state.in_run
    assert [o.order_id for _, e in end.outputs for o in e.orders] == ["o1", "o2"]
    assert state.stats.unusable_events == 1


def test_later_updated_time_then_identical_is_a_no_op_else_incoming() -> None:
    held = order(t=T)
    later = order(t=T + 1, price="101")
    assert merge_order(held, later) == (later, True)
    assert merge_order(later, held) == (later, False)
    same = order(t=T)
    assert merge_order(held, same)[1] is False
    # numbers compared as numbers; "" and missing fields are "unknown", not a difference
    assert merge_order(held, order(t=T, price="100.0", avg_price=""))[1] is False
    differs = order(t=T, price="99")
    assert merge_order(held, differs) == (differs, True)


def test_a_copy_that_only_adds_fields_enriches_silently() -> None:
    held = order(t=T)
    richer = order(t=T, closed_pnl="1.5", fee_currency="USDT")
    stored, changed = merge_order(held, richer)
    assert not changed and stored.closed_pnl == "1.5" and stored.fee_currency == "USDT"
    assert same_content(held, richer) == (True, {"closed_pnl": "1.5", "fee_currency": "USDT"})


def test_positions_by_seq_then_updated_time_none_is_minus_infinity() -> None:
    held = position(seq=10, t=T)
    assert merge_position(held, position(seq=9, t=T + 100)) == (held, False)
    newer = position(seq=11, t=T)
    assert merge_position(held, newer) == (newer, True)
    settings = position(seq=10, t=T + 1, leverage="5")
    assert merge_position(held, settings) == (settings, True)
    assert merge_position(held, position(seq=None, t=T + 999))[1] is False
    assert merge_position(position(seq=None, t=T), position(seq=None, t=T + 1))[1] is True


def test_position_mark_price_alone_is_not_a_change_but_is_kept() -> None:
    held = position(seq=10, mark_price="100", unrealised_pnl="1")
    stored, changed = merge_position(held, position(seq=10, mark_price="101", unrealised_pnl="2"))
    assert not changed and stored.mark_price == "101" and stored.unrealised_pnl == "2"


def test_wallet_stream_merges_coins_rest_replaces() -> None:
    held = wallet("10", "5", equity="15")
    merged, changed = merge_wallet(held, wallet("11"), baseline=False)
    assert changed and {c.coin: c.wallet_balance for c in merged.coin} == {
        "USDT": "11",
        "USDC": "5",
    }
    assert merged.total_equity == "15"  # not sent: kept
    replaced, changed = merge_wallet(merged, wallet("11"), baseline=True)
    assert changed and [c.coin for c in replaced.coin] == ["USDT"]
    assert merge_wallet(replaced, wallet("11.0"), baseline=False)[1] is False


def test_is_fill_tells_funding_and_settlement_apart() -> None:
    assert is_fill(execution("a")) and is_fill(fast("b"))
    assert is_fill(execution("c", kind="AdlTrade")) and is_fill(execution("d", kind="BustTrade"))
    for kind in ("Funding", "Settle", "Delivery", "MovePosition", "SomethingNew"):
        assert not is_fill(execution("e", kind=kind))


# -- stream events ---------------------------------------------------------------------------


def test_feed_returns_the_same_event_when_all_changed_and_a_copy_with_only_changes() -> None:
    state = in_sync(AccountState())
    event = ev_orders(order("o1"), order("o2"))
    assert state.feed(EventType.ORDER_UPDATE, event) == [(EventType.ORDER_UPDATE, event)]
    again = ev_orders(order("o1"), order("o2", t=T + 1, price="101"))
    [(_, out)] = state.feed(EventType.ORDER_UPDATE, again)
    assert out is not again and [o.order_id for o in out.orders] == ["o2"]
    assert out.msg_id == again.msg_id and not out.reconciled
    assert state.feed(EventType.ORDER_UPDATE, again) == []


def test_fast_then_full_execution_counts_once_and_full_enriches() -> None:
    state = in_sync(AccountState())
    assert state.feed(EventType.EXECUTION, ev_execs(fast("x1"), is_fast=True))
    full = execution("x1")
    assert state.feed(EventType.EXECUTION, ev_execs(full)) == []
    assert state.executions == [full]
    assert state.stats.enriched_executions == 1 and state.stats.executions_seen == 1
    # full first, then fast: the fast one is a duplicate
    assert state.feed(EventType.EXECUTION, ev_execs(execution("x2")))
    assert state.feed(EventType.EXECUTION, ev_execs(fast("x2"), is_fast=True)) == []
    assert state.stats.duplicate_executions == 1


def test_funding_execution_is_delivered_but_never_touches_orders() -> None:
    state = in_sync(AccountState())
    state.feed(EventType.ORDER_UPDATE, ev_orders(order("o1")))
    funding = Execution(
        exec_id="f1", symbol="BTCUSDT", order_id="o1", exec_type="Funding", exec_time=str(T)
    )
    [(_, out)] = state.feed(EventType.EXECUTION, ev_execs(funding))
    assert out.executions == [funding] and not is_fill(funding)
    assert state.orders["o1"].order_status == "New"


def test_closed_orders_move_to_a_bounded_store_with_link_index() -> None:
    state = in_sync(AccountState(max_closed_orders=2))
    for i in range(4):
        state.feed(EventType.ORDER_UPDATE, ev_orders(order(f"o{i}", order_link_id=f"l{i}")))
        state.feed(
            EventType.ORDER_UPDATE,
            ev_orders(order(f"o{i}", "Filled", "1", T + 1, order_link_id=f"l{i}")),
        )
    assert state.orders == {} and list(state.closed_orders) == ["o2", "o3"]
    assert state.order(order_link_id="l3") is state.closed_orders["o3"]
    assert state.order(order_link_id="l0") is None and state.order("o0") is None
    assert state.stats.closed_orders == 2


def test_wallet_messages_older_than_the_held_coin_are_ignored() -> None:
    state = in_sync(AccountState())
    assert state.feed(EventType.WALLET_UPDATE, ev_wallet(wallet("10", "5"), T + 10))
    assert state.feed(EventType.WALLET_UPDATE, ev_wallet(wallet("9"), T + 5)) == []
    assert state.stats.stale_wallet_messages == 1
    # a late message about another coin still counts for that coin
    late = Wallet(account_type="UNIFIED", coin=[WalletCoin(coin="BTC", wallet_balance="1")])
    assert state.feed(EventType.WALLET_UPDATE, ev_wallet(late, T + 5))
    assert state.balance("USDT").wallet_balance == "10"  # type: ignore[union-attr]
    assert state.balance("BTC").wallet_balance == "1"  # type: ignore[union-attr]


# -- runs ------------------------------------------------------------------------------------


def test_events_are_held_during_a_run_and_released_through_the_merge_rules() -> None:
    state = AccountState(max_buffer=2)
    assert state.begin("start", 0.0, T) and not state.in_sync
    stale_wallet = ev_wallet(wallet("1"), T + 10)
    fresh_wallet = ev_wallet(wallet("3"), T + 30)
    old_fill = ev_execs(execution("x1"))
    partial = ev_orders(order("o1", "PartiallyFilled", "0.5", T + 5))
    for kind, event in (
        (EventType.WALLET_UPDATE, stale_wallet),
        (EventType.EXECUTION, old_fill),
        (EventType.ORDER_UPDATE, partial),
        (EventType.WALLET_UPDATE, fresh_wallet),
    ):
        assert state.feed(kind, event) == []
    assert state.stats.buffered == 4 and state.stats.buffer_overflows == 2
    out = state.rest_executions([execution("x1")], now=1.0, wall_ms=T + 20)
    assert out[0][1].reconciled and out[0][1].executions[0].exec_id == "x1"
    rest_order = order("o1", "Filled", "1", T + 15)
    assert state.rest_open_orders("linear", [], now=1.0, wall_ms=T + 20) == []
    assert state.missing_orders() == []  # o1 is only in the buffer: not held yet
    state.rest_order_lookup("o1", rest_order, now=1.0, wall_ms=T + 20, category="linear")
    [(_, w)] = state.rest_wallet([wallet("2")], T + 20, now=1.0, wall_ms=T + 20)
    assert w.reconciled and w.wallets[0].coin_of("USDT").wallet_balance == "2"
    end = state.finish(2.0, T + 40, rest_calls=5)
    assert end.overflowed and not end.next_run and state.in_sync
    # released: the fresh wallet only (the stale one is older than the REST snapshot; the
    # fill and the partial fill are older than what REST said)
    assert [(k, e) for k, e in end.outputs] == [(EventType.WALLET_UPDATE, fresh_wallet)]
    assert state.balance("USDT").wallet_balance == "3"  # type: ignore[union-attr]
    assert state.order("o1").order_status == "Filled"  # type: ignore[union-attr]
    summary = end.event
    assert summary.ok and summary.trigger == "start" and summary.rest_calls == 5
    assert summary.buffered == 4 and summary.executions_new == 1 and summary.wallet_changed
    assert summary.orders_changed == 1 and summary.external_orders == 1
    assert summary.duration == 2.0 and state.last_run is summary


def test_one_run_at_a_time_a_gap_queues_exactly_one_more() -> None:
    state = in_sync(AccountState())
    topics = ("order", "execution", "position", "wallet")
    began = [state.on_gap(gap(5.0, topic), 6.0, T + 6000) for topic in topics]
    assert began == [True, False, False, False]  # one reconnect, one run
    assert state.run_trigger == "gap" and not state.queued and not state.in_sync
    # a second drop during the run: its GAP events queue one more run, further ones fold in
    assert [state.on_gap(gap(7.0, t, T + 7000), 8.0, T + 8000) for t in topics] == [False] * 4
    assert not state.on_gap(gap(9.0, "order", T + 9000), 10.0, T + 10000)
    assert not state.begin("manual", 10.0, T + 10000)
    assert state.queued
    end = state.finish(11.0, T + 11000)
    assert end.next_run and state.in_run and state.run_trigger == "gap" and not state.in_sync
    assert end.event.gap_since_wall_ms == T
    end = state.finish(12.0, T + 12000)
    assert not end.next_run and state.in_sync and end.event.gap_since_wall_ms == T + 7000
    assert state.stats.runs == 3


def test_a_failed_run_stays_out_of_sync_and_carries_its_window() -> None:
    state = in_sync(AccountState(margin_ms=0))
    state.feed(EventType.EXECUTION, ev_execs(execution("x1", t=T + 50_000)))
    assert state.on_gap(gap(1.0, since_ms=T + 60_000), 2.0, T + 70_000)
    end = state.fail(3.0, T + 71_000, "RestServerError: 10016")
    assert not end.event.ok and end.event.error == "RestServerError: 10016"
    assert not state.in_sync and not state.in_run and state.stats.runs_failed == 1
    assert state.begin("retry", 4.0, T + 72_000)
    assert state.exec_windows(T + 72_000) == [(T + 50_000, T + 72_000)]
    state.finish(5.0, T + 73_000)
    assert state.in_sync


def test_the_gap_start_is_put_on_the_venues_clock() -> None:
    """The gap's ``down_since_wall_ms`` is local; ``offset_ms`` (venue minus local) moves it
    onto the venue's clock, where ``wall_ms`` and ``execTime`` are."""
    state = in_sync(AccountState(margin_ms=0))
    assert state.on_gap(gap(1.0, since_ms=T + 60_000), 2.0, T + 50_000, offset_ms=-20_000)
    assert state.exec_windows(T + 50_000) == [(T + 40_000, T + 50_000)]


def test_exec_windows_margin_sync_point_and_seven_days() -> None:
    state = AccountState(margin_ms=10_000)
    assert state.begin("start", 0.0, T)
    assert state.exec_windows(T + 1000) == [(T - 10_000, T + 1000)]
    state.finish(1.0, T + 1000)
    # last execTime seen long before the last successful run: start from that run
    state.feed(EventType.EXECUTION, ev_execs(execution("x1", t=T - 5 * DAY_MS)))
    assert state.begin("manual", 2.0, T + 2000)
    assert state.exec_windows(T + 3000) == [(T - 10_000, T + 3000)]
    state.finish(3.0, T + 3000)
    # a gap 20 days after the last fill seen (T + 3000): three windows of at most 7 days
    state.feed(EventType.EXECUTION, ev_execs(execution("x2", t=T + 3000)))
    down = T + 20 * DAY_MS
    assert state.on_gap(gap(4.0, since_ms=down), 5.0, down + 5000)
    windows = state.exec_windows(down + 5000)
    assert windows[0] == (T + 3000 - 10_000, T + 3000 - 10_000 + EXEC_WINDOW_MS)
    assert windows[-1][1] == down + 5000 and len(windows) == 3
    assert all(b - a <= EXEC_WINDOW_MS for a, b in windows)
    assert all(windows[i][1] + 1 == windows[i + 1][0] for i in range(len(windows) - 1))


def test_missing_orders_looked_up_and_history_lag_leaves_them_unconfirmed() -> None:
    state = in_sync(AccountState())
    state.feed(EventType.ORDER_UPDATE, ev_orders(order("o1"), order("o2"), order("o3")))
    assert state.on_gap(gap(1.0), 2.0, T + 2000)
    state.rest_open_orders("linear", [order("o3")], now=2.0, wall_ms=T + 2000)
    assert [o.order_id for o in state.missing_orders()] == ["o1", "o2"]
    [(_, out)] = state.rest_order_lookup(
        "o1", order("o1", "Filled", "1", T + 1), now=2.0, wall_ms=T + 2000, category="linear"
    )
    assert out.reconciled and out.orders[0].order_status == "Filled"
    assert state.rest_order_lookup("o2", None, now=2.0, wall_ms=T + 2000, category="linear") == []
    end = state.finish(3.0, T + 3000)
    assert end.event.orders_closed == 1 and end.event.orders_changed == 1
    assert state.unconfirmed == {"o2"} and "o2" in state.orders  # no invented status
    assert state.stats.unconfirmed == 1
    # the next run looks it up again; now history has it
    assert state.begin("recheck", 4.0, T + 4000)
    state.rest_open_orders("linear", [order("o3")], now=4.0, wall_ms=T + 4000)
    assert [o.order_id for o in state.missing_orders()] == ["o2"]
    state.rest_order_lookup(
        "o2", order("o2", "Cancelled", t=T + 1), now=4.0, wall_ms=T + 4000, category="linear"
    )
    state.finish(5.0, T + 5000)
    assert state.unconfirmed == frozenset() and list(state.orders) == ["o3"]


def test_only_news_of_an_unconfirmed_order_confirms_it() -> None:
    """An unconfirmed order stays unconfirmed when the stream re-delivers an older or the same
    copy (it says nothing about where the order is now); a newer copy, or a REST answer that
    lists it, settles it."""
    state = in_sync(AccountState())
    state.feed(EventType.ORDER_UPDATE, ev_orders(order("o1", t=T + 5)))
    assert state.begin("manual", 1.0, T + 10)
    state.rest_open_orders("linear", [], now=1.0, wall_ms=T + 10)
    state.rest_order_lookup("o1", None, now=1.0, wall_ms=T + 10, category="linear")
    state.finish(2.0, T + 11)
    assert state.unconfirmed == {"o1"}
    assert state.feed(EventType.ORDER_UPDATE, ev_orders(order("o1", t=T))) == []  # older
    assert state.feed(EventType.ORDER_UPDATE, ev_orders(order("o1", t=T + 5))) == []  # same
    assert state.unconfirmed == {"o1"}
    assert state.feed(EventType.ORDER_UPDATE, ev_orders(order("o1", "Filled", "1", T + 20)))
    assert state.unconfirmed == frozenset()
    # listed in the open set by REST: confirmed even though nothing changed
    state.feed(EventType.ORDER_UPDATE, ev_orders(order("o2", t=T + 5)))
    assert state.begin("manual", 3.0, T + 30)
    state.rest_open_orders("linear", [], now=3.0, wall_ms=T + 30)
    state.rest_order_lookup("o2", None, now=3.0, wall_ms=T + 30, category="linear")
    state.finish(4.0, T + 31)
    assert state.unconfirmed == {"o2"}
    assert state.begin("recheck", 5.0, T + 40)
    state.rest_open_orders("linear", [order("o2", t=T + 5)], now=5.0, wall_ms=T + 40)
    state.finish(6.0, T + 41)
    assert state.unconfirmed == frozenset()


def test_a_position_closed_during_the_gap_is_fetched_by_symbol() -> None:
    state = in_sync(AccountState())
    state.feed(EventType.POSITION_UPDATE, ev_positions(position(seq=5, size="1")))
    other = Position(symbol="ETHUSDT", category="linear", position_idx=0, seq=3, size="0")
    state.feed(EventType.POSITION_UPDATE, ev_positions(other))
    assert state.on_gap(gap(1.0), 2.0, T + 2000)
    # ETHUSDT traded during the gap (opened and closed again): only its fills tell
    eth_fill = Execution(
        exec_id="e9", symbol="ETHUSDT", order_id="o9", category="linear", seq=8, exec_time=str(T)
    )
    state.rest_executions([eth_fill], now=2.0, wall_ms=T + 2000)
    state.rest_positions("linear", [], now=2.0, wall_ms=T + 2000)  # settleCoin: open ones only
    assert state.missing_positions() == [("linear", "BTCUSDT"), ("linear", "ETHUSDT")]
    flat_btc = position(seq=6, t=T + 1, size="0")
    flat_eth = Position(symbol="ETHUSDT", category="linear", position_idx=0, seq=8, size="0")
    state.rest_positions("linear", [flat_btc], now=2.0, wall_ms=T + 2000)
    state.rest_positions("linear", [flat_eth], now=2.0, wall_ms=T + 2000)
    assert state.missing_positions() == []
    end = state.finish(3.0, T + 3000)
    assert end.event.positions_changed == 2
    assert state.position("linear", "BTCUSDT").size == "0"  # type: ignore[union-attr]
    assert state.position("linear", "ETHUSDT").seq == 8  # type: ignore[union-attr]


def test_rest_methods_need_a_run() -> None:
    state = AccountState()
    with pytest.raises(RuntimeError, match="no reconciliation run"):
        state.rest_open_orders("linear", [], now=0.0, wall_ms=T)
    with pytest.raises(ValueError, match="max_exec_ids"):
        AccountState(max_exec_ids=0)


# -- external orders and memory bounds -------------------------------------------------------


def test_orders_not_marked_local_are_external() -> None:
    state = AccountState()
    state.mark_local(order_link_id="mine-1")
    state.mark_local(order_id="o2")
    assert state.begin("start", 0.0, T)
    state.rest_open_orders(
        "linear",
        [order("o1", order_link_id="mine-1"), order("o2"), order("o3", order_link_id="x")],
        now=0.0,
        wall_ms=T,
    )
    end = state.finish(1.0, T)
    assert end.event.external_orders == 1
    assert not state.is_external("o1") and not state.is_external("o2")
    assert state.is_external("o3") and state.is_external("unknown")


def test_exec_id_memory_is_bounded_and_never_redelivers_what_it_forgot() -> None:
    state = in_sync(AccountState(max_exec_ids=3, max_recent_executions=2))
    for i in range(5):
        state.feed(EventType.EXECUTION, ev_execs(execution(f"x{i}", t=T + i)))
    stats = state.stats
    assert stats.exec_ids == 3 and len(state.executions) == 2 and stats.executions_seen == 5
    # x0 and x1 are forgotten: seen again (e.g. by a REST window) they are dropped, not new
    assert state.feed(EventType.EXECUTION, ev_execs(execution("x0", t=T))) == []
    assert state.stats.stale_executions == 1
    # and a run never asks for executions older than the newest forgotten one
    assert state.begin("manual", 1.0, T - 50_000)
    assert state.exec_windows(T + 100)[0][0] == T + 1 + 1
    # something new is still new
    out = state.rest_executions([execution("x9", t=T + 50)], now=1.0, wall_ms=T + 100)
    assert out and out[0][1].executions[0].exec_id == "x9"
