from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hean.core.events import SubscriptionStatus as SS
from hean.exchange.bybit.protocol.codec import Frame, decode
from hean.exchange.bybit.protocol.subscriptions import SubscriptionRegistry, TopicStatus


def ack(
    req_id: str | None, success: bool = True, ret_msg: str = "", op: str = "subscribe"
) -> Frame:
    body = {"success": success, "ret_msg": ret_msg, "conn_id": "c", "op": op}
    if req_id is not None:
        body["req_id"] = req_id
    return decode(json.dumps(body))


def sent(payloads: list[bytes]) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(p) for p in payloads]


def test_request_and_success_ack() -> None:
    reg = SubscriptionRegistry()
    topics = reg.add(["tickers.A", "tickers.B"])
    [req] = sent(reg.build("subscribe", topics, 0.0))
    assert req["op"] == "subscribe" and req["args"] == ["tickers.A", "tickers.B"]
    result = reg.on_ack(ack(req["req_id"]), "subscribe")
    assert result.outcomes == [("tickers.A", SS.CONFIRMED, ""), ("tickers.B", SS.CONFIRMED, "")]
    assert reg.status("tickers.A") is TopicStatus.CONFIRMED
    assert reg.pending_requests() == []


def test_spot_requests_are_chunked_at_ten() -> None:
    reg = SubscriptionRegistry(max_args_per_request=10)
    topics = reg.add([f"tickers.S{i}" for i in range(25)])
    reqs = sent(reg.build("subscribe", topics, 0.0))
    assert [len(r["args"]) for r in reqs] == [10, 10, 5]
    assert len({r["req_id"] for r in reqs}) == 3


def test_ack_without_req_id_matches_oldest_of_same_op() -> None:
    reg = SubscriptionRegistry()
    reg.build("subscribe", reg.add(["a"]), 0.0)
    reg.build("subscribe", reg.add(["b"]), 0.0)
    assert reg.on_ack(ack(""), "subscribe").outcomes == [("a", SS.CONFIRMED, "")]
    assert reg.on_ack(ack(None), "subscribe").outcomes == [("b", SS.CONFIRMED, "")]
    assert reg.on_ack(ack("zzz"), "subscribe").outcomes == []  # nothing left to match


def test_one_bad_topic_is_rejected_and_the_rest_retried_once() -> None:
    reg = SubscriptionRegistry()
    [req] = sent(reg.build("subscribe", reg.add(["tickers.A", "tickers.BAD", "tickers.C"]), 0.0))
    result = reg.on_ack(
        ack(req["req_id"], False, "error:handler not found,topic:tickers.BAD"), "subscribe"
    )
    assert result.outcomes == [
        ("tickers.BAD", SS.REJECTED, "error:handler not found,topic:tickers.BAD")
    ]
    assert result.retry == ["tickers.A", "tickers.C"]
    assert reg.status("tickers.BAD") is TopicStatus.REJECTED


def test_already_subscribed_counts_as_success() -> None:
    reg = SubscriptionRegistry()
    [req] = sent(reg.build("subscribe", reg.add(["tickers.A", "tickers.B"]), 0.0))
    result = reg.on_ack(
        ack(req["req_id"], False, "error:already subscribed,topic:tickers.A"), "subscribe"
    )
    assert result.outcomes[0][:2] == ("tickers.A", SS.CONFIRMED)
    assert result.retry == ["tickers.B"]


def test_spot_invalid_symbol_names_the_topic() -> None:
    reg = SubscriptionRegistry()
    [req] = sent(reg.build("subscribe", reg.add(["tickers.BTCUSDT", "tickers.NOPE"]), 0.0))
    result = reg.on_ack(ack(req["req_id"], False, "Invalid symbol :[NOPE]"), "subscribe")
    assert [o[:2] for o in result.outcomes] == [("tickers.NOPE", SS.REJECTED)]
    assert result.retry == ["tickers.BTCUSDT"]


def test_unnamed_failure_rejects_the_whole_request_without_retry() -> None:
    reg = SubscriptionRegistry()
    [req] = sent(reg.build("subscribe", reg.add(["a", "b"]), 0.0))
    result = reg.on_ack(ack(req["req_id"], False, "args size >10"), "subscribe")
    assert [o[1] for o in result.outcomes] == [SS.REJECTED, SS.REJECTED]
    assert result.retry == []


