"""Replay of recordings (:mod:`hean.record`): in-process into the pipeline with a simulated
clock (:class:`Replay`), or served by the emulator to any client (:mod:`hean.replay.server`)."""

from hean.replay.clock import ReplayClock
from hean.replay.inprocess import Replay, ReplayConnection, ReplayStats
from hean.replay.server import ReplayServer, ServerReplayStats

__all__ = [
    "Replay",
    "ReplayClock",
    "ReplayConnection",
    "ReplayServer",
    "ReplayStats",
    "ServerReplayStats",
]
