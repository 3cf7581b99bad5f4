"""Health you can see: staleness detection, execution quality, ``/health``, ``/metrics``, dashboard.

::

    from hean.health import HealthMonitor, HealthServer, StalenessPolicy

    health = HealthMonitor(bus, [ws], policy=StalenessPolicy(thresholds={"tickers": 5.0}))
    await health.start()
    server = HealthServer(health, port=9180)        # 127.0.0.1 unless allow_remote=True
    await server.start()
    health.quality.ws_ok                             # safe to trade?
    bus.subscribe(EventType.EXECUTION_QUALITY, on_quality)   # every change
    bus.subscribe(EventType.STALENESS, on_stale)             # every episode step

The pieces: :class:`StalenessMonitor` (sans-I/O staleness per topic and per ticker field, with
escalation), :class:`ExecutionQuality` (``ws_ok``, reasons, RTT, lag, ``since``),
:class:`HealthMonitor` (the asyncio driver; owns a Prometheus registry) and
:class:`HealthServer` (HTTP: ``/health``, ``/metrics``, ``/api/state``, ``/``).
"""

from hean.health.metrics import HealthCollector, Histogram, build_registry, reason_label
from hean.health.monitor import (
    AccountFeed,
    AccountStatus,
    Feed,
    FeedStatus,
    HealthMonitor,
    public_url,
    recycle_connection,
)
from hean.health.quality import ConnectionView, ExecutionQuality, assess
from hean.health.server import HealthServer, is_loopback
from hean.health.staleness import (
    DEFAULT_FIELD_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    Recycle,
    Report,
    Resubscribe,
    Stage,
    StaleAction,
    StalenessMonitor,
    StalenessPolicy,
    TopicWatch,
)

__all__ = [
    "DEFAULT_FIELD_THRESHOLDS",
    "DEFAULT_THRESHOLDS",
    "AccountFeed",
    "AccountStatus",
    "ConnectionView",
    "ExecutionQuality",
    "Feed",
    "FeedStatus",
    "HealthCollector",
    "HealthMonitor",
    "HealthServer",
    "Histogram",
    "Recycle",
    "Report",
    "Resubscribe",
    "Stage",
    "StaleAction",
    "StalenessMonitor",
    "StalenessPolicy",
    "TopicWatch",
    "assess",
    "build_registry",
    "is_loopback",
    "public_url",
    "reason_label",
    "recycle_connection",
]