def test_rejected_topics_get_one_more_try_after_reconnect() -> None:
    reg = SubscriptionRegistry()
    [req] = sent(reg.build("subscribe", reg.add(["a"]), 0.0))
    reg.on_ack(ack(req["req_id"], False, "Params Error"), "subscribe")
    assert reg.status("a") is TopicStatus.REJECTED
    reg.on_disconnect()
    assert reg.status("a") is TopicStatus.PENDING and reg.pending_requests() == []


def test_option_command_resp() -> None:
    reg = SubscriptionRegistry()
    reg.build("subscribe", reg.add(["orderbook.25.X", "orderbook.25.Y"]), 0.0)
    frame = decode(
        json.dumps(
            {
                "success": True,
                "conn_id": "c",
                "type": "COMMAND_RESP",
                "data": {"successTopics": ["orderbook.25.X"], "failTopics": ["orderbook.25.Y"]},
            }
        )
    )
    result = reg.on_ack(frame, "subscribe")
    assert [o[:2] for o in result.outcomes] == [
        ("orderbook.25.X", SS.CONFIRMED),
        ("orderbook.25.Y", SS.REJECTED),
    ]
    assert reg.pending_requests() == []


def test_unsubscribe_ack_and_internal_resync_unsubscribe() -> None:
    reg = SubscriptionRegistry()
    reg.add(["a", "b"])
    [internal] = sent(reg.build("unsubscribe", ["a"], 0.0, internal=True))
    assert reg.on_ack(ack(internal["req_id"], op="unsubscribe"), "unsubscribe").outcomes == []
    reg.discard(["b"])
    [user] = sent(reg.build("unsubscribe", ["b"], 0.0))
    result = reg.on_ack(ack(user["req_id"], op="unsubscribe"), "unsubscribe")
    assert result.outcomes == [("b", SS.UNSUBSCRIBED, "")]


def test_ack_timeouts_reported_once() -> None:
    reg = SubscriptionRegistry()
    reg.build("subscribe", reg.add(["a"]), 10.0)
    assert reg.oldest_pending_at() == 10.0
    assert reg.timeouts(14.9, 5.0) == []
    [late] = reg.timeouts(15.0, 5.0)
    assert late.topics == ["a"]
    assert reg.timeouts(100.0, 5.0) == []
    assert reg.oldest_pending_at() is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "discard", "ok", "fail", "already", "disconnect"]),
            st.lists(
                st.sampled_from([f"t{i}" for i in range(6)]), min_size=1, max_size=4, unique=True
            ),
        ),
        max_size=40,
    )
)
def test_registry_invariants(ops: list[tuple[str, list[str]]]) -> None:
    reg = SubscriptionRegistry(max_args_per_request=3)
    for op, topics in ops:
        if op == "add":
            new = reg.add(topics)
            reg.build("subscribe", new, 0.0)
            assert all(reg.status(t) is not None for t in topics)
        elif op == "discard":
            reg.discard(topics)
            assert all(reg.status(t) is None for t in topics)
        elif op == "disconnect":
            reg.on_disconnect()
            assert reg.pending_requests() == []
            assert all(s is TopicStatus.PENDING for s in reg.topics.values())
        else:
            pending = reg.pending_requests()
            if not pending:
                continue
            req = pending[0]
            msg = {
                "ok": "",
                "fail": f"error:handler not found,topic:{req.topics[0]}",
                "already": f"error:already subscribed,topic:{req.topics[0]}",
            }[op]
            result = reg.on_ack(ack(req.req_id, op == "ok", msg), "subscribe")
            # a retry never re-sends the topic that was named, and only wanted pending topics
            assert req.topics[0] not in result.retry or op == "ok"
            assert all(reg.status(t) is TopicStatus.PENDING for t in result.retry)
            assert len(result.retry) < len(req.topics)
            reg.build("subscribe", result.retry, 0.0)
        # requests in flight are chunked and only carry topics that were wanted when sent
        for req in reg.pending_requests():
            assert 1 <= len(req.topics) <= 3
