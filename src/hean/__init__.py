"""HEAN: a Bybit V5 WebSocket exchange layer."""

from hean.core.events import EventType

__version__ = "0.1.0"

__all__ = ["EventType", "__version__"]
