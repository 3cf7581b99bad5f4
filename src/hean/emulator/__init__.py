"""HEAN's built-in Bybit V5 exchange emulator ("hean sim").

Serves ``/v5/public/{spot,linear,inverse,option}`` with Bybit's exact reply shapes, a seeded
ticker market, fault injection and observability hooks for tests. See :class:`Emulator`.
"""

from hean.emulator.config import EmulatorConfig
from hean.emulator.connection import ConnectionInfo
from hean.emulator.faults import Faults
from hean.emulator.server import Emulator

__all__ = ["ConnectionInfo", "Emulator", "EmulatorConfig", "Faults"]
