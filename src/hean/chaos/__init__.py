"""Chaos storms: a seeded fault schedule against the emulator with invariants checked, and the
soak: a simulated day in which nothing may grow or stick (issue 12). See
:mod:`hean.chaos.storm` and :mod:`hean.chaos.soak`; one command each: ``hean chaos storm``,
``hean chaos soak`` (also ``benchmarks/chaos.py``, ``benchmarks/soak.py``)."""

from hean.chaos.invariants import InvariantChecker, Violation
from hean.chaos.schedule import FAULTS, KINDS, Fault, plan
from hean.chaos.soak import SoakConfig, SoakReport, run_soak
from hean.chaos.storm import StormConfig, StormReport, Timing, replay_command, run_storm

__all__ = [
    "FAULTS",
    "KINDS",
    "Fault",
    "InvariantChecker",
    "SoakConfig",
    "SoakReport",
    "StormConfig",
    "StormReport",
    "Timing",
    "Violation",
    "plan",
    "replay_command",
    "run_soak",
    "run_storm",
]
