"""Bybit V5 WebSocket clients."""

from hean.exchange.bybit.ws_public import BybitPublicWebSocket, ConnectError, ConnectionStats

__all__ = ["BybitPublicWebSocket", "ConnectError", "ConnectionStats"]
