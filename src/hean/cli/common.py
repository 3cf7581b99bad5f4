"""Pieces shared by the CLI commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from rich.console import Console, RenderableType
from rich.live import Live

from hean.core.clock import Clock
from hean.core.secrets import Secret
from hean.core.waits import wait_set

if TYPE_CHECKING:
    from hean.emulator import Emulator

T = TypeVar("T")

__all__ = [
    "DEFAULT_SYMBOLS",
    "PrivateEndpoints",
    "UsageError",
    "category_from_url",
    "follow",
    "logs_above_live",
    "private_credentials",
    "private_endpoints",
    "resolve_market",
    "sibling_url",
    "start_sim",
    "until_stopped",
]

DEFAULT_SYMBOLS: dict[str, tuple[str, ...]] = {
    "linear": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    "spot": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    "inverse": ("BTCUSD", "ETHUSD"),
}
"""Symbols watched when ``--symbols`` is not given. Option names carry an expiry, so there is no
lasting default for option on Bybit; with ``--sim`` the emulator's listed options are used."""

_OPTION = re.compile(
    r"^[A-Z0-9]{2,10}-\d{1,2}[A-Z]{3}\d{2}-\d{1,9}(\.\d{1,4})?-[CP](-[A-Z]{3,5})?$"
)
_URL_CATEGORY = re.compile(r"/v5/public/(linear|inverse|spot|option)/?$")


class UsageError(ValueError):
    """A user's input that cannot work: shown as one line, exit code 2."""


def category_from_url(url: str) -> str | None:
    """The category a public endpoint URL serves (``.../v5/public/option`` -> ``option``), or
    ``None`` when its path does not say."""
    path = urlsplit(url).path
    m = _URL_CATEGORY.search(path)
    return None if m is None else m.group(1)


def resolve_market(
    url: str | None, category: str | None, symbols: list[str] | None, *, sim: bool
) -> tuple[str, list[str]]:
    """The category and symbols to watch, from ``--url``, ``--category`` and ``--symbols``.

    The category comes from the URL's path when it names one (a different ``--category`` is
    refused), else from ``--category`` (default ``linear``). Without ``--symbols`` the
    category's defaults are used. Symbols must suit the category (option names for option,
    none for the others).

    Raises:
        UsageError: a mismatch, or symbols that cannot be of this category (one line).
    """
    from_url = category_from_url(url) if url is not None else None
    if from_url is not None and category is not None and category != from_url:
        raise UsageError(
            f"--category {category} does not match --url, which serves {from_url} "
            f"(its path ends in /v5/public/{from_url})"
        )
    cat = from_url or category or "linear"
    if symbols is None:
        if cat in DEFAULT_SYMBOLS:
            symbols = list(DEFAULT_SYMBOLS[cat])
        elif sim:
            from hean.emulator.config import DEFAULT_SYMBOLS as LISTED

            symbols = list(LISTED[cat])
        else:
            raise UsageError(
                "--category option needs --symbols: option names carry an expiry, e.g. "
                "BTC-26JUN26-60000-C-USDT (or use --sim, which lists its own)"
            )
    if cat == "option":
        bad = [s for s in symbols if not _OPTION.match(s)]
        if bad:
            raise UsageError(
                f"not an option symbol: {', '.join(bad)} (expected e.g. BTC-26JUN26-60000-C-USDT)"
            )
    else:
        bad = [s for s in symbols if _OPTION.match(s)]
        if bad:
            raise UsageError(f"{', '.join(bad)}: an option symbol; use --category option")
    return cat, symbols


def private_credentials() -> tuple[Secret, Secret]:
    """The API key and secret for ``--private`` (``BYBIT_API_KEY`` / ``BYBIT_API_SECRET``).

    Raises:
        UsageError: they are missing or invalid (one line, the same for every command).
    """
    from hean.core.config import ConfigError, Settings

    try:
        settings = Settings()
    except ConfigError as exc:
        raise UsageError(f"--private: {exc}") from None
    if not settings.has_credentials:
        raise UsageError(
            "--private needs API keys: set BYBIT_API_KEY and BYBIT_API_SECRET "
            "(or use --sim, which uses the emulator's account)"
        )
    creds = settings.credentials()
    return creds.api_key, creds.api_secret


def sibling_url(url: str, kind: str) -> str:
    """The ``private`` or ``trade`` endpoint on the host of a public endpoint ``url``
    (``ws://h:1/v5/public/linear`` -> ``ws://h:1/v5/trade``)."""
    return url.split("/v5/", 1)[0] + f"/v5/{kind}"


