"""Bybit V5 WebSocket URLs (protocol.md §1) and per-category limits (§3.4)."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "CATEGORIES",
    "MAINNET",
    "TESTNET",
    "Category",
    "max_args_per_request",
    "private_url",
    "public_url",
    "trade_url",
    "validate_category",
]

MAINNET = "wss://stream.bybit.com"
TESTNET = "wss://stream-testnet.bybit.com"

Category = Literal["spot", "linear", "inverse", "option"]
CATEGORIES: tuple[str, ...] = ("spot", "linear", "inverse", "option")


def validate_category(category: str) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}: expected one of {', '.join(CATEGORIES)}")
    return category


def _host(testnet: bool) -> str:
    return TESTNET if testnet else MAINNET


def public_url(category: str, *, testnet: bool = True) -> str:
    """``wss://stream[-testnet].bybit.com/v5/public/<category>``."""
    return f"{_host(testnet)}/v5/public/{validate_category(category)}"


def private_url(*, testnet: bool = True) -> str:
    return f"{_host(testnet)}/v5/private"


def trade_url(*, testnet: bool = True) -> str:
    return f"{_host(testnet)}/v5/trade"


def max_args_per_request(category: str) -> int | None:
    """Spot accepts at most 10 topics per subscribe request; the others have no limit."""
    return 10 if category == "spot" else None
