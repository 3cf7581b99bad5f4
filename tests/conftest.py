"""Shared test helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "bybit-v5"
"""Real Bybit V5 messages (copied from shared/bybit-v5/examples; see its README)."""

TIME_FACTOR = float(os.environ.get("HEAN_TEST_TIME_FACTOR", "1"))
"""Scale for real-time intervals in integration tests (raise it on a slow machine)."""


def ms(value: float) -> float:
    """``value`` milliseconds, in seconds, scaled by HEAN_TEST_TIME_FACTOR."""
    return value / 1000.0 * TIME_FACTOR


def example(name: str) -> dict[str, Any]:
    """Load one example message by file stem, e.g. ``example("pong_public")``."""
    with open(FIXTURES / f"{name}.json", encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def example_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()
