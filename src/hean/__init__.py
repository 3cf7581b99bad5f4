"""HEAN: a Bybit V5 WebSocket exchange layer.

Public API::

    from hean import EventBus, EventType
    from hean import StreamHub, PriceFeed          # shared connections (hean.hub)
    from hean.exchange.bybit import BybitPublicWebSocket
"""

from typing import TYPE_CHECKING, Any

from hean.core.bus import BusNotStarted, EventBus, OverflowPolicy
from hean.core.events import EventType

if TYPE_CHECKING:
    from hean.hub import PriceFeed, StreamHub

__version__ = "0.1.0"

__all__ = [
    "BusNotStarted",
    "EventBus",
    "EventType",
    "OverflowPolicy",
    "PriceFeed",
    "StreamHub",
    "__version__",
]

_LAZY = {"StreamHub": "hean.hub", "PriceFeed": "hean.hub"}


def __getattr__(name: str) -> Any:
    # The hub pulls in the exchange layer (picows); load it on first use, not on `import hean`.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hean' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
