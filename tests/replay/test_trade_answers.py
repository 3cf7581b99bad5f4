"""The rule that answers a replayed trade stream's requests from the recording, by reqId."""

from __future__ import annotations

import pytest

from hean.replay.trade import Answer, TradeAnswers

ARGS = [{"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "qty": "0.001"}]
ACK = b'{"reqId":"r1","retCode":0,"op":"order.create","data":{"orderId":"o1"}}'


def acks(answers: list[Answer]) -> list[tuple[str, bytes | None, int]]:
    return [(a.client, a.ack, a.code) for a in answers]


def test_the_recorded_ack_answers_the_same_request_at_its_time_or_at_once() -> None:
    t = TradeAnswers()
    assert t.request("c", "r1", "order.create", ARGS) == []  # the recording is not there yet
    assert t.recorded_request("r1", "order.create", ARGS) == []  # paired: waits for the ack
    assert acks(t.recorded_ack("r1", ACK)) == [("c", ACK, 0)]  # at the recorded time
    t.recorded_request("r2", "order.cancel", ARGS)
    t.recorded_ack("r2", b"ack2")
    assert acks(t.request("d", "r2", "order.cancel", ARGS)) == [("d", b"ack2", 0)]  # late: at once
    assert t.answered == 2 and t.waiting == 0


def test_a_different_request_with_a_recorded_req_id_is_refused() -> None:
    t = TradeAnswers()
    t.recorded_request("r1", "order.create", ARGS)
    other = [{**ARGS[0], "qty": "0.002"}]
    [answer] = t.request("c", "r1", "order.create", other)
    assert answer.ack is None and answer.code == 10001 and "differs" in answer.message
    assert "args" in answer.message
    assert t.recorded_ack("r1", ACK) == []  # never given to a request it did not answer
    [answer] = t.request("c", "r1", "order.create", ARGS)  # the reqId is used now
    assert answer.code == 20006
    t.recorded_request("r3", "order.create", ARGS)
    [answer] = t.request("c", "r3", "order.cancel", ARGS)
    assert answer.code == 10001 and "op order.cancel (recorded order.create)" in answer.message


def test_unknown_duplicate_and_missing_req_ids() -> None:
    t = TradeAnswers(max_waiting=2)
    assert t.request("c", "zz", "order.create", ARGS) == []
    assert [a.code for a in t.request("c", "zz", "order.create", ARGS)] == [20006]
    assert [a.code for a in t.request("c", None, "order.create", ARGS)] == [10001]
    t.request("c", "yy", "order.create", ARGS)
    assert [a.code for a in t.request("c", "xx", "order.create", ARGS)] == [10001]  # bound
    ended = t.finish()
    assert sorted(a.req_id for a in ended if a.req_id) == ["yy", "zz"]
    assert all(a.code == 10001 and "in the recording" in a.message for a in ended)
    [late] = t.request("c", "ww", "order.create", ARGS)  # after the end: refused at once
    assert late.code == 10001 and "in the recording" in late.message
    t.recorded_request("r1", "order.create", ARGS)
    t.request("c", "r1", "order.create", ARGS)
    t.request("gone", "r9", "order.create", ARGS)
    assert t.recorded_ack("r1", ACK)[0].client == "c"
    t.recorded_request("r2", "order.create", ARGS)
    t.request("gone", "r2", "order.create", ARGS)
    t.client_gone("gone")
    assert t.recorded_ack("r2", ACK) == [] and t.finish() == [] and t.waiting == 0


def test_memory_is_bounded_oldest_recorded_requests_forgotten() -> None:
    t = TradeAnswers(max_recorded=3)
    for i in range(5):
        t.recorded_request(f"r{i}", "order.create", ARGS)
        t.recorded_ack(f"r{i}", b"ack%d" % i)
    assert t.forgotten == 2
    assert t.request("c", "r0", "order.create", ARGS) == []  # forgotten: unknown
    assert acks(t.request("c", "r4", "order.create", ARGS)) == [("c", b"ack4", 0)]
    with pytest.raises(ValueError):
        TradeAnswers(max_recorded=0)


def test_an_ack_without_its_request_pairs_on_the_req_id_alone() -> None:
    t = TradeAnswers()
    t.request("c", "r1", "order.create", ARGS)
    assert acks(t.recorded_ack("r1", ACK)) == [("c", ACK, 0)]
