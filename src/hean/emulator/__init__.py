"""HEAN's built-in Bybit V5 exchange emulator ("hean sim").

Serves ``/v5/public/{spot,linear,inverse,option}``, ``/v5/private`` and ``/v5/trade`` with
Bybit's exact reply shapes. Market data
comes from one price-time priority limit order book per symbol (:mod:`hean.emulator.matching`),
driven by a seeded random process (:mod:`hean.emulator.market`): order books, trades, klines,
liquidations and tickers all derive from it. Fault switches, wire faults, ground truth for tests,
a ``/control/…`` HTTP API and a firehose mode come with it. A Bybit V5 REST API on its own
port (:mod:`hean.emulator.rest`, ``emu.rest_url()``) serves the same venue, with a
private-outage scenario (:mod:`hean.emulator.rest_scenario`). Accounts (API keys, balances,
orders, positions) trade against the same books over ``/v5/trade`` and see their orders,
executions, positions and wallet on ``/v5/private`` (:mod:`hean.emulator.trading`). See
:class:`Emulator`.
"""

from hean.emulator.accounts import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    AccountConfig,
    AccountView,
)
from hean.emulator.config import EmulatorConfig
from hean.emulator.connection import ConnectionInfo
from hean.emulator.faults import Faults
from hean.emulator.market import MarketParams
from hean.emulator.rest import RestFailure, RestRecord
from hean.emulator.rest_scenario import OutageSummary
from hean.emulator.server import AuthRecord, Emulator
from hean.emulator.streamfaults import StreamFault

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "AccountConfig",
    "AccountView",
    "AuthRecord",
    "ConnectionInfo",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "MarketParams",
    "OutageSummary",
    "RestFailure",
    "RestRecord",
    "StreamFault",
]
