"""Fault-injection switches for the emulator.

A :class:`Faults` object is a bag of switches. The emulator holds one *global* set (applies to every
connection) and, on demand, one set per connection (keyed by ``conn_id``). The effective value for
a connection combines both: booleans are OR-ed, sets are united, and ``idle_timeout`` takes the
per-connection override first, then the global override, then :attr:`EmulatorConfig.idle_timeout`.

Switches are read on every event, so changing them at run time takes effect immediately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["AUTH_REJECT_REASONS", "FAULT_NAMES", "Faults", "validate_fault_change"]

#: Values of :attr:`Faults.auth_reject` (the reply texts are in :mod:`hean.emulator.shapes`).
AUTH_REJECT_REASONS: frozenset[str] = frozenset(
    ("expired", "bad_key", "bad_signature", "too_many_sessions")
)


@dataclass(slots=True)
class Faults:
    """Switches that make the emulator misbehave on purpose (all off by default).

    Attributes:
        ignore_json_ping: do not answer ``{"op":"ping"}`` (data keeps flowing).
        ignore_protocol_ping: do not answer RFC 6455 ping frames with pong frames.
        blackhole: a half-open link — keep TCP open, send nothing, answer nothing (not even close
            frames); idle cut-off does not apply.
        reject_topics: topics that are always rejected with the endpoint's failure text.
        reject_all_subscriptions: reject every subscribe request.
        paused_symbols: stop pushing market data for these symbols (the model keeps moving; the
            first message after the pause ends is a fresh snapshot).
        idle_timeout: override of the no-ping cut-off in seconds; ``None`` = no override,
            ``math.inf`` = never cut. On ``/v5/private`` and ``/v5/trade`` it overrides
            ``max_active_time`` and ``EmulatorConfig.private_idle_timeout``.
        auth_reject: reject every ``auth`` on private/trade connections with this reason
            (``expired``, ``bad_key``, ``bad_signature``, ``too_many_sessions``) whatever the
            credentials; ``None`` = judge them.
        ack_delay: seconds before a trade-stream request is executed and answered (overrides
            ``EmulatorConfig.ack_latency``); ``None`` = no override.
        drip: a slow-dripping link: the connection's output (data, replies, pongs, pings, close
            frames) is limited to this many bytes per second and written a few bytes at a time,
            in order, so a frame trickles in and everything queues behind it (see
            :mod:`hean.emulator.drip`); the venue drops the client as a slow consumer once the
            queue exceeds ``max_write_buffer``. ``None`` = off (what is queued goes out at once).
    """

    ignore_json_ping: bool = False
    ignore_protocol_ping: bool = False
    blackhole: bool = False
    reject_topics: set[str] = field(default_factory=set)
    reject_all_subscriptions: bool = False
    paused_symbols: set[str] = field(default_factory=set)
    idle_timeout: float | None = None
    auth_reject: str | None = None
    ack_delay: float | None = None
    drip: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            validate_fault_change(f.name, getattr(self, f.name))
        # accept any iterable of strings for the set fields, store real sets
        self.reject_topics = set(self.reject_topics)
        self.paused_symbols = set(self.paused_symbols)

    def copy(self) -> Faults:
        """An independent copy (sets are copied too)."""
        return Faults(
            ignore_json_ping=self.ignore_json_ping,
            ignore_protocol_ping=self.ignore_protocol_ping,
            blackhole=self.blackhole,
            reject_topics=set(self.reject_topics),
            reject_all_subscriptions=self.reject_all_subscriptions,
            paused_symbols=set(self.paused_symbols),
            idle_timeout=self.idle_timeout,
            auth_reject=self.auth_reject,
            ack_delay=self.ack_delay,
            drip=self.drip,
        )

    def apply(self, **changes: Any) -> None:
        """Set several switches at once, validating names and values."""
        for name, value in changes.items():
            validate_fault_change(name, value)
        for name, value in changes.items():
            if name in ("reject_topics", "paused_symbols"):
                value = set(value)
            setattr(self, name, value)


FAULT_NAMES: frozenset[str] = frozenset(
    (
        "ignore_json_ping",
        "ignore_protocol_ping",
        "blackhole",
        "reject_topics",
        "reject_all_subscriptions",
        "paused_symbols",
        "idle_timeout",
        "auth_reject",
        "ack_delay",
        "drip",
    )
)


def validate_fault_change(name: str, value: object) -> None:
    """Raise :class:`ValueError` for an unknown switch or a value of the wrong type."""
    if name not in FAULT_NAMES:
        raise ValueError(f"unknown fault switch {name!r}; known: {', '.join(sorted(FAULT_NAMES))}")
    if name in ("reject_topics", "paused_symbols"):
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            raise ValueError(f"fault {name} must be a set of strings, got {value!r}")
        items = list(value)
        if not all(isinstance(v, str) for v in items):
            raise ValueError(f"fault {name} must contain only strings, got {value!r}")
    elif name == "auth_reject":
        if value is not None and value not in AUTH_REJECT_REASONS:
            raise ValueError(
                f"fault auth_reject must be None or one of "
                f"{', '.join(sorted(AUTH_REJECT_REASONS))}, got {value!r}"
            )
    elif name == "ack_delay":
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"fault ack_delay must be a number of seconds or None, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"fault ack_delay must be finite and >= 0, got {value!r}")
    elif name == "drip":
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"fault drip must be bytes per second or None, got {value!r}")
        if not math.isfinite(value) or value < 1:
            raise ValueError(f"fault drip must be finite and >= 1 byte/s, got {value!r}")
    elif name == "idle_timeout":
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(
                f"fault idle_timeout must be a number of seconds or None, got {value!r}"
            )
        if math.isnan(value) or value <= 0:
            raise ValueError(f"fault idle_timeout must be > 0 (math.inf = never), got {value!r}")
    elif not isinstance(value, bool):
        raise ValueError(f"fault {name} must be a bool, got {value!r}")
