from __future__ import annotations

import logging

import pytest

from hean.core.lifecycle import TRANSITIONS, ConnectionState, InvalidTransition, Lifecycle

S = ConnectionState


def test_every_state_has_a_row_and_stopping_only_closes() -> None:
    assert set(TRANSITIONS) == set(ConnectionState)
    assert TRANSITIONS[S.STOPPING] == frozenset({S.CLOSED})
    # Nothing but an explicit restart leaves CLOSED, and nothing reconnects out of STOPPING.
    assert TRANSITIONS[S.CLOSED] == frozenset({S.CONNECTING})


def test_transitions_are_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    seen = []
    lc = Lifecycle("x", logging.getLogger("test.lc"), lambda o, n, r: seen.append((o, n, r)))
    with caplog.at_level(logging.INFO, logger="test.lc"):
        lc.to(S.CONNECTING, "start")
        lc.to(S.LIVE)
    assert seen == [(S.IDLE, S.CONNECTING, "start"), (S.CONNECTING, S.LIVE, "")]
    assert "idle -> connecting (start)" in caplog.text
    assert "connecting -> live" in caplog.text


def test_invalid_transition_raises() -> None:
    lc = Lifecycle("x", logging.getLogger("test.lc"))
    with pytest.raises(InvalidTransition):
        lc.to(S.LIVE)
    lc.to(S.STOPPING)
    assert not lc.can(S.CONNECTING) and not lc.can(S.BACKOFF)
    with pytest.raises(InvalidTransition):
        lc.to(S.BACKOFF)
