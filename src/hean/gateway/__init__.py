"""The market-data and account gateway on Redis Streams (see ``docs/gateway.md``).

``redis`` is imported only when a gateway connects, so importing HEAN never needs it.
"""

from hean.gateway.core import Outbox, Pending, StreamSeq
from hean.gateway.gateway import DEFAULT_MAXLEN, Gateway, GatewayStats
from hean.gateway.redis_target import RedisTarget
from hean.gateway.wire import Layout

__all__ = [
    "DEFAULT_MAXLEN",
    "Gateway",
    "GatewayStats",
    "Layout",
    "Outbox",
    "Pending",
    "RedisTarget",
    "StreamSeq",
]
