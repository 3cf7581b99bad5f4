"""Run a program's main coroutine on the fastest event loop installed, and say which.

uvloop (the ``fast`` extra) measured 11-33 % less CPU per message than asyncio's default loop at
realistic rates (issue 12). ``run`` uses it when it is importable and falls back to asyncio's
loop otherwise; the name of the loop it ran on is returned with the result, and
:func:`loop_name` tells a running program which loop it is on (for its start-up line).

::

    from hean.core import loop
    outcome = loop.run(main())          # LoopRun(result=..., loop="uvloop")
    log.info("event loop: %s", loop.loop_name())   # inside main()
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = ["LoopRun", "loop_factory", "loop_name", "run"]

T = TypeVar("T")

ASYNCIO = "asyncio"
UVLOOP = "uvloop"


class LoopRun(NamedTuple, Generic[T]):
    result: T
    loop: str
    """``"uvloop"`` or ``"asyncio"``."""


def loop_factory(prefer_uvloop: bool = True) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """The loop constructor to use and its name (uvloop when installed and preferred)."""
    if prefer_uvloop:
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            pass
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory, UVLOOP
    return asyncio.new_event_loop, ASYNCIO


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Which loop ``loop`` (default: the running one) is: ``uvloop`` or ``asyncio``."""
    current = loop if loop is not None else asyncio.get_running_loop()
    return UVLOOP if type(current).__module__.startswith("uvloop") else ASYNCIO


def run(main: Coroutine[Any, Any, T], *, prefer_uvloop: bool = True) -> LoopRun[T]:
    """Run ``main`` to completion (as :func:`asyncio.run` does) on uvloop when installed and
    preferred, else on asyncio's loop; returns its result and the loop's name."""
    factory, name = loop_factory(prefer_uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(main)
    return LoopRun(result, name)
