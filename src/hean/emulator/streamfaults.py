"""Wire-level stream faults: what a connection *receives* goes wrong, the market does not.

A :class:`StreamFault` is armed globally or for one connection (``Emulator.inject``), optionally
for one topic, one-shot (consumed by the first message it applies to, on whichever connection) or
repeating. Kinds:

=========================  =========================================================================
``u_gap``                  drop one order-book delta (the client sees ``u`` jump by 2)
``duplicate_delta``        send one order-book delta twice (same ``u`` again)
``swap_deltas``            hold one delta back and send it after the next message (out of order)
``restart_snapshot``       replace a book message by a snapshot with ``u=1`` (service restart); the
                           connection's later deltas continue 2, 3, …
``delta_before_snapshot``  on subscribe, send a delta before the first snapshot (books, tickers)
``lose_snapshot``          drop one snapshot of an order book or a ticker (e.g. the one answering a
                           (re)subscribe): the ack came, the deltas that follow still arrive
``invalid_json``           a text frame that is not valid JSON, before the next data message
``json_array``             the next data message wrapped in a JSON array (an extra frame before it)
``missing_topic``          a copy of the next data message without ``topic`` (extra frame)
``wrong_types``            a copy of the next data message with wrong field types (extra frame)
``binary``                 a copy of the next data message as a binary frame (extra frame)
``empty``                  an empty text frame (extra frame)
``oversized``              a text frame of ``size`` bytes (default 2 MiB) before the next one
``burst``                  hold the next ``count`` data messages and write them in one go
=========================  =========================================================================

Extra junk frames come *in addition* to the real data, so a client that ignores them stays in sync.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

__all__ = [
    "STREAM_FAULT_KINDS",
    "FaultHub",
    "Outgoing",
    "StreamFault",
    "StreamFaultStore",
    "TopicWire",
    "WireShaper",
    "WireSink",
    "junk_frame",
    "rewrite_u",
    "ws_text_frame",
]

log = logging.getLogger("hean.emulator")

_DELTA_ONLY = frozenset(("u_gap", "duplicate_delta", "swap_deltas"))
_JUNK = frozenset(
    ("invalid_json", "json_array", "missing_topic", "wrong_types", "binary", "empty", "oversized")
)
STREAM_FAULT_KINDS: frozenset[str] = frozenset(
    (
        *_DELTA_ONLY,
        "restart_snapshot",
        "delta_before_snapshot",
        "lose_snapshot",
        "burst",
        *_JUNK,
    )
)
_MAX_SIZE = 256 << 20


@dataclass(slots=True, eq=False)
class StreamFault:
    """One armed wire fault (see the module docstring for the kinds).

    Attributes:
        kind: what goes wrong.
        topic: only this topic (``None`` = any topic the kind applies to).
        repeat: keep applying (else: once, then disarmed).
        count: ``burst`` only: messages per burst (>= 2).
        size: ``oversized`` only: frame size in bytes.
        fired: how many times it applied so far.
    """

    kind: str
    topic: str | None = None
    repeat: bool = False
    count: int = 10
    size: int = 2 << 20
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in STREAM_FAULT_KINDS:
            raise ValueError(
                f"unknown stream fault {self.kind!r}; "
                f"known: {', '.join(sorted(STREAM_FAULT_KINDS))}"
            )
        if self.topic is not None and (not isinstance(self.topic, str) or not self.topic):
            raise ValueError(f"topic must be a non-empty string or None, got {self.topic!r}")
        if not isinstance(self.repeat, bool):
            raise ValueError(f"repeat must be a bool, got {self.repeat!r}")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 2:
            raise ValueError(f"count must be an int >= 2, got {self.count!r}")
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int)
            or not 1 <= self.size <= _MAX_SIZE
        ):
            raise ValueError(f"size must be an int in 1..{_MAX_SIZE}, got {self.size!r}")

    def applies(self, topic: str, *, book: bool, snapshot: bool, initial: bool) -> bool:
        """Does this fault act on a message of ``topic`` with these properties?"""
        if self.topic is not None and self.topic != topic:
            return False
        kind = self.kind
        if kind in _DELTA_ONLY:
            return book and not snapshot
        if kind == "restart_snapshot":
            return book
        if kind == "delta_before_snapshot":
            return snapshot and initial
        if kind == "lose_snapshot":
            return snapshot
        return True

    @property
    def is_junk(self) -> bool:
        return self.kind in _JUNK


#: a data message on its way out: ``(payload, u, seq)`` (``u == 0`` for non-book topics)
Outgoing = tuple[bytes, int, int]


@dataclass(slots=True)
class TopicWire:
    """Per connection and topic: what the wire does differently from the feed."""

    u_offset: int = 0
    held: list[Outgoing] = field(default_factory=list)
    burst: list[Outgoing] | None = None
    burst_size: int = 0

    @property
    def idle(self) -> bool:
        return self.u_offset == 0 and not self.held and self.burst is None


def rewrite_u(data: bytes, u: int) -> bytes:
    """The same order-book message with ``data.u`` set to ``u`` (key order kept)."""
    msg = msgspec.json.decode(data)
    msg["data"]["u"] = u
    return msgspec.json.encode(msg)


def _wrong_types(data: bytes) -> bytes:
    msg = msgspec.json.decode(data)
    if not isinstance(msg, dict):
        return b'{"topic":1,"type":2,"data":3}'
    for key in ("ts", "cts", "cs"):
        if key in msg:
            msg[key] = str(msg[key])
    body = msg.get("data")
    if isinstance(body, dict) and "u" in body:
        body["u"] = str(body["u"])
        body["seq"] = str(body.get("seq"))
        for side in ("b", "a"):
            body[side] = [[float(p), float(q)] for p, q in body.get(side, [])]
    elif isinstance(body, dict):
        msg["data"] = list(body.values())
    else:
        msg["data"] = {"items": body}
    return msgspec.json.encode(msg)


def junk_frame(kind: str, data: bytes, topic: str, size: int) -> tuple[bool, bytes]:
    """``(binary, payload)`` of the extra frame a junk fault sends before ``data``."""
    if kind == "invalid_json":
        return False, b'{"topic":"' + topic.encode() + b'","type":"delta","data":{"b":[['
    if kind == "json_array":
        return False, b"[" + data + b"]"
    if kind == "missing_topic":
        msg = msgspec.json.decode(data)
        if isinstance(msg, dict):
            msg.pop("topic", None)
        return False, msgspec.json.encode(msg)
    if kind == "wrong_types":
        return False, _wrong_types(data)
    if kind == "binary":
        return True, data
    if kind == "empty":
        return False, b""
    if kind == "oversized":
        head = b'{"topic":"' + topic.encode() + b'","type":"snapshot","pad":"'
        pad = max(0, size - len(head) - 2)
        return False, head + b"x" * pad + b'"}'
    raise ValueError(f"not a junk fault: {kind!r}")


def ws_text_frame(payload: bytes) -> bytes:
    """A complete, unmasked (server-to-client) FIN text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class StreamFaultStore:
    """Armed stream faults: global ones and per-connection ones (checked first)."""

    __slots__ = ("by_conn", "shared")

    def __init__(self) -> None:
        self.shared: list[StreamFault] = []
        self.by_conn: dict[str, list[StreamFault]] = {}

    @property
    def armed(self) -> bool:
        return bool(self.shared) or bool(self.by_conn)

    def arm(self, fault: StreamFault, conn_id: str | None = None) -> StreamFault:
        if conn_id is None:
            self.shared.append(fault)
        else:
            self.by_conn.setdefault(conn_id, []).append(fault)
        return fault

    def take(
        self, conn_id: str, topic: str, *, book: bool, snapshot: bool, initial: bool
    ) -> StreamFault | None:
        """The first fault that applies to this message (a one-shot one is disarmed)."""
        own = self.by_conn.get(conn_id)
        for faults in (own, self.shared):
            if not faults:
                continue
            for i, fault in enumerate(faults):
                if fault.applies(topic, book=book, snapshot=snapshot, initial=initial):
                    if not fault.repeat:
                        del faults[i]
                        if faults is own and not own:
                            del self.by_conn[conn_id]
                    return fault
        return None

    def faults(self, conn_id: str | None = None) -> list[StreamFault]:
        return list(self.shared if conn_id is None else self.by_conn.get(conn_id, ()))

    def clear(self, conn_id: str | None = None) -> int:
        """Disarm the global faults (``None``) or one connection's; returns how many."""
        if conn_id is None:
            n = len(self.shared)
            self.shared.clear()
            return n
        return len(self.by_conn.pop(conn_id, ()))


