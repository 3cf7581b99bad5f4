"""Bybit V5 REST: :class:`BybitRestClient` and its parts (rest.md).

Modules: :mod:`.signing` (build and sign requests, sans-I/O), :mod:`.errors` (typed errors),
:mod:`.limits` (rate limiter and retry policy, sans-I/O), :mod:`.pagination` (cursor paging),
:mod:`.response` (envelope,
:class:`RestResponse`), :mod:`.decode` (results into the stream types), :mod:`.client` (the
asyncio shell).
"""

from hean.exchange.bybit.rest.client import (
    DEMO_URL,
    MAINNET_URL,
    TESTNET_URL,
    BybitRestClient,
    InstrumentCheck,
    RestStats,
    rest_url,
)
from hean.exchange.bybit.rest.decode import RestOrderBook, WalletSnapshot
from hean.exchange.bybit.rest.errors import (
    RestAuthError,
    RestBusinessError,
    RestDuplicateOrderError,
    RestError,
    RestInsufficientBalanceError,
    RestParamsError,
    RestPermissionError,
    RestRateLimitError,
    RestServerError,
    RestTimestampError,
    RestTransportError,
    RestUnknownOrderError,
)
from hean.exchange.bybit.rest.limits import RateLimiter, RateLimitInfo, RetryPolicy
from hean.exchange.bybit.rest.pagination import Paginator
from hean.exchange.bybit.rest.response import RestResponse

__all__ = [
    "DEMO_URL",
    "MAINNET_URL",
    "TESTNET_URL",
    "BybitRestClient",
    "InstrumentCheck",
    "Paginator",
    "RateLimitInfo",
    "RateLimiter",
    "RestAuthError",
    "RestBusinessError",
    "RestDuplicateOrderError",
    "RestError",
    "RestInsufficientBalanceError",
    "RestOrderBook",
    "RestParamsError",
    "RestPermissionError",
    "RestRateLimitError",
    "RestResponse",
    "RestServerError",
    "RestStats",
    "RestTimestampError",
    "RestTransportError",
    "RestUnknownOrderError",
    "RetryPolicy",
    "WalletSnapshot",
    "rest_url",
]
