"""Bybit V5 WebSocket clients."""

from hean.exchange.bybit.protocol.auth import AuthError, AuthFailure, AuthReason
from hean.exchange.bybit.protocol.trade import (
    BatchResult,
    TradeConnectionLost,
    TradeDuplicateRequest,
    TradeError,
    TradeInsufficientBalance,
    TradeNotReady,
    TradeRateLimited,
    TradeRequestError,
    TradeResponse,
    TradeServiceRestarting,
    TradeTimeout,
    TradeTimestampError,
    TradeUnknownOrder,
)
from hean.exchange.bybit.ws_private import AuthState, BybitPrivateWebSocket
from hean.exchange.bybit.ws_public import BybitPublicWebSocket, ConnectError, ConnectionStats
from hean.exchange.bybit.ws_trade import BybitTradeWebSocket

__all__ = [
    "AuthError",
    "AuthFailure",
    "AuthReason",
    "AuthState",
    "BatchResult",
    "BybitPrivateWebSocket",
    "BybitPublicWebSocket",
    "BybitTradeWebSocket",
    "ConnectError",
    "ConnectionStats",
    "TradeConnectionLost",
    "TradeDuplicateRequest",
    "TradeError",
    "TradeInsufficientBalance",
    "TradeNotReady",
    "TradeRateLimited",
    "TradeRequestError",
    "TradeResponse",
    "TradeServiceRestarting",
    "TradeTimeout",
    "TradeTimestampError",
    "TradeUnknownOrder",
]
