"""The stream hub: one shared connection per endpoint, many isolated consumers.

See ``docs/hub.md``. Public API::

    from hean.hub import StreamHub, PriceFeed, ConnectionRateLimiter
"""

from hean.hub.delivery import CONFLATE_KEYS, STREAM_POLICIES, policy_for
from hean.hub.hub import (
    ARGS_BUDGET,
    ConnectionOptions,
    Consumer,
    ConsumerStats,
    EndpointKey,
    HubConnectionStats,
    HubStats,
    StreamHub,
)
from hean.hub.pricefeed import Price, PriceFeed
from hean.hub.protocols import ConsumerHost, MarketDataHub
from hean.hub.ratelimit import ConnectionRateLimiter, SlidingWindow, TokenBucket, shared_limiter
from hean.hub.refs import ShardPlanner, TopicRefs

__all__ = [
    "ARGS_BUDGET",
    "CONFLATE_KEYS",
    "STREAM_POLICIES",
    "ConnectionOptions",
    "ConnectionRateLimiter",
    "Consumer",
    "ConsumerHost",
    "ConsumerStats",
    "EndpointKey",
    "HubConnectionStats",
    "HubStats",
    "MarketDataHub",
    "Price",
    "PriceFeed",
    "ShardPlanner",
    "SlidingWindow",
    "StreamHub",
    "TokenBucket",
    "TopicRefs",
    "policy_for",
    "shared_limiter",
]
