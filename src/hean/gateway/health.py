"""The gateway's and remote consumers' health: ``/health`` sections and ``/metrics``.

``GatewayHealth`` is a :class:`~hean.health.HealthMonitor` (the same ``/health``, ``/metrics``
and dashboard through :class:`~hean.health.HealthServer`) whose document also has a ``gateway``
section (the Redis link, publish lag, held and lost entries, per-stream lengths, Redis memory)
and/or a ``remote`` section (the consumer's lag, holes, rebuilds), and whose registry has the
matching ``hean_gateway_*`` / ``hean_remote_*`` metrics. A Redis link that is down does not make
``ws_ok`` false on the gateway (its in-process consumers are served); it is in ``reasons`` of
the ``gateway`` section and in the metrics. On a remote consumer the link's state already makes
its prices stale (see :class:`~hean.remote.RemoteLink`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hean.core.bus import EventBus
from hean.health.monitor import Feed, HealthMonitor

__all__ = ["GatewayCollector", "GatewayHealth", "RemoteCollector", "gateway_doc", "remote_doc"]


def gateway_doc(gateway: Any) -> dict[str, Any]:
    s = gateway.stats()
    return {
        "redis": s.redis,
        "link": s.link,
        "epoch": s.epoch,
        "connects": s.connects,
        "disconnects": s.disconnects,
        "pending": s.pending,
        "written": s.written,
        "overflows": s.overflows,
        "lost": s.lost,
        "rejected": s.rejected,
        "publish_lag_ms": None if s.last_lag is None else round(s.last_lag * 1e3, 3),
        "publish_lag_max_ms": round(s.max_lag * 1e3, 3),
        "streams": len(s.lengths) or s.streams,
        "lengths": s.lengths,
        "redis_memory_bytes": s.redis_memory,
        "last_error": s.last_error if s.link != "up" else "",
        "reasons": [] if s.link == "up" else [f"redis {s.link}: {s.last_error or 'connecting'}"],
    }


def remote_doc(remote: Any) -> dict[str, Any]:
    s = remote.stats()
    return {
        "redis": s.redis,
        "link": s.link,
        "entries": s.entries,
        "gaps": s.gaps,
        "resyncs": s.resyncs,
        "behind_trim": s.behind_trim,
        "lag_ms": None if s.lag_last is None else round(s.lag_last * 1e3, 3),
        "lag_max_ms": round(s.lag_max * 1e3, 3),
        "wall_lag_ms": s.wall_lag_last_ms,
        "gateway_age_s": None if s.gateway_age is None else round(s.gateway_age, 3),
        "streams": s.streams,
    }


class GatewayCollector:
    """``hean_gateway_*`` metrics of one :class:`~hean.gateway.Gateway`."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        s = self.gateway.stats()
        up = GaugeMetricFamily("hean_gateway_redis_up", "1 while the Redis link is up")
        up.add_metric([], 1.0 if s.link == "up" else 0.0)
        yield up
        for name, doc, value in (
            ("hean_gateway_written", "Entries written to Redis", s.written),
            ("hean_gateway_overflows", "Entries dropped because the buffer was full", s.overflows),
            ("hean_gateway_lost", "Entries that could not be published", s.lost),
            ("hean_gateway_rejected", "Entries Redis refused", s.rejected),
            ("hean_gateway_redis_connects", "Connections made to Redis", s.connects),
            ("hean_gateway_redis_disconnects", "Redis links lost", s.disconnects),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], float(value))
            yield c
        pending = GaugeMetricFamily("hean_gateway_pending", "Entries held, not yet written")
        pending.add_metric([], float(s.pending))
        yield pending
        lag = GaugeMetricFamily(
            "hean_gateway_publish_lag_seconds",
            "Exchange frame receipt to Redis write confirmed, last batch",
        )
        if s.last_lag is not None:
            lag.add_metric([], s.last_lag)
        yield lag
        length = GaugeMetricFamily(
            "hean_gateway_stream_length", "Entries in a Redis stream", labels=["stream"]
        )
        for key, n in sorted(s.lengths.items()):
            length.add_metric([key], float(n))
        yield length
        mem = GaugeMetricFamily("hean_gateway_redis_memory_bytes", "Redis used_memory")
        if s.redis_memory is not None:
            mem.add_metric([], float(s.redis_memory))
        yield mem


class RemoteCollector:
    """``hean_remote_*`` metrics of one :class:`~hean.remote.RemoteHub`."""

    def __init__(self, remote: Any) -> None:
        self.remote = remote

    def collect(self) -> Iterator[Metric]:
        s = self.remote.stats()
        up = GaugeMetricFamily("hean_remote_redis_up", "1 while the Redis link is up")
        up.add_metric([], 1.0 if s.link == "up" else 0.0)
        yield up
        lag = GaugeMetricFamily(
            "hean_remote_lag_seconds", "Gateway receipt to dispatch here, newest entry"
        )
        if s.lag_last is not None:
            lag.add_metric([], s.lag_last)
        yield lag
        for name, doc, value in (
            ("hean_remote_entries", "Entries read", s.entries),
            ("hean_remote_gaps", "Holes found in gateway sequences", s.gaps),
            ("hean_remote_resyncs", "States rebuilt from a snapshot", s.resyncs),
            ("hean_remote_behind_trim", "Times the reader fell behind the trimmed history",
             s.behind_trim),
        ):  # fmt: skip
            c = CounterMetricFamily(name, doc)
            c.add_metric([], float(value))
            yield c
        age = GaugeMetricFamily("hean_remote_gateway_age_seconds", "Since the gateway's heartbeat")
        if s.gateway_age is not None:
            age.add_metric([], s.gateway_age)
        yield age


class GatewayHealth(HealthMonitor):
    """A :class:`HealthMonitor` with a ``gateway`` and/or ``remote`` section and metrics."""

    def __init__(
        self,
        bus: EventBus,
        feeds: Iterable[Feed] = (),
        *,
        gateway: Any = None,
        remote: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(bus, feeds, **kw)
        self.gateway = gateway
        self.remote = remote
        if gateway is not None:
            self.registry.register(GatewayCollector(gateway))
        if remote is not None:
            self.registry.register(RemoteCollector(remote))

    def health(self, now: float | None = None) -> tuple[bool, dict[str, Any]]:
        ok, doc = super().health(now)
        if self.gateway is not None:
            doc["gateway"] = gateway_doc(self.gateway)
        if self.remote is not None:
            doc["remote"] = remote_doc(self.remote)
        return ok, doc