@dataclass(frozen=True, slots=True)
class PrivateEndpoints:
    """Where ``--private`` connects and with which keys (monitor and serve alike)."""

    api_key: Secret
    api_secret: Secret
    private: str
    trade: str
    rest: str | None
    """The REST base URL for the account view (``None``: no account view)."""


def private_endpoints(
    *,
    emulator: Emulator | None,
    public_url: str | None,
    credentials: tuple[Secret, Secret] | None,
    testnet: bool,
    rest_url: str | None,
    custom_url: bool,
) -> PrivateEndpoints:
    """The emulator's account and endpoints with ``--sim``; else the keys given, the private
    and trade endpoints beside the public ``public_url`` (or the venue's for ``testnet``) and
    REST at ``rest_url``, or at the venue's own when no custom ``--url`` was given."""
    from hean.exchange.bybit.endpoints import private_url, trade_url
    from hean.exchange.bybit.rest import rest_url as venue_rest_url

    if emulator is not None:
        from hean.emulator.accounts import DEFAULT_API_KEY, DEFAULT_API_SECRET

        return PrivateEndpoints(
            Secret.api_key(DEFAULT_API_KEY),
            Secret.of(DEFAULT_API_SECRET),
            emulator.url("private"),
            emulator.url("trade"),
            emulator.rest_url(),
        )
    assert credentials is not None
    if public_url is not None:
        private, trade = sibling_url(public_url, "private"), sibling_url(public_url, "trade")
    else:
        private, trade = private_url(testnet=testnet), trade_url(testnet=testnet)
    if rest_url is None and not custom_url:
        rest_url = venue_rest_url(testnet=testnet)
    return PrivateEndpoints(credentials[0], credentials[1], private, trade, rest_url)


async def start_sim(category: str, rate: float, *, seed: int = 1) -> tuple[Emulator, str]:
    """Start the built-in emulator in-process for ``--sim`` (every command's: monitor, serve,
    account); returns it and the endpoint URL of ``category``.

    It lists the same instruments as ``hean sim`` (one rule for both: a symbol it does not
    list is rejected at subscription, as Bybit does), pushing tickers ``rate`` times a second;
    ``seed`` seeds its market.
    """
    from hean.emulator import Emulator, EmulatorConfig  # only when --sim is used

    emulator = Emulator(EmulatorConfig(ticker_interval=1.0 / rate, seed=seed))
    await emulator.start()
    return emulator, emulator.url(category)


async def until_stopped(aw: Awaitable[T], stop: asyncio.Event) -> tuple[bool, T | None]:
    """Await ``aw`` unless ``stop`` is set first (Ctrl-C, SIGTERM): then ``aw`` is cancelled at
    once. Returns ``(True, result)`` when it completed, ``(False, None)`` when stopped."""
    task: asyncio.Future[T] = asyncio.ensure_future(aw)
    if stop.is_set():
        task.cancel()
    else:
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        waiting: set[asyncio.Future[Any]] = {task, stopper}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return False, None


@contextlib.contextmanager
def logs_above_live(console: Console) -> Iterator[None]:
    """While a rich ``Live`` view runs on ``console``, send log records through rich's handler
    on that same console, so they print above the view instead of tearing it (stacked copies).
    The root logger's own stream handlers are set aside meanwhile and restored after."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    aside = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    level = min((h.level for h in aside), default=logging.NOTSET)
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    handler.setLevel(level)
    if aside:
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    for h in aside:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for h in aside:
            root.addHandler(h)


async def follow(
    render: Callable[[], RenderableType],
    *,
    console: Console,
    clock: Clock,
    stop: asyncio.Event,
    end: float | None,
    refresh: float,
    live_view: bool,
    logs_above: bool = False,
) -> None:
    """Wait until ``stop`` is set or the monotonic time ``end`` (``None``: no end), showing
    ``render()`` as a rich live view refreshed every ``refresh`` seconds when ``live_view``
    (with log records printed above it when ``logs_above``)."""
    live: Live | None = None
    logs = contextlib.ExitStack()
    if live_view:
        if logs_above:
            logs.enter_context(logs_above_live(console))
        live = Live(render(), console=console, auto_refresh=False)
        live.start()
    try:
        while not stop.is_set():
            now = clock.monotonic()
            if end is not None and now >= end:
                break
            wait = refresh if end is None else min(refresh, end - now)
            await wait_set(stop, max(wait, 0.0))
            if live is not None:
                live.update(render(), refresh=True)
    finally:
        if live is not None:
            live.stop()
        logs.close()
