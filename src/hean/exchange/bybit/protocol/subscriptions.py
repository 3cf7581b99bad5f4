"""The subscription registry: which topics we want, which the server confirmed, and ack matching.

Sans-I/O. Every topic the owner wants is in :attr:`SubscriptionRegistry.topics` with a status:

* ``PENDING``: wanted; a request is in flight, or will be sent when the connection is (re)opened;
* ``CONFIRMED``: the server acked it (``error:already subscribed`` counts as confirmed);
* ``REJECTED``: the server refused it. It is reported once and **not** retried on this
  connection (no retry loops); it is tried once more after the next reconnect.

Requests carry a ``req_id`` we choose, and acks are matched by it; an ack whose ``req_id`` is
missing or unknown is matched to the oldest request of the same op (Bybit answers in order).
Option endpoints answer with ``COMMAND_RESP`` and per-topic ``successTopics`` / ``failTopics``.

On Bybit one bad topic fails the whole request, and the failure names only the first offending
topic (protocol.md §3.3). So the named topic is rejected and the rest of that request is sent
again without it: each retry is strictly smaller than the request before, so this ends.
Failures that name no topic (``args size >10``, ``Params Error``) reject the whole request.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from hean.core.events import SubscriptionStatus
from hean.exchange.bybit.protocol.codec import Frame, encode_request

__all__ = ["AckResult", "PendingRequest", "SubscriptionRegistry", "TopicStatus"]

log = logging.getLogger("hean.subscriptions")


class TopicStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


@dataclass(slots=True)
class PendingRequest:
    """A subscribe/unsubscribe request waiting for its ack."""

    req_id: str
    op: str
    topics: list[str]
    sent_at: float
    internal: bool = False
    """An unsubscribe sent only to force a fresh snapshot (a resync); its ack is not reported."""
    timed_out: bool = False


@dataclass(slots=True)
class AckResult:
    """What an ack meant: per-topic outcomes, and topics to request again."""

    outcomes: list[tuple[str, SubscriptionStatus, str]] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)


class SubscriptionRegistry:
    """Desired topics, in-flight requests, and the rules for matching acks.

    Args:
        max_args_per_request: split requests into chunks of at most this many topics
            (Bybit spot allows 10 per request). ``None`` means no limit.
        req_prefix: prefix of generated ``req_id`` values.
    """

    def __init__(self, max_args_per_request: int | None = None, req_prefix: str = "sub-") -> None:
        if max_args_per_request is not None and max_args_per_request < 1:
            raise ValueError("max_args_per_request must be >= 1")
        self.max_args_per_request = max_args_per_request
        self.req_prefix = req_prefix
        self.topics: dict[str, TopicStatus] = {}
        self._pending: dict[str, PendingRequest] = {}
        self._seq = 0

    # -- what the owner wants ---------------------------------------------------------------

    def add(self, topics: Iterable[str]) -> list[str]:
        """Mark topics as wanted; returns those that were not wanted before."""
        new = []
        for topic in topics:
            if topic not in self.topics:
                self.topics[topic] = TopicStatus.PENDING
                new.append(topic)
        return new

    def discard(self, topics: Iterable[str]) -> list[str]:
        """Stop wanting topics; returns those that were wanted."""
        gone = []
        for topic in topics:
            if self.topics.pop(topic, None) is not None:
                gone.append(topic)
        return gone

    def status(self, topic: str) -> TopicStatus | None:
        return self.topics.get(topic)

    def wanted(self) -> list[str]:
        """Every wanted topic, in the order it was added."""
        return list(self.topics)

    def pending_requests(self) -> list[PendingRequest]:
        return list(self._pending.values())

    # -- requests ---------------------------------------------------------------------------

    def build(
        self, op: str, topics: list[str], now: float, *, internal: bool = False
    ) -> list[bytes]:
        """Create (chunked) requests for ``topics`` and remember them until acked."""
        if not topics:
            return []
        size = self.max_args_per_request or len(topics)
        payloads = []
        for start in range(0, len(topics), size):
            chunk = topics[start : start + size]
            self._seq += 1
            req_id = f"{self.req_prefix}{self._seq}"
            self._pending[req_id] = PendingRequest(req_id, op, chunk, now, internal)
            payloads.append(encode_request(op, list(chunk), req_id))
        return payloads

    def on_disconnect(self) -> None:
        """The connection is gone: nothing is in flight, and every wanted topic must be sent
        again (rejected ones get one more try on the new connection)."""
        self._pending.clear()
        for topic in self.topics:
            self.topics[topic] = TopicStatus.PENDING

    def timeouts(self, now: float, ack_timeout: float) -> list[PendingRequest]:
        """Requests that have waited longer than ``ack_timeout`` (each reported once)."""
        late = []
        for req in self._pending.values():
            if not req.timed_out and now - req.sent_at >= ack_timeout:
                req.timed_out = True
                late.append(req)
        return late

    def oldest_pending_at(self) -> float | None:
        times = [r.sent_at for r in self._pending.values() if not r.timed_out]
        return min(times) if times else None

    # -- acks -------------------------------------------------------------------------------

    def on_ack(self, frame: Frame, op: str) -> AckResult:
        """Apply a subscribe (``op="subscribe"``) or unsubscribe ack."""
        if frame.type == "COMMAND_RESP":
            return self._on_command_resp(frame, op)
        req = self._match(frame.req_id, op)
        result = AckResult()
        if req is None:
            log.debug("ack for unknown request %r (%s) ignored", frame.req_id, op)
            return result
        del self._pending[req.req_id]
        if op == "unsubscribe":
            if not req.internal:
                status = SubscriptionStatus.UNSUBSCRIBED
                reason = "" if frame.success else (frame.ret_msg or "unsubscribe failed")
                result.outcomes.extend((t, status, reason) for t in req.topics)
            return result
        if frame.success:
            for topic in req.topics:
                self._confirm(topic, result, "")
            return result
        self._on_failure(req, frame.ret_msg or "", result)
        return result

    def _match(self, req_id: str | None, op: str) -> PendingRequest | None:
        if req_id:
            req = self._pending.get(req_id)
            if req is not None:
                return req
        for req in self._pending.values():  # oldest first: dicts keep insertion order
            if req.op == op:
                return req
        return None

    def _confirm(self, topic: str, result: AckResult, reason: str) -> None:
        if self.topics.get(topic) is TopicStatus.PENDING:
            self.topics[topic] = TopicStatus.CONFIRMED
            result.outcomes.append((topic, SubscriptionStatus.CONFIRMED, reason))

    def _reject(self, topic: str, result: AckResult, reason: str) -> None:
        if topic in self.topics:
            self.topics[topic] = TopicStatus.REJECTED
            result.outcomes.append((topic, SubscriptionStatus.REJECTED, reason))

    def _on_failure(self, req: PendingRequest, ret_msg: str, result: AckResult) -> None:
        named = _named_topics(req.topics, ret_msg)
        if not named:
            for topic in req.topics:
                self._reject(topic, result, ret_msg)
            return
        for topic in named:
            if "already subscribed" in ret_msg:
                self._confirm(topic, result, ret_msg)
            else:
                self._reject(topic, result, ret_msg)
        result.retry.extend(
            t for t in req.topics if t not in named and self.topics.get(t) is TopicStatus.PENDING
        )

    def _on_command_resp(self, frame: Frame, op: str) -> AckResult:
        result = AckResult()
        data = frame.data if isinstance(frame.data, dict) else {}
        ok = [t for t in data.get("successTopics") or [] if isinstance(t, str)]
        failed = [t for t in data.get("failTopics") or [] if isinstance(t, str)]
        answered = set(ok) | set(failed)
        for req in list(self._pending.values()):
            if req.op == op and answered.intersection(req.topics):
                req.topics = [t for t in req.topics if t not in answered]
                if not req.topics:
                    del self._pending[req.req_id]
        if op == "unsubscribe":
            result.outcomes.extend((t, SubscriptionStatus.UNSUBSCRIBED, "") for t in ok)
            return result
        for topic in ok:
            self._confirm(topic, result, "")
        for topic in failed:
            self._reject(topic, result, "rejected by server (failTopics)")
        return result


def _named_topics(topics: list[str], ret_msg: str) -> list[str]:
    """The topics of a request that a failure text names (``...,topic:X`` or ``[SYMBOL]``)."""
    marker = "topic:"
    if marker in ret_msg:
        name = ret_msg.rsplit(marker, 1)[1].strip()
        return [t for t in topics if t == name]
    if "[" in ret_msg and ret_msg.endswith("]"):
        symbol = ret_msg.rsplit("[", 1)[1][:-1].strip()
        return [t for t in topics if t.rsplit(".", 1)[-1] == symbol]
    return []
