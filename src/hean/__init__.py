"""HEAN: a Bybit V5 WebSocket exchange layer.

Public API::

    from hean import EventBus, EventType
    from hean.exchange.bybit import BybitPublicWebSocket
"""

from hean.core.bus import BusNotStarted, EventBus, OverflowPolicy
from hean.core.events import EventType

__version__ = "0.1.0"

__all__ = ["BusNotStarted", "EventBus", "EventType", "OverflowPolicy", "__version__"]