class FaultHub(Protocol):
    """What a :class:`WireShaper` needs from the emulator."""

    @property
    def stream_faults_armed(self) -> bool: ...

    def take_stream_fault(
        self, conn_id: str, topic: str, *, book: bool, snapshot: bool, initial: bool
    ) -> StreamFault | None: ...

    def fault_snapshot(self, category: str, topic: str, u: int) -> bytes | None: ...

    def fault_delta(self, category: str, topic: str) -> bytes | None: ...


class WireSink(Protocol):
    """The connection a :class:`WireShaper` writes to."""

    conn_id: str
    category: str

    def emit(self, topic: str, data: bytes, u: int, seq: int) -> None: ...

    def send_frame(self, payload: bytes, binary: bool) -> None: ...

    def write_frames(self, topic: str, items: list[Outgoing]) -> None: ...


class WireShaper:
    """Applies armed stream faults to one connection's outgoing data messages."""

    __slots__ = ("_hub", "_sink", "topics")

    def __init__(self, sink: WireSink, hub: FaultHub) -> None:
        self._sink = sink
        self._hub = hub
        self.topics: dict[str, TopicWire] = {}

    @property
    def active(self) -> bool:
        """True while some topic's wire differs from the feed (offset, held or burst)."""
        return bool(self.topics)

    def forget(self, topic: str) -> None:
        self.topics.pop(topic, None)

    def _wire(self, topic: str) -> TopicWire:
        wire = self.topics.get(topic)
        if wire is None:
            wire = self.topics[topic] = TopicWire()
        return wire

    def push(
        self, topic: str, data: bytes, u: int, seq: int, *, snapshot: bool, initial: bool
    ) -> None:
        sink = self._sink
        wire = self.topics.get(topic)
        true_u = u
        if wire is not None and wire.u_offset and u:
            u -= wire.u_offset
            data = rewrite_u(data, u)
        if wire is not None and wire.burst is not None:
            wire.burst.append((data, u, seq))
            if len(wire.burst) >= wire.burst_size:
                items, wire.burst = wire.burst, None
                sink.write_frames(topic, items)
                self._tidy(topic)
            return
        fault = self._hub.take_stream_fault(
            sink.conn_id, topic, book=u > 0, snapshot=snapshot, initial=initial
        )
        if fault is None:
            sink.emit(topic, data, u, seq)
        else:
            fault.fired += 1
            if not self._apply(fault, topic, data, u, seq, true_u):
                return
        wire = self.topics.get(topic)
        if wire is not None:
            held, wire.held = wire.held, []
            for item in held:
                sink.emit(topic, *item)
            self._tidy(topic)

    def _tidy(self, topic: str) -> None:
        wire = self.topics.get(topic)
        if wire is not None and wire.idle:
            del self.topics[topic]

    def _apply(
        self, fault: StreamFault, topic: str, data: bytes, u: int, seq: int, true_u: int
    ) -> bool:
        """Act out one fault; False if the message was kept back (held ones stay held)."""
        sink = self._sink
        kind = fault.kind
        log.debug("emulator: stream fault %s on %s %s", kind, sink.conn_id, topic)
        if kind == "u_gap" or kind == "lose_snapshot":
            return True  # the message is simply not sent
        if kind == "duplicate_delta":
            sink.emit(topic, data, u, seq)
            sink.emit(topic, data, u, seq)
        elif kind == "swap_deltas":
            self._wire(topic).held.append((data, u, seq))
            return False
        elif kind == "burst":
            wire = self._wire(topic)
            wire.burst = [(data, u, seq)]
            wire.burst_size = fault.count
            return False
        elif kind == "restart_snapshot":
            restart = self._hub.fault_snapshot(sink.category, topic, 1)
            if restart is None:
                sink.emit(topic, data, u, seq)
            else:
                self._wire(topic).u_offset = true_u - 1
                sink.emit(topic, restart, 1, seq)
        elif kind == "delta_before_snapshot":
            early = self._hub.fault_delta(sink.category, topic)
            if early is not None:
                sink.emit(topic, early, 0, 0)
            sink.emit(topic, data, u, seq)
        else:
            binary, payload = junk_frame(kind, data, topic, fault.size)
            sink.send_frame(payload, binary)
            sink.emit(topic, data, u, seq)
        return True
