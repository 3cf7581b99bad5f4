"""Prometheus metrics of a :class:`~hean.health.HealthMonitor`, in a dedicated registry.

Nothing is counted through ``prometheus_client`` on the hot path: the monitor keeps plain
integers and its own :class:`Histogram` bucket counts, and :class:`HealthCollector` turns them
into metric families when ``/metrics`` is scraped. The registry is the monitor's own
(``monitor.registry``), never the process-wide default one.

Labels are bounded: ``connection`` and ``topic`` come from configuration (the connections given
to the monitor and the topics they subscribed); ``reason``, ``state`` and ``kind`` come from fixed
sets (:func:`reason_label`); ``subscriber`` and ``event_type`` are bus subscription names chosen
in code. No credential, signature or account id is ever a label.

========================================= ========= ======================================
metric                                    type      labels
========================================= ========= ======================================
``hean_ws_ok``                            gauge     -
``hean_ws_ok_changes_total``              counter   -
``hean_ws_connection_up``                 gauge     connection
``hean_ws_connection_state``              gauge     connection, state (one-hot)
``hean_ws_connection_uptime_seconds``     gauge     connection
``hean_ws_connects_total``                counter   connection
``hean_ws_reconnects_total``              counter   connection, reason
``hean_ws_frames_total``                  counter   connection
``hean_ws_decode_errors_total``           counter   connection
``hean_ws_data_errors_total``             counter   connection
``hean_ws_last_message_age_seconds``      gauge     connection
``hean_ws_ping_rtt_seconds``              histogram connection
``hean_ws_messages_total``                counter   connection, topic
``hean_ws_lag_seconds``                   histogram connection, kind
``hean_topic_age_seconds``                gauge     connection, topic
``hean_topic_stale``                      gauge     connection, topic
``hean_stale_topics``                     gauge     connection
``hean_feeds_down``                       gauge     connection
``hean_stale_episodes_total``             counter   connection, topic
``hean_stale_resubscribes_total``         counter   connection, topic
``hean_stale_recycles_total``             counter   connection
``hean_book_valid``                       gauge     connection, topic
``hean_book_resyncs_total``               counter   connection
``hean_circuit_breaker_open``             gauge     connection
``hean_circuit_breaker_state``            gauge     connection, state (one-hot)
``hean_auth_state``                       gauge     connection, state (one-hot)
``hean_auth_failures_total``              counter   connection, reason
``hean_subscriptions_rejected``           gauge     connection
``hean_account_in_sync``                  gauge     account
``hean_account_reconciliations_total``    counter   account, result (ok / failed)
``hean_account_last_reconcile_seconds``   gauge     account
``hean_account_last_reconcile_rest_calls`` gauge    account
``hean_account_rest_calls_total``         counter   account
``hean_account_executions_total``         counter   account
``hean_account_duplicate_executions_total`` counter account
``hean_bus_queue_depth``                  gauge     subscriber, event_type
``hean_bus_delivered_total``              counter   subscriber, event_type
``hean_bus_dropped_total``                counter   subscriber, event_type
``hean_bus_conflated_total``              counter   subscriber, event_type
``hean_bus_errors_total``                 counter   subscriber, event_type
``hean_bus_alarms_total``                 counter   subscriber, event_type
========================================= ========= ======================================
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hean.core.lifecycle import ConnectionState
from hean.exchange.bybit.protocol.backoff import BreakerState
from hean.health.staleness import Stage

if TYPE_CHECKING:
    from hean.health.monitor import HealthMonitor

__all__ = [
    "AUTH_STATES",
    "LAG_BUCKETS",
    "RTT_BUCKETS",
    "HealthCollector",
    "Histogram",
    "build_registry",
    "reason_label",
]

LAG_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Exchange-to-local lag buckets, seconds."""
RTT_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Ping round-trip time buckets, seconds."""

AUTH_STATES = ("not_required", "pending", "ok", "failed")

_PLAIN_REASONS = frozenset(
    (
        "heartbeat_timeout",
        "connect_failed",
        "connect_timeout",
        "connect_refused",
        "dns",
        "tls_error",
        "reset",
        "stop",
        "stale_data",
        "auth_failed",
    )
)
_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013))
_LOCAL_CLOSES = frozenset(
    ("message_too_big", "protocol_error", "invalid_text", "unsupported_data", "internal_error")
)
_HTTP_CODES = frozenset((400, 401, 403, 404, 418, 429, 500, 502, 503, 504))


def reason_label(reason: str) -> str:
    """A disconnect reason mapped onto a fixed set (so the label stays bounded)."""
    if reason in _PLAIN_REASONS:
        return reason
    if reason.startswith("server_close:"):
        code = reason[13:]
        return reason if code.isdigit() and int(code) in _CLOSE_CODES else "server_close:other"
    if reason.startswith("local_close:"):  # HEAN closed it (picows: frame too big, ...)
        return reason if reason[12:] in _LOCAL_CLOSES else "local_close:other"
    if reason.startswith("http_"):
        code = reason[5:]
        return reason if code.isdigit() and int(code) in _HTTP_CODES else "http_other"
    return "other"


class Histogram:
    """Bucket counts kept by hand (an ``observe`` is one bisect and three additions)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        """Per bucket (not cumulative); the last one is ``+Inf``."""
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[_bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``[(le, cumulative count), ..., ("+Inf", count)]`` as Prometheus wants it."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((_le(bound), float(running)))
        out.append(("+Inf", float(self.count)))
        return out

    def quantile(self, q: float) -> float | None:
        """An upper bound of the ``q`` quantile (the bucket bound it falls in)."""
        if not self.count:
            return None
        rank = q * self.count
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            if running >= rank:
                return bound
        return math.inf


_bisect_left = bisect.bisect_left


def _le(bound: float) -> str:
    return repr(float(bound))


class HealthCollector(Collector):
    """Reads a :class:`HealthMonitor` (and its bus) at scrape time."""

    def __init__(self, monitor: HealthMonitor) -> None:
        self.monitor = monitor

    def describe(self) -> list[Metric]:
        return []  # families vary with configuration; collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        mon = self.monitor
        now = mon.clock.monotonic()
        q = mon.quality
        ok = GaugeMetricFamily(
            "hean_ws_ok", "1 when every required connection is live and every required topic fresh"
        )
        ok.add_metric([], 1.0 if q.ws_ok else 0.0)
        yield ok
        changes = CounterMetricFamily("hean_ws_ok_changes", "Times ws_ok or its reasons changed")
        changes.add_metric([], float(q.changes))
        yield changes
        yield from self._connections(now)
        yield from self._topics(now)
        yield from self._accounts()
        yield from self._bus()

    def _accounts(self) -> Iterator[Metric]:
        a = ["account"]
        in_sync = GaugeMetricFamily(
            "hean_account_in_sync", "1 when the account view is reconciled", labels=a
        )
        runs = CounterMetricFamily(
            "hean_account_reconciliations",
            "Reconciliation runs ended, by result",
            labels=["account", "result"],
        )
        duration = GaugeMetricFamily(
            "hean_account_last_reconcile_seconds", "Duration of the last run", labels=a
        )
        calls = GaugeMetricFamily(
            "hean_account_last_reconcile_rest_calls", "REST requests of the last run", labels=a
        )
        rest = CounterMetricFamily(
            "hean_account_rest_calls", "REST requests made by reconciliation runs", labels=a
        )
        execs = CounterMetricFamily(
            "hean_account_executions", "Distinct executions delivered (stream and REST)", labels=a
        )
        dups = CounterMetricFamily(
            "hean_account_duplicate_executions",
            "Executions dropped as already delivered",
            labels=a,
        )
        for name, status in sorted(self.monitor.accounts.items()):
            stats = status.account.stats
            core = stats.state
            in_sync.add_metric([name], 1.0 if status.account.in_sync else 0.0)
            runs.add_metric([name, "ok"], float(core.runs_ok))
            runs.add_metric([name, "failed"], float(core.runs_failed))
            last = stats.last_run
            if last is not None:
                duration.add_metric([name], last.duration)
                calls.add_metric([name], float(last.rest_calls))
            rest.add_metric([name], float(stats.rest_calls))
            execs.add_metric([name], float(core.executions_seen))
            dups.add_metric([name], float(core.duplicate_executions))
        yield from (in_sync, runs, duration, calls, rest, execs, dups)

    def _connections(self, now: float) -> Iterator[Metric]:
        c = ["connection"]
        up = GaugeMetricFamily("hean_ws_connection_up", "1 when the connection is live", labels=c)
        state = GaugeMetricFamily(
            "hean_ws_connection_state",
            "Connection lifecycle state (1 for the current state)",
            labels=[*c, "state"],
        )
        uptime = GaugeMetricFamily(
            "hean_ws_connection_uptime_seconds",
            "Seconds the current connection has been live (0 when not live)",
            labels=c,
        )
        connects = CounterMetricFamily("hean_ws_connects", "Connections opened", labels=c)
        reconnects = CounterMetricFamily(
            "hean_ws_reconnects",
            "Reconnects scheduled, by reason of the disconnect or failed attempt",
            labels=[*c, "reason"],
        )
        frames = CounterMetricFamily(
            "hean_ws_frames", "Frames decoded (data and control)", labels=c
        )
        decode = CounterMetricFamily(
            "hean_ws_decode_errors", "Frames that could not be decoded", labels=c
        )
        data_err = CounterMetricFamily(
            "hean_ws_data_errors", "Data frames with bad content (dropped)", labels=c
        )
        last_age = GaugeMetricFamily(
            "hean_ws_last_message_age_seconds", "Seconds since the last frame of any kind", labels=c
        )
        rtt = HistogramMetricFamily(
            "hean_ws_ping_rtt_seconds",
            "JSON ping round-trip time (sampled at each health check)",
            labels=c,
        )
        lag = HistogramMetricFamily(
            "hean_ws_lag_seconds",
            "Exchange-to-local lag: local receive wall time minus the message's exchange time",
            labels=[*c, "kind"],
        )
        breaker = GaugeMetricFamily(
            "hean_circuit_breaker_open", "1 when the circuit breaker is open", labels=c
        )
        breaker_state = GaugeMetricFamily(
            "hean_circuit_breaker_state",
            "Circuit breaker state (1 for the current state)",
            labels=[*c, "state"],
        )
        auth = GaugeMetricFamily(
            "hean_auth_state",
            "Authentication state (1 for the current state; not_required for public streams)",
            labels=[*c, "state"],
        )
        auth_fail = CounterMetricFamily(
            "hean_auth_failures", "Rejected authentication attempts", labels=[*c, "reason"]
        )
        resyncs = CounterMetricFamily(
            "hean_book_resyncs", "Order book resubscribes after a gap or invalid book", labels=c
        )
        recycles = CounterMetricFamily(
            "hean_stale_recycles", "Connections recycled because data stayed stale", labels=c
        )
        rejected = GaugeMetricFamily(
            "hean_subscriptions_rejected", "Topics the exchange refused", labels=c
        )
        for name, st in sorted(self.monitor.feeds.items(), key=lambda kv: kv[0]):
            session = st.feed.session
            stats = session.stats
            current = session.state
            up.add_metric([name], 1.0 if current is ConnectionState.LIVE else 0.0)
            for s in ConnectionState:
                state.add_metric([name, s.value], 1.0 if s is current else 0.0)
            live_since = stats.live_since
            uptime.add_metric([name], 0.0 if live_since is None else max(0.0, now - live_since))
            connects.add_metric([name], float(stats.connects))
            by_reason: dict[str, int] = {}
            for reason, n in stats.disconnect_reasons.items():
                label = reason_label(reason)
                by_reason[label] = by_reason.get(label, 0) + n
            for label, n in sorted(by_reason.items()):
                reconnects.add_metric([name, label], float(n))
            frames.add_metric([name], float(stats.messages))
            decode.add_metric([name], float(stats.decode_errors))
            data_err.add_metric([name], float(stats.data_errors))
            if stats.last_message_at is not None:
                last_age.add_metric([name], max(0.0, now - stats.last_message_at))
            rtt.add_metric([name], st.rtt.cumulative(), st.rtt.sum)
            for kind, h in sorted(st.lag.items()):
                lag.add_metric([name, kind], h.cumulative(), h.sum)
            bstate = session.breaker.state
            breaker.add_metric([name], 1.0 if bstate is BreakerState.OPEN else 0.0)
            for b in BreakerState:
                breaker_state.add_metric([name, b.value], 1.0 if b is bstate else 0.0)
            current_auth = st.auth_state
            for a in AUTH_STATES:
                auth.add_metric([name, a], 1.0 if a == current_auth else 0.0)
            for reason, n in sorted(st.auth_failures.items()):
                auth_fail.add_metric([name, reason], float(n))
            resyncs.add_metric([name], float(getattr(st.feed, "book_resyncs", 0)))
            recycles.add_metric([name], float(st.recycles))
            rejected.add_metric([name], float(len(st.rejected)))
        yield from (up, state, uptime, connects, reconnects, frames, decode, data_err, last_age)
        yield from (rtt, lag, breaker, breaker_state, auth, auth_fail, resyncs, recycles, rejected)

    def _topics(self, now: float) -> Iterator[Metric]:
        ct = ["connection", "topic"]
        messages = CounterMetricFamily(
            "hean_ws_messages", "Data messages received per topic", labels=ct
        )
        age = GaugeMetricFamily(
            "hean_topic_age_seconds", "Seconds since the topic's last message", labels=ct
        )
        stale = GaugeMetricFamily(
            "hean_topic_stale",
            "1 while the topic (or one of its ticker fields) is stale",
            labels=ct,
        )
        episodes = CounterMetricFamily(
            "hean_stale_episodes", "Staleness episodes per topic", labels=ct
        )
        resubs = CounterMetricFamily(
            "hean_stale_resubscribes", "Resubscribes because the topic was stale", labels=ct
        )
        book_valid = GaugeMetricFamily(
            "hean_book_valid", "1 when the order book is valid", labels=ct
        )
        n_stale = GaugeMetricFamily("hean_stale_topics", "Topics stale now", labels=["connection"])
        n_down = GaugeMetricFamily(
            "hean_feeds_down",
            "Topics marked down (stale despite resubscribe and reconnect)",
            labels=["connection"],
        )
        counts_stale: dict[str, int] = {name: 0 for name in self.monitor.feeds}
        counts_down: dict[str, int] = dict(counts_stale)
        for w in sorted(self.monitor.staleness, key=lambda w: (w.connection, w.topic)):
            labels = [w.connection, w.topic]
            messages.add_metric(labels, float(w.messages))
            a = w.age(now)
            if a is not None:
                age.add_metric(labels, max(0.0, a))
            stale.add_metric(labels, 1.0 if w.stale else 0.0)
            episodes.add_metric(labels, float(w.episodes))
            resubs.add_metric(labels, float(w.resubscribes))
            if w.book_valid is not None:
                book_valid.add_metric(labels, 1.0 if w.book_valid else 0.0)
            if w.stale:
                counts_stale[w.connection] = counts_stale.get(w.connection, 0) + 1
            if w.stage is Stage.DOWN:
                counts_down[w.connection] = counts_down.get(w.connection, 0) + 1
        for name, n in sorted(counts_stale.items()):
            n_stale.add_metric([name], float(n))
        for name, n in sorted(counts_down.items()):
            n_down.add_metric([name], float(n))
        yield from (messages, age, stale, n_stale, n_down, episodes, resubs, book_valid)

    def _bus(self) -> Iterator[Metric]:
        se = ["subscriber", "event_type"]
        depth = GaugeMetricFamily("hean_bus_queue_depth", "Events queued now", labels=se)
        families = {
            "delivered": CounterMetricFamily(
                "hean_bus_delivered", "Events handed to the subscriber", labels=se
            ),
            "dropped": CounterMetricFamily(
                "hean_bus_dropped", "Events discarded by the overflow policy", labels=se
            ),
            "conflated": CounterMetricFamily(
                "hean_bus_conflated", "Events replaced by a newer one (CONFLATE)", labels=se
            ),
            "errors": CounterMetricFamily(
                "hean_bus_errors", "Exceptions raised by the subscriber", labels=se
            ),
            "alarms": CounterMetricFamily(
                "hean_bus_alarms", "NEVER_DROP backlog alarms", labels=se
            ),
        }
        totals: dict[tuple[str, str], list[int]] = {}
        for s in self.monitor.bus.stats():
            key = (s.name, s.event_type.value)
            t = totals.setdefault(key, [0, 0, 0, 0, 0, 0])
            t[0] += s.depth
            t[1] += s.delivered
            t[2] += s.dropped
            t[3] += s.conflated
            t[4] += s.errors
            t[5] += s.alarms
        for key, t in sorted(totals.items()):
            labels = list(key)
            depth.add_metric(labels, float(t[0]))
            for i, fam in enumerate(families.values(), start=1):
                fam.add_metric(labels, float(t[i]))
        yield depth
        yield from families.values()


def build_registry(monitor: HealthMonitor) -> CollectorRegistry:
    """A new registry holding only ``monitor``'s collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(monitor))
    return registry
