"""Chaos storms: a seeded fault schedule against the emulator with invariants checked
(issue 12). See :mod:`hean.chaos.storm`; the long run is ``benchmarks/chaos.py``."""

from hean.chaos.invariants import InvariantChecker, Violation
from hean.chaos.schedule import FAULTS, KINDS, Fault, plan
from hean.chaos.storm import StormConfig, StormReport, replay_command, run_storm

__all__ = [
    "FAULTS",
    "KINDS",
    "Fault",
    "InvariantChecker",
    "StormConfig",
    "StormReport",
    "Violation",
    "plan",
    "replay_command",
    "run_storm",
]
