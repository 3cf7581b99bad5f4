"""A seeded random schedule of faults: the same seed gives the same storm (sans-I/O).

Every fault the emulator can inject, per stream kind. Connection faults apply to every kind;
wire faults (order-book sequence faults, junk frames, bursts) to the public streams; a lost
private link and failing REST (rate limits, server errors, HTTP 5xx/429, slow answers while the
account reconciles) to the private stream; injected trade errors and slow acks to the trade
stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["FAULTS", "KINDS", "Fault", "plan"]

CONNECTION_FAULTS: tuple[str, ...] = (
    "drop",  # TCP closed without a close frame (1006)
    "reset",  # TCP RST
    "close_1001",
    "close_1011",
    "close_1012",
    "close_1013",
    "blackhole",  # silent link: nothing sent, nothing answered
    "pongless",  # JSON pings unanswered while data flows
    "http_503",  # handshakes refused for a while (connections dropped)
    "http_429",
    "stall",  # handshakes never answered for a while
    "outage",  # the venue is gone for a while (refused, connections dropped)
    "slow_drip",  # the venue's bytes trickle out: a frame takes seconds, or frames lag
)
WIRE_FAULTS: tuple[str, ...] = (
    "u_gap",
    "duplicate_delta",
    "swap_deltas",
    "restart_snapshot",
    "lose_snapshot",
    "delta_before_snapshot",
    "invalid_json",
    "json_array",
    "missing_topic",
    "wrong_types",
    "binary",
    "empty",
    "oversized",
    "burst",
)
FAULTS: dict[str, tuple[str, ...]] = {
    "public": CONNECTION_FAULTS + WIRE_FAULTS,
    "private": (*CONNECTION_FAULTS, "private_link_lost", "rest_failure"),
    "trade": (*CONNECTION_FAULTS, "trade_error", "slow_ack"),
}
KINDS: tuple[str, ...] = tuple(FAULTS)


@dataclass(frozen=True, slots=True)
class Fault:
    at: float
    """Seconds from the start of the storm."""
    kind: str
    pick: float
    """A uniform [0, 1) draw the runner uses to choose a target (topic, code ...)."""

    def __str__(self) -> str:
        return f"{self.at:7.3f}s {self.kind}"


def plan(
    kind: str,
    seed: int,
    duration: float,
    every: tuple[float, float] = (1.0, 3.0),
    only: tuple[str, ...] | None = None,
) -> list[Fault]:
    """Faults of stream ``kind`` over ``duration`` seconds, one every ``U(*every)`` seconds,
    each kind drawn uniformly (every kind appears once in each round before any repeats, so a
    short storm still covers them all). ``only``: draw from these fault kinds alone."""
    if kind not in FAULTS:
        raise ValueError(f"unknown stream kind {kind!r}; known: {', '.join(KINDS)}")
    unknown = set(only or ()) - set(FAULTS[kind])
    if unknown:
        raise ValueError(f"not {kind} faults: {', '.join(sorted(unknown))}")
    lo, hi = every
    if not 0 < lo <= hi:
        raise ValueError(f"bad fault spacing {every!r}")
    rng = random.Random(f"{kind}:{seed}")
    out: list[Fault] = []
    bag: list[str] = []
    t = rng.uniform(lo, hi) / 2
    while t < duration:
        if not bag:
            bag = list(only or FAULTS[kind])
            rng.shuffle(bag)
        out.append(Fault(round(t, 6), bag.pop(), rng.random()))
        t += rng.uniform(lo, hi)
    return out
