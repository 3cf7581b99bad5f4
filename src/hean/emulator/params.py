"""Knobs of the simulated market's random process (see :mod:`hean.emulator.market`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["OPTION_PARAMS", "MarketParams"]


@dataclass(frozen=True, slots=True)
class MarketParams:
    """Knobs of the random process (rates are per second of simulated time).

    Attributes:
        activity: multiplies every event rate (0.5 = half as busy).
        book_events_per_s: liquidity-provider adds + cancels per symbol.
        takers_per_s: taker orders per symbol.
        liquidations_per_s: liquidations per linear/inverse symbol.
        orders_per_side: resting simulated orders aimed for on each side.
        near_mean_ticks: mean distance (ticks) of a near order from the touch.
        far_share: share of orders placed uniformly up to ``far_ticks`` away.
        far_ticks: how far the far orders go.
        touch_share: share of adds placed at or next to the touch (and of cancels that pick
            any order rather than a stale one): the churn that makes level 1 move.
        spread_ticks: extra half-spread (0 = one-tick spread when the book is full).
        volatility: fair-price standard deviation in ticks per sqrt(second).
        kline_time_scale: length of a kline "minute" in minutes (tests: e.g. 1/600).
    """

    activity: float = 1.0
    book_events_per_s: float = 400.0
    takers_per_s: float = 3.0
    liquidations_per_s: float = 0.2
    orders_per_side: int = 500
    near_mean_ticks: float = 130.0
    far_share: float = 0.2
    far_ticks: int = 3000
    touch_share: float = 0.35
    spread_ticks: int = 0
    volatility: float = 2.5
    kline_time_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("activity", "book_events_per_s", "takers_per_s", "liquidations_per_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("near_mean_ticks", "volatility", "kline_time_scale"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not isinstance(self.orders_per_side, int) or not 1 <= self.orders_per_side <= 100_000:
            raise ValueError(
                f"orders_per_side must be an int in 1..100000, got {self.orders_per_side!r}"
            )
        if (
            not 0 <= self.far_share <= 1
            or not 0 <= self.touch_share <= 1 - self.far_share
            or self.far_ticks < 1
            or self.spread_ticks < 0
        ):
            raise ValueError(
                "need 0 <= far_share, 0 <= touch_share, far_share + touch_share <= 1, "
                "far_ticks >= 1, spread_ticks >= 0"
            )


#: option books are thinner, wider and calmer
OPTION_PARAMS = MarketParams(
    book_events_per_s=40.0, takers_per_s=0.3, liquidations_per_s=0.0, orders_per_side=40,
    near_mean_ticks=8.0, far_share=0.1, far_ticks=200, spread_ticks=2, volatility=0.8,
)  # fmt: skip
