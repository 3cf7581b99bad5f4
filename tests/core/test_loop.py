"""hean.core.loop: uvloop when installed, asyncio otherwise, and the name says which."""

from __future__ import annotations

import asyncio
import sys

import pytest

from hean.core import loop


async def which() -> str:
    await asyncio.sleep(0)
    return loop.loop_name()


def test_runs_on_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    outcome = loop.run(which())
    assert outcome == loop.LoopRun("uvloop", "uvloop")  # the coroutine saw it too


def test_asyncio_when_not_preferred_or_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loop.run(which(), prefer_uvloop=False) == ("asyncio", "asyncio")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # importing it raises ImportError
    assert loop.run(which()) == ("asyncio", "asyncio")


def test_exceptions_propagate_and_the_loop_is_closed() -> None:
    async def boom() -> None:
        raise ValueError("x")

    with pytest.raises(ValueError, match="x"):
        loop.run(boom())
