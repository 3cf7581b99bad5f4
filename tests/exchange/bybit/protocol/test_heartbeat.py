from __future__ import annotations

import pytest

from hean.exchange.bybit.protocol.heartbeat import Heartbeat, HeartbeatPolicy


def test_ping_schedule_pong_deadline_and_rtt() -> None:
    hb = Heartbeat(HeartbeatPolicy(interval=20, timeout=10))
    assert hb.next_deadline() is None
    hb.start(0.0)
    assert not hb.ping_due(19.99) and hb.ping_due(20.0)
    hb.on_ping_sent(20.0)
    assert hb.next_deadline() == 30.0
    assert not hb.expired(29.99) and hb.expired(30.0)
    assert hb.on_pong(20.05) == pytest.approx(0.05)
    assert hb.rtt == pytest.approx(0.05)
    assert not hb.expired(1000.0)
    assert hb.next_deadline() == 40.0


def test_second_ping_does_not_extend_the_first_deadline() -> None:
    hb = Heartbeat(HeartbeatPolicy(interval=1, timeout=5))
    hb.start(0.0)
    hb.on_ping_sent(1.0)
    hb.on_ping_sent(2.0)
    assert hb.pong_deadline == 6.0


def test_unsolicited_pong_and_stop() -> None:
    hb = Heartbeat(HeartbeatPolicy())
    hb.start(0.0)
    assert hb.on_pong(1.0) is None
    assert hb.pongs_received == 1
    hb.stop()
    assert hb.next_deadline() is None and not hb.ping_due(1e9)


@pytest.mark.parametrize(("interval", "timeout"), [(0, 1), (1, 0), (-1, 1)])
def test_policy_validation(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError):
        HeartbeatPolicy(interval, timeout)
